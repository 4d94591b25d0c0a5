"""Outcome-checked update labels: settle disagreements between update teachers by their answers.

The idea comes from Memory-R1 (a memory manager rewarded by the answers its memory leads
to), used here without reinforcement learning and without a judge model: during the
distillation replay (:func:`~memlora_engine.training.data.replay_conversation`), every
update call is put to several candidate teachers -- typically the rule labeler first and
a trained update expert second. Where their decisions differ (the multiset of
ADD/UPDATE/DELETE ops with their target memories; NONE and silence change nothing), each
decision is applied to a copy of the memory bank as it stands, the LoCoMo questions whose
evidence lies in the current session and has been seen by now are answered from that copy
by an answering generator (the generation expert), and the decision whose answers score
best (the score passed in: LoCoMo F1, the benchmark's own metric, from ``memlora distill``) becomes the label. Ties keep the first
candidate's label, so the check only changes a label when an outcome says it should.

Nothing here needs a large model: the answers come from the same small generation expert
the pipeline uses, and the reference answers are LoCoMo's. See docs/training.md,
"Outcome-checked labels".
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from memlora_engine.config import NO_DECLINES, MemoryConfig
from memlora_engine.data.locomo import QA
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import GeneratorError, ModelOutputError
from memlora_engine.generator import ChatMessage, Generator
from memlora_engine.ops import PlannedOp, plan_operations
from memlora_engine.parsing import parse_update_ops
from memlora_engine.teachers import Teacher
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.types import Event, MemoryRecord, Operation

__all__ = ["OutcomeCheckReport", "OutcomeCheckedTeacher"]

Decision = tuple[tuple[str, str], ...]
"""What a decision changes: sorted (event, target text or new text) pairs, NONE left out."""


@dataclass
class OutcomeCheckReport:
    """Counts of one replay (or several, merged).

    Attributes:
        calls: update calls seen.
        disagreements: calls where the candidates' decisions differed and at least one
            question could check them.
        unchecked: calls where they differed but no question had its evidence in the
            session so far (the first candidate's label is kept).
        changed: labels taken from another candidate than the first (its outcome was better).
        ties: disagreements every candidate scored alike (first candidate kept).
        questions: questions answered in all (per decision).
        unusable: candidate outputs that did not parse (never chosen).
        changes: one record per changed label (fact, decisions, scores).
    """

    calls: int = 0
    disagreements: int = 0
    unchecked: int = 0
    changed: int = 0
    ties: int = 0
    questions: int = 0
    unusable: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: OutcomeCheckReport) -> None:
        for counter in fields(self):  # every field but the list of changes is a count
            if counter.name != "changes":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        self.changes.extend(other.changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutcomeCheckedTeacher:
    """An update teacher whose label, where its candidates disagree, is the one whose answers score best.

    The replay tells it, before each ``add``, what the memory bank holds and which questions
    can check a decision now (:meth:`focus`); it then answers update calls like any
    :class:`~memlora_engine.teachers.Teacher`.

    Args:
        candidates: update teachers, the default label first (e.g. the rule labeler, then
            a trained expert behind :class:`~memlora_engine.teachers.GeneratorTeacher`).
        answerer: the generator that answers the questions (the generation expert).
        score: scores one answer against its question (``memlora distill`` passes the
            official LoCoMo score; training never imports evaluation, so it is passed in).
        embedder: the memory embedder of the copies (the replay's, so vectors are cached).
        answer_top_k: memories retrieved per question, as the pipeline does.
        style: the prompt style the update calls are rendered in.
    """

    name = "outcome-checked"

    def __init__(self, candidates: Sequence[Teacher], answerer: Generator, embedder: Embedder,
                 score: Callable[[str, QA], float], *, answer_top_k: int = 10, style: str = "memlora") -> None:
        if len(candidates) < 2:
            raise ValueError("an outcome check needs at least two candidate update teachers")
        self.candidates = list(candidates)
        self.name = "outcome-checked(" + ", ".join(c.name for c in self.candidates) + ")"
        self.answerer = answerer
        self.score = score
        self.embedder = embedder
        self.answer_top_k = answer_top_k
        self.style = style
        self.report = OutcomeCheckReport()
        self._bank: Callable[[], list[str]] = list
        self._questions: list[QA] = []
        self._when: datetime | None = None

    def focus(self, bank: Callable[[], list[str]], questions: Sequence[QA], when: datetime | None) -> None:
        """Set what the next update calls are checked against.

        Args:
            bank: returns the texts of the memories stored now (read at each disagreement).
            questions: the questions a decision made now can be judged by.
            when: the time the questions are asked at (the session's date).
        """
        self._bank, self._questions, self._when = bank, list(questions), when

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        if Operation(operation) is not Operation.UPDATE:
            raise GeneratorError(f"{self.name} only answers update, not {Operation(operation).value}")
        self.report.calls += 1
        old = {str(o["id"]): str(o["text"]) for o in json.loads(prompt_values(self.style, Operation.UPDATE,
                                                                              messages)["old_memories"])}
        outputs = [c.complete(messages, operation=operation, json_schema=json_schema, max_new_tokens=max_new_tokens)
                   for c in self.candidates]
        # One entry per distinct decision, in candidate order (the first candidate's first).
        distinct: dict[Decision, tuple[int, list[PlannedOp]]] = {}
        for index, output in enumerate(outputs):
            planned = self._plan(output, old)
            if planned is None:
                self.report.unusable += 1
                if index == 0:
                    return output  # the default label stays what it is; the replay counts it
                continue
            distinct.setdefault(_decision(planned), (index, planned))
        if len(distinct) < 2:
            return outputs[0]
        if not self._questions:
            self.report.unchecked += 1
            return outputs[0]
        self.report.disagreements += 1
        bank = self._bank()
        scores = {decision: self._score(_applied(bank, planned)) for decision, (_, planned) in distinct.items()}
        best = max(scores.values())
        winner = next(d for d in distinct if scores[d] == best)  # ties: the earliest candidate
        if all(score == best for score in scores.values()):
            self.report.ties += 1
        index = distinct[winner][0]
        if index != 0:
            self.report.changed += 1
            self.report.changes.append({
                "messages_user": next((str(m["content"]) for m in messages if m["role"] == "user"), ""),
                "from": outputs[0], "to": outputs[index], "teacher": self.candidates[index].name,
                "scores": {json.dumps(d): s for d, s in scores.items()},
                "questions": [q.question for q in self._questions]})
        return outputs[index]

    def _plan(self, output: str, old: dict[str, str]) -> list[PlannedOp] | None:
        try:
            ops = parse_update_ops(output)
        except ModelOutputError:
            return None
        stamp = "1970-01-01T00:00:00+00:00"
        id_map = {i: MemoryRecord(id=i, text=text, hash="", created_at=stamp) for i, text in old.items()}
        planned, _ = plan_operations(ops, id_map)
        return planned

    def _score(self, texts: list[str]) -> float:
        """Mean LoCoMo score of the focused questions answered from ``texts``."""
        from memlora_engine.memory import Memory

        config = MemoryConfig(store="memory", namespace=f"outcome-{uuid.uuid4().hex[:12]}", prompt_style=self.style,
                              # answers judge the memory's decisions; a decline would judge nothing. The
                              # whole answer is scored, as when the shipped update expert's data was built.
                              answer_top_k=self.answer_top_k, polar_answers=False, **NO_DECLINES)
        with Memory(config, generator=self.answerer, embedder=self.embedder) as copy:
            for number, text in enumerate(texts):
                copy.put(str(number), text, user_id="outcome")
            total = 0.0
            for qa in self._questions:
                answer = copy.answer(qa.question, user_id="outcome", timestamp=self._when)
                total += self.score(answer.text, qa)
                self.report.questions += 1
        return total / len(self._questions)


def _decision(planned: Sequence[PlannedOp]) -> Decision:
    """What a plan changes, comparable across candidates (ADD by text, UPDATE/DELETE by target)."""
    pairs = Counter((op.event.value, op.target.text if op.target is not None else (op.text or "")) for op in planned)
    return tuple(sorted(pairs.elements()))


def _applied(bank: list[str], planned: Sequence[PlannedOp]) -> list[str]:
    """The bank's texts after ``planned`` (targets matched by text)."""
    texts = list(bank)
    for op in planned:
        if op.event is Event.ADD and op.text and op.text not in texts:
            texts.append(op.text)
        elif op.target is not None and op.target.text in texts:
            position = texts.index(op.target.text)
            if op.event is Event.DELETE:
                del texts[position]
            elif op.text:
                texts[position] = op.text
    return texts
