"""Unanswerable generation examples: the target is :data:`~memlora_engine.answering.NOT_IN_MEMORY`.

Distilled generation examples all have an answer (the ground truth of a category
1-4 question), so the generation expert learns to answer every question, and
LoCoMo's category 5 (questions the conversation does not answer) scores 0. This
module writes generation calls whose retrieved memories do not support an answer
and whose target is the fixed phrase ``"No information available."``, from the dev
*training* conversations only (never the validation or test conversation of
:data:`~memlora_engine.data.splits.DEV_SPLITS`). Two kinds:

* ``adversarial`` -- a LoCoMo category-5 question of the conversation, asked
  against the conversation's own memory. These questions ask about something the
  conversation never says, usually an event of the *other* speaker ("What did Ben
  realise after his race?" when Ana ran it): the retrieved memories are close in
  words and still do not answer.
* ``other_conversation`` -- an answerable question (categories 1-4) of one training
  conversation asked against the memory of another one that shares no speaker's
  name with it (three training conversations have a "John"): other people, other
  events. Retrieval brings the closest memories, which do not answer.

The memory is each conversation's LoCoMo ``observation`` facts, written at their
session's time (:func:`~memlora_engine.data.memories.observation_memory`:
model-free, the facts the extraction teacher distils). Every call is made by
:meth:`Memory.answer <memlora_engine.Memory.answer>` at the time of the memory's
last session with a recording teacher, so the prompt is the engine's exactly
(``answer_top_k``, ``answer_turns``, ``search_mode`` and ``dated_memories`` of the
:class:`~memlora_engine.MemoryConfig` given). Targets go through
:func:`~memlora_engine.training.cleaning.clean_output`, like distilled examples.

How many to add is the trainer's choice; LoCoMo's own share of category 5 is
about a fifth of its questions, and the false-refusal rate on categories 1-4 is
the measure that says when there are too many (``docs/training.md``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from memlora_engine.answering import NOT_IN_MEMORY
from memlora_engine.config import ALWAYS_GENERATE, MemoryConfig
from memlora_engine.data.locomo import QA, Conversation
from memlora_engine.data.splits import require_training
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import ConfigError
from memlora_engine.teachers import TeacherGenerator
from memlora_engine.training.cleaning import clean_output
from memlora_engine.training.data import listing_settings, record_in_manifest
from memlora_engine.training.signals import ReferenceAnswerTeacher
from memlora_engine.types import Operation

__all__ = ["KINDS", "UNANSWERABLE_ID", "generate_unanswerable_examples", "write_unanswerable"]

UNANSWERABLE_ID = "unanswerable"
"""The pseudo-conversation id of these examples (``<data>/generation/unanswerable.jsonl``)."""

KINDS = ("adversarial", "other_conversation")
"""The kinds of unanswerable example (see the module docstring)."""


def _last_time(conversation: Conversation) -> datetime | None:
    stamps = [s.date_time for s in conversation.sessions if s.date_time is not None]
    return stamps[-1] if stamps else None


@dataclass(frozen=True)
class _Draw:
    kind: str
    question: QA
    source: str  # the question's conversation
    memory: Conversation  # the conversation whose memory is searched


def _speakers(conversation: Conversation) -> set[str]:
    return {conversation.speaker_a.lower(), conversation.speaker_b.lower()}


def _draw(rng: random.Random, conversations: Sequence[Conversation], count: int,
          adversarial_share: float) -> list[_Draw]:
    """``count`` draws: adversarial ones up to their share (as many as there are), the rest other_conversation."""
    adversarial = [_Draw("adversarial", qa, c.sample_id, c)
                   for c in conversations for qa in c.qa if qa.category == 5 and qa.question.strip()]
    rng.shuffle(adversarial)
    chosen = adversarial[:min(round(count * adversarial_share), len(adversarial))]
    strangers = {c.sample_id: [m for m in conversations if not _speakers(m) & _speakers(c)] for c in conversations}
    answerable = [(qa, c) for c in conversations for qa in c.qa
                  if qa.category in (1, 2, 3, 4) and qa.question.strip() and strangers[c.sample_id]]
    if len(chosen) < count and not answerable:
        raise ConfigError(f"only {len(chosen)} unanswerable examples can be drawn from "
                          f"{[c.sample_id for c in conversations]}: the other_conversation kind needs two "
                          "training conversations with questions and no speaker in common")
    rng.shuffle(answerable)
    for number in range(count - len(chosen)):  # cycles over the questions, each time against a random other memory
        qa, source = answerable[number % len(answerable)]
        chosen.append(_Draw("other_conversation", qa, source.sample_id, rng.choice(strangers[source.sample_id])))
    rng.shuffle(chosen)
    return chosen


def generate_unanswerable_examples(
    conversations: Sequence[Conversation], count: int, embedder: Embedder, *, seed: int = 0,
    adversarial_share: float = 0.5, config: MemoryConfig | None = None,
) -> list[dict[str, Any]]:
    """``count`` generation examples whose memories do not support an answer, target :data:`NOT_IN_MEMORY`.

    Args:
        conversations: dev *training* conversations (with observations and questions).
        count: how many examples to write.
        embedder: the memory's embedder (the engine's default for real data).
        seed: the same seed, conversations, count and embedder give the same examples.
        adversarial_share: the share of ``adversarial`` examples (as many as there
            are category-5 questions at most); the rest are ``other_conversation``.
        config: the engine settings the prompt follows (``answer_top_k``,
            ``answer_turns``, ``dated_memories``, ``search_mode``); default ``MemoryConfig()``'s.

    Raises:
        ConfigError: a validation or test conversation of the dev split, a
            ``count`` < 1, a share outside [0, 1], or too few questions to draw from.
    """
    from memlora_engine.data.memories import RetrievalTarget, observation_memory

    conversations = list(conversations)
    require_training(conversations, "unanswerable training data")
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}")
    if not 0.0 <= adversarial_share <= 1.0:
        raise ConfigError(f"adversarial_share must be in [0, 1], got {adversarial_share}")
    settings = config or MemoryConfig()
    draws = _draw(random.Random(seed), conversations, count, adversarial_share)
    teacher = ReferenceAnswerTeacher()
    teacher.current = NOT_IN_MEMORY
    generator = TeacherGenerator({Operation.GENERATION: teacher})
    memories: dict[str, RetrievalTarget] = {}
    examples: list[dict[str, Any]] = []
    try:
        for number, draw in enumerate(draws):
            target = memories.get(draw.memory.sample_id)
            if target is None:
                # Every question must reach the generation call it is an example of: no declines, no date answers.
                target = observation_memory(draw.memory, embedder, search_mode=settings.search_mode,
                                            **ALWAYS_GENERATE, **listing_settings(settings))
                target.memory.generator = generator
                memories[draw.memory.sample_id] = target
            generator.context = {"kind": draw.kind, "source": draw.source, "memory": draw.memory.sample_id,
                                 "question_index": draw.question.index, "category": draw.question.category}
            answer = target.memory.answer(draw.question.question, user_id=target.scope,
                                          timestamp=_last_time(draw.memory))
            call = generator.calls.pop()
            examples.append({
                "id": f"{UNANSWERABLE_ID}/{Operation.GENERATION.value}/{number}",
                "operation": Operation.GENERATION.value,
                "conversation": UNANSWERABLE_ID,
                "messages": call.messages,
                "target": clean_output(Operation.GENERATION, call.output),
                "raw": call.output,
                "context": {**call.context, "memories": len(answer.memories)},
            })
    finally:
        for target in memories.values():
            target.memory.close()
    return examples


def write_unanswerable(out_dir: str | Path, conversations: Sequence[Conversation], count: int,
                       embedder: Embedder, *, seed: int = 0, adversarial_share: float = 0.5,
                       config: MemoryConfig | None = None) -> dict[str, Any]:
    """Write ``count`` unanswerable examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/generation/unanswerable.jsonl`` (read by the trainer like a
    conversation's file: ``memlora train generation --with-unanswerable``), the
    statistics to ``<out_dir>/generation/unanswerable.stats.json`` and into
    ``manifest.json`` (``"unanswerable"``). The statistics include the share of
    these examples among the cached generation examples of the same conversations,
    when those are in the cache.
    """
    out = Path(out_dir)
    examples = generate_unanswerable_examples(conversations, count, embedder, seed=seed,
                                              adversarial_share=adversarial_share, config=config)
    path = out / Operation.GENERATION.value / f"{UNANSWERABLE_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in examples), encoding="utf-8")
    answerable = 0
    for conversation in conversations:
        cached = out / Operation.GENERATION.value / f"{conversation.sample_id}.jsonl"
        if cached.exists():
            answerable += sum(1 for line in cached.read_text(encoding="utf-8").splitlines() if line.strip())
    kinds = Counter(e["context"]["kind"] for e in examples)
    settings = config or MemoryConfig()
    stats = {
        "count": len(examples), "seed": seed, "phrase": NOT_IN_MEMORY, "adversarial_share": adversarial_share,
        "conversations": [c.sample_id for c in conversations],
        "kinds": {kind: kinds[kind] for kind in KINDS},
        "engine": {**listing_settings(settings), "search_mode": settings.search_mode},
        "cached_answerable_examples": answerable,
        # None until the conversations' answerable examples are distilled (`memlora distill` writes them first)
        "share_of_mix": round(len(examples) / (len(examples) + answerable), 3) if answerable else None,
    }
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "unanswerable", Operation.GENERATION, {k: stats[k] for k in (
        "count", "seed", "phrase", "adversarial_share", "conversations", "kinds", "engine")})
    return stats
