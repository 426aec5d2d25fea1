"""Push targets (the robots a chat's digests also go to) and each robot's rate budget; the
interface and its SQLite form.

A sibling of ``SqliteStorage`` on its connection (same lock, same file). The budget
(``claim_slot``) is one upsert: SQLite runs one writer at a time across processes, so two
senders (the bot and ``remind``) can never be handed the same slot.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.robots.models import MAX_TARGETS_PER_CHAT, PushTarget, Robot, Service
from storage.sqlite import SqliteStorage

TARGET_COLUMNS = (
    "id, chat_id, service, token, secret, source_name, added_at, added_by, paused_since, "
    "pause_reason, last_at, last_result"
)


class PushStore(Protocol):
    async def targets(self, chat_id: int) -> list[PushTarget]:
        """The chat's targets by id: the order (and numbering) users see."""
        ...

    async def target(self, target_id: int) -> PushTarget | None: ...

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
        """The robot as a target of the chat (the chat created if it has no row yet). A robot
        the chat has already gets the new secret and source name and is no longer paused.
        None, and nothing changed, when the chat has ``MAX_TARGETS_PER_CHAT`` others."""
        ...

    async def remove_target(self, chat_id: int, target_id: int) -> bool:
        """Only within the chat: another chat's id removes nothing. Its undelivered outbox
        rows go with it."""
        ...

    async def resume_target(self, chat_id: int, target_id: int) -> bool:
        """A paused target active again (its test arrived); False if it is not the chat's."""
        ...

    async def next_slot(self, robot: Robot) -> datetime | None:
        """When the robot's next message may go, without claiming it (None: now)."""
        ...

    async def forget_unused(self, robot: Robot) -> None:
        """Drop the robot's budget if no chat pushes to it (any more)."""
        ...

    async def record_result(self, target_id: int, result: str, *, at: datetime) -> None:
        """The last delivery (or test) to the target: "ok", or a short reason code."""
        ...

    async def claim_slot(
        self, robot: Robot, *, now: datetime, interval: float, within: float | None = None
    ) -> datetime | None:
        """The instant the caller may send the robot a message (``now`` or later), the robot's
        next slot moved on by ``interval`` seconds for whoever asks next, in any process.
        ``within``: only a slot at most that many seconds away; None (and nothing claimed) if
        the next one is later, so a sender that could not wait that long wastes none."""
        ...


def slot_now(now: datetime) -> datetime:
    """``now`` in UTC, rounded up to the millisecond SQLite keeps (never earlier than now)."""
    moment = now.astimezone(UTC)
    extra = moment.microsecond % 1000
    return moment + timedelta(microseconds=1000 - extra) if extra else moment


def _instant(moment: datetime) -> str:
    # The fixed format storage.reminders uses: instants compare correctly as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | datetime | None) -> datetime | None:
    if text is None or isinstance(text, datetime):
        return text
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def push_target_of(row: Any) -> PushTarget:
    """A push target from a row of ``TARGET_COLUMNS``, SQLite's (instants as text) or
    asyncpg's (timestamptz): both are read by position."""
    added_at = _moment(row[6])
    assert added_at is not None
    return PushTarget(
        id=int(row[0]),
        chat_id=int(row[1]),
        robot=Robot(Service(row[2]), str(row[3])),
        secret=row[4],
        source_name=row[5],
        added_at=added_at,
        added_by=row[7],
        paused_since=_moment(row[8]),
        pause_reason=row[9],
        last_at=_moment(row[10]),
        last_result=row[11],
    )


# julianday() reads the stored instants whatever their fraction; strftime() writes them back to
# the millisecond (its precision), which ``slot_now`` and the intervals are multiples of.
_SLOT_FORMAT = "'%Y-%m-%dT%H:%M:%f+00:00'"
# The next free slot: the stored one, unless it is more than a day ahead (claimed by a clock that
# ran ahead: nobody sets one that far), else now. In the real time of the robots' budgets.
_NEXT = (
    "(CASE WHEN julianday(next_at) > julianday(:now) + 1 THEN julianday(:now) "
    "ELSE max(julianday(next_at), julianday(:now)) END)"
)
_CLAIM_SQL = (
    "INSERT INTO robot_slots (service, token, next_at) "
    f"VALUES (:service, :token, strftime({_SLOT_FORMAT}, julianday(:now) + :days)) "
    "ON CONFLICT (service, token) DO UPDATE SET next_at = "
    f"strftime({_SLOT_FORMAT}, {_NEXT} + :days) "
    f"WHERE :within IS NULL OR {_NEXT} <= julianday(:now) + :within "
    "RETURNING next_at"
)

# The robot's forgotten row (no chat pushes to it any more: removed, or refused at its test):
# nothing of a robot nobody uses stays, its token least of all.
_FORGET_SQL = """
DELETE FROM robot_slots WHERE service = ? AND token = ? AND NOT EXISTS (
    SELECT 1 FROM push_targets t
    WHERE t.service = robot_slots.service AND t.token = robot_slots.token)
"""


class SqlitePushStore:
    """``PushStore`` on the bot's ``SqliteStorage``."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage

    async def targets(self, chat_id: int) -> list[PushTarget]:
        rows = await self.storage.fetchall(
            f"SELECT {TARGET_COLUMNS} FROM push_targets WHERE chat_id = ? ORDER BY id", (chat_id,)
        )
        return [push_target_of(row) for row in rows]

    async def target(self, target_id: int) -> PushTarget | None:
        row = await self.storage.fetchone(
            f"SELECT {TARGET_COLUMNS} FROM push_targets WHERE id = ?", (target_id,)
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
        # BEGIN IMMEDIATE: the count and the insert see the same rows, in every process.
        async with self.storage.transaction() as db:
            await db.execute(
                "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chat_id) DO NOTHING",
                (chat_id, int(is_group), _instant(at), str(chat_id)),
            )
            async with db.execute(
                "UPDATE push_targets SET secret = ?, source_name = ?, paused_since = NULL, "
                "pause_reason = NULL WHERE chat_id = ? AND service = ? AND token = ? "
                f"RETURNING {TARGET_COLUMNS}",
                (secret, source_name, chat_id, robot.service.value, robot.token),
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                return push_target_of(row)
            async with db.execute(
                "SELECT count(*) FROM push_targets WHERE chat_id = ?", (chat_id,)
            ) as cursor:
                count = await cursor.fetchone()
            if count is not None and int(count[0]) >= MAX_TARGETS_PER_CHAT:
                return None
            async with db.execute(
                "INSERT INTO push_targets (chat_id, service, token, secret, source_name, "
                f"added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {TARGET_COLUMNS}",
                (
                    chat_id,
                    robot.service.value,
                    robot.token,
                    secret,
                    source_name,
                    _instant(at),
                    added_by,
                ),
            ) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return push_target_of(row)

    async def remove_target(self, chat_id: int, target_id: int) -> bool:
        async with self.storage.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM push_targets WHERE chat_id = ? AND id = ?", (chat_id, target_id)
            )
            return cursor.rowcount > 0

    async def next_slot(self, robot: Robot) -> datetime | None:
        row = await self.storage.fetchone(
            "SELECT next_at FROM robot_slots WHERE service = ? AND token = ?",
            (robot.service.value, robot.token),
        )
        return _moment(row[0]) if row else None

    async def forget_unused(self, robot: Robot) -> None:
        await self.storage.execute(_FORGET_SQL, (robot.service.value, robot.token))

    async def resume_target(self, chat_id: int, target_id: int) -> bool:
        changed = await self.storage.execute(
            "UPDATE push_targets SET paused_since = NULL, pause_reason = NULL "
            "WHERE chat_id = ? AND id = ?",
            (chat_id, target_id),
        )
        return changed > 0

    async def record_result(self, target_id: int, result: str, *, at: datetime) -> None:
        await self.storage.execute(
            "UPDATE push_targets SET last_at = ?, last_result = ? WHERE id = ?",
            (_instant(at), result, target_id),
        )

    async def claim_slot(
        self, robot: Robot, *, now: datetime, interval: float, within: float | None = None
    ) -> datetime | None:
        start = slot_now(now)
        params = {
            "service": robot.service.value,
            "token": robot.token,
            "now": start.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
            "days": interval / 86_400,
            "within": None if within is None else within / 86_400,
        }
        async with self.storage.transaction() as db, db.execute(_CLAIM_SQL, params) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None  # the next slot is further than ``within``: nothing claimed
        after = _moment(row[0])
        assert after is not None
        # what the caller gets is the slot before the move: max(next_at, now)
        return max(start, after - timedelta(milliseconds=math.floor(interval * 1000 + 0.5)))
