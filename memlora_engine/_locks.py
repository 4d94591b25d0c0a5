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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock

from memlora_engine.types import Scope

__all__ = ["ProcessLock", "StoreLocks"]


class ProcessLock:
    """A re-entrant lock held by one thread of one process at a time: ``RLock`` + file lock.

    Args:
        path: the lock file (created empty if missing; the OS releases the lock
            when its process dies).
    """

    def __init__(self, path: Path) -> None:
        self._rlock = threading.RLock()
        # thread_local=False: the RLock already serialises threads, and a re-entrant
        # acquire from the same thread must not block.
        self._file_lock = FileLock(path, thread_local=False)

    def __enter__(self) -> ProcessLock:
        self._rlock.acquire()
        try:
            self._file_lock.acquire()
        except BaseException:
            self._rlock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._file_lock.release()
        finally:
            self._rlock.release()


class StoreLocks:
    """The scope locks and the write lock of one store.

    Args:
        directory: where lock files live (the data directory), or None for a store
            that only this process can see (in-memory, or a server reached over
            HTTP by a single process): then only threads are serialised.
    """

    def __init__(self, directory: Path | None) -> None:
        self._dir = directory / "locks" if directory is not None else None
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.RLock] = {}
        self._file_locks: dict[str, FileLock] = {}

    def _pair(self, name: str) -> tuple[threading.RLock, FileLock | None]:
        with self._guard:
            rlock = self._thread_locks.setdefault(name, threading.RLock())
            file_lock = None
            if self._dir is not None:
                file_lock = self._file_locks.get(name)
                if file_lock is None:
                    # thread_local=False: the RLock above already serialises threads,
                    # and a re-entrant acquire from the same thread must not block.
                    file_lock = FileLock(self._dir / f"{name}.lock", thread_local=False)
                    self._file_locks[name] = file_lock
            return rlock, file_lock

    @contextmanager
    def _hold(self, name: str) -> Iterator[None]:
        rlock, file_lock = self._pair(name)
        with rlock:
            if file_lock is None:
                yield
            else:
                with file_lock:
                    yield

    def scope(self, scope: Scope) -> AbstractContextManager[None]:
        """Hold the scope's lock (re-entrant within a thread)."""
        return self._hold("scope-" + hashlib.sha256(scope.key.encode("utf-8")).hexdigest()[:32])

    def write(self) -> AbstractContextManager[None]:
        """Hold the directory's write lock (re-entrant within a thread)."""
        return self._hold("write")

