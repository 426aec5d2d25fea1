"""The reminder domain's data: per-chat settings, cards as a digest shows them, outbox messages.

Row-shaped types are plain slotted dataclasses, not frozen (a frozen dataclass is several
times slower to build, and a pass builds many); treat them as read-only. Only the settings a
user edits are a validated pydantic model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.chats import Channel
from bot.models import Period

log = logging.getLogger(__name__)

DEFAULT_SEND_TIME = time(9, 0)
DEFAULT_DAYS_BEFORE = (30, 7, 3, 1, 0)
DEFAULT_OVERDUE_DAILY_DAYS = 90  # carriers may close (销户) a card unpaid for ~90 days
MAX_DAYS_BEFORE = 365
MAX_THRESHOLDS = 10
MAX_OVERDUE_DAILY_DAYS = 365


class ReminderSettings(BaseModel):
    """When a chat hears about its cards: the local send time, the days before expiry to remind,
    and for how many days after expiry to remind daily (0: not after expiry)."""

    model_config = ConfigDict(frozen=True)

    send_time: time = DEFAULT_SEND_TIME
    days_before: tuple[int, ...] = DEFAULT_DAYS_BEFORE
    overdue_daily_days: int = Field(
        default=DEFAULT_OVERDUE_DAILY_DAYS, ge=0, le=MAX_OVERDUE_DAILY_DAYS
    )

    @field_validator("send_time")
    @classmethod
    def _whole_minutes(cls, value: time) -> time:
        return value.replace(second=0, microsecond=0, tzinfo=None)

    @field_validator("days_before")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        unique = tuple(sorted(set(value), reverse=True))
        if not 1 <= len(unique) <= MAX_THRESHOLDS:
            raise ValueError(f"between 1 and {MAX_THRESHOLDS} thresholds")
        if unique[-1] < 0 or unique[0] > MAX_DAYS_BEFORE:
            raise ValueError(f"thresholds are 0..{MAX_DAYS_BEFORE} days")
        return unique


DEFAULT_SETTINGS = ReminderSettings()


@lru_cache(maxsize=1024)
def settings_from_columns(
    send_time: str | None, days_before: str | None, overdue_daily_days: int | None
) -> ReminderSettings:
    """Settings from their stored form (NULL = default); cached, most chats share a few.

    A value that does not parse falls back to the default (logged) rather than stopping every
    chat's reminders."""
    values: dict[str, object] = {}
    try:
        if send_time:
            values["send_time"] = time.fromisoformat(send_time)
        if days_before:
            values["days_before"] = tuple(int(part) for part in days_before.split(","))
        if overdue_daily_days is not None:
            values["overdue_daily_days"] = overdue_daily_days
        return ReminderSettings.model_validate(values) if values else DEFAULT_SETTINGS
    except ValueError:
        log.warning("bad stored reminder settings %r; using the defaults", values)
        return DEFAULT_SETTINGS


def settings_to_columns(settings: ReminderSettings) -> tuple[str, str, int]:
    return (
        settings.send_time.strftime("%H:%M"),
        ",".join(str(day) for day in settings.days_before),
        settings.overdue_daily_days,
    )


@dataclass(slots=True)
class ChatToRemind:
    """A chat whose digest is due, with what composing it needs."""

    chat_id: int
    is_group: bool
    language: str | None
    timezone: str
    settings: ReminderSettings


@dataclass(slots=True)
class AutoRenewCandidate:
    """A card with auto-renew and a plan, on or past its expiry day."""

    id: int
    chat_id: int
    iccid: str
    label: str | None
    expiry: date
    muted: bool
    plan: Period
    plan_price_fen: int | None


@dataclass(slots=True)
class AutoRenewal:
    """A card rolled forward by its plan, one period per step."""

    card: AutoRenewCandidate
    steps: tuple[tuple[date, date], ...]  # (old, new) expiry of each period, oldest first
    charge_fen: int | None  # plan price x periods; None when the price is unknown

    @property
    def old_expiry(self) -> date:
        return self.steps[0][0]

    @property
    def new_expiry(self) -> date:
        return self.steps[-1][1]

    @property
    def periods(self) -> int:
        return len(self.steps)


@dataclass(slots=True)
class RenewedNote:
    """An auto-renewal as the digest reports it (stored with the digest, as JSON)."""

    card_id: int
    iccid: str
    label: str | None
    old_expiry: date
    new_expiry: date
    periods: int
    charge_fen: int | None

    @classmethod
    def of(cls, renewal: AutoRenewal) -> RenewedNote:
        card = renewal.card
        return cls(
            card.id,
            card.iccid,
            card.label,
            renewal.old_expiry,
            renewal.new_expiry,
            renewal.periods,
            renewal.charge_fen,
        )


def notes_to_json(notes: list[RenewedNote]) -> str:
    return json.dumps(
        [
            {
                "card_id": n.card_id,
                "iccid": n.iccid,
                "label": n.label,
                "old_expiry": n.old_expiry.isoformat(),
                "new_expiry": n.new_expiry.isoformat(),
                "periods": n.periods,
                "charge_fen": n.charge_fen,
            }
            for n in notes
        ],
        ensure_ascii=False,
    )


def notes_from_json(raw: str | None) -> list[RenewedNote]:
    if not raw:
        return []
    items: list[dict[str, Any]] = json.loads(raw)
    return [
        RenewedNote(
            card_id=int(item["card_id"]),
            iccid=str(item["iccid"]),
            label=item["label"],
            old_expiry=date.fromisoformat(item["old_expiry"]),
            new_expiry=date.fromisoformat(item["new_expiry"]),
            periods=int(item["periods"]),
            charge_fen=item["charge_fen"],
        )
        for item in items
    ]


@dataclass(slots=True)
class DueCard:
    """A card a digest reminds about; ``days_left`` is counted from the digest's date."""

    id: int
    iccid: str
    label: str | None
    expiry: date
    days_left: int
    price_fen: int | None = None  # the plan's price: what renewing will take, when known


@dataclass(frozen=True, slots=True)
class DigestChat:
    chat_id: int
    is_group: bool
    language: str | None


@dataclass(frozen=True, slots=True)
class Digest:
    """One chat's reminder for one day, before it is rendered."""

    chat: DigestChat
    lang: str
    day: date
    due: tuple[DueCard, ...]  # most urgent first
    renewed: tuple[RenewedNote, ...]

    @property
    def is_empty(self) -> bool:
        return not self.due and not self.renewed


Button = tuple[str, str]  # (text, callback_data)
Keyboard = tuple[tuple[Button, ...], ...]


def keyboard_from_json(raw: str | None) -> Keyboard:
    """Buttons as stored in the outbox: ``[[[text, callback_data], ...], ...]``."""
    if not raw:
        return ()
    return tuple(tuple((str(text), str(data)) for text, data in row) for row in json.loads(raw))


@dataclass(frozen=True, slots=True)
class DigestPart:
    """One Telegram message of a digest: HTML text and its inline buttons as stored (JSON)."""

    text: str
    buttons_json: str

    @property
    def buttons(self) -> Keyboard:
        return keyboard_from_json(self.buttons_json)


@dataclass(frozen=True, slots=True)
class ClockRecord:
    """What the database knows of the time (``ReminderStore.clock_record``)."""

    latest: datetime | None  # the latest instant recorded (None: nothing yet)
    marked_since: datetime | None  # the earliest pass marked as made on an unconfirmed clock


@dataclass(frozen=True, slots=True)
class AheadUndone:
    """What undoing the passes of a clock that ran ahead took back."""

    chats: int
    renewals: int  # automatic renewals made before the card's real expiry day


@dataclass(frozen=True, slots=True)
class HeldMessages:
    """Pending messages a sender (maybe a crashed one) still has claimed."""

    count: int
    until: datetime | None  # UTC: when the last of those claims lapses; None if count is 0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A row of the outbox: one message to send, or (``text`` None) a digest to render first."""

    id: int
    chat_id: int
    digest_date: date
    part: int
    parts: int
    text: str | None
    buttons: Keyboard
    renewed: str | None  # JSON notes, on an unrendered digest
    attempts: int
    target_id: int | None = None  # the push target it goes to; None: the chat itself
    # The chat's channel and kind (its chats row): which messenger and which budget it takes.
    channel: Channel = Channel.TELEGRAM
    is_group: bool = False

    @property
    def rendered(self) -> bool:
        return self.text is not None

    @property
    def destination(self) -> Destination:
        return (self.chat_id, self.target_id or 0)


# Where an outbox row goes: (chat id, push target id), 0 for the chat itself.
Destination = tuple[int, int]
