"""Amounts of money in integer fen (1 CNY = 100 fen): parsing what users type, formatting.

Parsing is exact (``Decimal``, never float). Accepted, after NFKC (full-width digits and
"￥") and case folding, with optional spaces between the parts:

* a number, optionally with thousands separators: ``12``, ``12.5``, ``1,234.50``;
* a currency prefix ``¥``/``RMB``/``CNY`` and/or a suffix ``元``/``块``/``块钱``/``圆``/
  ``RMB``/``CNY``/``yuan``: ``¥12.50``, ``RMB 30``, ``30块钱``;
* Chinese units: ``12元5角``, ``12块5毛``, ``12元5角3分``, ``5毛``, ``8分``, and the spoken
  ``12块5`` (= ¥12.50);
* one sign, before or after the prefix: ``-12``, ``-¥12``, ``¥-12`` (negative → an error).

Sub-fen digits are an error only when non-zero: ``12.500`` is ¥12.50, ``12.505`` is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal

from bot.errors import InputError, excerpt

FEN_PER_YUAN = 100
MAX_AMOUNT_FEN = 100_000 * FEN_PER_YUAN  # ¥100,000.00 is accepted, a fen more is not
MAX_INPUT_LEN = 64  # longer input is refused before any Unicode work
# Enough digits for any input we accept, so multiplying never rounds (the default context
# keeps 28 digits and would turn 1.000…0001 into a whole number of fen).
_EXACT = Context(prec=4 * MAX_INPUT_LEN)

# Currency prefix/suffix and the sign around an amount; the body is matched by _FORMS.
_AFFIX_RE = re.compile(
    r"(?P<sign1>[-+]?)\s*(?:¥|rmb|cny)?\s*(?P<sign2>[-+]?)\s*"
    r"(?P<body>.*?)"
    r"\s*(?:块钱|元|块|圆|rmb|cny|yuan)?"
)
_DECIMAL_RE = re.compile(r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]+))?")
_UNITS_RE = re.compile(
    r"(?:(?P<yuan>[0-9]+)\s*[元块])?\s*(?:(?P<jiao>[0-9])\s*[角毛])?\s*(?:(?P<fen>[0-9])\s*分)?"
)
_SPOKEN_RE = re.compile(r"(?P<yuan>[0-9]+)\s*[元块]\s*(?P<jiao>[0-9])")  # 12块5 = ¥12.50
# Other minus signs NFKC leaves alone.
_MINUS = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2013": "-"})


def _from_decimal(m: re.Match[str]) -> Decimal:
    return Decimal(m["int"].replace(",", "") + "." + (m["frac"] or "0"))


def _from_units(m: re.Match[str]) -> Decimal | None:
    parts = m.groupdict()
    yuan, jiao, fen = (parts.get(unit) for unit in ("yuan", "jiao", "fen"))
    if yuan is None and jiao is None and fen is None:
        return None  # _UNITS_RE also matches the empty string
    return Decimal(f"{yuan or 0}.{jiao or 0}{fen or 0}")  # built from text: exact


# Tried in order on the body (prefix, suffix and sign removed); the first match wins.
_FORMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Decimal | None]], ...] = (
    (_DECIMAL_RE, _from_decimal),
    (_SPOKEN_RE, _from_units),
    (_UNITS_RE, _from_units),
)


def _parse_body(body: str) -> Decimal | None:
    for pattern, convert in _FORMS:
        m = pattern.fullmatch(body)
        if m:
            value = convert(m)
            if value is not None:
                return value
    return None


def parse_amount(text: str) -> int:
    """Parse an amount a user typed into fen.

    Raises ``InputError``: ``error.money.unrecognized`` (text), ``error.money.negative``,
    ``error.money.precision`` (a non-zero digit past the fen), ``error.money.too_large`` (max).
    """
    unrecognized = InputError("error.money.unrecognized", text=excerpt(text))
    if len(text) > MAX_INPUT_LEN:
        raise unrecognized
    normal = unicodedata.normalize("NFKC", text).translate(_MINUS).strip().casefold()
    affix = _AFFIX_RE.fullmatch(normal)
    if affix is None or (affix["sign1"] and affix["sign2"]):
        raise unrecognized
    value = _parse_body(affix["body"])
    if value is None:
        raise unrecognized
    if "-" in (affix["sign1"], affix["sign2"]) and value != 0:
        raise InputError("error.money.negative")
    fen = _EXACT.multiply(value, Decimal(FEN_PER_YUAN))
    if fen != fen.to_integral_value():
        raise InputError("error.money.precision")
    if fen > MAX_AMOUNT_FEN:
        raise InputError("error.money.too_large", max=format_fen(MAX_AMOUNT_FEN))
    return int(fen)


def round_fen(amount: Decimal) -> int:
    """An exact amount of fen (e.g. a price per month) to a whole fen, half up: ¥50 a year is
    ¥4.17 a month (416.67 fen), never truncated to ¥4.16."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_fen(fen: int) -> str:
    """``¥12.50``, ``¥0.00``, ``¥12,345.60`` (thousands separated), negative ``-¥3.00``."""
    sign = "-" if fen < 0 else ""
    yuan, rest = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}¥{yuan:,}.{rest:02d}"
