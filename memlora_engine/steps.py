"""The model steps of ``add``, callable without a store.

:class:`ModelCaller` renders an operation's prompt, calls the generator and counts
the call. :func:`extract_facts` and :func:`decide_updates` are exactly the two
model steps ``Memory.add(infer=True)`` runs (between them the engine retrieves
the related old memories, and after them it applies the planned ops), so a
benchmark can run the engine's update step on its own::

    caller = ModelCaller(MemoryConfig(store="memory"), generator, Stats())
    facts = extract_facts(caller, "user: I moved to Oslo", date="2024-05-01")
    plan = decide_updates(caller, old_records, facts, date="2024-05-01")
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import GeneratorError
from memlora_engine.generator import (
    Generation,
    GenerationRequest,
    Generator,
    SupportsAdapters,
    SupportsBatchGeneration,
    SupportsImages,
)
from memlora_engine.messages import render_conversation, spoken_messages
from memlora_engine.operations import operation_spec
from memlora_engine.ops import (
    PlannedOp,
    Rejection,
    fact_into_unchanged_update,
    plan_operations,
    text_hash,
    uncovered_facts,
    unrelated_changes,
    unsupported_nones,
)
from memlora_engine.parsing import RawOp, parse_facts, parse_update_ops
from memlora_engine.prompts import render_prompt
from memlora_engine.stats import Stats
from memlora_engine.subjects import FIRST_PERSON
from memlora_engine.types import Event, MemoryRecord, Operation

__all__ = ["ModelCaller", "UpdatePlan", "decide_updates", "extract_facts", "extraction_conversations",
           "fit_conversation", "speaks_of_self"]

logger = logging.getLogger(__name__)


class ModelCaller:
    """One generator as the engine calls it: prompts by operation, token budgets, stats.

    Args:
        config: the prompt styles, JSON constraint and token budgets.
        generator: the model backend; None until one is needed (calls then raise).
        stats: where every call is counted.
    """

    def __init__(self, config: MemoryConfig, generator: Generator | None, stats: Stats) -> None:
        self.config = config
        self.generator = generator
        self.stats = stats

    def prompt_style(self, op: Operation) -> str:
        """The prompt style ``op`` runs with: the configured one on a trained adapter, the fallback otherwise."""
        generator = self.generator
        has_adapter = isinstance(generator, SupportsAdapters) and bool(generator.has_adapter(op))
        return operation_spec(op).prompt_style(self.config.prompt_style, self.config.base_prompt_style, has_adapter)

    @property
    def sees_images(self) -> bool:
        """True when the generator takes images (a VLM backbone): extraction and VQA see pixels."""
        generator = self.generator
        return isinstance(generator, SupportsImages) and bool(generator.supports_images)

    def call(self, op: Operation, images: Sequence[Any] = (), **values: str) -> Generation:
        """Render ``op``'s prompt with ``values``, generate under its JSON schema (the registry's), count the call.

        Raises:
            GeneratorError: no generator is configured, or the backend failed.
        """
        generator = self._generator()
        request = self._request(op, images, values)
        start = time.perf_counter()
        result = generator.generate(request)
        self._record(op, result, time.perf_counter() - start)
        return result

    def call_many(self, op: Operation, values: Sequence[dict[str, str]]) -> list[Generation]:
        """:meth:`call` for each of ``values``, in one batch when the generator runs batches.

        A batch's seconds are shared evenly among its calls in the stats. The outputs are
        the one-by-one calls' (see :class:`~memlora_engine.generator.SupportsBatchGeneration`).
        """
        generator = self._generator()
        if len(values) < 2 or not (isinstance(generator, SupportsBatchGeneration)
                                   and generator.supports_batch_generation):
            return [self.call(op, **v) for v in values]
        requests = [self._request(op, (), v) for v in values]
        start = time.perf_counter()
        results = generator.generate_batch(requests)
        seconds = (time.perf_counter() - start) / len(requests)
        for result in results:
            self._record(op, result, seconds)
        return results

    def _generator(self) -> Generator:
        if self.generator is None:
            raise GeneratorError(
                "no generator configured: pass generator= (the on-device backbone, or "
                "memlora_engine.testing.ScriptedGenerator in tests)"
            )
        return self.generator

    def _request(self, op: Operation, images: Sequence[Any], values: dict[str, str]) -> GenerationRequest:
        return GenerationRequest(
            operation=op,
            messages=render_prompt(self.prompt_style(op), op, **values),
            json_schema=operation_spec(op).json_schema if self.config.constrained_json else None,
            max_new_tokens=self.config.max_new_tokens[op.value],
            images=tuple(images),
        )

    def _record(self, op: Operation, result: Generation, seconds: float) -> None:
        self.stats.record_call(op, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                               seconds=seconds)


def extract_facts(caller: ModelCaller, conversation: str, *, date: str, images: Sequence[Any] = ()) -> list[str]:
    """The extraction step: the facts worth remembering in ``conversation``.

    Args:
        caller: the model.
        conversation: the rendered turns (``role: text`` lines).
        date: the session date shown to the model (ISO, e.g. ``"2024-05-01"``).
        images: PIL images for a generator that sees pixels (empty otherwise).

    Raises:
        ModelOutputError: the output is not a facts object (``raw`` holds it).
    """
    raw = caller.call(Operation.EXTRACTION, images, conversation=conversation, date=date).text
    return parse_facts(raw)


@dataclass
class UpdatePlan:
    """What the update step decided for one call.

    Attributes:
        planned: the ops to apply.
        rejected: the model's ops refused by :func:`~memlora_engine.ops.plan_operations`.
        uncovered: new facts that no accepted op spoke of; ADDed to ``planned`` when
            ``config.uncovered_facts == "add"``, left out when ``"ignore"``.
        duplicates: ADDs whose text is already stored among the old memories, dropped
            from ``planned``: they are NONE.
        raw: the model's output ("" when the model was not called).
    """

    planned: list[PlannedOp]
    rejected: list[Rejection] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    duplicates: int = 0
    raw: str = ""


def decide_updates(caller: ModelCaller, old_records: Sequence[MemoryRecord], facts: Sequence[str], *,
                   date: str, embedder: Embedder | None = None,
                   nearest: Mapping[str, Sequence[MemoryRecord]] | None = None) -> UpdatePlan:
    """The update step: what ``facts`` change among the related ``old_records``.

    The model sees the old memories under small ids ("0", "1", ...); its ops are
    mapped back and validated by :func:`~memlora_engine.ops.plan_operations`. With
    no old memory and ``config.skip_update_when_empty``, every fact is an ADD and
    the model is not called. ``nearest`` gives, for each fact, the old memories
    nearest it (most similar first): with per-fact calls and
    ``config.update_context == "own"`` a fact's call lists only those. Without it
    (or with ``"shared"``) every call lists all of ``old_records``.

    Nothing is lost silently: an ADD of a text already stored is a NONE
    (``duplicates``), and a fact the output leaves without a decision is listed in
    ``uncovered`` and, by default, ADDed (``MemoryConfig.uncovered_facts``); first, a one-fact
    call's UPDATE that copies its memory's text is read as the UPDATE with the fact
    (:func:`~memlora_engine.ops.fact_into_unchanged_update`, ``MemoryConfig.unchanged_updates``). With an
    ``embedder``, a NONE is checked against the memory it names
    (:func:`~memlora_engine.ops.unsupported_nones`, ``MemoryConfig.none_min_similarity``), and
    an UPDATE or DELETE against its memory with the people's names masked
    (:func:`~memlora_engine.ops.unrelated_changes`, ``MemoryConfig.update_min_similarity``). Rejected ops,
    undecided facts and duplicates are counted in ``caller.stats["update"]``.

    Raises:
        ModelOutputError: the output is not an update object (``raw`` holds it); the
            caller applies nothing.
    """
    if not old_records and caller.config.skip_update_when_empty:
        return UpdatePlan([PlannedOp(Event.ADD, text=f) for f in dict.fromkeys(facts)])
    # One call per fact ("per_fact") asks the small model one question at a time.
    per_fact = caller.config.update_calls == "per_fact"
    groups = [[f] for f in dict.fromkeys(facts)] if per_fact else [list(facts)]
    if per_fact and nearest is not None and caller.config.update_context == "own":
        listings = [list(nearest.get(group[0], old_records)) for group in groups]
    else:
        listings = [list(old_records)] * len(groups)
    # Each call numbers its listing "0", "1", ...; the ops of all calls are checked
    # together against the real records (keyed "call:id"), so two facts changing one
    # memory is still a conflict, and the later fact is then undecided (ADDed by
    # default), never lost.
    id_map = {f"{call}:{i}": record for call, listing in enumerate(listings) for i, record in enumerate(listing)}
    # The calls are independent given their listings: a generator that runs batches
    # (SupportsBatchGeneration) decodes them together.
    generations = caller.call_many(
        Operation.UPDATE,
        [{"old_memories": _listing_json(listing), "facts": json.dumps(group, ensure_ascii=False), "date": date}
         for group, listing in zip(groups, listings, strict=True)],
    )
    raws = [generation.text for generation in generations]
    written = [parse_update_ops(raw) for raw in raws]
    restated = 0
    if caller.config.unchanged_updates == "fact":
        for call, (group, listing) in enumerate(zip(groups, listings, strict=True)):
            read = fact_into_unchanged_update(group[0], written[call], listing) if len(group) == 1 else None
            if read is not None:
                written[call] = read
                restated += 1
    keyed = [[op if op.id is None else replace(op, id=f"{call}:{op.id}") for op in ops]
             for call, ops in enumerate(written)]
    as_written = {id(k): op for k_ops, ops in zip(keyed, written, strict=True) for k, op in zip(k_ops, ops, strict=True)}
    outputs: list[tuple[list[str], list[RawOp]]] = list(zip(groups, keyed, strict=True))
    ops = [op for _, group_ops in outputs for op in group_ops]
    unrelated: list[Rejection] = []
    if embedder is not None and caller.config.update_min_similarity is not None:
        # Refused before planning, so that the memory stays free for another fact's op.
        unrelated = unrelated_changes(outputs, id_map, embedder, caller.config.update_min_similarity)
        refused = {id(r.op) for r in unrelated}
        ops = [op for op in ops if id(op) not in refused]
    planned, rejected = plan_operations(ops, id_map)
    rejected = unrelated + rejected
    threshold = caller.config.none_min_similarity
    if embedder is not None and threshold is not None:
        rejected += unsupported_nones(outputs, id_map, embedder, threshold)
    uncovered = [fact for group, group_ops in outputs
                 for fact in uncovered_facts(group, group_ops, id_map, rejected, asked_alone=len(group) == 1)]
    # A rejection reports the op as the model wrote it (its id as listed in its call).
    rejected = [Rejection(as_written[id(r.op)], r.reason) for r in rejected]
    if caller.config.uncovered_facts == "add":
        planned += [PlannedOp(Event.ADD, text=f) for f in uncovered]
    raw = "\n".join(raws)
    stored = {record.hash or text_hash(record.text) for record in old_records}
    kept: list[PlannedOp] = []
    for op in planned:
        if op.event is Event.ADD:
            digest = text_hash(op.text or "")
            if digest in stored:
                continue
            stored.add(digest)
        kept.append(op)
    plan = UpdatePlan(kept, rejected, uncovered, duplicates=len(planned) - len(kept), raw=raw)
    caller.stats.record_rejected(Operation.UPDATE, len(rejected))
    caller.stats.record_update_plan(uncovered=len(uncovered), duplicates=plan.duplicates, unchanged=restated)
    if rejected:
        logger.info("rejected %d update ops: %s", len(rejected), [r.reason for r in rejected])
    if uncovered:
        logger.info("%d fact(s) left undecided by the update output (%s): %s", len(uncovered),
                    caller.config.uncovered_facts, uncovered)
    return plan


def _listing_json(records: Sequence[MemoryRecord]) -> str:
    """The old memories as the update prompt lists them: ``[{"id": "0", "text": ...}, ...]``."""
    return json.dumps([{"id": str(i), "text": r.text} for i, r in enumerate(records)], ensure_ascii=False, indent=2)


def extraction_conversations(messages: Sequence[dict[str, Any]], window: int | None, budget: int | None, *,
                             every_turn_leads: bool = False, short_windows: str = "all",
                             stacklevel: int = 2) -> list[str]:
    """The rendered conversations the extraction step is called on, one call each.

    With ``window``, a conversation of more than ``window`` user and assistant messages
    is read in overlapping windows (messages ``i .. i + window - 1`` for each ``i``):
    every message beside its neighbours, as the extraction expert was trained on
    two-message windows. With ``every_turn_leads`` and two or more named speakers
    (messages with a ``name``), the last ``window - 1`` messages lead windows of
    their own too (shorter ones), so that every turn is the *first* of some window:
    the expert writes its facts about the first speaker of a window, and the
    second speaker's news is otherwise read only as a reply to the first.
    ``short_windows`` (``MemoryConfig.short_windows``): ``"all"`` reads every such
    shorter window, ``"first_person"`` only those whose leading message
    :func:`speaks_of_self`.
    ``budget`` (``max_conversation_chars``) bounds the messages read: the latest
    windows whose new messages fit it, with a warning when older ones are left out;
    a single window longer than it is cut by :func:`fit_conversation`. Without
    ``window`` (or with no more messages and no turn to lead), one conversation, cut
    to ``budget``. ``stacklevel`` is passed to :func:`warnings.warn` (2: the caller
    of this function).
    """
    kept = spoken_messages(messages)
    leads = every_turn_leads and window is not None and len(_named_speakers(kept)) >= 2
    if window is None or (len(kept) <= window and not leads):
        conversation = fit_conversation(render_conversation(kept), budget, stacklevel=stacklevel + 1)
        return [conversation] if conversation else []
    starts = list(range(max(len(kept) - window + 1, 1)))
    if leads:  # the shorter windows, each led by one of the last messages
        starts += [i for i in range(len(starts), len(kept))
                   if short_windows == "all" or speaks_of_self(str(kept[i]["content"]))]
    windows = [kept[i : i + window] for i in starts]
    chosen: list[list[dict[str, Any]]] = []
    used = 0
    for index in range(len(windows) - 1, -1, -1):  # newest first: a cut keeps the latest turns
        new = windows[index] if not chosen else windows[index][:1]  # the message this window adds
        used += len(render_conversation(new))
        if chosen and budget is not None and used > budget:
            read = len(kept) - starts[index + 1]
            warnings.warn(
                f"conversation of {len(kept)} messages exceeds max_conversation_chars={budget}; only its last "
                f"{read} messages are read for extraction", stacklevel=stacklevel)
            logger.warning("conversation cut from %d to %d messages for extraction", len(kept), read)
            break
        chosen.append(windows[index])
    return [fit_conversation(render_conversation(w), budget, stacklevel=stacklevel + 1) for w in reversed(chosen)]


def speaks_of_self(text: str) -> bool:
    """Whether ``text`` says something in the first person (I, me, my, we, us, our, ...; English)."""
    return FIRST_PERSON.search(text) is not None


def _named_speakers(messages: Sequence[dict[str, Any]]) -> set[str]:
    """The speakers' ``name`` fields in ``messages`` (LoCoMo's "Caroline" and "Melanie"; a plain chat has none)."""
    return {str(m["name"]) for m in messages if m.get("name")}


def fit_conversation(conversation: str, budget: int | None, *, stacklevel: int = 2) -> str:
    """Cut ``conversation`` to ``budget`` characters, keeping the latest turns (warns when it cuts).

    ``stacklevel`` is passed to :func:`warnings.warn` (2: the caller of this function).
    """
    if budget is None or len(conversation) <= budget:
        return conversation
    kept = conversation[-budget:]
    newline = kept.find("\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]  # start at a whole line when one fits
    warnings.warn(
        f"conversation of {len(conversation)} characters exceeds max_conversation_chars={budget}; "
        f"only its last {len(kept)} characters are sent for extraction",
        stacklevel=stacklevel,
    )
    logger.warning("conversation cut from %d to %d characters for extraction", len(conversation), len(kept))
    return kept
