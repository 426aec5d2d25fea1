"""bot.dates: parsing expiries and periods, calendar arithmetic, the renewal rule."""

from __future__ import annotations

import calendar
import contextlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.dates import (
    MAX_INPUT_LEN,
    add_period,
    leading_expiry,
    parse_expiry,
    parse_period,
    renewal_expiry,
)
from bot.errors import InputError
from bot.models import Period, RenewalRule

TODAY = date(2026, 5, 10)
YEARS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


def _expiry_error(text: str, today: date = TODAY) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_expiry(text, today)
    return caught.value


def _period_error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_period(text)
    return caught.value


# --- parse_expiry: absolute dates -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-31",
        "2026/12/31",
        "2026.12.31",
        "20261231",
        "2026年12月31日",
        "2026年12月31号",
        "2026年12月31",
        "2026 年 12 月 31 日",
        " 2026-12-31 ",
        "２０２６－１２－３１",  # full-width
        "２０２６／１２／３１",
        "2026–12–31",  # en dash
    ],
)
def test_absolute_date(text: str) -> None:
    assert parse_expiry(text, TODAY) == date(2026, 12, 31)


@pytest.mark.parametrize("text", ["2026-1-5", "2026/1/5", "2026.1.5", "2026年1月5日", "2026-01-05"])
def test_single_digit_month_and_day(text: str) -> None:
    assert parse_expiry(text, TODAY) == date(2026, 1, 5)


def test_past_date_is_returned_as_is() -> None:
    assert parse_expiry("2020-01-01", TODAY) == date(2020, 1, 1)


def test_year_bounds_are_inclusive() -> None:
    assert parse_expiry("2000-01-01", TODAY) == date(2000, 1, 1)
    assert parse_expiry("2100-12-31", TODAY) == date(2100, 12, 31)


# --- parse_expiry: month-day ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["12-31", "12/31", "12.31", "12月31日", "12月31号", "12月31"])
def test_month_day_later_this_year(text: str) -> None:
    assert parse_expiry(text, TODAY) == date(2026, 12, 31)


def test_month_day_already_passed_is_next_year() -> None:
    assert parse_expiry("1-5", TODAY) == date(2027, 1, 5)
    assert parse_expiry("5月9日", TODAY) == date(2027, 5, 9)


def test_month_day_today_is_today() -> None:
    assert parse_expiry("12-31", date(2026, 12, 31)) == date(2026, 12, 31)
    assert parse_expiry("5月10日", TODAY) == TODAY


def test_month_day_after_new_year() -> None:
    assert parse_expiry("12-31", date(2027, 1, 1)) == date(2027, 12, 31)


def test_feb_29_waits_for_a_leap_year() -> None:
    assert parse_expiry("2-29", TODAY) == date(2028, 2, 29)
    assert parse_expiry("2月29日", date(2028, 2, 29)) == date(2028, 2, 29)
    assert parse_expiry("2/29", date(2028, 3, 1)) == date(2032, 2, 29)


def test_feb_29_skips_2100() -> None:
    # 2100 is not a leap year; the next Feb 29 after 2096 is in 2104, beyond our range.
    assert _expiry_error("2-29", date(2096, 3, 1)).key == "error.date.out_of_range"


# --- parse_expiry: durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", date(2026, 6, 9)),
        ("30D", date(2026, 6, 9)),
        ("30天", date(2026, 6, 9)),
        ("30 days", date(2026, 6, 9)),
        ("1 day", date(2026, 5, 11)),
        ("2w", date(2026, 5, 24)),
        ("2周", date(2026, 5, 24)),
        ("2 weeks", date(2026, 5, 24)),
        ("两周", date(2026, 5, 24)),
        ("3个月", date(2026, 8, 10)),
        ("3 个月", date(2026, 8, 10)),
        ("三个月", date(2026, 8, 10)),
        ("3m", date(2026, 8, 10)),
        ("3M", date(2026, 8, 10)),
        ("3mo", date(2026, 8, 10)),
        ("6 months", date(2026, 11, 10)),
        ("半年", date(2026, 11, 10)),
        ("1y", date(2027, 5, 10)),
        ("1 year", date(2027, 5, 10)),
        ("1年", date(2027, 5, 10)),
        ("一年", date(2027, 5, 10)),
        ("十二个月", date(2027, 5, 10)),
        ("１年", date(2027, 5, 10)),
        ("10y", date(2036, 5, 10)),
        ("3650天", date(2036, 5, 7)),
    ],
)
def test_duration_from_today(text: str, expected: date) -> None:
    assert parse_expiry(text, TODAY) == expected


def test_duration_clamps_to_month_end() -> None:
    assert parse_expiry("1个月", date(2026, 1, 31)) == date(2026, 2, 28)


# --- parse_expiry: days named from today, English month names -------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天", TODAY),
        ("today", TODAY),
        ("明天", date(2026, 5, 11)),
        ("Tomorrow", date(2026, 5, 11)),
        ("后天", date(2026, 5, 12)),
        ("月底", date(2026, 5, 31)),
        ("end of month", date(2026, 5, 31)),
        ("下月底", date(2026, 6, 30)),
        ("年底", date(2026, 12, 31)),
    ],
)
def test_days_named_from_today(text: str, expected: date) -> None:
    assert parse_expiry(text, TODAY) == expected


def test_month_end_of_february_and_on_the_last_day() -> None:
    assert parse_expiry("月底", date(2028, 2, 3)) == date(2028, 2, 29)
    assert parse_expiry("月底", date(2026, 1, 31)) == date(2026, 1, 31)
    assert parse_expiry("下月底", date(2026, 1, 31)) == date(2026, 2, 28)
    assert parse_expiry("下个月底", date(2026, 12, 5)) == date(2027, 1, 31)


@pytest.mark.parametrize(
    "text",
    [
        "Dec 31",
        "dec 31",
        "Dec. 31",
        "December 31",
        "December 31st",
        "31 Dec",
        "31 December",
        "31st of December",
        "Dec31",
    ],
)
def test_english_month_day_is_the_next_such_day(text: str) -> None:
    assert parse_expiry(text, TODAY) == date(2026, 12, 31)
    assert parse_expiry(text, date(2027, 1, 2)) == date(2027, 12, 31)


@pytest.mark.parametrize(
    "text", ["Dec 31 2027", "Dec 31, 2027", "December 31, 2027", "31 Dec 2027", "31 December 2027"]
)
def test_english_month_day_year(text: str) -> None:
    assert parse_expiry(text, TODAY) == date(2027, 12, 31)


def test_english_month_names_keep_their_checks() -> None:
    assert _expiry_error("Feb 30").key == "error.date.invalid"
    assert _expiry_error("Dec 31 2200").key == "error.date.out_of_range"
    assert _expiry_error("Decem 31").key == "error.date.unrecognized"
    assert parse_expiry("Sept 3", TODAY) == date(2026, 9, 3)
    assert parse_expiry("3 mon", TODAY) == date(2026, 8, 10)  # still 3 months, not a month name


@pytest.mark.parametrize(
    ("words", "expected", "used"),
    [
        (["2027-12-31", "移动", "收银台1"], date(2027, 12, 31), 1),
        (["Dec", "31", "2027", "移动"], date(2027, 12, 31), 3),
        (["Dec", "31", "移动", "收银台1"], date(2026, 12, 31), 2),
        (["31", "Dec"], date(2026, 12, 31), 2),
        (["月底", "Till", "1"], date(2026, 5, 31), 1),
        (["3", "months"], date(2026, 8, 10), 2),
    ],
)
def test_leading_expiry_takes_as_many_words_as_make_a_date(
    words: list[str], expected: date, used: int
) -> None:
    assert leading_expiry(words, TODAY) == (expected, used)


def test_leading_expiry_reports_the_first_word() -> None:
    with pytest.raises(InputError) as caught:
        leading_expiry(["someday", "移动"], TODAY)
    assert caught.value.params["text"] == "someday"


# --- parse_expiry: errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "next tuesday",
        "3月",  # March or 3 months? Refused as an expiry.
        "30日",  # the 30th or 30 days?
        "2026年",
        "2026年12月",
        "2026-12/31",  # mixed separators
        "2026123",
        "202612311",
        "26-12-31",
        "3x",
        "一一个月",
        "٢٠٢٦-١٢-٣١",  # Arabic-Indic digits are not ASCII after NFKC
    ],
)
def test_unrecognized(text: str) -> None:
    error = _expiry_error(text)
    assert error.key == "error.date.unrecognized"
    assert error.params == {"text": text.strip()}


def test_unrecognized_long_input_is_shortened() -> None:
    error = _expiry_error("x" * (MAX_INPUT_LEN + 10))
    assert error.key == "error.date.unrecognized"
    assert error.params == {"text": "x" * 32 + "…"}


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2026-13-01",
        "2026-00-10",
        "20260230",
        "2027年2月29日",
        "2-30",
        "13/01",
        "4月31日",
    ],
)
def test_invalid(text: str) -> None:
    error = _expiry_error(text)
    assert error.key == "error.date.invalid"
    assert error.params == {"text": text}


@pytest.mark.parametrize("text", ["1999-12-31", "2101-01-01", "21010101", "11y", "121m", "3661d"])
def test_out_of_range(text: str) -> None:
    error = _expiry_error(text)
    assert error.key == "error.date.out_of_range"
    assert error.params == {"text": text}


@pytest.mark.parametrize("text", ["0d", "0天", "0 days", "0个月", "0y"])
def test_zero_length_is_refused(text: str) -> None:
    # An empty length is no expiry: "/renew 1238 0天" used to read it as "today".
    assert _expiry_error(text).key == "error.date.zero_length"


def test_duration_past_2100_is_out_of_range() -> None:
    assert _expiry_error("1y", date(2100, 6, 1)).key == "error.date.out_of_range"


# --- parse_period ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("1", Period(months=1)),
        ("3", Period(months=3)),
        ("6", Period(months=6)),
        ("12", Period(months=12)),
        ("24", Period(months=24)),
        ("３", Period(months=3)),
        ("3m", Period(months=3)),
        ("3M", Period(months=3)),
        ("3mo", Period(months=3)),
        ("3 months", Period(months=3)),
        ("1 month", Period(months=1)),
        ("3个月", Period(months=3)),
        ("3月", Period(months=3)),  # as a period there is no "March" reading
        ("一个月", Period(months=1)),
        ("三个月", Period(months=3)),
        ("两个月", Period(months=2)),
        ("十个月", Period(months=10)),
        ("十二个月", Period(months=12)),
        ("二十四个月", Period(months=24)),
        ("半年", Period(months=6)),
        ("1y", Period(months=12)),
        ("1 year", Period(months=12)),
        ("1年", Period(months=12)),
        ("一年", Period(months=12)),
        ("两年", Period(months=24)),
        ("10y", Period(months=120)),
        ("120m", Period(months=120)),
        ("30d", Period(days=30)),
        ("30天", Period(days=30)),
        ("三十天", Period(days=30)),
        ("30 days", Period(days=30)),
        ("2w", Period(days=14)),
        ("2周", Period(days=14)),
        ("2个星期", Period(days=14)),
        ("3660d", Period(days=3660)),
    ],
)
def test_parse_period(text: str, period: Period) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["0", "00", "0m", "0天", "11y", "121m", "3661d", "523w"])
def test_period_out_of_range(text: str) -> None:
    error = _period_error(text)
    assert error.key == "error.period.out_of_range"
    assert error.params == {"text": text}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "25",
        "30",
        "365",
        "3x",
        "1.5y",
        "一一个月",
        "十十个月",
        "零个月",
        "半",
        "-3",
        "3 months ago",
    ],
)
def test_period_unrecognized(text: str) -> None:
    error = _period_error(text)
    assert error.key == "error.period.unrecognized"
    assert error.params == {"text": text}


# --- add_period -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (date(2026, 1, 31), Period(months=1), date(2026, 2, 28)),
        (date(2028, 1, 31), Period(months=1), date(2028, 2, 29)),
        (date(2026, 3, 31), Period(months=1), date(2026, 4, 30)),
        (date(2028, 2, 29), Period(months=12), date(2029, 2, 28)),
        (date(2028, 2, 29), Period(months=1), date(2028, 3, 29)),
        (date(2028, 2, 29), Period(months=48), date(2032, 2, 29)),
        (date(2026, 12, 15), Period(months=1), date(2027, 1, 15)),
        (date(2026, 5, 10), Period(days=30), date(2026, 6, 9)),
        (date(2028, 2, 28), Period(days=1), date(2028, 2, 29)),
        # months first, then days: Jan 31 + 1 month = Feb 28, + 1 day = Mar 1
        (date(2026, 1, 31), Period(months=1, days=1), date(2026, 3, 1)),
        (date(2026, 5, 10), Period(), date(2026, 5, 10)),
    ],
)
def test_add_period(start: date, period: Period, expected: date) -> None:
    assert add_period(start, period) == expected


# --- renewal_expiry -------------------------------------------------------------------------


def test_renewal_of_a_valid_card_extends() -> None:
    assert renewal_expiry(date(2026, 6, 1), Period(months=3), TODAY) == (
        date(2026, 9, 1),
        RenewalRule.EXTEND,
    )


def test_renewal_on_the_expiry_day_still_extends() -> None:
    assert renewal_expiry(TODAY, Period(months=1), TODAY) == (date(2026, 6, 10), RenewalRule.EXTEND)


def test_renewal_of_an_expired_card_restarts_today() -> None:
    yesterday = date(2026, 5, 9)
    assert renewal_expiry(yesterday, Period(months=1), TODAY) == (
        date(2026, 6, 10),
        RenewalRule.RESTART,
    )


def test_renewal_restart_uses_calendar_months() -> None:
    assert renewal_expiry(date(2025, 1, 1), Period(months=1), date(2026, 1, 31)) == (
        date(2026, 2, 28),
        RenewalRule.RESTART,
    )


# --- properties -----------------------------------------------------------------------------


@given(st.text(), YEARS)
def test_parse_expiry_raises_only_input_error(text: str, today: date) -> None:
    with contextlib.suppress(InputError):
        parse_expiry(text, today)


@given(st.text())
def test_parse_period_raises_only_input_error(text: str) -> None:
    try:
        period = parse_period(text)
    except InputError:
        return
    assert not period.is_empty


@given(
    YEARS,
    st.sampled_from(
        [
            "{y:04d}-{m:02d}-{d:02d}",
            "{y:04d}/{m:02d}/{d:02d}",
            "{y:04d}{m:02d}{d:02d}",
            "{y}年{m}月{d}日",
            "{y}-{m}-{d}",
        ]
    ),
)
def test_formatted_date_parses_back(day: date, template: str) -> None:
    text = template.format(y=day.year, m=day.month, d=day.day)
    assert parse_expiry(text, TODAY) == day


@given(YEARS, st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_month_day_is_the_next_occurrence(day: date, today: date) -> None:
    # today is before 2100, so every next occurrence but Feb 29's is within range
    text = f"{day.month}-{day.day}"
    if (day.month, day.day) == (2, 29) and today > date(2096, 2, 29):
        # the next Feb 29 is in 2104 (2100 is not a leap year)
        with pytest.raises(InputError, match=r"^error\.date\.out_of_range$"):
            parse_expiry(text, today)
        return
    result = parse_expiry(text, today)
    assert (result.month, result.day) == (day.month, day.day)
    assert today <= result
    assert (result.year - today.year) <= (8 if (day.month, day.day) == (2, 29) else 1)


@given(YEARS, st.integers(min_value=0, max_value=120))
def test_add_months_lands_in_the_right_month(start: date, months: int) -> None:
    result = add_period(start, Period(months=months))
    year, month_index = divmod(start.year * 12 + start.month - 1 + months, 12)
    assert (result.year, result.month) == (year, month_index + 1)
    # the same day, or the month's last day when the month is shorter
    assert result.day == min(start.day, calendar.monthrange(year, month_index + 1)[1])


@given(YEARS, YEARS, st.integers(min_value=1, max_value=120))
def test_renewal_never_ends_before_today(old_expiry: date, today: date, months: int) -> None:
    new_expiry, rule = renewal_expiry(old_expiry, Period(months=months), today)
    assert new_expiry > today
    assert new_expiry > old_expiry
    assert rule is (RenewalRule.EXTEND if old_expiry >= today else RenewalRule.RESTART)
