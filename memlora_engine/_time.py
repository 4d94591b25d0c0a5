"""Timestamps as the engine takes them (``datetime``, ISO string or None) and writes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from memlora_engine.errors import InvalidInputError

__all__ = ["Timestamp", "iso", "resolve"]

Timestamp = datetime | str | None


def iso(moment: datetime) -> str:
    """``moment`` as stored: ISO 8601 to the second, with its offset (local time when naive)."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def resolve(timestamp: Timestamp, clock: Callable[[], datetime]) -> datetime:
    """The moment ``timestamp`` names, or ``clock()`` when it is None.

    Raises:
        InvalidInputError: neither a datetime nor an ISO 8601 string.
    """
    if timestamp is None:
        return clock()
    if isinstance(timestamp, datetime):
        return timestamp
    if isinstance(timestamp, str):
        try:
            return datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise InvalidInputError(f"timestamp must be ISO 8601, got {timestamp!r}") from exc
    raise InvalidInputError(f"timestamp must be a datetime or ISO string, got {type(timestamp).__name__}")
