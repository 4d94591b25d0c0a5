"""A pure-Python :class:`~memlora_engine.store.base.Store` for tests (re-exported by :mod:`memlora_engine.testing`).

Exact cosine search over lists of floats and Chroma's filter semantics, so code
above the store can be tested without Chroma. Not persistent, and not shared
between processes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.embeddings.base import cosine
from memlora_engine.errors import StorageError
from memlora_engine.store.filters import to_chroma_where
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["InMemoryStore"]


def _same(stored: Any, wanted: Any) -> bool:
    # As in Chroma: booleans equal only booleans; ints and floats compare as numbers.
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    return bool(stored == wanted)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


def _matches(where: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Evaluate a ``where`` of :func:`~memlora_engine.store.filters.to_chroma_where` as Chroma does.

    A negation (``$ne``, ``$nin``) also matches a record without the key; a range
    matches numbers only.
    """
    if "$and" in where:
        return all(_matches(w, metadata) for w in where["$and"])
    if "$or" in where:
        return any(_matches(w, metadata) for w in where["$or"])
    ((key, condition),) = where.items()
    ((op, wanted),) = condition.items()
    present = key in metadata
    value = metadata.get(key)
    if op in ("$eq", "$ne"):
        return (present and _same(value, wanted)) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (present and any(_same(value, w) for w in wanted)) == (op == "$in")
    return present and _number(value) and _RANGES[op](value, wanted)


class InMemoryStore:
    """A :class:`~memlora_engine.store.base.Store` in plain Python: exact cosine search, Chroma's filters.

    For tests of code above the store (no Chroma needed). Not persistent, not
    shared between processes (``lock_directory`` is None). Thread-safe.

    Args:
        max_batch_size: the largest atomic upsert; small values exercise batch splitting.
    """

    def __init__(self, *, max_batch_size: int = 1000) -> None:
        self._max_batch = max_batch_size
        self._lock = threading.Lock()
        self._scopes: dict[str, Scope] = {}
        self._rows: dict[str, dict[str, tuple[MemoryRecord, list[float]]]] = {}

    @property
    def lock_directory(self) -> Path | None:
        return None

    @property
    def max_batch_size(self) -> int:
        return self._max_batch

    def refresh(self, generation: int, *, mine: bool = False) -> None:
        """Nothing to reload: every handle is this object."""

    @staticmethod
    def _copy(record: MemoryRecord, score: float | None = None) -> MemoryRecord:
        return dataclasses.replace(record, metadata=dict(record.metadata), score=score)

    def upsert(self, scope: Scope, records: Sequence[MemoryRecord], embeddings: Sequence[Sequence[float]]) -> None:
        if not records:
            return
        if len(records) != len(embeddings):
            raise StorageError("one embedding per record")
        with self._lock:
            self._scopes.setdefault(scope.key, scope)
            rows = self._rows.setdefault(scope.key, {})
            for record, vector in zip(records, embeddings):
                rows[record.id] = (self._copy(record), [float(v) for v in vector])

    def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        gone = set(ids)
        with self._lock:
            rows = self._rows.get(scope.key, {})
            for id_, (record, _) in list(rows.items()):
                if id_ in gone or record.superseded_by in gone:
                    del rows[id_]

    def _records(self, scope: Scope, *, superseded: bool = False) -> list[tuple[MemoryRecord, list[float]]]:
        with self._lock:
            rows = list(self._rows.get(scope.key, {}).values())
        return rows if superseded else [(r, v) for r, v in rows if r.superseded_by is None]

    def fetch(self, scope: Scope, ids: Sequence[str]) -> list[MemoryRecord]:
        by_id = {r.id: r for r, _ in self._records(scope)}
        return [self._copy(by_id[i]) for i in ids if i in by_id]

    def query(
        self, scope: Scope, embedding: Sequence[float], k: int, filters: dict[str, Any] | None = None, *,
        superseded: bool = False,
    ) -> list[MemoryRecord]:
        where = to_chroma_where(filters)
        if k <= 0:
            return []
        hits = [(cosine(embedding, v), r) for r, v in self._records(scope, superseded=superseded)
                if where is None or _matches(where, r.metadata)]
        hits.sort(key=lambda hit: -hit[0])
        return [self._copy(r, score) for score, r in hits[:k]]

    def count(self, scope: Scope) -> int:
        return len(self._records(scope))

    def hashes_present(self, scope: Scope, hashes: Sequence[str]) -> set[str]:
        wanted = set(hashes)
        return {r.hash for r, _ in self._records(scope) if r.hash in wanted}

    def ids_with_hash(self, scope: Scope, hash_: str) -> list[str]:
        return [r.id for r, _ in self._records(scope) if r.hash == hash_]

    def scopes(self) -> list[Scope]:
        with self._lock:
            return list(self._scopes.values())

    def drop(self, scope: Scope) -> None:
        with self._lock:
            self._scopes.pop(scope.key, None)
            self._rows.pop(scope.key, None)

    def reset(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._rows.clear()

    def close(self) -> None:
        """Nothing to release."""

    # Last: below it, ``list`` in an annotation would name this method.
    def list(self, scope: Scope, filters: dict[str, Any] | None = None, limit: int | None = None, *,
             superseded: bool = False) -> list[MemoryRecord]:
        where = to_chroma_where(filters)
        found = [self._copy(r) for r, _ in self._records(scope, superseded=superseded)
                 if where is None or _matches(where, r.metadata)]
        found.sort(key=lambda r: (r.superseded_by is not None, r.created_at, r.id))
        return found if limit is None else found[:limit]
