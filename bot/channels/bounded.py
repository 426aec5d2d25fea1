"""A dict with a size limit, for what a channel keeps in memory about chats and messages."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

MAX_REMEMBERED = 10_000  # entries kept at most (oldest forgotten first)

K = TypeVar("K")
V = TypeVar("V")


class Bounded(OrderedDict[K, V], Generic[K, V]):
    """A dict that forgets its oldest entries beyond ``limit``: hostile traffic can't grow it."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
