"""When a card is due: reminder levels and the sent-log.

A card's *level* on a day says how urgent it is: before expiry it is the smallest threshold
(days before expiry) the card has crossed, so with thresholds 30, 7, 3, 1, 0 a card with 5 days
left is at level 7; after expiry it is minus the days since expiry (one new level a day), up to
the chat's overdue window. Lower is more urgent.

The sent-log keeps, per card and expiry date, the lowest level already composed. A card is due
when its level today is lower than that: a threshold reached while the bot was down is caught
up the next time it runs, and several thresholds crossed at once give one reminder, at the most
urgent level. A renewal changes the expiry, which starts a fresh log entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from bot.reminders.models import ReminderSettings


@lru_cache(maxsize=256)
def _levels_before_expiry(days_before: tuple[int, ...]) -> tuple[int | None, ...]:
    """Index ``d`` (days left, 0..max threshold): the smallest threshold >= d."""
    ascending = sorted(days_before)
    levels: list[int | None] = []
    for days_left in range(ascending[-1] + 1):
        levels.append(next(t for t in ascending if t >= days_left))
    return tuple(levels)


def reminder_level(days_left: int, settings: ReminderSettings) -> int | None:
    """The card's level today, or None when it is outside every reminder window."""
    if days_left >= 0:
        levels = _levels_before_expiry(settings.days_before)
        return levels[days_left] if days_left < len(levels) else None
    if -days_left <= settings.overdue_daily_days:
        return days_left
    return None


def due_level(days_left: int, settings: ReminderSettings, logged_level: int | None) -> int | None:
    """The level to remind at today, or None if the card is not due (already reminded at this
    level or a more urgent one, or outside the windows)."""
    level = reminder_level(days_left, settings)
    if level is None or (logged_level is not None and level >= logged_level):
        return None
    return level


@dataclass(frozen=True)
class LevelBands:
    """``reminder_level`` for one day and one chat's settings as ranges of expiry dates, so the
    database can pick the due cards in one statement.

    A card with ``earliest <= expiry <= latest`` has a level: before ``today`` it is the days
    left (negative, one level a day); from ``today`` on it is the level of the first band whose
    last date is on or after the expiry.
    """

    today: date
    earliest: date
    latest: date
    bands: tuple[tuple[date, int], ...]  # (last expiry date, level), ascending


def level_bands(settings: ReminderSettings, today: date) -> LevelBands:
    ascending = sorted(settings.days_before)
    return LevelBands(
        today=today,
        earliest=today - timedelta(days=settings.overdue_daily_days),
        latest=today + timedelta(days=ascending[-1]),
        bands=tuple((today + timedelta(days=days), days) for days in ascending),
    )
