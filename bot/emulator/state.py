"""The emulator's in-memory world: users, chats, messages, files, updates and records."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from bot.emulator.errors import bad_request, blocked, chat_migrated, forbidden
from bot.emulator.records import ApiCall, BotMessage, ChatEvent, JsonDict, StoredFile
from bot.emulator.text import command_entities

# What getUpdates delivers when allowed_updates was never set (or set to []).
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


# An @username mention: 5-32 word characters, not inside an e-mail address or a longer name.
_MENTION = re.compile(r"(?<![\w@])@(\w{5,32})(?!\w)")


def mentioned_usernames(text: str) -> set[str]:
    """The ``@username`` mentions in a text, lowercased (usernames are case-insensitive)."""
    return {match.group(1).lower() for match in _MENTION.finditer(text)}


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """``text[offset:offset + length]`` in UTF-16 code units, as entities count."""
    units = text.encode("utf-16-le")
    return units[2 * offset : 2 * (offset + length)].decode("utf-16-le")


def now() -> int:
    """Unix time as Telegram's ``date`` fields carry it."""
    return int(time.time())


class Signal:
    """Wakes every coroutine waiting for "something changed"."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake the current waiters; later waiters wait for the next notify."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, at_most: float | None) -> None:
        """Return on the next notify, or after ``at_most`` seconds (``None``: no limit)."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), at_most)


@dataclass
class ChatState:
    """One chat: its Chat JSON, members' roles and the messages in it."""

    chat: JsonDict
    admins: list[int] = field(default_factory=list)  # the first one is the creator
    members: set[int] = field(default_factory=set)
    # Users who are not (or no longer) in the group: "left" or "kicked". Everyone else the
    # emulator knows counts as a member, so tests need not enrol each user in each group.
    outsiders: dict[int, str] = field(default_factory=dict)
    bot_messages: dict[int, BotMessage] = field(default_factory=dict)
    user_messages: dict[int, JsonDict] = field(default_factory=dict)
    next_message_id: int = 1
    blocked: bool = False
    bot_status: str = "member"  # member / administrator / left / kicked
    # The bot's can_delete_messages right as an administrator (a supergroup's admin may be
    # made without it; in a basic group every administrator can delete any message).
    bot_can_delete: bool = True
    migrated_to: int | None = None
    # The bot's group privacy mode (@BotFather /setprivacy) as it applies in this group: the
    # bot hears only commands, replies to its messages and mentions of it.
    privacy_mode: bool = False

    @property
    def id(self) -> int:
        """The chat id."""
        return int(self.chat["id"])

    @property
    def type(self) -> str:
        """``private``, ``group``, ``supergroup`` or ``channel``."""
        return str(self.chat["type"])

    @property
    def is_group(self) -> bool:
        """Whether more than one user can be in it."""
        return self.type in ("group", "supergroup")

    def take_message_id(self) -> int:
        """The next message id; ids grow per chat as on Telegram."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


class EmulatorState:
    """Everything the emulated Telegram knows; not thread-safe, use it from the event loop."""

    def __init__(
        self,
        bot_user: JsonDict,
        *,
        max_calls: int = 10_000,
        max_events: int = 10_000,
        max_messages_per_chat: int = 1_000,
    ) -> None:
        self.bot_user = bot_user
        self.max_calls = max_calls
        self.max_events = max_events
        self.max_messages_per_chat = max_messages_per_chat
        self.users: dict[int, JsonDict] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.updates: list[JsonDict] = []
        self.next_update_id = 1
        self.allowed_updates: list[str] | None = None
        self.webhook: JsonDict | None = None
        self.calls: list[ApiCall] = []
        self.events: list[ChatEvent] = []  # not yet taken
        self.callback_queries: dict[str, tuple[int, int]] = {}  # id -> (chat_id, message_id)
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.menu_buttons: dict[int | None, JsonDict] = {}
        self.bot_texts: dict[tuple[str, str], str] = {}  # (field, language) -> text
        self.closed = False
        self.updates_changed = Signal()
        self.events_changed = Signal()
        self._file_counter = 0

    # --- chats and users -------------------------------------------------------------

    def add_user(self, user: JsonDict) -> JsonDict:
        """Register (or replace) a User."""
        self.users[int(user["id"])] = user
        return user

    def add_chat(self, chat: JsonDict) -> ChatState:
        """Register a chat, keeping the history of one that already exists."""
        existing = self.chats.get(int(chat["id"]))
        if existing is not None:
            existing.chat = chat
            return existing
        state = ChatState(chat)
        self.chats[state.id] = state
        return state

    def find_chat(self, chat_id: object) -> ChatState | None:
        """The chat with this id or ``@username``, if the emulator knows it."""
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            name = chat_id[1:].lower()
            for chat in self.chats.values():
                if str(chat.chat.get("username", "")).lower() == name:
                    return chat
            return None
        if isinstance(chat_id, int):
            return self.chats.get(chat_id)
        return None

    def require_chat(self, chat_id: object) -> ChatState:
        """The chat, or 400 "chat not found"."""
        chat = self.find_chat(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def writable_chat(self, chat_id: object) -> ChatState:
        """The chat if the bot may post there, else the error Telegram would answer."""
        chat = self.require_chat(chat_id)
        if chat.migrated_to is not None:
            raise chat_migrated(chat.migrated_to)
        if chat.blocked or chat.bot_status == "kicked":
            raise blocked(chat.type)
        if chat.bot_status == "left":
            raise forbidden(f"bot is not a member of the {chat.type} chat")
        return chat

    def user_or_placeholder(self, user_id: int) -> JsonDict:
        """The registered User, or a plausible one for ids only known as admins."""
        if user_id == self.bot_user["id"]:
            return self.bot_user
        return self.users.get(user_id) or {
            "id": user_id,
            "is_bot": False,
            "first_name": f"User {user_id}",
        }

    # --- files -----------------------------------------------------------------------

    def store_file(
        self,
        content: bytes,
        *,
        kind: Literal["document", "photo"],
        filename: str | None = None,
        mime_type: str | None = None,
        size: tuple[int, int] | None = None,
    ) -> StoredFile:
        """Keep bytes so ``getFile`` and the download URL return exactly them."""
        self._file_counter += 1
        number = self._file_counter
        extension = ""
        if filename and "." in filename:
            extension = "." + filename.rsplit(".", 1)[1]
        folder = "photos" if kind == "photo" else "documents"
        digest = hashlib.sha256(content).hexdigest()
        stored = StoredFile(
            file_id=f"{'AgAC' if kind == 'photo' else 'BQAC'}{secrets.token_hex(12)}_{number}",
            file_unique_id=f"AQAD{digest[:12]}",
            file_path=f"{folder}/file_{number}{extension}",
            content=content,
            kind=kind,
            filename=filename,
            mime_type=mime_type,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    # --- messages and events ---------------------------------------------------------

    def add_bot_message(self, chat: ChatState, message: BotMessage) -> None:
        """Store a message the bot sent, forgetting the oldest beyond the per-chat cap."""
        chat.bot_messages[message.message_id] = message
        while len(chat.bot_messages) > self.max_messages_per_chat:
            del chat.bot_messages[next(iter(chat.bot_messages))]

    def add_user_message(self, chat: ChatState, message: JsonDict) -> None:
        """Store a message a simulated user sent."""
        chat.user_messages[int(message["message_id"])] = message
        if "from" in message:
            chat.members.add(int(message["from"]["id"]))
        while len(chat.user_messages) > self.max_messages_per_chat:
            del chat.user_messages[next(iter(chat.user_messages))]

    def reaches_bot(self, chat: ChatState, message: JsonDict) -> bool:
        """Whether Telegram hands this user message to the bot, given the group's privacy mode.

        In privacy mode the bot gets only commands meant for it (``/cmd`` or ``/cmd@thisbot``),
        replies to its own messages and messages mentioning it; an administrator bot, and
        every bot in a private chat, gets everything.
        """
        if not chat.privacy_mode or not chat.is_group or chat.bot_status == "administrator":
            return True
        bot_id = self.bot_user["id"]
        replied = message.get("reply_to_message")
        if isinstance(replied, dict) and replied.get("from", {}).get("id") == bot_id:
            return True
        text = str(message.get("text") or message.get("caption") or "")
        username = str(self.bot_user.get("username", "")).lower()
        for entity in command_entities(text):
            command = _utf16_slice(text, entity["offset"], entity["length"])
            _, _, addressee = command.partition("@")
            if not addressee or addressee.lower() == username:
                return True
        return username != "" and username in mentioned_usernames(text)

    def message_json(
        self, chat: ChatState, message: BotMessage, *, nested: bool = False
    ) -> JsonDict:
        """The Message object Telegram returns for a bot message in its current state."""
        data: JsonDict = {
            "message_id": message.message_id,
            "from": self.bot_user,
            "chat": chat.chat,
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.kind == "text":
            data["text"] = message.text
            if message.entities:
                data["entities"] = message.entities
        elif message.caption is not None:
            data["caption"] = message.caption
            if message.entities:
                data["caption_entities"] = message.entities
        if message.file is not None and message.kind == "document":
            data["document"] = document_json(message.file)
        if message.file is not None and message.kind == "photo":
            data["photo"] = [photo_size_json(message.file)]
        # Telegram echoes only inline keyboards; reply keyboards live on the client.
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            data["reply_markup"] = message.reply_markup
        if message.reply_to_message_id is not None and not nested:
            replied = self.any_message_json(chat, message.reply_to_message_id)
            if replied is not None:
                data["reply_to_message"] = replied
        return copy.deepcopy(data)

    def any_message_json(self, chat: ChatState, message_id: int) -> JsonDict | None:
        """Message JSON of a bot or user message in ``chat`` (without its own reply)."""
        if message_id in chat.bot_messages:
            return self.message_json(chat, chat.bot_messages[message_id], nested=True)
        if message_id in chat.user_messages:
            user_message = copy.deepcopy(chat.user_messages[message_id])
            user_message.pop("reply_to_message", None)
            return user_message
        return None

    def emit(self, event: ChatEvent) -> None:
        """Record an event for take_events / wait_for_events."""
        self.events.append(event)
        if len(self.events) > self.max_events:
            del self.events[: len(self.events) - self.max_events]
        self.events_changed.notify()

    def pending_events(self, chat_id: int | None) -> list[ChatEvent]:
        """Events not yet taken, for one chat or all."""
        return [event for event in self.events if chat_id is None or event.chat_id == chat_id]

    def take_events(self, chat_id: int | None) -> list[ChatEvent]:
        """Remove and return the pending events (of one chat, or all)."""
        taken = self.pending_events(chat_id)
        taken_ids = {id(event) for event in taken}
        self.events = [event for event in self.events if id(event) not in taken_ids]
        return taken

    def record_call(self, call: ApiCall) -> None:
        """Append to the call log, dropping the oldest beyond ``max_calls``."""
        self.calls.append(call)
        if len(self.calls) > self.max_calls:
            del self.calls[: len(self.calls) - self.max_calls]

    # --- updates ---------------------------------------------------------------------

    def take_update_id(self) -> int:
        """The next update id."""
        update_id = self.next_update_id
        self.next_update_id += 1
        return update_id

    def enqueue(self, update: JsonDict) -> None:
        """Queue an update for getUpdates and wake long polls."""
        self.updates.append(update)
        self.updates_changed.notify()

    def confirm_updates(self, offset: int | None) -> None:
        """Forget confirmed updates: ids below ``offset``, or all but the last ``-offset``."""
        if not offset:
            return
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if int(u["update_id"]) >= offset]

    def deliverable_updates(self, limit: int) -> list[JsonDict]:
        """Up to ``limit`` queued updates of allowed types; others are dropped."""
        allowed = self.allowed_updates
        kept: list[JsonDict] = []
        for update in self.updates:
            kind = next((key for key in update if key != "update_id"), "")
            if allowed is None:
                if kind not in DEFAULT_EXCLUDED_UPDATES:
                    kept.append(update)
            elif kind in allowed:
                kept.append(update)
        self.updates = kept
        return copy.deepcopy(kept[:limit])

    def close(self) -> None:
        """Wake every waiter; long polls answer at once from now on."""
        self.closed = True
        self.updates_changed.notify()
        self.events_changed.notify()


def document_json(stored: StoredFile) -> JsonDict:
    """Document object of a stored file."""
    data: JsonDict = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }
    if stored.filename is not None:
        data["file_name"] = stored.filename
    if stored.mime_type is not None:
        data["mime_type"] = stored.mime_type
    return data


def photo_size_json(stored: StoredFile) -> JsonDict:
    """PhotoSize object of a stored photo (one size: the original)."""
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": stored.width or 0,
        "height": stored.height or 0,
        "file_size": stored.size,
    }


def file_json(stored: StoredFile) -> JsonDict:
    """File object ``getFile`` returns."""
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
        "file_path": stored.file_path,
    }
