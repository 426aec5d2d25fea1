"""The shell's own texts: the ``[shell]`` table of the catalogues, as plain terminal text."""

from __future__ import annotations

import html
import re
import unicodedata

from bot.i18n import t

_TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """Telegram HTML as a terminal shows it: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", text))


def say(lang: str, key: str, /, **params: object) -> str:
    """The shell text ``shell.<key>`` in ``lang``, filled in, as plain text."""
    return plain(t(lang, f"shell.{key}", **params))


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
