"""Multi-fact extraction windows: longer extraction calls whose target lists every fact.

The distilled extraction examples are LoCoMo's two-turn windows with that window's
``observation`` facts as the target (:func:`~memlora_engine.training.data.window_facts`);
about four windows in ten hold no fact and most of the rest one, so the expert learns
to answer one fact per call. A chatbot user often says several things in one session
(``memlora demo``: a city, a job, a pet and a diet), and the expert keeps one of them.

This module joins 2-4 consecutive windows of one session (4-8 turns, one date) into
one extraction call, from the dev *training* conversations only (never the validation
or test conversation of :data:`~memlora_engine.data.splits.DEV_SPLITS`), no new model
call needed:

* ``windows`` variant -- the turns of both speakers, verbatim; the target is the union
  of the windows' observation facts, in order (a text once);
* ``speaker`` variant -- one speaker's turns of those windows only, verbatim (closer
  to a chatbot user who says several things; turns are never merged or rewritten, so
  no text is invented); the target keeps the windows' observations resting on the
  kept turns (the other speaker's facts are left out, counted as
  ``speaker_dropped_facts``), and a run holding a fact that rests on a kept turn *and*
  another one (the other speaker's question, an earlier turn) is not used for a
  ``speaker`` call: its target could be neither complete nor grounded.

Every prompt is the one the engine renders: each call goes through a real
:class:`~memlora_engine.Memory` (``add`` with the turns of
:func:`~memlora_engine.data.windows.window_messages` and the session time, as the
distillation replay does), whose extraction call is recorded and answered
``{"facts": []}`` so nothing else runs. Targets go through
:func:`~memlora_engine.training.cleaning.clean_output`, like distilled examples.

Windows without a fact stay in: inside a call (a chit-chat stretch between facts) and
as whole calls whose union is empty (``{"facts": []}``); the statistics report that
share. Calls mentioning ``memlora demo``'s story
(:func:`~memlora_engine.training.synthetic_update.demo_free`) are skipped.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.data.locomo import Conversation, Observation, Session, Turn
from memlora_engine.data.splits import require_training
from memlora_engine.data.windows import session_windows, window_messages
from memlora_engine.embeddings.hashing import HashingEmbedder
from memlora_engine.errors import ConfigError
from memlora_engine.generator import ChatMessage
from memlora_engine.store.in_memory import InMemoryStore
from memlora_engine.teachers import TeacherGenerator
from memlora_engine.training.cleaning import clean_output, dump_json
from memlora_engine.training.data import call_chars, record_in_manifest, window_observations
from memlora_engine.training.signals import ObservationTeacher
from memlora_engine.training.synthetic_update import demo_free
from memlora_engine.types import Operation

__all__ = [
    "MULTI_FACT_ID",
    "VARIANTS",
    "WINDOWS_PER_CALL",
    "ExtractionRenderer",
    "MultiFactExamples",
    "facts_distribution",
    "generate_multi_fact_examples",
    "write_multi_fact_windows",
]

MULTI_FACT_ID = "multi-fact-windows"
"""The pseudo-conversation id of the examples (``<data>/extraction/multi-fact-windows.jsonl``)."""

WINDOWS_PER_CALL = (2, 3, 4)
"""How many consecutive two-turn windows one call joins."""

VARIANTS = ("windows", "speaker")

_STYLE = "memlora"
_SCOPE = "multi-fact"


@dataclass
class MultiFactExamples:
    """The examples drawn and what was left out on the way.

    Attributes:
        examples: distillation-format records (``messages``, ``target``, ``raw``, ``context``).
        candidates: runs of consecutive windows there were to draw from.
        skipped: candidates not used, per reason (``demo_story``, ``too_long``,
            ``speaker_few_turns``: the speaker has fewer than two turns there,
            ``speaker_partial_fact``: a fact rests on a kept turn and on another one,
            ``no_text``: the engine made no extraction call).
        speaker_dropped_facts: observations a ``speaker`` example left out because
            they rest on the other speaker's turns only.
    """

    examples: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    speaker_dropped_facts: int = 0


@dataclass(frozen=True)
class _Run:
    """``size`` consecutive windows of one session, from window ``start``."""

    conversation: Conversation
    session: Session
    windows: tuple[tuple[Turn, ...], ...]


class ExtractionRenderer:
    """Renders extraction calls through a real :class:`~memlora_engine.Memory`.

    The recorded teacher answers ``{"facts": []}``, so ``add`` stops after extraction
    (no update call, nothing stored); the call's messages are the prompt.
    """

    def __init__(self, captions: bool) -> None:
        from memlora_engine.memory import Memory

        self.captions = captions
        self.generator = TeacherGenerator({Operation.EXTRACTION: ObservationTeacher()})
        config = MemoryConfig(store="memory", namespace=f"multi-fact-{uuid.uuid4().hex[:12]}", prompt_style=_STYLE,
                              extraction_window=None)  # one call per run of windows: the multi-fact format
        # Nothing is ever stored (extraction answers no fact): the pure-Python store spares Chroma's start-up.
        self.memory = Memory(config, generator=self.generator, embedder=HashingEmbedder(), store=InMemoryStore())

    def render(self, conversation: Conversation, turns: Sequence[Turn], session: Session) -> list[ChatMessage] | None:
        """The extraction prompt of ``turns`` (None when the engine makes no call: no text)."""
        return self.render_messages(window_messages(conversation, turns, captions=self.captions), session)

    def render_messages(self, messages: list[dict[str, Any]], session: Session) -> list[ChatMessage] | None:
        """The extraction prompt of ``messages`` added at the session's time (None: no call, no text)."""
        before = len(self.generator.calls)
        self.memory.add(messages, user_id=_SCOPE, timestamp=session.date_time)
        if len(self.generator.calls) == before:
            return None
        return self.generator.calls[-1].messages

    def close(self) -> None:
        self.memory.close()


def _runs(conversations: Iterable[Conversation]) -> list[_Run]:
    """Every run of 2-4 consecutive windows of a dated session, in file order."""
    runs = []
    for conversation in conversations:
        for session in conversation.sessions:
            if session.date_time is None:  # the engine would date it "now": not reproducible
                continue
            windows = tuple(session_windows(session))
            for size in WINDOWS_PER_CALL:
                for start in range(len(windows) - size + 1):
                    runs.append(_Run(conversation, session, windows[start : start + size]))
    return runs


def generate_multi_fact_examples(conversations: Sequence[Conversation], count: int, *, seed: int = 0,
                                 speaker_share: float = 0.25, max_chars: int = 2000,
                                 captions: bool = True) -> MultiFactExamples:
    """Up to ``count`` multi-fact extraction examples (fewer when the runs run out).

    Each run of consecutive windows is used at most once, by one variant: runs are
    shuffled, and each becomes a ``speaker`` example with probability
    ``speaker_share`` (while that variant's quota, ``round(count * speaker_share)``,
    is open), else a ``windows`` example.

    Args:
        conversations: dev *training* conversations (with observations).
        count: how many examples (calls) to write.
        seed: the same seed, conversations and count give the same examples.
        speaker_share: the share of ``speaker`` examples.
        max_chars: prompt + target characters per example; longer runs are skipped
            (2000 keeps an example within the trainer's default ``--max-length 512``
            tokens of gemma-3-270m; see docs/training.md).
        captions: photo captions in the turns, as ``memlora distill`` (default) renders them.

    Raises:
        ConfigError: a validation or test conversation of the dev split was given, or a
            share outside [0, 1].
    """
    require_training(conversations, "the multi-fact window data")
    if not 0.0 <= speaker_share <= 1.0:
        raise ConfigError(f"speaker_share must be in [0, 1], got {speaker_share}")
    runs = _runs(conversations)
    result = MultiFactExamples(candidates=len(runs))
    observations = {c.sample_id: window_observations(c) for c in conversations}
    quota = {"speaker": round(count * speaker_share)}
    quota["windows"] = count - quota["speaker"]
    made: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    rng = random.Random(seed)
    rng.shuffle(runs)
    renderer = ExtractionRenderer(captions)
    try:
        for run in runs:
            if len(result.examples) >= count:
                break
            variant = "speaker" if rng.random() < speaker_share else "windows"
            if made[variant] >= quota[variant]:
                variant = "windows" if variant == "speaker" else "speaker"
            speaker = rng.choice([run.conversation.speaker_a, run.conversation.speaker_b])
            example, reason, dropped = _example(renderer, run, observations[run.conversation.sample_id],
                                                variant, speaker, max_chars, len(result.examples))
            if example is None:
                skipped[reason] += 1
                continue
            made[variant] += 1
            result.speaker_dropped_facts += dropped
            result.examples.append(example)
    finally:
        renderer.close()
    result.skipped = dict(sorted(skipped.items()))
    return result


def _example(renderer: ExtractionRenderer, run: _Run, observations: dict[tuple[str, ...], list[Observation]], variant: str,
             speaker: str, max_chars: int, number: int) -> tuple[dict[str, Any] | None, str, int]:
    """One example of ``run`` (or None and why), and the facts a speaker example left out."""
    turns = [t for window in run.windows for t in window]
    in_run = [o for window in run.windows for o in observations[tuple(t.dia_id for t in window)]]
    dropped = 0
    if variant == "speaker":
        kept = [t for t in turns if t.speaker == speaker]
        if len(kept) < 2:
            return None, "speaker_few_turns", 0
        kept_ids = {t.dia_id for t in kept}
        valid = run.conversation.dia_ids
        mine = [o for o in in_run if any(e in kept_ids for e in o.evidence)]
        # A fact stated in a kept turn but resting on another turn too (the other speaker's
        # question, an earlier turn) would be half there: left out, it would teach the expert
        # to drop what the turn says; kept, to invent the rest. The run is not used.
        if any(e not in kept_ids for o in mine for e in o.evidence if e in valid):
            return None, "speaker_partial_fact", 0
        dropped = len(in_run) - len(mine)  # facts resting on the other speaker's turns only
        in_run, turns = mine, kept
    facts = list(dict.fromkeys(" ".join(o.text.split()) for o in in_run))
    raw = dump_json({"facts": facts})
    target = clean_output(Operation.EXTRACTION, raw)
    messages = renderer.render(run.conversation, turns, run.session)
    if messages is None:
        return None, "no_text", 0
    if not demo_free(json.dumps(messages, ensure_ascii=False) + raw):  # the turns, names, captions and facts
        return None, "demo_story", 0
    if call_chars(messages, target) > max_chars:
        return None, "too_long", 0
    return {
        "id": f"{MULTI_FACT_ID}/{Operation.EXTRACTION.value}/{number}",
        "operation": Operation.EXTRACTION.value,
        "conversation": MULTI_FACT_ID,
        "messages": messages,
        "target": target,
        "raw": raw,
        "context": {"source": run.conversation.sample_id, "session": run.session.index,
                    "dia_ids": [t.dia_id for t in turns], "windows": len(run.windows), "variant": variant,
                    "speaker": speaker if variant == "speaker" else None},
    }, "", dropped


def facts_distribution(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Facts per extraction call: counts, the empty (``{"facts": []}``) share and the mean."""
    per_call = Counter(len(json.loads(r["target"])["facts"]) for r in records)
    facts = sum(k * n for k, n in per_call.items())
    return {
        "examples": len(records),
        "facts": facts,
        "facts_per_call": {str(k): per_call[k] for k in sorted(per_call)},
        "empty_share": round(per_call[0] / len(records), 3) if records else 0.0,
        "mean_facts_per_call": round(facts / len(records), 2) if records else 0.0,
    }


def write_multi_fact_windows(out_dir: str | Path, conversations: Sequence[Conversation], count: int, *,
                             seed: int = 0, speaker_share: float = 0.25, max_chars: int = 2000,
                             captions: bool = True) -> dict[str, Any]:
    """Write up to ``count`` multi-fact examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/extraction/multi-fact-windows.jsonl`` (read by the trainer like
    a conversation's file: ``memlora train extraction --with-multi-fact``), the
    statistics to ``<out_dir>/extraction/multi-fact-windows.stats.json`` and into
    ``manifest.json`` (``"synthetic"`` -> ``"extraction"``). The statistics include
    the mix with the cached two-turn extraction examples of the same conversations
    when they are in the cache.
    """
    out = Path(out_dir)
    drawn = generate_multi_fact_examples(conversations, count, seed=seed, speaker_share=speaker_share,
                                         max_chars=max_chars, captions=captions)
    examples = drawn.examples
    path = out / Operation.EXTRACTION.value / f"{MULTI_FACT_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in examples), encoding="utf-8")
    cached: list[dict[str, Any]] = []
    cached_ids = []
    for conversation in conversations:
        source = out / Operation.EXTRACTION.value / f"{conversation.sample_id}.jsonl"
        if source.exists():
            cached_ids.append(conversation.sample_id)
            cached.extend(json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
    stats = {
        "count": len(examples), "requested": count, "seed": seed, "speaker_share": speaker_share,
        "max_chars": max_chars, "captions": captions, "conversations": [c.sample_id for c in conversations],
        "candidates": drawn.candidates, "skipped": drawn.skipped,
        "variants": dict(Counter(str(r["context"]["variant"]) for r in examples)),
        "windows_per_call": {str(k): v for k, v in sorted(Counter(int(r["context"]["windows"]) for r in examples).items())},
        "turns_per_call": {str(k): v for k, v in sorted(Counter(len(r["context"]["dia_ids"]) for r in examples).items())},
        "speaker_dropped_facts": drawn.speaker_dropped_facts,
        "synthetic": facts_distribution(examples),
        "locomo_cached": cached_ids,
        "locomo": facts_distribution(cached),
        "mix": facts_distribution([*cached, *examples]),
    }
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "synthetic", Operation.EXTRACTION, {
        k: stats[k] for k in ("count", "seed", "speaker_share", "max_chars", "captions", "conversations")})
    return stats
