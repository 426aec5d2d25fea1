"""``BotApiEmulator``: the public face tying state, methods and the HTTP server together."""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from bot.emulator.errors import supergroup_id_for
from bot.emulator.faults import SENDING_METHODS, Fault, FaultKind, RateLimits
from bot.emulator.methods import BotApiMethods, member_json
from bot.emulator.records import ApiCall, BotMessage, ChatEvent, JsonDict, StoredFile
from bot.emulator.server import ApiServer
from bot.emulator.state import (
    ChatState,
    EmulatorState,
    document_json,
    mentioned_usernames,
    now,
)
from bot.emulator.text import command_entities

ChatRef = JsonDict | int  # a Chat JSON as returned by private_chat()/group_chat(), or its id
UserRef = JsonDict | int


class BotApiEmulator:
    """A local Telegram Bot API server that the unmodified PTB client talks to.

    Use it as ``async with BotApiEmulator() as emu:`` and point PTB at
    :attr:`base_url` / :attr:`base_file_url`. Everything else is plain in-memory state
    that tests (or ``python -m bot shell``) drive from the same event loop.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_id: int = 123456,
        bot_username: str = "simwatch_test_bot",
        bot_name: str = "SimWatch",
        strict_html: bool = True,
        max_calls: int = 10_000,
    ) -> None:
        self.token = token
        bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.state = EmulatorState(bot_user, max_calls=max_calls)
        self.methods = BotApiMethods(self.state, strict_html=strict_html)
        self.server = ApiServer(self.state, self.methods, token)
        self._host = "127.0.0.1"
        self._callback_counter = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving; ``port=0`` picks a free port."""
        self._host = host
        await self.server.start(host, port)

    async def stop(self) -> None:
        """Answer pending long polls and stop serving. Safe to call twice."""
        await self.server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port being served."""
        if self.server.port is None:
            raise RuntimeError("the emulator is not started")
        return self.server.port

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: PTB appends the token and method."""
        return f"http://{self._host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``."""
        return f"http://{self._host}:{self.port}/file/bot"

    @property
    def bot_user(self) -> JsonDict:
        """The bot's User object (what getMe answers)."""
        return dict(self.state.bot_user)

    # --- the simulated human side ----------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        *,
        language_code: str | None = "zh-hans",
        username: str | None = None,
        last_name: str | None = None,
    ) -> JsonDict:
        """Register a human user and return its User JSON."""
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        return dict(self.state.add_user(user))

    def private_chat(self, user: UserRef) -> JsonDict:
        """The private chat with ``user`` (same id as the user); registers both."""
        user_json = self._user(user)
        chat: JsonDict = {"id": user_json["id"], "type": "private"}
        for key in ("first_name", "last_name", "username"):
            if key in user_json:
                chat[key] = user_json[key]
        return dict(self.state.add_chat(chat).chat)

    def group_chat(
        self,
        chat_id: int,
        title: str = "Shop",
        *,
        supergroup: bool = False,
        admins: Iterable[int] = (),
        username: str | None = None,
        privacy_mode: bool | None = None,
    ) -> JsonDict:
        """A group (negative id); ``admins[0]`` is its creator, other admins administrators.

        ``privacy_mode=True`` models Telegram's default for bots: plain messages stay among the
        members, the bot gets only commands, replies to it and mentions of it (see
        :meth:`reaches_bot`). Off unless asked for; ``None`` keeps a known group's setting.
        """
        if chat_id >= 0:
            raise ValueError("group chat ids are negative on Telegram")
        chat: JsonDict = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": title,
        }
        if username is not None:
            chat["username"] = username
        is_new = chat_id not in self.state.chats
        state = self.state.add_chat(chat)
        admin_ids = list(admins)
        if admin_ids or is_new:  # re-describing a known group keeps its admins
            state.admins = admin_ids
        if privacy_mode is not None:
            state.privacy_mode = privacy_mode
        return dict(state.chat)

    def set_privacy_mode(self, chat_id: int, enabled: bool = True) -> None:
        """Turn the bot's group privacy mode on or off for one group."""
        self._chat(chat_id).privacy_mode = enabled

    def set_admins(self, chat_id: int, user_ids: Iterable[int]) -> None:
        """Replace a group's admins; the first one is the creator."""
        self._chat(chat_id).admins = list(user_ids)

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """Put a user in or out of a group: member, left (never joined, or left) or kicked."""
        if status not in ("member", "left", "kicked"):
            raise ValueError(f"unknown member status {status!r}")
        outsiders = self._chat(chat_id).outsiders
        if status == "member":
            outsiders.pop(user_id, None)
        else:
            outsiders[user_id] = status

    def set_bot_status(
        self, chat_id: int, status: str, *, can_delete_messages: bool = True
    ) -> None:
        """Set the bot's own membership in a group: member, administrator, left or kicked;
        an administrator with or without the right to delete others' messages."""
        if status not in ("member", "administrator", "left", "kicked"):
            raise ValueError(f"unknown member status {status!r}")
        chat = self._chat(chat_id)
        chat.bot_status = status
        chat.bot_can_delete = can_delete_messages

    def upgrade_to_supergroup(self, chat_id: int, new_chat_id: int | None = None) -> JsonDict:
        """Migrate a basic group: sends to the old id then raise PTB's ``ChatMigrated``."""
        old = self._chat(chat_id)
        new_id = new_chat_id if new_chat_id is not None else supergroup_id_for(chat_id)
        new_chat = self.group_chat(new_id, str(old.chat.get("title", "")), supergroup=True)
        new_state = self._chat(new_id)
        new_state.admins, new_state.bot_status = list(old.admins), old.bot_status
        new_state.bot_can_delete = old.bot_can_delete
        new_state.privacy_mode = old.privacy_mode
        old.migrated_to = new_id
        return new_chat

    def message_update(
        self,
        chat: ChatRef,
        user: UserRef,
        text: str,
        *,
        reply_to: int | None = None,
        enqueue: bool = True,
    ) -> JsonDict:
        """A user's text message (commands get ``bot_command`` entities), stored and queued
        (queued only if it reaches the bot: see :meth:`reaches_bot`)."""
        message = self._user_message(chat, user, reply_to)
        message["text"] = text
        entities = command_entities(text)
        if entities:
            message["entities"] = entities
        return self._deliver(chat, message, enqueue)

    def document_update(
        self,
        chat: ChatRef,
        user: UserRef,
        filename: str,
        content: bytes,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        reply_to: int | None = None,
        enqueue: bool = True,
    ) -> JsonDict:
        """A user's document; getFile plus download return exactly ``content``."""
        if mime_type is None:
            mime_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        stored = self.state.store_file(
            content, kind="document", filename=filename, mime_type=mime_type
        )
        message = self._user_message(chat, user, reply_to)
        message["document"] = document_json(stored)
        if caption is not None:
            message["caption"] = caption
        return self._deliver(chat, message, enqueue)

    def callback_update(
        self,
        chat: ChatRef,
        user: UserRef,
        message_id: int,
        data: str,
        *,
        enqueue: bool = True,
        check_button: bool = False,
    ) -> JsonDict:
        """The user pressing an inline button with ``data`` under bot message ``message_id``.

        Any ``data`` is sent by default, as a stale or forged button would; with
        ``check_button`` the message must really carry such a button (what a human can do).
        """
        chat_state = self._chat(chat)
        message = chat_state.bot_messages.get(message_id)
        if message is None:
            known = list(chat_state.bot_messages)
            raise LookupError(
                f"chat {chat_state.id} has no bot message {message_id}; bot messages: {known}"
            )
        if check_button:
            offered = [b.value for row in message.buttons for b in row]
            if data not in offered:
                raise LookupError(
                    f"message {message_id} in chat {chat_state.id} has no button with "
                    f"callback_data {data!r}; buttons: {message.buttons}"
                )
        self._callback_counter += 1
        query_id = str(4_000_000_000_000_000 + self._callback_counter)
        self.state.callback_queries[query_id] = (chat_state.id, message_id)
        update: JsonDict = {
            "update_id": self.state.take_update_id(),
            "callback_query": {
                "id": query_id,
                "from": self._user(user),
                "chat_instance": str((chat_state.id * 2654435761) % 2**63),
                "data": data,
                "message": self.state.message_json(chat_state, message),
            },
        }
        if enqueue:
            self.state.enqueue(update)
        return update

    def press_button(
        self,
        chat: ChatRef,
        user: UserRef,
        text: str,
        *,
        message_id: int | None = None,
        enqueue: bool = True,
    ) -> JsonDict:
        """Press the callback button labelled ``text`` on the newest bot message showing it."""
        chat_state = self._chat(chat)
        candidates = (
            [chat_state.bot_messages[message_id]]
            if message_id is not None
            else list(reversed(chat_state.bot_messages.values()))
        )
        for message in candidates:
            for row in message.buttons:
                for button in row:
                    if button.text == text and button.value is not None:
                        return self.callback_update(
                            chat,
                            user,
                            message.message_id,
                            button.value,
                            enqueue=enqueue,
                            check_button=True,
                        )
        raise LookupError(f"no bot message in chat {chat_state.id} shows a button {text!r}")

    def reaches_bot(self, update: JsonDict) -> bool:
        """Whether Telegram would hand ``update`` to the bot at all: a user's message in a
        group in privacy mode only if it is a command for this bot (``/cmd``,
        ``/cmd@this_bot``), a reply to one of the bot's messages or mentions ``@this_bot``.

        Updates made with ``enqueue=True`` are queued only if so; callers that feed updates
        to the application themselves (``enqueue=False``) ask here first.
        """
        message = update.get("message")
        if not isinstance(message, dict):
            return True  # button presses and membership changes always reach the bot
        return self.state.reaches_bot(self._chat(int(message["chat"]["id"])), message)

    def force_reply_target(self, chat: ChatRef, user: UserRef) -> int | None:
        """The bot message that ``user``'s Telegram client would answer with a reply when they
        type next: the newest bot message addressed to them, if it carries ``ForceReply`` and
        they have not written in the chat since (sending uses the reply box up)."""
        chat_state = self._chat(chat)
        user_id = int(self._user(user)["id"])
        for message in reversed(chat_state.bot_messages.values()):
            if not self._addresses(chat_state, message, user_id):
                continue
            markup = message.reply_markup or {}
            if markup.get("force_reply") is not True:
                return None
            answered = any(
                int(sent.get("from", {}).get("id", 0)) == user_id
                for message_id, sent in chat_state.user_messages.items()
                if message_id > message.message_id
            )
            return None if answered else message.message_id
        return None

    def _addresses(self, chat: ChatState, message: BotMessage, user_id: int) -> bool:
        """Whether a bot message is meant for this user, as a client decides for ForceReply:
        in a private chat always; in a group if it replies to them or mentions them, or if it
        asks everyone (a ForceReply that is not ``selective``)."""
        if not chat.is_group:
            return True
        markup = message.reply_markup or {}
        if markup.get("force_reply") is True and markup.get("selective") is not True:
            return True
        replied = chat.user_messages.get(message.reply_to_message_id or 0)
        if replied is not None and int(replied.get("from", {}).get("id", 0)) == user_id:
            return True
        if any(
            entity.get("type") == "text_mention" and entity.get("user", {}).get("id") == user_id
            for entity in message.entities
        ):
            return True
        username = str(self.state.users.get(user_id, {}).get("username", "")).lower()
        return username != "" and username in mentioned_usernames(message.content or "")

    def my_chat_member_update(
        self,
        chat: ChatRef,
        user: UserRef,
        *,
        new_status: str = "member",
        old_status: str | None = None,
        enqueue: bool = True,
    ) -> JsonDict:
        """The bot's membership changing (added to / removed from a group, blocked / unblocked).

        In a private chat ``"kicked"`` means the user blocked the bot; the emulator then
        answers 403 to sends there, exactly as after :meth:`set_blocked`.
        """
        chat_state = self._chat(chat)
        if chat_state.is_group:
            previous = chat_state.bot_status
            self.set_bot_status(chat_state.id, new_status)
        else:
            previous = "kicked" if chat_state.blocked else "member"
            chat_state.blocked = new_status == "kicked"
        bot_user = self.state.bot_user
        update: JsonDict = {
            "update_id": self.state.take_update_id(),
            "my_chat_member": {
                "chat": dict(chat_state.chat),
                "from": self._user(user),
                "date": now(),
                "old_chat_member": member_json(bot_user, old_status or previous),
                "new_chat_member": member_json(bot_user, new_status),
            },
        }
        if enqueue:
            self.state.enqueue(update)
        return update

    def enqueue(self, update: JsonDict) -> None:
        """Queue any hand-made Update for getUpdates."""
        self.state.enqueue(update)

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates queued and not yet confirmed by the bot."""
        return list(self.state.updates)

    # --- what the bot did ------------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        """Every API request so far, oldest first (the live list)."""
        return self.state.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        """Requests of one method (case-insensitive)."""
        return [call for call in self.state.calls if call.method.lower() == method.lower()]

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in a chat as they are now (edits applied, deletions gone)."""
        chat = self.state.chats.get(chat_id)
        return [] if chat is None else list(chat.bot_messages.values())

    def last_message(self, chat_id: int) -> BotMessage:
        """The bot's newest message in a chat."""
        messages = self.chat_messages(chat_id)
        if not messages:
            raise LookupError(f"the bot has no messages in chat {chat_id}")
        return messages[-1]

    def take_events(self, chat_id: int | None = None) -> list[ChatEvent]:
        """Events since the last take (of one chat, or of all), oldest first."""
        return self.state.take_events(chat_id)

    async def wait_for_events(
        self,
        chat_id: int | None = None,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline argument reads best in tests
    ) -> list[ChatEvent]:
        """Wait until at least ``count`` events are pending, then take them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = self.state.pending_events(chat_id)
            if len(pending) >= count:
                return self.state.take_events(chat_id)
            remaining = deadline - loop.time()
            if remaining <= 0:
                failed = [
                    f"{call.method}: {call.description}"
                    for call in self.state.calls[-20:]
                    if call.response is not None and not call.ok
                ]
                raise TimeoutError(
                    f"waited {timeout}s for {count} event(s) in chat {chat_id}, got "
                    f"{[(e.kind, e.text) for e in pending]}; recent failed calls: {failed}"
                )
            await self.state.events_changed.wait(remaining)

    async def wait_idle(
        self,
        quiet: float = 0.05,
        timeout: float = 5.0,  # noqa: ASYNC109 - same shape as wait_for_events
    ) -> None:
        """Wait until no request (other than polling) has been running for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.server.in_flight or loop.time() - self.server.last_request_at < quiet:
            if loop.time() >= deadline:
                raise TimeoutError(f"the bot was still busy after {timeout}s")
            await asyncio.sleep(min(quiet, 0.01))

    @property
    def commands(self) -> dict[tuple[str, str], list[JsonDict]]:
        """setMyCommands results keyed by (canonical scope JSON, language_code or "")."""
        return dict(self.state.commands)

    def commands_for(
        self, scope: JsonDict | None = None, language_code: str = ""
    ) -> list[JsonDict]:
        """Commands stored for one scope (default scope if ``None``) and language."""
        key = json.dumps(scope or {"type": "default"}, sort_keys=True, separators=(",", ":"))
        return list(self.state.commands.get((key, language_code), []))

    def file(self, file_id: str) -> StoredFile:
        """A stored file (uploaded by the bot or by a simulated user)."""
        return self.state.files[file_id]

    # --- faults and limits -----------------------------------------------------------

    def inject_fault(
        self,
        method: str | None = None,
        *,
        kind: FaultKind,
        chat_id: int | None = None,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 0.0,
        migrate_to_chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` matching calls misbehave (see the package docstring)."""
        self.server.faults.add(
            Fault(
                kind=kind,
                method=method,
                chat_id=chat_id,
                remaining=times,
                retry_after=retry_after,
                delay=delay,
                migrate_to_chat_id=migrate_to_chat_id,
                description=description,
            )
        )

    def clear_faults(self) -> None:
        """Forget faults that have not fired yet."""
        self.server.faults.faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults still waiting to fire."""
        return list(self.server.faults.faults)

    def set_blocked(self, chat_id: int, blocked: bool = True) -> None:
        """Block (or unblock) the bot in a chat: sends there answer 403 meanwhile."""
        self._chat(chat_id).blocked = blocked

    def enable_rate_limits(
        self,
        *,
        global_per_second: float = 30,
        group_per_minute: float = 20,
        private_per_second: float = 1,
        private_burst: int = 3,
        methods: Iterable[str] = SENDING_METHODS,
    ) -> None:
        """Answer 429 (with ``retry_after``) beyond Telegram-like flood limits."""
        self.server.rate_limits = RateLimits(
            global_per_second=global_per_second,
            group_per_minute=group_per_minute,
            private_per_second=private_per_second,
            private_burst=private_burst,
            methods=methods,
        )

    def disable_rate_limits(self) -> None:
        """Stop enforcing flood limits."""
        self.server.rate_limits = None

    @property
    def rate_limited_count(self) -> int:
        """How many calls were answered 429 by the flood limits (not by injected faults)."""
        return self.server.rate_limited_count

    # --- internals -------------------------------------------------------------------

    def _chat(self, chat: ChatRef) -> ChatState:
        chat_id = chat if isinstance(chat, int) else int(chat["id"])
        state = self.state.chats.get(chat_id)
        if state is None:
            raise LookupError(
                f"unknown chat {chat_id}: create it with private_chat() or group_chat()"
            )
        return state

    def _user(self, user: UserRef) -> JsonDict:
        if isinstance(user, int):
            known = self.state.users.get(user)
            return dict(known) if known is not None else self.user(user)
        return dict(self.state.add_user(dict(user)))

    def _user_message(self, chat: ChatRef, user: UserRef, reply_to: int | None) -> JsonDict:
        chat_state = self._chat(chat)
        message: JsonDict = {
            "message_id": chat_state.take_message_id(),
            "from": self._user(user),
            "chat": dict(chat_state.chat),
            "date": now(),
        }
        if reply_to is not None:
            replied = self.state.any_message_json(chat_state, reply_to)
            if replied is None:
                raise LookupError(f"chat {chat_state.id} has no message {reply_to}")
            message["reply_to_message"] = replied
        return message

    def _deliver(self, chat: ChatRef, message: JsonDict, enqueue: bool) -> JsonDict:
        chat_state = self._chat(chat)
        self.state.add_user_message(chat_state, message)  # the group sees it either way
        update: JsonDict = {"update_id": self.state.take_update_id(), "message": message}
        if enqueue and self.state.reaches_bot(chat_state, message):
            self.state.enqueue(update)
        return update

    def __repr__(self) -> str:
        where = f"{self._host}:{self.server.port}" if self.server.port else "not started"
        return f"<BotApiEmulator @{self.state.bot_user['username']} {where}>"
