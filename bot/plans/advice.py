"""Advice: which catalogue plan keeps a card running for less, and what switching saves."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from bot.models import Card, Period
from bot.plans.catalogue import Catalogue, CataloguePlan


@dataclass(frozen=True)
class Advice:
    card: Card
    plan: CataloguePlan
    saving_per_year_fen: int  # never overstated: rounded down to the fen


@dataclass(frozen=True)
class SwitchSummary:
    plan: CataloguePlan
    cards: list[Card]
    saving_per_year_fen: int


def cheapest_for(card: Card, catalogue: Catalogue, today: date) -> CataloguePlan | None:
    """The cheapest-per-month plan on sale today for the card's carrier and at least its data.

    A card whose plan is in the catalogue keeps at least that plan's data quota; for a plan typed
    in freely the quota is unknown, so any plan of the same carrier counts.
    """
    current = catalogue.matching(card.carrier, card.plan_period, card.plan_price_fen)
    need_mb = current.data_mb if current is not None else None
    for plan in catalogue.on_sale(card.carrier, today):
        if need_mb is None or (plan.data_mb is not None and plan.data_mb >= need_mb):
            return plan
    return None


def advise(card: Card, catalogue: Catalogue, today: date) -> Advice | None:
    """A cheaper plan for this card, or None if its plan is unknown or already the cheapest."""
    if card.plan_period is None or card.plan_price_fen is None or card.plan_period.is_empty:
        return None
    best = cheapest_for(card, catalogue, today)
    if best is None:
        return None
    # Exact fractions, rounded down once at the end: Decimal's 5000/12 is already rounded, and
    # ¥60 → ¥50 a year would save ¥9.99 instead of ¥10.00.
    saving = math.floor(
        _yearly(card.plan_price_fen, card.plan_period) - _yearly(best.price_fen, best.period)
    )
    if saving <= 0:
        return None
    return Advice(card=card, plan=best, saving_per_year_fen=saving)


def _yearly(price_fen: int, period: Period) -> Fraction:
    """What a plan costs in a year, exactly (the months of ``monthly_fen``)."""
    months = period.months + Fraction(period.days) / Fraction("30.4375")
    return Fraction(price_fen) * 12 / months


def summarize(advice: Iterable[Advice]) -> list[SwitchSummary]:
    """Advice grouped by the plan to switch to, biggest saving first."""
    groups: dict[CataloguePlan, list[Advice]] = {}
    for item in advice:
        groups.setdefault(item.plan, []).append(item)
    summaries = [
        SwitchSummary(
            plan=plan,
            cards=[a.card for a in items],
            saving_per_year_fen=sum(a.saving_per_year_fen for a in items),
        )
        for plan, items in groups.items()
    ]
    return sorted(summaries, key=lambda s: -s.saving_per_year_fen)
