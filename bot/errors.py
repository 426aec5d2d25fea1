"""Errors a user caused by what they typed; handlers render ``key`` from the message catalogue."""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Bad user input. ``key`` names the catalogue text, ``params`` fill its placeholders."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
