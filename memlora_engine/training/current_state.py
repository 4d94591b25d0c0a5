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
* ``end_then_new`` -- the old value ended and a new one began, the ended value named
  first: one memory ("... left Accenture, and now works at Heineken.") or two written
  together ("... left Accenture." and "... now works at Heineken."), half the time after
  the old value's own memory. The answer is the new value. An expert trained without
  them answered the value it read first: "Priya stopped learning X." beside "Priya
  started Y." got X (results/consolidation/README.md, "Session 21").

``held_out`` values are never drawn: ``memlora distill --current-state`` passes every value
of the consolidation check's histories (``memlora eval consolidation``), so that check
measures what the expert generalises to. (The command passes them because training never
imports the evaluation package.)

Every call also holds distractors: other attributes of the same person and LoCoMo
observations of the person's conversation (training conversations only). The
memories are written into an in-memory :class:`~memlora_engine.Memory` at their
times and the question is asked with :meth:`Memory.answer
<memlora_engine.Memory.answer>` through a recording teacher, so the prompt is the
engine's exactly (``answer_top_k``, ``answer_turns``, ``search_mode``, ``dated_memories`` of the
config given), as :mod:`.unanswerable` does.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memlora_engine.config import ALWAYS_GENERATE, MemoryConfig
from memlora_engine.data.locomo import Conversation
from memlora_engine.data.splits import require_training
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import ConfigError
from memlora_engine.teachers import TeacherGenerator
from memlora_engine.training._synthetic_templates import ATTRIBUTES, EXTRA_ATTRIBUTES, PET_KINDS
from memlora_engine.training.data import listing_settings, record_in_manifest
from memlora_engine.training.signals import ReferenceAnswerTeacher
from memlora_engine.training.synthetic_update import demo_free
from memlora_engine.types import Operation

__all__ = ["CHAIN_VALUES", "CURRENT_STATE_ID", "KINDS", "QUESTIONS", "generate_current_state_examples",
           "write_current_state"]

CURRENT_STATE_ID = "current-state"
"""The pseudo-conversation id of these examples (``<data>/generation/current-state.jsonl``)."""

KINDS: dict[str, float] = {"from_to": 0.25, "old_and_new": 0.15, "chain": 0.2, "stable": 0.2, "end_then_new": 0.2}
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


class _Values:
    """The attributes' values less the held-out ones (a value is held out when a held-out value is one of its
    words: "Italian" holds out "Italian" and "the Italian film"), worked out once per run."""

    def __init__(self, held_out: Collection[str]) -> None:
        held = [re.compile(rf"\b{re.escape(v.lower())}\b") for v in held_out if v.strip()]

        def kept(values: Sequence[str]) -> list[str]:
            bare = {v: re.sub(r"^(a|an|the) ", "", v.lower()) for v in values}
            return [v for v in values if not any(h.search(bare[v]) for h in held)]

        # Per attribute, per category ("" for an attribute without categories): the values left.
        self._left: dict[str, dict[str, list[str]]] = {}
        for attribute in QUESTIONS:
            spec = _ATTRIBUTES[attribute]["values"]
            groups = spec if isinstance(spec, dict) else {"": spec}
            self._left[attribute] = {category: kept(values) for category, values in groups.items()}

    def categories(self, attribute: str) -> list[str]:
        """The attribute's categories with two values left at least (a preference's: colour, food, ...)."""
        return sorted(c for c, values in self._left[attribute].items() if len(values) > 1)

    def left(self, attribute: str, category: str = "") -> list[str]:
        return self._left[attribute][category]

    def attributes(self, fewest: int = 2) -> list[str]:
        """The attributes with at least ``fewest`` values left (a preference: in its fullest category)."""
        return [a for a in sorted(QUESTIONS) if max(map(len, self._left[a].values())) >= fewest]


def _article(value: str) -> str:
    return ("an " if value[:1].lower() in "aeiou" else "a ") + value


def _slots(rng: random.Random, values: _Values, attribute: str, name: str, count: int) -> list[dict[str, str]]:
    """Successive (stored ``{v}``, new ``{w}``) slot sets over ``count`` distinct values (fewer where
    the attribute has fewer); the last set wraps around to the first value."""
    shared: dict[str, str] = {"n": name}
    if attribute == "preference":
        shared["c"] = rng.choice(values.categories(attribute))
    drawn = values.left(attribute, shared.get("c", ""))
    if attribute == "pet":
        shared["k"] = rng.choice(PET_KINDS)
    chosen = rng.sample(drawn, min(count, len(drawn)))
    return [{**shared, "v": v, "w": w, "a_v": _article(v), "a_w": _article(w)}
            for v, w in zip(chosen, chosen[1:] + chosen[:1])]


def _changes(attribute: str, *, both: bool) -> list[str]:
    """The attribute's change wordings (``both``: only those that name the old and the new value)."""
    wordings = [fact for fact, _ in _ATTRIBUTES[attribute]["change"]]
    return [w for w in wordings if "{v}" in w and "{w}" in w] if both else wordings


def _starts(attribute: str) -> list[str]:
    """How a new value begins (names it, not the old one): the ``change`` wordings that do, and ``start``."""
    spec = _ATTRIBUTES[attribute]
    changes = [fact for fact, _ in spec["change"] if _NEW.search(fact) and not _OLD.search(fact)]
    return changes + spec.get("start", [])


def _ends(attribute: str) -> list[str]:
    """How the old value ends, naming it ("... gave up {v}."; not "... sold the car.")."""
    return [end for end in _ATTRIBUTES[attribute]["end"] if _OLD.search(end)]


_NEW, _OLD = re.compile(r"\{(a_)?w\}"), re.compile(r"\{(a_)?v\}")
_JOINED = (", and ", " and ", ", and then ")  # "{n} gave up X" + joint + "took up Y."


def _ended_then_new(rng: random.Random, attribute: str, slots: dict[str, str]) -> list[str]:
    """The old value's end and the new value's start: one sentence, or two."""
    end = rng.choice(_ends(attribute)).format(**slots)
    start = rng.choice(_starts(attribute)).format(**slots)
    if rng.random() < 0.5:
        return [end, start]
    subject = slots["n"] + " "
    if end.startswith(subject) and not end.startswith(subject + "and ") and start.startswith(subject):
        # "Rosa gave up Greek." + "Rosa took up Korean." -> "Rosa gave up Greek and took up Korean."
        joints = _JOINED if " now" not in start else _JOINED[:2]  # not "and then now ..."
        return [end[:-1] + rng.choice(joints) + start.removeprefix(subject)]
    return [end[:-1] + "; " + start]


def _question(rng: random.Random, attribute: str, slots: dict[str, str]) -> str:
    question = rng.choice(QUESTIONS[attribute]).format(**slots)
    return question[:-1] + f" {rng.choice(_TIMELY)}?" if rng.random() < 0.5 else question


def _case(rng: random.Random, values: _Values, kind: str, name: str) -> tuple[str, list[list[str]], str, str]:
    """(attribute, memories per write (oldest first), question, answer) of one case."""
    fewest = CHAIN_VALUES[0] if kind == "chain" else 2
    attribute = rng.choice([a for a in values.attributes(fewest) if (kind != "from_to" or _changes(a, both=True))
                            and (kind != "end_then_new" or (_starts(a) and _ends(a)))])
    spec = _ATTRIBUTES[attribute]
    if kind == "end_then_new":
        slots = _slots(rng, values, attribute, name, 2)[0]
        writes = [[rng.choice(spec["base"]).format(**slots)]] if rng.random() < 0.5 else []
        writes.append(_ended_then_new(rng, attribute, slots))
        return attribute, writes, _question(rng, attribute, slots), slots["w"]
    if kind == "stable":
        slots = _slots(rng, values, attribute, name, 2)[0]
        wordings = spec["base"] + [fact for fact, _ in spec.get("refine", [])]
        return attribute, [[rng.choice(wordings).format(**slots)]], _question(rng, attribute, slots), slots["v"]
    if kind == "from_to":
        slots = _slots(rng, values, attribute, name, 2)[0]
        fact = rng.choice(_changes(attribute, both=True)).format(**slots)
        return attribute, [[fact]], _question(rng, attribute, slots), slots["w"]
    sets = _slots(rng, values, attribute, name, rng.randint(*CHAIN_VALUES) if kind == "chain" else 2)
    steps = sets[:-1]  # the last slot set wraps around to the first value
    writes = [[rng.choice(spec["base"]).format(**steps[0])]]
    writes += [[rng.choice(_changes(attribute, both=False)).format(**s)] for s in steps]
    return attribute, writes, _question(rng, attribute, steps[-1]), steps[-1]["w"]


def generate_current_state_examples(
    conversations: Sequence[Conversation], count: int, embedder: Embedder, *, seed: int = 0,
    config: MemoryConfig | None = None, held_out: Collection[str] = (),
) -> list[dict[str, Any]]:
    """``count`` generation examples whose target is the attribute's current value.

    Args:
        conversations: dev *training* conversations (their speakers name the people,
            their observations are the distractors).
        count: how many examples to write.
        embedder: the memory's embedder (the engine's default for real data).
        seed: the same seed, conversations, count and embedder give the same examples.
        config: the engine settings the prompt follows (``answer_top_k``,
            ``answer_turns``, ``dated_memories``, ``search_mode``); default ``MemoryConfig()``'s.
        held_out: values never drawn (case-insensitive, as whole words of a value; a
            benchmark's values, kept out of its training data).

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
    values = _Values(held_out)
    kinds, weights = zip(*KINDS.items())
    teacher = ReferenceAnswerTeacher()
    generator = TeacherGenerator({Operation.GENERATION: teacher})
    # Every question must reach the generation call it is an example of: no decline check, no date answer.
    memory = in_memory_memory(embedder, settings.search_mode, **ALWAYS_GENERATE, **listing_settings(settings))
    memory.generator = generator
    observations = {c.sample_id: [o.text for o in c.observations if demo_free(o.text)] for c in conversations}
    examples: list[dict[str, Any]] = []
    try:
        while len(examples) < count:
            conversation = rng.choice(conversations)
            kind = rng.choices(kinds, weights)[0]
            name = rng.choice([conversation.speaker_a, conversation.speaker_b])
            case = _case(rng, values, kind, name)
            if not all(demo_free(t) for w in case[1] for t in w):
                continue
            attribute, writes, question, answer = case
            scope = f"{CURRENT_STATE_ID}-{len(examples)}"
            # Distractors first, as old memories: other attributes of the person, the conversation's observations.
            others = [a for a in values.attributes() if a != attribute]
            background = [rng.choice(_ATTRIBUTES[a]["base"]).format(**_slots(rng, values, a, name, 2)[0])
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
                        embedder: Embedder, *, seed: int = 0, config: MemoryConfig | None = None,
                        held_out: Collection[str] = ()) -> dict[str, Any]:
    """Write ``count`` current-state examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/generation/current-state.jsonl`` (read by the trainer like a
    conversation's file: ``memlora train generation --with-current-state``), the
    statistics to ``<out_dir>/generation/current-state.stats.json`` and into
    ``manifest.json`` (``"current_state"``).
    """
    out = Path(out_dir)
    settings = config or MemoryConfig()
    examples = generate_current_state_examples(conversations, count, embedder, seed=seed, config=settings,
                                               held_out=held_out)
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
        "engine": {**listing_settings(settings), "search_mode": settings.search_mode},
        "held_out_values": len(set(v.lower() for v in held_out)),
    }
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "current_state", Operation.GENERATION,
                       {k: stats[k] for k in ("count", "seed", "conversations", "kinds", "engine")})
    return stats
