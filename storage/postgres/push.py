"""PostgreSQL ``PushStore``: push targets and each robot's rate budget.

Writers run side by side here, so the checks are made where the database decides: adding a
target locks the chat's row first (two adds to one chat take turns, and the count of its
targets holds until the insert), and a slot is claimed in one upsert, so two senders in two
processes never get the same one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from bot.robots.models import MAX_TARGETS_PER_CHAT, PushTarget, Robot
from storage.push import TARGET_COLUMNS, push_target_of

# As storage.push._NEXT: a slot more than a day ahead was claimed by a clock that ran ahead.
_NEXT = (
    "(CASE WHEN robot_slots.next_at > $3::timestamptz + interval '1 day' THEN $3::timestamptz "
    "ELSE greatest(robot_slots.next_at, $3::timestamptz) END)"
)
_CLAIM_SQL = (
    "INSERT INTO robot_slots (service, token, next_at) "
    "VALUES ($1, $2, $3::timestamptz + $4 * interval '1 second') "
    "ON CONFLICT (service, token) DO UPDATE SET next_at = "
    f"{_NEXT} + $4 * interval '1 second' "
    f"WHERE $5::float8 IS NULL OR {_NEXT} <= $3::timestamptz + $5 * interval '1 second' "
    "RETURNING next_at"
)


class PostgresPushStore:
    """``PushStore`` on the pool the bot's ``PostgresStorage`` uses."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def targets(self, chat_id: int) -> list[PushTarget]:
        rows = await self.pool.fetch(
            f"SELECT {TARGET_COLUMNS} FROM push_targets WHERE chat_id = $1 ORDER BY id", chat_id
        )
        return [push_target_of(row) for row in rows]

    async def target(self, target_id: int) -> PushTarget | None:
        row = await self.pool.fetchrow(
            f"SELECT {TARGET_COLUMNS} FROM push_targets WHERE id = $1", target_id
        )
        return push_target_of(row) if row else None

    async def add_target(
        self,
        chat_id: int,
        robot: Robot,
        *,
        secret: str | None,
        source_name: str | None,
        added_by: int | None,
        at: datetime,
        is_group: bool,
    ) -> PushTarget | None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chats (chat_id, is_group, created_at, address) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                chat_id,
                is_group,
                at,
                str(chat_id),
            )
            # NO KEY UPDATE: adds to this chat wait for each other, while cards and outbox
            # rows (which only take a key share on the chat) go on being written.
            await conn.execute("SELECT 1 FROM chats WHERE chat_id = $1 FOR NO KEY UPDATE", chat_id)
            row = await conn.fetchrow(
                "UPDATE push_targets SET secret = $1, source_name = $2, paused_since = NULL, "
                "pause_reason = NULL WHERE chat_id = $3 AND service = $4 AND token = $5 "
                f"RETURNING {TARGET_COLUMNS}",
                secret,
                source_name,
                chat_id,
                robot.service.value,
                robot.token,
            )
            if row is not None:
                return push_target_of(row)
            count = await conn.fetchval(
                "SELECT count(*) FROM push_targets WHERE chat_id = $1", chat_id
            )
            if int(count) >= MAX_TARGETS_PER_CHAT:
                return None
            row = await conn.fetchrow(
                "INSERT INTO push_targets (chat_id, service, token, secret, source_name, "
                f"added_at, added_by) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                f"RETURNING {TARGET_COLUMNS}",
                chat_id,
                robot.service.value,
                robot.token,
                secret,
                source_name,
                at,
                added_by,
            )
        assert row is not None
        return push_target_of(row)

    async def remove_target(self, chat_id: int, target_id: int) -> bool:
        status = await self.pool.execute(
            "DELETE FROM push_targets WHERE chat_id = $1 AND id = $2", chat_id, target_id
        )
        return status != "DELETE 0"

    async def next_slot(self, robot: Robot) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(
            "SELECT next_at FROM robot_slots WHERE service = $1 AND token = $2",
            robot.service.value,
            robot.token,
        )
        return value

    async def forget_unused(self, robot: Robot) -> None:
        await self.pool.execute(
            "DELETE FROM robot_slots WHERE service = $1 AND token = $2 AND NOT EXISTS ("
            "SELECT 1 FROM push_targets t "
            "WHERE t.service = robot_slots.service AND t.token = robot_slots.token)",
            robot.service.value,
            robot.token,
        )

    async def resume_target(self, chat_id: int, target_id: int) -> bool:
        status = await self.pool.execute(
            "UPDATE push_targets SET paused_since = NULL, pause_reason = NULL "
            "WHERE chat_id = $1 AND id = $2",
            chat_id,
            target_id,
        )
        return status != "UPDATE 0"

    async def record_result(self, target_id: int, result: str, *, at: datetime) -> None:
        await self.pool.execute(
            "UPDATE push_targets SET last_at = $1, last_result = $2 WHERE id = $3",
            at,
            result,
            target_id,
        )

    async def claim_slot(
        self, robot: Robot, *, now: datetime, interval: float, within: float | None = None
    ) -> datetime | None:
        after = await self.pool.fetchval(
            _CLAIM_SQL, robot.service.value, robot.token, now, interval, within
        )
        if after is None:
            return None  # the next slot is further than ``within``: nothing claimed
        assert isinstance(after, datetime)
        # the slot before the move: max(next_at, now)
        return max(now, after - timedelta(seconds=interval))
