"""Running a ``Generator.stream`` to its end, for the backbone tests of both runtimes."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def drain(stream: Generator[str, None, Any]) -> tuple[list[str], Any]:
    """The text chunks a stream yields, and the ``Generation`` it returns when it ends."""
    chunks = []
    while True:
        try:
            chunks.append(next(stream))
        except StopIteration as done:
            return chunks, done.value
