"""Turn the update operation's raw ops into validated changes.

The model sees the retrieved old memories under small integer ids ("0", "1", ...).
:func:`plan_operations` maps those back to real ids and rejects, with a reason,
every op it must not apply: an id outside the retrieved set, an UPDATE or ADD
without text, an unknown event, a second op on the same memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlora_engine.parsing import RawOp
from memlora_engine.types import Event, MemoryRecord

__all__ = ["PlannedOp", "Rejection", "plan_operations"]


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
