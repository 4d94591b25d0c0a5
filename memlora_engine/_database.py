"""The SQL database under the audit history and the chat sessions: SQLite or PostgreSQL.

One code path (SQLAlchemy Core) for two backends:

* **SQLite**, the embedded default: a file beside the store (or ``":memory:"``).
  One connection, shared by threads under a lock; writes run in ``BEGIN
  IMMEDIATE`` so processes on one file take turns. ``secure_delete`` is on and
  :meth:`Database.vacuum` rewrites the file, so no freed page keeps old text.
* **PostgreSQL**, server mode (``MemoryConfig.database_url``): a pool whose
  connections are checked before use (``pool_pre_ping``), so a restarted server is
  picked up by the next call without restarting anything. The tables live in a
  schema named after the namespace. :meth:`Database.lock` gives advisory locks
  that serialise workers on several machines as file locks do on one.

Every driver error (``sqlite3``, ``psycopg``, a lost connection) becomes
:class:`~memlora_engine.errors.StorageError`, here and nowhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from memlora_engine.errors import ConfigError, MissingDependencyError, StorageError

__all__ = ["Database", "ServerLock", "database_url"]

logger = logging.getLogger(__name__)

_SQLITE_MEMORY = "sqlite://"


def database_url(target: str | Path) -> sa.URL:
    """The SQLAlchemy URL of ``target``: a URL as given, else a SQLite file (or ``":memory:"``).

    ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver.
    """
    text = str(target)
    if "://" not in text:
        text = _SQLITE_MEMORY if text == ":memory:" else "sqlite:///" + str(Path(text).expanduser())
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"database_url must be sqlite:/// or postgresql://, got {url.drivername}://")
    return url


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by _sqlite_begin, not by the driver's own heuristics.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA secure_delete = ON")


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: two processes on one file never
    # both read, then both try to write (which SQLite answers with "locked").
    read = connection.get_execution_options().get("memlora_read", False)
    connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


class Database:
    """A SQLite file or a PostgreSQL database, shared by threads; errors become ``StorageError``.

    Args:
        target: a file path, ``":memory:"``, or a URL (``sqlite:///...``, ``postgresql://...``).
        what: a name for error messages ("history database", ...).
        schema: the PostgreSQL schema holding the tables (created if missing);
            ignored by SQLite. Lets apps with different namespaces share a database.
    """

    def __init__(self, target: str | Path, *, what: str, schema: str | None = None) -> None:
        url = database_url(target)
        self.what = what
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            self.path = url.database or ":memory:"
        else:
            self.path = url.render_as_string(hide_password=True)
        self._schema = schema if self.dialect == "postgresql" else None
        if self._schema is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", self._schema):
            raise ConfigError(f"schema must be 1-63 letters, digits, '-' or '_', got {schema!r}")
        self._closed = False
        try:
            if self.dialect == "sqlite":
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # One connection (StaticPool), serialised by _lock: ":memory:" must
                # stay one database, and a file gets no benefit from more.
                engine = sa.create_engine(url, poolclass=sa.pool.StaticPool,
                                          connect_args={"check_same_thread": False, "timeout": 30})
                sa.event.listen(engine, "connect", _sqlite_connect)
                sa.event.listen(engine, "begin", _sqlite_begin)
                self._lock: contextlib.AbstractContextManager[Any] = threading.RLock()
            else:
                engine = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16,
                                          connect_args={"connect_timeout": 10})
                self._lock = contextlib.nullcontext()
        except ImportError as exc:
            raise MissingDependencyError("psycopg", "server") from exc
        if self._schema is not None:
            engine = engine.execution_options(schema_translate_map={None: self._schema})
        self.engine = engine

    @property
    def shared(self) -> bool:
        """True for a database server that other processes and machines reach too."""
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def mapped(self, action: str = "") -> Iterator[None]:
        """Map SQLAlchemy and driver errors to :class:`StorageError`, once, at the boundary."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            doing = f" while {action}" if action else ""
            raise StorageError(f"{self.what} error{doing} ({self.path}): {exc}") from exc

    def create(self, metadata: sa.MetaData) -> None:
        """Create the tables of ``metadata`` that do not exist yet (and the schema)."""
        with self.transaction() as con:
            if self._schema is not None:
                # Two workers starting at once must not both create: one waits here.
                con.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(f"create:{self._schema}")})
                con.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"'))
            metadata.create_all(con)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction (``BEGIN IMMEDIATE`` on SQLite), committed, or rolled back if the block raises."""
        with self._lock, self.mapped(), self.engine.begin() as con:
            yield con

    def query(self, statement: sa.Executable | str, args: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one read statement (SQLAlchemy, or SQL text with ``:name`` parameters) and return its rows."""
        if isinstance(statement, str):
            statement = sa.text(statement)
        with self._lock, self.mapped(), self.engine.connect() as con:
            return [tuple(row) for row in con.execution_options(memlora_read=True).execute(statement, args)]

    def insert_ignore(self, table: sa.Table, **values: Any) -> sa.Executable:
        """``INSERT`` that does nothing when the primary key is taken (either dialect)."""
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).values(**values).on_conflict_do_nothing()
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(**values).on_conflict_do_nothing()

    def vacuum(self, *tables: sa.Table) -> None:
        """Rewrite freed space so deleted rows leave no text behind (SQLite: the whole file).

        PostgreSQL's ``VACUUM`` makes the dead rows' space reusable; their bytes stay
        in the table file until overwritten (and in WAL archives and backups), which
        the operator's retention policy governs.
        """
        with self._lock, self.mapped("vacuuming"):
            if self.dialect == "sqlite":
                raw = self.engine.raw_connection()
                try:
                    raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
                finally:
                    raw.close()
                return
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
                schema = f'"{self._schema}".' if self._schema else ""
                for table in tables:
                    con.exec_driver_sql(f'VACUUM {schema}"{table.name}"')

    def lock(self, name: str) -> ServerLock:
        """An advisory lock every process on this PostgreSQL database shares (see :class:`ServerLock`)."""
        if not self.shared:
            raise ConfigError("advisory locks need a database server (PostgreSQL)")
        return ServerLock(self, f"{self._schema}:{name}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.engine.dispose()


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


class ServerLock:
    """A re-entrant PostgreSQL advisory lock, held on its own connection.

    Like a file lock, it is released by the server when the holder's connection
    dies (a killed worker never leaves it held). Not thread-safe on its own: the
    caller serialises threads (see :class:`~memlora_engine._locks.StoreLocks`).
    """

    def __init__(self, database: Database, name: str) -> None:
        self._db = database
        self._name = name
        self._key = _key(name)
        self._depth = 0
        self._con: Connection | None = None

    def acquire(self) -> None:
        if self._depth == 0:
            with self._db.mapped(f"taking the lock {self._name!r}"):
                con = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                try:
                    con.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
                except BaseException:
                    con.close()
                    raise
            self._con = con
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth or self._con is None:
            return
        con, self._con = self._con, None
        try:
            with self._db.mapped(f"releasing the lock {self._name!r}"):
                con.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except StorageError as exc:  # the connection is gone, and the server released the lock with it
            logger.warning("%s", exc)
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                con.close()

    def __enter__(self) -> ServerLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
