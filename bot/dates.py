"""Expiry dates and renewal periods: parsing what users type, calendar arithmetic, renewal rule.

Pure functions: "today" is always a parameter (the caller knows the chat's time zone).

Input is NFKC-normalised (full-width digits and punctuation become ASCII), trimmed and
case-folded; spaces between the parts are optional. Durations share one grammar, a number
(``0``–``9999`` or a Chinese numeral ``一``…``九十九``, ``两``) and a unit:

* days ``d``/``day``/``days``/``天``;
* weeks ``w``/``wk``/``week``/``weeks``/``周``/``星期``/``个星期``/``礼拜``/``个礼拜`` (7 days);
* months ``m``/``mo``/``mon``/``mth``/``month``/``months``/``个月``;
* years ``y``/``yr``/``year``/``years``/``年`` (12 months); and ``半年`` (6 months).

Expiry dates are absolute (``2026-12-31``, ``2026年12月31日``, ``Dec 31 2027``, ``31 December``),
a month-day (``12-31``, ``12月31日``, ``Dec 31``: the next such day), a day named from today
(``今天``/``today``, ``明天``/``tomorrow``, ``后天``, ``月底``/``end of month`` = this month's
last day, ``下月底``, ``年底``/``end of year``) or a duration from today.

Ambiguities, decided: ``日`` is never a duration unit (``30日`` reads as "the 30th"); ``3月``
(without 个) is 3 months in a *period* but refused as an *expiry* (it could be "March"); a
bare number is a period in months only for 1–24 (``30`` could mean 30 days); ``12.31`` is a
month-day like ``12-31`` and ``12/31``.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from bot.errors import InputError
from bot.models import Period, RenewalRule

MIN_YEAR = 2000
MAX_YEAR = 2100
MAX_PERIOD_MONTHS = 120  # 10 years; the same bounds as Period's fields
MAX_PERIOD_DAYS = 3660
MAX_BARE_MONTHS = 24  # a bare "1"…"24" is months; above that we ask for a unit
MAX_INPUT_LEN = 64  # longer input is refused before any Unicode work
_LEAP_YEAR = 2000  # a month-day that does not exist in a leap year never exists

# unit → (months, days) per unit
_UNITS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("d", "day", "days", "天"), (0, 1)),
    **dict.fromkeys(
        ("w", "wk", "wks", "week", "weeks", "周", "星期", "个星期", "礼拜", "个礼拜"), (0, 7)
    ),
    **dict.fromkeys(("m", "mo", "mos", "mon", "mth", "mths", "month", "months", "个月"), (1, 0)),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years", "年"), (12, 0)),
}
_BARE_MONTH_UNIT = "月"  # only for periods: as an expiry "3月" may mean March
_CN_DIGITS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_HALF_YEAR = "半年"

_NUMBER = r"(?:(?P<digits>[0-9]{1,4})|(?P<cn>[一二两三四五六七八九十]{1,3}))"
_DURATION_RE = re.compile(_NUMBER + r"\s*(?P<unit>[a-z]+|个月|月|个星期|星期|个礼拜|礼拜|周|天|年)")
_BARE_NUMBER_RE = re.compile(r"[0-9]{1,4}")
# Other dashes NFKC leaves alone, used as date separators.
_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2013": "-"})


class _Problem(Exception):
    """Raised inside the parsers; the public function adds the user's text."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_DASHES).strip().casefold()


def _cn_number(text: str) -> int | None:
    """Chinese numerals 1–99 (一, 十, 十二, 二十, 三十五, 两); None if malformed."""
    if "十" not in text:
        return _CN_DIGITS.get(text) if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1 or (tens and tens not in _CN_DIGITS):
        return None
    if ones and ones not in _CN_DIGITS:
        return None
    return _CN_DIGITS.get(tens, 1) * 10 + _CN_DIGITS.get(ones, 0)


def _duration(text: str, *, bare_month: bool) -> tuple[int, int] | None:
    """(months, days) of a duration such as ``3个月`` or ``30 days``, unchecked; None if not one."""
    if text == _HALF_YEAR:
        return 6, 0
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        return None
    unit = m["unit"]
    per_unit = (1, 0) if bare_month and unit == _BARE_MONTH_UNIT else _UNITS.get(unit)
    n = int(m["digits"]) if m["digits"] else _cn_number(m["cn"])
    if per_unit is None or n is None:
        return None
    return n * per_unit[0], n * per_unit[1]


def _period_in_range(months: int, days: int) -> bool:
    return 0 <= months <= MAX_PERIOD_MONTHS and 0 <= days <= MAX_PERIOD_DAYS


# --- expiry forms -------------------------------------------------------------------------


def _make_date(year: int, month: int, day: int) -> date:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _Problem("error.date.out_of_range")
    try:
        return date(year, month, day)
    except ValueError:
        raise _Problem("error.date.invalid") from None


def _full_date(m: re.Match[str], today: date) -> date:
    return _make_date(int(m["y"]), int(m["m"]), int(m["d"]))


def _month_day(m: re.Match[str], today: date) -> date:
    """The next ``month-day`` on or after today; Feb 29 waits for the next leap year."""
    return _next_month_day(int(m["m"]), int(m["d"]), today)


def _next_month_day(month: int, day: int, today: date) -> date:
    """The next ``month-day`` on or after today; Feb 29 waits for the next leap year."""
    try:
        date(_LEAP_YEAR, month, day)
    except ValueError:
        raise _Problem("error.date.invalid") from None
    for year in range(today.year, today.year + 9):  # leap years are at most 8 apart
        try:
            candidate = date(year, month, day)
        except ValueError:  # Feb 29 in a common year
            continue
        if candidate >= today:
            return _make_date(year, month, day)
    raise _Problem("error.date.out_of_range")  # unreachable for real calendars


_MONTH_NAMES = {
    **dict.fromkeys(("jan", "january"), 1),
    **dict.fromkeys(("feb", "february"), 2),
    **dict.fromkeys(("mar", "march"), 3),
    **dict.fromkeys(("apr", "april"), 4),
    **dict.fromkeys(("may",), 5),
    **dict.fromkeys(("jun", "june"), 6),
    **dict.fromkeys(("jul", "july"), 7),
    **dict.fromkeys(("aug", "august"), 8),
    **dict.fromkeys(("sep", "sept", "september"), 9),
    **dict.fromkeys(("oct", "october"), 10),
    **dict.fromkeys(("nov", "november"), 11),
    **dict.fromkeys(("dec", "december"), 12),
}
_MONTH_NAME = r"(?P<mon>" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")\.?"
_DAY_NUMBER = r"(?P<d>[0-9]{1,2})(?:st|nd|rd|th)?"
_OPTIONAL_YEAR = r"(?:\s*,?\s*(?P<y>[0-9]{4}))?"


def _named_month(m: re.Match[str], today: date) -> date:
    """``Dec 31``, ``31 December 2027``: with a year that day, else the next such day."""
    month = _MONTH_NAMES[m["mon"]]
    if m["y"] is not None:
        return _make_date(int(m["y"]), month, int(m["d"]))
    return _next_month_day(month, int(m["d"]), today)


def _month_end(today: date, months_ahead: int = 0) -> date:
    return today.replace(day=1) + relativedelta(months=months_ahead + 1) - timedelta(days=1)


# Days named from today, after normalising (so "Today" and "end of month" are found too).
_NAMED_DAYS: dict[str, Callable[[date], date]] = {
    **dict.fromkeys(("今天", "今日", "today"), lambda today: today),
    **dict.fromkeys(("明天", "明日", "tomorrow"), lambda today: today + timedelta(days=1)),
    **dict.fromkeys(("后天",), lambda today: today + timedelta(days=2)),
    **dict.fromkeys(
        ("月底", "本月底", "这个月底", "月末", "本月末", "end of month", "end of the month"),
        _month_end,
    ),
    **dict.fromkeys(
        ("下月底", "下个月底", "下月末", "下个月末", "end of next month"),
        lambda today: _month_end(today, 1),
    ),
    **dict.fromkeys(
        ("年底", "今年底", "年末", "今年年底", "end of year", "end of the year"),
        lambda today: date(today.year, 12, 31),
    ),
}


def _year_only(m: re.Match[str], today: date) -> date:
    raise _Problem("error.date.unrecognized")  # "2026年": which day? (not 2026 years)


_EXPIRY_FORMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], date], date]], ...] = (
    # 2026-12-31, 2026/12/31, 2026.12.31, 2026-1-5 (one separator throughout)
    (
        re.compile(
            r"(?P<y>[0-9]{4})\s*(?P<sep>[-/.])\s*(?P<m>[0-9]{1,2})\s*(?P=sep)\s*(?P<d>[0-9]{1,2})"
        ),
        _full_date,
    ),
    (re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"), _full_date),  # 20261231
    # 2026年12月31日, 2026年12月31号, 2026年12月31
    (
        re.compile(r"(?P<y>[0-9]{4})\s*年\s*(?P<m>[0-9]{1,2})\s*月\s*(?P<d>[0-9]{1,2})\s*[日号]?"),
        _full_date,
    ),
    # 12月31日, 12月31号, 12月31
    (re.compile(r"(?P<m>[0-9]{1,2})\s*月\s*(?P<d>[0-9]{1,2})\s*[日号]?"), _month_day),
    (re.compile(r"(?P<m>[0-9]{1,2})\s*[-/.]\s*(?P<d>[0-9]{1,2})"), _month_day),  # 12-31, 12/31
    (re.compile(r"[0-9]{4}\s*年"), _year_only),
    # Dec 31, December 31st, Dec. 31, 2027; 31 Dec, 31st of December 2027
    (re.compile(_MONTH_NAME + r"\s*" + _DAY_NUMBER + _OPTIONAL_YEAR), _named_month),
    (re.compile(_DAY_NUMBER + r"\s*(?:of\s+)?" + _MONTH_NAME + _OPTIONAL_YEAR), _named_month),
)


def _expiry(text: str, today: date) -> date:
    named = _NAMED_DAYS.get(re.sub(r"\s+", " ", text))
    if named is not None:
        return named(today)
    for pattern, build in _EXPIRY_FORMS:
        m = pattern.fullmatch(text)
        if m is not None:
            return build(m, today)
    duration = _duration(text, bare_month=False)
    if duration is None:
        raise _Problem("error.date.unrecognized")
    if duration == (0, 0):
        raise _Problem("error.date.zero_length")  # "0天": no length at all, never a renewal
    if not _period_in_range(*duration):
        raise _Problem("error.date.out_of_range")
    expiry = add_period(today, Period(months=duration[0], days=duration[1]))
    if expiry.year > MAX_YEAR:
        raise _Problem("error.date.out_of_range")
    return expiry


def parse_expiry(text: str, today: date) -> date:
    """Parse an expiry date: absolute, month-day (next on or after today), a day named from
    today (``明天``, ``月底``) or a duration.

    A date in the past is returned as is (the caller says "already expired").
    Raises ``InputError`` with ``text``: ``error.date.unrecognized``, ``error.date.zero_length``
    (``0d``, ``0天``: an empty length is refused everywhere), ``error.date.invalid``
    (looks like a date but does not exist, e.g. 2026-02-30), ``error.date.out_of_range`` (year
    outside 2000–2100, or a duration over 10 years).
    """
    if len(text) > MAX_INPUT_LEN:
        raise InputError("error.date.unrecognized", text=text)
    try:
        return _expiry(_normalize(text), today)
    except _Problem as problem:
        raise InputError(problem.key, text=text) from None


MAX_DATE_WORDS = 3  # "Dec 31 2027", "31 December 2027"


def leading_expiry(words: Sequence[str], today: date) -> tuple[date, int]:
    """The expiry that a one-line command's words start with, taking as many words as make one
    (``Dec 31 2027 移动`` → 2027-12-31, 3 words), and how many words it took.

    Raises the ``InputError`` of the first word alone when no prefix is a date.
    """
    if not words:
        raise InputError("error.date.unrecognized", text="")
    for n in range(min(MAX_DATE_WORDS, len(words)), 1, -1):
        with contextlib.suppress(InputError):
            return parse_expiry(" ".join(words[:n]), today), n
    return parse_expiry(words[0], today), 1


# --- periods ------------------------------------------------------------------------------


def parse_period(text: str) -> Period:
    """Parse a renewal or plan length: ``3``, ``3m``, ``3个月``, ``三个月``, ``半年``, ``30天``.

    Raises ``InputError`` with ``text``: ``error.period.out_of_range`` (zero, or over 10 years:
    more than 120 months or 3660 days), ``error.period.unrecognized``.
    """
    if len(text) > MAX_INPUT_LEN:
        raise InputError("error.period.unrecognized", text=text)
    normal = _normalize(text)
    if _BARE_NUMBER_RE.fullmatch(normal):
        months = int(normal)
        if months == 0:
            raise InputError("error.period.out_of_range", text=text)
        if months > MAX_BARE_MONTHS:
            raise InputError("error.period.unrecognized", text=text)
        return Period(months=months)
    duration = _duration(normal, bare_month=True)
    if duration is None:
        raise InputError("error.period.unrecognized", text=text)
    months, days = duration
    if (months, days) == (0, 0) or not _period_in_range(months, days):
        raise InputError("error.period.out_of_range", text=text)
    return Period(months=months, days=days)


def add_period(start: date, period: Period) -> date:
    """Calendar arithmetic: months first (clamped to the month's end: Jan 31 + 1 month = Feb
    28/29), then days."""
    return start + relativedelta(months=period.months) + timedelta(days=period.days)


def renewal_expiry(old_expiry: date, period: Period, today: date) -> tuple[date, RenewalRule]:
    """The new expiry after paying for ``period``.

    Still valid (``old_expiry >= today``, so expiring today counts): the period extends the old
    expiry (EXTEND). Already expired: it starts today (RESTART), the lapsed days are not paid.
    """
    if old_expiry >= today:
        return add_period(old_expiry, period), RenewalRule.EXTEND
    return add_period(today, period), RenewalRule.RESTART
