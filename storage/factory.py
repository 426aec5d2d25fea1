"""Opens the configured database: PostgreSQL when ``DATABASE_URL`` is set, else the SQLite file.

Everything outside ``storage/`` gets its stores here (``open_stores``), or from a ``Storage``
it was handed (``stores_for``), and never names a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.base import Storage
from storage.bulk import BulkStore, SqliteBulkStore
from storage.channels import ChannelStore, SqliteChannelStore
from storage.postgres.bulk import PostgresBulkStore
from storage.postgres.channels import PostgresChannelStore
from storage.postgres.push import PostgresPushStore
from storage.postgres.reminders import PostgresReminderStore
from storage.postgres.storage import PostgresStorage
from storage.push import PushStore, SqlitePushStore
from storage.reminders import ReminderStore, SqliteReminderStore
from storage.sqlite import SqliteStorage


@dataclass(frozen=True)
class Stores:
    """The stores of one open database; ``close`` closes it (all of them)."""

    storage: Storage
    reminders: ReminderStore
    bulk: BulkStore
    push: PushStore
    channels: ChannelStore

    async def close(self) -> None:
        await self.storage.close()

    @property
    def backend(self) -> str:
        return "postgresql" if isinstance(self.storage, PostgresStorage) else "sqlite"


async def open_storage(*, database_url: str | None, database_path: Path) -> Storage:
    """The database, migrated: ``DatabaseUnreachableError`` (PostgreSQL), ``SchemaTooNewError``,
    SQLite's and the OS's errors opening the file."""
    if database_url:
        return await PostgresStorage.open(database_url)
    return await SqliteStorage.open(database_path)


async def open_stores(*, database_url: str | None, database_path: Path) -> Stores:
    return stores_for(await open_storage(database_url=database_url, database_path=database_path))


def stores_for(storage: Storage) -> Stores:
    """The sibling stores sharing ``storage``'s connection (SQLite) or pool (PostgreSQL)."""
    if isinstance(storage, SqliteStorage):
        return Stores(
            storage,
            SqliteReminderStore(storage),
            SqliteBulkStore(storage),
            SqlitePushStore(storage),
            SqliteChannelStore(storage),
        )
    if isinstance(storage, PostgresStorage):
        pool = storage.pool
        return Stores(
            storage,
            PostgresReminderStore(pool),
            PostgresBulkStore(pool),
            PostgresPushStore(pool),
            PostgresChannelStore(pool),
        )
    raise TypeError(f"no stores for {type(storage).__name__}")
