"""Plain data types shared across the engine: operations, events, scopes, records."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from memlora_engine.errors import ScopeError

__all__ = [
    "AddResult",
    "Answer",
    "Event",
    "HistoryEntry",
    "MemoryEvent",
    "MemoryRecord",
    "Operation",
    "Scope",
]


class Operation(str, Enum):
    """The model operations of the pipeline; each may have its own LoRA adapter."""

    EXTRACTION = "extraction"
    UPDATE = "update"
    GENERATION = "generation"
    VQA = "vqa"


class Event(str, Enum):
    """What the update operation decided for one memory."""

    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    NONE = "NONE"


_ID_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
_SCOPE_FIELDS = ("user_id", "agent_id", "run_id")


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class Scope:
    """The exact set of ids a memory belongs to.

    A scope is the tuple (user_id, agent_id, run_id) as given; at least one id is
    required. Each scope lives in its own Chroma collection, so one scope's memories
    are unreachable from any other scope at the store level.
    """

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name in _SCOPE_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ScopeError(f"{name} must be a string, got {type(value).__name__}")
            if not _ID_PATTERN.match(value) or _has_surrogate(value):
                raise ScopeError(
                    f"{name} must be 1-256 characters with no control characters, got {value!r}"
                )
        if self.user_id is None and self.agent_id is None and self.run_id is None:
            raise ScopeError("at least one of user_id, agent_id or run_id is required")

    @property
    def key(self) -> str:
        """A stable, unambiguous text key (length-prefixed, so no id can forge another)."""
        parts = []
        for name in _SCOPE_FIELDS:
            value = getattr(self, name)
            parts.append("-" if value is None else f"{len(value)}:{value}")
        return "|".join(parts)

    @classmethod
    def from_key(cls, key: str) -> Scope:
        """The scope whose :attr:`key` is ``key`` (raises ``ScopeError`` on a malformed key)."""
        values: list[str | None] = []
        rest = key
        for number in range(len(_SCOPE_FIELDS)):
            if number:
                if not rest.startswith("|"):
                    raise ScopeError(f"malformed scope key {key!r}")
                rest = rest[1:]
            if rest.startswith("-"):
                values.append(None)
                rest = rest[1:]
                continue
            length, sep, tail = rest.partition(":")
            if not sep or not length.isdigit() or len(tail) < int(length):
                raise ScopeError(f"malformed scope key {key!r}")
            values.append(tail[: int(length)])
            rest = tail[int(length) :]
        if rest:
            raise ScopeError(f"malformed scope key {key!r}")
        return cls(*values)

    def within(self, user_id: str | None, agent_id: str | None, run_id: str | None) -> bool:
        """True when every id given (not None) equals this scope's: the scope is one of theirs."""
        given = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
        return all(value is None or getattr(self, name) == value for name, value in given.items())

    @property
    def collection_name(self) -> str:
        return "memlora_" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:40]

    def as_dict(self) -> dict[str, str]:
        return {n: getattr(self, n) for n in _SCOPE_FIELDS if getattr(self, n) is not None}


@dataclass
class MemoryRecord:
    """One stored memory. ``score`` is set on search results (cosine similarity).

    ``superseded_by`` is None for a current memory. A *superseded* record keeps a text
    the update step replaced (``MemoryConfig.keep_superseded``): it names the memory
    that replaced it, keeps the replaced text's times and metadata, and is seen only
    by ``Memory.answer`` and export/import, never by search, get or the update step.

    ``source`` is the conversation ``Memory.add`` extracted the text from (the rendered
    window, ``"Name: text"`` lines), None for a text stored as given. With
    ``MemoryConfig.source_weight`` the memory is searched by its text and its source
    together; it is stored, exported and forgotten with the memory.
    """

    id: str
    text: str
    hash: str
    created_at: str
    updated_at: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    superseded_by: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for optional in ("score", "superseded_by", "source"):  # absent when unset: the export format of current memories
            if data[optional] is None:
                del data[optional]
        return data

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)


@dataclass(frozen=True)
class MemoryEvent:
    """One applied change, as returned by ``Memory.add``."""

    id: str
    text: str
    event: Event
    old_memory: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "event": self.event.value, "old_memory": self.old_memory}


@dataclass
class AddResult:
    """What one ``add`` call did. Iterating yields the applied events."""

    events: list[MemoryEvent] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[MemoryEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def ok(self) -> bool:
        """False when a model output could not be parsed (nothing was applied for it)."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [e.to_dict() for e in self.events],
            "facts": list(self.facts),
            "rejected": list(self.rejected),
            "failures": list(self.failures),
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the audit history."""

    memory_id: str
    event: str
    old_text: str | None
    new_text: str | None
    created_at: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """The result of memory-augmented generation.

    Attributes:
        text: the answer (for ``vqa``, the short answer alone).
        memories: the memories retrieved for the question, best first.
        operation: ``"generation"``, ``"vqa"`` when a vision model answered from an image,
            or ``"date"`` when a "When ...?" question was answered with the date of the
            best-ranked memory that states one (``MemoryConfig.date_answers``, no model call),
            or with the day the best-ranked memory was written when none states one
            (``MemoryConfig.written_date_answers``).
        reason: the ``vqa`` answer's one-sentence reason (None when the model's output
            could not be parsed); for ``generation``, what the answer to a yes/no question
            said after its verdict (``MemoryConfig.polar_answers``), or the declined
            answer and the memory it came from (``declined="other_source"``); for a
            ``date`` answer that is the day a memory was written
            (``MemoryConfig.written_date_answers``), that memory; else None.
        image_ids: the images the answer looked at.
        failure: why the model's output could not be parsed (its raw text is then the
            answer); counted in ``Memory.stats``.
        declined: why the engine declined the question (``text`` is then
            ``NOT_IN_MEMORY``): ``"other_subject"`` without a model call, ``"other_source"``
            after one, whose answer came from another person's memory (that answer is in
            ``reason``); None when it did not.
    """

    text: str
    memories: list[MemoryRecord] = field(default_factory=list)
    operation: str = "generation"
    reason: str | None = None
    image_ids: list[str] = field(default_factory=list)
    failure: str | None = None
    declined: str | None = None

    def __str__(self) -> str:
        return self.text
