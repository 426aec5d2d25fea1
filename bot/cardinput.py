"""Reading the free-text parts of a card: carrier names, plans and labels as merchants type them."""

from __future__ import annotations

import unicodedata

from bot.dates import parse_period
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


def parse_plan(text: str) -> tuple[Period, int | None]:
    """'3个月 30元', '12m 120', '1年' → (period, price in fen or None)."""
    words = unicodedata.normalize("NFKC", text).split()
    if not words:
        raise InputError("error.period.unrecognized", text=text)
    # the period may itself contain a space ("3 个月"): try the longest prefix that parses
    for split in range(len(words), 0, -1):
        try:
            period = parse_period(" ".join(words[:split]))
        except InputError:
            continue
        rest = " ".join(words[split:])
        return period, parse_amount(rest) if rest else None
    raise InputError("error.plan.unrecognized", text=text)
