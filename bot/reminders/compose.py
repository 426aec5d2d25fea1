"""The reminder pass: which chats get a digest now, which of their cards are due, and the outbox.

Chats are walked in batches (by time zone, then chat id); each batch is one transaction that
rolls auto-renewing cards forward, records the due cards in the sent-log (the database picks
them, see ``thresholds.LevelBands``), enqueues one digest per chat that has something to say
and marks the chats done for the day. Run twice, late, or after a crash, a pass neither loses
nor repeats a reminder. The digests' text is rendered when they are sent (``sender``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clock import Clock
from bot.models import DEFAULT_TIMEZONE
from bot.reminders.autorenew import auto_renewal
from bot.reminders.digest import make_digest, render_digest
from bot.reminders.models import (
    AheadUndone,
    AutoRenewal,
    ChatToRemind,
    DigestChat,
    DigestPart,
    ReminderSettings,
    RenewedNote,
    notes_to_json,
)
from bot.reminders.thresholds import LevelBands, level_bands
from bot.robots.models import PushTarget
from bot.robots.render import render_robot_digest, stored
from storage.reminders import ReminderBatch, ReminderStore

log = logging.getLogger(__name__)

BATCH_CHATS = 2000  # chats per transaction: set-based work, short enough to share the database


@dataclass(frozen=True)
class ComposedDigest:
    """A digest a dry run would send: to the chat, or (``target``) to one of its robots, whose
    parts are then ``bot.robots.render.stored`` messages."""

    chat_id: int
    day: date
    parts: list[DigestPart]
    target: PushTarget | None = None


@dataclass
class ComposeStats:
    chats: int = 0  # chats looked at (and marked done for the day)
    digests: int = 0  # digests enqueued
    cards_due: int = 0
    auto_renewed: int = 0
    composed: list[ComposedDigest] = field(default_factory=list)  # dry runs only

    def add(self, other: ComposeStats) -> None:
        self.chats += other.chats
        self.digests += other.digests
        self.cards_due += other.cards_due
        self.auto_renewed += other.auto_renewed
        self.composed.extend(other.composed)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("chat time zone %r is unknown; using %s", name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)


def group_by_settings(
    chats: Sequence[ChatToRemind], today: date
) -> list[tuple[LevelBands, list[int]]]:
    """The chats' ids per distinct settings (most chats keep the defaults: one group)."""
    # Keyed by identity: settings come from a cache, so equal settings are mostly one object
    # (and hashing a pydantic model per chat is what would cost here).
    groups: dict[int, tuple[ReminderSettings, list[int]]] = {}
    for chat in chats:
        group = groups.get(id(chat.settings))
        if group is None:
            group = groups[id(chat.settings)] = (chat.settings, [])
        group[1].append(chat.chat_id)
    return [(level_bands(settings, today), ids) for settings, ids in groups.values()]


def renewed_notes(renewals: Sequence[AutoRenewal]) -> dict[int, list[RenewedNote]]:
    """Per chat, the auto-renewals its digest reports (muted cards renew quietly)."""
    notes: dict[int, list[RenewedNote]] = defaultdict(list)
    for renewal in renewals:
        if not renewal.card.muted:
            notes[renewal.card.chat_id].append(RenewedNote.of(renewal))
    return dict(notes)


class ReminderComposer:
    """Composes due digests into the outbox."""

    def __init__(
        self,
        store: ReminderStore,
        clock: Clock,
        *,
        default_language: str,
        batch_chats: int = BATCH_CHATS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default_language = default_language
        self.batch_chats = batch_chats

    async def compose_due(
        self, *, dry_run: bool = False, unconfirmed: bool = False
    ) -> ComposeStats:
        """Every chat whose local send time has passed today and whose digest for today is not
        composed yet (a restart later in the day catches up the same day). A dry run rolls
        everything back and returns the digests it would have sent. ``unconfirmed``: the
        system clock jumped ahead before this pass (``ReminderRunner``): the pass is marked,
        and undone if the clock comes back (``undo_ahead``)."""
        now = self.clock.now()
        stats = ComposeStats()
        if not dry_run:
            await self.undo_ahead(now)
        for name in await self.store.timezones():
            local = now.astimezone(_zone(name))
            stats.add(
                await self._compose(
                    timezone=name,
                    today=local.date(),
                    local_time=local.time(),
                    now=now,
                    dry_run=dry_run,
                    unconfirmed=unconfirmed,
                )
            )
        return stats

    async def undo_ahead(self, now: datetime) -> AheadUndone:
        """Take back what passes marked ``unconfirmed`` (made after the system clock jumped
        ahead) did, once the clock is back (``now`` is earlier than they were), so that every
        reminder comes on its real day and no card stays renewed before its real expiry day.
        Passes on a trusted clock, and deliberate runs for a later day (``compose_for_date``,
        ``remind --date``), are not marked and are kept."""
        async with self.store.batch() as batch:
            undone = await batch.undo_ahead(
                now=now, today_in=lambda zone: now.astimezone(_zone(zone)).date()
            )
        if undone.chats:
            log.warning(
                "reminders: the clock ran ahead earlier; undid the passes it made for %d chats "
                "(%d automatic renewals before their day)",
                undone.chats,
                undone.renewals,
            )
        return undone

    async def compose_for_date(self, on_date: date, *, dry_run: bool = False) -> ComposeStats:
        """Every chat not composed yet for ``on_date``, as if it were that day everywhere,
        whatever the send times."""
        return await self._compose(
            timezone=None, today=on_date, local_time=None, now=self.clock.now(), dry_run=dry_run
        )

    async def _compose(
        self,
        *,
        timezone: str | None,
        today: date,
        local_time: time | None,
        now: datetime,
        dry_run: bool,
        unconfirmed: bool = False,
    ) -> ComposeStats:
        stats = ComposeStats()
        after: int | None = None
        while True:
            async with self.store.batch(commit=not dry_run) as batch:
                chats = await batch.due_chats(
                    timezone=timezone,
                    today=today,
                    local_time=local_time,
                    after_chat_id=after,
                    limit=self.batch_chats,
                )
                if chats:
                    stats.add(await self._batch(batch, chats, today, now, dry_run, unconfirmed))
            if len(chats) < self.batch_chats:
                return stats
            after = chats[-1].chat_id

    async def _batch(
        self,
        batch: ReminderBatch,
        chats: list[ChatToRemind],
        today: date,
        now: datetime,
        dry_run: bool,
        unconfirmed: bool,
    ) -> ComposeStats:
        ids = [chat.chat_id for chat in chats]
        renewals = [
            renewal
            for card in await batch.auto_renew_candidates(ids, today)
            if (renewal := auto_renewal(card, today)) is not None
        ]
        await batch.apply_auto_renewals(renewals, renewed_at=now)
        notes = renewed_notes(renewals)
        cards, digests = await batch.remind(
            group_by_settings(chats, today),
            today=today,
            now=now,
            renewed={chat_id: notes_to_json(chat_notes) for chat_id, chat_notes in notes.items()},
        )
        await batch.mark_composed(ids, today, now=now, unconfirmed=unconfirmed)
        stats = ComposeStats(
            chats=len(chats), digests=digests, cards_due=cards, auto_renewed=len(renewals)
        )
        if dry_run:  # render now, inside the transaction that will be rolled back
            targets = await batch.push_targets(ids)
            inactive = await batch.inactive_chats(ids)  # blocked the bot: robots only
            for chat in chats:
                digest_chat, due = await batch.digest_cards(chat.chat_id, today)
                renewed = notes.get(chat.chat_id, [])
                digest = make_digest(digest_chat, today, due, renewed, self.default_language)
                parts = render_digest(digest)
                if not parts:
                    continue
                if chat.chat_id not in inactive:
                    stats.composed.append(ComposedDigest(chat.chat_id, today, parts))
                # a robot's group is a group: ICCIDs masked there
                grouped = make_digest(
                    DigestChat(digest_chat.chat_id, True, digest_chat.language),
                    today,
                    due,
                    renewed,
                    self.default_language,
                )
                for target in targets.get(chat.chat_id, []):
                    messages = render_robot_digest(
                        grouped, target.robot.service, target.source_name
                    )
                    robot_parts = [DigestPart(stored(message), "[]") for message in messages]
                    stats.composed.append(
                        ComposedDigest(chat.chat_id, today, robot_parts, target=target)
                    )
        return stats
