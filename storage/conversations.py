"""Conversations in progress: each person's step in a conversation and their draft.

The Telegram side (``handlers.persistence``) keeps python-telegram-bot's conversations here,
written after every update. A row is keyed per (chat, user, conversation): the step as JSON
text, the draft as opaque bytes (what they mean is the caller's business, SQL never looks
inside). The same interface has a SQLite form (here) and a PostgreSQL one
(``storage.postgres.conversations``); ``conversations_for`` gives the one of an open storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from storage.base import Storage
from storage.sqlite import SqliteStorage

V = TypeVar("V")
OWN_CHAT = 0  # the chat of a draft that is the person's own rather than one chat's


@dataclass(frozen=True, order=True)
class ConversationKey:
    """Whose row: one person's ``name`` conversation (or draft) in one chat."""

    chat_id: int
    user_id: int
    name: str


@dataclass(frozen=True)
class SavedConversations:
    """Everything kept: the steps (JSON text) and the drafts (bytes), by key."""

    states: dict[ConversationKey, str]
    drafts: dict[ConversationKey, bytes]


class ConversationStore(Protocol):
    async def load_conversations(self) -> SavedConversations:
        """Every step and draft kept."""
        ...

    async def save_conversations(
        self,
        states: Mapping[ConversationKey, str | None],
        drafts: Mapping[ConversationKey, bytes | None],
        *,
        at: datetime,
        keep_existing: bool = False,
    ) -> None:
        """One transaction: write each step and draft, delete those given as None.

        ``keep_existing``: a row already kept stays as it is (importing an older source)."""
        ...


def split_rows(
    rows: Mapping[ConversationKey, V | None],
) -> tuple[list[ConversationKey], dict[ConversationKey, V]]:
    """The keys to delete (given None), and the rows to write."""
    gone = [key for key, value in rows.items() if value is None]
    kept = {key: value for key, value in rows.items() if value is not None}
    return gone, kept


_UPDATE = "UPDATE SET {0} = excluded.{0}, updated_at = excluded.updated_at"


class SqliteConversationStore:
    """The conversations in the bot's SQLite database (tables of migration 0006)."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def load_conversations(self) -> SavedConversations:
        states = await self._storage.fetchall(
            "SELECT chat_id, user_id, name, state FROM conversations"
        )
        drafts = await self._storage.fetchall(
            "SELECT chat_id, user_id, name, draft FROM conversation_drafts"
        )
        return SavedConversations(
            states={ConversationKey(r[0], r[1], r[2]): str(r[3]) for r in states},
            drafts={ConversationKey(r[0], r[1], r[2]): _bytes(r[3]) for r in drafts},
        )

    async def save_conversations(
        self,
        states: Mapping[ConversationKey, str | None],
        drafts: Mapping[ConversationKey, bytes | None],
        *,
        at: datetime,
        keep_existing: bool = False,
    ) -> None:
        stamp = at.astimezone(UTC).isoformat()
        conflict = "NOTHING" if keep_existing else _UPDATE
        async with self._storage.transaction() as db:
            for table, column, rows in (
                ("conversations", "state", states),
                ("conversation_drafts", "draft", drafts),
            ):
                gone, kept = split_rows(rows)
                if gone:
                    await db.executemany(
                        f"DELETE FROM {table} WHERE chat_id = ? AND user_id = ? AND name = ?",
                        [(key.chat_id, key.user_id, key.name) for key in gone],
                    )
                if kept:
                    await db.executemany(
                        f"INSERT INTO {table} (chat_id, user_id, name, {column}, updated_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id, name) "
                        f"DO {conflict.format(column)}",
                        [
                            (key.chat_id, key.user_id, key.name, value, stamp)
                            for key, value in kept.items()
                        ],
                    )


def conversations_for(storage: Storage) -> ConversationStore:
    """The conversation store sharing ``storage``'s connection (SQLite) or pool (PostgreSQL)."""
    if isinstance(storage, SqliteStorage):
        return SqliteConversationStore(storage)
    # imported here: storage.postgres.conversations imports this module
    from storage.postgres.conversations import PostgresConversationStore
    from storage.postgres.storage import PostgresStorage

    if isinstance(storage, PostgresStorage):
        return PostgresConversationStore(storage.pool)
    raise TypeError(f"no conversation store for {type(storage).__name__}")


def _bytes(value: object) -> bytes:
    """A draft as kept: bytes (a row written by hand as text is kept as its UTF-8, which then
    fails to load as a draft and is skipped like any damaged one)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()
