"""Audit history of every mutation, in SQLite beside the store.

``secure_delete`` is on, so rows removed by :meth:`HistoryStore.forget` are
overwritten on disk, and the file is vacuumed afterwards: the right to be
forgotten leaves no text behind.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memlora_engine.errors import StorageError
from memlora_engine.types import HistoryEntry, Scope

__all__ = ["HistoryStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    user_id TEXT,
    agent_id TEXT,
    run_id TEXT,
    event TEXT NOT NULL,
    old_text TEXT,
    new_text TEXT,
    created_at TEXT NOT NULL,
    actor TEXT
);
CREATE INDEX IF NOT EXISTS history_memory ON history (scope_key, memory_id);
"""


class HistoryStore:
    """Append-only audit log (until a scope is forgotten). Thread-safe.

    Args:
        path: the SQLite file, or ``":memory:"``.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._con = sqlite3.connect(self._path, check_same_thread=False, timeout=30, isolation_level=None)
            self._con.execute("PRAGMA secure_delete = ON")
            self._con.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the history database {self._path}: {exc}") from exc

    @property
    def path(self) -> str:
        return self._path

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    yield self._con
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"history database error: {exc}") from exc

    def record(self, scope: Scope, entries: list[HistoryEntry]) -> None:
        """Append entries for ``scope`` in one transaction."""
        if not entries:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT INTO history (memory_id, scope_key, user_id, agent_id, run_id, event, old_text, new_text,"
                " created_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.memory_id, scope.key, scope.user_id, scope.agent_id, scope.run_id, e.event, e.old_text,
                     e.new_text, e.created_at, e.actor)
                    for e in entries
                ],
            )

    def entries(self, scope: Scope, memory_id: str | None = None) -> list[HistoryEntry]:
        """The scope's history (of one memory when ``memory_id`` is given), oldest first."""
        sql = (
            "SELECT memory_id, event, old_text, new_text, created_at, user_id, agent_id, run_id, actor"
            " FROM history WHERE scope_key = ?"
        )
        args: list[str] = [scope.key]
        if memory_id is not None:
            sql += " AND memory_id = ?"
            args.append(memory_id)
        with self._lock:
            try:
                rows = self._con.execute(sql + " ORDER BY seq", args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"history database error: {exc}") from exc
        return [HistoryEntry(*row) for row in rows]

    def forget(self, scope: Scope | None = None) -> int:
        """Delete the scope's rows (every row when ``scope`` is None), then vacuum."""
        with self._transaction() as con:
            if scope is None:
                deleted = con.execute("DELETE FROM history").rowcount
            else:
                deleted = con.execute("DELETE FROM history WHERE scope_key = ?", (scope.key,)).rowcount
        with self._lock:
            try:
                self._con.execute("VACUUM")
            except sqlite3.Error as exc:
                raise StorageError(f"could not vacuum the history database: {exc}") from exc
        return int(deleted)

    def close(self) -> None:
        with self._lock:
            self._con.close()
