"""A chat's cards in numbers: by status, by carrier, and how many expire in each coming week."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from bot.models import CardStatus, Carrier, status_for

WEEKS = 12
DAYS_PER_WEEK = 7


@dataclass(frozen=True, slots=True)
class WeekCount:
    start: date  # weeks run from today: today..today+6, then the next 7 days, …
    count: int


@dataclass(frozen=True)
class ChatStats:
    total: int
    by_status: dict[CardStatus, int]  # every status, zeros included, in the enum's order
    by_carrier: dict[Carrier, int]  # only carriers the chat has, most cards first
    weeks: list[WeekCount]
    muted: int
    auto_renew: int

    @property
    def busiest_week(self) -> WeekCount | None:
        busiest = max(self.weeks, key=lambda week: week.count, default=None)
        return busiest if busiest is not None and busiest.count > 0 else None

    @property
    def in_weeks(self) -> int:
        return sum(week.count for week in self.weeks)


def weekly_counts(
    expiry_counts: Mapping[date, int], today: date, weeks: int = WEEKS
) -> list[WeekCount]:
    counts = [0] * weeks
    for expiry, count in expiry_counts.items():
        offset = (expiry - today).days
        if 0 <= offset < weeks * DAYS_PER_WEEK:
            counts[offset // DAYS_PER_WEEK] += count
    return [
        WeekCount(today + timedelta(days=DAYS_PER_WEEK * i), count)
        for i, count in enumerate(counts)
    ]


def chat_stats(
    expiry_counts: Mapping[date, int],
    carrier_counts: Mapping[Carrier, int],
    *,
    muted: int,
    auto_renew: int,
    today: date,
) -> ChatStats:
    by_status = dict.fromkeys(CardStatus, 0)
    for expiry, count in expiry_counts.items():
        by_status[status_for((expiry - today).days)] += count
    by_carrier = dict(sorted(carrier_counts.items(), key=lambda item: (-item[1], item[0].value)))
    return ChatStats(
        total=sum(expiry_counts.values()),
        by_status=by_status,
        by_carrier=by_carrier,
        weeks=weekly_counts(expiry_counts, today),
        muted=muted,
        auto_renew=auto_renew,
    )
