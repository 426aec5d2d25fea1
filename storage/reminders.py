"""Reminder persistence: settings, the sent-log, the outbox; the interface and its SQLite form.

A reminder pass works in batches of chats, each batch one transaction (``ReminderStore.batch``):
it rolls auto-renewing cards forward, then picks the due cards, records them in the sent-log
and enqueues the chats' digests in a few set-based statements. A crash leaves either all of a
batch or none of it, and a million cards take seconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import aiosqlite

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
from storage.push import TARGET_COLUMNS, push_target_of
from storage.sqlite import SqliteStorage


class ReminderBatch(Protocol):
    """One transaction of a reminder pass."""

    async def due_chats(
        self,
        *,
        timezone: str | None,
        today: date,
        local_time: time | None,
        after_chat_id: int | None,
        limit: int,
    ) -> list[ChatToRemind]:
        """Active chats with cards whose digest for ``today`` is not composed yet, by chat id;
        only those in ``timezone`` (None: every zone) whose send time is at or before
        ``local_time`` (None: ignore send times)."""
        ...

    async def auto_renew_candidates(
        self, chat_ids: Sequence[int], today: date
    ) -> list[AutoRenewCandidate]:
        """Cards of these chats with auto-renew and a plan whose expiry is today or earlier."""
        ...

    async def apply_auto_renewals(
        self, renewals: Sequence[AutoRenewal], *, renewed_at: datetime
    ) -> None: ...

    async def remind(
        self,
        groups: Iterable[tuple[LevelBands, Sequence[int]]],
        *,
        today: date,
        now: datetime,
        renewed: Mapping[int, str],
    ) -> tuple[int, int]:
        """Record in the sent-log every due card of the chats (each group: the chats sharing
        one settings' bands), and enqueue a digest for each chat with a due card or an entry in
        ``renewed`` (chat id -> JSON notes). Returns (cards, digests)."""
        ...

    async def mark_composed(
        self, chat_ids: Sequence[int], today: date, *, now: datetime, unconfirmed: bool = False
    ) -> None:
        """The chats' pass for ``today`` ran (at ``now``). ``unconfirmed``: the system clock
        had jumped ahead before it (the pass can be undone if the clock comes back); only such
        a pass keeps its instant (``composed_at``), any other clears it."""
        ...

    async def undo_ahead(self, *, now: datetime, today_in: Callable[[str], date]) -> AheadUndone:
        """Undo what passes made on an unconfirmed clock that ran ahead did: for each chat
        whose last pass was marked ``unconfirmed``, for a day after its today (``today_in(its
        time zone)``), at an instant after ``now``, the sent-log entries and undelivered
        digests dated after today, the automatic renewals before a card's real expiry day, and
        the day it was composed for."""
        ...

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]:
        """The chat and the cards its digest for ``day`` reminds about, as they are now."""
        ...

    async def push_targets(self, chat_ids: Sequence[int]) -> dict[int, list[PushTarget]]:
        """The chats' active push targets, by chat (a dry run shows what each would get)."""
        ...

    async def inactive_chats(self, chat_ids: Sequence[int]) -> set[int]:
        """Those of the chats that no longer receive messages themselves (see
        ``deactivate_chat``): their robots still get their digests."""
        ...


class ReminderStore(Protocol):
    def batch(self, *, commit: bool = True) -> AbstractAsyncContextManager[ReminderBatch]:
        """A transaction for one batch; with ``commit=False`` it is rolled back (dry runs)."""
        ...

    async def timezones(self) -> list[str]: ...

    async def clock_record(self) -> ClockRecord:
        """What the database knows of the time: the latest instant it recorded, and the
        earliest pass still marked as made on an unconfirmed clock."""
        ...

    # per-chat settings and state
    async def get_settings(self, chat_id: int) -> ReminderSettings: ...
    async def save_settings(self, chat_id: int, settings: ReminderSettings) -> None: ...
    async def is_active(self, chat_id: int) -> bool: ...
    async def deactivate_chat(self, chat_id: int, reason: str, *, at: datetime) -> None:
        """Stop sending to the chat itself and drop its pending messages; its push robots
        still get its digests."""
        ...

    async def chat_language(self, chat_id: int) -> str | None:
        """The chat's language: fixed in /settings, else its first user's; None if unknown."""
        ...

    async def pause_target(
        self, target_id: int, reason: str, *, at: datetime, day: date, notice: str | None
    ) -> bool:
        """The service refused a push target's key: stop sending to it, drop its pending
        messages, and (``notice``, Telegram HTML) tell its chat, after the chat's messages of
        ``day``. False if it was paused already or is gone: the chat is told once."""
        ...

    async def reactivate_chat(self, chat_id: int) -> bool:
        """True if the chat was inactive."""
        ...

    async def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: its cards, settings and outbox follow the new id. If
        the supergroup has a row already (it wrote to the bot first), the two merge, and
        nothing is deleted: the group's settings fill what the supergroup has not set; a card
        both have becomes one (the later expiry, each field of that card, an empty one the
        other's; both histories and sent-logs); digests of a day both have become one where
        neither is rendered yet, else go out without listing a card twice."""
        ...

    # cards
    async def snooze(self, chat_id: int, card_id: int, until: date) -> bool:
        """Quiet until ``until``, then remind again (the sent-log is cleared)."""
        ...

    async def set_muted(self, chat_id: int, card_id: int, muted: bool) -> bool: ...

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
        """Pending messages not backing off and not claimed, by id; ``groups``: only those of
        groups (True) or of private chats (False), by the chat's kind; ``robots``: only those
        to push targets (True) or to the chats themselves (False); ``channels``: only those of
        chats of these channels."""
        ...

    async def pending_robots(
        self, *, now: datetime, limit: int
    ) -> list[tuple[OutboxMessage, PushTarget]]:
        """Pending messages to push targets (as ``pending``), each with its target, each
        robot's first ones first:
        every robot's first message, then every robot's second, and so on (by id within a
        robot), so that a drain starts every robot's budget at once rather than one robot's
        after another's."""
        ...

    async def lift_holds_beyond(self, *, claims: datetime, waits: datetime) -> int:
        """Free pending messages claimed past ``claims`` or backing off past ``waits``: no
        sender sets either that far ahead, a clock that ran ahead did. The number freed."""
        ...

    async def count_pending(self) -> int: ...
    async def held(self, *, now: datetime) -> HeldMessages:
        """Pending messages whose claim (another sender's, or a crashed one's) is still in
        force at ``now``: no drain sends them until it lapses."""
        ...

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]: ...
    async def claim_digest(
        self, message: OutboxMessage, *, chat_id: int, now: datetime, until: datetime
    ) -> tuple[DigestChat, list[DueCard]] | None:
        """Claim an unrendered digest (as ``claim``) and read the chat and the cards it is to
        remind about, as they are now; None if another sender has it or it is not pending.
        The chat is the row's as it is now (``DigestChat.chat_id``): a chat that moved since
        the digest was enqueued (a group that became a supergroup) is read under its new id.
        ``chat_id``: the id the sender knows it by (unused by the stores: the row's wins)."""
        ...

    async def expand(
        self,
        message: OutboxMessage,
        parts: Sequence[DigestPart],
        *,
        chat_id: int,
        claimed_until: datetime,
    ) -> list[OutboxMessage]:
        """Turn a claimed, unrendered digest into its messages (claimed too), in order.
        ``chat_id``: the chat's id now (it may have moved since the digest was enqueued)."""
        ...

    async def release(self, message_ids: Sequence[int]) -> None:
        """Give up claims without sending (the next drain takes them)."""
        ...

    async def renew_claims(self, claims: Mapping[int, datetime], *, until: datetime) -> list[int]:
        """Extend claims still held as ``claims`` says (message id -> its claim's end) to
        ``until``; the ids renewed (a claim that lapsed and was taken over is not)."""
        ...

    async def drop(self, message_id: int, reason: str, *, at: datetime) -> None:
        """Nothing to send after all (say, every card was renewed meanwhile)."""
        ...

    async def claim(self, message_id: int, *, now: datetime, until: datetime) -> bool:
        """Take a pending message for sending until ``until``; False if another sender has it
        or it is no longer pending."""
        ...

    async def mark_sent(
        self,
        message_id: int,
        telegram_message_id: int,
        *,
        at: datetime,
        content: DigestPart | None = None,
        target_id: int | None = None,
    ) -> None:
        """Done. ``content``: its text and buttons, if they were not stored before the send
        (a digest of one message is rendered, sent, then stored with this in one go).
        ``target_id``: it went to that push target, whose last delivery this becomes."""
        ...

    async def mark_failed(
        self,
        message_id: int,
        error: str,
        *,
        at: datetime,
        content: DigestPart | None = None,
        target_id: int | None = None,
    ) -> None: ...
    async def defer(self, message_id: int, *, until: datetime, error: str) -> None:
        """Leave it pending, not before ``until``, and its destination's later messages with it
        (their order holds); counts an attempt."""
        ...

    async def prune(self, *, sent_before: datetime) -> None:
        """Forget finished messages created before ``sent_before`` and stale sent-log rows."""
        ...


def _instant(moment: datetime) -> str:
    # One fixed format, so instants compare correctly as text in SQL.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_EARLIEST_ZONE = timedelta(hours=14)  # UTC+14: where a day begins first

# The earliest marked pass and the latest day composed, then the instants reminders stamp
# (renewals too; cards are left out: an import or a script may date them otherwise).
_CLOCK_RECORD_SQL = """
SELECT (SELECT min(composed_at) FROM chat_reminders), (SELECT max(composed_on) FROM chat_reminders),
       (SELECT max(composed_at) FROM chat_reminders), (SELECT max(created_at) FROM outbox),
       (SELECT max(sent_at) FROM outbox), (SELECT max(renewed_at) FROM renewals)
"""

_OUTBOX_COLUMNS = (
    "id, chat_id, digest_date, part, parts, text, buttons, renewed, attempts, target_id"
)
# A pending message as the sender reads it: the outbox row (``o``) and its chat's channel and
# kind (``ch``, chats joined on the row's chat id).
_MESSAGE_COLUMNS = ", ".join(
    [f"o.{name.strip()}" for name in _OUTBOX_COLUMNS.split(",")] + ["ch.channel", "ch.is_group"]
)


def _outbox_message(row: aiosqlite.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        chat_id=row[1],
        digest_date=date.fromisoformat(row[2]),
        part=row[3],
        parts=row[4],
        text=row[5],
        buttons=keyboard_from_json(row[6]),
        renewed=row[7],
        attempts=row[8],
        target_id=row[9],
        channel=Channel(row[10]),
        is_group=bool(row[11]),
    )


_DUE_CHATS_SQL = """
SELECT ch.chat_id, ch.is_group, coalesce(ch.language, ch.default_language), ch.timezone,
       s.send_time, s.days_before, s.overdue_daily_days
FROM chats ch
LEFT JOIN chat_reminders s ON s.chat_id = ch.chat_id
WHERE ch.chat_id > :after {zone}
  AND (s.inactive_since IS NULL OR EXISTS (SELECT 1 FROM push_targets t
                                         WHERE t.chat_id = ch.chat_id
                                           AND t.paused_since IS NULL))
  AND (s.composed_on IS NULL OR s.composed_on < :today) {send_time}
  AND EXISTS (SELECT 1 FROM cards c WHERE c.chat_id = ch.chat_id)
ORDER BY ch.chat_id
LIMIT :limit
"""

_AUTO_RENEW_SQL = """
SELECT id, chat_id, iccid, label, expiry, muted, plan_months, plan_days, plan_price_fen
FROM cards
WHERE chat_id IN ({marks}) AND auto_renew = 1 AND expiry <= :today AND archived_at IS NULL
  AND (coalesce(plan_months, 0) > 0 OR coalesce(plan_days, 0) > 0)
"""

# The due cards of chats sharing one settings: the level from the expiry (see LevelBands), due
# if the sent-log has no level as urgent for this expiry. A card that will auto-renew gets no
# reminder before its expiry day (on that day it is renewed before this runs); an archived
# card (停用) none at all.
_DUE_SQL = """
INSERT INTO temp.due_now (card_id, chat_id, expiry, level)
SELECT x.id, x.chat_id, x.expiry, x.level
FROM (
    SELECT c.id, c.chat_id, c.expiry,
           CASE WHEN c.expiry < :today
                THEN CAST(julianday(c.expiry) - julianday(:today) AS INTEGER)
                {bands} END AS level
    FROM cards c
    WHERE c.chat_id IN ({marks})
      AND c.expiry BETWEEN :earliest AND :latest
      AND c.muted = 0 AND c.archived_at IS NULL
      AND (c.snoozed_until IS NULL OR c.snoozed_until <= :today)
      AND NOT (c.auto_renew = 1 AND c.expiry > :today
               AND (coalesce(c.plan_months, 0) > 0 OR coalesce(c.plan_days, 0) > 0))
) x
LEFT JOIN reminder_log r ON r.card_id = x.id AND r.expiry = x.expiry
WHERE r.level IS NULL OR x.level < r.level
"""

# Record the due cards in the sent-log. An entry a pass of a later day overwrites is kept as
# the previous one, so that undoing a pass made while the clock ran ahead can put it back.
_LOG_SQL = """
INSERT INTO reminder_log (card_id, expiry, level, reminded_on)
SELECT card_id, expiry, level, ? FROM temp.due_now WHERE true
ON CONFLICT (card_id, expiry) DO UPDATE SET
    prev_level = CASE WHEN reminded_on < excluded.reminded_on THEN level ELSE prev_level END,
    prev_reminded_on = CASE WHEN reminded_on < excluded.reminded_on
                            THEN reminded_on ELSE prev_reminded_on END,
    level = excluded.level,
    reminded_on = excluded.reminded_on
"""

# Undo what passes made while the clock ran ahead did to the chats in temp.ahead_chats (their
# cards in temp.ahead_cards), each with its real today: sent-log entries dated after it go
# back to what they overwrote (or go), their digests not sent yet are dropped, and the chats
# are composed as of before those passes.
_UNDO_AHEAD_SQL = (
    """UPDATE reminder_log SET level = prev_level, reminded_on = prev_reminded_on,
           prev_level = NULL, prev_reminded_on = NULL
       WHERE prev_reminded_on IS NOT NULL
         AND reminded_on > (SELECT a.today FROM temp.ahead_cards a
                            WHERE a.card_id = reminder_log.card_id)
         AND prev_reminded_on <= (SELECT a.today FROM temp.ahead_cards a
                                  WHERE a.card_id = reminder_log.card_id)""",
    """DELETE FROM reminder_log
       WHERE reminded_on > (SELECT a.today FROM temp.ahead_cards a
                            WHERE a.card_id = reminder_log.card_id)""",
    """UPDATE outbox SET status = 'dropped', error = 'the clock ran ahead', claimed_until = NULL
       WHERE status = 'pending'
         AND digest_date > (SELECT a.today FROM temp.ahead_chats a
                            WHERE a.chat_id = outbox.chat_id)""",
    """UPDATE chat_reminders SET
           composed_on = CASE WHEN prev_composed_on <= (SELECT a.today FROM temp.ahead_chats a
                                                        WHERE a.chat_id = chat_reminders.chat_id)
                              THEN prev_composed_on END,
           prev_composed_on = NULL, composed_at = NULL
       WHERE chat_id IN (SELECT chat_id FROM temp.ahead_chats)""",
)

# The digests of this pass (temp.digests_now) into the outbox, a row per destination: the chat
# itself unless it stopped receiving (it blocked the bot), and each of its active robots.
_DIGEST_ROWS_SQL = (
    """INSERT INTO outbox (chat_id, digest_date, renewed, created_at)
       SELECT d.chat_id, :day, d.renewed, :created FROM temp.digests_now d
       WHERE NOT EXISTS (SELECT 1 FROM chat_reminders s
                         WHERE s.chat_id = d.chat_id AND s.inactive_since IS NOT NULL)
       ORDER BY d.chat_id
       ON CONFLICT DO NOTHING RETURNING chat_id""",
    """INSERT INTO outbox (chat_id, target_id, digest_date, renewed, created_at)
       SELECT d.chat_id, t.id, :day, d.renewed, :created
       FROM temp.digests_now d JOIN push_targets t ON t.chat_id = d.chat_id
       WHERE t.paused_since IS NULL
       ORDER BY d.chat_id, t.id
       ON CONFLICT DO NOTHING RETURNING chat_id""",
)

_DIGEST_CARDS_SQL = """
SELECT c.id, c.iccid, c.label, c.expiry, CAST(julianday(c.expiry) - julianday(:day) AS INTEGER),
       c.plan_price_fen
FROM cards c
JOIN reminder_log r ON r.card_id = c.id AND r.expiry = c.expiry
WHERE c.chat_id = :chat AND r.reminded_on = :day AND c.muted = 0 AND c.archived_at IS NULL
  AND (c.snoozed_until IS NULL OR c.snoozed_until <= :day)
"""

# The chat (NULLs if unknown) beside each of its due cards, or once with NULL cards if none.
# Its language: the one /settings fixed, else the chat's default (its first user's).
_DIGEST_SQL = f"""
SELECT ch.is_group, coalesce(ch.language, ch.default_language), d.*
FROM (SELECT :chat AS chat_id) q
LEFT JOIN chats ch ON ch.chat_id = q.chat_id
LEFT JOIN ({_DIGEST_CARDS_SQL}) d ON 1
"""

# A notice to the chat itself (a robot it pushes to stopped working), after the day's messages.
_NOTICE_SQL = """
INSERT INTO outbox (chat_id, digest_date, part, parts, text, buttons, created_at)
SELECT :chat, :day, coalesce((SELECT max(part) FROM outbox WHERE chat_id = :chat
                              AND target_id IS NULL AND digest_date = :day), 0) + 1,
       1, :text, '[]', :at
WHERE NOT EXISTS (SELECT 1 FROM chat_reminders s
                  WHERE s.chat_id = :chat AND s.inactive_since IS NOT NULL)
"""

# Robots' pending messages in turns: each robot's first, then each one's second... (see
# ReminderStore.pending_robots).
_PENDING_ROBOTS_SQL = """
SELECT * FROM (
    SELECT {outbox}, {targets},
           row_number() OVER (PARTITION BY t.service, t.token ORDER BY o.id) AS turn
    FROM outbox o JOIN push_targets t ON t.id = o.target_id JOIN chats ch ON ch.chat_id = o.chat_id
    WHERE o.status = 'pending' AND t.paused_since IS NULL
      AND (o.not_before IS NULL OR o.not_before <= ?)
      AND (o.claimed_until IS NULL OR o.claimed_until <= ?)
) x ORDER BY turn, 1
LIMIT ?
"""

_MIN_CHAT_ID = -(2**63)

_CLAIM_SQL = (
    "UPDATE outbox SET claimed_until = ? WHERE id = ? AND status = 'pending' "
    "AND (claimed_until IS NULL OR claimed_until <= ?)"
)


def _marks(values: Sequence[int], params: dict[str, Any]) -> str:
    for i, value in enumerate(values):
        params[f"c{i}"] = value
    return ", ".join(f":c{i}" for i in range(len(values)))


async def _digest_cards(
    db: aiosqlite.Connection, chat_id: int, day: date
) -> tuple[DigestChat, list[DueCard]]:
    # One statement through execute_fetchall: a single round trip to aiosqlite's thread (this
    # runs once per digest sent). Its first row always exists and carries the chat.
    params = {"chat": chat_id, "day": day.isoformat()}
    rows = list(await db.execute_fetchall(_DIGEST_SQL, params))
    # A chat with no row (so no cards either) counts as a group: nothing shown unmasked.
    known = rows[0][0] is not None
    chat = DigestChat(chat_id, bool(rows[0][0]) if known else True, rows[0][1])
    fromiso = date.fromisoformat
    return chat, [
        DueCard(r[2], r[3], r[4], fromiso(r[5]), r[6], r[7]) for r in rows if r[2] is not None
    ]


# Merging a group into the supergroup it became, when the supergroup has a row already (it
# wrote to the bot before the move was known). Nothing is deleted but the old chat's empty row.
# The old chat's settings fill what the new one has not set.
_MERGE_CHAT_SQL = (
    """UPDATE chats SET is_group = 1,
           language = coalesce(language, (SELECT language FROM chats WHERE chat_id = :old)),
           default_language = coalesce(default_language,
                                       (SELECT default_language FROM chats WHERE chat_id = :old)),
           timezone = CASE WHEN timezone_chosen THEN timezone
                           ELSE (SELECT CASE WHEN o.timezone_chosen THEN o.timezone
                                        ELSE chats.timezone END
                                 FROM chats o WHERE o.chat_id = :old) END,
           timezone_chosen = timezone_chosen
                             OR (SELECT timezone_chosen FROM chats WHERE chat_id = :old)
       WHERE chat_id = :new""",
    # reminder settings: the new chat's where set, else the old one's; composed for the later
    # day of the two (a card of the later one is not reminded twice that day)
    """INSERT INTO chat_reminders (chat_id, send_time, days_before, overdue_daily_days,
                                   composed_on, composed_at, prev_composed_on)
       SELECT :new, send_time, days_before, overdue_daily_days, composed_on, composed_at,
              prev_composed_on
       FROM chat_reminders WHERE chat_id = :old
       ON CONFLICT (chat_id) DO UPDATE SET
           send_time = coalesce(send_time, excluded.send_time),
           days_before = coalesce(days_before, excluded.days_before),
           overdue_daily_days = coalesce(overdue_daily_days, excluded.overdue_daily_days),
           composed_at = CASE WHEN excluded.composed_on > coalesce(composed_on, '')
                              THEN excluded.composed_at ELSE composed_at END,
           prev_composed_on = CASE WHEN excluded.composed_on > coalesce(composed_on, '')
                                   THEN excluded.prev_composed_on ELSE prev_composed_on END,
           composed_on = max(coalesce(composed_on, ''), coalesce(excluded.composed_on, ''))""",
    "UPDATE chat_reminders SET composed_on = NULL WHERE chat_id = :new AND composed_on = ''",
    # push targets: the old chat's messages to a robot both chats push to go to the new
    # chat's target (numbered after its own by _merge_outbox), unless the new chat's digest
    # of that day for it is not rendered yet either: rendered after the merge, it lists both
    # chats' cards. Then the old chat's duplicate targets go, the others move over.
    """DELETE FROM outbox WHERE chat_id = :old AND status = 'pending' AND text IS NULL
           AND claimed_until IS NULL AND target_id IN (
               SELECT o.id FROM push_targets o JOIN push_targets n ON n.chat_id = :new
                   AND n.service = o.service AND n.token = o.token
               WHERE o.chat_id = :old)
           AND EXISTS (SELECT 1 FROM outbox m
                       JOIN push_targets n ON n.id = m.target_id
                       JOIN push_targets o ON o.id = outbox.target_id
                       WHERE m.chat_id = :new AND n.service = o.service AND n.token = o.token
                         AND m.digest_date = outbox.digest_date AND m.status = 'pending'
                         AND m.text IS NULL AND m.claimed_until IS NULL)""",
    """UPDATE outbox SET target_id = (
           SELECT n.id FROM push_targets o JOIN push_targets n ON n.chat_id = :new
               AND n.service = o.service AND n.token = o.token
           WHERE o.id = outbox.target_id)
       WHERE chat_id = :old AND target_id IN (
               SELECT o.id FROM push_targets o JOIN push_targets n ON n.chat_id = :new
                   AND n.service = o.service AND n.token = o.token
               WHERE o.chat_id = :old)""",
    """DELETE FROM push_targets WHERE chat_id = :old AND EXISTS (
           SELECT 1 FROM push_targets n WHERE n.chat_id = :new
           AND n.service = push_targets.service AND n.token = push_targets.token)""",
    "UPDATE push_targets SET chat_id = :new WHERE chat_id = :old",
)

_MERGED_COLUMNS = (
    "expiry, carrier, label, plan_months, plan_days, plan_price_fen, auto_renew, note, muted, "
    "snoozed_until, created_at"
)


def _merged_card(winner: Sequence[Any], loser: Sequence[Any]) -> list[Any]:
    """An ICCID both chats have: the card with the later expiry (``winner``) wins each field;
    an empty one takes the other card's (columns as ``_MERGED_COLUMNS``)."""
    (expiry, carrier, label, months, days, price, auto, note, muted, snoozed, created) = winner
    has_plan = months is not None or days is not None
    return [
        expiry,
        carrier if carrier != "other" else loser[1],
        label or loser[2],
        months if has_plan else loser[3],
        days if has_plan else loser[4],
        price if price is not None else loser[5],
        auto,
        note or loser[7],
        muted,
        snoozed,
        min(created, loser[10]),
    ]


async def _card_references(db: aiosqlite.Connection) -> list[tuple[str, str]]:
    """(table, column) of every foreign key to cards(id) but the sent-log's (merged by hand):
    the renewals, and whatever history later schema versions keep on a card."""
    rows = await db.execute_fetchall(
        'SELECT m.name, f."from" FROM sqlite_master m, pragma_foreign_key_list(m.name) f '
        "WHERE m.type = 'table' AND f.\"table\" = 'cards' AND m.name <> 'reminder_log'"
    )
    return [(row[0], row[1]) for row in rows]


async def _merge_cards(db: aiosqlite.Connection, old_chat_id: int, new_chat_id: int) -> None:
    pairs = await db.execute_fetchall(
        "SELECT o.id, n.id, o.expiry > n.expiry FROM cards o "
        "JOIN cards n ON n.chat_id = ? AND n.iccid = o.iccid WHERE o.chat_id = ?",
        (new_chat_id, old_chat_id),
    )
    references = await _card_references(db) if pairs else []
    for old_id, new_id, old_later in pairs:
        rows = {
            row[0]: list(row[1:])
            for row in await db.execute_fetchall(
                f"SELECT id, {_MERGED_COLUMNS} FROM cards WHERE id IN (?, ?)", (old_id, new_id)
            )
        }
        winner, loser = (old_id, new_id) if old_later else (new_id, old_id)
        merged = _merged_card(rows[winner], rows[loser])
        assignments = ", ".join(f"{name} = ?" for name in _MERGED_COLUMNS.split(", "))
        await db.execute(f"UPDATE cards SET {assignments} WHERE id = ?", (*merged, new_id))
        # in service or not as the winner is (no fallback: NULL there means in service)
        await db.execute(
            "UPDATE cards SET archived_at = (SELECT w.archived_at FROM cards w WHERE w.id = ?) "
            "WHERE id = ?",
            (winner, new_id),
        )
        # the sent-log: per expiry, the more urgent entry of the two
        await db.execute(
            "INSERT INTO reminder_log (card_id, expiry, level, reminded_on, prev_level, "
            "prev_reminded_on) SELECT ?, expiry, level, reminded_on, prev_level, "
            "prev_reminded_on FROM reminder_log WHERE card_id = ? AND true "
            "ON CONFLICT (card_id, expiry) DO UPDATE SET level = excluded.level, "
            "reminded_on = excluded.reminded_on, prev_level = excluded.prev_level, "
            "prev_reminded_on = excluded.prev_reminded_on WHERE excluded.level < level",
            (new_id, old_id),
        )
        for table, column in references:  # histories join
            await db.execute(
                f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?', (new_id, old_id)
            )
        await db.execute("DELETE FROM cards WHERE id = ?", (old_id,))
    await db.execute("UPDATE cards SET chat_id = ? WHERE chat_id = ?", (new_chat_id, old_chat_id))


# A digest still to render, not being sent (a claimed one may be on its way, rendered by the
# sender but not stored yet).
# A chat's own digest still to render (the merge rules below are about the chat's own messages;
# a robot's digest is rendered after the merge from the merged chat's cards).
_TO_RENDER = "status = 'pending' AND text IS NULL AND claimed_until IS NULL"
_OWN = "target_id IS NULL"


def _joined_notes(first: str | None, second: str | None) -> str | None:
    """Two digests' auto-renewal notes (JSON lists) as one."""
    if not first or not second:
        return first or second
    return json.dumps(json.loads(first) + json.loads(second), ensure_ascii=False)


async def _merge_outbox(db: aiosqlite.Connection, old_chat_id: int, new_chat_id: int) -> None:
    """The old chat's messages join the new chat's. A digest not rendered yet that meets one of
    the new chat's for the same day, also not rendered, becomes part of it (rendering reads the
    sent-log by chat and day, so it will list both chats' cards). Other messages of a day the
    new chat has messages for are numbered after them (the sender goes by id, not number)."""
    rows = await db.execute_fetchall(
        "SELECT o.id, o.renewed, (SELECT n.id FROM outbox n WHERE n.chat_id = :new "
        f"AND n.digest_date = o.digest_date AND {_TO_RENDER} AND n.{_OWN} "
        "ORDER BY n.id LIMIT 1) FROM outbox o "
        f"WHERE o.chat_id = :old AND {_TO_RENDER} AND o.{_OWN}",
        {"old": old_chat_id, "new": new_chat_id},
    )
    for old_id, renewed, into in rows:
        if into is None:
            continue
        await db.execute(
            "UPDATE outbox SET renewed = ? WHERE id = ?",
            (_joined_notes(await _renewed(db, into), renewed), into),
        )
        await db.execute("DELETE FROM outbox WHERE id = ?", (old_id,))
    taken = await db.execute_fetchall(
        "SELECT digest_date, max(part) FROM outbox WHERE chat_id = ? GROUP BY digest_date",
        (new_chat_id,),
    )
    await db.executemany(
        "UPDATE outbox SET chat_id = ?, part = part + ? WHERE chat_id = ? AND digest_date = ?",
        [(new_chat_id, last, old_chat_id, day) for day, last in taken],
    )
    await db.execute("UPDATE outbox SET chat_id = ? WHERE chat_id = ?", (new_chat_id, old_chat_id))


async def _renewed(db: aiosqlite.Connection, message_id: int) -> str | None:
    rows = list(await db.execute_fetchall("SELECT renewed FROM outbox WHERE id = ?", (message_id,)))
    return rows[0][0] if rows else None


# The sent-log's date for cards whose digest of the day was rendered before their chat merged
# into another: no digest still to render lists them (the other chat's would, by chat and day).
CARRIED = "0001-01-01"


async def _keep_carried(db: aiosqlite.Connection, old_chat_id: int, new_chat_id: int) -> None:
    """For a day both chats have messages for, where one chat's digest is rendered already
    (sent, or stored to send) and the other's is not: the rendered one carries its cards, so
    the other, rendered after the merge, must not list them again."""
    sides = await db.execute_fetchall(
        f"SELECT chat_id, digest_date, max(NOT ({_TO_RENDER})), max({_TO_RENDER}) "
        f"FROM outbox WHERE chat_id IN (?, ?) AND {_OWN} GROUP BY chat_id, digest_date",
        (old_chat_id, new_chat_id),
    )
    days: dict[str, dict[int, tuple[bool, bool]]] = {}
    for chat_id, day, rendered, unrendered in sides:
        days.setdefault(day, {})[chat_id] = (bool(rendered), bool(unrendered))
    for day, chats in days.items():
        if len(chats) < 2:
            continue
        for carrier, other in ((old_chat_id, new_chat_id), (new_chat_id, old_chat_id)):
            if chats[carrier][0] and not chats[carrier][1] and chats[other][1]:
                await db.execute(
                    "UPDATE reminder_log SET reminded_on = ? WHERE reminded_on = ? "
                    "AND card_id IN (SELECT id FROM cards WHERE chat_id = ?)",
                    (CARRIED, day, carrier),
                )


async def _merge_chats(db: aiosqlite.Connection, old_chat_id: int, new_chat_id: int) -> None:
    params = {"old": old_chat_id, "new": new_chat_id}
    for sql in _MERGE_CHAT_SQL:
        await db.execute(sql, params)
    await _keep_carried(db, old_chat_id, new_chat_id)
    await _merge_cards(db, old_chat_id, new_chat_id)
    await _merge_outbox(db, old_chat_id, new_chat_id)
    await db.execute("DELETE FROM chats WHERE chat_id = ?", (old_chat_id,))  # empty by now


class _SqliteBatch:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def due_chats(
        self,
        *,
        timezone: str | None,
        today: date,
        local_time: time | None,
        after_chat_id: int | None,
        limit: int,
    ) -> list[ChatToRemind]:
        params: dict[str, Any] = {
            "after": _MIN_CHAT_ID if after_chat_id is None else after_chat_id,
            "today": today.isoformat(),
            "limit": limit,
        }
        zone = send_time = ""
        if timezone is not None:
            zone = "AND ch.timezone = :zone"
            params["zone"] = timezone
        if local_time is not None:
            send_time = "AND coalesce(s.send_time, :default_time) <= :local_time"
            params["default_time"] = DEFAULT_SEND_TIME.strftime("%H:%M")
            params["local_time"] = local_time.strftime("%H:%M")
        sql = _DUE_CHATS_SQL.format(zone=zone, send_time=send_time)
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [
            ChatToRemind(
                chat_id=row[0],
                is_group=bool(row[1]),
                language=row[2],
                timezone=row[3],
                settings=settings_from_columns(row[4], row[5], row[6]),
            )
            for row in rows
        ]

    async def auto_renew_candidates(
        self, chat_ids: Sequence[int], today: date
    ) -> list[AutoRenewCandidate]:
        params: dict[str, Any] = {"today": today.isoformat()}
        sql = _AUTO_RENEW_SQL.format(marks=_marks(chat_ids, params))
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [
            AutoRenewCandidate(
                id=row[0],
                chat_id=row[1],
                iccid=row[2],
                label=row[3],
                expiry=date.fromisoformat(row[4]),
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
        # This transaction read these expiries, so the guarded update cannot miss.
        await self._db.executemany(
            "UPDATE cards SET expiry = ?, snoozed_until = NULL "
            "WHERE id = ? AND chat_id = ? AND expiry = ?",
            [
                (r.new_expiry.isoformat(), r.card.id, r.card.chat_id, r.old_expiry.isoformat())
                for r in renewals
            ],
        )
        when = renewed_at.isoformat()
        await self._db.executemany(
            "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, "
            "new_expiry, period_months, period_days, rule, amount_fen, automatic) "
            "VALUES (?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, 1)",
            [
                (
                    r.card.id,
                    when,
                    old.isoformat(),
                    new.isoformat(),
                    r.card.plan.months,
                    r.card.plan.days,
                    RenewalRule.EXTEND.value,
                    r.card.plan_price_fen,
                )
                for r in renewals
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
        await db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS due_now (card_id INTEGER PRIMARY KEY, "
            "chat_id INTEGER NOT NULL, expiry TEXT NOT NULL, level INTEGER NOT NULL)"
        )
        await db.execute("DELETE FROM temp.due_now")
        for bands, chat_ids in groups:
            params: dict[str, Any] = {
                "today": bands.today.isoformat(),
                "earliest": bands.earliest.isoformat(),
                "latest": bands.latest.isoformat(),
            }
            whens = []
            for i, (last, level) in enumerate(bands.bands):
                params[f"b{i}"], params[f"l{i}"] = last.isoformat(), level
                whens.append(f"WHEN c.expiry <= :b{i} THEN :l{i}")
            sql = _DUE_SQL.format(bands=" ".join(whens), marks=_marks(chat_ids, params))
            await db.execute(sql, params)
        day, created = today.isoformat(), _instant(now)
        await db.execute(_LOG_SQL, (day,))
        async with db.execute("SELECT count(*) FROM temp.due_now") as cursor:
            row = await cursor.fetchone()
        cards = int(row[0]) if row else 0
        # The day's digests, one per chat, then a row for each of its destinations: the chat
        # itself unless it stopped receiving (it blocked the bot), and each active robot.
        await db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS digests_now "
            "(chat_id INTEGER PRIMARY KEY, renewed TEXT)"
        )
        await db.execute("DELETE FROM temp.digests_now")
        await db.executemany(
            "INSERT INTO temp.digests_now (chat_id, renewed) VALUES (?, ?)", renewed.items()
        )
        await db.execute(
            "INSERT INTO temp.digests_now (chat_id) SELECT DISTINCT chat_id FROM temp.due_now "
            "WHERE true ON CONFLICT DO NOTHING"
        )
        chats: set[int] = set()
        for sql in _DIGEST_ROWS_SQL:
            rows = await db.execute_fetchall(sql, {"day": day, "created": created})
            chats.update(row[0] for row in rows)
        return cards, len(chats)

    async def mark_composed(
        self, chat_ids: Sequence[int], today: date, *, now: datetime, unconfirmed: bool = False
    ) -> None:
        day, at = today.isoformat(), (_instant(now) if unconfirmed else None)
        await self._db.executemany(
            "INSERT INTO chat_reminders (chat_id, composed_on, composed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (chat_id) DO UPDATE SET composed_on = excluded.composed_on, "
            "composed_at = excluded.composed_at, prev_composed_on = CASE "
            "WHEN composed_on < excluded.composed_on THEN composed_on ELSE prev_composed_on END",
            [(chat_id, day, at) for chat_id in chat_ids],
        )

    async def undo_ahead(self, *, now: datetime, today_in: Callable[[str], date]) -> AheadUndone:
        db = self._db
        # Chats whose last pass, made on an unconfirmed clock (the only ones stamped), was for a
        # day after their today, at an instant after now: the system clock ran ahead then.
        rows = await db.execute_fetchall(
            "SELECT s.chat_id, ch.timezone, s.composed_on FROM chat_reminders s "
            "JOIN chats ch ON ch.chat_id = s.chat_id "
            "WHERE s.composed_at IS NOT NULL AND s.composed_at > ?",
            (_instant(now),),
        )
        ahead = []
        for chat_id, zone, composed_on in rows:
            today = today_in(zone).isoformat()
            if composed_on is not None and composed_on > today:
                ahead.append((chat_id, today))
        if not ahead:
            return AheadUndone(0, 0)
        for table, key in (("ahead_chats", "chat_id"), ("ahead_cards", "card_id")):
            await db.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {table} "
                f"({key} INTEGER PRIMARY KEY, today TEXT NOT NULL)"
            )
            await db.execute(f"DELETE FROM temp.{table}")
        await db.executemany("INSERT INTO temp.ahead_chats VALUES (?, ?)", ahead)
        await db.execute(
            "INSERT INTO temp.ahead_cards SELECT c.id, a.today "
            "FROM temp.ahead_chats a JOIN cards c ON c.chat_id = a.chat_id"
        )
        renewals = await self._undo_early_renewals(now)
        for sql in _UNDO_AHEAD_SQL:
            await db.execute(sql)
        return AheadUndone(len(ahead), renewals)

    async def _undo_early_renewals(self, now: datetime) -> int:
        """Take back the automatic renewals a pass ahead of time made before a card's real
        expiry day (the card's expiry goes back; the record goes): the carrier charges on the
        real day, when the pass renews it again. A renewal someone built on since (the card's
        expiry is no longer what it made) stays, and the ones before it with it."""
        rows = await self._db.execute_fetchall(
            "SELECT r.id, r.card_id, r.old_expiry, r.new_expiry, c.expiry "
            "FROM temp.ahead_cards a JOIN cards c ON c.id = a.card_id "
            "JOIN renewals r ON r.card_id = a.card_id "
            "WHERE r.automatic = 1 AND r.renewed_at > ? AND r.old_expiry > a.today "
            "ORDER BY r.card_id, r.new_expiry DESC",
            (now.astimezone(UTC).isoformat(),),
        )
        undone: list[tuple[int]] = []
        expiries: dict[int, tuple[str, str]] = {}  # card -> (its expiry now, after the undo)
        for renewal_id, card_id, old_expiry, new_expiry, expiry in rows:
            before, current = expiries.get(card_id, (expiry, expiry))
            if new_expiry != current:
                expiries.setdefault(card_id, (before, "-"))  # built on: keep the rest
                continue
            expiries[card_id] = (before, old_expiry)
            undone.append((renewal_id,))
        await self._db.executemany("DELETE FROM renewals WHERE id = ?", undone)
        await self._db.executemany(
            "UPDATE cards SET expiry = ? WHERE id = ? AND expiry = ?",
            [(after, card_id, before) for card_id, (before, after) in expiries.items()
             if after not in ("-", before)],
        )  # fmt: skip
        return len(undone)

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]:
        return await _digest_cards(self._db, chat_id, day)

    async def push_targets(self, chat_ids: Sequence[int]) -> dict[int, list[PushTarget]]:
        params: dict[str, Any] = {}
        rows = await self._db.execute_fetchall(
            f"SELECT {TARGET_COLUMNS} FROM push_targets "
            f"WHERE chat_id IN ({_marks(chat_ids, params)}) AND paused_since IS NULL ORDER BY id",
            params,
        )
        found: dict[int, list[PushTarget]] = {}
        for row in rows:
            target = push_target_of(row)
            found.setdefault(target.chat_id, []).append(target)
        return found

    async def inactive_chats(self, chat_ids: Sequence[int]) -> set[int]:
        params: dict[str, Any] = {}
        rows = await self._db.execute_fetchall(
            f"SELECT chat_id FROM chat_reminders WHERE chat_id IN ({_marks(chat_ids, params)}) "
            "AND inactive_since IS NOT NULL",
            params,
        )
        return {int(row[0]) for row in rows}


_OUTBOX_WIDTH = len(_MESSAGE_COLUMNS.split(","))
_PENDING_ROBOTS_SQL = _PENDING_ROBOTS_SQL.format(
    outbox=_MESSAGE_COLUMNS,
    targets=", ".join(f"t.{name.strip()}" for name in TARGET_COLUMNS.split(",")),
)


class _Rollback(Exception):
    """Raised to roll a dry run's batch back."""


class SqliteReminderStore:
    """``ReminderStore`` on the bot's ``SqliteStorage`` connection (same lock, same file)."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    @asynccontextmanager
    async def _batch(self, commit: bool) -> AsyncIterator[ReminderBatch]:
        try:
            async with self._storage.transaction() as db:
                yield _SqliteBatch(db)
                if not commit:
                    raise _Rollback
        except _Rollback:
            pass

    def batch(self, *, commit: bool = True) -> AbstractAsyncContextManager[ReminderBatch]:
        return self._batch(commit)

    async def timezones(self) -> list[str]:
        rows = await self._storage.fetchall("SELECT DISTINCT timezone FROM chats")
        return [row[0] for row in rows]

    async def clock_record(self) -> ClockRecord:
        [row] = await self._storage.fetchall(_CLOCK_RECORD_SQL)
        marked, day = row[0], row[1]
        latest: datetime | None = None
        for value in row[2:]:
            if value is not None:
                moment = _parse_instant(value)
                latest = moment if latest is None else max(latest, moment)
        if day is not None:  # the day composed began at the earliest 14 hours before UTC's
            start = datetime.combine(date.fromisoformat(day), time(), UTC) - _EARLIEST_ZONE
            latest = start if latest is None else max(latest, start)
        return ClockRecord(latest, None if marked is None else _parse_instant(marked))

    # per-chat settings and state

    async def get_settings(self, chat_id: int) -> ReminderSettings:
        row = await self._storage.fetchone(
            "SELECT send_time, days_before, overdue_daily_days FROM chat_reminders "
            "WHERE chat_id = ?",
            (chat_id,),
        )
        if row is None:
            return settings_from_columns(None, None, None)
        return settings_from_columns(row[0], row[1], row[2])

    async def save_settings(self, chat_id: int, settings: ReminderSettings) -> None:
        async with self._storage.transaction() as db:
            await db.execute(
                "INSERT INTO chat_reminders (chat_id, send_time, days_before, overdue_daily_days) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
                "send_time = excluded.send_time, days_before = excluded.days_before, "
                "overdue_daily_days = excluded.overdue_daily_days",
                (chat_id, *settings_to_columns(settings)),
            )

    async def is_active(self, chat_id: int) -> bool:
        row = await self._storage.fetchone(
            "SELECT inactive_since FROM chat_reminders WHERE chat_id = ?", (chat_id,)
        )
        return row is None or row[0] is None

    async def deactivate_chat(self, chat_id: int, reason: str, *, at: datetime) -> None:
        async with self._storage.transaction() as db:
            exists = await db.execute_fetchall("SELECT 1 FROM chats WHERE chat_id = ?", (chat_id,))
            if not exists:
                return
            await db.execute(
                "INSERT INTO chat_reminders (chat_id, inactive_since, inactive_reason) "
                "VALUES (?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
                "inactive_since = excluded.inactive_since, "
                "inactive_reason = excluded.inactive_reason",
                (chat_id, _instant(at), reason),
            )
            await db.execute(
                "UPDATE outbox SET status = 'dropped', error = ?, claimed_until = NULL "
                "WHERE chat_id = ? AND target_id IS NULL AND status = 'pending'",
                (reason, chat_id),
            )

    async def chat_language(self, chat_id: int) -> str | None:
        row = await self._storage.fetchone(
            "SELECT coalesce(language, default_language) FROM chats WHERE chat_id = ?", (chat_id,)
        )
        return row[0] if row else None

    async def pause_target(
        self, target_id: int, reason: str, *, at: datetime, day: date, notice: str | None
    ) -> bool:
        async with self._storage.transaction() as db:
            rows = await db.execute_fetchall(
                "UPDATE push_targets SET paused_since = ?, pause_reason = ?, last_at = ?, "
                "last_result = ? WHERE id = ? AND paused_since IS NULL RETURNING chat_id",
                (_instant(at), reason, _instant(at), reason, target_id),
            )
            if not rows:
                return False  # gone, or paused already (and the chat told then)
            chat_id = int(next(iter(rows))[0])
            await db.execute(
                "UPDATE outbox SET status = 'dropped', error = ?, claimed_until = NULL "
                "WHERE target_id = ? AND status = 'pending'",
                (reason, target_id),
            )
            if notice is not None:
                await db.execute(
                    _NOTICE_SQL,
                    {"chat": chat_id, "day": day.isoformat(), "text": notice, "at": _instant(at)},
                )
            return True

    async def reactivate_chat(self, chat_id: int) -> bool:
        # Called on every update: a read first, a write only when something changes.
        if await self.is_active(chat_id):
            return False
        async with self._storage.transaction() as db:
            cursor = await db.execute(
                "UPDATE chat_reminders SET inactive_since = NULL, inactive_reason = NULL "
                "WHERE chat_id = ? AND inactive_since IS NOT NULL",
                (chat_id,),
            )
            return cursor.rowcount > 0

    async def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id == new_chat_id:
            return
        async with self._storage.transaction() as db:
            old = await db.execute_fetchall("SELECT 1 FROM chats WHERE chat_id = ?", (old_chat_id,))
            if not old:
                return  # already moved (the migration message and a send both report it)
            new = await db.execute_fetchall("SELECT 1 FROM chats WHERE chat_id = ?", (new_chat_id,))
            if not new:
                # ON UPDATE CASCADE moves cards, settings and the outbox with the chat.
                await db.execute(
                    "UPDATE chats SET chat_id = ?, address = ?, is_group = 1 WHERE chat_id = ?",
                    (new_chat_id, str(new_chat_id), old_chat_id),
                )
                return
            # The supergroup wrote to the bot first and has a row already: merge into it.
            await _merge_chats(db, old_chat_id, new_chat_id)

    # cards

    async def snooze(self, chat_id: int, card_id: int, until: date) -> bool:
        async with self._storage.transaction() as db:
            cursor = await db.execute(
                "UPDATE cards SET snoozed_until = ? WHERE chat_id = ? AND id = ?",
                (until.isoformat(), chat_id, card_id),
            )
            if cursor.rowcount == 0:
                return False
            await db.execute("DELETE FROM reminder_log WHERE card_id = ?", (card_id,))
            return True

    async def set_muted(self, chat_id: int, card_id: int, muted: bool) -> bool:
        async with self._storage.transaction() as db:
            cursor = await db.execute(
                "UPDATE cards SET muted = ? WHERE chat_id = ? AND id = ?",
                (int(muted), chat_id, card_id),
            )
            return cursor.rowcount > 0

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
        moment = _instant(now)
        kind = {None: "", True: "AND ch.is_group ", False: "AND NOT ch.is_group "}[groups]
        kind += {None: "", True: "AND o.target_id IS NOT NULL ", False: "AND o.target_id IS NULL "}[
            robots
        ]
        names = [] if channels is None else [channel.value for channel in channels]
        if channels is not None:
            kind += f"AND ch.channel IN ({', '.join('?' for _ in names)}) "
        # CROSS JOIN: SQLite then reads the few pending rows (outbox_pending) and looks up each
        # one's chat, rather than walk every chat of a channel (chats_by_address) for them.
        rows = await self._storage.fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM outbox o CROSS JOIN chats ch "
            "ON ch.chat_id = o.chat_id "
            f"WHERE o.status = 'pending' AND o.id > ? {kind}"
            "AND (o.not_before IS NULL OR o.not_before <= ?) "
            "AND (o.claimed_until IS NULL OR o.claimed_until <= ?) "
            "ORDER BY o.id LIMIT ?",
            (after_id, *names, moment, moment, limit),
        )
        return [_outbox_message(row) for row in rows]

    async def pending_robots(
        self, *, now: datetime, limit: int
    ) -> list[tuple[OutboxMessage, PushTarget]]:
        moment = _instant(now)
        rows = await self._storage.fetchall(_PENDING_ROBOTS_SQL, (moment, moment, limit))
        width = _OUTBOX_WIDTH
        return [(_outbox_message(row), push_target_of(row[width:])) for row in rows]

    async def lift_holds_beyond(self, *, claims: datetime, waits: datetime) -> int:
        async with self._storage.transaction() as db:
            claimed = await db.execute(
                "UPDATE outbox SET claimed_until = NULL "
                "WHERE status = 'pending' AND claimed_until > ?",
                (_instant(claims),),
            )
            waiting = await db.execute(
                "UPDATE outbox SET not_before = NULL WHERE status = 'pending' AND not_before > ?",
                (_instant(waits),),
            )
            return max(claimed.rowcount, 0) + max(waiting.rowcount, 0)

    async def count_pending(self) -> int:
        row = await self._storage.fetchone("SELECT count(*) FROM outbox WHERE status = 'pending'")
        return int(row[0]) if row else 0

    async def held(self, *, now: datetime) -> HeldMessages:
        row = await self._storage.fetchone(
            "SELECT count(*), max(claimed_until) FROM outbox "
            "WHERE status = 'pending' AND claimed_until > ?",
            (_instant(now),),
        )
        if row is None or not row[0]:
            return HeldMessages(0, None)
        return HeldMessages(int(row[0]), datetime.fromisoformat(row[1]).astimezone(UTC))

    async def digest_cards(self, chat_id: int, day: date) -> tuple[DigestChat, list[DueCard]]:
        async with self._storage.statements() as db:  # one statement: consistent by itself
            return await _digest_cards(db, chat_id, day)

    async def claim_digest(
        self, message: OutboxMessage, *, chat_id: int, now: datetime, until: datetime
    ) -> tuple[DigestChat, list[DueCard]] | None:
        # No transaction around the two statements: the claim keeps other senders off, and the
        # read is consistent by itself (a card renewed after it is simply left out).
        async with self._storage.statements() as db:
            # The chat as the row has it now: it follows a chat that moved (ON UPDATE CASCADE)
            # after the sender read it, and ``chat_id`` would find no cards.
            rows = await db.execute_fetchall(
                _CLAIM_SQL + " RETURNING chat_id", (_instant(until), message.id, _instant(now))
            )
            if not rows:
                return None
            current = int(next(iter(rows))[0])
            return await _digest_cards(db, current, message.digest_date)

    async def expand(
        self,
        message: OutboxMessage,
        parts: Sequence[DigestPart],
        *,
        chat_id: int,
        claimed_until: datetime,
    ) -> list[OutboxMessage]:
        count, until = len(parts), _instant(claimed_until)
        ids = [message.id]
        async with self._storage.transaction() as db:
            await db.execute(
                "UPDATE outbox SET parts = ?, text = ?, buttons = ? WHERE id = ?",
                (count, parts[0].text, parts[0].buttons_json, message.id),
            )
            # Further parts are numbered after the day's last message: usually 2, 3…; after a
            # group merged into its supergroup, after the messages the two had for the day.
            for part in parts[1:]:
                async with db.execute(
                    "INSERT INTO outbox (chat_id, target_id, digest_date, part, parts, text, "
                    "buttons, created_at, claimed_until) "
                    "SELECT ?, target_id, digest_date, (SELECT max(m.part) + 1 FROM outbox m "
                    "WHERE m.chat_id = ? AND m.target_id IS o.target_id "
                    "AND m.digest_date = o.digest_date), ?, ?, ?, "
                    "created_at, ? FROM outbox o WHERE id = ? RETURNING id",
                    (chat_id, chat_id, count, part.text, part.buttons_json, until, message.id),
                ) as cursor:
                    row = await cursor.fetchone()
                assert row is not None
                ids.append(int(row[0]))
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
        async with self._storage.transaction() as db:
            await db.executemany(
                "UPDATE outbox SET claimed_until = NULL WHERE id = ? AND status = 'pending'",
                [(message_id,) for message_id in message_ids],
            )

    async def renew_claims(self, claims: Mapping[int, datetime], *, until: datetime) -> list[int]:
        renewed = []
        new_until = _instant(until)
        async with self._storage.transaction() as db:
            for message_id, held_until in claims.items():
                cursor = await db.execute(
                    "UPDATE outbox SET claimed_until = ? "
                    "WHERE id = ? AND status = 'pending' AND claimed_until = ?",
                    (new_until, message_id, _instant(held_until)),
                )
                if cursor.rowcount:
                    renewed.append(message_id)
        return renewed

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
        """End a message: ``sent``, ``failed`` or ``dropped`` (no longer wanted); with
        ``content`` if it was sent before being stored (a one-message digest); and for a push
        target, its last delivery and how it went."""
        # NULLs leave a column as it is: only a one-message digest's content is written here.
        text, buttons, parts = (content.text, content.buttons_json, 1) if content else (None,) * 3
        async with self._storage.transaction() as db:
            await db.execute(
                "UPDATE outbox SET status = ?, sent_at = ?, error = ?, claimed_until = NULL, "
                "message_id = coalesce(?, message_id), text = coalesce(?, text), "
                "buttons = coalesce(?, buttons), parts = coalesce(?, parts) WHERE id = ?",
                (status, _instant(at), error, telegram_message_id, text, buttons, parts,
                 message_id),
            )  # fmt: skip
            if target_id is not None:
                await db.execute(
                    "UPDATE push_targets SET last_at = ?, last_result = ? WHERE id = ?",
                    (_instant(at), "ok" if status == "sent" else error, target_id),
                )

    async def drop(self, message_id: int, reason: str, *, at: datetime) -> None:
        await self._finish(message_id, "dropped", at, error=reason)

    async def claim(self, message_id: int, *, now: datetime, until: datetime) -> bool:
        changed = await self._storage.execute(
            _CLAIM_SQL, (_instant(until), message_id, _instant(now))
        )
        return changed > 0

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
        async with self._storage.transaction() as db:
            await db.execute(
                "UPDATE outbox SET error = ?, attempts = attempts + 1 WHERE id = ?",
                (error, message_id),
            )
            await db.execute(
                "UPDATE outbox SET not_before = ?, claimed_until = NULL "
                "WHERE status = 'pending' AND id >= ? AND (chat_id, coalesce(target_id, 0)) = "
                "(SELECT chat_id, coalesce(target_id, 0) FROM outbox WHERE id = ?)",
                (_instant(until), message_id, message_id),
            )

    async def prune(self, *, sent_before: datetime) -> None:
        async with self._storage.transaction() as db:
            await db.execute(
                "DELETE FROM outbox WHERE status <> 'pending' AND created_at < ?",
                (_instant(sent_before),),
            )
            await db.execute(
                "DELETE FROM reminder_log WHERE NOT EXISTS (SELECT 1 FROM cards c "
                "WHERE c.id = reminder_log.card_id AND c.expiry = reminder_log.expiry)"
            )
