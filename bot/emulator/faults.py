"""Injected faults and Telegram-like flood limits."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from bot.emulator.errors import (
    ApiError,
    bad_request,
    blocked,
    chat_migrated,
    supergroup_id_for,
    too_many_requests,
)

FaultKind = Literal[
    "429", "403", "400", "500", "502", "migrate", "timeout", "slow", "lost_response"
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

# Methods that post a new message: what Telegram's flood control counts.
SENDING_METHODS = frozenset(
    {
        "sendmessage", "senddocument", "sendphoto", "sendmediagroup", "sendvideo", "sendaudio",
        "sendanimation", "sendvoice", "sendsticker", "sendlocation", "sendcontact", "sendpoll",
        "copymessage", "forwardmessage",
    }
)  # fmt: skip


@dataclass
class Fault:
    """One planned misbehaviour; fires for the next ``remaining`` matching calls."""

    kind: FaultKind
    method: str | None = None  # None: any method except getUpdates
    chat_id: int | None = None
    remaining: int = 1
    retry_after: int = 1
    delay: float = 0.0
    migrate_to_chat_id: int | None = None
    description: str | None = None

    def matches(self, method: str, chat_id: object) -> bool:
        """Whether a call of ``method`` for ``chat_id`` triggers this fault."""
        if self.method is None:
            # Polling would otherwise swallow "any method" faults meant for the bot's sends.
            if method.lower() == "getupdates":
                return False
        elif self.method.lower() != method.lower():
            return False
        return self.chat_id is None or chat_id == self.chat_id

    def error(self, chat_id: object, chat_type: str | None) -> ApiError:
        """The error answer of an error-kind fault."""
        if self.kind == "429":
            return too_many_requests(self.retry_after)
        if self.kind == "403":
            return ApiError(403, self.description) if self.description else blocked(chat_type)
        if self.kind == "400":
            return ApiError(400, self.description or "Bad Request: injected fault")
        if self.kind == "migrate":
            new_id = self.migrate_to_chat_id
            if new_id is None:
                new_id = supergroup_id_for(chat_id) if isinstance(chat_id, int) else -1001
            return chat_migrated(new_id)
        if self.kind in ("500", "502"):
            phrase = "Internal Server Error" if self.kind == "500" else "Bad Gateway"
            return ApiError(int(self.kind), self.description or phrase)
        return bad_request(f"fault kind {self.kind!r} is not an error answer")


@dataclass
class FaultPlan:
    """Faults in injection order; the first matching one fires."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        """Queue a fault after the ones already planned."""
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        self.faults.append(fault)

    def take(self, method: str, chat_id: object) -> Fault | None:
        """The fault this call triggers (consuming one of its firings), if any."""
        for fault in self.faults:
            if fault.matches(method, chat_id):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None


@dataclass
class _Bucket:
    """Token bucket: ``capacity`` back-to-back calls, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self) -> float:
        """Seconds until one call is allowed (0 if allowed now)."""
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class RateLimits:
    """Telegram's documented flood limits for sending methods.

    About 30 messages per second overall, 20 per minute per group, and about one per
    second per private chat with short bursts tolerated. Beyond them a call is answered
    429 with a ``retry_after`` long enough for a token to come back.
    """

    def __init__(
        self,
        *,
        global_per_second: float = 30,
        group_per_minute: float = 20,
        private_per_second: float = 1,
        private_burst: int = 3,
        methods: Iterable[str] = SENDING_METHODS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.methods = frozenset(name.lower() for name in methods)
        self._clock = clock
        self._global = self._bucket(global_per_second, global_per_second)
        self._group_spec = (group_per_minute, group_per_minute / 60)
        self._private_spec = (float(private_burst), private_per_second)
        self._chats: dict[int | str, _Bucket] = {}

    def _bucket(self, capacity: float, rate: float) -> _Bucket:
        return _Bucket(capacity, rate, capacity, self._clock())

    def applies_to(self, method: str) -> bool:
        """Whether calls of ``method`` count against the limits."""
        return method.lower() in self.methods

    def check(self, chat_id: int | str, is_group: bool) -> int | None:
        """Count one call to ``chat_id``; return ``retry_after`` seconds if it is over a limit."""
        now = self._clock()
        chat = self._chats.get(chat_id)
        if chat is None:
            capacity, rate = self._group_spec if is_group else self._private_spec
            chat = self._chats[chat_id] = self._bucket(capacity, rate)
        buckets = (self._global, chat)
        for bucket in buckets:
            bucket.refill(now)
        wait = max(bucket.wait() for bucket in buckets)
        if wait > 0:
            return max(1, math.ceil(wait))
        for bucket in buckets:
            bucket.tokens -= 1
        return None
