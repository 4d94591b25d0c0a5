"""The Mem0-style memory pipeline: extraction -> retrieval -> update -> apply.

:class:`Memory` is the public facade. Its parts: the model steps
(:mod:`memlora_engine.steps`), durable per-scope writes
(:mod:`memlora_engine.repository`), the answering path
(:mod:`memlora_engine.answering`), chat sessions (:mod:`memlora_engine.chat`)
and the JSONL format (:mod:`memlora_engine.jsonl`), over a
:class:`~memlora_engine.store.base.Store`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from memlora_engine._database import Database
from memlora_engine._time import Timestamp, iso, resolve
from memlora_engine._vision import PreparedImage, prepare_turns, refers_to_image
from memlora_engine.answering import NOT_IN_MEMORY, ROUTES, Answerer, superseded_listing
from memlora_engine.chat import ChatSessions
from memlora_engine.config import MemoryConfig
from memlora_engine.dates import anchor_dates
from memlora_engine.embeddings.base import CachedEmbedder, Embedder, max_marginal_relevance
from memlora_engine.errors import InvalidInputError, ModelOutputError
from memlora_engine.generator import Generator
from memlora_engine.history import HistoryStore
from memlora_engine.hybrid import RERANK_POOL, SEARCH_RERANK_POOL, LexicalIndex, hybrid_search, lexical_rerank
from memlora_engine.images import ImageStore, load_image
from memlora_engine.jsonl import read_records, write_records
from memlora_engine.messages import check_text, normalize_messages
from memlora_engine.repository import FaultHook, Repository, check_id, text_hash
from memlora_engine.sessions import SessionStore
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, decide_updates, extract_facts, extraction_conversations
from memlora_engine.store.base import Store, validate_metadata
from memlora_engine.store.chroma import ChromaStore
from memlora_engine.subjects import answer_source, check_question, speaker_subjects
from memlora_engine.types import AddResult, Answer, Event, HistoryEntry, MemoryEvent, MemoryRecord, Operation, Scope

__all__ = ["Memory", "text_hash"]

logger = logging.getLogger(__name__)

_TEXT_VECTORS = 1024
"""How many texts' vectors ``answer`` keeps (masked memories for the other-subject check): the same
memories come back question after question, and
embedding them was most of an answer's time without the model (at most ~13 MB: 384-dimension
vectors as Python floats). Each text is embedded alone, so an answer never depends on the
questions asked before it."""


def _memory_text(text: object) -> str:
    """``text`` stripped, if it can be a memory's text (``update``, ``put``); else InvalidInputError."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("text must be a non-empty string")
    check_text(text, "text")
    return text.strip()


def _query_text(text: object, name: str) -> str:
    """``text`` if it can be embedded as a search query (``search``'s query, ``answer``'s question); else InvalidInputError."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} must be a string, got {type(text).__name__}")
    return check_text(text, name)


def _default_store(cfg: MemoryConfig) -> ChromaStore:
    """The Chroma store ``cfg`` names: in memory, on a server, or embedded in the data directory."""
    if cfg.store == "memory":
        return ChromaStore.in_memory(namespace=cfg.namespace)
    if cfg.store == "http":
        return ChromaStore.http(
            cfg.chroma_host, cfg.chroma_port, ssl=cfg.chroma_ssl, headers=cfg.chroma_headers, namespace=cfg.namespace
        )
    return ChromaStore.persistent(cfg.resolved_data_dir / "chroma", namespace=cfg.namespace)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def _file(data_dir: Path | None, name: str) -> str | Path:
    return data_dir / name if data_dir is not None else ":memory:"


def _data_dir(cfg: MemoryConfig) -> Path | None:
    """The directory files go to; None when the configuration keeps everything off this disk."""
    if cfg.store == "memory" or (cfg.store == "http" and cfg.data_dir is None):
        return None  # a server store never falls back to the home directory
    return cfg.resolved_data_dir


def _databases(cfg: MemoryConfig, data_dir: Path | None) -> tuple[Database | str | Path, Database | str | Path]:
    """Where the history and the sessions go: one shared database, or a SQLite file each."""
    if cfg.database_url is not None:
        shared = Database(cfg.database_url, what="database", schema=cfg.namespace)
        return shared, shared
    if cfg.store == "http" and data_dir is None:
        warnings.warn(
            'store="http" without database_url or data_dir: the audit history and chat sessions are kept in this '
            "process only (set database_url to share them between workers)",
            stacklevel=3,
        )
    return _file(data_dir, "history.db"), _file(data_dir, "sessions.db")


class Memory:
    """Long-term memory for agents, run by a small local model.

    Args:
        config: storage, retrieval and prompt settings (defaults: embedded Chroma in
            the per-user data directory, MemLoRA prompts).
        generator: the model backend (see :class:`~memlora_engine.generator.Generator`);
            required by ``add(infer=True)`` and ``answer``.
        embedder: text embedder; sentence-transformers all-MiniLM-L6-v2 by default.
        store: a :class:`~memlora_engine.store.base.Store`; a :class:`ChromaStore` built from
            ``config`` when omitted.
        history: the audit :class:`HistoryStore`; in ``config.database_url``, else beside the
            store, when omitted.
        sessions: the chat-session buffer :class:`SessionStore`; where the history goes when omitted.
        clock: returns "now" (injectable for tests and replays).
        images: where images given to ``add`` are kept (:class:`ImageStore`); beside the
            store when omitted (in memory for ``store="memory"``).
        captioner: turns a PIL image into a caption, for a text-only generator given an
            image without one (e.g. a transformers image-to-text pipeline).
        faults: a crash-test hook told each write step it reaches (see
            :data:`~memlora_engine.repository.FAULT_POINTS`); None outside crash tests.

    Every read and write names its scope with ``user_id``, ``agent_id`` and/or
    ``run_id``; a scope only ever sees its own memories.

    Example:
        >>> from memlora_engine import Memory, MemoryConfig
        >>> from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
        >>> gen = ScriptedGenerator({"extraction": ['{"facts": ["Likes tea"]}']})
        >>> m = Memory(MemoryConfig(store="memory"), generator=gen, embedder=DeterministicEmbedder())
        >>> [e.event.value for e in m.add("I like tea", user_id="alice")]
        ['ADD']
        >>> m.search("tea", user_id="alice")[0].text
        'Likes tea'
    """

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        store: Store | None = None,
        history: HistoryStore | None = None,
        sessions: SessionStore | None = None,
        clock: Callable[[], datetime] | None = None,
        images: ImageStore | None = None,
        captioner: Callable[[Any], str] | None = None,
        faults: FaultHook | None = None,
    ) -> None:
        self.config = config if config is not None else MemoryConfig()
        if embedder is None:
            from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder(self.config.embedding_model)
        cfg = self.config
        data_dir = _data_dir(cfg)  # None: nothing on disk
        self.store: Store = store if store is not None else _default_store(cfg)
        if history is None or sessions is None:
            history_at, sessions_at = _databases(cfg, data_dir)
            history = history if history is not None else HistoryStore(history_at)
            sessions = sessions if sessions is not None else SessionStore(sessions_at)
        self.history_store = history
        self.session_store = sessions
        self._clock = clock or (lambda: datetime.now(UTC).astimezone())
        self.image_store = images if images is not None else ImageStore(data_dir and data_dir / "images" / cfg.namespace)
        self.captioner = captioner
        self.stats = Stats()
        self._model = ModelCaller(self.config, generator, self.stats)
        self._repo = Repository(self.store, self.history_store, self.session_store, self.image_store, embedder,
                                source_weight=self.config.source_weight, faults=faults)
        self._answerer = Answerer(self._model, self.image_store)
        self.embedder = embedder  # the setter also builds the kept vectors of masked texts beside it
        self._lexical = LexicalIndex()  # used by search_mode="hybrid"; in memory only
        self.chats = ChatSessions(self.session_store, self._clock)
        """The chat sessions (short-term buffers) the integrations keep; see :mod:`memlora_engine.chat`."""
        self._repo.recover()

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the store and the SQLite files (the memory is unusable afterwards)."""
        self.history_store.close()
        self.session_store.close()
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self, timestamp: Timestamp = None) -> datetime:
        return resolve(timestamp, self._clock)

    # -- the models -------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The text embedder (replaceable, as the repository embeds with it too)."""
        return self._repo.embedder

    @embedder.setter
    def embedder(self, embedder: Embedder) -> None:
        self._repo.embedder = embedder
        self._texts = CachedEmbedder(embedder, max_entries=_TEXT_VECTORS, batch=False)

    @property
    def generator(self) -> Generator | None:
        """The model backend; required by ``add(infer=True)`` and ``answer``."""
        return self._model.generator

    @generator.setter
    def generator(self, generator: Generator | None) -> None:
        self._model.generator = generator

    @property
    def sees_images(self) -> bool:
        """True when the generator takes images (a VLM backbone): extraction and VQA see pixels."""
        return self._model.sees_images

    # -- add ----------------------------------------------------------------------------
    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        infer: bool = True,
        timestamp: Timestamp = None,
    ) -> AddResult:
        """Remember what ``messages`` say.

        With ``infer=True`` the extraction operation turns the conversation into
        facts, each fact retrieves its ``update_top_k`` most similar old memories,
        and the update operation decides ADD/UPDATE/DELETE/NONE. With
        ``infer=False`` each message's text is stored as is.

        ``timestamp`` (the session time) is the date shown to the model and the
        time recorded on the memories written. Output the model garbles applies
        nothing: the result's ``failures`` say why and ``stats`` counts it.

        Message content may carry images (a path, URL, bytes or PIL image, in the
        OpenAI, LangChain, Hugging Face or LlamaIndex part shapes; an optional
        ``"caption"``). Each is stored once per scope (content-addressed) and becomes
        an image memory (``memory_type="image"``, ``image_id``); facts extracted from
        the same call carry ``image_ids``. A generator that ``supports_images`` sees
        the pixels during extraction; a text-only one sees the caption instead. An
        image that cannot be read raises before anything is stored.
        """
        scope = Scope(user_id, agent_id, run_id)
        meta = validate_metadata(metadata)
        given = normalize_messages(messages, images=True)
        prepared = prepare_turns(given, vision=self.sees_images, captioner=self.captioner)
        now = self._now(timestamp)
        if prepared.uncaptioned:
            self.stats.record_images("uncaptioned", prepared.uncaptioned)
            logger.info("%d image(s) with no caption for a text-only generator", prepared.uncaptioned)
        if not infer:  # the words as given; each image is its own image memory
            texts = [m["content"].strip() for m in given if m["role"] != "system" and m["content"].strip()]
            result = AddResult(events=self._repo.add_texts(scope, texts, meta, now), facts=texts)
            result.events += self._add_images(scope, prepared.images, meta, now)
            return result
        # One call when images come along: the pixels belong to the whole conversation.
        # stacklevel 3: the warning names the caller of add().
        window = None if prepared.images else self.config.extraction_window
        conversations = extraction_conversations(prepared.messages, window, self.config.max_conversation_chars,
                                                 every_turn_leads=self.config.speaker_windows,
                                                 short_windows=self.config.short_windows, stacklevel=3)
        result = AddResult()
        if conversations:
            fact_meta = meta
            if prepared.images:
                fact_meta = {**meta, "image_ids": ",".join(dict.fromkeys(p.image.id for p in prepared.images))}
            self._infer(scope, conversations, prepared.images, fact_meta, now, result)
        # Image memories hold the user's input, not model output: stored even when a parse failed.
        result.events += self._add_images(scope, prepared.images, meta, now)
        return result

    def _infer(self, scope: Scope, conversations: list[str], images: list[PreparedImage], meta: dict[str, Any],
               now: datetime, result: AddResult) -> None:
        """Extraction, retrieval, update and apply for one ``add`` (results go into ``result``)."""
        date = now.date().isoformat()
        # Extraction reads nothing from the store, so it runs outside the scope lock.
        pixels = [p.image.pil() for p in images] if self.sees_images else []
        facts: dict[str, str] = {}  # the windows' facts in order, each once, with the first window that gave it
        for conversation in conversations:
            try:
                found = extract_facts(self._model, conversation, date=date, images=pixels)
            except ModelOutputError as exc:  # this window gives nothing; the others still count
                self._failed(Operation.EXTRACTION, exc, result)
                continue
            if self.config.speaker_subjects and found:
                found, renamed = speaker_subjects(found, conversation, self.embedder)
                if renamed:
                    self.stats.record_renamed_subjects(renamed)
            if self.config.anchor_dates and found:
                anchored = [anchor_dates(fact, now.date()) for fact in found]
                self.stats.record_anchored_dates(sum(a != f for a, f in zip(anchored, found)))
                found = anchored
            for fact in found:
                facts.setdefault(fact, conversation)
        result.facts = list(facts)
        if not result.facts:
            return
        fact_vectors = dict(zip(result.facts, self.embedder.embed(result.facts)))
        with self._repo.locked(scope):  # a crashed worker's batch lands before we read
            nearest = dict(zip(fact_vectors, self._repo.nearest(scope, fact_vectors.values(),
                                                                self.config.update_top_k), strict=True))
            old = list({r.id: r for records in nearest.values() for r in records}.values())  # first seen first
            try:
                plan = decide_updates(self._model, old, result.facts, date=date, embedder=self.embedder,
                                      nearest=nearest)
            except ModelOutputError as exc:
                self._failed(Operation.UPDATE, exc, result)
                return
            result.rejected = [r.to_dict() for r in plan.rejected]  # counted and logged by decide_updates
            result.events = self._repo.apply(scope, plan.planned, meta, now, fact_vectors,
                                             keep_superseded=self.config.keep_superseded, sources=facts)
            # An ADD of a text stored outside the retrieved memories is caught by the repository: a NONE too.
            skipped = sum(op.event is Event.ADD for op in plan.planned) - sum(e.event is Event.ADD for e in result.events)
            self.stats.record_update_plan(uncovered=0, duplicates=skipped)

    def _add_images(self, scope: Scope, images: Sequence[PreparedImage], meta: dict[str, Any],
                    now: datetime) -> list[MemoryEvent]:
        """Store each image file, then one image memory per image (once per photo and scope)."""
        events: list[MemoryEvent] = []
        for prepared in images:
            added = self._repo.add_image(scope, prepared, meta, now)
            if added is None:
                continue  # this photo is already remembered in this scope
            events += added
            self.stats.record_images("stored")
        return events

    def add_many(
        self,
        texts: Iterable[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: Timestamp = None,
        batch_size: int = 512,
    ) -> AddResult:
        """Store many texts as they are (no model), in journalled batches: the bulk path.

        Equivalent to ``add(text, infer=False)`` for each text, but embeds
        ``batch_size`` texts at a time and checks duplicates with one store lookup
        per batch. Each batch is committed on its own (a crash loses at most the
        batch in flight, never half of one).
        """
        scope = Scope(user_id, agent_id, run_id)
        meta = validate_metadata(metadata)
        _positive("batch_size", batch_size)
        if isinstance(texts, str):
            raise InvalidInputError("texts must be an iterable of strings, not one string (use add)")
        return self._repo.add_many(scope, texts, meta, self._now(timestamp), batch_size)

    def _failed(self, op: Operation, exc: ModelOutputError, result: AddResult) -> None:
        self.stats.record_parse_failure(op, exc.raw)
        result.failures.append(f"{op.value}: {exc}")
        logger.warning("%s output could not be parsed; nothing applied (%s)", op.value, exc)

    # -- reads ----------------------------------------------------------------------------
    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
               threshold: float | None = None) -> list[MemoryRecord]:
        """The scope's memories most relevant to ``query``, best first, with ``score`` (the cosine).

        With ``MemoryConfig.search_lexical_weight`` (on by default) the vector
        candidates (at least :data:`~memlora_engine.hybrid.SEARCH_RERANK_POOL`) are
        re-ordered by their words too, each read with the conversation window it came
        from (:func:`~memlora_engine.hybrid.lexical_rerank`), as ``answer`` does: the
        LangChain and LlamaIndex classes read memories through ``search``.
        ``threshold`` still applies to the cosine.
        """
        scope = Scope(user_id, agent_id, run_id)
        query = _query_text(query, "query")
        k = _positive("limit", self.config.search_limit if limit is None else limit)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold)):
            raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
        lexical = self.config.search_lexical_weight
        if lexical is None:
            hits = self._retrieve(scope, query, k, filters)
        else:
            candidates = self._retrieve(scope, query, max(k, SEARCH_RERANK_POOL), filters)
            hits = lexical_rerank(query, candidates, lexical)[:k]
        if threshold is not None:
            hits = [h for h in hits if h.score is not None and h.score >= threshold]
        return hits

    def _retrieve(self, scope: Scope, query: str, k: int, filters: dict[str, Any] | None, *,
                  superseded: bool = False, vector: list[float] | None = None) -> list[MemoryRecord]:
        """The top ``k`` for ``query`` by ``search_mode``; ``superseded`` ranks superseded records too.

        ``vector``: ``query``'s embedding when the caller has it already (else embedded here).
        """
        self._repo.refresh()
        if vector is None:
            vector = self.embedder.embed([query])[0]
        if self.config.search_mode == "hybrid":
            return hybrid_search(self.store, self._lexical, self.embedder, scope, query, vector, k, filters,
                                 self._repo.history.generation(), superseded=superseded)
        return self.store.query(scope, vector, k, filters, superseded=superseded)

    def get(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None) -> MemoryRecord | None:
        """The memory ``memory_id`` of this scope, or None."""
        scope = Scope(user_id, agent_id, run_id)
        self._repo.refresh()
        found = self.store.fetch(scope, [check_id(memory_id)])
        return found[0] if found else None

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict[str, Any] | None = None, limit: int | None = None) -> list[MemoryRecord]:
        """Every memory of the scope matching ``filters``, oldest first."""
        scope = Scope(user_id, agent_id, run_id)
        self._repo.refresh()
        return self.store.list(scope, filters, None if limit is None else _positive("limit", limit))

    def history(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                run_id: str | None = None) -> list[HistoryEntry]:
        """The audit trail of one memory of this scope, oldest first."""
        return self.history_store.entries(Scope(user_id, agent_id, run_id), check_id(memory_id))

    # -- direct writes --------------------------------------------------------------------
    def update(self, memory_id: str, text: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, metadata: dict[str, Any] | None = None) -> MemoryEvent:
        """Replace a memory's text (and merge ``metadata``)."""
        return self._repo.update(Scope(user_id, agent_id, run_id), memory_id, _memory_text(text),
                               validate_metadata(metadata), self._clock)

    def put(self, memory_id: str, text: str, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: dict[str, Any] | None = None) -> MemoryEvent:
        """Store ``text`` under the caller's ``memory_id``, as a key-value store writes a key (no model).

        A new id is an ADD; an existing one is an UPDATE that replaces the text and
        the metadata (not merged, unlike :meth:`update`) and keeps ``created_at``.
        No duplicate check: two ids may hold the same text. Recorded in the history
        like every write.
        """
        return self._repo.put(Scope(user_id, agent_id, run_id), memory_id, _memory_text(text),
                               validate_metadata(metadata), self._clock)

    def delete(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> MemoryEvent:
        """Delete one memory of this scope."""
        return self._repo.delete(Scope(user_id, agent_id, run_id), memory_id, self._clock)

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> int:
        """Forget the scope: its memories, its history, and their text on disk. Returns the count removed."""
        scope = Scope(user_id, agent_id, run_id)
        count = self._repo.forget(scope)
        self._lexical.discard(scope)  # the forgotten texts leave the BM25 index now, not at the next search
        self._texts.clear()  # and the kept vectors' texts (any scope's: the cache is cheap to refill)
        return count

    def scopes(self, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> list[Scope]:
        """Every scope holding anything (memories, history, chat) whose ids include the given ones.

        ``scopes(user_id="alice")``: alice's own scope and each of her agent and run scopes.
        """
        return self._repo.scopes(user_id, agent_id, run_id)

    def forget(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> int:
        """Forget every scope :meth:`scopes` lists for these ids (``delete_all`` forgets only the exact one).

        A right-to-be-forgotten request: ``forget(user_id="alice")`` also forgets
        ``(alice, agent_id=...)``, ``(alice, run_id=...)``. Returns the memories removed.
        """
        Scope(user_id, agent_id, run_id)  # at least one id (reset() forgets everyone), each well formed
        removed = sum(self._repo.forget(scope) for scope in self._repo.scopes(user_id, agent_id, run_id))
        self._texts.clear()
        return removed

    def reset(self) -> None:
        """Forget every scope of this namespace and the whole history."""
        self._repo.reset()
        self._lexical.discard()
        self._texts.clear()

    # -- chat sessions (short-term buffer for the integrations) ----------------------------
    def append_chat(self, session_id: str, messages: Any, *, user_id: str | None = None,
                    agent_id: str | None = None, run_id: str | None = None, timestamp: Timestamp = None) -> None:
        """Append messages to a chat session of the scope (persisted; no extraction).

        A message dict may carry ``"extra"`` (a JSON-able dict) that comes back as is.
        """
        self.chats.append(Scope(user_id, agent_id, run_id), session_id, messages, timestamp)

    def chat_messages(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                      run_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's messages, oldest first (the last ``limit`` when given)."""
        return self.chats.messages(Scope(user_id, agent_id, run_id), session_id, limit)

    def clear_chat(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                   run_id: str | None = None) -> int:
        """Forget one chat session of the scope; long-term memories stay."""
        return self.chats.clear(Scope(user_id, agent_id, run_id), session_id)

    # -- generation -------------------------------------------------------------------------
    def answer(self, question: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
               timestamp: Timestamp = None, images: Sequence[Any] | None = None, route: str = "auto") -> Answer:
        """Answer ``question`` from the scope's most relevant memories.

        The superseded records (texts the update step replaced, ``MemoryConfig.keep_superseded``)
        are ranked beside the current memories; those ``MemoryConfig.answer_superseded``
        drops are left out (by default, one whose replacing memory was retrieved too).
        With ``MemoryConfig.answer_lexical_weight`` (on by default) the candidates are
        re-ordered by their words too, each read with the conversation window it came
        from (:func:`~memlora_engine.hybrid.lexical_rerank`), so ``answer`` may list
        memories that ``search`` ranks lower.

        Routing (``route="auto"``): with a generator that ``supports_images``, a question
        that carries ``images``, or that refers to a photo (see
        :func:`~memlora_engine._vision.refers_to_image`) while a retrieved memory holds
        a stored image, goes to the ``vqa`` operation with that image and returns its
        short answer and ``reason``. Everything else goes to ``generation``; a
        text-only generator given ``images`` sees their captions (from
        ``captioner``) among the memories. ``route="vqa"`` or ``"text"`` forces a path.

        A text question about one person that only another person's memories answer
        ("What did Melanie paint?" when only Caroline's painting is stored) is declined
        without a generation call: the answer is ``NOT_IN_MEMORY`` with ``declined=
        "other_subject"``, counted in ``stats["generation"].declined``
        (``MemoryConfig.decline_other_subject``, :mod:`memlora_engine.subjects`). After the
        call, an answer whose words come from another person's memory ("Sweden" for
        "What country is Melanie's grandma from?", read in Caroline's) is declined too:
        ``declined="other_source"``, the model's answer in ``reason``
        (``MemoryConfig.decline_other_source``).

        Raises:
            InvalidInputError: a bad ``route``, an unreadable image, or ``route="vqa"``
                with no image to look at.
            ConfigError: ``route="vqa"`` with a generator that does not take images.
        """
        if route not in ROUTES:
            raise InvalidInputError(f'route must be "auto", "vqa" or "text", got {route!r}')
        scope = Scope(user_id, agent_id, run_id)
        given = [load_image(i) for i in images] if images else []
        question = _query_text(question, "question")
        k = _positive("limit", limit or self.config.answer_top_k)
        mmr = self.config.answer_mmr
        rule = self.config.answer_superseded
        wanted = k if mmr is None else 2 * k
        lexical = self.config.answer_lexical_weight
        question_vector = self.embedder.embed([question])[0]
        # Twice as many candidates when superseded records rank among them: a dropped one's place is refilled.
        pool = wanted if rule == "off" else 2 * wanted
        if lexical is not None:
            pool = max(pool, RERANK_POOL)
        candidates = self._retrieve(scope, question, pool, filters, superseded=rule != "off", vector=question_vector)
        if lexical is not None:
            candidates = lexical_rerank(question, candidates, lexical)
        memories = superseded_listing(candidates, rule, wanted)
        if mmr is not None and len(memories) > k:
            vectors = self.embedder.embed([m.text for m in memories])
            picked = max_marginal_relevance([m.score or 0.0 for m in memories], vectors, k, mmr)
            memories = [memories[i] for i in picked]
        threshold = self.config.decline_other_subject
        if threshold is not None and not given and route != "vqa" and not refers_to_image(question):
            check = check_question(
                question, [m.text for m in memories], lambda q: [m.text for m in self.search(
                    q, user_id=user_id, agent_id=agent_id, run_id=run_id, limit=k, filters=filters)],
                self._texts)
            if check.margin is not None and check.margin > threshold:
                self.stats.record_declined(Operation.GENERATION)
                logger.info("declined a question about %s: another person's memory fits it better by %.3f (%r)",
                            check.asked, check.margin, check.other)
                return Answer(text=NOT_IN_MEMORY, memories=memories, declined="other_subject")
        answer = self._answerer.answer(question, scope, memories, given, route=route, captioner=self.captioner,
                                       clock=lambda: self._now(timestamp), dated=self.config.dated_memories,
                                       date_answers=self.config.date_answers,
                                       written_dates=self.config.written_date_answers,
                                       polar=self.config.polar_answers, turns=self.config.answer_turns)
        share = self.config.decline_other_source
        if share is not None and answer.operation in ("generation", "date") and not given and answer.failure is None \
                and answer.text != NOT_IN_MEMORY:
            source = answer_source(question, answer.text, [m.text for m in answer.memories])
            if source.declines(share):
                self.stats.record_declined(Operation.GENERATION)
                logger.info("declined the answer %r about %s: %.2f of its words are in another person's memory (%r)",
                            answer.text, source.asked, source.other, source.source)
                return Answer(text=NOT_IN_MEMORY, memories=answer.memories, operation=answer.operation,
                              reason=f"{answer.text!r} comes from another person's memory: {source.source}",
                              declined="other_source")
        return answer

    # -- export / import --------------------------------------------------------------------
    def export(self, destination: str | Path | IO[str], *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> int:
        """Write the scope's memories as JSONL (one record a line), then its superseded records. Returns the count."""
        scope = Scope(user_id, agent_id, run_id)
        self._repo.refresh()
        return write_records(self.store.list(scope, superseded=True), destination)

    def import_(self, source: str | Path | IO[str] | Iterable[str], *, user_id: str | None = None,
                agent_id: str | None = None, run_id: str | None = None, keep_scopes: bool = False) -> int:
        """Load JSONL written by :meth:`export`; ids, texts, times and metadata are kept.

        Records go to the given scope; ``keep_scopes=True`` (an operator's restore) puts
        each into the scope its line names instead. A memory with the same id is
        replaced, recorded as an UPDATE in its history.

        Raises:
            InvalidInputError: a malformed line, or neither a scope nor ``keep_scopes=True``
                (a file must never choose whose memories it writes).
        """
        given = user_id is not None or agent_id is not None or run_id is not None
        if given == keep_scopes:
            raise InvalidInputError("import_ needs the scope to import into (user_id/agent_id/run_id) or, to restore "
                                    "each line into the scope it names, keep_scopes=True; not both")
        by_scope = read_records(source, Scope(user_id, agent_id, run_id) if given else None)
        stamp = iso(self._now())
        for scope, records in by_scope.items():
            self._repo.import_records(scope, records, stamp)
        return sum(len(v) for v in by_scope.values())
