"""Reading reminder settings that users type: a send time, a list of days, an overdue window.

Input is NFKC-normalised first (full-width ``９：３０`` and ``，`` become ASCII) and case-folded.

* time: ``9``, ``9:00``, ``09:30``, ``9.30``, ``0930``, ``21点``, ``9点半``, ``9点15分``,
  ``21时``, ``上午9点``/``早上9点`` (as is), ``下午3点``/``晚上9点`` (+12 h), ``9am``, ``9:30 pm``;
* days: numbers separated by commas, spaces, ``、`` or ``/``: ``30,7,3,1,0``, ``30 7 3``,
  ``30、7、3``; an optional ``天`` after each; 0 is the expiry day itself;
* overdue window: one number 0–365, optionally with ``天``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import time

from bot.errors import InputError
from bot.reminders.models import MAX_DAYS_BEFORE, MAX_OVERDUE_DAILY_DAYS, MAX_THRESHOLDS

MAX_INPUT_LEN = 64

_MORNING = ("凌晨", "早上", "早晨", "上午", "早", "中午")  # 中午12点 = 12:00, 中午1点 = 13:00
_EVENING = ("下午", "傍晚", "晚上", "晚", "夜里", "夜间")
_TIME_RE = re.compile(
    r"(?P<prefix>凌晨|早上|早晨|上午|早|中午|下午|傍晚|晚上|晚|夜里|夜间)?\s*"
    r"(?:"
    r"(?P<h1>\d{1,2})\s*[:.]\s*(?P<m1>\d{2})"  # 9:30, 9.30
    r"|(?P<h2>\d{2})(?P<m2>\d{2})"  # 0930
    r"|(?P<h3>\d{1,2})\s*[点时]\s*(?:(?P<half>半)|(?P<m3>\d{1,2})\s*分?)?"  # 9点, 9点半, 9点15分
    r"|(?P<h4>\d{1,2})"  # 9
    r")\s*(?P<suffix>am|pm|a\.m\.|p\.m\.)?"
)
_DAY_SEPARATORS = re.compile(r"[\s,、/;]+")
_DAY_RE = re.compile(r"(\d{1,3})\s*天?")


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _hour_minute(m: re.Match[str]) -> tuple[int, int]:
    for hour_group, minute_group in (("h1", "m1"), ("h2", "m2"), ("h3", "m3"), ("h4", None)):
        if m[hour_group] is not None:
            minute = m[minute_group] if minute_group else None
            if m["half"]:
                return int(m[hour_group]), 30
            return int(m[hour_group]), int(minute) if minute else 0
    raise AssertionError("the pattern always matches an hour")


def parse_send_time(text: str) -> time:
    """A time of day to send the digest. Raises ``InputError("reminder_settings.bad_time")``."""
    problem = InputError("reminder_settings.bad_time", text=text)
    if len(text) > MAX_INPUT_LEN:
        raise problem
    m = _TIME_RE.fullmatch(_normalize(text))
    if m is None:
        raise problem
    hour, minute = _hour_minute(m)
    prefix, suffix = m["prefix"], (m["suffix"] or "").replace(".", "")
    if prefix and suffix:
        raise problem
    if prefix in _EVENING or suffix == "pm" or (prefix == "中午" and hour < 11):
        if not 1 <= hour <= 12:
            raise problem
        if hour < 12:
            hour += 12
        elif prefix in _EVENING:
            hour = 0  # 晚上12点 is midnight; 12pm is noon
    elif prefix in _MORNING or suffix == "am":
        if hour > 12:
            raise problem
        if suffix == "am" and hour == 12:
            hour = 0  # 12am is midnight
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise problem
    return time(hour, minute)


def parse_days_before(text: str) -> tuple[int, ...]:
    """Days before expiry to remind, most first. Raises
    ``InputError("reminder_settings.bad_days")``."""
    problem = InputError(
        "reminder_settings.bad_days", text=text, max=MAX_DAYS_BEFORE, count=MAX_THRESHOLDS
    )
    if len(text) > MAX_INPUT_LEN:
        raise problem
    pieces = [piece for piece in _DAY_SEPARATORS.split(_normalize(text)) if piece]
    days: set[int] = set()
    for piece in pieces:
        m = _DAY_RE.fullmatch(piece)
        if m is None:
            raise problem
        days.add(int(m[1]))
    if not 1 <= len(days) <= MAX_THRESHOLDS or max(days) > MAX_DAYS_BEFORE:
        raise problem
    return tuple(sorted(days, reverse=True))


def parse_overdue_days(text: str) -> int:
    """Days to keep reminding after expiry.

    Raises ``InputError("reminder_settings.bad_overdue")``.
    """
    problem = InputError("reminder_settings.bad_overdue", text=text, max=MAX_OVERDUE_DAILY_DAYS)
    if len(text) > MAX_INPUT_LEN:
        raise problem
    m = _DAY_RE.fullmatch(_normalize(text))
    if m is None or int(m[1]) > MAX_OVERDUE_DAILY_DAYS:
        raise problem
    return int(m[1])
