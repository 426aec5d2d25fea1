"""A database the operator has to fix before SimWatch can use it, told apart from the program's
own errors (those keep their traceback)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from storage.base import SchemaTooNewError

# SQLite's primary result codes (the start of its extended names) the operator can do something
# about, and the reason each is told as (``cli.database.<reason>`` in the catalogues).
_REASONS = {
    "SQLITE_READONLY": "read_only",
    "SQLITE_PERM": "read_only",
    "SQLITE_CANTOPEN": "cannot_open",
    "SQLITE_NOTADB": "not_a_database",
    "SQLITE_CORRUPT": "corrupt",
    "SQLITE_FULL": "full",
    "SQLITE_BUSY": "busy",
    "SQLITE_LOCKED": "busy",
    "SQLITE_IOERR": "io",
}


# PostgreSQL's refusals the operator can act on (the reason ``postgres``: the server said why)
_POSTGRES_UNUSABLE = (
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InsufficientPrivilegeError,
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.PostgresConnectionError,
)


class DatabaseUnusableError(Exception):
    """The database can't be opened or written (a folder or no database at all, a read-only
    file or folder, a full disk, locked too long, a schema newer than this code): something for
    the operator to fix, said in one line. ``key`` names the catalogue text
    (``cli.database.*``), ``params`` fill it; ``str()`` is what SQLite or the system said."""

    def __init__(self, reason: str, detail: object, **params: Any) -> None:
        self.reason = reason
        self.key = f"cli.database.{reason}"
        self.params = {"error": detail, **params}
        super().__init__(str(detail))


def _reason(error: sqlite3.Error) -> str | None:
    name = getattr(error, "sqlite_errorname", "") or ""
    for code, reason in _REASONS.items():
        if name == code or name.startswith(code + "_"):
            return reason
    return None


@contextmanager
def database_errors() -> Iterator[None]:
    """Turns SQLite's errors that come from the database file (read-only, can't be opened, not
    a database, corrupt, disk full, locked, I/O), PostgreSQL's refusals (a read-only database or
    role, a full disk, a lost connection) and a schema too new into ``DatabaseUnusableError``;
    errors of the program itself (an SQL mistake, a constraint) pass unchanged."""
    try:
        yield
    except SchemaTooNewError as exc:
        if exc.found is None or exc.known is None:
            raise
        raise DatabaseUnusableError("too_new", exc, found=exc.found, known=exc.known) from exc
    except _POSTGRES_UNUSABLE as exc:
        raise DatabaseUnusableError("postgres", exc) from exc
    except sqlite3.Error as exc:
        reason = _reason(exc)
        if reason is None:
            raise
        raise DatabaseUnusableError(reason, exc) from exc


def database_shown(database_url: str | None, database_path: object) -> str:
    """Which database a message names: the PostgreSQL URL without its password, else the
    SQLite file."""
    if database_url:
        from storage.postgres.pool import redacted

        return redacted(database_url)
    return str(database_path)
