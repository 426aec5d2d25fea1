"""A simulated person chatting with the real bot: for tests, the shell and benchmarks.

Updates go through ``Application.process_update``; the bot's answers travel the real
python-telegram-bot HTTP stack to the local Bot API emulator, which records them as events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.emulator import BotApiEmulator
from bot.emulator.records import BotMessage, ChatEvent

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class NoSuchButtonError(LookupError):
    pass


@dataclass
class ChatDriver:
    app: AnyApplication
    emulator: BotApiEmulator
    chat: dict[str, Any]
    user: dict[str, Any]

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    def take_events(self) -> list[ChatEvent]:
        """What the bot did in this chat that no call returned yet (a timer's message)."""
        return self.emulator.take_events(self.chat_id)

    def as_user(self, user: dict[str, Any]) -> ChatDriver:
        """The same chat, someone else typing (group members, admins)."""
        return ChatDriver(self.app, self.emulator, self.chat, user)

    async def _process(self, update: dict[str, Any]) -> list[ChatEvent]:
        if not self.emulator.reaches_bot(update):
            return []  # group privacy mode: the members saw it, the bot never hears of it
        await self.app.process_update(Update.de_json(update, self.app.bot))
        return self.emulator.take_events(self.chat_id)

    def _reply_box(self) -> int | None:
        """What the Telegram client does: the bot's latest message to this user asked for a
        reply (ForceReply), so what they type next goes as a reply to it."""
        return self.emulator.force_reply_target(self.chat, self.user)

    async def send(self, text: str) -> list[ChatEvent]:
        """Type ``text`` into the chat as a Telegram client sends it (a reply when the bot's
        latest message to this user carries ForceReply); returns what the bot did."""
        return await self.reply_to(self._reply_box(), text)

    async def send_plain(self, text: str) -> list[ChatEvent]:
        """Type ``text`` as a message of its own, even where the client would reply (the user
        closed the reply box): in a privacy-mode group the bot does not get it."""
        return await self.reply_to(None, text)

    async def reply_to(self, message_id: int | None, text: str) -> list[ChatEvent]:
        """Send ``text`` as a reply to message ``message_id`` (``None``: not a reply)."""
        update = self.emulator.message_update(
            self.chat, self.user, text, reply_to=message_id, enqueue=False
        )
        return await self._process(update)

    async def edit(self, text: str) -> list[ChatEvent]:
        """The user edits a message they sent earlier so that it reads ``text`` (Telegram sends
        the bot an ``edited_message``); returns what the bot did."""
        update = self.emulator.message_update(self.chat, self.user, text, enqueue=False)
        edited = update.pop("message")
        edited["edit_date"] = edited["date"] + 60
        update["edited_message"] = edited
        return await self._process(update)

    async def send_document(
        self, filename: str, content: bytes, caption: str | None = None
    ) -> list[ChatEvent]:
        """Attach a file; like text, it answers a ForceReply question as a reply."""
        update = self.emulator.document_update(
            self.chat,
            self.user,
            filename,
            content,
            caption=caption,
            reply_to=self._reply_box(),
            enqueue=False,
        )
        return await self._process(update)

    def find_button(self, label: str) -> tuple[BotMessage, str]:
        """The newest bot message with a button whose text contains ``label`` (or whose data is)."""
        for message in reversed(self.emulator.chat_messages(self.chat_id)):
            for row in message.buttons:
                for text, data in row:
                    if data is not None and (label in text or label == data):
                        return message, data
        raise NoSuchButtonError(f"no button {label!r} in chat {self.chat_id}")

    async def press(self, label: str) -> list[ChatEvent]:
        """Tap the button labelled ``label`` on the newest message that has one."""
        message, data = self.find_button(label)
        return await self.press_data(data, message.message_id)

    async def press_data(self, data: str, message_id: int | None = None) -> list[ChatEvent]:
        """Send exactly this callback data, as a forged or stale button would."""
        if message_id is None:
            sent = self.emulator.chat_messages(self.chat_id)
            if not sent:
                raise NoSuchButtonError("buttons hang on a bot message; the bot sent none yet")
            message_id = sent[-1].message_id
        update = self.emulator.callback_update(
            self.chat, self.user, message_id, data, enqueue=False
        )
        return await self._process(update)


def texts(events: list[ChatEvent]) -> str:
    """Everything the user would read in these events, one event per line."""
    return "\n".join(e.text for e in events if e.text)
