"""What the channel layer keeps: chats' and people's addresses, group administrators, the menus
last offered, and who holds a channel's connection; the interface and its SQLite form.

A chat of a channel other than Telegram (and a person of one) gets an id from
``FOREIGN_ID_BASE`` up the first time it is seen: the next after the highest such id, decided
inside the writing transaction (SQLite runs one writer at a time, across processes too), so
two callers never get two ids for one address, nor one id for two. A Telegram chat's id is its
Telegram id (``bot.chats``). The PostgreSQL form is ``storage.postgres.channels``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.chats import FOREIGN_ID_BASE, Channel, ChatAddress, ChatKind, telegram_chat_id
from storage.sqlite import SqliteStorage

# A menu longer than this is refused: nobody picks the 101st line of a list in a chat.
MAX_MENU_OPTIONS = 100
UNPROMPTED = 0  # the user id of a menu shown to nobody in particular (a digest's choices)

Option = tuple[str, str]  # (label, data): what the person sees, what answering it means


@dataclass(frozen=True)
class Menu:
    """The numbered choices last offered: option n is ``options[n - 1]``."""

    message_id: int
    options: tuple[Option, ...]
    created_at: datetime  # UTC


class ChannelStore(Protocol):
    async def chat_id_for(self, address: ChatAddress, *, at: datetime) -> int:
        """The chat's id, its row created (at ``at``) the first time: a Telegram chat's id is
        its Telegram id; any other gets a fresh id >= ``FOREIGN_ID_BASE``. Callers at once for
        one address all get the same id (one row). ``ValueError``: a Telegram address that is
        not a Telegram chat id."""
        ...

    async def chat_address(self, chat_id: int) -> ChatAddress | None:
        """Where the chat is; None if there is no such chat."""
        ...

    async def user_id_for(
        self, channel: Channel, address: str, *, name: str | None, at: datetime
    ) -> int:
        """The person's id, allocated (>= ``FOREIGN_ID_BASE``) the first time; ``name``, when
        given, replaces the one kept. A Telegram user's id is their Telegram id (no row)."""
        ...

    async def user_address(self, user_id: int) -> tuple[Channel, str, str | None] | None:
        """The channel, address and name of a person whose id was allocated here; None for
        any other id (a Telegram user's, or unknown)."""
        ...

    async def group_admin(self, chat_id: int) -> int | None:
        """The group's administrator as recorded here (channels that cannot tell us)."""
        ...

    async def claim_group_admin(self, chat_id: int, user_id: int) -> int:
        """``user_id`` becomes the administrator if the group has none; who is now (the first
        claim wins, also when two come at once). ``LookupError``: no such chat."""
        ...

    async def set_group_admin(self, chat_id: int, user_id: int) -> None:
        """Hand the group's administration to ``user_id``. ``LookupError``: no such chat."""
        ...

    async def save_menu(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        options: Sequence[Option],
        *,
        at: datetime,
    ) -> None:
        """The choices just offered to ``user_id`` (``UNPROMPTED``: to nobody in particular),
        replacing the ones before. ``ValueError``: more than ``MAX_MENU_OPTIONS``."""
        ...

    async def menu(self, chat_id: int, user_id: int) -> Menu | None:
        """The menu an answer of ``user_id`` refers to: the newer of their own and the
        unprompted one; None if neither exists."""
        ...

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take the lease ``name`` for ``ttl`` if it is free, expired or ``holder``'s already
        (then renewed); False if another holder has it. Of two racing, exactly one wins."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Let go of the lease if ``holder`` has it (another's is left alone)."""
        ...

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Who holds the lease at ``now``; None if free or expired."""
        ...


def menu_options_json(options: Sequence[Option]) -> str:
    """The options as stored; ``ValueError`` if there are too many."""
    if len(options) > MAX_MENU_OPTIONS:
        raise ValueError(f"a menu has at most {MAX_MENU_OPTIONS} options, not {len(options)}")
    return json.dumps([[label, data] for label, data in options], ensure_ascii=False)


def menu_options(raw: str) -> tuple[Option, ...]:
    return tuple((str(label), str(data)) for label, data in json.loads(raw))


def telegram_user_id(channel: Channel, address: str) -> int | None:
    """A Telegram user's id is their Telegram id: nothing to allocate."""
    return telegram_chat_id(address) if channel is Channel.TELEGRAM else None


def _instant(moment: datetime) -> str:
    # One fixed format, so instants compare correctly as text in SQL (as storage.reminders).
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_NEXT_CHAT_ID = "SELECT coalesce(max(chat_id) + 1, :base) FROM chats WHERE chat_id >= :base"
_NEXT_USER_ID = "SELECT coalesce(max(user_id) + 1, :base) FROM channel_users WHERE user_id >= :base"
_TAKE_LEASE = (
    "INSERT INTO channel_leases (name, holder, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE channel_leases.holder = excluded.holder OR channel_leases.expires_at <= ? "
    "RETURNING holder"
)


class SqliteChannelStore:
    """The channel tables (migration 0009) in the bot's SQLite database."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def chat_id_for(self, address: ChatAddress, *, at: datetime) -> int:
        if address.channel is Channel.TELEGRAM:
            return await self._telegram_chat(address, at)
        key = (address.channel.value, int(address.kind.is_group), address.address)
        find = "SELECT chat_id FROM chats WHERE channel = ? AND is_group = ? AND address = ?"
        row = await self._storage.fetchone(find, key)  # every message asks: a read first
        if row is not None:
            return int(row[0])
        async with self._storage.transaction() as db:
            async with db.execute(find, key) as cursor:
                row = await cursor.fetchone()
            if row is not None:  # created between the read and the write
                return int(row[0])
            async with db.execute(
                "INSERT INTO chats (chat_id, channel, is_group, address, created_at) "
                f"VALUES (({_NEXT_CHAT_ID}), :channel, :group, :address, :at) RETURNING chat_id",
                {
                    "base": FOREIGN_ID_BASE,
                    "channel": key[0],
                    "group": key[1],
                    "address": key[2],
                    "at": _instant(at),
                },
            ) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def _telegram_chat(self, address: ChatAddress, at: datetime) -> int:
        chat_id = telegram_chat_id(address.address)
        if await self._storage.fetchone("SELECT 1 FROM chats WHERE chat_id = ?", (chat_id,)):
            return chat_id
        await self._storage.execute(
            "INSERT INTO chats (chat_id, is_group, address, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (chat_id) DO NOTHING",
            (chat_id, int(address.kind.is_group), address.address, _instant(at)),
        )
        return chat_id

    async def chat_address(self, chat_id: int) -> ChatAddress | None:
        row = await self._storage.fetchone(
            "SELECT channel, is_group, address FROM chats WHERE chat_id = ?", (chat_id,)
        )
        if row is None:
            return None
        return ChatAddress(Channel(row[0]), ChatKind.of(bool(row[1])), str(row[2]))

    async def user_id_for(
        self, channel: Channel, address: str, *, name: str | None, at: datetime
    ) -> int:
        telegram = telegram_user_id(channel, address)
        if telegram is not None:
            return telegram
        key = (channel.value, address)
        row = await self._storage.fetchone(
            "SELECT user_id, name FROM channel_users WHERE channel = ? AND address = ?", key
        )
        if row is not None and (name is None or name == row[1]):
            return int(row[0])
        async with self._storage.transaction() as db:
            async with db.execute(
                "UPDATE channel_users SET name = coalesce(?, name) "
                "WHERE channel = ? AND address = ? RETURNING user_id",
                (name, *key),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                async with db.execute(
                    "INSERT INTO channel_users (user_id, channel, address, name, created_at) "
                    f"VALUES (({_NEXT_USER_ID}), :channel, :address, :name, :at) "
                    "RETURNING user_id",
                    {
                        "base": FOREIGN_ID_BASE,
                        "channel": key[0],
                        "address": key[1],
                        "name": name,
                        "at": _instant(at),
                    },
                ) as cursor:
                    row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def user_address(self, user_id: int) -> tuple[Channel, str, str | None] | None:
        row = await self._storage.fetchone(
            "SELECT channel, address, name FROM channel_users WHERE user_id = ?", (user_id,)
        )
        return (Channel(row[0]), str(row[1]), row[2]) if row else None

    async def group_admin(self, chat_id: int) -> int | None:
        row = await self._storage.fetchone(
            "SELECT admin_user_id FROM chats WHERE chat_id = ?", (chat_id,)
        )
        return None if row is None or row[0] is None else int(row[0])

    async def claim_group_admin(self, chat_id: int, user_id: int) -> int:
        async with self._storage.statements() as db:  # one statement: atomic by itself
            rows = list(
                await db.execute_fetchall(
                    "UPDATE chats SET admin_user_id = coalesce(admin_user_id, ?) "
                    "WHERE chat_id = ? RETURNING admin_user_id",
                    (user_id, chat_id),
                )
            )
        if not rows:
            raise LookupError(f"no chat {chat_id}")
        return int(rows[0][0])

    async def set_group_admin(self, chat_id: int, user_id: int) -> None:
        changed = await self._storage.execute(
            "UPDATE chats SET admin_user_id = ? WHERE chat_id = ?", (user_id, chat_id)
        )
        if not changed:
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
        await self._storage.execute(
            "INSERT INTO channel_menus (chat_id, user_id, message_id, options, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET "
            "message_id = excluded.message_id, options = excluded.options, "
            "created_at = excluded.created_at",
            (chat_id, user_id, message_id, menu_options_json(options), _instant(at)),
        )

    async def menu(self, chat_id: int, user_id: int) -> Menu | None:
        # The newer of the two; on a tie, the person's own.
        row = await self._storage.fetchone(
            "SELECT message_id, options, created_at FROM channel_menus "
            "WHERE chat_id = ? AND user_id IN (?, ?) "
            "ORDER BY created_at DESC, user_id <> ? LIMIT 1",
            (chat_id, user_id, UNPROMPTED, user_id),
        )
        if row is None:
            return None
        return Menu(int(row[0]), menu_options(row[1]), _parse_instant(row[2]))

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        # One upsert: SQLite runs one writer at a time (across processes too), so of two
        # racing exactly one finds the lease free.
        async with self._storage.statements() as db:
            rows = list(
                await db.execute_fetchall(
                    _TAKE_LEASE, (name, holder, _instant(now + ttl), _instant(now))
                )
            )
        return bool(rows)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._storage.execute(
            "DELETE FROM channel_leases WHERE name = ? AND holder = ?", (name, holder)
        )

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        row = await self._storage.fetchone(
            "SELECT holder FROM channel_leases WHERE name = ? AND expires_at > ?",
            (name, _instant(now)),
        )
        return str(row[0]) if row else None
