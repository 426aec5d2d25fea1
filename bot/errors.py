"""Errors a user caused by what they typed; handlers render ``key`` from the message catalogue."""

from __future__ import annotations

from typing import Any

EXCERPT_LEN = 32  # how much of what a user typed is quoted back to them


def excerpt(text: str, limit: int = EXCERPT_LEN) -> str:
    """What a user typed, as it may be quoted back: trimmed, on one line, at most ``limit``
    characters (then "…"). Quoting a whole 4,096-character message back would not fit in one."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class InputError(ValueError):
    """Bad user input. ``key`` names the catalogue text, ``params`` fill its placeholders.

    ``text``, by convention what the user typed, is always quoted as an ``excerpt``.
    """

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        if isinstance(params.get("text"), str):
            params["text"] = excerpt(params["text"])
        self.key = key
        self.params = params
