"""Time, injectable: production reads the system clock, tests and ``remind --date`` fix it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and what-if runs."""

    def __init__(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.instant = instant.astimezone(UTC)

    def now(self) -> datetime:
        return self.instant


def local_today(clock: Clock, timezone: str) -> date:
    """Today's date where the chat is: a card expires on the chat's calendar, not UTC's."""
    return clock.now().astimezone(ZoneInfo(timezone)).date()
