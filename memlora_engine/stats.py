"""Per-operation counters: calls, tokens, seconds, parse failures, rejected ops, undecided facts, collapsed loops,
declined questions, renamed subjects; image counts."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

from memlora_engine.types import Operation

__all__ = ["OperationStats", "Stats"]


@dataclass
class OperationStats:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    parse_failures: int = 0
    rejected_ops: int = 0
    uncovered_facts: int = 0
    duplicate_adds: int = 0
    unchanged_updates: int = 0
    collapsed_loops: int = 0
    declined: int = 0
    renamed_subjects: int = 0
    anchored_dates: int = 0
    date_answers: int = 0
    written_date_answers: int = 0


class Stats:
    """Thread-safe counters per operation, plus the last few unparseable outputs."""

    def __init__(self, keep_failures: int = 20) -> None:
        self._lock = threading.Lock()
        self._ops = {op: OperationStats() for op in Operation}
        self._images: dict[str, int] = {}
        self.recent_failures: deque[tuple[str, str]] = deque(maxlen=keep_failures)

    def record_call(self, op: Operation, *, input_tokens: int, output_tokens: int, seconds: float) -> None:
        with self._lock:
            s = self._ops[op]
            s.calls += 1
            s.input_tokens += input_tokens
            s.output_tokens += output_tokens
            s.seconds += seconds

    def record_parse_failure(self, op: Operation, raw: str) -> None:
        with self._lock:
            self._ops[op].parse_failures += 1
            self.recent_failures.append((op.value, raw))

    def record_rejected(self, op: Operation, count: int = 1) -> None:
        with self._lock:
            self._ops[op].rejected_ops += count

    def record_update_plan(self, *, uncovered: int, duplicates: int, unchanged: int = 0) -> None:
        """Count the facts the update output left undecided, its ADDs of stored texts, and its unchanged
        UPDATEs read as UPDATEs with their fact (``MemoryConfig.unchanged_updates``)."""
        with self._lock:
            s = self._ops[Operation.UPDATE]
            s.uncovered_facts += uncovered
            s.duplicate_adds += duplicates
            s.unchanged_updates += unchanged

    def record_collapsed_loop(self, op: Operation) -> None:
        """Count an answer whose looping list was cut back (:func:`~memlora_engine.parsing.collapse_repeated_items`)."""
        with self._lock:
            self._ops[op].collapsed_loops += 1

    def record_declined(self, op: Operation) -> None:
        """Count a declined question (:mod:`memlora_engine.subjects`: before the model call or after it)."""
        with self._lock:
            self._ops[op].declined += 1

    def record_renamed_subjects(self, count: int) -> None:
        """Count extracted facts renamed to the speaker they restate (:func:`memlora_engine.subjects.speaker_subjects`)."""
        with self._lock:
            self._ops[Operation.EXTRACTION].renamed_subjects += count

    def record_date_answer(self, *, written: bool = False) -> None:
        """Count a "When ...?" question answered with the date a memory states (``MemoryConfig.date_answers``),
        or with the day it was written (``written``: ``MemoryConfig.written_date_answers``)."""
        with self._lock:
            s = self._ops[Operation.GENERATION]
            if written:
                s.written_date_answers += 1
            else:
                s.date_answers += 1

    def record_anchored_dates(self, count: int) -> None:
        """Count extracted facts whose relative dates were anchored (:func:`memlora_engine.dates.anchor_dates`)."""
        with self._lock:
            self._ops[Operation.EXTRACTION].anchored_dates += count

    def record_images(self, kind: str, count: int = 1) -> None:
        """Count images by ``kind``: ``stored``, ``uncaptioned`` (a text-only model saw no caption)..."""
        with self._lock:
            self._images[kind] = self._images.get(kind, 0) + count

    @property
    def images(self) -> dict[str, int]:
        """The image counts so far (a copy)."""
        with self._lock:
            return dict(self._images)

    def __getitem__(self, op: Operation | str) -> OperationStats:
        with self._lock:
            return OperationStats(**asdict(self._ops[Operation(op)]))

    def as_dict(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {op.value: asdict(s) for op, s in self._ops.items()}

    def reset(self) -> None:
        with self._lock:
            self._ops = {op: OperationStats() for op in Operation}
            self._images = {}
            self.recent_failures.clear()
