"""The bot's clock in the shell: the system clock until ``--date`` or ``:date`` fixes it."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from bot.clock import Clock, FixedClock, SystemClock, local_today

# A fixed day starts at 10:00 local time: after a usual morning reminder time, before midnight
# in every zone near the chat's, so "today" is the same day for the bot and for the reader.
FIXED_TIME = time(10, 0)


class ShellClock:
    """A ``Clock`` that can be fixed to a day while the bot runs (the bot keeps this object)."""

    def __init__(self, timezone: str, day: date | None = None) -> None:
        self.timezone = timezone
        self._clock: Clock = SystemClock()
        self.fixed = False
        if day is not None:
            self.fix(day)

    def now(self) -> datetime:
        return self._clock.now()

    def fix(self, day: date) -> None:
        local = datetime.combine(day, FIXED_TIME, tzinfo=ZoneInfo(self.timezone))
        self._clock = FixedClock(local)
        self.fixed = True

    def today(self) -> date:
        """Today where the bot's default time zone is."""
        return local_today(self, self.timezone)
