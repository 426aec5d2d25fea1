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
# The system clock moving ahead of the time that really passed (the monotonic clock) by more
# than this between two ticks is a jump: the tick waits for the next one to confirm it.
CLOCK_JUMP = timedelta(hours=1)


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
        # the system clock jumped ahead of it (held until the next tick confirms the jump)
        self._last: tuple[datetime, float] | None = None
        self._jumped: tuple[datetime, float] | None = None

    def _clock_believed(self) -> bool:
        """Whether the system clock can be acted on. A jump ahead is believed once it holds
        for a second tick: a clock that ran ahead for one tick and was corrected composes,
        auto-renews and sends nothing for the day it showed. (A clock that stayed ahead
        longer is undone once it is back: ``ReminderComposer.undo_ahead``.) A jump back is
        believed at once: a pass for a day already done does nothing."""
        wall, mono = self.clock.now(), self._monotonic()
        for seen in (self._last, self._jumped):
            if (
                seen is not None
                and wall - seen[0] - timedelta(seconds=mono - seen[1]) <= CLOCK_JUMP
            ):
                self._last, self._jumped = (wall, mono), None
                return True
        if self._last is None:
            self._last = (wall, mono)
            return True
        log.warning(
            "reminders: the system clock jumped ahead to %s; waiting for the next tick to "
            "confirm it before composing anything",
            wall.isoformat(timespec="seconds"),
        )
        self._jumped = (wall, mono)
        return False

    async def tick(self) -> tuple[ComposeStats, DrainStats] | None:
        """One tick; None if the previous one is still running (it will pick up the rest), or
        if the system clock just jumped ahead (see ``_clock_believed``)."""
        if self._busy.locked():
            return None
        async with self._busy:
            if not self._clock_believed():
                return None
            composed = await self.composer.compose_due()
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
