"""Recent chat turns per session, persisted so a new process sees them.

The integrations keep a session's short-term buffer here (LangChain chat history,
LlamaIndex memory). Rows belong to a scope, so ``delete_all(scope)`` forgets them
too; ``secure_delete`` and a vacuum leave no text behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memlora_engine._sqlite import SQLiteFile
from memlora_engine.errors import InvalidInputError
from memlora_engine.types import Scope

__all__ = ["SessionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scope_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    name TEXT,
    extra TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_session ON messages (scope_key, session_id, seq);
"""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class SessionStore:
    """Chat messages by (scope, session id), oldest first. Thread-safe."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = SQLiteFile(path, _SCHEMA, what="session database")

    @property
    def path(self) -> str:
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
                (scope.key, session_id, m["role"], m["content"], m.get("name"),
                 json.dumps(m["extra"], allow_nan=False) if m.get("extra") else None, created_at)
                for m in messages
            ]
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidInputError(f"a message's extra must be a JSON-able dict: {exc}") from exc
        with self._db.transaction() as con:
            con.executemany(
                "INSERT INTO messages (scope_key, session_id, role, content, name, extra, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def messages(self, scope: Scope, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's messages, oldest first; the last ``limit`` when given."""
        self._check(session_id)
        sql = "SELECT role, content, name, extra, created_at FROM messages WHERE scope_key = ? AND session_id = ?"
        if limit is not None:
            rows = self._db.query(sql + " ORDER BY seq DESC LIMIT ?", (scope.key, session_id, int(limit)))[::-1]
        else:
            rows = self._db.query(sql + " ORDER BY seq", (scope.key, session_id))
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
        if session_id is None:
            deleted = self._db.query("DELETE FROM messages WHERE scope_key = ? RETURNING seq", (scope.key,))
        else:
            self._check(session_id)
            deleted = self._db.query(
                "DELETE FROM messages WHERE scope_key = ? AND session_id = ? RETURNING seq", (scope.key, session_id)
            )
        self._db.vacuum()
        return len(deleted)

    def scopes(self) -> set[Scope]:
        """Every scope with a chat message."""
        return {Scope.from_key(key) for (key,) in self._db.query("SELECT DISTINCT scope_key FROM messages", ())}

    def clear_everything(self) -> None:
        self._db.query("DELETE FROM messages")
        self._db.vacuum()

    def close(self) -> None:
        self._db.close()
