"""What the digest buttons and the settings menu do: snooze, mute, unmute, edit settings.

Every action re-reads the card in the chat the button was pressed in, so an old digest acts on
the card as it is now, and a card id from another chat is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from bot.clock import Clock, local_today
from bot.models import Card, ChatSettings
from bot.reminders.models import ReminderSettings
from storage.base import Storage
from storage.reminders import ReminderStore


class ActionStatus(StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"  # deleted, or not this chat's card
    CHANGED = "changed"  # renewed (or its expiry edited) since the digest was sent
    ALREADY = "already"  # muted and asked to mute, or the reverse


@dataclass(frozen=True)
class CardAction:
    status: ActionStatus
    card: Card | None = None
    until: date | None = None  # snooze: the day reminders resume


class ReminderService:
    def __init__(self, storage: Storage, store: ReminderStore, clock: Clock) -> None:
        self.storage = storage
        self.store = store
        self.clock = clock

    async def settings(self, chat_id: int) -> ReminderSettings:
        return await self.store.get_settings(chat_id)

    async def save_settings(self, chat_id: int, settings: ReminderSettings) -> None:
        await self.store.save_settings(chat_id, settings)

    async def snooze(
        self, chat: ChatSettings, card_id: int, days: int, *, digest_expiry: date | None = None
    ) -> CardAction:
        """Quiet for ``days`` days, then remind again even if no new threshold was reached
        (``days=1``: again tomorrow). ``digest_expiry``: the expiry the pressed digest showed."""
        card = await self.storage.get_card(chat.chat_id, card_id)
        if card is None:
            return CardAction(ActionStatus.NOT_FOUND)
        if digest_expiry is not None and card.expiry != digest_expiry:
            return CardAction(ActionStatus.CHANGED, card)
        until = local_today(self.clock, chat.timezone) + timedelta(days=days)
        if not await self.store.snooze(chat.chat_id, card_id, until):
            return CardAction(ActionStatus.NOT_FOUND)
        return CardAction(ActionStatus.DONE, card, until)

    async def mute(self, chat_id: int, card_id: int) -> CardAction:
        return await self._set_muted(chat_id, card_id, muted=True)

    async def unmute(self, chat_id: int, card_id: int) -> CardAction:
        """Reminders for the card again; a threshold passed while muted is reminded next time."""
        return await self._set_muted(chat_id, card_id, muted=False)

    async def _set_muted(self, chat_id: int, card_id: int, *, muted: bool) -> CardAction:
        card = await self.storage.get_card(chat_id, card_id)
        if card is None:
            return CardAction(ActionStatus.NOT_FOUND)
        if card.muted == muted:
            return CardAction(ActionStatus.ALREADY, card)
        if not await self.store.set_muted(chat_id, card_id, muted):
            return CardAction(ActionStatus.NOT_FOUND)
        return CardAction(ActionStatus.DONE, card.model_copy(update={"muted": muted}))

    # chats coming and going (the Telegram side reports them)

    async def chat_seen(self, chat_id: int) -> bool:
        """The chat wrote to the bot: if reminders were paused for it, resume. True if so."""
        return await self.store.reactivate_chat(chat_id)

    async def chat_gone(self, chat_id: int, reason: str) -> None:
        """The bot was blocked or removed: pause reminders until the chat writes again."""
        await self.store.deactivate_chat(chat_id, reason, at=self.clock.now())

    async def chat_migrated(self, old_chat_id: int, new_chat_id: int) -> None:
        await self.store.migrate_chat(old_chat_id, new_chat_id)
