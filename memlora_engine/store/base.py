"""The storage port: what the engine needs from a vector store, and nothing more.

A :class:`Store` keeps memory records and their embeddings, partitioned by
:class:`~memlora_engine.types.Scope`: every call names one scope, and nothing one
scope holds is ever visible through another. Embeddings are computed by the
engine and passed in; a store never embeds text itself.

:class:`~memlora_engine.store.chroma.ChromaStore` is the production backend;
:class:`~memlora_engine.testing.InMemoryStore` is a pure-Python fake for tests.
Backend housekeeping (Chroma's SQLite VACUUM, its index scrub) stays inside the
backend: the engine only says *what* to forget (:meth:`Store.drop`), and a store
that writes to disk must leave no trace of the forgotten text there.

Filters follow the grammar of :mod:`memlora_engine.store.filters`; a backend
translates them (and raises :class:`~memlora_engine.errors.FilterError` for a
bad one). Backend failures surface as :class:`~memlora_engine.errors.StorageError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from memlora_engine.errors import MetadataError
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["MAX_METADATA_KEYS", "Store", "check_merged_metadata", "validate_metadata"]

_INT64 = (-(2**63), 2**63 - 1)

MAX_METADATA_KEYS = 64
"""The most metadata keys one call may give; a stored memory holds at most twice as many
(an UPDATE merges the new keys into the old). Chroma fails its compaction on thousands of
keys and then refuses every later read and write of that scope, its forgetting included."""


@runtime_checkable
class Store(Protocol):
    """Scoped storage of memory records with vector search.

    Writes of one call are atomic: an :meth:`upsert` or :meth:`delete` either
    happens whole or raises, which the engine's write journal relies on (it
    replays a batch after a crash, so every write must also be idempotent).

    A record whose ``superseded_by`` is set is a *superseded* record: a text the
    update step replaced (:attr:`~memlora_engine.types.MemoryRecord.superseded_by`).
    Only :meth:`query` and :meth:`list` with ``superseded=True`` return such records;
    every other read sees the current memories alone, and :meth:`delete` of a memory
    removes the records it superseded.
    """

    @property
    def lock_directory(self) -> Path | None:
        """A directory every process that opens this store can see, or None.

        The engine keeps its cross-process lock files there and calls
        :meth:`refresh` before reads. None means the store is reached by this
        process alone (in memory, or a server that orders writes itself): threads
        are still serialised, processes are not, and :meth:`refresh` is not needed.
        """
        ...

    @property
    def max_batch_size(self) -> int:
        """The most records one atomic :meth:`upsert` may carry; larger batches are split."""
        ...

    def refresh(self, generation: int, *, mine: bool = False) -> None:
        """Bring this process's view up to the store's write ``generation``.

        The engine bumps a counter (kept in its history database) with every
        committed batch in any process. A store whose handle caches state (an
        embedded index) reloads when ``generation`` moved since it last looked;
        ``mine`` says this process made the change itself, so its view is current.
        Stores without such a cache do nothing.
        """
        ...

    def upsert(self, scope: Scope, records: Sequence[MemoryRecord], embeddings: Sequence[Sequence[float]]) -> None:
        """Insert or replace ``records`` (by id) with their ``embeddings``, in order (superseded ones too)."""
        ...

    def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        """Remove the records with these ids and the superseded records they name; unknown ids are ignored."""
        ...

    def fetch(self, scope: Scope, ids: Sequence[str]) -> list[MemoryRecord]:
        """The records with these ids, in the order asked; missing ids are skipped."""
        ...

    def query(
        self, scope: Scope, embedding: Sequence[float], k: int, filters: dict[str, Any] | None = None, *,
        superseded: bool = False,
    ) -> list[MemoryRecord]:
        """The ``k`` records nearest ``embedding`` by cosine, best first, ``score`` = cosine similarity.

        ``superseded``: rank the superseded records beside the current ones.
        """
        ...

    def count(self, scope: Scope) -> int:
        """How many records the scope holds."""
        ...

    def hashes_present(self, scope: Scope, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` (:func:`~memlora_engine.repository.text_hash`) some record already has."""
        ...

    def ids_with_hash(self, scope: Scope, hash_: str) -> list[str]:
        """The ids of the records whose text hash is ``hash_``."""
        ...

    def scopes(self) -> list[Scope]:
        """Every scope that holds (or held, until dropped) records in this store."""
        ...

    def drop(self, scope: Scope) -> None:
        """Forget the scope: its records, and on disk every byte of their text."""
        ...

    def reset(self) -> None:
        """Drop every scope."""
        ...

    def close(self) -> None:
        """Release what this handle holds; it is unusable afterwards."""
        ...

    # Last: below it, ``list`` in an annotation would name this method.
    def list(self, scope: Scope, filters: dict[str, Any] | None = None, limit: int | None = None, *,
             superseded: bool = False) -> list[MemoryRecord]:
        """The records matching ``filters``, oldest first (by ``created_at``, then id).

        ``superseded``: the superseded records too (after the current ones: an export
        imported in order writes every memory before a record that names it).
        """
        ...


def _storable_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no store can write them
        return False
    return True


def check_merged_metadata(merged: dict[str, Any]) -> dict[str, Any]:
    """Refuse a memory's metadata grown past ``2 * MAX_METADATA_KEYS`` keys by merging; return it."""
    if len(merged) > 2 * MAX_METADATA_KEYS:
        raise MetadataError(f"the memory's metadata would hold {len(merged)} keys; at most {2 * MAX_METADATA_KEYS}")
    return merged


def validate_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Check user metadata is flat and storable; return a copy."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise MetadataError(f"metadata must be a dict, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise MetadataError(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS}")
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith("_") or len(key) > 256 or not _storable_text(key):
            raise MetadataError(f"metadata key {key!r} must be a 1-256 character string not starting with '_'")
        if not isinstance(value, (str, int, float, bool)):
            raise MetadataError(
                f"metadata value for {key!r} must be str, int, float or bool, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise MetadataError(f"metadata value for {key!r} must be finite, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
            raise MetadataError(f"metadata value for {key!r} does not fit in 64 bits (it would be stored rounded)")
        if isinstance(value, str) and not _storable_text(value):
            raise MetadataError(f"metadata value for {key!r} is not valid Unicode (lone surrogate)")
        clean[key] = value
    return clean
