"""Chroma vector store: one collection per scope.

Every scope (user/agent/run ids) gets its own collection, named from a hash of the
scope, so a query in one scope cannot return another scope's memories whatever the
filter says. A scope's superseded records (texts the update step replaced) live in a
second collection beside it, named with a ``_superseded`` suffix: every read but
``query``/``list`` with ``superseded=True`` touches the first alone, so a search pays
nothing for them (a metadata filter excluding them costs Chroma ~250 ms a query at
100k records: it builds the allowed-id set each time), and ``drop`` removes both.
Embeddings are always computed by MemLoRA and passed in; Chroma's default embedding
function (which would download a model) is never used.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from memlora_engine._locks import ProcessLock
from memlora_engine.errors import ConfigError, MetadataError, StorageError, require
from memlora_engine.store._chroma_disk import harden_heap, heap_hardened, remove_dead_segments, scrub_hnsw, vacuum
from memlora_engine.store.base import validate_metadata
from memlora_engine.store.filters import to_chroma_where
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["ChromaStore", "validate_metadata"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Internal metadata keys; user metadata may not start with "_".
_HASH, _CREATED, _UPDATED, _SUPERSEDED_BY = "_hash", "_created_at", "_updated_at", "_superseded_by"
_SOURCE = "_source"  # MemoryRecord.source: the conversation add extracted the text from
_SUPERSEDED = "_superseded"  # the suffix of a scope's collection of superseded records
_SCOPE_KEYS = {"user_id": "_user_id", "agent_id": "_agent_id", "run_id": "_run_id"}
_PAGE = 1000
_MAX_RESULTS = 2**31 - 1  # n_results past 32 bits overflows Chroma's binding


class _Shared:
    """One embedded store directory as this process sees it: its client and lock.

    Every ``ChromaStore`` on a directory shares this, so a reload (see
    :meth:`ChromaStore.refresh`) happens once and never under another thread's call.
    """

    _registry: dict[str, _Shared] = {}
    _registry_lock = threading.Lock()

    def __init__(self, client: Any, factory: Callable[[], Any] | None, lock: ProcessLock | None = None) -> None:
        self.client = client
        self.factory = factory
        # Every call into Chroma holds this: threads of this process never overlap one,
        # and on disk no two processes' calls overlap either. Chroma's reads are not
        # read-only (a read applies the log to the vector index and may persist it), so
        # two processes persisting one index at once could drop each other's entries;
        # and a purge's VACUUM must not run under any other process's Chroma call.
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self.generation: int | None = None
        self.version = 0

    @classmethod
    def for_path(cls, path: Path, factory: Callable[[], Any], lock_file: Path) -> _Shared:
        with cls._registry_lock:
            shared = cls._registry.get(str(path))
            if shared is None:
                lock = ProcessLock(lock_file)
                with lock:
                    client = factory()
                shared = cls._registry[str(path)] = cls(client, factory, lock)
            return shared


class ChromaStore:
    """Memories of every scope in one Chroma client (embedded, in-memory or server).

    Build one with :meth:`persistent`, :meth:`in_memory` or :meth:`http`. Implements
    :class:`~memlora_engine.store.base.Store`; forgetting on disk (SQLite VACUUM,
    scrubbing the vector index files) happens here, in :meth:`drop`.
    """

    def __init__(
        self, client: Any, *, path: Path | None = None, namespace: str = "memlora", shared: _Shared | None = None
    ) -> None:
        if not namespace.replace("-", "").replace("_", "").isalnum() or len(namespace) > 64:
            raise ConfigError(f"namespace must be 1-64 letters, digits, '-' or '_', got {namespace!r}")
        self._shared = shared if shared is not None else _Shared(client, None)
        self._path = path
        self._namespace = namespace
        self._collections: dict[str, Any] = {}
        self._version = self._shared.version
        # Chroma calls on one directory are serialised in a process: a reload must
        # never close the client under a running call.
        self._lock = self._shared.lock
        self._max_batch: int | None = None
        _precomputed()  # registered before any collection is loaded by name

    @property
    def _client(self) -> Any:
        return self._shared.client

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def _settings(**kwargs: Any) -> Any:
        chromadb_config = require("chromadb.config", "chroma")
        return chromadb_config.Settings(anonymized_telemetry=False, allow_reset=True, **kwargs)

    @classmethod
    def persistent(cls, path: str | Path, *, namespace: str = "memlora") -> ChromaStore:
        """An embedded store persisted under ``path`` (created if missing)."""
        chromadb = require("chromadb", "chroma")
        path = Path(path).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        # Before the client allocates anything: buffers Chroma persists must never
        # carry bytes of text this process held (see store/_chroma_disk.py).
        harden_heap()
        settings = cls._settings()

        def factory() -> Any:
            return _retry_busy("opening the store", lambda: chromadb.PersistentClient(path=str(path), settings=settings))

        lock_file = path.with_name(path.name + ".locks") / "locks" / "chroma.lock"
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        shared = _Shared.for_path(path, factory, lock_file)
        return cls(shared.client, path=path, namespace=namespace, shared=shared)

    def refresh(self, generation: int, *, mine: bool = False) -> None:
        """Make this process's view current with the store's write ``generation``.

        Chroma's embedded client keeps each collection's vector index in memory
        and does not notice writes by another process: its searches would miss
        them, and its next write could persist a stale index over them. When
        another process has committed since this one last looked (``generation``
        moved), the client is reopened, which reloads the index from disk.
        ``mine``: this process made the change itself, so its view is current.
        """
        shared = self._shared
        if shared.factory is None:
            return  # in-memory or server: every client sees every write
        with self._lock:
            if shared.generation is not None and shared.generation != generation and not mine:
                logger.debug("store changed by another process (generation %s -> %s): reloading",
                             shared.generation, generation)
                with _mapped("reloading the store"):
                    shared.client.close()
                shared.client = shared.factory()
                shared.version += 1
            shared.generation = generation

    sync = refresh  # the name before the Store protocol (kept for callers of ChromaStore)

    @classmethod
    def in_memory(cls, *, namespace: str = "memlora") -> ChromaStore:
        """A private in-process store (its own Chroma database), gone when the process ends."""
        chromadb = require("chromadb", "chroma")
        settings = cls._settings(is_persistent=False)
        database = "memlora_" + uuid.uuid4().hex
        with _mapped("creating an in-memory store"):
            # Ephemeral clients share one in-process system; a database of our own
            # keeps two in-memory stores from seeing each other's collections.
            chromadb.AdminClient(settings).create_database(database)
            client = chromadb.EphemeralClient(settings=settings, database=database)
        return cls(client, namespace=namespace)

    @classmethod
    def http(
        cls,
        host: str = "localhost",
        port: int = 8000,
        *,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
        namespace: str = "memlora",
    ) -> ChromaStore:
        """A store on a Chroma server (``chroma run --path DIR``)."""
        chromadb = require("chromadb", "chroma")
        with _mapped(f"connecting to the Chroma server at {host}:{port}"):
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=cls._settings())
        return cls(client, namespace=namespace)

    @property
    def path(self) -> Path | None:
        """The directory of an embedded persistent store, else None."""
        return self._path

    @property
    def lock_directory(self) -> Path | None:
        """``<path>.locks`` beside an embedded store (shared by its processes), else None."""
        return self._path.with_name(self._path.name + ".locks") if self._path is not None else None

    def close(self) -> None:
        """Forget cached collections; the client is released when garbage-collected."""
        with self._lock:
            self._collections.clear()

    # -- collections ------------------------------------------------------------------
    def collection_name(self, scope: Scope, *, superseded: bool = False) -> str:
        digest = hashlib.sha256(f"{self._namespace}\n{scope.key}".encode()).hexdigest()[:40]
        return f"{self._namespace}_{digest}{_SUPERSEDED if superseded else ''}"

    def _collection(self, scope: Scope, *, create: bool, superseded: bool = False) -> Any | None:
        name = self.collection_name(scope, superseded=superseded)
        with self._lock:
            if self._version != self._shared.version:  # reloaded: cached handles are stale
                self._collections.clear()
                self._version = self._shared.version
            if name in self._collections:
                return self._collections[name]
            with _mapped("opening a collection"), _legacy_config_quiet():
                if create:
                    # Another key for a scope's superseded records: no older release lists
                    # them as a scope of its own.
                    owner = "memlora_superseded_namespace" if superseded else "memlora_namespace"
                    metadata = {owner: self._namespace, **{f"scope_{k}": v for k, v in scope.as_dict().items()}}
                    col = self._client.get_or_create_collection(
                        name, metadata=metadata, configuration={"hnsw": {"space": "cosine", **_HNSW_PERSIST}},
                        embedding_function=_precomputed(),
                    )
                else:
                    try:
                        col = self._client.get_collection(name, embedding_function=_precomputed())
                    except Exception as exc:  # chromadb raises NotFoundError (or ValueError in older releases)
                        if _is_missing(exc):
                            return None
                        raise
                _persist_every_batch(col)
            self._collections[name] = col
            return col

    def _on(self, scope: Scope, action: str, fn: Callable[[Any], T], *, create: bool = False, default: T,
            superseded: bool = False) -> T:
        """Run ``fn(collection)``; ``default`` when the scope has no collection.

        ``superseded``: the scope's collection of superseded records. Another client
        (or process) may drop a collection this one has cached: on "does not exist"
        the cache entry is dropped and the lookup retried once.
        """
        for attempt in (0, 1):
            # One hold for the lookup and the call: a reload or purge by another
            # thread in between would close the client under the handle.
            with self._lock:
                col = self._collection(scope, create=create, superseded=superseded)
                if col is None:
                    return default
                try:
                    return _retry_busy(action, functools.partial(fn, col))
                except StorageError as exc:
                    if attempt or not _is_missing(exc.__cause__):
                        raise
                    self._collections.pop(self.collection_name(scope, superseded=superseded), None)
        raise AssertionError("unreachable")  # pragma: no cover

    def scopes(self) -> list[Scope]:
        """Every scope that has a collection (of memories, or of superseded records only) in this namespace."""
        found: dict[str, Scope] = {}
        with self._lock, _mapped("listing collections"), _legacy_config_quiet():
            collections = self._client.list_collections()
        for col in collections:
            meta = col.metadata or {}
            if self._namespace not in (meta.get("memlora_namespace"), meta.get("memlora_superseded_namespace")):
                continue
            scope = Scope(**{k: meta.get(f"scope_{k}") for k in _SCOPE_KEYS})
            found.setdefault(scope.key, scope)
        return list(found.values())

    # -- records ----------------------------------------------------------------------
    @staticmethod
    def _to_metadata(record: MemoryRecord) -> dict[str, Any]:
        meta: dict[str, Any] = dict(record.metadata)
        meta[_HASH] = record.hash
        meta[_CREATED] = record.created_at
        if record.updated_at:
            meta[_UPDATED] = record.updated_at
        if record.superseded_by is not None:
            meta[_SUPERSEDED_BY] = record.superseded_by
        if record.source is not None:
            meta[_SOURCE] = record.source
        for field, key in _SCOPE_KEYS.items():
            value = getattr(record, field)
            if value is not None:
                meta[key] = value
        return meta

    @staticmethod
    def _to_record(id_: str, document: str | None, meta: dict[str, Any] | None, score: float | None = None) -> MemoryRecord:
        meta = dict(meta or {})
        return MemoryRecord(
            id=id_,
            text=document or "",
            hash=str(meta.pop(_HASH, "")),
            created_at=str(meta.pop(_CREATED, "")),
            updated_at=meta.pop(_UPDATED, None),
            user_id=meta.pop("_user_id", None),
            agent_id=meta.pop("_agent_id", None),
            run_id=meta.pop("_run_id", None),
            metadata={k: v for k, v in meta.items() if not k.startswith("_")},
            score=score,
            superseded_by=meta.pop(_SUPERSEDED_BY, None),
            source=meta.pop(_SOURCE, None),
        )

    def upsert(self, scope: Scope, records: Sequence[MemoryRecord], embeddings: Sequence[Sequence[float]]) -> None:
        """Insert or replace ``records`` (with their embeddings) in ``scope``.

        Superseded records go to the scope's second collection, written first: when
        the write of the current memories then fails, they are deleted again before
        the error is raised, so the call happens whole or not at all. (Should that
        delete fail too, what stays is a copy of a text its memory still holds, which
        ``answer`` may list and which goes with the memory: no current memory is touched.)
        """
        if not records:
            return
        pairs = list(zip(records, embeddings, strict=True))
        old = [(r, e) for r, e in pairs if r.superseded_by is not None]
        current = [(r, e) for r, e in pairs if r.superseded_by is None]
        if old:
            self._on(scope, "writing superseded memories", functools.partial(self._write, old), create=True,
                     default=None, superseded=True)
        try:
            if current:
                self._on(scope, "writing memories", functools.partial(self._write, current), create=True,
                         default=None)
        except BaseException:
            if old:
                ids = [r.id for r, _ in old]
                self._on(scope, "undoing superseded memories", lambda col: col.delete(ids=ids), default=None,
                         superseded=True)
            raise

    def _write(self, pairs: Sequence[tuple[MemoryRecord, Sequence[float]]], col: Any) -> None:
        ids = [r.id for r, _ in pairs]
        # Chroma's upsert merges metadata into a stored record's; a key the new
        # record lacks is cleared (None) so the record is replaced, as the port says.
        stored = col.get(ids=ids, include=["metadatas"])
        old_keys = {i: set(m or {}) for i, m in zip(stored["ids"], stored["metadatas"])}
        metadatas: list[dict[str, Any]] = []
        for record, _ in pairs:
            meta = self._to_metadata(record)
            meta.update(dict.fromkeys(old_keys.get(record.id, set()) - meta.keys()))
            metadatas.append(meta)
        col.upsert(ids=ids, documents=[r.text for r, _ in pairs], metadatas=metadatas,
                   embeddings=[list(map(float, e)) for _, e in pairs])

    def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        """Delete these records and the superseded records they name (a superseded record's own id works too)."""
        if not ids:
            return
        wanted = list(ids)

        def forget_superseded(col: Any) -> None:
            col.delete(ids=wanted)
            for start in range(0, len(wanted), _PAGE):
                part = wanted[start : start + _PAGE]
                col.delete(where={_SUPERSEDED_BY: part[0]} if len(part) == 1 else {_SUPERSEDED_BY: {"$in": part}})

        # The superseded records first: a failure part-way leaves the memory, never a record naming a deleted one.
        self._on(scope, "deleting superseded memories", forget_superseded, default=None, superseded=True)
        self._on(scope, "deleting memories", lambda col: col.delete(ids=wanted), default=None)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> list[MemoryRecord]:
        """The records with these ids in ``scope`` (missing ids are skipped)."""
        if not ids:
            return []
        got = self._on(scope, "reading memories",
                       lambda col: col.get(ids=list(ids), include=["documents", "metadatas"]), default=None)
        if got is None:
            return []
        by_id = {i: self._to_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
        return [by_id[i] for i in ids if i in by_id]

    @property
    def max_batch_size(self) -> int:
        """The most records one atomic write may carry (Chroma's limit)."""
        if self._max_batch is None:
            try:
                self._max_batch = int(self._client.get_max_batch_size())
            except Exception:  # older clients or servers without the call
                self._max_batch = 1000
        return self._max_batch

    def hashes_present(self, scope: Scope, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` some memory of ``scope`` already has (one lookup per 1000)."""
        unique = list(dict.fromkeys(hashes))
        found: set[str] = set()
        for start in range(0, len(unique), _PAGE):
            part = unique[start : start + _PAGE]
            where = {_HASH: part[0]} if len(part) == 1 else {_HASH: {"$in": part}}
            lookup = functools.partial(_get_metadatas, where=where)
            got = self._on(scope, "looking up hashes", lookup, default=None)
            if got is not None:
                found.update(str((m or {}).get(_HASH)) for m in got["metadatas"])
        return found

    def ids_with_hash(self, scope: Scope, hash_: str) -> list[str]:
        return self._on(scope, "looking up a hash",
                        lambda col: list(col.get(where={_HASH: hash_}, include=[])["ids"]), default=[])

    def query(
        self, scope: Scope, embedding: Sequence[float], k: int, filters: dict[str, Any] | None = None, *,
        superseded: bool = False,
    ) -> list[MemoryRecord]:
        """Top-``k`` records by cosine similarity (``score`` = 1 - cosine distance).

        ``superseded``: the top ``k`` of each collection, merged by score.
        """
        where = to_chroma_where(filters)
        if k <= 0:
            return []
        vector = [float(v) for v in embedding]

        def search(col: Any) -> list[tuple[Any, ...]]:
            # Chroma's binding overflows on n_results past 32 bits; asking for more than
            # the collection holds returns what it holds.
            n_results = min(k, _MAX_RESULTS)
            got = col.query(
                query_embeddings=[vector], n_results=n_results, where=where,
                include=["documents", "metadatas", "distances"],
            )
            hits = list(zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]))
            if len(hits) < n_results:
                # Counted only on a short answer: ``count()`` reads the whole collection
                # (half of a 10-hit search at 30k memories), and a full answer needs no count.
                n_results = min(n_results, int(col.count()))
            if len(hits) < n_results:
                # The approximate index returned fewer than it was asked for, though the
                # scope holds more (a filter, or entries the HNSW graph does not reach):
                # rank the matching records exactly, so a search never misses a memory
                # that get_all lists (issue #19, item 2).
                hits = _exact_top_k(col, vector, n_results, where, hits)
            return hits

        none: list[tuple[Any, ...]] = []
        hits = self._on(scope, "searching memories", search, default=none)
        if superseded:
            hits = hits + self._on(scope, "searching superseded memories", search, default=none, superseded=True)
            hits = sorted(hits, key=lambda hit: float(hit[3]))[:k]  # stable: a tie keeps the current memory first
        return [self._to_record(i, d, m, score=1.0 - float(dist)) for i, d, m, dist in hits]

    def list(self, scope: Scope, filters: dict[str, Any] | None = None, limit: int | None = None, *,
             superseded: bool = False) -> list[MemoryRecord]:
        """Records of ``scope`` matching ``filters``, oldest first (``superseded``: then the superseded ones)."""
        where = to_chroma_where(filters)

        def read_all(col: Any) -> list[MemoryRecord]:
            records: list[MemoryRecord] = []
            offset = 0
            while True:
                got = col.get(where=where, include=["documents", "metadatas"], limit=_PAGE, offset=offset)
                records.extend(self._to_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
                if len(got["ids"]) < _PAGE:
                    return records
                offset += _PAGE

        empty: list[MemoryRecord] = []
        records = self._on(scope, "listing memories", read_all, default=empty)
        if superseded:
            records += self._on(scope, "listing superseded memories", read_all, default=[], superseded=True)
        records.sort(key=lambda r: (r.superseded_by is not None, r.created_at, r.id))
        return records if limit is None else records[:limit]

    def count(self, scope: Scope) -> int:
        return int(self._on(scope, "counting memories", lambda col: col.count(), default=0))

    def drop(self, scope: Scope) -> None:
        """Delete the scope's collection and, on disk, purge the freed text."""
        with self._lock:
            for name in (self.collection_name(scope, superseded=True), self.collection_name(scope)):
                self._collections.pop(name, None)
                with _mapped("dropping a scope"):
                    try:
                        self._client.delete_collection(name)
                    except Exception as exc:
                        if not _is_missing(exc):
                            raise
        self.purge()

    def reset(self) -> None:
        """Drop every collection of this namespace."""
        for scope in self.scopes():
            self.drop(scope)

    def purge(self) -> None:
        """Rewrite the embedded database so deleted text leaves no trace on disk.

        Chroma keeps deleted rows' bytes in SQLite free pages until the file is
        vacuumed, and a dropped collection's index folder on disk; the right to be
        forgotten needs both gone. Runs under the store's inter-process lock, which
        every Chroma call of every process takes, and VACUUMs from a child process
        (see :mod:`memlora_engine.store._chroma_disk` for why never from this one).
        """
        if self._path is None:
            return
        db = self._path / "chroma.sqlite3"
        if not db.exists():
            return
        shared = self._shared
        # Without a hardened allocator the index files' unused capacity is scrubbed;
        # the client is closed first so it does not write its old buffers over them.
        scrub = shared.factory is not None and not heap_hardened()
        with self._lock:
            if scrub:
                with _mapped("closing the store for a purge"):
                    shared.client.close()
            try:
                live = vacuum(db, timeout_s=_BUSY_WAIT_S)
                for folder in remove_dead_segments(self._path, live):
                    if scrub:
                        scrub_hnsw(folder)
            finally:
                if scrub:
                    shared.client = shared.factory()  # type: ignore[misc]
                    shared.version += 1


_BUSY_WAIT_S = 30.0

# Persist the vector index each time its brute-force buffer is flushed into it
# (Chroma's defaults: every 100 records into the index, to disk every 1000). With
# the defaults, an embedded client closed and reopened (a new process, a reload
# after another process wrote, a purge) came back with an index lacking records it
# had flushed but not persisted: `get` returned them, no search ever did, and
# fetching their embeddings failed with "Error finding id" (chroma-core/chroma#6975;
# docs/reliability.md, "Memories invisible to search after a reopen").
_HNSW_PERSIST = {"batch_size": 100, "sync_threshold": 100}


def _persist_every_batch(col: Any) -> None:
    """Apply :data:`_HNSW_PERSIST` to a collection created before it (or by another client)."""
    try:
        current = (col.configuration or {}).get("hnsw") or {}
    except Exception:  # a server or client without the configuration API
        return
    if current and current.get("sync_threshold") != _HNSW_PERSIST["sync_threshold"]:
        col.modify(configuration={"hnsw": dict(_HNSW_PERSIST)})


def _retry_busy(action: str, call: Callable[[], T]) -> T:
    """Run ``call`` (mapped to StorageError), retrying while another process holds SQLite busy.

    Chroma's embedded SQLite gives up at once on a lock another process holds (a
    write, or a purge's VACUUM); that is a wait, not a failure.
    """
    deadline = time.monotonic() + _BUSY_WAIT_S
    delay = 0.01
    while True:
        try:
            with _mapped(action):
                return call()
        except StorageError as exc:
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _get_metadatas(col: Any, *, where: dict[str, Any]) -> Any:
    return col.get(where=where, include=["metadatas"])


def _exact_top_k(col: Any, vector: list[float], k: int, where: Any, hits: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The ``k`` records matching ``where`` nearest to ``vector`` by cosine, ranked exactly.

    ``hits`` (the index's answer) is returned as it is when the records' vectors
    cannot be read (logged): a short answer beats none.
    """
    np = require("numpy", "chroma")
    ids: list[str] = []
    docs: list[Any] = []
    metas: list[Any] = []
    vectors: list[Any] = []
    offset = 0
    try:
        while True:
            got = col.get(where=where, include=["documents", "metadatas", "embeddings"], limit=_PAGE, offset=offset)
            ids += got["ids"]
            docs += got["documents"]
            metas += got["metadatas"]
            vectors += list(got["embeddings"])
            if len(got["ids"]) < _PAGE:
                break
            offset += _PAGE
    except Exception as exc:  # chromadb: "Error finding id" for an entry its index lost
        logger.warning("exact ranking unavailable, the search may miss memories: %s", exc)
        return hits
    if not ids:
        return hits
    matrix = np.asarray(vectors, dtype=float)
    query = np.asarray(vector, dtype=float)
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
    distances = 1.0 - (matrix @ query) / np.where(norms == 0, 1.0, norms)
    order = np.argsort(distances, kind="stable")[:k]
    return [(ids[i], docs[i], metas[i], float(distances[i])) for i in order]


@functools.cache
def _precomputed() -> Any:
    """The embedding function every MemLoRA collection declares: none, vectors come with the records.

    A collection created with ``embedding_function=None`` stores Chroma's "legacy"
    config, and every later load logs Chroma's ``DeprecationWarning: legacy
    embedding function config``. This one is registered (so Chroma can load it by
    name in any process) and refuses to embed: MemLoRA always passes embeddings.
    Collections created before it keep the legacy config (Chroma cannot change it);
    the warning is silenced for them where they are opened.
    """
    ef_module = require("chromadb.utils.embedding_functions", "chroma")
    api_types = require("chromadb.api.types", "chroma")

    class MemLoRAPrecomputed(api_types.EmbeddingFunction):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            pass

        def __call__(self, input: Any) -> Any:
            raise StorageError("MemLoRA collections take precomputed embeddings; pass embeddings to Chroma")

        @staticmethod
        def name() -> str:
            return "memlora_precomputed"

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> MemLoRAPrecomputed:
            return MemLoRAPrecomputed()

        def get_config(self) -> dict[str, Any]:
            return {}

        def default_space(self) -> str:
            return "cosine"

    ef_module.register_embedding_function(MemLoRAPrecomputed)
    return MemLoRAPrecomputed()


@contextmanager
def _legacy_config_quiet() -> Iterator[None]:
    """Silence Chroma's legacy-config warning while a collection made before :func:`_precomputed` loads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="legacy embedding function config", category=DeprecationWarning)
        yield


def _is_missing(exc: BaseException | None) -> bool:
    return exc is not None and (type(exc).__name__ == "NotFoundError" or "does not exist" in str(exc))


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Map chromadb's exceptions to StorageError, once, at the boundary."""
    try:
        yield
    except (StorageError, ConfigError, MetadataError):
        raise
    except Exception as exc:
        # httpx: the HTTP client's connection errors (a Chroma server that went away).
        if type(exc).__module__.startswith(("chromadb", "httpx")) or isinstance(
            exc, (ConnectionError, OSError, ValueError, TypeError)
        ):
            raise StorageError(f"Chroma failed while {action}: {exc}") from exc
        raise


