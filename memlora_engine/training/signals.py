"""Offline teacher signals built from LoCoMo itself (no large model reachable here).

Each is a :class:`~memlora_engine.teachers.Teacher`, so the data builder
treats them exactly like a real teacher model:

* :class:`ObservationTeacher` (extraction) -- answers with LoCoMo's ``observation``
  facts (written by a large model, per session and speaker, each tagged with its
  evidence turns) for the current two-turn window;
* :class:`UpdateLabeler` (update) -- a documented rule labeler over the prompt the
  engine rendered (old memories with small integer ids, new facts): near-duplicate ->
  NONE, the fact contains/extends an old memory -> UPDATE with the merged text, the
  fact negates an old memory (explicit cue words) -> DELETE, otherwise ADD;
* :class:`ReferenceAnswerTeacher` (generation) -- answers with the ground-truth answer.

The builder sets what the signal teachers answer (``current``) before each engine call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from memlora_engine.embeddings.base import Embedder, cosine
from memlora_engine.errors import GeneratorError
from memlora_engine.generator import ChatMessage
from memlora_engine.training.cleaning import dump_json, prompt_values
from memlora_engine.types import Event, Operation

__all__ = [
    "LabelerThresholds",
    "ObservationTeacher",
    "ReferenceAnswerTeacher",
    "SignalTeacher",
    "UpdateLabeler",
    "content_words",
    "labeler_agreement",
]


_Signal = TypeVar("_Signal")


class SignalTeacher(Generic[_Signal]):
    """A teacher that answers with what the data builder set in :attr:`current` before the call (no model)."""

    current: _Signal


class ObservationTeacher(SignalTeacher[list[str]]):
    """Extraction signal: the observations whose evidence lies in the current window."""

    name = "locomo-observations"

    def __init__(self) -> None:
        self.current: list[str] = []

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        if Operation(operation) is not Operation.EXTRACTION:
            raise GeneratorError(f"{self.name} only answers extraction, not {Operation(operation).value}")
        return dump_json({"facts": list(self.current)})


class ReferenceAnswerTeacher(SignalTeacher[str]):
    """Generation signal: the question's ground-truth answer (not teacher text)."""

    name = "locomo-reference-answers"

    def __init__(self) -> None:
        self.current: str = ""

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        if Operation(operation) is not Operation.GENERATION:
            raise GeneratorError(f"{self.name} only answers generation, not {Operation(operation).value}")
        return self.current


_STOP = frozenset(
    "a an the and or but of to in on at for with from by as is are was were be been being has have had do does did "
    "her his their its our my your he she they it we i you him them this that these those there here very really "
    "also just about into over after before during while who whom which what when where how why than then so some "
    "any all each other own same such too can will would should could may might must s t".split()
)
_NEGATION = re.compile(
    r"\b(no longer|not anymore|any ?more|stopped|quit|quits|gave up|broke up|divorced|sold|"
    r"doesn't|does not|don't|do not|isn't|is not|wasn't|never|lost)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9']+")


def _stem(word: str) -> str:
    word = word.removesuffix("'s")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words minus stop words."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass(frozen=True)
class LabelerThresholds:
    """The labeler's knobs (cosine similarities are all-MiniLM-L6-v2's by default).

    Attributes:
        duplicate_similarity: at or above, the fact is already known (NONE).
        known_containment: share of the fact's content words found in the old memory
            above which it is already known (NONE), given ``related_similarity``.
        extension_containment: share of the old memory's content words found in the fact
            above which the fact extends it (UPDATE with the fact as merged text).
        related_similarity: below this, no rule but ADD fires.
        merge_similarity: a related fact this similar, sharing ``merge_overlap`` of the
            words, is merged into the old memory (UPDATE ``old; fact``).
        merge_overlap: Jaccard overlap of content words for the merge rule.
        delete_overlap: Jaccard overlap for a negated fact to DELETE the old memory.
    """

    duplicate_similarity: float = 0.92
    known_containment: float = 0.85
    extension_containment: float = 0.75
    related_similarity: float = 0.55
    merge_similarity: float = 0.8
    merge_overlap: float = 0.5
    delete_overlap: float = 0.3


class UpdateLabeler:
    """Update signal: labels each new fact against the retrieved old memories.

    It reads the old memories and facts back from the rendered MemLoRA update prompt
    (:func:`~memlora_engine.training.cleaning.prompt_values`), so it answers the exact
    call the engine makes. Rules, per fact, against each old memory (best first by
    cosine similarity); an old memory is changed at most once per call:

    1. DELETE -- the fact carries a negation cue ("no longer", "stopped", "quit", ...)
       the old memory lacks, and they share content words;
    2. UPDATE -- the old memory's content words are (nearly) all in the fact and the fact
       adds at least one (it extends the memory; merged text = the fact);
    3. NONE -- similarity >= ``duplicate_similarity``, or the fact's content words are
       (nearly) all in the old memory;
    4. UPDATE -- very similar with large word overlap (merged text = ``old; fact``);
    5. ADD -- otherwise (including every fact below ``related_similarity``).

    DELETE is rare by construction (LoCoMo facts seldom retract anything), and value
    changes ("moved from Kyoto to Osaka") fall to ADD unless the words overlap enough:
    the agreement on hand-labelled cases is reported in ``docs/training.md``.
    """

    name = "rule-update-labeler"

    def __init__(self, embedder: Embedder, thresholds: LabelerThresholds | None = None, *, style: str = "memlora") -> None:
        self.embedder = embedder
        self.thresholds = thresholds or LabelerThresholds()
        self.style = style

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        if Operation(operation) is not Operation.UPDATE:
            raise GeneratorError(f"{self.name} only answers update, not {Operation(operation).value}")
        values = prompt_values(self.style, Operation.UPDATE, messages)
        old = json.loads(values["old_memories"])
        facts = json.loads(values["facts"])
        return dump_json({"memory": self.label([str(o["id"]) for o in old], [str(o["text"]) for o in old], facts)})

    def label(self, old_ids: list[str], old_texts: list[str], facts: list[str]) -> list[dict[str, str]]:
        """One operation per fact (see the class docstring)."""
        th = self.thresholds
        vectors = self.embedder.embed([*old_texts, *facts]) if (old_texts or facts) else []
        old_vecs, fact_vecs = vectors[: len(old_texts)], vectors[len(old_texts) :]
        old_words = [content_words(t) for t in old_texts]
        touched: set[str] = set()
        next_id = len(old_ids)
        ops: list[dict[str, str]] = []
        for fact, fvec in zip(facts, fact_vecs):
            fwords = content_words(fact)
            ranked = sorted(range(len(old_texts)), key=lambda i: -cosine(fvec, old_vecs[i]))
            op: dict[str, str] | None = None
            for i in ranked:
                sim = cosine(fvec, old_vecs[i])
                if sim < th.related_similarity:
                    break
                shared = fwords & old_words[i]
                fact_in_old = len(shared) / len(fwords) if fwords else 1.0
                old_in_fact = len(shared) / len(old_words[i]) if old_words[i] else 1.0
                jaccard = len(shared) / len(fwords | old_words[i]) if fwords | old_words[i] else 1.0
                negated = bool(_NEGATION.search(fact)) and not _NEGATION.search(old_texts[i])
                if negated and jaccard >= th.delete_overlap:
                    if old_ids[i] not in touched:
                        op = {"id": old_ids[i], "text": old_texts[i], "event": Event.DELETE.value}
                        touched.add(old_ids[i])
                    else:
                        op = {"id": old_ids[i], "text": fact, "event": Event.NONE.value}
                    break
                # The fact says all the old memory says and more: an extension, even when the
                # embedding calls the two near-duplicates.
                extends = old_in_fact >= th.extension_containment and bool(fwords - old_words[i])
                if extends and old_ids[i] not in touched:
                    op = {"id": old_ids[i], "text": fact, "event": Event.UPDATE.value, "old_memory": old_texts[i]}
                    touched.add(old_ids[i])
                    break
                if sim >= th.duplicate_similarity or fact_in_old >= th.known_containment:
                    op = {"id": old_ids[i], "text": fact, "event": Event.NONE.value}
                    break
                merge = sim >= th.merge_similarity and jaccard >= th.merge_overlap
                if merge and old_ids[i] not in touched:
                    merged = f"{old_texts[i].rstrip('. ')}; {fact}"
                    op = {"id": old_ids[i], "text": merged, "event": Event.UPDATE.value, "old_memory": old_texts[i]}
                    touched.add(old_ids[i])
                    break
            if op is None:
                op = {"id": str(next_id), "text": fact, "event": Event.ADD.value}
                next_id += 1
            ops.append(op)
        return ops


def labeler_agreement(labeler: UpdateLabeler, cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Agreement of ``labeler`` with hand-labelled cases ``{"old", "fact", "event", "id"}``.

    An answer agrees when the event matches and, for NONE/UPDATE/DELETE, the target id too.
    Returns overall and per-event agreement, the confusion counts and the disagreements.
    """
    agree = 0
    per_event: dict[str, list[int]] = {}
    confusion: dict[str, dict[str, int]] = {}
    misses = []
    for case in cases:
        old = list(case["old"])
        op = labeler.label([str(i) for i in range(len(old))], old, [case["fact"]])[0]
        gold, got = case["event"], op["event"]
        ok = got == gold and (gold == Event.ADD.value or op["id"] == case.get("id"))
        agree += ok
        per_event.setdefault(gold, [0, 0])
        per_event[gold][0] += ok
        per_event[gold][1] += 1
        confusion.setdefault(gold, {}).setdefault(got, 0)
        confusion[gold][got] += 1
        if not ok:
            misses.append({"fact": case["fact"], "old": old, "gold": gold, "got": got, "id": op["id"]})
    return {
        "cases": len(cases),
        "agreement": agree / len(cases) if cases else None,
        "per_event": {k: {"agree": a, "cases": n, "agreement": a / n} for k, (a, n) in sorted(per_event.items())},
        "confusion": confusion,
        "disagreements": misses,
    }

