"""Outbox messages held by a sender's claim, for the operator's ``python -m bot remind``.

A sender claims a message before sending it (``ReminderStore.claim``) and every other sender
keeps off it until the claim lapses (``SenderPolicy.claim``, 10 minutes). A sender that crashed
leaves its claims behind: until they lapse, no run sends those messages, and a run right after
the crash must say so rather than look complete. Read-only; a candidate for ``ReminderStore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from storage.sqlite import SqliteStorage


@dataclass(frozen=True)
class HeldMessages:
    count: int  # pending messages another (or a crashed) sender still has claimed
    until: datetime | None  # UTC: when the last of those claims lapses; None if count is 0


def _instant(moment: datetime) -> str:
    # as storage.reminders writes claimed_until: UTC, fixed format, comparable as text
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


async def held_messages(storage: SqliteStorage, *, now: datetime) -> HeldMessages:
    """Pending outbox messages whose claim is still in force at ``now``."""
    row = await storage.fetchone(
        "SELECT count(*), max(claimed_until) FROM outbox "
        "WHERE status = 'pending' AND claimed_until > ?",
        (_instant(now),),
    )
    if row is None or not row[0]:
        return HeldMessages(0, None)
    return HeldMessages(int(row[0]), datetime.fromisoformat(row[1]).astimezone(UTC))
