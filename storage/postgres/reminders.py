"""``ReminderStore`` on PostgreSQL: the same semantics as ``storage.reminders``' SQLite form.

SQLite runs one writer at a time (one connection, ``BEGIN IMMEDIATE``), so its code may read,
decide and write. Here several composers and senders (processes, or tasks on a pool) run at
once in READ COMMITTED, and what they must not do twice is guarded by row locks:

- a batch of a reminder pass takes its chats with ``FOR NO KEY UPDATE SKIP LOCKED`` (two
  composers share the chats between them; cards can still be added meanwhile, a foreign key
  takes only ``KEY SHARE``), re-reads their state once it holds them (a pass that committed
  between its snapshot and its locks is seen), and locks the cards it auto-renews; a renewal is
  recorded only for a card whose expiry the guarded update really moved, so no card is renewed
  twice, not even beside a renewal by hand;
- a group's move into its supergroup locks both chats' rows (and so every card insert into
  either) and retries when a concurrent first message created the supergroup's row meanwhile;
- a claim on an outbox message is one guarded ``UPDATE``: a second sender waits for the row
  and then finds it claimed; expanding a digest into parts locks the chat's messages of the
  day, so two digests merged into one day never number their parts alike.

The store's own transactions are retried after a deadlock or a serialisation failure; a pass's
batch is the caller's transaction and is not: it rolls back whole, and the next pass (the next
tick) takes its chats again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

import asyncpg

from bot.chats import Channel
from bot.models import Period, RenewalRule
from bot.reminders.models import (
    DEFAULT_SEND_TIME,
    AheadUndone,
    AutoRenewal,
    AutoRenewCandidate,
    ChatToRemind,
    ClockRecord,
    DigestChat,
    DigestPart,
    DueCard,
    HeldMessages,
    OutboxMessage,
    ReminderSettings,
    keyboard_from_json,
    settings_from_columns,
    settings_to_columns,
)
from bot.reminders.thresholds import LevelBands
from bot.robots.models import PushTarget
from storage.postgres.pool import Connection
from storage.push import TARGET_COLUMNS, push_target_of
from storage.reminders import (
    _CLOCK_RECORD_SQL,
    _EARLIEST_ZONE,
    _MESSAGE_COLUMNS,
    _OUTBOX_WIDTH,
    _PENDING_ROBOTS_SQL,
    ReminderBatch,
    _joined_notes,
    _merged_card,
)

Pool = asyncpg.Pool
T = TypeVar("T")

# The sent-log's date for cards whose digest of the day was rendered before their chat merged
# into another (``storage.reminders.CARRIED``).
CARRIED = date(1, 1, 1)
_MIN_CHAT_ID = -(2**63)
# Conflicts a transaction is retried after (each retry starts afresh, nothing was written).
_RETRIED: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_ATTEMPTS = 5


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``INSERT 0 2``."""
    return int(status.rsplit(" ", 1)[-1])


def _minute(moment: time) -> time:
    return moment.replace(second=0, microsecond=0, tzinfo=None)


def _hhmm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


async def _retrying(
    pool: Pool,
    work: Callable[[Connection], Awaitable[T]],
    *,
    also: tuple[type[Exception], ...] = (),
) -> T:
    """``work`` in one transaction, run again (from scratch) after a deadlock, a serialisation
    failure or one of ``also``."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except (*_RETRIED, *also):
            if attempt == _ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


def _outbox_message(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        chat_id=row[1],
        digest_date=row[2],
        part=row[3],
        parts=row[4],
        text=row[5],
        buttons=keyboard_from_json(row[6]),
        renewed=row[7],
        attempts=row[8],
        target_id=row[9],
        channel=Channel(row[10]),
        is_group=row[11],
    )


# The digests of this pass into the outbox, a row per destination: the chat itself unless it
# stopped receiving (it blocked the bot), and each of its active robots; the chats that got one.
_DIGEST_ROWS_SQL = """
WITH d AS (
    SELECT chat_id, renewed FROM unnest($1::bigint[], $2::text[]) AS d (chat_id, renewed)
), own AS (
    INSERT INTO outbox (chat_id, digest_date, renewed, created_at)
    SELECT d.chat_id, $3, d.renewed, $4 FROM d
    WHERE NOT EXISTS (SELECT 1 FROM chat_reminders s
                      WHERE s.chat_id = d.chat_id AND s.inactive_since IS NOT NULL)
    ORDER BY d.chat_id
    ON CONFLICT DO NOTHING RETURNING chat_id
), robots AS (
    INSERT INTO outbox (chat_id, target_id, digest_date, renewed, created_at)
    SELECT d.chat_id, t.id, $3, d.renewed, $4 FROM d JOIN push_targets t ON t.chat_id = d.chat_id
    WHERE t.paused_since IS NULL
    ORDER BY d.chat_id, t.id
    ON CONFLICT DO NOTHING RETURNING chat_id
)
SELECT chat_id FROM own UNION SELECT chat_id FROM robots
"""

# A notice to the chat itself (a robot it pushes to stopped working), after the day's messages.
_NOTICE_SQL = """
INSERT INTO outbox (chat_id, digest_date, part, parts, text, buttons, created_at)
SELECT $1, $2, coalesce((SELECT max(part) FROM outbox WHERE chat_id = $1
                         AND target_id IS NULL AND digest_date = $2), 0) + 1,
       1, $3, '[]', $4
WHERE NOT EXISTS (SELECT 1 FROM chat_reminders s
                  WHERE s.chat_id = $1 AND s.inactive_since IS NOT NULL)
"""

# Taken with their rows locked (see the module's docstring); ``s`` is re-read after the lock.
# Within a window of chat ids (see due_chats), so that each batch costs the same: without one,
# the planner may read every chat after ``$1`` to sort them, for every batch of a pass.
_DUE_CHATS_SQL = """
SELECT ch.chat_id, ch.is_group, coalesce(ch.language, ch.default_language), ch.timezone,
       s.send_time, s.days_before, s.overdue_daily_days
FROM chats ch
LEFT JOIN chat_reminders s ON s.chat_id = ch.chat_id
WHERE ch.chat_id > $1 AND ch.chat_id <= $2 {zone}
  AND (s.inactive_since IS NULL OR EXISTS (SELECT 1 FROM push_targets t
                                         WHERE t.chat_id = ch.chat_id
                                           AND t.paused_since IS NULL))
  AND (s.composed_on IS NULL OR s.composed_on < $3) {send_time}
  AND EXISTS (SELECT 1 FROM cards c WHERE c.chat_id = ch.chat_id)
ORDER BY ch.chat_id
LIMIT $4
FOR NO KEY UPDATE OF ch SKIP LOCKED
"""

# The end of the next window: the chat id ``$2`` chats (of the zone) after ``$1``.
_WINDOW_SQL = """
SELECT max(chat_id) FROM (
    SELECT chat_id FROM chats ch WHERE chat_id > $1 {zone} ORDER BY chat_id LIMIT $2
) w
"""

_AUTO_RENEW_SQL = """
SELECT id, chat_id, iccid, label, expiry, muted, plan_months, plan_days, plan_price_fen
FROM cards
WHERE chat_id = ANY($1::bigint[]) AND auto_renew AND expiry <= $2 AND archived_at IS NULL
  AND (coalesce(plan_months, 0) > 0 OR coalesce(plan_days, 0) > 0)
ORDER BY id
FOR NO KEY UPDATE
"""

# One group of chats sharing one settings (see storage.reminders._DUE_SQL): picks the due cards
# and records them in the sent-log in one statement, and returns each due card's chat. An entry
# a pass of a later day overwrites is kept as the previous one (for undo_ahead).
_REMIND_SQL = """
WITH due AS (
    SELECT x.id, x.chat_id, x.expiry, x.level
    FROM (
        SELECT c.id, c.chat_id, c.expiry,
               CASE WHEN c.expiry < $1::date THEN c.expiry - $1::date {bands} END AS level
        FROM cards c
        WHERE c.chat_id = ANY($4::bigint[])
          AND c.expiry BETWEEN $2::date AND $3::date
          AND NOT c.muted AND c.archived_at IS NULL
          AND (c.snoozed_until IS NULL OR c.snoozed_until <= $1::date)
          AND NOT (c.auto_renew AND c.expiry > $1::date
                   AND (coalesce(c.plan_months, 0) > 0 OR coalesce(c.plan_days, 0) > 0))
    ) x
    -- a lookup per card (not a join the planner may turn into a scan of the whole sent-log)
    WHERE x.level < coalesce((SELECT r.level FROM reminder_log r
                              WHERE r.card_id = x.id AND r.expiry = x.expiry), 2147483647)
), logged AS (
    INSERT INTO reminder_log AS l (card_id, expiry, level, reminded_on)
    SELECT id, expiry, level, $5::date FROM due
    ON CONFLICT (card_id, expiry) DO UPDATE SET
        prev_level = CASE WHEN l.reminded_on < excluded.reminded_on
                          THEN l.level ELSE l.prev_level END,
        prev_reminded_on = CASE WHEN l.reminded_on < excluded.reminded_on
                                THEN l.reminded_on ELSE l.prev_reminded_on END,
        level = excluded.level,
        reminded_on = excluded.reminded_on
)
SELECT chat_id FROM due
"""

# The chats (and their cards) whose passes the clock ran ahead made, each with its real today.
_AHEAD = """ahead_chats AS (
    SELECT * FROM unnest($1::bigint[], $2::date[]) AS a (chat_id, today)
), ahead_cards AS (
    SELECT c.id AS card_id, a.today FROM ahead_chats a JOIN cards c ON c.chat_id = a.chat_id
)"""

# See storage.reminders._UNDO_AHEAD_SQL.
_UNDO_AHEAD_SQL = (
    f"""WITH {_AHEAD}
        UPDATE reminder_log l SET level = l.prev_level, reminded_on = l.prev_reminded_on,
            prev_level = NULL, prev_reminded_on = NULL
        FROM ahead_cards a
        WHERE a.card_id = l.card_id AND l.prev_reminded_on IS NOT NULL
          AND l.reminded_on > a.today AND l.prev_reminded_on <= a.today""",
    f"""WITH {_AHEAD}
        DELETE FROM reminder_log l USING ahead_cards a
        WHERE a.card_id = l.card_id AND l.reminded_on > a.today""",
    f"""WITH {_AHEAD}
        UPDATE outbox o SET status = 'dropped', error = 'the clock ran ahead', claimed_until = NULL
        FROM ahead_chats a
        WHERE a.chat_id = o.chat_id AND o.status = 'pending' AND o.digest_date > a.today""",
    f"""WITH {_AHEAD}
        UPDATE chat_reminders s SET
            composed_on = CASE WHEN s.prev_composed_on <= a.today THEN s.prev_composed_on END,
            prev_composed_on = NULL, composed_at = NULL
        FROM ahead_chats a
        WHERE s.chat_id = a.chat_id""",
)

# The chat (NULLs if unknown) beside each of its due cards, or once with NULL cards if none.
# Its language: the one /settings fixed, else the chat's default (its first user's).
_DIGEST_SQL = """
SELECT ch.is_group, coalesce(ch.language, ch.default_language),
       d.id, d.iccid, d.label, d.expiry, d.days_left, d.plan_price_fen
FROM (SELECT $1::bigint AS chat_id) q
LEFT JOIN chats ch ON ch.chat_id = q.chat_id
LEFT JOIN (
    SELECT c.id, c.iccid, c.label, c.expiry, c.expiry - $2::date AS days_left, c.plan_price_fen
    FROM cards c
    JOIN reminder_log r ON r.card_id = c.id AND r.expiry = c.expiry
    WHERE c.chat_id = $1 AND r.reminded_on = $2 AND NOT c.muted AND c.archived_at IS NULL
      AND (c.snoozed_until IS NULL OR c.snoozed_until <= $2)
) d ON true
ORDER BY d.expiry, d.id
"""

_CLAIM_SQL = (
    "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND status = 'pending' "
    "AND (claimed_until IS NULL OR claimed_until <= $3)"
)


async def _digest_cards(
    db: Connection | Pool, chat_id: int, day: date
) -> tuple[DigestChat, list[DueCard]]:
    rows = await db.fetch(_DIGEST_SQL, chat_id, day)
    # A chat with no row (so no cards either) counts as a group: nothing shown unmasked.
    known = rows[0][0] is not None
    chat = DigestChat(chat_id, bool(rows[0][0]) if known else True, rows[0][1])
    return chat, [DueCard(r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows if r[2] is not None]


class _PostgresBatch:
    def __init__(self, conn: Connection) -> None:
        self._db = conn

    async def due_chats(
        self,
        *,
        timezone: str | None,
        today: date,
        local_time: time | None,
        after_chat_id: int | None,
        limit: int,
    ) -> list[ChatToRemind]:
        params: list[Any] = []
        zone = send_time = window_zone = ""
        if timezone is not None:
            params.append(timezone)
            zone = f"AND ch.timezone = ${4 + len(params)}"
            window_zone = "AND ch.timezone = $3"
        if local_time is not None:
            params += [DEFAULT_SEND_TIME, _minute(local_time)]
            send_time = (
                f"AND coalesce(s.send_time, ${3 + len(params)}::time) <= ${4 + len(params)}::time"
            )
        sql = _DUE_CHATS_SQL.format(zone=zone, send_time=send_time)
        window_sql = _WINDOW_SQL.format(zone=window_zone)
        zone_params = [timezone] if timezone is not None else []
        window = max(2 * limit, 100)
        after = _MIN_CHAT_ID if after_chat_id is None else after_chat_id
        chats: list[ChatToRemind] = []
        while len(chats) < limit:
            end = await self._db.fetchval(window_sql, after, window, *zone_params)
            if end is None:
                break  # no chats left
            wanted = limit - len(chats)
            rows = await self._db.fetch(sql, after, end, today, wanted, *params)
            after = rows[-1][0] if len(rows) == wanted else end
            if not rows:
                continue
            # Locked now: a pass that committed after this statement's snapshot was taken (and
            # let go of the chats) is visible to a new statement. Its chats are done.
            done = {
                row[0]
                for row in await self._db.fetch(
                    "SELECT chat_id FROM chat_reminders WHERE chat_id = ANY($1::bigint[]) "
                    "AND (composed_on >= $2 OR (inactive_since IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM push_targets t WHERE t.chat_id = chat_reminders.chat_id "
                    "AND t.paused_since IS NULL)))",
                    [row[0] for row in rows],
                    today,
                )
            }
            chats += [
                ChatToRemind(
                    chat_id=row[0],
                    is_group=bool(row[1]),
                    language=row[2],
                    timezone=row[3],
                    settings=settings_from_columns(_hhmm(row[4]), row[5], row[6]),
                )
                for row in rows
                if row[0] not in done
            ]
        return chats

    async def auto_renew_candidates(
        self, chat_ids: Sequence[int], today: date
    ) -> list[AutoRenewCandidate]:
        rows = await self._db.fetch(_AUTO_RENEW_SQL, list(chat_ids), today)
        return [
            AutoRenewCandidate(
                id=row[0],
                chat_id=row[1],
                iccid=row[2],
                label=row[3],
                expiry=row[4],
                muted=bool(row[5]),
                plan=Period(months=row[6] or 0, days=row[7] or 0),
                plan_price_fen=row[8],
            )
            for row in rows
        ]

    async def apply_auto_renewals(
        self, renewals: Sequence[AutoRenewal], *, renewed_at: datetime
    ) -> None:
        if not renewals:
            return
        # Guarded by the expiry read: a card someone renewed meanwhile (by hand, or another
        # composer) is left alone, and only the cards really moved get their renewal records.
        moved = {
            row[0]
            for row in await self._db.fetch(
                "UPDATE cards c SET expiry = r.new, snoozed_until = NULL "
                "FROM unnest($1::bigint[], $2::bigint[], $3::date[], $4::date[]) "
                "AS r (id, chat_id, old, new) "
                "WHERE c.id = r.id AND c.chat_id = r.chat_id AND c.expiry = r.old "
                "RETURNING c.id",
                [r.card.id for r in renewals],
                [r.card.chat_id for r in renewals],
                [r.old_expiry for r in renewals],
                [r.new_expiry for r in renewals],
            )
        }
        await self._db.executemany(
            "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, "
            "new_expiry, period_months, period_days, rule, amount_fen, automatic) "
            "VALUES ($1, $2, NULL, NULL, $3, $4, $5, $6, $7, $8, true)",
            [
                (
                    r.card.id,
                    renewed_at,
                    old,
                    new,
                    r.card.plan.months,
                    r.card.plan.days,
                    RenewalRule.EXTEND.value,
                    r.card.plan_price_fen,
                )
                for r in renewals
                if r.card.id in moved
                for old, new in r.steps
            ],
        )

    async def remind(
        self,
        groups: Iterable[tuple[LevelBands, Sequence[int]]],
        *,
        today: date,
        now: datetime,
        renewed: Mapping[int, str],
    ) -> tuple[int, int]:
        db = self._db
        cards = 0
        due_chats: set[int] = set()
        for bands, chat_ids in groups:
            params: list[Any] = [bands.today, bands.earliest, bands.latest, list(chat_ids), today]
            whens = []
            for last, level in bands.bands:
                params += [last, level]
                whens.append(f"WHEN c.expiry <= ${len(params) - 1}::date THEN ${len(params)}::int")
            rows = await db.fetch(_REMIND_SQL.format(bands=" ".join(whens)), *params)
            cards += len(rows)
            due_chats.update(row[0] for row in rows)
        chats = sorted(due_chats | set(renewed))
        notes = [renewed.get(chat_id) for chat_id in chats]
        rows = await db.fetch(_DIGEST_ROWS_SQL, chats, notes, today, now)
        return cards, len({row[0] for row in rows})

    async def mark_composed(
        self, chat_ids: Sequence[int], today: date, *, now: datetime, unconfirmed: bool = False
    ) -> None:
        # only a pass made on an unconfirmed clock keeps its instant: it is the one undo_ahead
        # may take back (see the ReminderBatch protocol)
        await self._db.execute(
            "INSERT INTO chat_reminders AS s (chat_id, composed_on, composed_at) "
            "SELECT unnest($1::bigint[]), $2, $3 "
            "ON CONFLICT (chat_id) DO UPDATE SET composed_on = excluded.composed_on, "
            "composed_at = excluded.composed_at, prev_composed_on = CASE "
            "WHEN s.composed_on < excluded.composed_on THEN s.composed_on "
            "ELSE s.prev_composed_on END",
            list(chat_ids),
            today,
            now if unconfirmed else None,
        )

    async def undo_ahead(self, *, now: datetime, today_in: Callable[[str], date]) -> AheadUndone:
        db = self._db
        # Chats whose last pass was for a day after their today, at an instant after now: the
        # system clock ran ahead then (a deliberate ``remind --date`` stamps the real instant).
        # Locked: a second composer doing the same waits, then finds them undone.
        rows = await db.fetch(
            "SELECT s.chat_id, ch.timezone, s.composed_on FROM chat_reminders s "
            "JOIN chats ch ON ch.chat_id = s.chat_id "
            "WHERE s.composed_at IS NOT NULL AND s.composed_at > $1 "
            "ORDER BY s.chat_id FOR UPDATE OF s",
            now,
        )
        ahead: list[tuple[int, date]] = []
        for chat_id, zone, composed_on in rows:
            today = today_in(zone)
            if composed_on is not None and composed_on > today:
                ahead.append((chat_id, today))
        if not ahead:
            return AheadUndone(0, 0)
        keys = ([chat_id for chat_id, _ in ahead], [today for _, today in ahead])
        renewals = await self._undo_early_renewals(now, keys)
        for sql in _UNDO_AHEAD_SQL:
            await db.execute(sql, *keys)
        return AheadUndone(len(ahead), renewals)

    async def _undo_early_renewals(self, now: datetime, keys: tuple[list[int], list[date]]) -> int:
        """See ``storage.reminders._SqliteBatch._undo_early_renewals``."""
        rows = await self._db.fetch(
            f"WITH {_AHEAD} "
            "SELECT r.id, r.card_id, r.old_expiry, r.new_expiry, c.expiry "
            "FROM ahead_cards a JOIN cards c ON c.id = a.card_id "
            "JOIN renewals r ON r.card_id = a.card_id "
            "WHERE r.automatic AND r.renewed_at > $3 AND r.old_expiry > a.today "
            "ORDER BY r.card_id, r.new_expiry DESC",
            *keys,
            now,
        )
        undone: list[int] = []
        expiries: dict[int, tuple[date, date | None]] = {}  # card -> (now, after the undo)
        for renewal_id, card_id, old_expiry, new_expiry, expiry in rows:
            before, current = expiries.get(card_id, (expiry, expiry))
            if new_expiry != current:
                expiries.setdefault(card_id, (before, None))  # built on: keep the rest
                continue
            expiries[card_id] = (before, old_expiry)
            undone.append(renewal_id)
        await self._db.execute("DELETE FROM renewals WHERE id = ANY($1::bigint[])", undone)
        await self._db.executemany(
            "UPDATE cards SET expiry = $1 WHERE id = $2 AND expiry = $3",
            [(after, card_id, before) for card_id, (before, after) in expiries.items()
             if after is not None and after != before],
        )  # fmt: skip
        return len(undone)

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]:
        return await _digest_cards(self._db, chat_id, day)

    async def push_targets(self, chat_ids: Sequence[int]) -> dict[int, list[PushTarget]]:
        rows = await self._db.fetch(
            f"SELECT {TARGET_COLUMNS} FROM push_targets "
            "WHERE chat_id = ANY($1::bigint[]) AND paused_since IS NULL ORDER BY id",
            list(chat_ids),
        )
        found: dict[int, list[PushTarget]] = {}
        for row in rows:
            target = push_target_of(row)
            found.setdefault(target.chat_id, []).append(target)
        return found

    async def inactive_chats(self, chat_ids: Sequence[int]) -> set[int]:
        rows = await self._db.fetch(
            "SELECT chat_id FROM chat_reminders WHERE chat_id = ANY($1::bigint[]) "
            "AND inactive_since IS NOT NULL",
            list(chat_ids),
        )
        return {int(row[0]) for row in rows}


# Merging a group into the supergroup it became, when the supergroup has a row already (see
# storage.reminders._MERGE_CHAT_SQL): the old chat's settings fill what the new one has not set.
_MERGE_CHAT_SQL = (
    """UPDATE chats n SET is_group = true,
           language = coalesce(n.language, o.language),
           default_language = coalesce(n.default_language, o.default_language),
           timezone = CASE WHEN n.timezone_chosen THEN n.timezone
                           WHEN o.timezone_chosen THEN o.timezone ELSE n.timezone END,
           timezone_chosen = n.timezone_chosen OR o.timezone_chosen
       FROM chats o
       WHERE n.chat_id = $2 AND o.chat_id = $1""",
    # reminder settings: the new chat's where set, else the old one's; composed for the later
    # day of the two (a card of the later one is not reminded twice that day)
    """INSERT INTO chat_reminders AS s (chat_id, send_time, days_before, overdue_daily_days,
                                        composed_on, composed_at, prev_composed_on)
       SELECT $2, send_time, days_before, overdue_daily_days, composed_on, composed_at,
              prev_composed_on
       FROM chat_reminders WHERE chat_id = $1
       ON CONFLICT (chat_id) DO UPDATE SET
           send_time = coalesce(s.send_time, excluded.send_time),
           days_before = coalesce(s.days_before, excluded.days_before),
           overdue_daily_days = coalesce(s.overdue_daily_days, excluded.overdue_daily_days),
           composed_at = CASE WHEN excluded.composed_on > coalesce(s.composed_on, '-infinity')
                              THEN excluded.composed_at ELSE s.composed_at END,
           prev_composed_on = CASE WHEN excluded.composed_on > coalesce(s.composed_on, '-infinity')
                                   THEN excluded.prev_composed_on ELSE s.prev_composed_on END,
           composed_on = greatest(s.composed_on, excluded.composed_on)""",
    # push targets: as storage.reminders._MERGE_CHAT_SQL
    """DELETE FROM outbox WHERE chat_id = $1 AND status = 'pending' AND text IS NULL
           AND claimed_until IS NULL AND target_id IN (
               SELECT o.id FROM push_targets o JOIN push_targets n ON n.chat_id = $2
                   AND n.service = o.service AND n.token = o.token
               WHERE o.chat_id = $1)
           AND EXISTS (SELECT 1 FROM outbox m
                       JOIN push_targets n ON n.id = m.target_id
                       JOIN push_targets o ON o.id = outbox.target_id
                       WHERE m.chat_id = $2 AND n.service = o.service AND n.token = o.token
                         AND m.digest_date = outbox.digest_date AND m.status = 'pending'
                         AND m.text IS NULL AND m.claimed_until IS NULL)""",
    """UPDATE outbox SET target_id = (
           SELECT n.id FROM push_targets o JOIN push_targets n ON n.chat_id = $2
               AND n.service = o.service AND n.token = o.token
           WHERE o.id = outbox.target_id)
       WHERE chat_id = $1 AND target_id IN (
               SELECT o.id FROM push_targets o JOIN push_targets n ON n.chat_id = $2
                   AND n.service = o.service AND n.token = o.token
               WHERE o.chat_id = $1)""",
    """DELETE FROM push_targets o USING push_targets n
       WHERE o.chat_id = $1 AND n.chat_id = $2 AND n.service = o.service AND n.token = o.token""",
    "UPDATE push_targets SET chat_id = $2 WHERE chat_id = $1",
)

_MERGED_COLUMNS = (
    "expiry", "carrier", "label", "plan_months", "plan_days", "plan_price_fen", "auto_renew",
    "note", "muted", "snoozed_until", "created_at",
)  # fmt: skip


def _to_render(alias: str = "") -> str:
    """A digest still to render, not being sent (a claimed one may be on its way, rendered by
    the sender but not stored yet)."""
    a = f"{alias}." if alias else ""
    return (
        f"{a}status = 'pending' AND {a}text IS NULL AND {a}claimed_until IS NULL "
        f"AND {a}target_id IS NULL"  # the chat's own (see storage.reminders._TO_RENDER)
    )


async def _card_references(db: Connection) -> list[tuple[str, str]]:
    """(table, column) of every foreign key to cards(id) but the sent-log's (merged by hand):
    the renewals, the edit trail, and whatever history later schema versions keep on a card."""
    rows = await db.fetch(
        "SELECT k.conrelid::regclass::text, a.attname FROM pg_constraint k "
        "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
        "WHERE k.contype = 'f' AND k.confrelid = 'cards'::regclass "
        "AND k.conrelid <> 'reminder_log'::regclass"
    )
    return [(row[0], row[1]) for row in rows]


async def _merge_cards(db: Connection, old_chat_id: int, new_chat_id: int) -> None:
    pairs = await db.fetch(
        "SELECT o.id, n.id, o.expiry > n.expiry FROM cards o "
        "JOIN cards n ON n.chat_id = $1 AND n.iccid = o.iccid WHERE o.chat_id = $2 ORDER BY o.id",
        new_chat_id,
        old_chat_id,
    )
    references = await _card_references(db) if pairs else []
    columns = ", ".join(_MERGED_COLUMNS)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(_MERGED_COLUMNS, start=1))
    for old_id, new_id, old_later in pairs:
        rows = {
            row[0]: list(row[1:])
            for row in await db.fetch(
                f"SELECT id, {columns} FROM cards WHERE id = ANY($1::bigint[])", [old_id, new_id]
            )
        }
        winner, loser = (old_id, new_id) if old_later else (new_id, old_id)
        merged = _merged_card(rows[winner], rows[loser])
        await db.execute(
            f"UPDATE cards SET {assignments} WHERE id = ${len(merged) + 1}", *merged, new_id
        )
        # in service or not as the winner is (see storage.reminders._merge_cards)
        await db.execute(
            "UPDATE cards SET archived_at = (SELECT w.archived_at FROM cards w WHERE w.id = $1) "
            "WHERE id = $2",
            winner,
            new_id,
        )
        # the sent-log: per expiry, the more urgent entry of the two
        await db.execute(
            "INSERT INTO reminder_log AS l (card_id, expiry, level, reminded_on, prev_level, "
            "prev_reminded_on) SELECT $1, expiry, level, reminded_on, prev_level, "
            "prev_reminded_on FROM reminder_log WHERE card_id = $2 "
            "ON CONFLICT (card_id, expiry) DO UPDATE SET level = excluded.level, "
            "reminded_on = excluded.reminded_on, prev_level = excluded.prev_level, "
            "prev_reminded_on = excluded.prev_reminded_on WHERE excluded.level < l.level",
            new_id,
            old_id,
        )
        for table, column in references:  # histories join
            await db.execute(
                f'UPDATE {table} SET "{column}" = $1 WHERE "{column}" = $2', new_id, old_id
            )
        await db.execute("DELETE FROM cards WHERE id = $1", old_id)
    await db.execute("UPDATE cards SET chat_id = $1 WHERE chat_id = $2", new_chat_id, old_chat_id)


async def _merge_outbox(db: Connection, old_chat_id: int, new_chat_id: int) -> None:
    """See ``storage.reminders._merge_outbox``."""
    rows = await db.fetch(
        "SELECT o.id, o.renewed, n.id FROM outbox o "
        "JOIN LATERAL (SELECT n.id FROM outbox n WHERE n.chat_id = $2 "
        f"AND n.digest_date = o.digest_date AND {_to_render('n')} "
        "ORDER BY n.id LIMIT 1) n ON true "
        f"WHERE o.chat_id = $1 AND {_to_render('o')} ORDER BY o.id",
        old_chat_id,
        new_chat_id,
    )
    for old_id, renewed, into in rows:
        into_renewed = await db.fetchval("SELECT renewed FROM outbox WHERE id = $1", into)
        await db.execute(
            "UPDATE outbox SET renewed = $1 WHERE id = $2",
            _joined_notes(into_renewed, renewed),
            into,
        )
        await db.execute("DELETE FROM outbox WHERE id = $1", old_id)
    await db.execute(
        "UPDATE outbox o SET chat_id = $1, part = o.part + t.last FROM "
        "(SELECT digest_date, max(part) AS last FROM outbox WHERE chat_id = $1 "
        "GROUP BY digest_date) t WHERE o.chat_id = $2 AND o.digest_date = t.digest_date",
        new_chat_id,
        old_chat_id,
    )
    await db.execute("UPDATE outbox SET chat_id = $1 WHERE chat_id = $2", new_chat_id, old_chat_id)


async def _keep_carried(db: Connection, old_chat_id: int, new_chat_id: int) -> None:
    """See ``storage.reminders._keep_carried``."""
    sides = await db.fetch(
        f"SELECT chat_id, digest_date, bool_or(NOT ({_to_render()})), bool_or({_to_render()}) "
        "FROM outbox WHERE chat_id = ANY($1::bigint[]) AND target_id IS NULL "
        "GROUP BY chat_id, digest_date",
        [old_chat_id, new_chat_id],
    )
    days: dict[date, dict[int, tuple[bool, bool]]] = {}
    for chat_id, day, rendered, unrendered in sides:
        days.setdefault(day, {})[chat_id] = (bool(rendered), bool(unrendered))
    for day, chats in days.items():
        if len(chats) < 2:
            continue
        for carrier, other in ((old_chat_id, new_chat_id), (new_chat_id, old_chat_id)):
            if chats[carrier][0] and not chats[carrier][1] and chats[other][1]:
                await db.execute(
                    "UPDATE reminder_log SET reminded_on = $1 WHERE reminded_on = $2 "
                    "AND card_id IN (SELECT id FROM cards WHERE chat_id = $3)",
                    CARRIED,
                    day,
                    carrier,
                )


async def _migrate_chat(db: Connection, old_chat_id: int, new_chat_id: int) -> None:
    # Both rows locked (in one order): a concurrent move of the same group waits and then finds
    # it gone; a card insert into either chat waits for the move (its foreign key check).
    present = {
        row[0]
        for row in await db.fetch(
            "SELECT chat_id FROM chats WHERE chat_id = ANY($1::bigint[]) "
            "ORDER BY chat_id FOR UPDATE",
            [old_chat_id, new_chat_id],
        )
    }
    if old_chat_id not in present:
        return  # already moved (the migration message and a send both report it)
    if new_chat_id not in present:
        # ON UPDATE CASCADE moves cards, settings and the outbox with the chat. If the
        # supergroup's first message creates its row meanwhile, this fails on the primary key
        # and the caller retries: the merge below then runs.
        await db.execute(
            "UPDATE chats SET chat_id = $1, address = $2, is_group = true WHERE chat_id = $3",
            new_chat_id,
            str(new_chat_id),
            old_chat_id,
        )
        return
    # The supergroup wrote to the bot first and has a row already: merge into it.
    for sql in _MERGE_CHAT_SQL:
        await db.execute(sql, old_chat_id, new_chat_id)
    await db.fetch(
        "SELECT 1 FROM cards WHERE chat_id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        [old_chat_id, new_chat_id],
    )
    await _keep_carried(db, old_chat_id, new_chat_id)
    await _merge_cards(db, old_chat_id, new_chat_id)
    await _merge_outbox(db, old_chat_id, new_chat_id)
    await db.execute("DELETE FROM chats WHERE chat_id = $1", old_chat_id)  # empty by now


class PostgresReminderStore:
    """``ReminderStore`` on an asyncpg pool (the one the bot's ``PostgresStorage`` uses)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _batch(self, commit: bool) -> AsyncIterator[ReminderBatch]:
        async with self._pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            # A pass's statements are many small lookups the planner may cost high on stale
            # statistics: compiling them (JIT) then takes longer than running them.
            await conn.execute("SET LOCAL jit = off")
            try:
                yield _PostgresBatch(conn)
            except BaseException:
                await transaction.rollback()
                raise
            if commit:
                await transaction.commit()
            else:
                await transaction.rollback()

    def batch(self, *, commit: bool = True) -> AbstractAsyncContextManager[ReminderBatch]:
        return self._batch(commit)

    async def timezones(self) -> list[str]:
        rows = await self._pool.fetch("SELECT DISTINCT timezone FROM chats ORDER BY timezone")
        return [row[0] for row in rows]

    async def clock_record(self) -> ClockRecord:
        row = await self._pool.fetchrow(_CLOCK_RECORD_SQL)
        assert row is not None
        marked, day = row[0], row[1]
        instants = [value for value in row[2:] if value is not None]
        if day is not None:  # the day composed began at the earliest 14 hours before UTC's
            instants.append(datetime.combine(day, time(), UTC) - _EARLIEST_ZONE)
        return ClockRecord(max(instants) if instants else None, marked)

    # per-chat settings and state

    async def get_settings(self, chat_id: int) -> ReminderSettings:
        row = await self._pool.fetchrow(
            "SELECT send_time, days_before, overdue_daily_days FROM chat_reminders "
            "WHERE chat_id = $1",
            chat_id,
        )
        if row is None:
            return settings_from_columns(None, None, None)
        return settings_from_columns(_hhmm(row[0]), row[1], row[2])

    async def save_settings(self, chat_id: int, settings: ReminderSettings) -> None:
        _, days_before, overdue = settings_to_columns(settings)
        await self._pool.execute(
            "INSERT INTO chat_reminders (chat_id, send_time, days_before, overdue_daily_days) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (chat_id) DO UPDATE SET "
            "send_time = excluded.send_time, days_before = excluded.days_before, "
            "overdue_daily_days = excluded.overdue_daily_days",
            chat_id,
            settings.send_time,
            days_before,
            overdue,
        )

    async def is_active(self, chat_id: int) -> bool:
        row = await self._pool.fetchrow(
            "SELECT inactive_since FROM chat_reminders WHERE chat_id = $1", chat_id
        )
        return row is None or row[0] is None

    async def deactivate_chat(self, chat_id: int, reason: str, *, at: datetime) -> None:
        async def work(db: Connection) -> None:
            # One statement: a chat that is gone (moved, deleted) gets no row.
            await db.execute(
                "INSERT INTO chat_reminders (chat_id, inactive_since, inactive_reason) "
                "SELECT chat_id, $2, $3 FROM chats WHERE chat_id = $1 "
                "ON CONFLICT (chat_id) DO UPDATE SET "
                "inactive_since = excluded.inactive_since, "
                "inactive_reason = excluded.inactive_reason",
                chat_id,
                at,
                reason,
            )
            await db.execute(
                "UPDATE outbox SET status = 'dropped', error = $1, claimed_until = NULL "
                "WHERE chat_id = $2 AND target_id IS NULL AND status = 'pending'",
                reason,
                chat_id,
            )

        await _retrying(self._pool, work)

    async def chat_language(self, chat_id: int) -> str | None:
        value: str | None = await self._pool.fetchval(
            "SELECT coalesce(language, default_language) FROM chats WHERE chat_id = $1", chat_id
        )
        return value

    async def pause_target(
        self, target_id: int, reason: str, *, at: datetime, day: date, notice: str | None
    ) -> bool:
        async def work(db: Connection) -> bool:
            chat_id = await db.fetchval(
                "UPDATE push_targets SET paused_since = $1, pause_reason = $2, last_at = $1, "
                "last_result = $2 WHERE id = $3 AND paused_since IS NULL RETURNING chat_id",
                at,
                reason,
                target_id,
            )
            if chat_id is None:
                return False  # gone, or paused already (and the chat told then)
            await db.execute(
                "UPDATE outbox SET status = 'dropped', error = $1, claimed_until = NULL "
                "WHERE target_id = $2 AND status = 'pending'",
                reason,
                target_id,
            )
            if notice is not None:
                # The chat's messages of the day, locked as ``expand`` locks them: two notices
                # (two robots of the chat refusing at once) or a notice and a digest's parts
                # number after each other, not alike.
                await db.fetch(
                    "SELECT 1 FROM outbox WHERE chat_id = $1 AND digest_date = $2 "
                    "ORDER BY id FOR UPDATE",
                    chat_id,
                    day,
                )
                await db.execute(_NOTICE_SQL, chat_id, day, notice, at)
            return True

        return await _retrying(self._pool, work, also=(asyncpg.exceptions.UniqueViolationError,))

    async def reactivate_chat(self, chat_id: int) -> bool:
        # Called on every update: a read first, a write only when something changes.
        if await self.is_active(chat_id):
            return False
        status = await self._pool.execute(
            "UPDATE chat_reminders SET inactive_since = NULL, inactive_reason = NULL "
            "WHERE chat_id = $1 AND inactive_since IS NOT NULL",
            chat_id,
        )
        return _count(status) > 0

    async def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id == new_chat_id:
            return

        async def work(db: Connection) -> None:
            await _migrate_chat(db, old_chat_id, new_chat_id)

        await _retrying(self._pool, work, also=(asyncpg.exceptions.UniqueViolationError,))

    # cards

    async def snooze(self, chat_id: int, card_id: int, until: date) -> bool:
        async def work(db: Connection) -> bool:
            status = await db.execute(
                "UPDATE cards SET snoozed_until = $1 WHERE chat_id = $2 AND id = $3",
                until,
                chat_id,
                card_id,
            )
            if _count(status) == 0:
                return False
            await db.execute("DELETE FROM reminder_log WHERE card_id = $1", card_id)
            return True

        return await _retrying(self._pool, work)

    async def set_muted(self, chat_id: int, card_id: int, muted: bool) -> bool:
        status = await self._pool.execute(
            "UPDATE cards SET muted = $1 WHERE chat_id = $2 AND id = $3", muted, chat_id, card_id
        )
        return _count(status) > 0

    # outbox

    async def pending(
        self,
        *,
        now: datetime,
        after_id: int,
        limit: int,
        groups: bool | None = None,
        robots: bool | None = None,
        channels: Collection[Channel] | None = None,
    ) -> list[OutboxMessage]:
        kind = {None: "", True: "AND ch.is_group ", False: "AND NOT ch.is_group "}[groups]
        kind += {None: "", True: "AND o.target_id IS NOT NULL ", False: "AND o.target_id IS NULL "}[
            robots
        ]
        names = None if channels is None else [channel.value for channel in channels]
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM outbox o JOIN chats ch ON ch.chat_id = o.chat_id "
            f"WHERE o.status = 'pending' AND o.id > $1 {kind}"
            "AND ($4::text[] IS NULL OR ch.channel = ANY($4::text[])) "
            "AND (o.not_before IS NULL OR o.not_before <= $2) "
            "AND (o.claimed_until IS NULL OR o.claimed_until <= $2) "
            "ORDER BY o.id LIMIT $3",
            after_id,
            now,
            limit,
            names,
        )
        return [_outbox_message(row) for row in rows]

    async def pending_robots(
        self, *, now: datetime, limit: int
    ) -> list[tuple[OutboxMessage, PushTarget]]:
        rows = await self._pool.fetch(
            _PENDING_ROBOTS_SQL.replace("?", "$1", 2).replace("LIMIT ?", "LIMIT $2"),
            now,
            limit,
        )
        width = _OUTBOX_WIDTH
        return [(_outbox_message(row), push_target_of(list(row)[width:])) for row in rows]

    async def lift_holds_beyond(self, *, claims: datetime, waits: datetime) -> int:
        async def work(db: Connection) -> int:
            claimed = await db.execute(
                "UPDATE outbox SET claimed_until = NULL "
                "WHERE status = 'pending' AND claimed_until > $1",
                claims,
            )
            waiting = await db.execute(
                "UPDATE outbox SET not_before = NULL WHERE status = 'pending' AND not_before > $1",
                waits,
            )
            return _count(claimed) + _count(waiting)

        return await _retrying(self._pool, work)

    async def count_pending(self) -> int:
        count = await self._pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
        return int(count or 0)

    async def held(self, *, now: datetime) -> HeldMessages:
        row = await self._pool.fetchrow(
            "SELECT count(*), max(claimed_until) FROM outbox "
            "WHERE status = 'pending' AND claimed_until > $1",
            now,
        )
        if row is None or not row[0]:
            return HeldMessages(0, None)
        return HeldMessages(int(row[0]), row[1])

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]:
        return await _digest_cards(self._pool, chat_id, day)

    async def claim_digest(
        self, message: OutboxMessage, *, chat_id: int, now: datetime, until: datetime
    ) -> tuple[DigestChat, list[DueCard]] | None:
        # No transaction around the two statements: the claim keeps other senders off, and the
        # read is consistent by itself (a card renewed after it is simply left out).
        # The chat as the row has it now (see ReminderStore.claim_digest).
        current = await self._pool.fetchval(
            _CLAIM_SQL + " RETURNING chat_id", until, message.id, now
        )
        if current is None:
            return None
        return await _digest_cards(self._pool, int(current), message.digest_date)

    async def expand(
        self,
        message: OutboxMessage,
        parts: Sequence[DigestPart],
        *,
        chat_id: int,
        claimed_until: datetime,
    ) -> list[OutboxMessage]:
        count = len(parts)

        async def work(db: Connection) -> list[int]:
            # The chat's messages of the day, locked: another digest of the same chat and day
            # (two chats merged) expanding at once numbers its parts after these, not alike.
            await db.fetch(
                "SELECT 1 FROM outbox WHERE chat_id = $1 AND digest_date = $2 "
                "ORDER BY id FOR UPDATE",
                chat_id,
                message.digest_date,
            )
            await db.execute(
                "UPDATE outbox SET parts = $1, text = $2, buttons = $3 WHERE id = $4",
                count,
                parts[0].text,
                parts[0].buttons_json,
                message.id,
            )
            ids = [message.id]
            # Further parts are numbered after the day's last message: usually 2, 3…; after a
            # group merged into its supergroup, after the messages the two had for the day.
            for part in parts[1:]:
                new_id = await db.fetchval(
                    "INSERT INTO outbox (chat_id, target_id, digest_date, part, parts, text, "
                    "buttons, created_at, claimed_until) "
                    "SELECT $1, target_id, digest_date, (SELECT max(m.part) + 1 FROM outbox m "
                    "WHERE m.chat_id = $1 AND m.target_id IS NOT DISTINCT FROM o.target_id "
                    "AND m.digest_date = o.digest_date), $2, $3, $4, "
                    "created_at, $5 FROM outbox o WHERE id = $6 RETURNING id",
                    chat_id,
                    count,
                    part.text,
                    part.buttons_json,
                    claimed_until,
                    message.id,
                )
                assert new_id is not None
                ids.append(int(new_id))
            return ids

        ids = await _retrying(self._pool, work, also=(asyncpg.exceptions.UniqueViolationError,))
        return [
            OutboxMessage(
                id=message_id,
                chat_id=chat_id,
                digest_date=message.digest_date,
                part=number,
                parts=count,
                text=part.text,
                buttons=part.buttons,
                renewed=None,
                attempts=message.attempts,
                target_id=message.target_id,
                channel=message.channel,
                is_group=message.is_group,
            )
            for number, (message_id, part) in enumerate(zip(ids, parts, strict=True), start=1)
        ]

    async def release(self, message_ids: Sequence[int]) -> None:
        await self._pool.execute(
            "UPDATE outbox SET claimed_until = NULL "
            "WHERE id = ANY($1::bigint[]) AND status = 'pending'",
            list(message_ids),
        )

    async def renew_claims(self, claims: Mapping[int, datetime], *, until: datetime) -> list[int]:
        if not claims:
            return []
        rows = await self._pool.fetch(
            "UPDATE outbox o SET claimed_until = $1 "
            "FROM unnest($2::bigint[], $3::timestamptz[]) AS h (id, until) "
            "WHERE o.id = h.id AND o.status = 'pending' AND o.claimed_until = h.until "
            "RETURNING o.id",
            until,
            list(claims),
            list(claims.values()),
        )
        renewed = {row[0] for row in rows}
        return [message_id for message_id in claims if message_id in renewed]

    async def _finish(
        self,
        message_id: int,
        status: str,
        at: datetime,
        *,
        error: str | None = None,
        telegram_message_id: int | None = None,
        content: DigestPart | None = None,
        target_id: int | None = None,
    ) -> None:
        """See ``storage.reminders.SqliteReminderStore._finish``."""
        # NULLs leave a column as it is: only a one-message digest's content is written here.
        text, buttons, parts = (content.text, content.buttons_json, 1) if content else (None,) * 3
        finish = (
            "UPDATE outbox SET status = $1, sent_at = $2, error = $3, claimed_until = NULL, "
            "message_id = coalesce($4, message_id), text = coalesce($5, text), "
            "buttons = coalesce($6, buttons), parts = coalesce($7, parts) WHERE id = $8"
        )
        args = (status, at, error, telegram_message_id, text, buttons, parts, message_id)
        if target_id is None:
            await self._pool.execute(finish, *args)
            return
        # A robot's row and its target's last delivery in one statement.
        await self._pool.execute(
            f"WITH done AS ({finish} RETURNING 1) UPDATE push_targets SET last_at = $2, "
            "last_result = $10 WHERE id = $9 AND EXISTS (SELECT 1 FROM done)",
            *args,
            target_id,
            "ok" if status == "sent" else error,
        )

    async def drop(self, message_id: int, reason: str, *, at: datetime) -> None:
        await self._finish(message_id, "dropped", at, error=reason)

    async def claim(self, message_id: int, *, now: datetime, until: datetime) -> bool:
        # One guarded UPDATE: a second sender at the same moment waits for the row lock, then
        # re-checks the condition on the claimed row and changes nothing.
        status = await self._pool.execute(_CLAIM_SQL, until, message_id, now)
        return _count(status) > 0

    async def mark_sent(
        self,
        message_id: int,
        telegram_message_id: int,
        *,
        at: datetime,
        content: DigestPart | None = None,
        target_id: int | None = None,
    ) -> None:
        await self._finish(
            message_id,
            "sent",
            at,
            telegram_message_id=telegram_message_id,
            content=content,
            target_id=target_id,
        )

    async def mark_failed(
        self,
        message_id: int,
        error: str,
        *,
        at: datetime,
        content: DigestPart | None = None,
        target_id: int | None = None,
    ) -> None:
        await self._finish(
            message_id, "failed", at, error=error, content=content, target_id=target_id
        )

    async def defer(self, message_id: int, *, until: datetime, error: str) -> None:
        async def work(db: Connection) -> None:
            await db.execute(
                "UPDATE outbox SET error = $1, attempts = attempts + 1 WHERE id = $2",
                error,
                message_id,
            )
            await db.execute(
                "UPDATE outbox SET not_before = $1, claimed_until = NULL "
                "WHERE status = 'pending' AND id >= $2 AND (chat_id, coalesce(target_id, 0)) = "
                "(SELECT chat_id, coalesce(target_id, 0) FROM outbox WHERE id = $2)",
                until,
                message_id,
            )

        await _retrying(self._pool, work)

    async def prune(self, *, sent_before: datetime) -> None:
        async def work(db: Connection) -> None:
            await db.execute(
                "DELETE FROM outbox WHERE status <> 'pending' AND created_at < $1", sent_before
            )
            await db.execute(
                "DELETE FROM reminder_log l WHERE NOT EXISTS (SELECT 1 FROM cards c "
                "WHERE c.id = l.card_id AND c.expiry = l.expiry)"
            )

        await _retrying(self._pool, work)
