"""Reading the developers' hand-written case files (JSON lines; blank and ``#`` lines skipped)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memlora_engine.errors import InvalidInputError

__all__ = ["case_records"]


def case_records(source: Path, what: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, record)`` per line of ``source``; ``where`` is ``file:line`` for error messages.

    Raises:
        InvalidInputError: the file cannot be read, or a line is not JSON.
    """
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {source}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source.name}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not JSON ({exc})") from exc
