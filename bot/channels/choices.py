"""Choices offered as lettered lines, for channels whose screens hold fewer buttons than ours.

Letters, not numbers: the same screen often asks for a typed number too (a price, a number of
days, a time such as "7"), and a typed number must never press a choice. Up to 26 choices are
A–Z; more (a digest of many cards) AA, AB, …, and then only two letters answer them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_LETTERS = string.ascii_uppercase
_TOKEN = re.compile(r"\s*([A-Za-z]{1,2})\s*[.。、]?\s*")
MAX_CHOICES = len(_LETTERS) ** 2  # AA…ZZ


def code(index: int, count: int) -> str:
    """The letters of choice ``index`` (0-based) among ``count``."""
    if count <= len(_LETTERS):
        return _LETTERS[index]
    return _LETTERS[index // len(_LETTERS)] + _LETTERS[index % len(_LETTERS)]


def lines(labels: Sequence[str]) -> list[str]:
    """``A. label`` per choice."""
    return [f"{code(i, len(labels))}. {label}" for i, label in enumerate(labels)]


def index_of(text: str, count: int) -> int | None:
    """The choice a typed answer names (0-based), None if it names none (it is then text for
    the conversation: "ok" among three choices is not a choice)."""
    match = _TOKEN.fullmatch(text)
    if match is None or count <= 0:
        return None
    token = match.group(1).upper()
    for index in range(min(count, MAX_CHOICES)):
        if code(index, count) == token:
            return index
    return None


def is_single_letter(text: str) -> bool:
    """One letter on its own: meant as a choice, even out of range ("F" among five)."""
    match = _TOKEN.fullmatch(text)
    return match is not None and len(match.group(1)) == 1
