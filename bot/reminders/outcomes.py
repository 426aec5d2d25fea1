"""What one send to a destination came to: the outcomes ``bot.reminders.sender`` acts on.

Each channel's messenger (Telegram's in ``handlers.delivery``, the push robots' in
``bot.robots.client``) turns its service's answers and errors into one of these; none raises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: float  # seconds


@dataclass(frozen=True, slots=True)
class Transient:
    error: str


@dataclass(frozen=True, slots=True)
class Rejected:
    error: str


@dataclass(frozen=True, slots=True)
class Blocked:
    reason: str


@dataclass(frozen=True, slots=True)
class Migrated:
    new_chat_id: int


Delivery = Sent | RateLimited | Transient | Rejected | Blocked | Migrated
