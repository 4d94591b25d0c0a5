"""One SQLite file shared by threads: the plumbing under the history and the sessions.

``secure_delete`` is on, so deleted rows are overwritten on disk, and
:meth:`SQLiteFile.vacuum` rewrites the file so no freed page keeps old text.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memlora_engine.errors import StorageError

__all__ = ["SQLiteFile"]


class SQLiteFile:
    """A thread-safe connection with explicit transactions; errors become ``StorageError``.

    Args:
        path: the file (its folder is created), or ``":memory:"``.
        schema: SQL run at open (``CREATE ... IF NOT EXISTS``).
        what: a name for error messages ("history database", ...).
    """

    def __init__(self, path: str | Path, schema: str, *, what: str) -> None:
        self.path = str(path)
        self._what = what
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._con = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self._con.execute("PRAGMA secure_delete = ON")
            self._con.executescript(schema)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the {what} {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the block raises."""
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
                raise StorageError(f"{self._what} error: {exc}") from exc

    def query(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement (in its own implicit transaction) and return its rows."""
        with self._lock:
            try:
                return self._con.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"{self._what} error: {exc}") from exc

    def vacuum(self) -> None:
        self.query("VACUUM")

    def close(self) -> None:
        with self._lock:
            self._con.close()
