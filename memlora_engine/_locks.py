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

In server mode (a Chroma server and a PostgreSQL history shared by workers on
several machines) the second lock is a PostgreSQL advisory lock instead of a
file lock (:class:`~memlora_engine._database.ServerLock`), released by the
server when a worker's connection dies.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

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
            HTTP by a single process): then only threads are serialised, unless
            ``server`` is given.
        server: makes the re-entrant lock every process shares for a name (PostgreSQL
            advisory locks); used instead of file locks.
    """

    def __init__(
        self, directory: Path | None, *, server: Callable[[str], AbstractContextManager[Any]] | None = None
    ) -> None:
        self._dir = directory / "locks" if directory is not None and server is None else None
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._server = server
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.RLock] = {}
        self._process_locks: dict[str, AbstractContextManager[Any]] = {}

    def _pair(self, name: str) -> tuple[threading.RLock, AbstractContextManager[Any] | None]:
        with self._guard:
            rlock = self._thread_locks.setdefault(name, threading.RLock())
            shared = self._process_locks.get(name)
            if shared is None and self._server is not None:
                shared = self._process_locks[name] = self._server(name)
            elif shared is None and self._dir is not None:
                # thread_local=False: the RLock above already serialises threads,
                # and a re-entrant acquire from the same thread must not block.
                shared = self._process_locks[name] = FileLock(self._dir / f"{name}.lock", thread_local=False)
            return rlock, shared

    @contextmanager
    def _hold(self, name: str) -> Iterator[None]:
        rlock, shared = self._pair(name)
        with rlock:
            if shared is None:
                yield
            else:
                with shared:
                    yield

    def scope(self, scope: Scope) -> AbstractContextManager[None]:
        """Hold the scope's lock (re-entrant within a thread)."""
        return self._hold("scope-" + hashlib.sha256(scope.key.encode("utf-8")).hexdigest()[:32])

    def write(self) -> AbstractContextManager[None]:
        """Hold the directory's write lock (re-entrant within a thread)."""
        return self._hold("write")

