"""PostgreSQL ``ChannelStore`` (see ``storage.channels``): the channel tables on the bot's pool.

Writers run side by side here. Allocating an id takes a transaction-scoped advisory lock (one
for chats, one for people, per schema), then reads the highest id: new chats and people are
rare (their first message), so they take turns rather than race for the same number. Two
callers with one address: the second's insert meets the first's row (ON CONFLICT) and reads
it. A lease is one upsert whose WHERE PostgreSQL re-checks on the row it locked: of two racing,
exactly one is handed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from bot.chats import FOREIGN_ID_BASE, Channel, ChatAddress, ChatKind, telegram_chat_id
from storage.channels import (
    UNPROMPTED,
    Menu,
    Option,
    menu_options,
    menu_options_json,
    telegram_user_id,
)
from storage.postgres.pool import Connection

# pg_advisory_xact_lock(class, hashtext(current_schema())): allocating chat ids, user ids
CHAT_IDS_LOCK = 0x51_3A_7C_02
USER_IDS_LOCK = 0x51_3A_7C_03

_FIND_CHAT = "SELECT chat_id FROM chats WHERE channel = $1 AND is_group = $2 AND address = $3"
_FIND_USER = "SELECT user_id, name FROM channel_users WHERE channel = $1 AND address = $2"
_TAKE_LEASE = (
    "INSERT INTO channel_leases (name, holder, expires_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE channel_leases.holder = excluded.holder OR channel_leases.expires_at <= $4 "
    "RETURNING holder"
)


async def _allocating(conn: Connection, lock: int) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", lock)


class PostgresChannelStore:
    """``ChannelStore`` on the pool the bot's ``PostgresStorage`` uses."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def chat_id_for(self, address: ChatAddress, *, at: datetime) -> int:
        if address.channel is Channel.TELEGRAM:
            return await self._telegram_chat(address, at)
        key = (address.channel.value, address.kind.is_group, address.address)
        found = await self._pool.fetchval(_FIND_CHAT, *key)  # every message asks: a read first
        if found is not None:
            return int(found)
        async with self._pool.acquire() as conn, conn.transaction():
            await _allocating(conn, CHAT_IDS_LOCK)
            # Under the lock, each statement sees every id allocated before it was taken.
            made = await conn.fetchval(
                "INSERT INTO chats (chat_id, channel, is_group, address, created_at) "
                "SELECT coalesce(max(chat_id) + 1, $5), $1, $2, $3, $4 "
                "FROM chats WHERE chat_id >= $5 "
                "ON CONFLICT (channel, is_group, address) DO NOTHING RETURNING chat_id",
                *key,
                at,
                FOREIGN_ID_BASE,
            )
            if made is None:  # another caller made it first
                made = await conn.fetchval(_FIND_CHAT, *key)
        assert made is not None
        return int(made)

    async def _telegram_chat(self, address: ChatAddress, at: datetime) -> int:
        chat_id = telegram_chat_id(address.address)
        if await self._pool.fetchval("SELECT 1 FROM chats WHERE chat_id = $1", chat_id):
            return chat_id
        await self._pool.execute(
            "INSERT INTO chats (chat_id, is_group, address, created_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            chat_id,
            address.kind.is_group,
            address.address,
            at,
        )
        return chat_id

    async def chat_address(self, chat_id: int) -> ChatAddress | None:
        row = await self._pool.fetchrow(
            "SELECT channel, is_group, address FROM chats WHERE chat_id = $1", chat_id
        )
        if row is None:
            return None
        return ChatAddress(Channel(row[0]), ChatKind.of(row[1]), row[2])

    async def user_id_for(
        self, channel: Channel, address: str, *, name: str | None, at: datetime
    ) -> int:
        telegram = telegram_user_id(channel, address)
        if telegram is not None:
            return telegram
        row = await self._pool.fetchrow(_FIND_USER, channel.value, address)
        if row is not None and (name is None or name == row[1]):
            return int(row[0])
        async with self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "UPDATE channel_users SET name = coalesce($3, name) "
                "WHERE channel = $1 AND address = $2 RETURNING user_id",
                channel.value,
                address,
                name,
            )
            if user_id is None:
                await _allocating(conn, USER_IDS_LOCK)
                user_id = await conn.fetchval(
                    "INSERT INTO channel_users (user_id, channel, address, name, created_at) "
                    "SELECT coalesce(max(user_id) + 1, $5), $1, $2, $3, $4 "
                    "FROM channel_users WHERE user_id >= $5 "
                    "ON CONFLICT (channel, address) DO UPDATE SET "
                    "name = coalesce(excluded.name, channel_users.name) RETURNING user_id",
                    channel.value,
                    address,
                    name,
                    at,
                    FOREIGN_ID_BASE,
                )
        assert user_id is not None
        return int(user_id)

    async def user_address(self, user_id: int) -> tuple[Channel, str, str | None] | None:
        row = await self._pool.fetchrow(
            "SELECT channel, address, name FROM channel_users WHERE user_id = $1", user_id
        )
        return (Channel(row[0]), row[1], row[2]) if row else None

    async def group_admin(self, chat_id: int) -> int | None:
        admin = await self._pool.fetchval(
            "SELECT admin_user_id FROM chats WHERE chat_id = $1", chat_id
        )
        return None if admin is None else int(admin)

    async def claim_group_admin(self, chat_id: int, user_id: int) -> int:
        # One UPDATE: a second claim waits for the first's row lock, then sees its admin.
        row = await self._pool.fetchrow(
            "UPDATE chats SET admin_user_id = coalesce(admin_user_id, $2) "
            "WHERE chat_id = $1 RETURNING admin_user_id",
            chat_id,
            user_id,
        )
        if row is None:
            raise LookupError(f"no chat {chat_id}")
        return int(row[0])

    async def set_group_admin(self, chat_id: int, user_id: int) -> None:
        status = await self._pool.execute(
            "UPDATE chats SET admin_user_id = $2 WHERE chat_id = $1", chat_id, user_id
        )
        if status.split()[-1] == "0":
            raise LookupError(f"no chat {chat_id}")

    async def save_menu(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        options: Sequence[Option],
        *,
        at: datetime,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO channel_menus (chat_id, user_id, message_id, options, created_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id, user_id) DO UPDATE SET "
            "message_id = excluded.message_id, options = excluded.options, "
            "created_at = excluded.created_at",
            chat_id,
            user_id,
            message_id,
            menu_options_json(options),
            at,
        )

    async def menu(self, chat_id: int, user_id: int) -> Menu | None:
        # The newer of the two; on a tie, the person's own.
        row = await self._pool.fetchrow(
            "SELECT message_id, options, created_at FROM channel_menus "
            "WHERE chat_id = $1 AND user_id IN ($2, $3) "
            "ORDER BY created_at DESC, user_id <> $2 LIMIT 1",
            chat_id,
            user_id,
            UNPROMPTED,
        )
        if row is None:
            return None
        return Menu(int(row[0]), menu_options(row[1]), row[2])

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        taken = await self._pool.fetchval(_TAKE_LEASE, name, holder, now + ttl, now)
        return taken is not None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._pool.execute(
            "DELETE FROM channel_leases WHERE name = $1 AND holder = $2", name, holder
        )

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        holder = await self._pool.fetchval(
            "SELECT holder FROM channel_leases WHERE name = $1 AND expires_at > $2", name, now
        )
        return None if holder is None else str(holder)
