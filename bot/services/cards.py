"""Cards: add, look up, page through, renew, edit and delete, always within one chat."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.clock import Clock, local_today
from bot.dates import parse_expiry, parse_period, renewal_expiry
from bot.errors import InputError
from bot.iccid import matches_suffix, normalize_iccid
from bot.models import (
    LATEST_EXPIRY,
    Card,
    CardDraft,
    CardEdit,
    CardEditDraft,
    Carrier,
    ChatSettings,
    EditField,
    Period,
    Renewal,
    RenewalDraft,
    RenewalRule,
)
from storage.base import CardFilter, Storage

PAGE_SIZE = 10
MAX_PAGE = (2**63 - 1) // PAGE_SIZE  # a page whose offset SQLite can still take (forged buttons)
MIN_SUFFIX = 4  # "/renew 1234 3m": the last 4+ characters pick a card
MAX_MATCHES = 10


@dataclass(frozen=True)
class CardPage:
    cards: list[Card]
    page: int  # 0-based, clamped into range
    pages: int  # at least 1
    total: int


@dataclass(frozen=True)
class RenewalPlan:
    """What a renewal will do, shown to the user before it is saved."""

    card: Card
    old_expiry: date
    new_expiry: date
    rule: RenewalRule
    period: Period | None


@dataclass(frozen=True)
class ExpiryEdit:
    """What correcting a card's expiry (``/edit``) will do, shown to the user before it is saved.

    A period counts from the current expiry as a renewal would (``rule`` EXTEND, or RESTART for a
    card already expired); a date is taken as given (SET_DATE). It is not a renewal: nothing is
    paid, and it goes to the card's edit trail, not its renewal history."""

    card: Card
    old_expiry: date
    new_expiry: date
    rule: RenewalRule
    period: Period | None

    @property
    def earlier(self) -> bool:
        return self.new_expiry < self.old_expiry


def plan_value(period: Period | None, price_fen: int | None) -> str | None:
    """A plan as the edit trail keeps it: ``months:days:price`` (price empty when unknown)."""
    if period is None:
        return None
    return f"{period.months}:{period.days}:{'' if price_fen is None else price_fen}"


def parse_plan_value(value: str | None) -> tuple[Period | None, int | None]:
    """The inverse of ``plan_value``; (None, None) for an empty or unreadable value."""
    try:
        months, days, price = (value or "").split(":")
        return Period(months=int(months), days=int(days)), int(price) if price else None
    except ValueError:
        return None, None


def _field_values(card: CardDraft) -> dict[EditField, str | None]:
    return {
        EditField.EXPIRY: card.expiry.isoformat(),
        EditField.CARRIER: card.carrier.value,
        EditField.LABEL: card.label,
        EditField.PLAN: plan_value(card.plan_period, card.plan_price_fen),
        EditField.NOTE: card.note,
        EditField.ICCID: card.iccid,
    }


def changed_fields(
    before: CardDraft, after: CardDraft
) -> list[tuple[EditField, str | None, str | None]]:
    """(field, old, new) for each field of the edit trail that differs (of a card, or of a
    card as an import file would leave it)."""
    old, new = _field_values(before), _field_values(after)
    return [(name, old[name], new[name]) for name in EditField if old[name] != new[name]]


def bounded_expiry(start: date, period: Period, today: date) -> tuple[date, RenewalRule]:
    """``renewal_expiry`` refusing an empty period and an expiry past ``LATEST_EXPIRY``.

    Raises ``InputError``: ``error.period.empty`` or ``error.date.too_late`` (``latest``)."""
    if period.is_empty:
        raise InputError("error.period.empty")
    # A card already past the bound (saved before there was one) is refused before any
    # arithmetic: from there a period can run past date.max.
    if start > LATEST_EXPIRY:
        raise InputError("error.date.too_late", latest=LATEST_EXPIRY.isoformat())
    new_expiry, rule = renewal_expiry(start, period, today)
    if new_expiry > LATEST_EXPIRY:
        raise InputError("error.date.too_late", latest=LATEST_EXPIRY.isoformat())
    return new_expiry, rule


def check_expiry(expiry: date) -> date:
    """Raises ``InputError`` ``error.date.too_late`` for an expiry past ``LATEST_EXPIRY``."""
    if expiry > LATEST_EXPIRY:
        raise InputError("error.date.too_late", latest=LATEST_EXPIRY.isoformat())
    return expiry


def plan_renewal(card: Card, today: date, choice: Period | date) -> RenewalPlan:
    """What renewing ``card`` by ``choice`` (a period, or the new expiry date) does as of
    ``today`` (the day it was paid). Raises ``InputError`` for an empty period or a new
    expiry past ``LATEST_EXPIRY``. The one renewal rule: /renew and renewal files use it."""
    if isinstance(choice, date):
        return RenewalPlan(card, card.expiry, check_expiry(choice), RenewalRule.SET_DATE, None)
    new_expiry, rule = bounded_expiry(card.expiry, choice, today)
    return RenewalPlan(card, card.expiry, new_expiry, rule, choice)


def renewal_draft(
    plan: RenewalPlan,
    *,
    renewed_at: datetime,
    amount_fen: int | None,
    by_user_id: int | None,
    by_name: str | None,
) -> RenewalDraft:
    """The history entry a renewal by a person records (it ends a mute: not automatic)."""
    return RenewalDraft(
        renewed_at=renewed_at,
        by_user_id=by_user_id,
        by_name=by_name,
        old_expiry=plan.old_expiry,
        new_expiry=plan.new_expiry,
        period=plan.period,
        rule=plan.rule,
        amount_fen=amount_fen,
    )


def parse_renewal_choice(text: str, today: date) -> Period | date:
    """A period (``3个月``, ``12``) or a new expiry date (``2027-06-30``); ``InputError`` of the
    period unless the text is a date that is only out of range (then that one's)."""
    try:
        return parse_period(text)
    except InputError as period_error:
        try:
            return parse_expiry(text, today)
        except InputError as date_error:
            if date_error.key == "error.date.unrecognized":
                raise period_error from None
            raise


class CardService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock

    async def chat(
        self, chat_id: int, *, is_group: bool, language: str | None = None
    ) -> ChatSettings:
        """The chat; ``language``: the language of the person using it (the chat's default
        for its digests if nobody's was known before)."""
        return await self.storage.ensure_chat(chat_id, is_group=is_group, language=language)

    def today(self, chat: ChatSettings) -> date:
        return local_today(self.clock, chat.timezone)

    async def add(self, chat_id: int, draft: CardDraft) -> Card:
        """Save a new card; raises ``DuplicateCardError`` if the chat already has the ICCID."""
        return await self.storage.add_card(chat_id, draft, self.clock.now())

    async def get(self, chat_id: int, card_id: int) -> Card | None:
        return await self.storage.get_card(chat_id, card_id)

    async def existing(self, chat_id: int, iccid: str) -> Card | None:
        return await self.storage.get_card_by_iccid(chat_id, iccid)

    async def all(self, chat_id: int, limit: int) -> list[Card]:
        """The chat's cards by expiry (up to ``limit``), for reports over the whole chat."""
        return await self.storage.list_cards(chat_id, limit=limit)

    async def spent_since(self, chat_id: int, since: datetime) -> dict[Carrier, int]:
        return await self.storage.spent_by_carrier(chat_id, since)

    async def history(self, chat_id: int, card_id: int, limit: int = 5) -> list[Renewal]:
        return await self.storage.list_renewals(chat_id, card_id, limit)

    async def edits(self, chat_id: int, card_id: int, limit: int = 5) -> list[CardEdit]:
        """The card's edit trail, newest first (the card screen shows the last few)."""
        return await self.storage.list_card_edits(chat_id, card_id, limit)

    async def page(
        self, chat_id: int, page: int, *, expiring_before: date | None = None
    ) -> CardPage:
        card_filter = CardFilter(expiring_before=expiring_before)
        total = await self.storage.count_cards(chat_id, card_filter)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        cards = await self.storage.list_cards(
            chat_id, offset=page * PAGE_SIZE, limit=PAGE_SIZE, card_filter=card_filter
        )
        return CardPage(cards=cards, page=page, pages=pages, total=total)

    @staticmethod
    def expiring_before(today: date, within_days: int) -> date:
        return today + timedelta(days=within_days)

    async def resolve(self, chat_id: int, reference: str) -> list[Card]:
        """Cards a user means by a full ICCID or its last 4+ characters, most urgent first."""
        fragment = normalize_iccid(reference)
        if len(fragment) < MIN_SUFFIX:
            return []
        exact = await self.storage.get_card_by_iccid(chat_id, fragment)
        if exact is not None:
            return [exact]
        found = await self.storage.find_cards_by_suffix(chat_id, fragment, MAX_MATCHES)
        return [card for card in found if matches_suffix(card.iccid, fragment)]

    async def resolve_label(self, chat_id: int, label: str) -> list[Card]:
        """Cards a user means by their label (``收银台1``), most urgent first."""
        label = label.strip()
        if not label:
            return []
        return await self.storage.find_cards_by_label(chat_id, label, MAX_MATCHES)

    def plan_renewal(self, card: Card, today: date, choice: Period | date) -> RenewalPlan:
        """Raises ``InputError`` for an empty period or a new expiry past ``LATEST_EXPIRY``."""
        return plan_renewal(card, today, choice)

    def plan_expiry_edit(self, card: Card, today: date, choice: Period | date) -> ExpiryEdit:
        """The new expiry ``/edit`` would set; raises ``InputError`` like ``plan_renewal``."""
        if isinstance(choice, date):
            return ExpiryEdit(card, card.expiry, check_expiry(choice), RenewalRule.SET_DATE, None)
        new_expiry, rule = bounded_expiry(card.expiry, choice, today)
        return ExpiryEdit(card, card.expiry, new_expiry, rule, choice)

    async def renew(
        self,
        plan: RenewalPlan,
        *,
        amount_fen: int | None,
        by_user_id: int | None,
        by_name: str | None,
    ) -> Renewal | None:
        """Record the renewal; None when the card changed (or vanished) since the plan was made."""
        draft = renewal_draft(
            plan,
            renewed_at=self.clock.now(),
            amount_fen=amount_fen,
            by_user_id=by_user_id,
            by_name=by_name,
        )
        return await self.storage.renew_card(plan.card.chat_id, plan.card.id, draft)

    async def update(self, card: Card) -> Card | None:
        return await self.storage.update_card(card.chat_id, card)

    async def edit(
        self,
        before: Card,
        after: Card,
        *,
        by_user_id: int | None,
        by_name: str | None,
    ) -> Card | None:
        """Save a person's edit and, in the same transaction, one trail entry per changed field.

        Only if the card's expiry is still ``before``'s (an edit made on a stale screen must not
        undo a renewal made meanwhile); None when it changed or the card is gone. Raises
        ``DuplicateCardError`` for an ICCID the chat already has."""
        now = self.clock.now()
        trail = [
            CardEditDraft(
                edited_at=now,
                by_user_id=by_user_id,
                by_name=by_name,
                field=name,
                old_value=old,
                new_value=new,
            )
            for name, old, new in changed_fields(before, after)
        ]
        return await self.storage.update_card(
            after.chat_id, after, edits=trail, if_expiry=before.expiry
        )

    async def set_archived(self, chat_id: int, card_id: int, *, archived: bool) -> Card | None:
        """Take the card out of service (停用) now, or put it back; None if it is gone. Put
        back with its expiry passed, its auto-renew goes off (see ``Storage.set_archived``)."""
        now = self.clock.now()
        if archived:
            return await self.storage.set_archived(chat_id, card_id, now)
        today = now.astimezone(UTC).date()  # a day's error is harmless: it only errs safe
        return await self.storage.set_archived(chat_id, card_id, None, restored_on=today)

    async def delete(self, chat_id: int, card_id: int) -> bool:
        return await self.storage.delete_card(chat_id, card_id)

    async def save_settings(self, chat: ChatSettings) -> None:
        await self.storage.save_chat(chat)


__all__ = [
    "MAX_PAGE",
    "PAGE_SIZE",
    "CardPage",
    "CardService",
    "ExpiryEdit",
    "RenewalPlan",
    "bounded_expiry",
    "changed_fields",
    "check_expiry",
    "parse_plan_value",
    "parse_renewal_choice",
    "plan_renewal",
    "plan_value",
    "renewal_draft",
]
