"""The domain's data: cards, renewals, plans and per-chat settings.

Dates (an expiry) are ``datetime.date``; instants (when something happened) are aware UTC
``datetime``. Money is integer fen (1 CNY = 100 fen), never float.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.chats import Channel

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_LANGUAGE = "zh_CN"
EXPIRING_WITHIN_DAYS = 30  # a card this close to expiry is shown as "expiring"
CLOSURE_AFTER_DAYS = 90  # unpaid this long, carriers may close (销户) the card
# The latest expiry a card may get, by any route (typed, renewed, edited): the last day of the
# years bot.dates.parse_expiry accepts (bot.dates.MAX_YEAR). Renewing on from there used to
# reach date.max and crash the date arithmetic (and /calendar) for the whole chat.
LATEST_EXPIRY = date(2100, 12, 31)


class Carrier(StrEnum):
    CHINA_MOBILE = "cmcc"  # 中国移动
    CHINA_UNICOM = "cucc"  # 中国联通
    CHINA_TELECOM = "ctcc"  # 中国电信
    OTHER = "other"


class Period(BaseModel):
    """A plan or renewal length: calendar months and/or days (``months=12`` is a year)."""

    model_config = ConfigDict(frozen=True)

    months: int = Field(default=0, ge=0, le=120)
    days: int = Field(default=0, ge=0, le=3660)

    @property
    def is_empty(self) -> bool:
        return self.months == 0 and self.days == 0


class CardStatus(StrEnum):
    OK = "ok"  # more than EXPIRING_WITHIN_DAYS left
    EXPIRING = "expiring"  # 0..EXPIRING_WITHIN_DAYS days left (0 = expires today)
    SUSPENDED = "suspended"  # expired 1..CLOSURE_AFTER_DAYS-1 days ago: the terminal is offline
    EXPIRED = "expired"  # expired CLOSURE_AFTER_DAYS or more days ago: may be closed for good


def status_for(days_left: int) -> CardStatus:
    if days_left > EXPIRING_WITHIN_DAYS:
        return CardStatus.OK
    if days_left >= 0:
        return CardStatus.EXPIRING
    if -days_left < CLOSURE_AFTER_DAYS:
        return CardStatus.SUSPENDED
    return CardStatus.EXPIRED


class RenewalRule(StrEnum):
    EXTEND = "extend"  # card still valid: old expiry + period
    RESTART = "restart"  # card already expired: today + period
    SET_DATE = "set_date"  # the user gave the new expiry date


class EditField(StrEnum):
    """The fields of a card whose changes are kept in its edit trail."""

    EXPIRY = "expiry"
    CARRIER = "carrier"
    LABEL = "label"
    PLAN = "plan"
    NOTE = "note"
    ICCID = "iccid"


class CardEditDraft(BaseModel):
    """One change to a card's field by a person (``/edit``): not a renewal, costs nothing.

    Values are kept as text: an ISO date, a carrier code, the label, note or ICCID as saved, a
    plan as ``plan_value`` writes it; None for an empty field."""

    edited_at: datetime  # UTC
    by_user_id: int | None
    by_name: str | None
    field: EditField
    old_value: str | None
    new_value: str | None


class CardEdit(CardEditDraft):
    id: int
    card_id: int


class CardDraft(BaseModel):
    """What a user entered for a new card, validated, before it has an id."""

    iccid: str
    expiry: date
    carrier: Carrier = Carrier.OTHER
    label: str | None = None
    plan_period: Period | None = None
    plan_price_fen: int | None = Field(default=None, ge=0)
    auto_renew: bool = False
    note: str | None = None


class Card(CardDraft):
    id: int
    chat_id: int
    created_at: datetime
    muted: bool = False
    snoozed_until: date | None = None
    # When the card was taken out of service (停用, UTC); None while in service. An archived
    # card gets no reminders and is left out of the lists and reports, but keeps its history.
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def days_left(self, today: date) -> int:
        return (self.expiry - today).days

    def status(self, today: date) -> CardStatus:
        return status_for(self.days_left(today))


class RenewalDraft(BaseModel):
    """A renewal to record; ``old_expiry`` must still be the card's expiry when it is applied."""

    renewed_at: datetime  # UTC
    by_user_id: int | None
    by_name: str | None
    old_expiry: date
    new_expiry: date
    period: Period | None
    rule: RenewalRule
    amount_fen: int | None = None
    automatic: bool = False


class Renewal(RenewalDraft):
    id: int
    card_id: int


class ChatSettings(BaseModel):
    chat_id: int
    # The chat's channel (bot.chats): what it is on; is_group is its kind, the only source of
    # "group" (a chat id's sign means nothing outside Telegram).
    channel: Channel = Channel.TELEGRAM
    is_group: bool = False
    language: str | None = None  # None: follow the user's Telegram language
    timezone: str = DEFAULT_TIMEZONE
    # The digests' language while ``language`` is None: that of the first person who used the
    # bot in the chat (None: nobody with a known Telegram language yet).
    default_language: str | None = None
