"""Synthetic update conflicts: update examples with known ADD / UPDATE / DELETE / NONE labels.

The rule labeler on LoCoMo (:class:`~memlora_engine.training.signals.UpdateLabeler`)
answers ADD for about 97 % of the facts: LoCoMo's facts seldom change or repeat. This
module writes update calls whose labels are known by construction, from the dev
*training* conversations only (never the validation or test conversation of
:data:`~memlora_engine.data.splits.DEV_SPLITS`):

* **attribute cases** -- a speaker's name with a stored attribute (city, job, pet,
  partner, preference, habit, car, language, instrument; values from small lists in
  :mod:`._synthetic_templates`) and a new fact that edits it;
* **observation cases** -- LoCoMo ``observation`` facts of the conversation, repeated
  exactly, reworded by meaning-keeping word swaps, cut to their first clause, or
  turned into an ending ("X no longer ...").

Label convention (one operation per new fact; an old memory is changed at most once
per call, as :func:`~memlora_engine.ops.plan_operations` requires):

* ``change`` -- the fact gives a new value of the *same* attribute ("moved to ...",
  "now works as ...") -> UPDATE of the old id, text = the fact (the current state);
* ``refine`` -- the fact adds detail to the old memory -> UPDATE, text = the merged
  memory (the fact itself when it restates the old memory);
* ``end`` -- the fact only ends the old state ("no longer", "quit", "died", "broke
  up", "sold", "stopped") -> DELETE of the old id (text = the old memory);
* ``end_with_state`` -- the ending also states what holds now ("quit ... and is now a
  full-time student") -> UPDATE, text = the fact (the new state is worth keeping);
* ``end_and_new`` -- two facts: one ends the old memory, the other is about a
  *different* thing ("sold the car" + "bought a bicycle") -> DELETE old + ADD new;
* ``repeat`` / ``paraphrase`` / ``repeat_part`` -- the fact is already known (exact,
  reworded, or a part of the old memory) -> NONE with the old id, text = the fact;
* ``unrelated`` -- nothing in the old memories is about it -> ADD;
* ``addition`` (richer recipe only) -- a second value beside the stored one ("also plays
  the cello", "got a second cat") -> ADD, the old memory stays.
* ``twin_change`` / ``twin_end_with_state`` (``twins``, per-fact only) -- a changed value's
  fact again, over the same listing *without* the memory it changes and with a memory of
  another attribute of the same person -> ADD. The pair differs only in whether the
  attribute's memory is listed, so the label can only be read off the memories, not off
  the fact's wording or its person.

Ids follow the labeler's (and so the LoCoMo-derived examples') form: old memories
``"0".."n-1"`` in shuffled order, each ADD the next free id. Every call has 1-4 facts
and 1-6 distracting old memories from the same conversation, about half of them the
observations closest in words to the facts (as retrieval brings similar memories).
Prompts are rendered with :func:`~memlora_engine.prompts.render_prompt` exactly as
:class:`~memlora_engine.Memory` renders the update call, and targets go through
:func:`~memlora_engine.training.cleaning.clean_output`, like distilled examples.

The demo's story stays out: observations holding a word of
:data:`~._synthetic_templates.BANNED_WORDS` are skipped and no template uses one.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import Conversation
from memlora_engine.data.splits import require_training
from memlora_engine.errors import ConfigError
from memlora_engine.prompts import render_prompt
from memlora_engine.subjects import subject_of
from memlora_engine.training._synthetic_templates import (
    ATTRIBUTES,
    BANNED_WORDS,
    BASE_DETAILS,
    CHANGE_DETAILS,
    EXTRA_ATTRIBUTES,
    FREQUENCIES,
    PARAPHRASE_SWAPS,
    PET_KINDS,
)
from memlora_engine.training.cleaning import clean_output, dump_json
from memlora_engine.training.data import call_chars, record_in_manifest
from memlora_engine.training.signals import content_words
from memlora_engine.types import Event, Operation

__all__ = [
    "EDIT_EVENTS",
    "EDIT_WEIGHTS",
    "RICH_EDIT_WEIGHTS",
    "SYNTHETIC_ID",
    "SyntheticCase",
    "demo_free",
    "generate_update_examples",
    "label_distribution",
    "mix_distribution",
    "write_synthetic_update",
]

SYNTHETIC_ID = "synthetic-update"
"""The pseudo-conversation id of the synthetic examples (``<data>/update/synthetic-update.jsonl``)."""

EDIT_EVENTS: dict[str, tuple[Event, ...]] = {
    "change": (Event.UPDATE,),
    "refine": (Event.UPDATE,),
    "end": (Event.DELETE,),
    "end_with_state": (Event.UPDATE,),
    "end_and_new": (Event.DELETE, Event.ADD),
    "repeat": (Event.NONE,),
    "paraphrase": (Event.NONE,),
    "repeat_part": (Event.NONE,),
    "unrelated": (Event.ADD,),
    "addition": (Event.ADD,),
    "twin_change": (Event.ADD,),
    "twin_end_with_state": (Event.ADD,),
}
"""The event(s) each edit type is labelled with (see the module docstring)."""

EDIT_WEIGHTS: dict[str, float] = {
    "change": 0.16, "refine": 0.13, "end": 0.23, "end_with_state": 0.04, "end_and_new": 0.04,
    "repeat": 0.07, "paraphrase": 0.14, "repeat_part": 0.08, "unrelated": 0.11,
}
"""How often each edit type is drawn per fact slot: few ADDs, since LoCoMo brings plenty."""

RICH_EDIT_WEIGHTS: dict[str, float] = {**EDIT_WEIGHTS, "change": 0.2, "end": 0.18, "paraphrase": 0.11,
                                        "unrelated": 0.15, "addition": 0.08}
"""The richer recipe's weights: more changed values (the consolidation case the plain recipe
under-serves), and more ADDs beside memories of the same person, a second value included
(``addition``), so that a new value of *another* attribute is not taken for a change."""

_FACTS_PER_CALL = {1: 0.3, 2: 0.35, 3: 0.2, 4: 0.15}
_STYLE = "memlora"
_DATE = "2024-01-01"
_BANNED = re.compile(r"\b(" + "|".join(BANNED_WORDS) + r")\b", re.IGNORECASE)
# A LoCoMo observation "<Name> <verb> ..." that "no longer" can end.
_ENDABLE = re.compile(r"^(?P<n>[A-Z][a-z]+) (?P<v>is|has|plays|attends|volunteers|works|goes|takes|owns|lives|runs|"
                      r"teaches|enjoys|loves|likes|practices|participates|coaches|writes|collects|uses|"
                      r"visits|does|belongs|keeps|spends) (?P<rest>.+)$")
_CLAUSE = re.compile(r"(, | with | and | because | which | who | to | after | since | while | for | at )")


@dataclass(frozen=True)
class SyntheticCase:
    """One new fact with its known label.

    Attributes:
        fact: the new fact (goes into the prompt's fact list).
        event: its label.
        edit: the edit type that made it (a key of :data:`EDIT_EVENTS`).
        old: the old memory it is about (``None`` for ADD).
        text: the target text (merged memory for UPDATE, the old memory for DELETE,
            the fact for NONE and ADD).
        topic: what it is about (two cases of one call never share a topic).
    """

    fact: str
    event: Event
    edit: str
    old: str | None
    text: str
    topic: str


@dataclass(frozen=True)
class _Recipe:
    """What a recipe draws from (see :func:`generate_update_examples`'s ``rich``)."""

    attributes: dict[str, dict[str, Any]]
    edit_weights: dict[str, float]
    observation_share: dict[str, float]  # per edit: the share drawn from LoCoMo observations
    detail_share: float  # new facts (change, end_with_state) and stored memories given a second clause
    single_share: float  # calls of one fact over only its own old memory
    siblings: bool  # old memories about other attributes of the same person among the distractors
    twin_share: float = 0.0  # changed values given an ADD twin without their memory (per-fact only)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def demo_free(text: str) -> bool:
    """True when ``text`` holds no word of ``memlora demo``'s story (:data:`~._synthetic_templates.BANNED_WORDS`)."""
    return not _BANNED.search(text)


@cache
def _words(text: str) -> frozenset[str]:
    return frozenset(content_words(text))


def _jaccard(a: str, b: str) -> float:
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


def _article(value: str) -> str:
    return ("an " if value[:1].lower() in "aeiou" else "a ") + value


class _Source:
    """One training conversation: its speakers and usable observations."""

    def __init__(self, conversation: Conversation) -> None:
        self.sample_id = conversation.sample_id
        self.names = [conversation.speaker_a, conversation.speaker_b]
        seen: dict[str, None] = {}
        for obs in conversation.observations:
            text = _clean(obs.text)
            if text and len(text) <= 180 and demo_free(text):
                seen.setdefault(text, None)
        self.observations = list(seen)


def _fill(rng: random.Random, attributes: dict[str, dict[str, Any]], attribute: str,
          name: str) -> tuple[dict[str, str], str]:
    """Placeholder values for one person's attribute (``{v}`` stored, ``{w}`` another), and its topic."""
    spec = attributes[attribute]
    values = spec["values"]
    slots: dict[str, str] = {"n": name}
    if attribute == "preference":
        slots["c"] = rng.choice(sorted(values))
        values = values[slots["c"]]
    v, w = rng.sample(values, 2)
    if attribute == "habit":
        slots.update(v=v[0], ving=v[1], w=w[0])
        slots["f"], slots["g"] = rng.sample(FREQUENCIES, 2)
        return slots, f"{name}/habit/{v[0]}"
    slots.update(v=v, w=w, a_v=_article(v), a_w=_article(w))
    if attribute == "pet":
        slots["k"] = rng.choice(PET_KINDS)
    return slots, f"{name}/{attribute}"


def _with_detail(text: str, detail: str) -> str:
    return text.rstrip(".") + detail + "."


def _attribute_cases(rng: random.Random, source: _Source, edit: str, recipe: _Recipe) -> list[SyntheticCase]:
    """Cases for ``edit`` on a made-up attribute of one speaker ([] when no attribute has that edit)."""
    attributes = sorted(a for a, spec in recipe.attributes.items() if edit in spec or edit in ("repeat", "unrelated"))
    attribute = rng.choice(attributes)
    spec = recipe.attributes[attribute]
    slots, topic = _fill(rng, recipe.attributes, attribute, rng.choice(source.names))
    base = _clean(rng.choice(spec["base"]).format(**slots))
    # A stored memory with a detail; never under a refinement, whose merged text is written for the bare one.
    # (Each share is tested before drawing: a recipe without it draws nothing, so the plain
    # recipe's random stream, and its examples, stay as they were.)
    if recipe.detail_share and edit != "refine" and rng.random() < recipe.detail_share:
        base = _with_detail(base, rng.choice(BASE_DETAILS).format(**slots))
    if edit == "unrelated":
        return [SyntheticCase(base, Event.ADD, edit, None, base, topic)]
    if edit == "repeat":
        return [SyntheticCase(base, Event.NONE, edit, base, base, topic)]
    if edit in ("change", "refine"):
        fact, text = rng.choice(spec[edit])
        fact = _clean(fact.format(**slots))
        if recipe.detail_share and edit == "change" and rng.random() < recipe.detail_share:
            fact = _with_detail(fact, rng.choice(CHANGE_DETAILS))
        return [SyntheticCase(fact, Event.UPDATE, edit, base, _clean(text.format(**slots)) if text else fact, topic)]
    if edit == "end":
        fact = _clean(rng.choice(spec["end"]).format(**slots))
        return [SyntheticCase(fact, Event.DELETE, edit, base, base, topic)]
    if edit == "end_with_state":
        fact = _clean(rng.choice(spec[edit]).format(**slots))
        return [SyntheticCase(fact, Event.UPDATE, edit, base, fact, topic)]
    if edit == "end_and_new":
        ending, new = (_clean(t.format(**slots)) for t in rng.choice(spec[edit]))
        return [SyntheticCase(ending, Event.DELETE, edit, base, base, topic),
                SyntheticCase(new, Event.ADD, edit, None, new, topic + "/new")]
    if edit == "paraphrase":
        fact = _clean(rng.choice(spec["paraphrase"]).format(**slots))
        return [SyntheticCase(fact, Event.NONE, edit, base, fact, topic)]
    if edit == "addition":
        fact = _clean(rng.choice(spec["addition"]).format(**slots))
        return [SyntheticCase(fact, Event.ADD, edit, base, fact, topic)]
    raise ConfigError(f"unknown edit type {edit!r}")


def _first_clause(text: str) -> str | None:
    """The observation cut at its first clause boundary after five words (``None``: no such cut)."""
    for match in _CLAUSE.finditer(text):
        head = text[: match.start()].rstrip(",;: ")
        if len(head.split()) >= 5 and len(text[match.end():].split()) >= 2:
            return _clean(head) + "."
    return None


def _paraphrase(rng: random.Random, text: str) -> str | None:
    words = text.rstrip(".").split(" ")
    swappable = [i for i, w in enumerate(words) if w in PARAPHRASE_SWAPS]
    if not swappable:
        return None
    for i in rng.sample(swappable, min(2, len(swappable))):
        words[i] = PARAPHRASE_SWAPS[words[i]]
    return _clean(" ".join(words)) + "."


def _ending(text: str) -> str | None:
    match = _ENDABLE.match(text)
    if match is None:
        return None
    rest = (_first_clause(text) or text).rstrip(".")[len(match["n"]) + len(match["v"]) + 2:]
    if not rest or len(rest.split()) > 10:
        return None
    verb = "is no longer" if match["v"] == "is" else f"no longer {match['v']}"
    return f"{match['n']} {verb} {rest}."


def _observation_cases(rng: random.Random, source: _Source, edit: str) -> list[SyntheticCase]:
    """Cases for ``edit`` on one LoCoMo observation ([] when the drawn observation does not lend itself)."""
    obs = rng.choice(source.observations)
    topic = f"obs/{obs}"
    if edit == "unrelated":
        return [SyntheticCase(obs, Event.ADD, edit, None, obs, topic)]
    if edit == "repeat":
        return [SyntheticCase(obs, Event.NONE, edit, obs, obs, topic)]
    if edit == "paraphrase":
        fact = _paraphrase(rng, obs)
        return [SyntheticCase(fact, Event.NONE, edit, obs, fact, topic)] if fact else []
    head = _first_clause(obs)
    if edit == "repeat_part":
        return [SyntheticCase(head, Event.NONE, edit, obs, head, topic)] if head else []
    if edit == "refine":  # the memory holds the first clause; the fact is the whole observation
        return [SyntheticCase(obs, Event.UPDATE, edit, head, obs, topic)] if head else []
    if edit == "end":
        fact = _ending(obs)
        return [SyntheticCase(fact, Event.DELETE, edit, obs, obs, topic)] if fact else []
    return []


# Which source makes each edit: the share of observation cases (the rest are attribute cases).
_OBSERVATION_SHARE = {"change": 0.0, "refine": 0.4, "end": 0.35, "end_with_state": 0.0, "end_and_new": 0.0,
                      "repeat": 0.6, "paraphrase": 0.5, "repeat_part": 1.0, "unrelated": 0.8}

_PLAIN = _Recipe(ATTRIBUTES, EDIT_WEIGHTS, _OBSERVATION_SHARE, 0.0, 0.0, False)
# Half the unrelated facts from the attributes: those get memories of the same person beside them.
_RICH = _Recipe({**ATTRIBUTES, **EXTRA_ATTRIBUTES}, RICH_EDIT_WEIGHTS,
                {**_OBSERVATION_SHARE, "unrelated": 0.5, "addition": 0.0}, 0.5, 0.3, True)


def _draw_cases(rng: random.Random, source: _Source, recipe: _Recipe, wanted: int) -> list[SyntheticCase]:
    edits = list(recipe.edit_weights)
    cases: list[SyntheticCase] = []
    for _ in range(wanted * 6):  # some draws do not fit; give up after a few tries per slot
        if len(cases) >= wanted:
            break
        edit = rng.choices(edits, weights=[recipe.edit_weights[e] for e in edits])[0]
        if edit == "end_and_new" and len(cases) + 2 > wanted:
            continue
        from_obs = rng.random() < recipe.observation_share[edit]
        drawn = _observation_cases(rng, source, edit) if from_obs else _attribute_cases(rng, source, edit, recipe)
        if drawn and _compatible(drawn, cases):
            cases.extend(drawn)
    return cases


def _compatible(new: Sequence[SyntheticCase], cases: Sequence[SyntheticCase]) -> bool:
    """No shared topic, fact or old memory, and no fact close to another case's fact or memory."""
    for case in new:
        for other in cases:
            if case.topic.split("/")[:2] == other.topic.split("/")[:2] and not case.topic.startswith("obs/"):
                return False  # one attribute of one person per call
            if case.topic == other.topic or case.fact == other.fact or (case.old and case.old == other.old):
                return False
            for text in (other.fact, other.old):
                if text and max(_jaccard(case.fact, text), _jaccard(case.old or "", text)) >= 0.5:
                    return False
    # A pet's ending is never paired with a new pet: that would be the demo's story.
    if any(c.topic.endswith("/pet") and c.event is Event.DELETE for c in [*new, *cases]):
        return not any("adopt" in c.fact.lower() or "puppy" in c.fact.lower() for c in [*new, *cases])
    return True


def _siblings(rng: random.Random, recipe: _Recipe, cases: Sequence[SyntheticCase]) -> list[str]:
    """Stored memories about *other* attributes of the persons the attribute cases are about."""
    used = {tuple(c.topic.split("/")[:2]) for c in cases}
    memories = []
    for name in dict.fromkeys(c.topic.split("/")[0] for c in cases if not c.topic.startswith("obs/")):
        free = sorted(a for a in recipe.attributes if (name, a) not in used and a != "habit")
        for attribute in rng.sample(free, min(2, len(free))):
            slots, _ = _fill(rng, recipe.attributes, attribute, name)
            memories.append(_clean(rng.choice(recipe.attributes[attribute]["base"]).format(**slots)))
    return memories


def _distractors(rng: random.Random, source: _Source, cases: Sequence[SyntheticCase], count: int,
                 recipe: _Recipe) -> list[str]:
    """``count`` observations: about half the closest in words to the facts, the rest random.

    None is near any case's fact or old memory (content-word Jaccard below 0.4, and below
    0.3 for an ADD fact, which must find nothing it repeats), so no label changes. With
    ``recipe.siblings`` the pool also holds memories about the same persons' other
    attributes (a new value of one attribute must not touch the others).
    """
    taken = {c.old for c in cases if c.old} | {c.fact for c in cases}
    probes = [(t, 0.3 if c.event is Event.ADD else 0.4) for c in cases for t in (c.fact, c.old) if t]
    siblings = _siblings(rng, recipe, cases) if recipe.siblings else []
    pool = [o for o in [*siblings, *source.observations]
            if o not in taken and all(_jaccard(o, p) < limit for p, limit in probes)]
    if any(c.topic.endswith("/pet") and c.event is Event.DELETE for c in cases):
        pool = [o for o in pool if "adopt" not in o.lower() and "puppy" not in o.lower()]
    similar = sorted(pool, key=lambda o: -max(_jaccard(o, p) for p, _ in probes))
    chosen = similar[: (count + 1) // 2]
    rest = [o for o in pool if o not in chosen]
    chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
    return chosen


def _render(cases: Sequence[SyntheticCase], old_texts: Sequence[str]) -> tuple[list[dict[str, str]], str]:
    """The update prompt as the engine renders it, and the cleaned target."""
    ids = {text: str(i) for i, text in enumerate(old_texts)}
    old_json = json.dumps([{"id": ids[t], "text": t} for t in old_texts], ensure_ascii=False, indent=2)
    facts = [c.fact for c in cases]
    messages = render_prompt(_STYLE, Operation.UPDATE, old_memories=old_json,
                             facts=json.dumps(facts, ensure_ascii=False), date=_DATE)
    next_id = len(old_texts)
    ops: list[dict[str, str]] = []
    for case in cases:
        if case.event is Event.ADD:
            ops.append({"id": str(next_id), "text": case.text, "event": Event.ADD.value})
            next_id += 1
            continue
        op = {"id": ids[str(case.old)], "text": case.text, "event": case.event.value}
        if case.event is Event.UPDATE:
            op["old_memory"] = str(case.old)
        ops.append(op)
    return messages, clean_output(Operation.UPDATE, dump_json({"memory": ops}), new_facts=facts)


def _examples(rng: random.Random, source: _Source, number: int, max_chars: int,
              per_fact: bool, recipe: _Recipe) -> list[dict[str, Any]]:
    # A single call: one fact over its own old memory alone (one memory for an ADD), as a
    # user's first memories are retrieved; otherwise 1-4 facts among 1-6 distractors.
    single = bool(recipe.single_share) and rng.random() < recipe.single_share
    wanted = 1 if single else rng.choices(list(_FACTS_PER_CALL), weights=list(_FACTS_PER_CALL.values()))[0]
    cases = _draw_cases(rng, source, recipe, wanted)
    if not cases:
        return []
    old = list(dict.fromkeys(c.old for c in cases if c.old))
    count = (0 if old else 1) if single else rng.randint(1, 6)
    distractors = _distractors(rng, source, cases, count, recipe) if count else []
    if not distractors and not old:
        return []
    while True:
        old_texts = old + distractors
        rng.shuffle(old_texts)
        messages, target = _render(cases, old_texts)
        if call_chars(messages, target) <= max_chars:
            break
        if len(distractors) > (0 if single and old else 1):
            distractors = distractors[:-1]
        elif len(cases) > 1 and cases[-1].edit != "end_and_new":
            cases = cases[:-1]
            old = list(dict.fromkeys(c.old for c in cases if c.old))
        else:
            return []
    # One call per new fact is how the engine asks (``decide_updates``): each case then
    # becomes its own example over the same old memories, distractors included.
    groups = [[case] for case in cases] if per_fact else [cases]
    examples = []
    for offset, group in enumerate(groups):
        messages, target = _render(group, old_texts)
        examples.append(_record(number + offset, messages, target, {
            "source": source.sample_id, "edits": [c.edit for c in group], "events": [c.event.value for c in group],
            "old_memories": len(old_texts), **({"single": single} if recipe.single_share else {})}))
    if per_fact and recipe.twin_share:
        examples += _twins(rng, recipe, source, list(zip(cases, examples, strict=True)), old_texts,
                           number + len(examples), max_chars)
    return examples


def _twins(rng: random.Random, recipe: _Recipe, source: _Source, drawn: Sequence[tuple[SyntheticCase, dict[str, Any]]],
           old_texts: Sequence[str], number: int, max_chars: int) -> list[dict[str, Any]]:
    """ADD twins of the changed values among the ``drawn`` (case, its per-fact example) pairs.

    See the module docstring, ``twin_*``. The twin lists the same old memories less the one
    the fact changes, and one memory of another attribute of the same person when none is
    listed yet, so that the person is still in memory: only the missing attribute makes the
    fact new. Its context names the example it twins (``twin_of``).
    """
    twins: list[dict[str, Any]] = []
    for case, original in drawn:
        if case.edit not in ("change", "end_with_state") or rng.random() >= recipe.twin_share:
            continue
        name = case.topic.split("/")[0]
        listing = [t for t in old_texts if t != case.old]
        if name not in map(subject_of, listing):
            listing = _siblings(rng, recipe, [case])[:1] + listing
        if not listing:
            continue
        twin = SyntheticCase(case.fact, Event.ADD, f"twin_{case.edit}", None, case.fact, case.topic + "/twin")
        messages, target = _render([twin], listing)
        if call_chars(messages, target) > max_chars:
            continue
        twins.append(_record(number + len(twins), messages, target, {
            "source": source.sample_id, "edits": [twin.edit], "events": [Event.ADD.value],
            "old_memories": len(listing), "twin": True, "twin_of": original["id"]}))
    return twins


def _record(number: int, messages: list[dict[str, str]], target: str, context: dict[str, Any]) -> dict[str, Any]:
    """One synthetic example as the trainer reads a conversation's examples."""
    return {"id": f"{SYNTHETIC_ID}/update/{number}", "operation": Operation.UPDATE.value, "conversation": SYNTHETIC_ID,
            "messages": messages, "target": target, "raw": target, "context": context}


def generate_update_examples(conversations: Iterable[Conversation], count: int, *, seed: int = 0,
                             max_chars: int = 1500, per_fact: bool = False,
                             rich: bool = False, twins: float = 0.0) -> list[dict[str, Any]]:
    """``count`` synthetic update examples, drawn round-robin over ``conversations``.

    Args:
        conversations: dev *training* conversations (with observations).
        count: how many examples (calls) to write.
        seed: the same seed, conversations and count give the same examples.
        max_chars: prompt + target characters per example (1500 stays under the
            trainer's ``--max-length 448`` tokens for gemma-3-270m): distractors, then
            facts, are dropped until an example fits.
        per_fact: one new fact per example (the drawn facts of a call become separate
            examples over the same old memories), as the engine's update step asks.
        rich: the richer recipe (docs/training.md): the attributes of
            :data:`~._synthetic_templates.EXTRA_ATTRIBUTES` too, half the changed values
            and stored memories with a second clause (as the extraction expert writes
            facts), 30 % of the calls one fact over its own old memory alone, same-person
            memories of other attributes among the distractors, a second value beside the
            stored one (``addition``, ADD), and more changed values and same-person ADDs
            (:data:`RICH_EDIT_WEIGHTS`). Off, the examples are the plain recipe's, unchanged.
        twins: the share of changed values (``change``, ``end_with_state``) that also get an
            ADD twin without their memory (per-fact only; 0: none, and the examples are
            those of the recipe without twins, unchanged).

    Raises:
        ConfigError: a validation or test conversation of the dev split was given, or
            no conversation has observations.
    """
    conversations = list(conversations)
    require_training(conversations, "synthetic training data")
    sources = [source for source in map(_Source, conversations) if len(source.observations) >= 4]
    if not sources:
        raise ConfigError("no conversation with observations to build synthetic update examples from")
    rng = random.Random(seed)
    if twins and not per_fact:
        raise ConfigError("twins are per-fact examples: use them with per_fact")
    if not 0.0 <= twins <= 1.0:
        raise ConfigError(f"twins is a share between 0 and 1, got {twins}")
    recipe = replace(_RICH if rich else _PLAIN, twin_share=twins)
    examples: list[dict[str, Any]] = []
    attempts = 0
    while len(examples) < count and attempts < count * 20:
        attempts += 1
        examples.extend(_examples(rng, sources[attempts % len(sources)], len(examples), max_chars, per_fact, recipe))
    return examples[:count]


def _target_events(record: dict[str, Any]) -> list[str]:
    return [str(op["event"]) for op in json.loads(record["target"])["memory"]]


def label_distribution(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per event, per edit type (synthetic records) and facts per call, with event shares."""
    events: Counter[str] = Counter()
    edits: Counter[str] = Counter()
    facts: Counter[int] = Counter()
    for record in records:
        got = _target_events(record)
        events.update(got)
        facts[len(got)] += 1
        edits.update((record.get("context") or {}).get("edits", []))
    total = sum(events.values())
    return {
        "examples": len(records),
        "facts": total,
        "events": {e.value: events[e.value] for e in Event},
        "event_shares": {e.value: round(events[e.value] / total, 3) if total else 0.0 for e in Event},
        "edits": dict(sorted(edits.items())),
        "facts_per_call": {str(k): facts[k] for k in sorted(facts)},
    }


def mix_distribution(locomo: Sequence[dict[str, Any]], synthetic: Sequence[dict[str, Any]], *,
                     max_chars: int | None = 1500) -> dict[str, Any]:
    """The event distribution of LoCoMo-derived plus synthetic examples (the training mix).

    With ``max_chars``, LoCoMo examples longer than that are left out, as the trainer's
    ``--max-length`` leaves them out (characters stand in for tokens here).
    """
    kept = [r for r in locomo if max_chars is None or call_chars(r["messages"], r["target"]) <= max_chars]
    return {"locomo": label_distribution(kept), "locomo_left_out_as_too_long": len(locomo) - len(kept),
            "synthetic": label_distribution(synthetic), "mix": label_distribution([*kept, *synthetic])}


def write_synthetic_update(out_dir: str | Path, conversations: Sequence[Conversation], count: int, *,
                           seed: int = 0, max_chars: int = 1500, per_fact: bool = False,
                           rich: bool = False, twins: float = 0.0) -> dict[str, Any]:
    """Write ``count`` synthetic examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/update/synthetic-update.jsonl`` (read by the trainer like a
    conversation's file: ``memlora train update --with-synthetic``), the statistics to
    ``<out_dir>/update/synthetic-update.stats.json`` and into ``manifest.json``
    (``"synthetic"``). The statistics include the mix with the LoCoMo-derived update
    examples of the same conversations when they are in the cache.
    """
    out = Path(out_dir)
    examples = generate_update_examples(conversations, count, seed=seed, max_chars=max_chars, per_fact=per_fact,
                                        rich=rich, twins=twins)
    path = out / Operation.UPDATE.value / f"{SYNTHETIC_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in examples), encoding="utf-8")
    locomo: list[dict[str, Any]] = []
    for conversation in conversations:
        cached = out / Operation.UPDATE.value / f"{conversation.sample_id}.jsonl"
        if cached.exists():
            locomo.extend(json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines() if line.strip())
    stats = {"count": len(examples), "seed": seed, "max_chars": max_chars, "per_fact": per_fact, "rich": rich,
             "twins": twins, "conversations": [c.sample_id for c in conversations],
             **mix_distribution(locomo, examples, max_chars=max_chars)}
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "synthetic", Operation.UPDATE,
                       {k: stats[k] for k in ("count", "seed", "max_chars", "per_fact", "rich", "twins", "conversations")})
    return stats
