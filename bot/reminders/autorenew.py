"""Auto-renew: a card whose carrier charges it automatically rolls forward on its expiry day.

Decided: from the expiry day on (days left <= 0) the expiry moves by the card's plan period,
repeatedly, until it is after today, always from the old expiry (the EXTEND rule: the carrier
bills in unbroken periods, so a bot that was down for a while catches up without shifting the
billing date). Each period is its own renewal record with the plan price, so the history and
the money add up. Before its expiry day such a card gets no reminders (nothing to do); a card
without a plan is not auto-renewed but reminded like any other.
"""

from __future__ import annotations

from datetime import date

from bot.dates import add_period
from bot.models import Period
from bot.reminders.models import AutoRenewal, AutoRenewCandidate

# A 1-day plan on a card that expired years ago would make thousands of records; past this the
# card is left alone (reminded as overdue) for a person to sort out.
MAX_PERIODS = 400


def roll_forward(expiry: date, plan: Period, today: date) -> tuple[tuple[date, date], ...] | None:
    """The (old, new) expiry of each period needed to get past today; () if nothing is due yet,
    None if the plan cannot do it (empty, or more than ``MAX_PERIODS`` periods)."""
    if plan.is_empty:
        return None
    steps: list[tuple[date, date]] = []
    current = expiry
    while current <= today:
        if len(steps) == MAX_PERIODS:
            return None
        following = add_period(current, plan)
        steps.append((current, following))
        current = following
    return tuple(steps)


def auto_renewal(card: AutoRenewCandidate, today: date) -> AutoRenewal | None:
    """The auto-renewal the card is due for today, if any."""
    steps = roll_forward(card.expiry, card.plan, today)
    if not steps:
        return None
    charge = None if card.plan_price_fen is None else card.plan_price_fen * len(steps)
    return AutoRenewal(card=card, steps=steps, charge_fen=charge)
