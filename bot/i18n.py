"""Every text a user reads, from one catalogue per language (``bot/locales/<lang>.toml``).

Texts are Telegram HTML. Parameters are escaped when filled in, so a label such as ``<b>&`` typed by
a user is shown verbatim; a parameter that is itself rendered HTML is passed as ``Html``.

Plurals: ``{days:day|days}`` is the word for the count ``days`` in the singular (``one``) or the
plural (``other``) form, so ``"{days} {days:day|days} left"`` reads "1 day left", "2 days left".
The count is a parameter passed as an ``int`` (or a string of digits, e.g. a list of one number);
anything else takes the ``other`` form. Chinese needs no plural forms and doesn't use them.
"""

from __future__ import annotations

import html
import re
import string
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from bot.models import DEFAULT_LANGUAGE

LANGUAGES = ("zh_CN", "en")


class Html(str):
    """Text that is already valid Telegram HTML and must not be escaped again."""

    __slots__ = ()


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The flattened catalogue of ``lang``: ``{"cards.header": "…"}``."""
    text = resources.files("bot.locales").joinpath(f"{lang}.toml").read_text("utf-8")
    return _flatten(tomllib.loads(text))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _escape(value: Any) -> str:
    if isinstance(value, Html):
        return str(value)
    return html.escape(str(value), quote=False)


PLURAL_SEPARATOR = "|"
_INTEGER_RE = re.compile(r"[-+]?[0-9]+")


def plural_forms(template: str) -> list[tuple[str, list[str]]]:
    """The ``{count:one|other}`` fields of a template: (count's name, its forms)."""
    return [
        (name, spec.split(PLURAL_SEPARATOR))
        for _, name, spec, _ in string.Formatter().parse(template)
        if name and spec and PLURAL_SEPARATOR in spec
    ]


def _count_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value)
    return None


class _Param:
    """A parameter being filled in: its escaped text, or (with a plural spec) the right form."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        if PLURAL_SEPARATOR not in spec:
            return format(_escape(self.value), spec)
        one, other = spec.split(PLURAL_SEPARATOR)  # exactly two forms (tests check them)
        count = _count_of(self.value)
        return one if count is not None and abs(count) == 1 else other


def t(lang: str, key: str, /, **params: Any) -> Html:
    """The text ``key`` in ``lang`` (falling back to the default language), filled in."""
    template = catalogue(lang).get(key)
    if template is None:
        template = catalogue(DEFAULT_LANGUAGE)[key]  # a missing key is a bug: fail loudly
    if not _has_plurals(template):  # most texts: escape and fill in, nothing to choose
        return Html(template.format_map({name: _escape(value) for name, value in params.items()}))
    return Html(template.format_map({name: _Param(value) for name, value in params.items()}))


@cache
def _has_plurals(template: str) -> bool:
    return bool(plural_forms(template))


def resolve_language(
    chat_language: str | None, user_language_code: str | None, default: str = DEFAULT_LANGUAGE
) -> str:
    """The chat's chosen language, else the user's Telegram language, else ``default``."""
    if chat_language in LANGUAGES:
        return chat_language
    code = (user_language_code or "").lower()
    if code.startswith("zh"):
        return "zh_CN"
    if code.startswith("en"):
        return "en"
    return default
