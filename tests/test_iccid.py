"""bot.iccid: normalising, validating, masking and suffix-matching ICCIDs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn

from bot.errors import InputError
from bot.iccid import (
    MASK_PREFIX,
    MAX_INPUT_LEN,
    IccidCheck,
    carrier_from_iccid,
    check_iccid,
    mask_iccid,
    matches_suffix,
    normalize_iccid,
)
from bot.models import Carrier

BODY_19 = "8986011234567890123"  # a China Unicom-looking ICCID without its check digit
VALID_20 = BODY_19 + luhn.calc_check_digit(BODY_19)
BODY_18 = BODY_19[:-1]
VALID_19 = BODY_18 + luhn.calc_check_digit(BODY_18)
WRONG_CHECK_20 = BODY_19 + str((int(VALID_20[-1]) + 1) % 10)
LETTERS_20 = "898604A1234567890123"


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        check_iccid(text)
    return caught.value


# --- normalize_iccid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8986 0112 3456 7890 1237", "89860112345678901237"),
        ("8986-0112-3456-7890-1237", "89860112345678901237"),
        ("8986–0112—3456－7890‐1237", "89860112345678901237"),  # en, em, full-width, hyphen
        ("８９８６０１１２３４５６７８９０１２３７", "89860112345678901237"),  # full-width digits
        ("\t8986\u00a00112\u30003456\u200b7890\n1237 ", "89860112345678901237"),
        ("898604a1234567890123", "898604A1234567890123"),
        ("８９８６０４ａ１２３", "898604A123"),  # full-width letters
        ("", ""),
    ],
)
def test_normalize_iccid(text: str, expected: str) -> None:
    assert normalize_iccid(text) == expected


def test_normalize_does_not_invent_ascii_letters() -> None:
    # str.upper() would turn "ß" into "SS"; only ASCII is upper-cased.
    assert normalize_iccid("89ß") == "89ß"


# --- check_iccid ----------------------------------------------------------------------------


def test_valid_twenty_digits() -> None:
    assert check_iccid(VALID_20) == IccidCheck(iccid=VALID_20, luhn_ok=True)


def test_valid_nineteen_digits() -> None:
    assert check_iccid(VALID_19) == IccidCheck(iccid=VALID_19, luhn_ok=True)


def test_valid_after_normalising() -> None:
    spaced = " ".join(VALID_20[i : i + 4] for i in range(0, 20, 4))
    assert check_iccid(spaced) == IccidCheck(iccid=VALID_20, luhn_ok=True)


def test_luhn_mismatch_is_not_an_error() -> None:
    assert check_iccid(WRONG_CHECK_20) == IccidCheck(iccid=WRONG_CHECK_20, luhn_ok=False)


def test_letters_cannot_be_luhn_checked() -> None:
    assert check_iccid(LETTERS_20.lower()) == IccidCheck(iccid=LETTERS_20, luhn_ok=None)


@pytest.mark.parametrize("text", ["", "   ", " - – — ", "\u200b"])
def test_empty(text: str) -> None:
    error = _error(text)
    assert error.key == "error.iccid.empty"
    assert error.params == {}


@pytest.mark.parametrize("text", [BODY_18, VALID_20 + "1", "89", "13800138000"])
def test_length(text: str) -> None:
    error = _error(text)
    assert error.key == "error.iccid.length"
    assert error.params == {"length": len(text)}


def test_length_counts_the_normalised_iccid() -> None:
    assert _error("8986 0112 3456").params == {"length": 12}


def test_overlong_input_is_refused_early() -> None:
    text = "8" * (MAX_INPUT_LEN + 1)
    error = _error(text)
    assert error.key == "error.iccid.length"
    assert error.params == {"length": MAX_INPUT_LEN + 1}


def test_prefix() -> None:
    error = _error("1" + VALID_20[1:])
    assert error.key == "error.iccid.prefix"
    assert error.params == {}


@pytest.mark.parametrize(
    ("text", "char"),
    [
        ("8986.0112345678901237", "."),
        ("8986#01123456789012#7", "#"),
        ("卡号8986011234567890123", "卡"),
        ("89860112345678901237ß", "ß"),
    ],
)
def test_chars_reports_the_first_bad_character(text: str, char: str) -> None:
    error = _error(text)
    assert error.key == "error.iccid.chars"
    assert error.params == {"char": char}


# --- mask_iccid / matches_suffix ------------------------------------------------------------


def test_mask_shows_only_the_last_six() -> None:
    assert mask_iccid(VALID_20) == MASK_PREFIX + VALID_20[-6:]
    assert mask_iccid("89860112345678901237") == "…901237"


def test_masks_line_up() -> None:
    assert len(mask_iccid(VALID_19)) == len(mask_iccid(VALID_20)) == len(mask_iccid(LETTERS_20))


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("1237", True),
        ("01237", True),
        ("９０１２３７", True),  # full-width
        ("90 1237", True),
        (VALID_20, True),
        ("237", False),  # fewer than 4 characters
        ("1238", False),
        ("0" + VALID_20, False),  # longer than the ICCID
        ("", False),
    ],
)
def test_matches_suffix(fragment: str, expected: bool) -> None:
    assert matches_suffix(VALID_20, fragment) is expected


def test_matches_suffix_with_letters_is_case_insensitive() -> None:
    assert matches_suffix("898604A12345678901BC", "01bc")


# --- properties -----------------------------------------------------------------------------


@given(st.text())
def test_check_iccid_raises_only_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        check_iccid(text)


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_iccid(text)
    assert normalize_iccid(once) == once


@given(st.text(alphabet="0123456789ABCDEFXYZ -", max_size=30))
def test_never_accepts_a_wrong_iccid(text: str) -> None:
    try:
        result = check_iccid(text)
    except InputError:
        return
    assert 19 <= len(result.iccid) <= 20
    assert result.iccid.startswith("89")
    assert result.iccid.isascii()
    assert result.iccid.isalnum()
    assert result.luhn_ok is (luhn.is_valid(result.iccid) if result.iccid.isdigit() else None)


@given(st.text(alphabet="0123456789", max_size=40).filter(lambda s: len(s) not in (17, 18)))
def test_wrong_length_is_refused(tail: str) -> None:
    assert _error("89" + tail).key == "error.iccid.length"


@given(st.from_regex(r"[0-9A-Z]{19,20}", fullmatch=True).filter(lambda s: s[:2] != "89"))
def test_wrong_prefix_is_refused(text: str) -> None:
    assert _error(text).key == "error.iccid.prefix"


# --- look-alike letters and the issuer prefix -------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("8986OO1234567890123l", "89860012345678901231"),
        ("8986oo12345678901231", "89860012345678901231"),
        ("8986001234567890I231", "89860012345678901231"),
        ("89860012345678901231", None),  # digits already
        ("898604A1234567890OO1", None),  # a real letter besides: left alone
    ],
)
def test_lookalike_digits(typed: str, digits: str | None) -> None:
    assert check_iccid(typed).digits_suggestion == digits


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        ("89860012345678901231", Carrier.CHINA_MOBILE),
        ("89860212345678901231", Carrier.CHINA_MOBILE),
        ("89860412345678901231", Carrier.CHINA_MOBILE),
        ("89860712345678901231", Carrier.CHINA_MOBILE),
        ("89860812345678901231", Carrier.CHINA_MOBILE),
        ("89860112345678901231", Carrier.CHINA_UNICOM),
        ("89860612345678901231", Carrier.CHINA_UNICOM),
        ("89860912345678901231", Carrier.CHINA_UNICOM),
        ("89860312345678901231", Carrier.CHINA_TELECOM),
        ("89860512345678901231", Carrier.CHINA_TELECOM),
        ("89861112345678901231", Carrier.CHINA_TELECOM),
        ("8986 1112 3456 7890 1231", Carrier.CHINA_TELECOM),
        ("89861012345678901231", None),
        ("89014104212345678901", None),
        ("", None),
    ],
)
def test_carrier_from_iccid(number: str, carrier: Carrier | None) -> None:
    assert carrier_from_iccid(number) is carrier
