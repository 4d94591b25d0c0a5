"""The JSONL export format: one :class:`~memlora_engine.types.MemoryRecord` per line.

Each line is ``MemoryRecord.to_dict()`` with sorted keys (id, text, hash, times,
scope ids, metadata; ``source`` on a memory ``add`` extracted; ``superseded_by`` on a
superseded record, written after the current memories). ``Memory.export`` writes it and ``Memory.import_`` reads it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from memlora_engine.errors import InvalidInputError, StorageError
from memlora_engine.messages import check_text
from memlora_engine.repository import text_hash
from memlora_engine.store.base import validate_metadata
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["read_records", "write_records"]


def write_records(records: Sequence[MemoryRecord], destination: str | Path | IO[str]) -> int:
    """Write ``records`` as JSONL to a path (replaced) or an open text stream. Returns the count."""
    lines = [json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for r in records]
    try:
        if isinstance(destination, (str, Path)):
            # Whole or not at all: a failed export never leaves a torn file in place of a good one.
            path = Path(destination)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                             delete=False) as tmp:
                try:
                    tmp.write("".join(lines))
                    tmp.close()
                    os.replace(tmp.name, path)
                except BaseException:
                    os.unlink(tmp.name)
                    raise
        else:
            destination.writelines(lines)
    except OSError as exc:
        raise StorageError(f"cannot write the export to {destination!r}: {exc}") from exc
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
        try:
            lines: Iterable[str] = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read the import file {str(source)!r}: {exc}") from exc
    else:
        lines = source
    by_scope: dict[Scope, list[MemoryRecord]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError(f"a record is a JSON object, got {type(data).__name__}")
            for key in ("id", "text", "created_at"):
                if not isinstance(data.get(key), str) or not data[key].strip():
                    raise ValueError(f"{key!r} must be a non-empty string, got {data.get(key)!r}")
                check_text(data[key], key)
            superseded_by = data.get("superseded_by")
            if superseded_by is not None and (not isinstance(superseded_by, str) or not superseded_by.strip()):
                raise ValueError(f"'superseded_by' must be a memory id or absent, got {superseded_by!r}")
            origin = data.get("source")
            if origin is not None:
                if not isinstance(origin, str) or not origin.strip():
                    raise ValueError(f"'source' must be a non-empty string or absent, got {origin!r}")
                check_text(origin, "source")
            record = MemoryRecord(
                id=str(data["id"]), text=str(data["text"]), hash=str(data.get("hash") or text_hash(data["text"])),
                created_at=str(data["created_at"]), updated_at=data.get("updated_at"),
                user_id=data.get("user_id"), agent_id=data.get("agent_id"), run_id=data.get("run_id"),
                metadata=validate_metadata(data.get("metadata")), superseded_by=superseded_by, source=origin,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"line {number} is not a MemLoRA export record: {exc}") from exc
        target = scope or record.scope
        record.user_id, record.agent_id, record.run_id = target.user_id, target.agent_id, target.run_id
        by_scope.setdefault(target, []).append(record)
    return by_scope
