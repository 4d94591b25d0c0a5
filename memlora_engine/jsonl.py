"""The JSONL export format: one :class:`~memlora_engine.types.MemoryRecord` per line.

Each line is ``MemoryRecord.to_dict()`` with sorted keys (id, text, hash, times,
scope ids, metadata). ``Memory.export`` writes it and ``Memory.import_`` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from memlora_engine.errors import InvalidInputError
from memlora_engine.repository import text_hash
from memlora_engine.store.base import validate_metadata
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["read_records", "write_records"]


def write_records(records: Sequence[MemoryRecord], destination: str | Path | IO[str]) -> int:
    """Write ``records`` as JSONL to a path (replaced) or an open text stream. Returns the count."""
    lines = [json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for r in records]
    if isinstance(destination, (str, Path)):
        Path(destination).write_text("".join(lines), encoding="utf-8")
    else:
        destination.writelines(lines)
    return len(lines)


def read_records(source: str | Path | IO[str] | Iterable[str], scope: Scope | None = None) -> dict[Scope, list[MemoryRecord]]:
    """Parse JSONL written by :func:`write_records`, grouped by scope.

    Args:
        source: a path, an open text stream, or lines.
        scope: put every record in this scope; None keeps the scope written in each line.

    Raises:
        InvalidInputError: a line is not an export record (its number is in the message).
    """
    if isinstance(source, (str, Path)):
        lines: Iterable[str] = Path(source).read_text(encoding="utf-8").splitlines()
    else:
        lines = source
    by_scope: dict[Scope, list[MemoryRecord]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = MemoryRecord(
                id=str(data["id"]), text=str(data["text"]), hash=str(data.get("hash") or text_hash(data["text"])),
                created_at=str(data["created_at"]), updated_at=data.get("updated_at"),
                user_id=data.get("user_id"), agent_id=data.get("agent_id"), run_id=data.get("run_id"),
                metadata=validate_metadata(data.get("metadata")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"line {number} is not a MemLoRA export record: {exc}") from exc
        target = scope or record.scope
        record.user_id, record.agent_id, record.run_id = target.user_id, target.agent_id, target.run_id
        by_scope.setdefault(target, []).append(record)
    return by_scope
