"""Current-state generation examples: the answer is the value that holds *now*.

The distilled generation examples come from LoCoMo questions, whose memories rarely
hold a value and a later change of it. So the generation expert never learned what
to answer when a memory says "Dana relocated from Denver to Osaka." (it answers the
first city it reads) or when an old and a newer memory disagree. This module writes
generation calls built from the synthetic update templates
(:mod:`._synthetic_templates`, the demo's story kept out by :data:`BANNED_WORDS`),
each with a question about one attribute of one person and its known answer. Kinds:

* ``from_to`` -- one memory that names the old and the new value ("... switched from
  the violin to the cello."): the answer is the new value.
* ``old_and_new`` -- the old value's memory, written first, and a later memory
  with the change: the new value.
* ``chain`` -- three to five values (:data:`CHAIN_VALUES`), each change a week after
  the one before: the last. Real histories change a job or a city more than twice; an
  expert trained on three-value chains only answered the newest of five values in 3 of
  12 consolidation histories (results/consolidation/README.md, "Session 11").
* ``stable`` -- the value stated once (sometimes with a detail) and never changed:
  that value, so the expert does not learn to answer "the other one".

Every call also holds distractors: other attributes of the same person and LoCoMo
observations of the person's conversation (training conversations only). The
memories are written into an in-memory :class:`~memlora_engine.Memory` at their
times and the question is asked with :meth:`Memory.answer
<memlora_engine.Memory.answer>` through a recording teacher, so the prompt is the
engine's exactly (``answer_top_k``, ``search_mode``, ``dated_memories`` of the
config given), as :mod:`.unanswerable` does.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.data.locomo import Conversation
from memlora_engine.data.splits import require_training
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import ConfigError
from memlora_engine.teachers import TeacherGenerator
from memlora_engine.training._synthetic_templates import ATTRIBUTES, EXTRA_ATTRIBUTES, PET_KINDS
from memlora_engine.training.data import record_in_manifest
from memlora_engine.training.signals import ReferenceAnswerTeacher
from memlora_engine.training.synthetic_update import demo_free
from memlora_engine.types import Operation

__all__ = ["CHAIN_VALUES", "CURRENT_STATE_ID", "KINDS", "QUESTIONS", "generate_current_state_examples", "write_current_state"]

CURRENT_STATE_ID = "current-state"
"""The pseudo-conversation id of these examples (``<data>/generation/current-state.jsonl``)."""

KINDS: dict[str, float] = {"from_to": 0.3, "old_and_new": 0.2, "chain": 0.25, "stable": 0.25}
"""The kinds (see the module docstring) and how often each is drawn."""

CHAIN_VALUES = (3, 5)
"""The fewest and most values of a ``chain`` (drawn uniformly; fewer where an attribute has fewer)."""

QUESTIONS: dict[str, list[str]] = {
    "city": ["Which city is {n} based in?", "What city is {n}'s home?", "Which city does {n} call home?"],
    "job": ["What does {n} work as?", "What is {n}'s profession?", "What line of work is {n} in?"],
    "pet": ["What is {n}'s {k} called?", "What name does {n}'s {k} have?"],
    "partner": ["Who is {n} dating?", "Who is {n}'s partner?"],
    "preference": ["Which {c} does {n} like best?", "What {c} does {n} prefer?"],
    "car": ["What car does {n} drive?", "What does {n} drive?"],
    "language": ["Which language is {n} learning?", "What language is {n} studying?"],
    "instrument": ["Which instrument does {n} play?", "What instrument does {n} play?"],
    "employer": ["Where does {n} work?", "Which company does {n} work for?", "Who is {n}'s employer?"],
    "university": ["Where does {n} study?", "Which university does {n} attend?"],
    "phone": ["What phone does {n} use?", "Which phone does {n} have?"],
    "sport": ["Which sport does {n} play?", "What sport does {n} play?"],
    "hobby": ["What is {n}'s hobby?", "What hobby does {n} have?"],
    "drink": ["What does {n} usually drink?", "What is {n}'s usual drink?"],
    "team": ["Which team does {n} support?", "Which club does {n} cheer for?"],
    "flatmate": ["Who does {n} share a flat with?", "Who is {n}'s flatmate?"],
}
"""Question wordings per attribute (``{n}`` the person; the answer is the attribute's value).
Half of the questions get "now", "currently" or "these days"; habits are left out (their
value is two slots). ``memlora demo``'s question wordings are not among them, so the demo
measures what the expert generalises to."""

_ATTRIBUTES = {**ATTRIBUTES, **EXTRA_ATTRIBUTES}
_TIMELY = ("now", "currently", "these days")
_START = datetime(2023, 3, 6, 18, 0)


def _article(value: str) -> str:
    return ("an " if value[:1].lower() in "aeiou" else "a ") + value


def _slots(rng: random.Random, attribute: str, name: str, count: int) -> list[dict[str, str]]:
    """Successive (stored ``{v}``, new ``{w}``) slot sets over ``count`` distinct values (fewer where
    the attribute has fewer); the last set wraps around to the first value."""
    spec = _ATTRIBUTES[attribute]
    shared: dict[str, str] = {"n": name}
    values = spec["values"]
    if attribute == "preference":
        shared["c"] = rng.choice(sorted(values))
        values = values[shared["c"]]
    if attribute == "pet":
        shared["k"] = rng.choice(PET_KINDS)
    chosen = rng.sample(values, min(count, len(values)))
    return [{**shared, "v": v, "w": w, "a_v": _article(v), "a_w": _article(w)}
            for v, w in zip(chosen, chosen[1:] + chosen[:1])]


def _changes(attribute: str, *, both: bool) -> list[str]:
    """The attribute's change wordings (``both``: only those that name the old and the new value)."""
    wordings = [fact for fact, _ in _ATTRIBUTES[attribute]["change"]]
    return [w for w in wordings if "{v}" in w and "{w}" in w] if both else wordings


def _question(rng: random.Random, attribute: str, slots: dict[str, str]) -> str:
    question = rng.choice(QUESTIONS[attribute]).format(**slots)
    return question[:-1] + f" {rng.choice(_TIMELY)}?" if rng.random() < 0.5 else question


def _case(rng: random.Random, kind: str, name: str) -> tuple[str, list[list[str]], str, str]:
    """(attribute, memories per write (oldest first), question, answer) of one case."""
    attribute = rng.choice([a for a in sorted(QUESTIONS) if kind != "from_to" or _changes(a, both=True)])
    spec = _ATTRIBUTES[attribute]
    if kind == "stable":
        slots = _slots(rng, attribute, name, 2)[0]
        wordings = spec["base"] + [fact for fact, _ in spec.get("refine", [])]
        return attribute, [[rng.choice(wordings).format(**slots)]], _question(rng, attribute, slots), slots["v"]
    if kind == "from_to":
        slots = _slots(rng, attribute, name, 2)[0]
        fact = rng.choice(_changes(attribute, both=True)).format(**slots)
        return attribute, [[fact]], _question(rng, attribute, slots), slots["w"]
    sets = _slots(rng, attribute, name, rng.randint(*CHAIN_VALUES) if kind == "chain" else 2)
    steps = sets[:-1]  # the last slot set wraps around to the first value
    writes = [[rng.choice(spec["base"]).format(**steps[0])]]
    writes += [[rng.choice(_changes(attribute, both=False)).format(**s)] for s in steps]
    return attribute, writes, _question(rng, attribute, steps[-1]), steps[-1]["w"]


def generate_current_state_examples(
    conversations: Sequence[Conversation], count: int, embedder: Embedder, *, seed: int = 0,
    config: MemoryConfig | None = None,
) -> list[dict[str, Any]]:
    """``count`` generation examples whose target is the attribute's current value.

    Args:
        conversations: dev *training* conversations (their speakers name the people,
            their observations are the distractors).
        count: how many examples to write.
        embedder: the memory's embedder (the engine's default for real data).
        seed: the same seed, conversations, count and embedder give the same examples.
        config: the engine settings the prompt follows (``answer_top_k``,
            ``search_mode``, ``dated_memories``); default ``MemoryConfig()``'s.

    Raises:
        ConfigError: a validation or test conversation of the dev split, or ``count`` < 1.
    """
    from memlora_engine.data.memories import in_memory_memory

    conversations = list(conversations)
    require_training(conversations, "current-state training data")
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}")
    settings = config or MemoryConfig()
    rng = random.Random(seed)
    kinds, weights = zip(*KINDS.items())
    teacher = ReferenceAnswerTeacher()
    generator = TeacherGenerator({Operation.GENERATION: teacher})
    memory = in_memory_memory(embedder, settings.search_mode)
    memory.generator = generator
    memory.config.answer_top_k = settings.answer_top_k
    memory.config.dated_memories = settings.dated_memories
    observations = {c.sample_id: [o.text for o in c.observations if demo_free(o.text)] for c in conversations}
    examples: list[dict[str, Any]] = []
    try:
        while len(examples) < count:
            conversation = rng.choice(conversations)
            kind = rng.choices(kinds, weights)[0]
            name = rng.choice([conversation.speaker_a, conversation.speaker_b])
            case = _case(rng, kind, name)
            if not all(demo_free(t) for w in case[1] for t in w):
                continue
            attribute, writes, question, answer = case
            scope = f"{CURRENT_STATE_ID}-{len(examples)}"
            # Distractors first, as old memories: other attributes of the person, the conversation's observations.
            others = [a for a in sorted(QUESTIONS) if a != attribute]
            background = [rng.choice(_ATTRIBUTES[a]["base"]).format(**_slots(rng, a, name, 2)[0])
                          for a in rng.sample(others, rng.randint(1, 3))]
            pool = observations[conversation.sample_id]
            background += rng.sample(pool, min(len(pool), rng.randint(3, 7)))
            memory.add_many(background, user_id=scope, timestamp=_START)
            for step, texts in enumerate(writes, start=1):
                memory.add_many([t[:1].upper() + t[1:] for t in texts], user_id=scope,
                                timestamp=_START + timedelta(days=7 * step))
            teacher.current = answer
            generator.context = {"kind": kind, "attribute": attribute, "source": conversation.sample_id,
                                 "writes": len(writes)}
            answered = memory.answer(question, user_id=scope,
                                     timestamp=_START + timedelta(days=7 * len(writes) + 3))
            call = generator.calls.pop()
            examples.append({
                "id": f"{CURRENT_STATE_ID}/{Operation.GENERATION.value}/{len(examples)}",
                "operation": Operation.GENERATION.value,
                "conversation": CURRENT_STATE_ID,
                "messages": call.messages,
                "target": answer,
                "raw": answer,
                "context": {**call.context, "memories": len(answered.memories)},
            })
    finally:
        memory.close()
    return examples


def write_current_state(out_dir: str | Path, conversations: Sequence[Conversation], count: int,
                        embedder: Embedder, *, seed: int = 0, config: MemoryConfig | None = None) -> dict[str, Any]:
    """Write ``count`` current-state examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/generation/current-state.jsonl`` (read by the trainer like a
    conversation's file: ``memlora train generation --with-current-state``), the
    statistics to ``<out_dir>/generation/current-state.stats.json`` and into
    ``manifest.json`` (``"current_state"``).
    """
    out = Path(out_dir)
    settings = config or MemoryConfig()
    examples = generate_current_state_examples(conversations, count, embedder, seed=seed, config=settings)
    path = out / Operation.GENERATION.value / f"{CURRENT_STATE_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in examples), encoding="utf-8")
    kinds = Counter(e["context"]["kind"] for e in examples)
    attributes = Counter(e["context"]["attribute"] for e in examples)
    stats = {
        "count": len(examples), "seed": seed, "conversations": [c.sample_id for c in conversations],
        "kinds": {kind: kinds[kind] for kind in KINDS}, "attributes": dict(sorted(attributes.items())),
        "chain_values": dict(sorted(Counter(str(e["context"]["writes"]) for e in examples
                                            if e["context"]["kind"] == "chain").items())),
        "engine": {"answer_top_k": settings.answer_top_k, "search_mode": settings.search_mode,
                   "dated_memories": settings.dated_memories},
    }
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "current_state", Operation.GENERATION,
                       {k: stats[k] for k in ("count", "seed", "conversations", "kinds", "engine")})
    return stats
