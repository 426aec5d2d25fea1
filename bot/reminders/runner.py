"""The reminder tick: compose what is due, then drain the outbox for a bounded time.

Run every minute by the JobQueue (see ``handlers/reminder_schedule.py``). Everything it needs
is in the database (what was composed, the sent-log, the outbox), so a restart loses nothing:
the first tick after it catches up the same day.
"""

from __future__ import annotations

import asyncio
import logging
import time as time_module
from collections.abc import Callable
from datetime import date, datetime, timedelta

from bot.clock import Clock
from bot.reminders.compose import ComposeStats, ReminderComposer
from bot.reminders.sender import DrainStats, OutboxSender
from storage.reminders import ReminderStore

log = logging.getLogger(__name__)

DRAIN_SECONDS = 45.0  # per tick, so a tick ends before the next one is due
KEEP_FINISHED = timedelta(days=14)  # sent/failed outbox rows, for looking into complaints
# The system clock moving away from the time that really passed (the monotonic clock) by more
# than this between two ticks is a jump: the tick waits for the next one to confirm it.
CLOCK_JUMP = timedelta(hours=1)
# The first tick after a start compares the clock with the latest instant the database
# recorded (a running bot records one at least daily): further ahead than this, or behind it
# by more than CLOCK_JUMP, it waits for the next tick to confirm the clock.
RESTART_GAP = timedelta(days=2)
# Passes made after a jump ahead was confirmed are marked as such for this long (and undone if
# the clock comes back within it); later ones count as made on a trusted clock.
MARKED_FOR = timedelta(days=7)


def _drift(wall: datetime, mono: float, seen: tuple[datetime, float]) -> timedelta:
    """How far the system clock moved beyond the time that really passed since ``seen``."""
    return wall - seen[0] - timedelta(seconds=mono - seen[1])


class ReminderRunner:
    def __init__(
        self,
        store: ReminderStore,
        composer: ReminderComposer,
        sender: OutboxSender,
        clock: Clock,
        *,
        drain_seconds: float = DRAIN_SECONDS,
        monotonic: Callable[[], float] = time_module.monotonic,
    ) -> None:
        self.store = store
        self.composer = composer
        self.sender = sender
        self.clock = clock
        self.drain_seconds = drain_seconds
        self._monotonic = monotonic
        self._busy = asyncio.Lock()
        self._pruned_on: date | None = None
        self._pruned_before: datetime | None = None
        # (system clock, monotonic clock) at the last tick that ran, and at a tick that found
        # the system clock jumped (held until the next tick confirms the jump); whether that
        # jump was ahead; since when passes are marked as made after a jump ahead
        self._last: tuple[datetime, float] | None = None
        self._jumped: tuple[datetime, float] | None = None
        self._jumped_ahead = False
        self._ahead_since: datetime | None = None

    async def _clock_believed(self) -> bool:
        """Whether the system clock can be acted on. A jump (ahead or back) is believed once
        it holds for a second tick: a clock that was wrong for one tick and was corrected
        composes, auto-renews, undoes and sends nothing. The first tick after a start
        compares the clock with what the database recorded (``RESTART_GAP``). Passes made
        after a jump ahead was believed are marked, and undone if the clock comes back
        (``ReminderComposer.undo_ahead``); passes made on a trusted clock never are."""
        wall, mono = self.clock.now(), self._monotonic()
        if self._last is not None and abs(_drift(wall, mono, self._last)) <= CLOCK_JUMP:
            self._last, self._jumped = (wall, mono), None
            return True
        if self._last is None:
            record = await self.store.clock_record()
            gap = None if record.latest is None else wall - record.latest
            if gap is None or -CLOCK_JUMP <= gap <= RESTART_GAP:
                self._last, self._jumped = (wall, mono), None
                if record.marked_since is not None and wall - record.marked_since < MARKED_FOR:
                    self._ahead_since = record.marked_since  # still after a jump ahead
                return True
            ahead = gap > timedelta(0)
        else:
            ahead = _drift(wall, mono, self._last) > timedelta(0)
        if self._jumped is not None and abs(_drift(wall, mono, self._jumped)) <= CLOCK_JUMP:
            if self._jumped_ahead:
                if self._ahead_since is None:
                    self._ahead_since = self._jumped[0]
            else:
                self._ahead_since = None  # the clock is back: marked passes after now go
            self._last, self._jumped = (wall, mono), None
            return True
        if self._last is None:
            log.warning(
                "reminders: the system clock (%s) is %s the latest time the database recorded; "
                "waiting for the next tick to confirm it before composing anything",
                wall.isoformat(timespec="seconds"),
                "far after" if ahead else "before",
            )
        else:
            log.warning(
                "reminders: the system clock jumped %s to %s; waiting for the next tick to "
                "confirm it before composing anything",
                "ahead" if ahead else "back",
                wall.isoformat(timespec="seconds"),
            )
        self._jumped, self._jumped_ahead = (wall, mono), ahead
        return False

    def _unconfirmed(self) -> bool:
        """Whether this pass is made after a jump ahead (and is marked)."""
        since = self._ahead_since
        if since is not None and self.clock.now() - since >= MARKED_FOR:
            self._ahead_since = since = None
        return since is not None

    async def tick(self) -> tuple[ComposeStats, DrainStats] | None:
        """One tick; None if the previous one is still running (it will pick up the rest), or
        if the system clock just jumped (see ``_clock_believed``)."""
        if self._busy.locked():
            return None
        async with self._busy:
            if not await self._clock_believed():
                return None
            composed = await self.composer.compose_due(unconfirmed=self._unconfirmed())
            if composed.digests:
                log.info(
                    "reminders: %d digests (%d cards, %d auto-renewed) for %d chats",
                    composed.digests,
                    composed.cards_due,
                    composed.auto_renewed,
                    composed.chats,
                )
            drained = await self.sender.drain(deadline=self._monotonic() + self.drain_seconds)
            if drained.sent or drained.failed or drained.waiting:
                log.info(
                    "reminders: sent %d, failed %d, waiting %d, chats blocked %d",
                    drained.sent,
                    drained.failed,
                    drained.waiting,
                    drained.blocked_chats,
                )
            await self._prune_daily()
            return composed, drained

    async def _prune_daily(self) -> None:
        now = self.clock.now()
        if self._pruned_on == now.date():
            return
        # A day further at a time: a clock that ran ahead does not wipe the history (whose
        # finished digests also keep a day's digest from being enqueued twice).
        before = now - KEEP_FINISHED
        if self._pruned_before is not None:
            before = min(before, self._pruned_before + timedelta(days=1))
        await self.store.prune(sent_before=before)
        self._pruned_on, self._pruned_before = now.date(), before
