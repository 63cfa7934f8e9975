"""Database access of the ledger: its URL, engines, schema migrations, retries, bulk reads and
writes, and the errors every part of the ledger raises or lets through."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Self, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from sinks.ledger.schema import journal

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("sinks.ledger")
_T = TypeVar("_T")

DEFAULT_LEDGER_URL = "sqlite:///subsidy-ledger.sqlite"
LEDGER_URL_ENV = "SUBSIDY_LEDGER_URL"
READER_URL_ENV = "SUBSIDY_LEDGER_READER_URL"
MIGRATIONS_DIR = Path(__file__).parent.with_name("migrations")


# -- errors ----------------------------------------------------------------------------------


class LedgerError(Exception):
    """Something the ledger refuses to store. Not retried: sending the same batch again fails again."""


class LedgerUnavailable(LedgerError):
    """The database stayed unreachable through every retry; nothing of the batch was written."""


# -- URLs and engines ------------------------------------------------------------------------


def ledger_url(given: str | None = None) -> str:
    """The ledger every command uses: ``--ledger``, else $SUBSIDY_LEDGER_URL, else the default."""
    return given or os.environ.get(LEDGER_URL_ENV) or DEFAULT_LEDGER_URL


def reader_ledger_url(given: str | None = None) -> str:
    """The ledger a reading command (exports, balances, the console's pages) uses: ``--ledger``,
    else $SUBSIDY_LEDGER_READER_URL (on PostgreSQL a role that may only SELECT), else :func:`ledger_url`."""
    return given or os.environ.get(READER_URL_ENV) or ledger_url()


def parse_ledger_url(url: str) -> sa.URL:
    """``url`` parsed, or a LedgerError saying how to write it: a plain path is the usual slip."""
    try:
        return sa.make_url(url)
    except exc.ArgumentError:
        pass
    if "://" in url:  # may hold a password: not repeated
        raise LedgerError("not a database URL: write sqlite:////ABSOLUTE/PATH.sqlite or postgresql+psycopg://USER@HOST/DATABASE")
    raise LedgerError(f"a path, not a URL: write sqlite:///{Path(url).expanduser().resolve()} for a SQLite file")


def shown_url(url: str) -> str:
    """A ledger URL for messages and pages, its password hidden. Unparsable, it is shown as typed
    when it is a plain path (no password there), else as a placeholder, since nothing then
    tells its password apart from the rest."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url if "://" not in url else "<unparsable ledger URL>"


def first_line(error: BaseException) -> str:
    """An error's first line of text, or its class name if it has none: drivers' messages run on
    for lines (SQL, hints) that a one-line error for the user leaves out."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def make_engine(url: str, *, application_name: str = "subsidy-ledger") -> Engine:
    """An engine whose transactions take the write lock up front on SQLite (``BEGIN IMMEDIATE``)."""
    parsed = parse_ledger_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None  # let BEGIN below be the only transaction control
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"application_name": application_name, "connect_timeout": 10}
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    raise LedgerError(f"ledger URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:/// and postgresql+psycopg:// are supported")


# -- schema migrations -----------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def holds_ledger(url: str) -> bool:
    """Whether ``url`` names a database that already holds a ledger (its journal), creating
    nothing: a connection to a SQLite file that is not there would create it."""
    parsed = parse_ledger_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).expanduser().is_file():
            return False
    engine = make_engine(url)
    try:
        return sa.inspect(engine).has_table(journal.name)
    finally:
        engine.dispose()


def upgrade_schema(engine: Engine, *, as_role: str | None = None) -> str:
    """Create or upgrade the ledger schema to the newest revision; returns that revision.
    ``as_role``: on PostgreSQL, the role the migrations run as, which then owns what they create."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes opening a new ledger at once must not both create the tables.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7233104851)")
            if as_role:
                conn.exec_driver_sql(f"SET LOCAL ROLE {conn.dialect.identifier_preparer.quote_identifier(as_role)}")
        command.upgrade(_alembic_config(conn), "head")
        current = MigrationContext.configure(conn, opts={"version_table": "ledger_alembic_version"}).get_current_revision()
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert current == head and current is not None, (current, head)
    return current


# -- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 8  # total tries, including the first
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_delay
        for _ in range(max(0, self.attempts - 1)):
            yield delay
            delay = min(self.max_delay, delay * self.multiplier)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError))


# -- the connection to a ledger --------------------------------------------------------------


class LedgerDatabase:
    """A ledger's engine with its retries and the bulk reads and writes a batch is booked with;
    :class:`sinks.ledger.Ledger` adds booking, queries and verification to it."""

    def __init__(self, engine: Engine, retry: RetryPolicy | None = None, *, timezone: str | None = None):
        """``timezone``: the time zone of the policy the records were decided under (its
        ``timezone``), for an instruction's value date; a ledger opened without one books no instruction."""
        self.engine = engine
        self.retry = retry or RetryPolicy()
        self.dialect = engine.dialect.name
        self.zone = ZoneInfo(timezone) if timezone else None

    @classmethod
    def open(cls, url: str = DEFAULT_LEDGER_URL, *, retry: RetryPolicy | None = None, upgrade: bool = True,
             timezone: str | None = None) -> Self:
        """Open a ledger; creates or upgrades its schema (retrying while the database is down)."""
        ledger = cls(make_engine(url), retry, timezone=timezone)
        if upgrade:
            ledger._with_retry(lambda: upgrade_schema(ledger.engine))
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _with_retry(self, work: Callable[[], _T]) -> tuple[_T, int]:
        delays = self.retry.delays()
        attempt = 1
        while True:
            try:
                return work(), attempt
            except LedgerError:
                raise
            except Exception as error:  # noqa: BLE001 - classified just below
                if not _is_transient(error):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise LedgerUnavailable(f"ledger database unavailable after {attempt} attempt(s): {error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
                log.warning("ledger: attempt %d failed (%s); retrying in %.2fs", attempt, error.__class__.__name__, delay)
                time.sleep(delay)
                attempt += 1

    def _select_in(self, conn: Connection, table: sa.Table, columns: str, key: str, keys: Iterable[str], *, for_update: bool = False, group_by: bool = False) -> list[Any]:
        """``SELECT columns FROM table WHERE key IN keys``: one ``= ANY(array)`` query on PostgreSQL
        (the array sent in binary: no quoting of thousands of elements), IN chunks on SQLite."""
        keys = list(keys)
        if not keys:
            return []
        tail = (f" GROUP BY {key}" if group_by else "") + (" FOR UPDATE" if for_update and self.dialect == "postgresql" else "")
        if self.dialect == "postgresql":
            return list(conn.exec_driver_sql(f"SELECT {columns} FROM {table.name} WHERE {key} = ANY(%(keys)b){tail}", {"keys": keys}))
        rows: list[Any] = []
        for start in range(0, len(keys), 500):
            chunk = tuple(keys[start : start + 500])
            rows.extend(conn.exec_driver_sql(f"SELECT {columns} FROM {table.name} WHERE {key} IN ({', '.join('?' * len(chunk))}){tail}", chunk))
        return rows

    def _insert(self, conn: Connection, table: sa.Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert rows (tuples of the ``names`` columns) in one go.

        PostgreSQL: ``COPY ... FROM STDIN`` on the transaction's connection (constraints and
        triggers apply as to any INSERT; rows are streamed, not one statement each). SQLite (in
        process, no round trips): ``executemany``."""
        if not rows:
            return
        if self.dialect != "postgresql":
            conn.execute(table.insert(), [dict(zip(names, row)) for row in rows])
            return
        statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None  # the connection is checked out: it is open
        cursor = dbapi_connection.cursor()
        try:
            with cursor.copy(statement) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        except self.engine.dialect.loaded_dbapi.Error as error:
            self._raise_dbapi(conn, error, statement, cursor)
        finally:
            cursor.close()

    def _raise_dbapi(self, conn: Connection, error: Any, statement: str, cursor: Any) -> None:
        """Raise a driver error met outside SQLAlchemy's execute() the way execute() would:
        wrapped in SQLAlchemy's exception classes, the connection invalidated when it is gone
        (so that the retry classifies it as transient and takes a fresh connection)."""
        dialect = self.engine.dialect
        disconnect = dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
        if disconnect:
            conn.invalidate(error)
        raise exc.DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error, connection_invalidated=disconnect, dialect=dialect) from error
