"""Audit history of every mutation, in SQLite beside the store, and the write journal.

A batch of changes is first journalled (one row in ``pending``), then applied to
the vector store, then turned into history rows in the same transaction that
drops the journal row. A crash in between leaves the journal row, and the next
``Memory`` over the same directory re-applies it (every step is idempotent), so
the store and the history always end up agreeing and no batch stays half-applied.

Forgetting a scope is journalled too (a ``pending`` row holding only the scope),
so a crash in the middle of ``delete_all`` is finished at the next write or open
and cannot leave the scope's text half-forgotten.

``secure_delete`` is on, so rows removed by :meth:`HistoryStore.forget` are
overwritten on disk, and the file is vacuumed afterwards: the right to be
forgotten leaves no text behind.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from memlora_engine._sqlite import SQLiteFile
from memlora_engine.types import HistoryEntry, MemoryRecord, Scope

__all__ = ["HistoryStore", "PendingBatch"]

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
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS pending (
    batch_id TEXT PRIMARY KEY,
    scope_key TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class PendingBatch:
    """A journalled batch: what to write and delete in the store, and its history rows."""

    batch_id: str
    scope: Scope
    writes: list[MemoryRecord]
    deletes: list[str]
    entries: list[HistoryEntry]
    forget: bool = False


class HistoryStore:
    """Append-only audit log (until a scope is forgotten). Thread-safe.

    Args:
        path: the SQLite file, or ``":memory:"``.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = SQLiteFile(path, _SCHEMA, what="history database")

    @property
    def path(self) -> str:
        return self._db.path

    def begin(self, scope: Scope, writes: list[MemoryRecord], deletes: list[str], entries: list[HistoryEntry]) -> str:
        """Journal a batch before it touches the store; returns its id for :meth:`commit`."""
        batch_id = uuid.uuid4().hex
        payload = json.dumps(
            {
                "scope": scope.as_dict(),
                "writes": [r.to_dict() for r in writes],
                "deletes": list(deletes),
                "entries": [asdict(e) for e in entries],
            },
            ensure_ascii=False,
        )
        with self._db.transaction() as con:
            con.execute("INSERT INTO pending (batch_id, scope_key, payload) VALUES (?, ?, ?)", (batch_id, scope.key, payload))
        return batch_id

    def abort(self, batch_id: str) -> None:
        """Drop a journalled batch that failed before it changed the store."""
        with self._db.transaction() as con:
            con.execute("DELETE FROM pending WHERE batch_id = ?", (batch_id,))

    def begin_forget(self, scope: Scope) -> str:
        """Journal the intent to forget ``scope``; :meth:`forget` drops the row."""
        batch_id = uuid.uuid4().hex
        payload = json.dumps({"scope": scope.as_dict(), "forget": True}, ensure_ascii=False)
        with self._db.transaction() as con:
            # Batches of this scope are moot once it is forgotten (and hold its text).
            con.execute("DELETE FROM pending WHERE scope_key = ?", (scope.key,))
            con.execute("INSERT INTO pending (batch_id, scope_key, payload) VALUES (?, ?, ?)", (batch_id, scope.key, payload))
        return batch_id

    def has_pending(self) -> bool:
        """Whether any journalled batch is waiting (one query; cheap when there is none)."""
        return bool(self._db.query("SELECT 1 FROM pending LIMIT 1"))

    def commit(self, batch_id: str) -> None:
        """Record the batch's history rows and drop its journal row, atomically."""
        with self._db.transaction() as con:
            row = con.execute("SELECT payload FROM pending WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                return
            batch = self._decode(batch_id, row[0])
            self._insert(con, batch.scope, batch.entries)
            con.execute("DELETE FROM pending WHERE batch_id = ?", (batch_id,))
            self._bump(con)

    @staticmethod
    def _bump(con: sqlite3.Connection) -> None:
        con.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def generation(self) -> int:
        """A counter bumped by every committed batch and every forget, in any process.

        A process whose vector-store view is older than the counter reloads it.
        """
        return int(self._db.query("SELECT value FROM meta WHERE key = 'generation'")[0][0])

    def pending(self) -> list[PendingBatch]:
        """Journalled batches that were not committed (a crash interrupted them)."""
        rows = self._db.query("SELECT batch_id, payload FROM pending ORDER BY rowid")
        return [self._decode(batch_id, payload) for batch_id, payload in rows]

    @staticmethod
    def _decode(batch_id: str, payload: str) -> PendingBatch:
        data = json.loads(payload)
        if data.get("forget"):
            return PendingBatch(batch_id, Scope(**data["scope"]), [], [], [], forget=True)
        return PendingBatch(
            batch_id=batch_id,
            scope=Scope(**data["scope"]),
            writes=[MemoryRecord(**r) for r in data["writes"]],
            deletes=list(data["deletes"]),
            entries=[HistoryEntry(**e) for e in data["entries"]],
        )

    def record(self, scope: Scope, entries: list[HistoryEntry]) -> None:
        """Append entries for ``scope`` in one transaction."""
        if not entries:
            return
        with self._db.transaction() as con:
            self._insert(con, scope, entries)

    @staticmethod
    def _insert(con: sqlite3.Connection, scope: Scope, entries: list[HistoryEntry]) -> None:
        if entries:
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
        rows = self._db.query(sql + " ORDER BY seq", args)
        return [HistoryEntry(*row) for row in rows]

    def scopes(self) -> set[Scope]:
        """Every scope with a history row or a journalled batch."""
        rows = self._db.query("SELECT DISTINCT scope_key FROM history UNION SELECT DISTINCT scope_key FROM pending", ())
        return {Scope.from_key(key) for (key,) in rows}

    def forget(self, scope: Scope | None = None) -> int:
        """Delete the scope's rows (every row when ``scope`` is None), then vacuum."""
        with self._db.transaction() as con:
            if scope is None:
                deleted = con.execute("DELETE FROM history").rowcount
                con.execute("DELETE FROM pending")
            else:
                deleted = con.execute("DELETE FROM history WHERE scope_key = ?", (scope.key,)).rowcount
                con.execute("DELETE FROM pending WHERE scope_key = ?", (scope.key,))
            self._bump(con)
        self._db.vacuum()
        return int(deleted)

    def close(self) -> None:
        self._db.close()
