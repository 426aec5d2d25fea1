"""ICCIDs (the number printed on a SIM card): normalising, validating, masking, matching.

An ICCID is 19–20 characters and starts with "89" (the telecom industry prefix). Chinese IoT
cards sometimes carry letters (e.g. ``898604A...``); those cannot be Luhn-checked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from stdnum import luhn

from bot.errors import InputError
from bot.models import Carrier

ICCID_MIN_LEN = 19
ICCID_MAX_LEN = 20
ICCID_PREFIX = "89"
MAX_INPUT_LEN = 64  # longer input is rejected before any Unicode work
MIN_SUFFIX_LEN = 4  # "/renew 1234 3m": at least this many trailing characters
MASK_PREFIX = "…"  # one fixed character, so masked ICCIDs line up in a list
MASK_VISIBLE = 6

# Whitespace of every kind (``\s`` is Unicode-aware), zero-width characters (invisible but
# common in pasted text) and dashes people use to group digits. NFKC already maps the
# full-width "－" and the small "﹣" to "-".
_SEPARATORS_RE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff\-\u2010-\u2015\u2212]+")
_BAD_CHAR_RE = re.compile(r"[^0-9A-Z]")
_MAX_ROUNDS = 8
_LOWER_ASCII = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


# Letters people type for the digits they look like: O for 0, l or I for 1 (after upper-casing).
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "L": "1", "I": "1"})

# The issuer digits after "8986" (China) name the carrier; they follow the carriers' mobile
# network codes under MCC 460 (ITU-T E.212, as listed in ITU Operational Bulletins and in
# Wikipedia's "Mobile network codes in ITU region 4xx (Asia)": 00/02/04/07/08 China Mobile,
# 01/06/09 China Unicom, 03/05/11 China Telecom). The ICCID prefixes 898600 (移动),
# 898601 (联通) and 898603 (电信) are the ones printed on most cards, e.g.
# https://kxting.com/article/20221028/604147.html ("(898600)是中国移动的代号(898601)是中国联通的
# 代号(898603)是中国电信的代号").
_CARRIER_BY_PREFIX: dict[str, Carrier] = {
    **dict.fromkeys(("898600", "898602", "898604", "898607", "898608"), Carrier.CHINA_MOBILE),
    **dict.fromkeys(("898601", "898606", "898609"), Carrier.CHINA_UNICOM),
    **dict.fromkeys(("898603", "898605", "898611"), Carrier.CHINA_TELECOM),
}
_PREFIX_LEN = 6


@dataclass(frozen=True)
class IccidCheck:
    iccid: str  # normalised
    luhn_ok: bool | None  # None when the ICCID contains letters (no Luhn check possible)
    # The all-digit ICCID meant when letters that look like digits (O, l, I) were typed for
    # them, e.g. "8986OO12…" → "89860012…"; None when there are none (or other letters too).
    digits_suggestion: str | None = None


def _normalize_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Upper-case ASCII only: str.upper() turns e.g. "ß" into "SS", inventing valid characters.
    return _SEPARATORS_RE.sub("", text).translate(_LOWER_ASCII)


def normalize_iccid(text: str) -> str:
    """NFKC (full-width → ASCII), drop whitespace, zero-width characters and dashes, upper-case.

    Removing a character or changing case can let NFKC compose what is left ("i" + U+0307 →
    "İ"), so repeat until nothing changes; this is what makes the function idempotent. Rounds
    after the first can only compose or reorder, so it settles in one or two; the cap is a guard.
    """
    current = _normalize_once(text)
    for _ in range(_MAX_ROUNDS):
        following = _normalize_once(current)
        if following == current:
            break
        current = following
    return current


def check_iccid(text: str) -> IccidCheck:
    """Validate what a user typed as an ICCID.

    Raises ``InputError`` (checked in this order): ``error.iccid.length`` for input over
    ``MAX_INPUT_LEN`` characters, ``error.iccid.empty``, ``error.iccid.chars``,
    ``error.iccid.length``, ``error.iccid.prefix``. A wrong Luhn check digit is not an error:
    ``luhn_ok`` is False and the caller asks the user to confirm.
    """
    if len(text) > MAX_INPUT_LEN:
        raise InputError("error.iccid.length", length=len(text))
    iccid = normalize_iccid(text)
    if not iccid:
        raise InputError("error.iccid.empty")
    bad = _BAD_CHAR_RE.search(iccid)
    if bad:
        raise InputError("error.iccid.chars", char=bad.group())
    if not ICCID_MIN_LEN <= len(iccid) <= ICCID_MAX_LEN:
        raise InputError("error.iccid.length", length=len(iccid))
    if not iccid.startswith(ICCID_PREFIX):
        raise InputError("error.iccid.prefix")
    luhn_ok = luhn.is_valid(iccid) if iccid.isdigit() else None
    return IccidCheck(iccid=iccid, luhn_ok=luhn_ok, digits_suggestion=lookalike_digits(iccid))


def lookalike_digits(iccid: str) -> str | None:
    """The ICCID with O read as 0 and l/I as 1, when that makes it all digits; else None.

    A card whose only letters are these is almost always a misread number; cards with real
    letters (``898604A…``) have others too and are left alone."""
    if iccid.isdigit():
        return None
    fixed = iccid.translate(_LOOKALIKE_DIGITS)
    return fixed if fixed.isdigit() else None


def carrier_from_iccid(iccid: str) -> Carrier | None:
    """The carrier the issuer prefix names (898600 → China Mobile…), or None if unknown."""
    return _CARRIER_BY_PREFIX.get(normalize_iccid(iccid[:MAX_INPUT_LEN])[:_PREFIX_LEN])


def mask_iccid(iccid: str) -> str:
    """For group chats: ``"…"`` plus the last 6 characters, e.g. ``"…123456"`` (7 characters)."""
    return MASK_PREFIX + iccid[-MASK_VISIBLE:]


def shown_iccid(iccid: str, is_group: bool) -> str:
    """An ICCID as a chat may see it: masked in groups (the one rule, for every screen and
    button), in full in private chats."""
    return mask_iccid(iccid) if is_group else iccid


def shown_lookalikes(typed: str, digits: str, is_group: bool) -> tuple[str, str]:
    """A look-alike ICCID and its digits version, as a chat may see them side by side.

    In groups the last 6 characters alone would often read the same twice ("…901238" and
    "…901238"), hiding the letters the warning is about: there both are shown from the first
    character that differs. The person typed it into the group, so nothing new is revealed.
    """
    if not is_group:
        return typed, digits
    first = next((i for i, (a, b) in enumerate(zip(typed, digits, strict=False)) if a != b), 0)
    keep = max(len(typed) - first, MASK_VISIBLE)
    return MASK_PREFIX + typed[-keep:], MASK_PREFIX + digits[-keep:]


def matches_suffix(iccid: str, fragment: str) -> bool:
    """True if ``fragment`` (normalised, at least ``MIN_SUFFIX_LEN`` long) ends ``iccid``."""
    if len(fragment) > MAX_INPUT_LEN:
        return False
    wanted = normalize_iccid(fragment)
    return len(wanted) >= MIN_SUFFIX_LEN and normalize_iccid(iccid).endswith(wanted)
