"""PostgreSQL implementation of ``storage.conversations.ConversationStore`` (asyncpg pool).

A save is one transaction of upserts and deletes, each decided by the database (``ON CONFLICT``)
rather than by a read before the write; rows are written in key order, so two writers whose
saves share rows take their row locks in the same order and never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import asyncpg

from storage.conversations import ConversationKey, SavedConversations, split_rows

_UPDATE = "UPDATE SET {0} = excluded.{0}, updated_at = excluded.updated_at"


class PostgresConversationStore:
    """The conversations in the PostgreSQL database (tables of its migration 0006)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_conversations(self) -> SavedConversations:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            states = await conn.fetch("SELECT chat_id, user_id, name, state FROM conversations")
            drafts = await conn.fetch(
                "SELECT chat_id, user_id, name, draft FROM conversation_drafts"
            )
        return SavedConversations(
            states={ConversationKey(r[0], r[1], r[2]): r[3] for r in states},
            drafts={ConversationKey(r[0], r[1], r[2]): bytes(r[3]) for r in drafts},
        )

    async def save_conversations(
        self,
        states: Mapping[ConversationKey, str | None],
        drafts: Mapping[ConversationKey, bytes | None],
        *,
        at: datetime,
        keep_existing: bool = False,
    ) -> None:
        conflict = "NOTHING" if keep_existing else _UPDATE
        async with self._pool.acquire() as conn, conn.transaction():
            for table, column, rows in (
                ("conversations", "state", states),
                ("conversation_drafts", "draft", drafts),
            ):
                gone, kept = split_rows(rows)
                if gone:
                    await conn.executemany(
                        f"DELETE FROM {table} WHERE chat_id = $1 AND user_id = $2 AND name = $3",
                        [(key.chat_id, key.user_id, key.name) for key in sorted(gone)],
                    )
                if kept:
                    await conn.executemany(
                        f"INSERT INTO {table} (chat_id, user_id, name, {column}, updated_at) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id, user_id, name) "
                        f"DO {conflict.format(column)}",
                        [
                            (key.chat_id, key.user_id, key.name, kept[key], at)
                            for key in sorted(kept)
                        ],
                    )
