"""Locks that make one store directory safe for several threads *and* processes.

Several agent workers may open the same embedded store (one data directory).
Chroma does not promise that concurrent writers in different processes are safe,
and ``add`` is a read-modify-write (retrieve old memories, let the model decide,
apply), so the engine serialises with two kinds of lock:

* a **scope lock** per scope, held across ``add``'s read-modify-write and the
  direct ``update``/``delete``/``delete_all``: two workers adding to one user
  cannot both decide on the same stale memories;
* one **write lock** per directory, held while a batch is journalled, applied to
  the vector store and committed to the history: at most one batch is in flight
  at a time, so the journal only ever holds batches of crashed processes.

Each is an in-process ``RLock`` (threads) plus, for a store on disk, an OS file
lock (``filelock``; released by the OS when a process dies, so a ``kill -9``
cannot leave a directory locked). Lock files are empty and named by a hash of the
scope, never by its ids. The order is always scope lock, then write lock.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from filelock import FileLock

from memlora_engine.types import Scope

__all__ = ["ProcessLock", "StoreLocks", "lock_dir"]


def lock_dir(store_path: Path) -> Path:
    """Where the lock files of the embedded store at ``store_path`` live (beside it)."""
    return store_path.with_name(store_path.name + ".locks") / "locks"


class ProcessLock:
    """A re-entrant lock held by at most one thread of one process at a time.

    An ``RLock`` for threads plus, when ``path`` is given, an OS file lock for
    processes; usable as a context manager any number of times.
    """

    def __init__(self, path: Path | None) -> None:
        self._rlock = threading.RLock()
        # thread_local=False: the RLock already serialises threads, and a re-entrant
        # acquire from the same thread must not block.
        self._file = FileLock(path, thread_local=False) if path is not None else None

    def __enter__(self) -> None:
        self._rlock.acquire()
        if self._file is not None:
            try:
                self._file.acquire()
            except BaseException:
                self._rlock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._file is not None:
                self._file.release()
        finally:
            self._rlock.release()


class StoreLocks:
    """The scope locks and the write lock of one store.

    Args:
        directory: where lock files live (:func:`lock_dir` of the store), or None for a store
            that only this process can see (in-memory, or a server reached over
            HTTP by a single process): then only threads are serialised.
    """

    def __init__(self, directory: Path | None) -> None:
        self._dir = directory
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._locks: dict[str, ProcessLock] = {}

    def _hold(self, name: str) -> ProcessLock:
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                path = self._dir / f"{name}.lock" if self._dir is not None else None
                lock = self._locks[name] = ProcessLock(path)
            return lock

    def scope(self, scope: Scope) -> AbstractContextManager[None]:
        """Hold the scope's lock (re-entrant within a thread)."""
        return self._hold("scope-" + hashlib.sha256(scope.key.encode("utf-8")).hexdigest()[:32])

    def write(self) -> AbstractContextManager[None]:
        """Hold the directory's write lock (re-entrant within a thread)."""
        return self._hold("write")


