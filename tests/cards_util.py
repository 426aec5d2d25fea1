"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

from stdnum import luhn


def iccid(n: int, prefix: str = "8986001") -> str:
    """A valid 20-digit ICCID (correct Luhn check digit) ending in ``n``'s digits."""
    body = f"{prefix}{n:012d}"
    return body + luhn.calc_check_digit(body)


def bad_luhn(n: int) -> str:
    good = iccid(n)
    return good[:-1] + str((int(good[-1]) + 1) % 10)
