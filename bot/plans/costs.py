"""What cards cost: money spent (renewal history) and money coming due (expiries and plans)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from bot.dates import add_period
from bot.models import Card, Carrier, Period
from bot.plans.catalogue import monthly_fen

YEAR_DAYS = 365


def payment_dates(expiry: date, period: Period, today: date, until: date) -> Iterator[date]:
    """When a card's plan has to be paid, from today until ``until`` (exclusive).

    The next payment is due on the expiry day (today for a card already expired, which restarts
    from today); later ones every period after that. Each is computed from the anchor rather than
    from the previous one, so a Jan 31 plan stays on month ends (Feb 28, Mar 31…).
    """
    anchor = max(expiry, today)
    step = 0
    while True:
        due = add_period(anchor, Period(months=period.months * step, days=period.days * step))
        if due >= until:
            return
        yield due
        step += 1


def annual_fen(card: Card) -> int | None:
    """A card's cost over a year at its plan's price, to the fen; None without a priced plan."""
    if card.plan_period is None or card.plan_price_fen is None or card.plan_period.is_empty:
        return None
    yearly = monthly_fen(card.plan_price_fen, card.plan_period) * 12
    return int(yearly.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class CostReport:
    spent_12m: dict[Carrier, int] = field(default_factory=dict)
    due_30d: dict[Carrier, int] = field(default_factory=dict)
    due_12m: dict[Carrier, int] = field(default_factory=dict)
    unpriced_cards: int = 0  # cards whose future cost is unknown (no plan or no price)
    priciest: list[tuple[Card, int]] = field(default_factory=list)  # (card, cost per year)

    @staticmethod
    def total(by_carrier: dict[Carrier, int]) -> int:
        return sum(by_carrier.values())


def due_in(card: Card, today: date, days: int) -> int:
    """Money the card needs within ``days`` from today, at its plan's price."""
    if card.plan_period is None or card.plan_price_fen is None or card.plan_period.is_empty:
        return 0
    until = today + timedelta(days=days)
    count = sum(1 for _ in payment_dates(card.expiry, card.plan_period, today, until))
    return count * card.plan_price_fen


def cost_report(
    cards: Iterable[Card], spent_by_carrier: dict[Carrier, int], today: date, top: int = 5
) -> CostReport:
    report = CostReport(spent_12m=dict(spent_by_carrier))
    due_30d: dict[Carrier, int] = defaultdict(int)
    due_12m: dict[Carrier, int] = defaultdict(int)
    ranked: list[tuple[Card, int]] = []
    for card in cards:
        yearly = annual_fen(card)
        if yearly is None:
            report.unpriced_cards += 1
            continue
        ranked.append((card, yearly))
        due_30d[card.carrier] += due_in(card, today, 30)
        due_12m[card.carrier] += due_in(card, today, YEAR_DAYS)
    report.due_30d = {c: v for c, v in due_30d.items() if v}
    report.due_12m = {c: v for c, v in due_12m.items() if v}
    ranked.sort(key=lambda pair: (-pair[1], pair[0].expiry))
    report.priciest = ranked[:top]
    return report
