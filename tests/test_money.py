"""bot.money: parsing amounts into fen and formatting fen."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import InputError
from bot.money import MAX_AMOUNT_FEN, MAX_INPUT_LEN, format_fen, parse_amount, round_fen


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_amount(text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12", 1200),
        ("12.5", 1250),
        ("12.50", 1250),
        ("0.05", 5),
        ("0", 0),
        ("-0", 0),
        ("+5", 500),
        ("¥12.50", 1250),
        ("￥12.5", 1250),
        ("¥ 12.5", 1250),
        ("12.5元", 1250),
        ("12.5 元", 1250),
        ("30块", 3000),
        ("30块钱", 3000),
        ("30圆", 3000),
        ("RMB 30", 3000),
        ("rmb30", 3000),
        ("CNY30", 3000),
        ("30 CNY", 3000),
        ("30 yuan", 3000),
        ("  12  ", 1200),
        ("１２．５", 1250),  # full-width digits and point
        ("￥１２", 1200),
        ("1,234.50", 123450),
        ("¥12,345.60", 1234560),
        ("12.500", 1250),  # zeros past the fen are harmless
        ("12元5角", 1250),
        ("12元5角3分", 1253),
        ("12块5毛", 1250),
        ("12元3分", 1203),
        ("12 元 5 角", 1250),
        ("5毛", 50),
        ("8分", 8),
        ("12块5", 1250),  # spoken: 十二块五
        ("12元5", 1250),
        ("100000", MAX_AMOUNT_FEN),
        ("¥100,000.00", MAX_AMOUNT_FEN),
    ],
)
def test_parse_amount(text: str, fen: int) -> None:
    assert parse_amount(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "¥",
        "元",
        "abc",
        "12 5",  # a space is not a separator
        "1,23",  # a European decimal comma
        "12,34.5",
        "12..5",
        "12.",
        ".5",
        "-+3",
        "--3",
        "12元55",
        "五块",  # Chinese numerals are not supported for money
        "$12",
        "١٢",  # Arabic-Indic digits
        "1e3",
        "NaN",
        "Infinity",
        "1" * (MAX_INPUT_LEN + 1),
    ],
)
def test_unrecognized(text: str) -> None:
    error = _error(text)
    assert error.key == "error.money.unrecognized"
    assert error.params == {"text": text.strip()[:32] + ("…" if len(text.strip()) > 32 else "")}


@pytest.mark.parametrize("text", ["-3", "-¥3.00", "¥-3", "−3", "－3元", "-0.01"])
def test_negative(text: str) -> None:
    error = _error(text)
    assert error.key == "error.money.negative"
    assert error.params == {}


@pytest.mark.parametrize("text", ["12.505", "0.001", "1.00000000000000000000000000001"])
def test_precision(text: str) -> None:
    error = _error(text)
    assert error.key == "error.money.precision"
    assert error.params == {}


@pytest.mark.parametrize("text", ["100000.01", "100001", "¥1,000,000", "9" * 40])
def test_too_large(text: str) -> None:
    error = _error(text)
    assert error.key == "error.money.too_large"
    assert error.params == {"max": "¥100,000.00"}


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "¥0.00"),
        (5, "¥0.05"),
        (1250, "¥12.50"),
        (123400, "¥1,234.00"),
        (1234560, "¥12,345.60"),
        (MAX_AMOUNT_FEN, "¥100,000.00"),
        (-300, "-¥3.00"),
        (-5, "-¥0.05"),
    ],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


# --- properties -----------------------------------------------------------------------------


@given(st.text())
def test_parse_amount_raises_only_input_error(text: str) -> None:
    try:
        fen = parse_amount(text)
    except InputError:
        return
    assert 0 <= fen <= MAX_AMOUNT_FEN


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_FEN))
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_amount(format_fen(fen)) == fen


@given(st.integers(min_value=-MAX_AMOUNT_FEN, max_value=-1))
def test_formatted_negative_is_refused(fen: int) -> None:
    assert _error(format_fen(fen)).key == "error.money.negative"


@given(st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False))
def test_plain_decimal_is_exact(amount: Decimal) -> None:
    assert parse_amount(f"{amount:f}") == int(amount * 100)


def test_round_fen_is_half_up() -> None:
    assert round_fen(Decimal(5000) / 12) == 417
    assert round_fen(Decimal("416.5")) == 417
    assert round_fen(Decimal("416.49")) == 416
    assert round_fen(Decimal(400)) == 400
