"""The Bot API methods, implemented against :class:`EmulatorState` with Telegram's checks."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from bot.emulator.errors import ApiError, bad_request
from bot.emulator.html import HtmlParseError, parse_html
from bot.emulator.images import image_size
from bot.emulator.markup import validate_inline_markup, validate_reply_markup
from bot.emulator.params import RequestParams
from bot.emulator.records import BotMessage, ChatEvent, EventKind, JsonDict, StoredFile
from bot.emulator.state import ChatState, EmulatorState, file_json, now
from bot.emulator.text import WHITESPACE, trim_formatted, utf16_len

_LOG = logging.getLogger(__name__)

Handler = Callable[[RequestParams], Awaitable[Any]]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip
SCOPE_TYPES = frozenset(
    {
        "default", "all_private_chats", "all_group_chats", "all_chat_administrators",
        "chat", "chat_administrators", "chat_member",
    }
)  # fmt: skip
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
# Methods whose effect the emulator does not model; they answer True after basic checks.
_ACCEPTED_CHAT_METHODS = ("pinChatMessage", "unpinChatMessage", "unpinAllChatMessages")
_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_pin_messages",
)  # fmt: skip


def member_json(user: JsonDict, status: str, *, can_delete_messages: bool = True) -> JsonDict:
    """ChatMember object of the right subtype for ``status``."""
    if status == "creator":
        return {"status": "creator", "user": user, "is_anonymous": False}
    if status == "administrator":
        rights = dict.fromkeys(_ADMIN_RIGHTS, True)
        rights["can_delete_messages"] = can_delete_messages
        return {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            **rights,
        }
    if status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    return {"status": status, "user": user}


class BotApiMethods:
    """Dispatch table of Bot API methods; method names are case-insensitive as on Telegram."""

    def __init__(self, state: EmulatorState, *, strict_html: bool = True) -> None:
        self.state = state
        self.strict_html = strict_html
        self._poll_generation = 0
        handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "logOut": self.accept,
            "close": self.accept,
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "sendMessage": self.send_message,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "deleteMessages": self.delete_messages,
            "answerCallbackQuery": self.answer_callback_query,
            "sendDocument": self.send_document,
            "sendPhoto": self.send_photo,
            "getFile": self.get_file,
            "getChat": self.get_chat,
            "getChatMember": self.get_chat_member,
            "getChatAdministrators": self.get_chat_administrators,
            "getChatMemberCount": self.get_chat_member_count,
            "sendChatAction": self.send_chat_action,
            "setChatMenuButton": self.set_chat_menu_button,
            "getChatMenuButton": self.get_chat_menu_button,
            "leaveChat": self.leave_chat,
            "setMyDescription": self._bot_text_setter("description"),
            "getMyDescription": self._bot_text_getter("description"),
            "setMyShortDescription": self._bot_text_setter("short_description"),
            "getMyShortDescription": self._bot_text_getter("short_description"),
            "setMyName": self._bot_text_setter("name"),
            "getMyName": self._bot_text_getter("name"),
        }
        for name in _ACCEPTED_CHAT_METHODS:
            handlers[name] = self.accept_in_chat
        self._handlers = {name.lower(): handler for name, handler in handlers.items()}

    def lookup(self, method: str) -> Handler | None:
        """The handler of ``method``, or ``None`` if the Bot API has no such method here."""
        return self._handlers.get(method.lower())

    # --- shared helpers --------------------------------------------------------------

    def _formatted(
        self, params: RequestParams, *, caption: bool
    ) -> tuple[str | None, list[JsonDict], str | None]:
        """``(visible_text, entities, raw)`` of ``text`` or ``caption``, validated."""
        field = "caption" if caption else "text"
        raw = params.get_str(field)
        if raw is None or not raw.strip(WHITESPACE):
            if caption:
                return None, [], raw
            raise bad_request("message text is empty")
        parse_mode = params.get_str("parse_mode")
        if parse_mode:
            mode = parse_mode.lower()
            if mode == "html":
                try:
                    text, entities = parse_html(
                        raw, strict=self.strict_html, resolve_user=self.state.users.get
                    )
                except HtmlParseError as error:
                    raise bad_request(f"can't parse entities: {error}") from None
            elif mode in ("markdown", "markdownv2"):
                text, entities = raw, []  # accepted as-is: Markdown is not validated here
            else:
                raise bad_request("unsupported parse_mode")
        else:
            text = raw
            entities = self._explicit_entities(
                params.get_json("caption_entities" if caption else "entities")
            )
        text, entities = trim_formatted(text, entities)
        if not text:
            if caption:
                return None, [], raw
            raise bad_request("message text is empty")
        limit = MAX_CAPTION if caption else MAX_TEXT
        if utf16_len(text) > limit:
            raise bad_request("message caption is too long" if caption else "message is too long")
        return text, entities, raw

    @staticmethod
    def _explicit_entities(value: object) -> list[JsonDict]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise bad_request("can't parse entities JSON object")
        entities: list[JsonDict] = []
        for entity in value:
            if not (
                isinstance(entity, dict)
                and isinstance(entity.get("type"), str)
                and isinstance(entity.get("offset"), int)
                and isinstance(entity.get("length"), int)
            ):
                raise bad_request("can't parse entities JSON object")
            entities.append(dict(entity))
        return entities

    def _reply_target(self, chat: ChatState, params: RequestParams) -> int | None:
        """The message being replied to, checked like Telegram does."""
        reply = params.get_json("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            message_id = reply["message_id"]
            allow_missing = bool(reply.get("allow_sending_without_reply", False))
        else:
            message_id = params.get_int("reply_to_message_id")
            allow_missing = params.get_bool("allow_sending_without_reply")
        if message_id is None:
            return None
        if not isinstance(message_id, int):
            raise bad_request("message to be replied not found")
        if message_id in chat.bot_messages or message_id in chat.user_messages:
            return message_id
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")

    def _event(self, kind: EventKind, message: BotMessage) -> ChatEvent:
        return ChatEvent(
            kind=kind,
            chat_id=message.chat_id,
            message_id=message.message_id,
            text=message.content,
            raw_text=message.raw_text,
            reply_markup=message.reply_markup,
            buttons=message.buttons,
            file=message.file,
            time=time.time(),
        )

    def _post(self, chat: ChatState, message: BotMessage, kind: EventKind) -> JsonDict:
        self.state.add_bot_message(chat, message)
        self.state.emit(self._event(kind, message))
        return self.state.message_json(chat, message)

    def _editable(self, params: RequestParams) -> tuple[ChatState, BotMessage]:
        if params.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # inline mode is not emulated
        chat = self.state.writable_chat(params.chat_id())
        message_id = params.get_int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = chat.bot_messages.get(message_id)
        if message is None:
            if message_id in chat.user_messages:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        return chat, message

    def _edited(self, chat: ChatState, message: BotMessage) -> JsonDict:
        message.edit_date = now()
        self.state.emit(self._event("edit", message))
        return self.state.message_json(chat, message)

    # --- bot, updates, webhook -------------------------------------------------------

    async def get_me(self, params: RequestParams) -> JsonDict:
        """getMe: the bot's User."""
        return dict(self.state.bot_user)

    async def accept(self, params: RequestParams) -> bool:
        """logOut / close: nothing to do locally."""
        return True

    async def get_updates(self, params: RequestParams) -> list[JsonDict]:
        """getUpdates with offset confirmation, limit, allowed_updates and long polling."""
        if self.state.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        limit = min(max(params.get_int("limit") or 100, 1), 100)
        timeout = max(params.get_float("timeout") or 0.0, 0.0)
        allowed = params.get_json("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise bad_request("can't parse allowed_updates JSON object")
            self.state.allowed_updates = list(allowed) or None
        self.state.confirm_updates(params.get_int("offset"))
        # A newer getUpdates ends an older one, like Telegram's 409 for two pollers.
        self._poll_generation += 1
        generation = self._poll_generation
        self.state.updates_changed.notify()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            updates = self.state.deliverable_updates(limit)
            if updates or self.state.closed:
                return updates
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            await self.state.updates_changed.wait(remaining)

    async def set_webhook(self, params: RequestParams) -> bool:
        """setWebhook: remembered only (the emulator never pushes); an empty url deletes it."""
        url = params.get_str("url") or ""
        if not url:
            return await self.delete_webhook(params)
        if not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        webhook: JsonDict = {"url": url}
        for name in ("allowed_updates", "max_connections"):
            if params.has(name):
                webhook[name] = params.values[name]
        self.state.webhook = webhook
        if params.get_bool("drop_pending_updates"):
            self.state.updates.clear()
        return True

    async def delete_webhook(self, params: RequestParams) -> bool:
        """deleteWebhook, optionally dropping pending updates."""
        self.state.webhook = None
        if params.get_bool("drop_pending_updates"):
            self.state.updates.clear()
        return True

    async def get_webhook_info(self, params: RequestParams) -> JsonDict:
        """getWebhookInfo."""
        webhook = self.state.webhook or {"url": ""}
        return {
            **webhook,
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.updates),
        }

    # --- commands and bot texts ------------------------------------------------------

    def _commands_key(self, params: RequestParams) -> tuple[str, str]:
        scope = params.get_json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or scope.get("type") not in SCOPE_TYPES:
            raise bad_request("can't parse BotCommandScope JSON object")
        if scope["type"] in ("chat", "chat_administrators", "chat_member"):
            self.state.require_chat(scope.get("chat_id"))
        if scope["type"] == "chat_member" and not isinstance(scope.get("user_id"), int):
            raise bad_request("user not found")
        language = params.get_str("language_code") or ""
        if language and not _LANGUAGE_CODE.match(language):
            raise bad_request("invalid language code specified")
        return json.dumps(scope, sort_keys=True, separators=(",", ":")), language

    async def set_my_commands(self, params: RequestParams) -> bool:
        """setMyCommands per (scope, language_code); an empty list deletes."""
        commands = params.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        cleaned: list[JsonDict] = []
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            if not isinstance(name, str) or not _COMMAND_NAME.match(name.lower()):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name.lower(), "description": description})
        key = self._commands_key(params)
        if cleaned:
            self.state.commands[key] = cleaned
        else:
            self.state.commands.pop(key, None)
        return True

    async def get_my_commands(self, params: RequestParams) -> list[JsonDict]:
        """getMyCommands of exactly that (scope, language_code)."""
        return [dict(c) for c in self.state.commands.get(self._commands_key(params), [])]

    async def delete_my_commands(self, params: RequestParams) -> bool:
        """deleteMyCommands."""
        self.state.commands.pop(self._commands_key(params), None)
        return True

    def _bot_text_setter(self, field: str) -> Handler:
        async def setter(params: RequestParams) -> bool:
            language = params.get_str("language_code") or ""
            value = params.get_str(field) or ""
            if value:
                self.state.bot_texts[(field, language)] = value
            else:
                self.state.bot_texts.pop((field, language), None)
            return True

        return setter

    def _bot_text_getter(self, field: str) -> Handler:
        async def getter(params: RequestParams) -> JsonDict:
            language = params.get_str("language_code") or ""
            default = str(self.state.bot_user["first_name"]) if field == "name" else ""
            value = self.state.bot_texts.get((field, language))
            if value is None:
                value = self.state.bot_texts.get((field, ""), default)
            return {field: value}

        return getter

    # --- messages --------------------------------------------------------------------

    async def send_message(self, params: RequestParams) -> JsonDict:
        """sendMessage."""
        chat = self.state.writable_chat(params.chat_id())
        text, entities, raw = self._formatted(params, caption=False)
        markup = validate_reply_markup(params.get_json("reply_markup"))
        reply_to = self._reply_target(chat, params)
        message = BotMessage(
            chat_id=chat.id,
            message_id=chat.take_message_id(),
            date=now(),
            text=text,
            entities=entities,
            raw_text=raw,
            parse_mode=params.get_str("parse_mode"),
            reply_markup=markup,
            reply_to_message_id=reply_to,
        )
        return self._post(chat, message, "message")

    async def edit_message_text(self, params: RequestParams) -> JsonDict:
        """editMessageText; a missing reply_markup removes the keyboard, as on Telegram."""
        return self._edit_content(params, caption=False)

    async def edit_message_caption(self, params: RequestParams) -> JsonDict:
        """editMessageCaption."""
        return self._edit_content(params, caption=True)

    def _edit_content(self, params: RequestParams, *, caption: bool) -> JsonDict:
        """The text of a text message or the caption of a media one, and its keyboard."""
        chat, message = self._editable(params)
        if (message.kind == "text") == caption:
            field = "caption" if caption else "text"
            raise bad_request(f"there is no {field} in the message to edit")
        content, entities, raw = self._formatted(params, caption=caption)
        markup = validate_inline_markup(params.get_json("reply_markup"))
        if (content, entities, markup) == (message.content, message.entities, message.reply_markup):
            raise bad_request(NOT_MODIFIED)
        if caption:
            message.caption = content
        else:
            message.text = content
        message.entities, message.raw_text = entities, raw
        message.parse_mode = params.get_str("parse_mode")
        message.reply_markup = markup
        return self._edited(chat, message)

    async def edit_message_reply_markup(self, params: RequestParams) -> JsonDict:
        """editMessageReplyMarkup; no reply_markup removes the keyboard."""
        chat, message = self._editable(params)
        markup = validate_inline_markup(params.get_json("reply_markup"))
        if markup == message.reply_markup:
            raise bad_request(NOT_MODIFIED)
        message.reply_markup = markup
        return self._edited(chat, message)

    def _delete_one(self, chat: ChatState, message_id: int) -> bool:
        bot_message = chat.bot_messages.pop(message_id, None)
        if bot_message is not None:
            self.state.emit(
                ChatEvent("delete", chat.id, message_id, text=bot_message.content, time=time.time())
            )
            return True
        if message_id in chat.user_messages:
            # Bots delete others' messages only in private chats or as group admins: in a
            # basic group any administrator, in a supergroup one with can_delete_messages.
            if chat.is_group and not self._bot_deletes(chat):
                raise bad_request("message can't be deleted")
            user_message = chat.user_messages.pop(message_id)
            text = user_message.get("text", user_message.get("caption"))
            self.state.emit(ChatEvent("delete", chat.id, message_id, text=text, time=time.time()))
            return True
        return False

    @staticmethod
    def _bot_deletes(chat: ChatState) -> bool:
        if chat.bot_status != "administrator":
            return False
        return chat.type == "group" or chat.bot_can_delete

    async def delete_message(self, params: RequestParams) -> bool:
        """deleteMessage."""
        chat = self.state.writable_chat(params.chat_id())
        if not self._delete_one(chat, params.require_int("message_id")):
            raise bad_request("message to delete not found")
        return True

    async def delete_messages(self, params: RequestParams) -> bool:
        """deleteMessages: missing messages are skipped, as on Telegram."""
        chat = self.state.writable_chat(params.chat_id())
        ids = params.get_json("message_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise bad_request("message identifiers are not specified")
        for message_id in ids:
            self._delete_one(chat, message_id)
        return True

    async def answer_callback_query(self, params: RequestParams) -> bool:
        """answerCallbackQuery: each query can be answered once."""
        query_id = params.get_str("callback_query_id") or ""
        origin = self.state.callback_queries.pop(query_id, None)
        if origin is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get_str("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER:
            self.state.callback_queries[query_id] = origin  # a failed answer can be retried
            raise bad_request("MESSAGE_TOO_LONG")
        chat_id, message_id = origin
        self.state.emit(
            ChatEvent(
                "callback_answer",
                chat_id,
                message_id,
                text=text,
                show_alert=params.get_bool("show_alert"),
                url=params.get_str("url"),
                callback_query_id=query_id,
                time=time.time(),
            )
        )
        return True

    # --- files -----------------------------------------------------------------------

    def _input_file(
        self, params: RequestParams, field: str, kind: Literal["document", "photo"]
    ) -> StoredFile:
        """A new upload (multipart, possibly via attach://) or a known file_id."""
        upload = params.files.get(field)
        value = params.get_str(field)
        if upload is None and value and value.startswith("attach://"):
            upload = params.files.get(value.removeprefix("attach://"))
        if upload is not None:
            if not upload.content:
                raise bad_request("file must be non-empty")
            size = None
            if kind == "photo":
                size = image_size(upload.content)
                if size is None:
                    raise bad_request("IMAGE_PROCESS_FAILED")
            return self.state.store_file(
                upload.content,
                kind=kind,
                filename=upload.filename,
                mime_type=upload.mime_type,
                size=size,
            )
        if value:
            stored = self.state.files.get(value)
            if stored is None:
                # URLs would need the internet; unknown file_ids are refused the same way.
                raise bad_request("wrong file identifier/HTTP URL specified")
            if stored.kind != kind:
                raise bad_request("type of file mismatch")
            return stored
        raise bad_request(f"there is no {field} in the request")

    async def _send_file(
        self, params: RequestParams, kind: Literal["document", "photo"]
    ) -> JsonDict:
        chat = self.state.writable_chat(params.chat_id())
        caption, entities, raw = self._formatted(params, caption=True)
        markup = validate_reply_markup(params.get_json("reply_markup"))
        reply_to = self._reply_target(chat, params)
        stored = self._input_file(params, kind, kind)  # last: nothing is stored for a 400
        message = BotMessage(
            chat_id=chat.id,
            message_id=chat.take_message_id(),
            date=now(),
            kind=kind,
            caption=caption,
            entities=entities,
            raw_text=raw,
            parse_mode=params.get_str("parse_mode"),
            reply_markup=markup,
            file=stored,
            reply_to_message_id=reply_to,
        )
        return self._post(chat, message, kind)

    async def send_document(self, params: RequestParams) -> JsonDict:
        """sendDocument (upload or file_id)."""
        return await self._send_file(params, "document")

    async def send_photo(self, params: RequestParams) -> JsonDict:
        """sendPhoto (PNG/JPEG/GIF/WebP upload or file_id)."""
        return await self._send_file(params, "photo")

    async def get_file(self, params: RequestParams) -> JsonDict:
        """getFile."""
        stored = self.state.files.get(params.get_str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return file_json(stored)

    # --- chats -----------------------------------------------------------------------

    async def get_chat(self, params: RequestParams) -> JsonDict:
        """getChat: a ChatFullInfo with the fields PTB requires."""
        chat = self.state.require_chat(params.chat_id())
        return {
            **chat.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _status(self, chat: ChatState, user_id: int) -> str:
        if user_id == self.state.bot_user["id"]:
            return chat.bot_status
        if chat.admins and chat.admins[0] == user_id:
            return "creator"
        if user_id in chat.admins:
            return "administrator"
        return chat.outsiders.get(user_id, "member")

    async def get_chat_member(self, params: RequestParams) -> JsonDict:
        """getChatMember: admins answer administrator/creator, users set apart with
        ``set_member_status`` left/kicked (as Telegram answers for non-members), everyone
        else member."""
        chat = self.state.require_chat(params.chat_id())
        user_id = params.require_int("user_id")
        known = user_id in self.state.users or user_id in chat.admins
        if not known and user_id != self.state.bot_user["id"]:
            raise bad_request("user not found")
        if chat.type == "private" and user_id not in (chat.id, self.state.bot_user["id"]):
            raise bad_request("user not found")
        return self._member(chat, user_id)

    def _member(self, chat: ChatState, user_id: int) -> JsonDict:
        rights = chat.bot_can_delete if user_id == self.state.bot_user["id"] else True
        user = self.state.user_or_placeholder(user_id)
        return member_json(user, self._status(chat, user_id), can_delete_messages=rights)

    async def get_chat_administrators(self, params: RequestParams) -> list[JsonDict]:
        """getChatAdministrators."""
        chat = self.state.require_chat(params.chat_id())
        if not chat.is_group:
            raise bad_request("there are no administrators in the private chat")
        ids = list(chat.admins)
        if chat.bot_status == "administrator":
            ids.append(int(self.state.bot_user["id"]))
        return [self._member(chat, user_id) for user_id in ids]

    async def get_chat_member_count(self, params: RequestParams) -> int:
        """getChatMemberCount: known members plus the bot."""
        chat = self.state.require_chat(params.chat_id())
        if not chat.is_group:
            return 2
        return len(chat.members | set(chat.admins)) + 1

    async def send_chat_action(self, params: RequestParams) -> bool:
        """sendChatAction."""
        self.state.writable_chat(params.chat_id())
        if params.get_str("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    async def set_chat_menu_button(self, params: RequestParams) -> bool:
        """setChatMenuButton (per chat, or the default without chat_id)."""
        chat_id = self.state.require_chat(params.chat_id()).id if params.has("chat_id") else None
        button = params.get_json("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or "type" not in button:
            raise bad_request("can't parse menu button JSON object")
        self.state.menu_buttons[chat_id] = button
        return True

    async def get_chat_menu_button(self, params: RequestParams) -> JsonDict:
        """getChatMenuButton."""
        chat_id = self.state.require_chat(params.chat_id()).id if params.has("chat_id") else None
        button = self.state.menu_buttons.get(chat_id) or self.state.menu_buttons.get(None)
        return dict(button) if button else {"type": "commands"}

    async def leave_chat(self, params: RequestParams) -> bool:
        """leaveChat: later sends there answer 403."""
        chat = self.state.require_chat(params.chat_id())
        if chat.is_group:
            chat.bot_status = "left"
        return True

    async def accept_in_chat(self, params: RequestParams) -> bool:
        """Methods whose effect is not modelled: checked for a writable chat, then True."""
        self.state.writable_chat(params.chat_id())
        _LOG.info("emulator: accepted a chat method without emulating its effect")
        return True
