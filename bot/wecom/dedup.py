"""Bounded memory of recently seen callback ids: WeCom redelivers a callback it thinks
was not received, and the bot must act on it once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentIds:
    """The last ``capacity`` ids seen within ``ttl`` seconds."""

    def __init__(
        self,
        capacity: int = 10_000,
        ttl: float = 3_600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, key: str) -> bool:
        """True if ``key`` is new (and remember it), False if it is a repeat."""
        now = self._clock()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._ttl and len(self._seen) < self._capacity:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True
