"""Recent chat turns per session, persisted so a new process sees them.

In SQLite beside the store, or (``MemoryConfig.database_url``) in PostgreSQL, where
a session written by one worker is read by every other.

The integrations keep a session's short-term buffer here (LangChain chat history,
LlamaIndex memory). Rows belong to a scope, so ``delete_all(scope)`` forgets them
too; on SQLite ``secure_delete`` and a vacuum leave no text behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from memlora_engine._database import Database
from memlora_engine.errors import InvalidInputError
from memlora_engine.types import Scope

__all__ = ["SessionStore"]

# The same table as the SQLite files written before SQLAlchemy (an old file opens as is).
_TABLES = sa.MetaData()
_MESSAGES = sa.Table(
    "messages", _TABLES,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("scope_key", sa.Text, nullable=False),
    sa.Column("session_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("extra", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Index("messages_session", "scope_key", "session_id", "seq"),
    sqlite_autoincrement=True,
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class SessionStore:
    """Chat messages by (scope, session id), oldest first. Thread-safe.

    Args:
        path: the SQLite file, ``":memory:"``, a database URL (``postgresql://...``),
            or a :class:`~memlora_engine._database.Database` shared with the history.
    """

    def __init__(self, path: str | Path | Database = ":memory:") -> None:
        self._db = path if isinstance(path, Database) else Database(path, what="session database")
        self._db.create(_TABLES)

    @property
    def path(self) -> str:
        """The SQLite file (or ``":memory:"``), or the server URL without its password."""
        return self._db.path

    @staticmethod
    def _check(session_id: str) -> None:
        if not isinstance(session_id, str) or not session_id or len(session_id) > 256 or not _encodable(session_id):
            raise InvalidInputError(f"session_id must be a 1-256 character string, got {session_id!r}")

    def append(self, scope: Scope, session_id: str, messages: list[dict[str, Any]], created_at: str) -> None:
        """Append ``[{"role", "content"[, "name"][, "extra"]}]`` to the session."""
        self._check(session_id)
        try:
            rows = [
                {"scope_key": scope.key, "session_id": session_id, "role": m["role"], "content": m["content"],
                 "name": m.get("name"),
                 "extra": json.dumps(m["extra"], allow_nan=False) if m.get("extra") else None,
                 "created_at": created_at}
                for m in messages
            ]
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidInputError(f"a message's extra must be a JSON-able dict: {exc}") from exc
        if not rows:
            return
        with self._db.transaction() as con:
            con.execute(_MESSAGES.insert(), rows)

    def messages(self, scope: Scope, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's messages, oldest first; the last ``limit`` when given."""
        self._check(session_id)
        m = _MESSAGES.c
        select = sa.select(m.role, m.content, m.name, m.extra, m.created_at).where(
            m.scope_key == scope.key, m.session_id == session_id
        )
        if limit is not None:
            rows = list(self._db.query(select.order_by(m.seq.desc()).limit(int(limit))))[::-1]
        else:
            rows = list(self._db.query(select.order_by(m.seq)))
        out = []
        for role, content, name, extra, created_at in rows:
            message: dict[str, Any] = {"role": role, "content": content, "created_at": created_at}
            if name:
                message["name"] = name
            if extra:
                message["extra"] = json.loads(extra)
            out.append(message)
        return out

    def clear(self, scope: Scope, session_id: str | None = None) -> int:
        """Delete one session of the scope, or all of them; vacuums afterwards."""
        where = _MESSAGES.c.scope_key == scope.key
        if session_id is not None:
            self._check(session_id)
            where = sa.and_(where, _MESSAGES.c.session_id == session_id)
        with self._db.transaction() as con:
            deleted = con.execute(_MESSAGES.delete().where(where)).rowcount
        self._db.vacuum(_MESSAGES)
        return int(deleted)

    def scopes(self) -> set[Scope]:
        """Every scope with a chat message."""
        return {Scope.from_key(key) for (key,) in self._db.query(sa.select(_MESSAGES.c.scope_key).distinct())}

    def clear_everything(self) -> None:
        with self._db.transaction() as con:
            con.execute(_MESSAGES.delete())
        self._db.vacuum(_MESSAGES)

    def close(self) -> None:
        self._db.close()
