"""Distillation data: run the engine with teachers on LoCoMo conversations and keep every call.

Per conversation, a fresh :class:`~memlora_engine.Memory` (real in-memory Chroma, the
chosen embedder, MemLoRA prompts) ingests the sessions two turns per ``add`` with the
speakers' names and the session time -- exactly as the evaluation harness does -- and
a :class:`~memlora_engine.teachers.TeacherGenerator` answers its model calls:

* extraction calls -> the extraction teacher (default: LoCoMo's observations of the
  window, :class:`~memlora_engine.training.signals.ObservationTeacher`);
* update calls -> the update teacher (default: the rule labeler), against the top-k old
  memories the engine itself retrieved, under its small integer ids;
* then every answerable question (categories 1-4) goes through ``Memory.answer`` over the
  teacher-built memory bank -> the generation teacher (default: the ground-truth answer).

Every call becomes one example ``{"messages", "target", "raw", ...}``: the prompt exactly
as the engine renders it, and the cleaned teacher answer
(:func:`~memlora_engine.training.cleaning.clean_output`). Examples are cached as JSONL,
one file per operation and conversation, written when the conversation finishes; a
rerun skips finished conversations, and a real teacher wrapped in
:class:`~memlora_engine.teachers.CachedTeacher` replays its answers.

LoCoMo is CC BY-NC: the cache quotes it, so keep it out of repositories (the default
directory is under the user cache).
"""

from __future__ import annotations

import json
import logging
import os
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memlora_engine.config import ALWAYS_GENERATE, MemoryConfig
from memlora_engine.data.locomo import Conversation, Observation
from memlora_engine.data.windows import session_windows, window_messages
from memlora_engine.embeddings.base import CachedEmbedder, Embedder
from memlora_engine.errors import ConfigError, ModelOutputError
from memlora_engine.operations import TRAINED_OPERATIONS
from memlora_engine.teachers import Teacher, TeacherCall, TeacherGenerator
from memlora_engine.training.cleaning import clean_output, prompt_values
from memlora_engine.training.outcome import OutcomeCheckedTeacher, OutcomeCheckReport
from memlora_engine.training.signals import SignalTeacher, UpdateLabeler
from memlora_engine.types import Operation

__all__ = [
    "TRAINED_OPERATIONS",
    "CachedEmbedder",
    "DistillReport",
    "build_distillation_data",
    "call_chars",
    "listing_settings",
    "load_examples",
    "record_in_manifest",
    "replay_conversation",
    "window_facts",
    "window_observations",
]

logger = logging.getLogger(__name__)

_STYLE = "memlora"


def call_chars(messages: Sequence[Mapping[str, Any]], target: str) -> int:
    """Prompt + target characters of one example (what the generated data sets' ``max_chars`` bounds)."""
    return sum(len(str(m["content"])) for m in messages) + len(target)


def listing_settings(config: MemoryConfig) -> dict[str, Any]:
    """The settings of ``config`` that shape a generation prompt's memory listing.

    How many memories are listed, how many are followed by their turn, and whether they
    are dated: a generation example is in the format of these settings, so a distillation
    cache records them and refuses to mix two formats.
    """
    return {"answer_top_k": config.answer_top_k, "answer_turns": config.answer_turns,
            "dated_memories": config.dated_memories}


# What a cache written before its manifest recorded "listing" holds: ten memories, no turns.
_UNRECORDED_LISTING = {"answer_top_k": 10, "answer_turns": 0}


def record_in_manifest(out_dir: str | os.PathLike[str], section: str, operation: Operation,
                       entry: Mapping[str, Any]) -> None:
    """Record a generated data set's settings in the cache's ``manifest.json`` as ``section`` -> ``operation``.

    The manifest is read, changed and written back whole (other sections and other
    operations of ``section`` are kept); ``memlora train --with-...`` copies the entry
    into the adapter card.
    """
    manifest_path = Path(out_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    manifest.setdefault(section, {})[operation.value] = dict(entry)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def window_observations(conversation: Conversation) -> dict[tuple[str, ...], list[Observation]]:
    """The observations of each two-turn window (keyed by the window's dia_ids), in file order.

    An observation belongs to the window holding its *last* evidence turn (when the
    fact is complete); most have a single evidence turn. Observations without valid
    evidence, or with no text, are left out, and a text is kept once per window.
    Windows without observations map to ``[]``.
    """
    position: dict[str, tuple[str, ...]] = {}
    windows: dict[tuple[str, ...], list[Observation]] = {}
    texts: dict[tuple[str, ...], set[str]] = {}
    order: dict[str, int] = {}
    for session in conversation.sessions:
        for turns in session_windows(session):
            key = tuple(t.dia_id for t in turns)
            windows[key], texts[key] = [], set()
            for t in turns:
                position[t.dia_id] = key
                order[t.dia_id] = len(order)
    for obs in conversation.observations:
        known = [e for e in obs.evidence if e in position]
        if not known:
            continue
        key = position[max(known, key=order.__getitem__)]
        text = " ".join(obs.text.split())
        if text and text not in texts[key]:
            texts[key].add(text)
            windows[key].append(obs)
    return windows


def window_facts(conversation: Conversation) -> dict[tuple[str, ...], list[str]]:
    """Observation facts per two-turn window (see :func:`window_observations`), whitespace-normalised."""
    return {key: [" ".join(o.text.split()) for o in observations]
            for key, observations in window_observations(conversation).items()}


def _set_current(teacher: Teacher | None, value: Any) -> None:
    # The offline signal teachers answer what the builder sets; real teachers ignore it.
    if isinstance(teacher, SignalTeacher):
        teacher.current = value


def _example(call: TeacherCall, conversation: str, number: int) -> dict[str, Any]:
    new_facts = None
    if call.operation is Operation.UPDATE:
        new_facts = json.loads(prompt_values(_STYLE, Operation.UPDATE, call.messages)["facts"])
    target = clean_output(call.operation, call.output, new_facts=new_facts)
    return {
        "id": f"{conversation}/{call.operation.value}/{number}",
        "operation": call.operation.value,
        "conversation": conversation,
        "messages": call.messages,
        "target": target,
        "raw": call.output,
        "context": call.context,
    }


@dataclass
class DistillReport:
    """Counts per operation: examples kept, teacher answers that could not be cleaned.

    ``outcome_check`` holds an outcome-checked update teacher's counts for the replay
    (:class:`~memlora_engine.training.outcome.OutcomeCheckReport`), None without one.
    """

    examples: dict[str, int] = field(default_factory=dict)
    unusable: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    outcome_check: OutcomeCheckReport | None = None

    def merge(self, other: DistillReport) -> None:
        for mine, theirs in ((self.examples, other.examples), (self.unusable, other.unusable),
                             (self.events, other.events)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        if other.outcome_check is not None:
            if self.outcome_check is None:
                self.outcome_check = OutcomeCheckReport()
            self.outcome_check.merge(other.outcome_check)


def replay_conversation(
    conversation: Conversation,
    teachers: Mapping[Operation | str, Teacher],
    embedder: Embedder,
    *,
    captions: bool = True,
    update_top_k: int = 5,
    limit_sessions: int | None = None,
    listing: MemoryConfig | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], DistillReport]:
    """Run one conversation through the engine with ``teachers``; return examples per operation.

    Questions are asked at the time of the last ingested session, as the harness does;
    category-5 (adversarial) questions and questions without an answer are skipped.
    The generation prompts list the memories as the engine does with ``listing``'s
    :func:`listing_settings` (default ``MemoryConfig()``'s: the engine's own format).
    An :class:`~memlora_engine.training.outcome.OutcomeCheckedTeacher` as the update
    teacher is told, before each window, the memories stored and the questions that can
    judge its decisions (its report counts the labels it changed).
    """
    from memlora_engine.memory import Memory

    teacher_map = {Operation(k): v for k, v in teachers.items()}
    generator = TeacherGenerator(teacher_map)
    if not isinstance(embedder, CachedEmbedder):
        embedder = CachedEmbedder(embedder)
        labeler = teacher_map.get(Operation.UPDATE)
        if isinstance(labeler, (UpdateLabeler, OutcomeCheckedTeacher)):
            labeler.embedder = embedder
    embedder.prime([" ".join(o.text.split()) for o in conversation.observations] + [q.question.strip() for q in conversation.qa])
    config = MemoryConfig(store="memory", namespace=f"distill-{uuid.uuid4().hex[:12]}", prompt_style=_STYLE,
                          update_top_k=update_top_k, **listing_settings(listing or MemoryConfig()),
                          # every question is a generation example: no date answers, no declines
                          **ALWAYS_GENERATE,
                          # one extraction example per two-turn window: the teacher's targets are the window's facts
                          speaker_windows=False)
    scope = f"locomo-{conversation.sample_id}"
    report = DistillReport()
    facts_by_window = window_facts(conversation)
    sessions = conversation.sessions[:limit_sessions]
    outcome = teacher_map.get(Operation.UPDATE)
    if isinstance(outcome, OutcomeCheckedTeacher):
        outcome.report = report.outcome_check = OutcomeCheckReport()  # this replay's counts
    checkable = [qa for qa in conversation.qa if qa.category != 5 and qa.answer and qa.evidence]
    seen: set[str] = set()
    with Memory(config, generator=generator, embedder=embedder) as memory:
        for session in sessions:
            for turns in session_windows(session):
                key = tuple(t.dia_id for t in turns)
                _set_current(teacher_map.get(Operation.EXTRACTION), facts_by_window.get(key, []))
                seen.update(key)
                if isinstance(outcome, OutcomeCheckedTeacher):
                    # A decision made now is judged by the questions of this session whose
                    # evidence has all been seen by now.
                    outcome.focus(lambda: [r.text for r in memory.get_all(user_id=scope)],
                                  [qa for qa in checkable
                                   if session.index in qa.evidence_sessions and set(qa.evidence) <= seen],
                                  session.date_time)
                generator.context = {"session": session.index, "dia_ids": list(key)}
                result = memory.add(window_messages(conversation, turns, captions=captions), user_id=scope,
                                    timestamp=session.date_time)
                for event in result.events:
                    report.events[event.event.value] = report.events.get(event.event.value, 0) + 1
        if Operation.GENERATION in teacher_map:
            stamps = [s.date_time for s in sessions if s.date_time is not None]
            when: datetime | None = stamps[-1] if stamps else None
            kept = {s.index for s in sessions}
            for qa in conversation.qa:
                if qa.category == 5 or not qa.reference or (limit_sessions is not None and not (
                        qa.evidence and qa.evidence_sessions <= kept)):
                    continue
                _set_current(teacher_map[Operation.GENERATION], qa.reference)
                generator.context = {"question_index": qa.index, "category": qa.category}
                memory.answer(qa.question, user_id=scope, timestamp=when)
        memory.delete_all(user_id=scope)
    examples: dict[str, list[dict[str, Any]]] = {op.value: [] for op in teacher_map}
    for call in generator.calls:
        bucket = examples.setdefault(call.operation.value, [])
        try:
            bucket.append(_example(call, conversation.sample_id, len(bucket)))
        except (ModelOutputError, ValueError) as exc:
            report.unusable[call.operation.value] = report.unusable.get(call.operation.value, 0) + 1
            logger.info("unusable %s teacher output skipped: %s", call.operation.value, exc)
    report.examples = {op: len(items) for op, items in examples.items()}
    return examples, report


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def build_distillation_data(
    conversations: Sequence[Conversation],
    teachers: Mapping[Operation | str, Teacher],
    embedder: Embedder,
    out_dir: str | Path,
    *,
    captions: bool = True,
    limit_sessions: int | None = None,
    listing: MemoryConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build (or resume) the JSONL cache ``<out_dir>/<operation>/<sample_id>.jsonl``.

    A conversation whose files exist is skipped (delete them to rebuild). Writes and
    returns ``<out_dir>/manifest.json``: teachers, embedder, prompt version, the
    generation prompts' listing (``listing``'s :func:`listing_settings`, default
    ``MemoryConfig()``'s) and counts.

    Raises:
        ConfigError: the cache's generation prompts list memories otherwise (its
            ``"listing"``; a cache that does not record one lists ten memories without
            turns): distill into a fresh ``out_dir``.
    """
    from memlora_engine.prompts import PROMPT_VERSION

    out = Path(out_dir)
    ops = [Operation(k) for k in teachers]
    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    wanted = listing_settings(listing or MemoryConfig())
    if manifest.get("conversations"):
        cached = manifest.get("listing") or {
            **_UNRECORDED_LISTING, "dated_memories": bool(manifest.get("dated_memories", False))}
        if cached != wanted:
            raise ConfigError(f"{out} holds generation prompts listed with {cached}; distill {wanted} "
                              "into a fresh directory")
    manifest.pop("dated_memories", None)  # recorded in "listing" since session 31
    manifest.update({
        "listing": wanted,
        "prompt_style": _STYLE,
        "prompt_version": PROMPT_VERSION,
        "teachers": {Operation(k).value: t.name for k, t in teachers.items()},
        "embedder": getattr(embedder, "name", type(embedder).__name__),
        "captions": captions,
        "limit_sessions": limit_sessions,
    })
    counts: dict[str, Any] = manifest.setdefault("conversations", {})
    for conversation in conversations:
        paths = {op: out / op.value / f"{conversation.sample_id}.jsonl" for op in ops}
        if all(p.exists() for p in paths.values()) and conversation.sample_id in counts:
            if progress:
                progress(f"{conversation.sample_id}: cached")
            continue
        examples, report = replay_conversation(conversation, teachers, embedder, captions=captions,
                                               limit_sessions=limit_sessions, listing=listing)
        for op, path in paths.items():
            _write_jsonl(path, examples.get(op.value, []))
        counts[conversation.sample_id] = {"examples": report.examples, "unusable": report.unusable,
                                          "events": report.events}
        if report.outcome_check is not None:
            checked = report.outcome_check.to_dict()
            _write_jsonl(out / Operation.UPDATE.value / f"{conversation.sample_id}.outcome-changes.jsonl",
                         checked.pop("changes"))
            counts[conversation.sample_id]["outcome_check"] = checked
        out.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        if progress:
            progress(f"{conversation.sample_id}: {report.examples} (unusable {report.unusable}, events {report.events})")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return manifest


def load_examples(data_dir: str | Path, operation: Operation | str, conversations: Iterable[str]) -> list[dict[str, Any]]:
    """The cached examples of ``operation`` for the given conversation ids, in order.

    Raises:
        FileNotFoundError: a conversation was not distilled (run ``memlora distill``).
    """
    op = Operation(operation)
    records: list[dict[str, Any]] = []
    for sample_id in conversations:
        path = Path(data_dir) / op.value / f"{sample_id}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"no {op.value} data for {sample_id} in {data_dir}: run `memlora distill` first")
        records.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return records


def is_empty_extraction(record: dict[str, Any]) -> bool:
    """True for an extraction example whose target lists no fact."""
    if record.get("operation", Operation.EXTRACTION.value) != Operation.EXTRACTION.value:
        return False
    try:
        return json.loads(record["target"]).get("facts") == []
    except (ValueError, AttributeError):
        return False


def cap_empty_share(records: Sequence[dict[str, Any]], max_share: float, seed: int = 0) -> list[dict[str, Any]]:
    """Keep every example with facts and a seeded sample of the empty ones, at most ``max_share`` of the result.

    LoCoMo's observations leave about 4 windows in 10 without a fact, and the fact/no-fact
    decision is one token of the target: trained on the natural mix, a small model learns
    the prior ``{"facts": []}`` before it learns when to extract. Order is kept.
    """
    if not 0.0 <= max_share < 1.0:
        raise ValueError(f"max_share must be in [0, 1), got {max_share}")
    empty = [i for i, r in enumerate(records) if is_empty_extraction(r)]
    full = len(records) - len(empty)
    allowed = int(max_share * full / (1.0 - max_share))
    if len(empty) <= allowed:
        return list(records)
    dropped = set(empty) - set(random.Random(seed).sample(empty, allowed))
    return [r for i, r in enumerate(records) if i not in dropped]
