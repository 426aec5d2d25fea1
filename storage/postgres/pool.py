"""The connection pool: opened from ``DATABASE_URL``, every session in UTC.

asyncpg hands back ``timestamptz`` values as aware UTC datetimes and ``date`` as ``date``
whatever the session's zone; the session is UTC anyway so that SQL's own ``now()``,
``::date`` and ``date_trunc`` mean the same on every machine. Extra query parameters of the URL
(``?search_path=…``) become session settings, as asyncpg does for any it doesn't know.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import DatabaseUnreachableError

# A connection taken from the pool (what ``pool.acquire()`` yields) or one opened by itself.
Connection = asyncpg.Connection | PoolConnectionProxy

# Long enough for a server on the other side of the world, short enough that a typo in the
# host does not look like a hang at start-up.
CONNECT_TIMEOUT_S = 10.0
__all__ = ["Connection", "DatabaseUnreachableError", "open_pool", "redacted"]
SESSION_SETTINGS = {"timezone": "UTC", "application_name": "simwatch"}


def redacted(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``, fit for a log or an error."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{parts.username or ''}:***@{host}{port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(unreadable URL)"


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise DatabaseUnreachableError(f"DATABASE_URL is not a URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseUnreachableError(
            "DATABASE_URL must start with postgresql:// "
            f"(postgresql://user:password@host:5432/database), not {redacted(url)!r}"
        )


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool on ``url``; ``DatabaseUnreachableError`` (one line) if it can't be used."""
    _check_url(url)
    where = redacted(url)
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=dict(SESSION_SETTINGS),
        )
    except asyncpg.InvalidPasswordError:
        raise DatabaseUnreachableError(
            f"DATABASE_URL: the server at {where} refused the user name or password"
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise DatabaseUnreachableError(
            f"DATABASE_URL: the server at {where} refused the connection: {exc}"
        ) from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseUnreachableError(f"DATABASE_URL: {exc} (at {where})") from None
    except asyncpg.PostgresError as exc:
        raise DatabaseUnreachableError(f"DATABASE_URL: {where}: {exc}") from None
    except TimeoutError:
        raise DatabaseUnreachableError(
            f"DATABASE_URL: no answer from {where} within {CONNECT_TIMEOUT_S:.0f} s"
        ) from None
    except socket.gaierror as exc:
        raise DatabaseUnreachableError(
            f"DATABASE_URL: unknown host in {where} ({exc.strerror})"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DatabaseUnreachableError(
            f"DATABASE_URL: cannot connect to {where} ({reason}): is PostgreSQL running there?"
        ) from None
    except (ValueError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnreachableError(f"DATABASE_URL: {exc}") from None
