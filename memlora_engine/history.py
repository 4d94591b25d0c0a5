"""Audit history of every mutation, and the write journal: in SQLite beside the store, or in PostgreSQL.

In server mode (``MemoryConfig.database_url``) every worker shares one history, so
one worker's history of a memory shows another worker's UPDATE of it.

A batch of changes is first journalled (one row in ``pending``), then applied to
the vector store, then turned into history rows in the same transaction that
drops the journal row. A crash in between leaves the journal row, and the next
``Memory`` over the same directory re-applies it (every step is idempotent), so
the store and the history always end up agreeing and no batch stays half-applied.

Forgetting a scope is journalled too (a ``pending`` row holding only the scope),
so a crash in the middle of ``delete_all`` is finished at the next write or open
and cannot leave the scope's text half-forgotten.

On SQLite ``secure_delete`` is on, so rows removed by :meth:`HistoryStore.forget`
are overwritten on disk, and the file is vacuumed afterwards: the right to be
forgotten leaves no text behind (see :meth:`~memlora_engine._database.Database.vacuum`
for PostgreSQL).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from memlora_engine._database import Database
from memlora_engine.types import HistoryEntry, MemoryRecord, Scope

__all__ = ["HistoryStore", "PendingBatch"]

# The same tables as the SQLite files written before SQLAlchemy (an old file opens as is).
_TABLES = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
_HISTORY = sa.Table(
    "history", _TABLES,
    sa.Column("seq", _ID, primary_key=True, autoincrement=True),
    sa.Column("memory_id", sa.Text, nullable=False),
    sa.Column("scope_key", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("agent_id", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("old_text", sa.Text),
    sa.Column("new_text", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("actor", sa.Text),
    sa.Index("history_memory", "scope_key", "memory_id"),
    sqlite_autoincrement=True,
)
_META = sa.Table(
    "meta", _TABLES,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
_PENDING = sa.Table(
    "pending", _TABLES,
    sa.Column("batch_id", sa.Text, primary_key=True),
    sa.Column("scope_key", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)
_GENERATION = _META.c.key == "generation"


def _batch_id() -> str:
    # Time first: the journal replays in batch-id order where there is no rowid (PostgreSQL).
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


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
        path: the SQLite file, ``":memory:"``, a database URL (``postgresql://...``),
            or a :class:`~memlora_engine._database.Database` shared with the sessions.
    """

    def __init__(self, path: str | Path | Database = ":memory:") -> None:
        self._db = path if isinstance(path, Database) else Database(path, what="history database")
        self._db.create(_TABLES)
        with self._db.transaction() as con:
            con.execute(self._db.insert_ignore(_META, key="generation", value=0))

    @property
    def path(self) -> str:
        """The SQLite file (or ``":memory:"``), or the server URL without its password."""
        return self._db.path

    @property
    def database(self) -> Database:
        """The database (shared with the sessions in server mode)."""
        return self._db

    def begin(self, scope: Scope, writes: list[MemoryRecord], deletes: list[str], entries: list[HistoryEntry]) -> str:
        """Journal a batch before it touches the store; returns its id for :meth:`commit`."""
        batch_id = _batch_id()
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
            con.execute(_PENDING.insert().values(batch_id=batch_id, scope_key=scope.key, payload=payload))
        return batch_id

    def abort(self, batch_id: str) -> None:
        """Drop a journalled batch that failed before it changed the store."""
        with self._db.transaction() as con:
            con.execute(_PENDING.delete().where(_PENDING.c.batch_id == batch_id))

    def begin_forget(self, scope: Scope) -> str:
        """Journal the intent to forget ``scope``; :meth:`forget` drops the row."""
        batch_id = _batch_id()
        payload = json.dumps({"scope": scope.as_dict(), "forget": True}, ensure_ascii=False)
        with self._db.transaction() as con:
            # Batches of this scope are moot once it is forgotten (and hold its text).
            con.execute(_PENDING.delete().where(_PENDING.c.scope_key == scope.key))
            con.execute(_PENDING.insert().values(batch_id=batch_id, scope_key=scope.key, payload=payload))
        return batch_id

    def has_pending(self) -> bool:
        """Whether any journalled batch is waiting (one query; cheap when there is none)."""
        return bool(self._db.query(sa.select(sa.literal(1)).select_from(_PENDING).limit(1)))

    def commit(self, batch_id: str) -> None:
        """Record the batch's history rows and drop its journal row, atomically."""
        with self._db.transaction() as con:
            # FOR UPDATE (PostgreSQL): a second committer of the same batch waits, then finds it gone.
            select = sa.select(_PENDING.c.payload).where(_PENDING.c.batch_id == batch_id).with_for_update()
            row = con.execute(select).first()
            if row is None:
                return
            batch = self._decode(batch_id, row[0])
            self._insert(con, batch.scope, batch.entries)
            con.execute(_PENDING.delete().where(_PENDING.c.batch_id == batch_id))
            self._bump(con)

    @staticmethod
    def _bump(con: Connection) -> None:
        con.execute(_META.update().where(_GENERATION).values(value=_META.c.value + 1))

    def generation(self) -> int:
        """A counter bumped by every committed batch and every forget, in any process.

        A process whose vector-store view is older than the counter reloads it.
        """
        return int(self._db.query(sa.select(_META.c.value).where(_GENERATION))[0][0])

    def pending(self) -> list[PendingBatch]:
        """Journalled batches that were not committed (a crash interrupted them), oldest first."""
        order = sa.literal_column("rowid") if self._db.dialect == "sqlite" else _PENDING.c.batch_id
        rows = self._db.query(sa.select(_PENDING.c.batch_id, _PENDING.c.payload).order_by(order))
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
    def _insert(con: Connection, scope: Scope, entries: list[HistoryEntry]) -> None:
        if entries:
            con.execute(
                _HISTORY.insert(),
                [
                    {"memory_id": e.memory_id, "scope_key": scope.key, "user_id": scope.user_id,
                     "agent_id": scope.agent_id, "run_id": scope.run_id, "event": e.event, "old_text": e.old_text,
                     "new_text": e.new_text, "created_at": e.created_at, "actor": e.actor}
                    for e in entries
                ],
            )

    def entries(self, scope: Scope, memory_id: str | None = None) -> list[HistoryEntry]:
        """The scope's history (of one memory when ``memory_id`` is given), oldest first."""
        h = _HISTORY.c
        select = sa.select(h.memory_id, h.event, h.old_text, h.new_text, h.created_at, h.user_id, h.agent_id,
                           h.run_id, h.actor).where(h.scope_key == scope.key)
        if memory_id is not None:
            select = select.where(h.memory_id == memory_id)
        return [HistoryEntry(*row) for row in self._db.query(select.order_by(h.seq))]

    def scopes(self) -> set[Scope]:
        """Every scope with a history row or a journalled batch."""
        union = sa.union(sa.select(_HISTORY.c.scope_key).distinct(), sa.select(_PENDING.c.scope_key).distinct())
        return {Scope.from_key(key) for (key,) in self._db.query(union)}

    def forget(self, scope: Scope | None = None) -> int:
        """Delete the scope's rows (every row when ``scope`` is None), then vacuum."""
        with self._db.transaction() as con:
            if scope is None:
                deleted = con.execute(_HISTORY.delete()).rowcount
                con.execute(_PENDING.delete())
            else:
                deleted = con.execute(_HISTORY.delete().where(_HISTORY.c.scope_key == scope.key)).rowcount
                con.execute(_PENDING.delete().where(_PENDING.c.scope_key == scope.key))
            self._bump(con)
        self._db.vacuum(_HISTORY, _PENDING)
        return int(deleted)

    def close(self) -> None:
        self._db.close()
