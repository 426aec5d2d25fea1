"""Reconnect delays: exponential from a floor to a ceiling, jittered so robots restarted
together do not reconnect in lockstep."""

from __future__ import annotations

import random

_RNG = random.Random()


def backoff_delay(
    attempt: int, floor: float, ceiling: float, rng: random.Random | None = None
) -> float:
    """Delay before reconnect attempt ``attempt`` (1-based): floor·2^(n-1), capped, ×[0.5, 1]."""
    base = min(ceiling, floor * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or _RNG).uniform(0.5, 1.0)
    return base * jitter
