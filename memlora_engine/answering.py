"""Answering from retrieved memories: the ``generation`` path, or ``vqa`` with an image.

:meth:`Answerer.answer` takes the memories ``Memory.answer`` retrieved and routes
the question: a generator that sees images answers a question that carries an
image, or that refers to a photo some retrieved memory holds, with the ``vqa``
operation; everything else goes to ``generation``, with the question's images
turned into captions for a text-only generator.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from memlora_engine._vision import image_ids_of, refers_to_image
from memlora_engine.dates import asks_when, date_phrase, format_day
from memlora_engine.errors import ConfigError, InvalidInputError, ModelOutputError
from memlora_engine.images import ImageStore, LoadedImage
from memlora_engine.parsing import collapse_repeated_items, parse_vqa, strip_thinking
from memlora_engine.steps import ModelCaller
from memlora_engine.subjects import source_turn
from memlora_engine.types import Answer, MemoryRecord, Operation, Scope

__all__ = ["NOT_IN_MEMORY", "ROUTES", "Answerer", "is_polar_question", "memory_listing", "polar_answer",
           "superseded_listing", "written_day"]

logger = logging.getLogger(__name__)

ROUTES = ("auto", "vqa", "text")
"""``route`` values of ``Memory.answer``: decide, force ``vqa``, force ``generation``."""

NOT_IN_MEMORY = "No information available."
"""The generation expert's answer when the retrieved memories do not support one.

A fixed phrase, so a caller can tell a declined question from an answer by
comparing ``Answer.text`` with it. It is what the unanswerable training examples
teach (``memlora distill --unanswerable N``, :mod:`memlora_engine.training.unanswerable`),
and LoCoMo's official scorer counts it as declined (category 5 looks for "no
information available" or "not mentioned"). The engine does not produce it by a
rule: the model does, so an expert not trained on those examples may answer
anything.
"""


_POLAR = re.compile(
    r"^(?:is|are|was|were|am|do|does|did|can|could|will|would|should|shall|has|have|had|may|might|must)\b",
    re.IGNORECASE)
# "Yes" / "No" (a hedge before it kept) that ends at a mark or at the end: "No information
# available." and "No one ..." are not a verdict.
_VERDICT = re.compile(r"^((?:(?:most |very )?likely |probably |definitely )?(?:yes|no))\s*(?:[,.;:!]|\s[-\u2013\u2014]|$)\s*(.*)$",
                      re.IGNORECASE | re.DOTALL)


def is_polar_question(question: str) -> bool:
    """True for a yes/no question: it opens with an auxiliary verb ("Would ...", "Did ...")
    and offers no alternatives ("... a national park or a theme park?" asks which)."""
    question = question.strip()
    return _POLAR.match(question) is not None and re.search(r"\bor\b", question, re.IGNORECASE) is None


def polar_answer(text: str) -> tuple[str, str | None]:
    """``text`` split into its verdict and the reason after it, or ``(text, None)`` when it
    does not open with one: ``"No, she wants to stay."`` -> ``("No", "she wants to stay.")``."""
    match = _VERDICT.match(text.strip())
    if match is None:
        return text, None
    verdict, reason = match.group(1), match.group(2).strip()
    return verdict[0].upper() + verdict[1:], reason or None


def _date_of(memory: MemoryRecord) -> str:
    """The memory's date: the session time it was last written at (``updated_at``, else ``created_at``)."""
    return (memory.updated_at or memory.created_at or "")[:10]


def written_day(memory: MemoryRecord) -> date | None:
    """The day ``memory``'s text was written (:func:`_date_of`), or None for a timestamp that is not ISO."""
    try:
        return date.fromisoformat(_date_of(memory))
    except ValueError:
        return None


def superseded_listing(candidates: Sequence[MemoryRecord], rule: str, k: int) -> list[MemoryRecord]:
    """The ``k`` best of ``candidates`` (ranked best first) once ``rule`` dropped superseded records.

    ``rule`` is ``MemoryConfig.answer_superseded``. A superseded record (a text the update
    step replaced; ``superseded_by`` names the memory that replaced it) is dropped under
    ``"unless_successor"`` when that memory is among the memories listed, and under
    ``"below_successor"`` when that memory is listed above it; ``"off"`` drops every
    superseded record. A dropped record's place goes to the next candidate, so the listing
    still holds ``k`` memories when the candidates have them. So a question about what is
    true now sees the current value without its past ("Where does Ana live?" retrieves
    both cities), and a question about a replaced event ("When did she go to the support
    group?") still finds it when what replaced it is not listed (``"unless_successor"``)
    or ranks below it (``"below_successor"``).
    """
    def listed(window: Sequence[MemoryRecord]) -> list[MemoryRecord]:
        rank = {m.id: i for i, m in enumerate(window) if m.superseded_by is None}
        kept = []
        for i, memory in enumerate(window):
            successor = rank.get(memory.superseded_by) if memory.superseded_by is not None else None
            if memory.superseded_by is not None and (
                    rule == "off"
                    or (rule == "unless_successor" and successor is not None)
                    or (rule == "below_successor" and successor is not None and successor < i)):
                continue
            kept.append(memory)
        return kept

    # Widen the window by what was dropped until k are kept: each candidate added keeps one
    # more memory or drops a record it replaced, so the listing never grows past k.
    size = k
    while True:
        kept = listed(candidates[:size])
        if len(kept) >= k or size >= len(candidates):
            return kept
        size += k - len(kept)


def memory_listing(memories: Sequence[MemoryRecord], *, dated: bool = False, turns: int = 0) -> list[str]:
    """The memories as the generation prompt lists them, one ``- `` line each.

    ``dated`` (``MemoryConfig.dated_memories``) prefixes each line with the memory's
    date, ``- [2023-05-08] ...``, and lists the newest first, so a question about
    time can use the date and, of two memories that disagree, the newer one comes
    first (Mem0's evaluation shows its memories with their timestamps too). Memories
    of the same date keep their retrieval order.

    ``turns`` (``MemoryConfig.answer_turns``): the first ``turns`` memories in the given
    (retrieval) order that keep their ``source`` are followed by an indented line with
    the turn they were written from (:func:`~memlora_engine.subjects.source_turn`).
    """
    shown = {m.id: turn for m in memories[:turns] if m.source and (turn := source_turn(m.text, m.source))}

    def line(memory: MemoryRecord, head: str) -> str:
        turn = shown.get(memory.id)
        return f"{head}{memory.text}" + (f"\n  {turn}" if turn else "")

    if not dated:
        return [line(m, "- ") for m in memories]
    ordered = sorted(memories, key=_date_of, reverse=True)  # stable: ties keep the retrieval order
    return [line(m, f"- [{_date_of(m) or 'undated'}] ") for m in ordered]


class Answerer:
    """The answering path of one memory.

    Args:
        caller: the model.
        images: the stored images, where a retrieved memory's photo is found.
    """

    def __init__(self, caller: ModelCaller, images: ImageStore) -> None:
        self._caller = caller
        self._images = images

    def answer(
        self,
        question: str,
        scope: Scope,
        memories: list[MemoryRecord],
        given: list[LoadedImage],
        *,
        route: str,
        captioner: Callable[[Any], str] | None,
        clock: Callable[[], datetime],
        dated: bool = False,
        date_answers: bool = False,
        written_dates: bool = False,
        polar: bool = False,
        turns: int = 0,
    ) -> Answer:
        """Answer ``question`` from ``memories`` (and the question's own images, ``given``).

        ``clock`` gives the date shown to ``generation`` (called only on that path);
        ``dated`` lists the memories with their dates, and the first ``turns`` with the turn
        they were written from (:func:`memory_listing`).
        ``date_answers`` answers a "When ...?" question with the date the best-ranked
        memory states (:func:`~memlora_engine.dates.date_phrase`), without a model call;
        ``written_dates``: when none states a date, the answer is the day the first one was
        written (:func:`written_day`).
        ``polar`` answers a yes/no question (:func:`is_polar_question`) with the verdict
        its generated answer opens with, the rest as ``Answer.reason`` (:func:`polar_answer`).
        Warnings point at the caller of ``Memory.answer``.

        Raises:
            InvalidInputError: ``route="vqa"`` with no image to look at.
            ConfigError: ``route="vqa"`` with a generator that does not take images.
        """
        vision = self._caller.sees_images
        if route == "vqa" and not vision:
            raise ConfigError("route='vqa' needs a generator that takes images (a VLM backbone)")
        if vision and route != "text":
            pictures = given
            if not pictures and (route == "vqa" or refers_to_image(question)):
                pictures = self._retrieved_image(scope, memories)
            if pictures:
                return self._vqa(question, pictures, memories)
            if route == "vqa":
                raise InvalidInputError("route='vqa' but no image was given or retrieved for this question")
        if date_answers and not given and asks_when(question):
            for memory in memories:
                if (phrase := date_phrase(memory.text)) is not None:
                    self._caller.stats.record_date_answer()
                    return Answer(text=phrase, memories=memories, operation="date")
            if written_dates and memories and (day := written_day(memories[0])) is not None:
                # No memory states a date: the day the best one was said is the evidence of when, where
                # the expert would answer a month of its own.
                self._caller.stats.record_date_answer(written=True)
                return Answer(text=format_day(day), memories=memories, operation="date",
                              reason=f"the day this memory was written: {memories[0].text}")
        listing = memory_listing(memories, dated=dated, turns=turns)
        if given and captioner is None:
            warnings.warn("answer() got images, but the generator does not take images and no captioner is set: "
                          "the images are ignored", stacklevel=3)
            given = []
        if given and captioner is not None:  # text-only generator: the question's images as captions
            captions = [" ".join(str(captioner(i.pil())).split()) for i in given]
            listing = [f"- The photo in the question shows: {c}" for c in captions if c] + listing
        text = self._caller.call(
            Operation.GENERATION, memories="\n".join(listing) or "(no memories)", question=question.strip(),
            date=clock().date().isoformat(),
        ).text
        text, looped = collapse_repeated_items(text.strip())
        if looped:
            self._caller.stats.record_collapsed_loop(Operation.GENERATION)
        reason = None
        if polar and is_polar_question(question):
            text, reason = polar_answer(text)
        return Answer(text=text, memories=memories, reason=reason, image_ids=[i.id for i in given])

    def _retrieved_image(self, scope: Scope, memories: Sequence[MemoryRecord]) -> list[LoadedImage]:
        """The stored image of the best-ranked retrieved memory that has one (or none)."""
        for memory in memories:
            for image_id in image_ids_of(memory):
                if self._images.has(scope, image_id):
                    return [self._images.get(scope, image_id)]
        return []

    def _vqa(self, question: str, pictures: Sequence[LoadedImage], memories: list[MemoryRecord]) -> Answer:
        raw = self._caller.call(Operation.VQA, [p.pil() for p in pictures], question=question.strip()).text
        ids = [p.id for p in pictures]
        try:
            answer, reason = parse_vqa(raw)
        except ModelOutputError as exc:
            self._caller.stats.record_parse_failure(Operation.VQA, raw)
            logger.warning("vqa output could not be parsed; answering with its raw text (%s)", exc)
            return Answer(text=strip_thinking(raw).strip(), memories=memories, operation="vqa", image_ids=ids,
                          failure=f"vqa: {exc}")
        return Answer(text=answer, memories=memories, operation="vqa", reason=reason, image_ids=ids)
