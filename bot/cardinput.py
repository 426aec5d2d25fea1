"""Reading the free-text parts of a card: carrier names, plans and labels as merchants type them."""

from __future__ import annotations

import unicodedata
from datetime import date

from bot.dates import parse_expiry, parse_period
from bot.errors import InputError
from bot.models import Carrier, Period
from bot.money import parse_amount

MAX_LABEL_LEN = 64
MAX_NOTE_LEN = 500
CLEAR_WORDS = frozenset({"-", "—", "无", "没有", "清空", "none", "clear", "skip", "跳过"})

_CARRIER_NAMES = {
    Carrier.CHINA_MOBILE: ("中国移动", "移动", "cmcc", "mobile", "chinamobile", "china mobile"),
    Carrier.CHINA_UNICOM: ("中国联通", "联通", "cucc", "unicom", "chinaunicom", "china unicom"),
    Carrier.CHINA_TELECOM: ("中国电信", "电信", "ctcc", "telecom", "chinatelecom", "china telecom"),
    Carrier.OTHER: ("其他", "其它", "other"),
}
_CARRIER_BY_NAME = {name: carrier for carrier, names in _CARRIER_NAMES.items() for name in names}


def parse_carrier(text: str) -> Carrier | None:
    """The carrier a word names (中国移动, 移动, CMCC, mobile…), or None if it names none."""
    return _CARRIER_BY_NAME.get(unicodedata.normalize("NFKC", text).strip().lower())


def is_clear_word(text: str) -> bool:
    """'-', '无', 'skip'…: the user wants the optional field left empty."""
    return unicodedata.normalize("NFKC", text).strip().lower() in CLEAR_WORDS


def clean_text(text: str, *, max_len: int, key: str) -> str | None:
    """A label or note as typed (kept verbatim, trimmed); None when the user cleared it."""
    text = text.strip()
    if not text or is_clear_word(text):
        return None
    if any(unicodedata.category(ch) == "Cc" for ch in text if ch not in "\n\t"):
        raise InputError("error.text.control")
    if len(text) > max_len:
        raise InputError(key, max=max_len)
    return text


def _plan_words(words: list[str]) -> tuple[Period, int | None, str] | None:
    """(period, price, the period's text) when the words read as a plan; None if no prefix is
    a period. Raises the price's ``InputError`` when the rest is not an amount."""
    # the period may itself contain a space ("3 个月"): try the longest prefix that parses
    for split in range(len(words), 0, -1):
        period_text = " ".join(words[:split])
        try:
            period = parse_period(period_text)
        except InputError:
            continue
        rest = " ".join(words[split:])
        return period, parse_amount(rest) if rest else None, period_text
    return None


def parse_plan(text: str) -> tuple[Period, int | None]:
    """'3个月 30元', '12m 120', '1年' → (period, price in fen or None)."""
    words = unicodedata.normalize("NFKC", text).split()
    if not words:
        raise InputError("error.period.unrecognized", text=text)
    parsed = _plan_words(words)
    if parsed is None:
        raise InputError("error.plan.unrecognized", text=text)
    return parsed[0], parsed[1]


def parse_expiry_change(text: str, today: date) -> Period | date:
    """A new expiry for ``/edit``: a length (``3个月``, ``1年``), which counts from the card's
    current expiry as a renewal does, or a date (``2027-06-30``), taken as given.

    Raises the period's ``InputError`` when the text is neither (``0天`` stays a bad period)."""
    try:
        return parse_period(text)
    except InputError as period_error:
        try:
            return parse_expiry(text, today)
        except InputError as date_error:
            if period_error.key == "error.period.unrecognized":
                raise date_error from None
            raise period_error from None


MAX_PLAN_WORDS = 3  # "3个月 30元", "3 个月 30"


def split_trailing_plan(words: list[str]) -> tuple[list[str], Period | None, int | None]:
    """``["收银台1", "3个月", "30元"]`` → ``(["收银台1"], 3 months, 3000)``: the label's words and
    the plan typed after them, when the last one to three words read as a plan whose period
    has a unit (a bare ``2`` ends many labels and is left to them)."""
    for start in range(max(0, len(words) - MAX_PLAN_WORDS), len(words)):
        try:
            parsed = _plan_words(unicodedata.normalize("NFKC", " ".join(words[start:])).split())
        except InputError:  # a period, then something that is no price: part of the label
            continue
        if parsed is not None and not parsed[2].isdigit():
            return words[:start], parsed[0], parsed[1]
    return words, None, None
