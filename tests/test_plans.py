"""Money: the plan catalogue, cost arithmetic and advice (exact fen, calendar months)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.models import Card, Carrier, Period
from bot.plans.advice import advise, cheapest_for, summarize
from bot.plans.catalogue import (
    Catalogue,
    CatalogueError,
    load_catalogue,
    monthly_fen,
    parse_catalogue,
)
from bot.plans.costs import annual_fen, cost_report, due_in, payment_dates

TODAY = date(2026, 11, 25)

CATALOGUE = parse_catalogue(
    """
[[plan]]
carrier = "cmcc"
name = "month"
months = 1
price = "5.00"
data_mb = 30

[[plan]]
carrier = "cmcc"
name = "year"
months = 12
price = "48.00"
data_mb = 30

[[plan]]
carrier = "cmcc"
name = "year small"
months = 12
price = "20.00"
data_mb = 10

[[plan]]
carrier = "cmcc"
name = "old promo"
months = 12
price = "1.00"
data_mb = 30
valid_to = "2026-11-24"

[[plan]]
carrier = "cucc"
name = "unicom year"
months = 12
price = "50"
""",
    "test",
)


def card(
    months: int | None, price: int | None, carrier: Carrier = Carrier.CHINA_MOBILE, **extra: object
) -> Card:
    fields: dict[str, object] = {
        "id": 1,
        "chat_id": 1,
        "iccid": "89860000000000000001",
        "expiry": date(2026, 12, 31),
        "carrier": carrier,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "plan_period": Period(months=months) if months else None,
        "plan_price_fen": price,
    }
    fields.update(extra)
    return Card.model_validate(fields)


def test_example_catalogue_ships_valid_and_marked() -> None:
    catalogue = load_catalogue(None)
    assert catalogue.example
    assert {plan.carrier for plan in catalogue.plans} >= {
        Carrier.CHINA_MOBILE,
        Carrier.CHINA_UNICOM,
        Carrier.CHINA_TELECOM,
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[[plan]]\ncarrier = "cmcc"\nname = "x"\nmonths = 1\nprice = 5.5', "as a string"),
        ('[[plan]]\ncarrier = "xx"\nname = "x"\nmonths = 1\nprice = "5"', "plan #1 (x): carrier"),
        ('[[plan]]\ncarrier = "cmcc"\nname = "x"\nprice = "5"', "needs months"),
        ('[[plan]]\ncarrier = "cmcc"\nname = "x"\nmonths = 1\nprice = "5.555"', "not an amount"),
        ('[[plan]]\ncarrier = "cmcc"\nname = "x"\nmonths = 1\nprice = "-5"', "not an amount"),
        (
            '[[plan]]\ncarrier = "cmcc"\nname = "x"\nmonths = 1\nprice = "5"\n'
            'valid_from = "2027-01-02"\nvalid_to = "2027-01-01"',
            "valid_from is after valid_to",
        ),
        ('[[plan]]\ncarrier = "cmcc"\nname = "x"\nmonths = 1\nprice = "5"\nspeed = 4', "speed"),
        ("example = true", "no [[plan]]"),
        ("[[plan]\n", "not valid TOML"),
    ],
)
def test_catalogue_errors_say_where_and_what(body: str, says: str) -> None:
    with pytest.raises(CatalogueError, match=r"^my\.toml: ") as raised:
        parse_catalogue(body, "my.toml")
    assert says in str(raised.value)


def test_missing_catalogue_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("months", "price", "monthly"),
    [(1, 500, Decimal(500)), (3, 1500, Decimal(500)), (6, 2700, Decimal(450)), (12, 4800, 400)],
)
def test_monthly_cost_of_each_period(months: int, price: int, monthly: Decimal) -> None:
    assert monthly_fen(price, Period(months=months)) == monthly


def test_annual_cost_is_exact_to_the_fen() -> None:
    assert annual_fen(card(3, 1000)) == 4000
    assert annual_fen(card(12, 4999)) == 4999
    assert annual_fen(card(None, None)) is None


def test_payments_stay_on_month_ends() -> None:
    dates = list(payment_dates(date(2027, 1, 31), Period(months=1), TODAY, date(2027, 6, 1)))
    assert dates == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
    ]


def test_leap_day_plans() -> None:
    start = date(2028, 2, 29)
    dates = list(payment_dates(start, Period(months=12), start, date(2033, 1, 1)))
    assert dates == [
        date(2028, 2, 29),
        date(2029, 2, 28),
        date(2030, 2, 28),
        date(2031, 2, 28),
        date(2032, 2, 29),
    ]


def test_an_expired_card_is_due_today() -> None:
    expired = card(1, 500, expiry=date(2026, 10, 1))
    assert due_in(expired, TODAY, 30) == 500  # today only: the next one is 2026-12-25
    assert due_in(expired, TODAY, 31) == 1000


@pytest.mark.parametrize(("months", "count"), [(1, 12), (3, 4), (6, 2), (12, 1)])
def test_due_within_a_year_by_period(months: int, count: int) -> None:
    # expiring tomorrow: payments on 11-26 and then every period within the next 365 days
    renewing = card(months, 1000, expiry=date(2026, 11, 26))
    assert due_in(renewing, TODAY, 365) == count * 1000


def test_cost_report_by_carrier_and_priciest() -> None:
    cards = [
        card(1, 500, id=1),
        card(12, 5000, Carrier.CHINA_UNICOM, id=2),
        card(None, None, id=3),
    ]
    spent = {Carrier.CHINA_MOBILE: 1234}
    report = cost_report(cards, spent, TODAY)
    assert report.spent_12m == spent
    assert report.unpriced_cards == 1
    assert report.due_30d == {}  # both expire 2026-12-31, 36 days away
    assert report.due_12m == {Carrier.CHINA_MOBILE: 11 * 500, Carrier.CHINA_UNICOM: 5000}
    assert [(c.id, yearly) for c, yearly in report.priciest] == [(1, 6000), (2, 5000)]


def test_advice_finds_the_cheaper_plan_with_the_same_data() -> None:
    monthly = card(1, 500)  # "month" plan, 30 MB: ¥60 a year
    best = cheapest_for(monthly, CATALOGUE, TODAY)
    assert best is not None
    assert best.name == "year"  # not "year small" (less data), not the expired promotion
    advice = advise(monthly, CATALOGUE, TODAY)
    assert advice is not None
    assert advice.saving_per_year_fen == 1200
    (summary,) = summarize([advice, advice])
    assert summary.saving_per_year_fen == 2400
    assert len(summary.cards) == 2


def test_no_advice_when_nothing_is_cheaper() -> None:
    assert advise(card(12, 4800), CATALOGUE, TODAY) is None
    assert advise(card(12, 5000, Carrier.CHINA_UNICOM), CATALOGUE, TODAY) is None
    assert advise(card(None, None), CATALOGUE, TODAY) is None
    assert advise(card(1, 500, Carrier.CHINA_TELECOM), Catalogue(plans=()), TODAY) is None


def test_promotions_only_on_their_dates() -> None:
    promo = next(p for p in CATALOGUE.plans if p.name == "old promo")
    assert promo.on_sale(date(2026, 11, 24))
    assert not promo.on_sale(TODAY)


def test_a_yearly_saving_is_exact_to_the_fen() -> None:
    """¥60 a year against a ¥50 yearly plan saves ¥10.00, not ¥9.99 (5000/12 rounded on the way)."""
    only = parse_catalogue(
        """
[[plan]]
carrier = "cmcc"
name = "Year 50"
months = 12
price = "50.00"
""",
        "test",
    )
    advice = advise(card(12, 6000), only, TODAY)
    assert advice is not None
    assert advice.saving_per_year_fen == 1000
