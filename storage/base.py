"""The storage interface the domain depends on; another database can implement it.

Every card operation takes the owning ``chat_id``: a card is only ever found through its chat, so
a forged id from another chat reads as "no such card" and can change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel

from bot.models import (
    Card,
    CardDraft,
    CardEdit,
    CardEditDraft,
    Carrier,
    ChatSettings,
    Renewal,
    RenewalDraft,
)


class DuplicateCardError(Exception):
    """The chat already has a card with this ICCID."""

    def __init__(self, existing: Card) -> None:
        super().__init__(existing.iccid)
        self.existing = existing


class SchemaTooNewError(Exception):
    """The database was written by a newer SimWatch than this one (at schema version ``found``;
    this code knows up to ``known``, when given)."""

    def __init__(self, message: str, *, found: int | None = None, known: int | None = None):
        super().__init__(message)
        self.found = found
        self.known = known


class DatabaseUnreachableError(Exception):
    """``DATABASE_URL`` does not lead to a database we can use: bad URL, no server there, wrong
    user or password, no such database. The message is one line for the operator, naming the
    setting, without the password."""


class CardFilter(BaseModel):
    """Which of a chat's cards to list; all of them when empty."""

    expiring_before: date | None = None  # expiry <= this date (expired cards included)
    # archived cards (停用) are left out of every list unless asked for
    archived: bool = False


class Storage(Protocol):
    async def close(self) -> None: ...

    # chats
    async def ensure_chat(
        self, chat_id: int, *, is_group: bool, language: str | None = None
    ) -> ChatSettings:
        """The chat, created on first sight; ``language`` (the language of the person whose
        update this is, if known) becomes its default when it has none yet."""
        ...

    async def get_chat(self, chat_id: int) -> ChatSettings | None: ...
    async def save_chat(self, chat: ChatSettings) -> None: ...

    # cards, always within one chat
    async def add_card(self, chat_id: int, draft: CardDraft, created_at: datetime) -> Card: ...
    async def get_card(self, chat_id: int, card_id: int) -> Card | None: ...
    async def get_card_by_iccid(self, chat_id: int, iccid: str) -> Card | None: ...
    async def find_cards_by_suffix(self, chat_id: int, suffix: str, limit: int) -> list[Card]: ...
    # exactly this label (ASCII letters in any case), by expiry
    async def find_cards_by_label(self, chat_id: int, label: str, limit: int) -> list[Card]: ...
    async def count_cards(self, chat_id: int, card_filter: CardFilter | None = None) -> int: ...
    async def list_cards(
        self,
        chat_id: int,
        *,
        offset: int = 0,
        limit: int = 10,
        card_filter: CardFilter | None = None,
    ) -> list[Card]: ...
    async def update_card(
        self,
        chat_id: int,
        card: Card,
        *,
        edits: Sequence[CardEditDraft] = (),
        if_expiry: date | None = None,
    ) -> Card | None:
        """Write the card and its ``edits`` (the edit trail) in one transaction; None, and
        nothing written, if the card is gone or (``if_expiry``) its expiry is no longer that."""
        ...

    async def delete_card(self, chat_id: int, card_id: int) -> bool: ...
    async def set_archived(
        self,
        chat_id: int,
        card_id: int,
        archived_at: datetime | None,
        *,
        restored_on: date | None = None,
    ) -> Card | None:
        """Take the card out of service (``archived_at``, UTC) or, with None, put it back; the
        card as saved, None if it is gone. Archiving an archived card keeps its first date.
        Put back on ``restored_on`` with an expiry before it, a card's auto-renew goes off:
        it would otherwise record a renewal (and a charge) for every period it was out of
        service."""
        ...

    # renewals
    async def renew_card(self, chat_id: int, card_id: int, renewal: RenewalDraft) -> Renewal | None:
        """Apply and record a renewal if the card's expiry is still ``renewal.old_expiry``
        (else None); clears a snooze and, unless ``renewal.automatic``, a mute and an archive (a
        card renewed by a person is in service again)."""
        ...

    async def list_renewals(self, chat_id: int, card_id: int, limit: int = 10) -> list[Renewal]: ...
    async def list_card_edits(
        self, chat_id: int, card_id: int, limit: int = 10
    ) -> list[CardEdit]: ...
    async def spent_by_carrier(self, chat_id: int, since: datetime) -> dict[Carrier, int]:
        """Fen paid for renewals recorded since ``since``, by the card's carrier."""
        ...


__all__: Sequence[str] = (
    "CardFilter",
    "DatabaseUnreachableError",
    "DuplicateCardError",
    "RenewalDraft",
    "SchemaTooNewError",
    "Storage",
)
