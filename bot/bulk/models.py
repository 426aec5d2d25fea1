"""The data the bulk features pass between the domain and ``storage.bulk``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.models import Card, CardDraft, CardEditDraft, RenewalDraft


@dataclass(frozen=True, slots=True)
class CardWithRenewal:
    """A card for export and the calendar, with when it was last renewed (UTC), if ever."""

    card: Card
    last_renewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class FindQuery:
    """What ``/find`` looks for, already normalised: ``iccid`` as an ICCID fragment (None when
    the text can't be part of one), ``text`` as typed, for the label (terminal) and the note."""

    iccid: str | None
    text: str


@dataclass(frozen=True, slots=True)
class CardChange:
    """An import's change to one card: written only while the card is still ``before``."""

    card_id: int
    before: CardDraft
    after: CardDraft


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One field an import changed, for the card's edit trail (written with the change)."""

    card_id: int
    edit: CardEditDraft


@dataclass(frozen=True, slots=True)
class CardRenewal:
    """A renewal file's renewal of one card: written only while the card still expires on
    ``renewal.old_expiry`` (as ``/renew``'s)."""

    card_id: int
    renewal: RenewalDraft
