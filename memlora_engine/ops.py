"""Turn the update operation's raw ops into validated changes.

The model sees the retrieved old memories under small integer ids ("0", "1", ...).
:func:`plan_operations` maps those back to real ids and rejects, with a reason,
every op it must not apply: an id outside the retrieved set, an UPDATE or ADD
without text, an unknown event, a second op on the same memory.

:func:`uncovered_facts` finds the new facts that no accepted op speaks of, so the
engine can keep them instead of losing them silently (``MemoryConfig.uncovered_facts``);
:func:`unsupported_nones` refuses a NONE whose named memory does not say its fact
(``MemoryConfig.none_min_similarity``), which leaves that fact undecided too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from memlora_engine.embeddings.base import Embedder, cosine
from memlora_engine.parsing import RawOp
from memlora_engine.subjects import mask_name, subject_of
from memlora_engine.types import Event, MemoryRecord

__all__ = ["CLOSEST_MARGIN", "COVERAGE", "PlannedOp", "Rejection", "covers", "fact_into_unchanged_update", "masked_pair",
           "plan_operations", "text_hash", "uncovered_facts", "unrelated_changes", "unsupported_nones"]


@dataclass(frozen=True)
class PlannedOp:
    """A validated change. ``target`` is the old memory for UPDATE and DELETE."""

    event: Event
    text: str | None = None
    target: MemoryRecord | None = None


@dataclass(frozen=True)
class Rejection:
    op: RawOp
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.op.to_dict(), "reason": self.reason}


def text_hash(text: str) -> str:
    """The duplicate-detection hash: sha256 of the text with whitespace folded."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _event(value: str | None) -> Event | None:
    if value is None:
        return None
    try:
        return Event(value.strip().upper())
    except ValueError:
        return None


def plan_operations(ops: list[RawOp], id_map: dict[str, MemoryRecord]) -> tuple[list[PlannedOp], list[Rejection]]:
    """Validate ``ops`` against the retrieved memories ``id_map`` (model id -> record)."""
    planned: list[PlannedOp] = []
    rejected: list[Rejection] = []
    touched: set[str] = set()
    added: set[str] = set()
    for op in ops:
        event = _event(op.event)
        if event is None:
            rejected.append(Rejection(op, "unknown_event"))
            continue
        if event is Event.NONE:
            continue
        if event is Event.ADD:
            if not op.text:
                rejected.append(Rejection(op, "missing_text"))
            elif op.text not in added:
                added.add(op.text)
                planned.append(PlannedOp(Event.ADD, text=op.text))
            continue
        target = id_map.get(op.id or "")
        if target is None:
            rejected.append(Rejection(op, "unknown_id"))
            continue
        if target.id in touched:
            rejected.append(Rejection(op, "conflicting_op"))
            continue
        if event is Event.UPDATE:
            if not op.text:
                rejected.append(Rejection(op, "missing_text"))
                continue
            if op.text == target.text:
                continue  # an UPDATE that changes nothing is a NONE
        touched.add(target.id)
        planned.append(PlannedOp(event, text=op.text if event is Event.UPDATE else target.text, target=target))
    return planned, rejected


COVERAGE = 0.5
"""Share of a fact's content words an op's text must hold for the op to speak of that fact."""

_WORD = re.compile(r"[^\W_]+")
# Words that carry no content of their own: a fact is matched on the rest.
_FILLER = frozenset(
    "a an the and or but of to in on at for with from by as is are was were be been being has have had do does did "
    "i me my mine we us our you your he him his she her they them their it its this that these those there "
    "very really also just now still".split()
)


def _content(text: str) -> set[str]:
    words = set(_WORD.findall(text.casefold()))
    return (words - _FILLER) or words


def covers(op_text: str, fact: str) -> bool:
    """True when ``op_text`` holds at least :data:`COVERAGE` of ``fact``'s content words.

    Case, punctuation and filler words are ignored, so "Likes green tea" covers
    "likes tea" and a merged UPDATE text covers each fact it merged. The match is
    deliberately lexical: a paraphrase the model wrote for a fact counts as covering
    it only when it keeps most of the fact's words.
    """
    wanted = _content(fact)
    if not wanted:
        return True
    return len(wanted & _content(op_text)) / len(wanted) >= COVERAGE


def _changes(op: RawOp, id_map: dict[str, MemoryRecord]) -> bool:
    """True for an UPDATE or DELETE of a retrieved memory that changes it (not an UPDATE to the same text)."""
    target = id_map.get(op.id or "")
    event = _event(op.event)
    if target is None or event not in (Event.UPDATE, Event.DELETE):
        return False
    return event is Event.DELETE or op.text != target.text


def uncovered_facts(
    facts: Sequence[str], ops: Sequence[RawOp], id_map: dict[str, MemoryRecord], rejected: Sequence[Rejection] = (),
    *, asked_alone: bool = False,
) -> list[str]:
    """The facts that no accepted op of the update output speaks of (see :func:`covers`).

    An op speaks of a fact through its text, or through the old memory its id names
    (a DELETE often carries only the id). Ops with an unknown event and rejected ops
    decide nothing, so they cover nothing.

    With ``asked_alone`` (the output answers about this one fact), an accepted
    UPDATE or DELETE of an old memory decides the fact whatever its words: the model
    chose what the fact changes. An UPDATE that rewrites its memory to the same text
    changes nothing (:func:`plan_operations` drops it), so it decides only as a NONE
    would (the engine first reads the one such UPDATE of an otherwise undecided
    one-fact call as the UPDATE with the fact: :func:`fact_into_unchanged_update`).
    An ADD or a NONE still has to carry the fact (a NONE writes the fact it
    found known), so an old memory re-added, declared known or "updated" to itself
    in its place leaves the fact undecided.
    """
    refused = {id(r.op) for r in rejected}
    if asked_alone and any(id(op) not in refused and _changes(op, id_map) for op in ops):
        return []
    texts: list[str] = []
    for op in ops:
        if id(op) in refused or _event(op.event) is None:
            continue
        texts += [t for t in (op.text, op.old_memory) if t]
        target = id_map.get(op.id or "")
        if target is not None:
            texts.append(target.text)
    return [fact for fact in facts if not any(covers(text, fact) for text in texts)]


def fact_into_unchanged_update(fact: str, ops: Sequence[RawOp], listing: Sequence[MemoryRecord]) -> list[RawOp] | None:
    """``ops`` with an unchanged UPDATE given ``fact`` as its text, or None when no op is so read.

    ``ops`` answer a call about the one ``fact`` over ``listing`` (the memories as the call
    numbered them). The model sometimes names the memory a fact changes and then copies
    that memory's text instead of writing the fact ("Mirela sold the Skoda and bought a
    Toyota Prius." -> UPDATE "0", text "Mirela has a Skoda Octavia ..."). Such an UPDATE
    changes nothing, the fact stays undecided and is ADDed beside the memory it replaces,
    and a stale value stays in memory. When it is the call's only UPDATE that changes
    nothing, names a listed memory that is not already the fact, and no other op
    decides the fact (:func:`uncovered_facts`), it is read as the UPDATE of that memory
    with the fact. The rewritten op goes through the same checks as any other
    (:func:`unrelated_changes` refuses it when the fact is about something else).
    """
    id_map = {str(i): record for i, record in enumerate(listing)}
    unchanged = [op for op in ops if _event(op.event) is Event.UPDATE and (target := id_map.get(op.id or "")) is not None
                 and op.text == target.text and target.text != fact]
    if len(unchanged) != 1:
        return None
    chosen = unchanged[0]
    others = [op for op in ops if op is not chosen]
    if not uncovered_facts([fact], others, id_map, asked_alone=True):
        return None
    return [replace(op, text=fact) if op is chosen else op for op in ops]


def _claims(outputs: Sequence[tuple[list[str], list[RawOp]]], id_map: dict[str, MemoryRecord],
            events: tuple[Event, ...]) -> list[tuple[RawOp, str, str]]:
    """``(op, fact, named memory's text)`` for each op of ``events`` that names a retrieved memory.

    An op's fact is its call's one fact (per-fact calls) or, in a call about several
    facts, the text the op carries; an op with neither is left out.
    """
    claims: list[tuple[RawOp, str, str]] = []
    for group, ops in outputs:
        for op in ops:
            target = id_map.get(op.id or "")
            fact = group[0] if len(group) == 1 else op.text
            if target is not None and fact and _event(op.event) in events:
                claims.append((op, fact, target.text))
    return claims


def unsupported_nones(outputs: Sequence[tuple[list[str], list[RawOp]]], id_map: dict[str, MemoryRecord],
                      embedder: Embedder, threshold: float) -> list[Rejection]:
    """The NONE ops whose named memory does not say their fact: ``unsupported_none`` rejections.

    ``outputs`` pairs each call's facts with its parsed ops. A NONE's fact is the
    call's one fact (per-fact calls) or, in a call about several facts, the text the
    NONE carries; a NONE without either, or naming no retrieved memory, is left to the
    other checks. The fact and the named memory's text are embedded once each, and a
    cosine under ``threshold`` rejects the NONE: the model called a fact known while
    pointing at a memory about something else (a changed value "known" from its old
    value), and the fact would otherwise be dropped with nothing counted.
    """
    claims = _claims(outputs, id_map, (Event.NONE,))
    if not claims:
        return []
    texts = list(dict.fromkeys(t for _, fact, old in claims for t in (fact, old)))
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))
    return [Rejection(op, "unsupported_none") for op, fact, old in claims
            if cosine(vectors[fact], vectors[old]) < threshold]


CLOSEST_MARGIN = 0.1
"""How far below the listed memory closest to its fact (names masked) an UPDATE's or DELETE's memory may be."""


def masked_pair(fact: str, memory: str) -> tuple[str, str]:
    """``fact`` and ``memory`` with the leading name of each masked in both (what :func:`unrelated_changes` compares)."""
    names = [n for n in dict.fromkeys((subject_of(fact), subject_of(memory))) if n]
    return mask_name(fact, names), mask_name(memory, names)


def _listings(id_map: dict[str, MemoryRecord]) -> dict[str, list[MemoryRecord]]:
    """The memories each call listed, by call ("call:id" keys; plain ids are one listing, call "")."""
    listings: dict[str, list[MemoryRecord]] = {}
    for key, record in id_map.items():
        listings.setdefault(key.rpartition(":")[0], []).append(record)
    return listings


def unrelated_changes(outputs: Sequence[tuple[list[str], list[RawOp]]], id_map: dict[str, MemoryRecord],
                      embedder: Embedder, threshold: float) -> list[Rejection]:
    """The UPDATE and DELETE ops whose fact is not about what their memory says: ``unrelated_change``.

    A fact and the memory it changes share their subject, so their whole-text cosine
    says little: "Anya's grandmother turned ninety." sits close to "Anya likes horror
    films." because both name Anya, while "Teodora moved to Valencia." and "Teodora
    lives in Ghent." share the name *and* the attribute. So both texts are compared
    with their leading names (:func:`~memlora_engine.subjects.subject_of`, both
    sides') masked. The op is rejected when that cosine is under ``threshold``, or
    more than :data:`CLOSEST_MARGIN` under the best of the memories listed in the same
    call: a change is about the memory its fact is most about, and a small model's
    habit of naming a far one ("UPDATE id 3" over a listing of five) overwrites a true
    memory with a neighbour's news. A rejected op's memory is kept and its fact is
    left undecided, for ``MemoryConfig.uncovered_facts`` (ADDed by default) to keep.
    Facts and memories are found as :func:`unsupported_nones` finds them.
    """
    listings = _listings(id_map)
    claims = [(op, fact, old, listings[(op.id or "").rpartition(":")[0]])
              for op, fact, old in _claims(outputs, id_map, (Event.UPDATE, Event.DELETE))]
    if not claims:
        return []
    pairs = {(fact, r.text): masked_pair(fact, r.text) for _, fact, _, listed in claims for r in listed}
    texts = list(dict.fromkeys(t for pair in pairs.values() for t in pair))
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))

    def similarity(fact: str, memory: str) -> float:
        masked_fact, masked_memory = pairs[(fact, memory)]
        return cosine(vectors[masked_fact], vectors[masked_memory])

    rejected = []
    for op, fact, old, listed in claims:
        score = similarity(fact, old)
        if score < threshold or score < max(similarity(fact, r.text) for r in listed) - CLOSEST_MARGIN:
            rejected.append(Rejection(op, "unrelated_change"))
    return rejected
