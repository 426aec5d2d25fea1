"""The Bot API carried out on WeCom: the ``BaseRequest`` of the WeCom channel's ``Application``.

The handlers call ``sendMessage``, ``editMessageText``, ``sendDocument``… exactly as on
Telegram; this request does each on the WeCom long connection and answers as the Bot API
would, so python-telegram-bot (and the handlers) cannot tell. How a screen becomes WeCom
messages:

- Text is WeCom markdown (``markdown.to_markdown``), split at line ends to WeCom's byte limit.
- Buttons: up to six become a ``button_interaction`` card; more (a 20-card list) become
  lettered lines the person answers with the letter (``bot.channels.choices``), kept in the
  database (``ChannelStore.save_menu``) so that "C" still works after a restart.
- The first message answering a person's message goes as the reply to it (its ``req_id``);
  the rest, and digests, are sent unprompted (``aibot_send_msg``).
- An edit is a new message: the pressed card was already updated when the click came
  (``inbound``), within WeCom's 5 seconds; the new screen goes below it.
- Deleting messages, which WeCom robots can't, is refused as Telegram refuses it.
- Membership: WeCom only delivers a group's messages and clicks from its members, and the
  group's administrator is the person who first spoke to the robot there (README).

WeCom's refusals become the Bot API errors python-telegram-bot raises for Telegram's
(``RetryAfter``, ``Forbidden``, ``BadRequest``, ``TimedOut``, ``NetworkError``), so the
reminder sender's outcomes hold for both channels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.channels import choices
from bot.channels.wecom.identities import Identities
from bot.channels.wecom.markdown import convert, text_markdown, to_markdown
from bot.channels.wecom.state import BridgeState
from bot.chats import Channel, ChatAddress, ChatKind
from bot.i18n import t
from bot.wecom import bodies, limits
from bot.wecom.errors import AnswerTimeout, ConnectionLost, MediaError, WeComApiError
from bot.wecom.media import download_file
from storage.channels import MAX_MENU_OPTIONS

log = logging.getLogger(__name__)

FILE_URL = "channel://file"  # bot.app's base_file_url for channels: getFile's paths are file ids
PARTIAL_SECONDS = 600  # a screen resent within this long after failing part-way: its rest only
RATE_LIMIT_RETRY_SECONDS = 60  # WeCom counts a conversation's messages per minute
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # as Telegram's getFile: what /import reads at most
BOT_USER: dict[str, Any] = {
    "id": 1,
    "is_bot": True,
    "first_name": "SimWatch",
    "username": "simwatch_wecom",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
_ACCEPTED = frozenset(
    {"setmycommands", "deletemycommands", "setchatmenubutton", "sendchataction", "close"}
)  # what has no meaning on WeCom: done, nothing to do


class Link(Protocol):
    """What the bridge needs of the WeCom connection (``bot.wecom.connection``)."""

    async def respond(self, req_id: str, body: dict[str, Any]) -> Any: ...
    async def respond_welcome(self, req_id: str, body: dict[str, Any]) -> Any: ...
    async def update_card(
        self, req_id: str, card: dict[str, Any], userids: list[str] | None = None
    ) -> Any: ...
    async def send(self, chatid: str, body: dict[str, Any]) -> Any: ...
    async def upload(self, data: bytes, filename: str, media_type: str = "file") -> str: ...


Languages = Callable[[int], Awaitable[str]]  # a chat's language, for the channel's own words


def bot_api_error(exc: Exception) -> Exception:
    """WeCom's failure as the error python-telegram-bot raises for the same on Telegram."""
    if isinstance(exc, WeComApiError):
        if exc.errcode == limits.ERR_RATE_LIMITED:  # per conversation: 30 a minute
            return RetryAfter(RATE_LIMIT_RETRY_SECONDS)
        if exc.errcode == limits.ERR_CHAT_NOT_REACHABLE:
            return Forbidden(f"Forbidden: WeCom refused to reach the chat ({exc.errcode})")
        return BadRequest(f"WeCom refused the message: {exc.errcode} {exc.errmsg}")
    if isinstance(exc, AnswerTimeout):
        return TimedOut("WeCom did not answer in time")
    if isinstance(exc, ConnectionLost):
        return NetworkError("the WeCom connection is down")
    return exc


def chat_json(chat_id: int, address: ChatAddress) -> dict[str, Any]:
    """A WeCom chat as a Bot API Chat (its SimWatch id; WeCom gives no group title)."""
    if address.kind is ChatKind.GROUP:
        return {"id": chat_id, "type": "group", "title": address.address}
    return {"id": chat_id, "type": "private", "first_name": address.address}


def user_json(user_id: int, userid: str) -> dict[str, Any]:
    """A WeCom person as a Bot API User (WeCom gives a robot the userid only)."""
    return {"id": user_id, "is_bot": False, "first_name": userid}


def split_markdown(text: str, limit: int = limits.MARKDOWN_MAX_BYTES) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-8 bytes, cut at line ends where one is near."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(line.encode()) > limit:  # a line longer than a message: cut by characters
            cut = len(line.encode()[:limit].decode(errors="ignore"))
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    parts.append(current)
    return parts


def keyboard_of(markup: object) -> list[tuple[str, str]]:
    """The inline keyboard's buttons in reading order, as (label, callback data)."""
    if not isinstance(markup, Mapping):
        return []
    buttons: list[tuple[str, str]] = []
    for row in markup.get("inline_keyboard") or ():
        for button in row:
            data = button.get("callback_data")
            if isinstance(data, str):
                buttons.append((str(button.get("text", "")), data))
    return buttons


class WeComRequest(BaseRequest):
    """The Bot API on a WeCom long connection (see the module's docstring)."""

    def __init__(
        self,
        link: Callable[[], Link | None],
        store: Identities,
        state: BridgeState,
        language: Languages,
    ) -> None:
        self._link = link  # None while disconnected: calls fail as Telegram's network errors
        self.store = store
        self.state = state
        self._language = language
        self._session: aiohttp.ClientSession | None = None
        self._methods: dict[str, Callable[[dict[str, Any], RequestData], Awaitable[Any]]] = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_text,
            "editmessagecaption": self._edit_text,
            "editmessagereplymarkup": self._edit_markup,
            "answercallbackquery": self._answer_callback,
            "deletemessage": self._delete,
            "deletemessages": self._delete,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_administrators,
            "getchatmembercount": self._get_member_count,
            "getmycommands": self._empty_list,
        }

    @property
    def read_timeout(self) -> float | None:
        return 30.0

    async def initialize(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        if url.startswith(FILE_URL):
            return 200, await self._download(url.rsplit("/", 1)[-1])  # .../<token>/<file id>
        name = url.rsplit("/", 1)[-1].lower()
        params = dict(request_data.parameters) if request_data is not None else {}
        if name in _ACCEPTED:
            return self._ok(True)
        handler = self._methods.get(name)
        if handler is None:
            raise BadRequest(f"Method {name} is not available on WeCom")
        try:
            return self._ok(await handler(params, request_data or RequestData()))
        except (WeComApiError, AnswerTimeout, ConnectionLost) as exc:
            raise bot_api_error(exc) from None

    @staticmethod
    def _ok(result: object) -> tuple[int, bytes]:
        return 200, json.dumps({"ok": True, "result": result}).encode()

    # --- whom a call is for --------------------------------------------------------------

    def link(self) -> Link:
        link = self._link()
        if link is None:
            raise ConnectionLost("not connected to WeCom")
        return link

    async def address(self, params: Mapping[str, Any]) -> tuple[int, ChatAddress]:
        raw = params.get("chat_id")
        try:
            chat_id = int(str(raw))
        except ValueError:
            raise BadRequest("Chat not found") from None
        address = await self.store.chat_address(chat_id)
        if address is None or address.channel is not Channel.WECOM:
            raise BadRequest("Chat not found")
        return chat_id, address

    @staticmethod
    def _chat_json(chat_id: int, address: ChatAddress) -> dict[str, Any]:
        return chat_json(chat_id, address)

    def _message_json(
        self, message_id: int, chat_id: int, address: ChatAddress, text: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat_json(chat_id, address),
            "from": BOT_USER,
            **({"text": text} if text else {}),
            **extra,
        }

    # --- messages --------------------------------------------------------------------------

    async def _send_message(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        text = str(params.get("text", ""))
        html = params.get("parse_mode") == "HTML"
        return await self.show(chat_id, address, text, params.get("reply_markup"), html=html)

    async def show(
        self,
        chat_id: int,
        address: ChatAddress,
        text: str,
        markup: object,
        *,
        html: bool = True,
    ) -> dict[str, Any]:
        """One screen of the bot (text and buttons) as WeCom messages; its Bot API Message."""
        markdown, shown = convert(text) if html else (text_markdown(text), text)
        buttons = keyboard_of(markup)
        message_id = self.state.ids.next()
        user_id = self.state.replying_user()
        card: dict[str, Any] | None = None
        self.state.choices.pop(chat_id, None)
        if buttons and len(buttons) <= limits.CARD_MAX_BUTTONS and _fits_card(buttons):
            task_id = f"m{message_id}_{secrets.token_hex(4)}"
            title = card_title(shown)  # the screen's first line says what the buttons are for
            card = bodies.button_card(task_id, title, "", buttons)
            self.state.cards[task_id] = (title, {data: label for label, data in buttons})
            await self._no_choices(chat_id, user_id, message_id)
        elif buttons:  # more than a card holds: lettered lines, answered with the letter
            buttons = buttons[:MAX_MENU_OPTIONS]  # what channel_menus keeps
            lang = await self._language(chat_id)
            markdown += "\n\n" + lettered(lang, buttons, group=address.kind is ChatKind.GROUP)
            await self.store.save_menu(chat_id, user_id, message_id, buttons, at=_now())
            self.state.choices[chat_id] = buttons
        else:
            await self._no_choices(chat_id, user_id, message_id)
        if (
            isinstance(markup, Mapping)
            and markup.get("force_reply")
            and address.kind is (ChatKind.GROUP)
        ):
            lang = await self._language(chat_id)
            markdown += "\n\n" + t(lang, "wecom.reply_with_mention")
        await self._deliver(chat_id, address, markdown, card)
        extra = {"reply_markup": markup} if buttons and isinstance(markup, Mapping) else {}
        return self._message_json(message_id, chat_id, address, shown, **extra)

    async def _no_choices(self, chat_id: int, user_id: int, message_id: int) -> None:
        """A screen without lettered choices: the person it answers has none on offer now. One
        for nobody in particular (a time-out, a notice) leaves everyone's as they were."""
        if user_id:
            await self.store.save_menu(chat_id, user_id, message_id, [], at=_now())

    async def _deliver(
        self, chat_id: int, address: ChatAddress, markdown: str, card: dict[str, Any] | None
    ) -> None:
        """The screen as WeCom messages: the first as the reply to the person's message if it
        may be, the rest unprompted. A screen is several messages (its parts, its card): when
        one fails after others went out, python-telegram-bot's caller (the reminder sender)
        sends the whole screen again; what already went out is then not sent twice."""
        link = self.link()
        # the card's buttons, not the card: its task_id is new at every try
        buttons = [(b.get("text"), b.get("key")) for b in (card or {}).get("button_list", [])]
        key = (chat_id, hashlib.sha256(json.dumps([markdown, buttons]).encode()).hexdigest())
        parts = [part for part in split_markdown(markdown) if part]
        reply = self.state.take_reply()
        bodies_out: list[tuple[bool, dict[str, Any]]] = []  # (as the reply?, body)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if reply is not None and index == 0:
                with_card = card if last else None
                stream = bodies.stream_body(secrets.token_hex(8), part, finish=True, card=with_card)
                bodies_out.append((True, stream))
                if with_card is not None:
                    card = None
                continue
            bodies_out.append((False, bodies.markdown_body(part)))
        if card is not None:
            bodies_out.append((False, bodies.card_body(card)))
        done, at = self.state.partial.pop(key, (0, 0.0))
        if time.monotonic() - at > PARTIAL_SECONDS:
            done = 0  # not the sender's retry: that comes within its drain
        for index, (as_reply, body) in enumerate(bodies_out):
            if index < done:
                continue  # delivered by the try that failed after it
            try:
                await self.state.pace.wait(chat_id)
                if as_reply and reply is not None:
                    await link.respond(reply, body)
                else:
                    await link.send(address.address, body)
            except Exception:
                if index > 0:
                    self.state.partial[key] = (index, time.monotonic())
                raise

    async def _edit_text(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        text = str(params.get("text") or params.get("caption") or "")
        html = params.get("parse_mode") == "HTML"
        return await self.show(chat_id, address, text, params.get("reply_markup"), html=html)

    async def _edit_markup(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        markup = params.get("reply_markup")
        if not keyboard_of(markup):  # buttons taken away: the pressed card already shows it
            message_id = int(str(params.get("message_id", 0)) or 0)
            return self._message_json(message_id, chat_id, address, "")
        lang = await self._language(chat_id)
        return await self.show(chat_id, address, t(lang, "wecom.choose"), markup)

    async def _answer_callback(self, params: dict[str, Any], _: RequestData) -> bool:
        # The press itself was acknowledged when it came (``inbound``); a notice ("not yours",
        # "expired") has no toast on WeCom, so it is a short message to the chat.
        text = params.get("text")
        chat_id = self.state.callback_chats.get(str(params.get("callback_query_id")))
        if text and chat_id is not None:
            address = await self.store.chat_address(chat_id)
            if address is not None:
                await self.state.pace.wait(chat_id)
                await self.link().send(address.address, bodies.markdown_body(text_markdown(text)))
        return True

    async def _delete(self, params: dict[str, Any], _: RequestData) -> bool:
        raise BadRequest("Message can't be deleted")

    # --- files ---------------------------------------------------------------------------

    async def _send_document(self, params: dict[str, Any], data: RequestData) -> dict[str, Any]:
        return await self._send_file(params, data, "document", "file")

    async def _send_photo(self, params: dict[str, Any], data: RequestData) -> dict[str, Any]:
        return await self._send_file(params, data, "photo", "image")

    async def _send_file(
        self, params: dict[str, Any], data: RequestData, field: str, media_type: str
    ) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        files = data.multipart_data
        if field not in files:
            raise BadRequest("There is no file to send")
        filename, content, _mime = files[field]
        payload = content if isinstance(content, bytes) else content.read()
        caption = params.get("caption")
        if caption:
            html = params.get("parse_mode") == "HTML"
            await self.show(chat_id, address, str(caption), params.get("reply_markup"), html=html)
        link = self.link()
        name = filename or ("chart.png" if media_type == "image" else "simwatch.txt")
        media_id = await link.upload(payload, name, media_type)
        await self.state.pace.wait(chat_id)
        await link.send(address.address, bodies.file_body(media_id, media_type))
        message_id = self.state.ids.next()
        document = {"file_id": media_id, "file_unique_id": media_id, "file_name": name}
        if media_type == "image":
            photo = [{**document, "width": 1, "height": 1}]
            return self._message_json(message_id, chat_id, address, "", photo=photo)
        return self._message_json(message_id, chat_id, address, "", document=document)

    async def _get_file(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.state.files:
            raise BadRequest("Wrong file_id or the file is temporarily unavailable")
        return {"file_id": file_id, "file_unique_id": file_id, "file_path": file_id}

    async def _download(self, file_id: str) -> bytes:
        incoming = self.state.files.get(file_id)
        if incoming is None:
            raise BadRequest("Wrong file_id or the file is temporarily unavailable")
        await self.initialize()
        assert self._session is not None
        try:
            return await download_file(
                self._session, incoming.url, incoming.aeskey, max_bytes=MAX_DOWNLOAD_BYTES
            )
        except MediaError as exc:
            raise BadRequest(f"File can't be downloaded: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NetworkError(f"WeCom file download failed: {type(exc).__name__}") from None

    # --- chats and members ---------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        return BOT_USER

    async def _empty_list(self, params: dict[str, Any], _: RequestData) -> list[Any]:
        return []

    async def _get_chat(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        return {**self._chat_json(chat_id, address), "accent_color_id": 0, "max_reaction_count": 0}

    async def _member(self, chat_id: int, address: ChatAddress, user_id: int) -> dict[str, Any]:
        person = await self.store.user_address(user_id)
        if person is None or person[0] is not Channel.WECOM:
            raise BadRequest("User not found")
        user = {"id": user_id, "is_bot": False, "first_name": person[2] or person[1]}
        if address.kind is ChatKind.PRIVATE:
            return {"status": "member", "user": user}
        admin = await self.store.group_admin(chat_id)
        if admin == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        return {"status": "member", "user": user}

    async def _get_chat_member(self, params: dict[str, Any], _: RequestData) -> dict[str, Any]:
        chat_id, address = await self.address(params)
        try:
            user_id = int(str(params.get("user_id")))
        except ValueError:
            raise BadRequest("User not found") from None
        return await self._member(chat_id, address, user_id)

    async def _get_administrators(
        self, params: dict[str, Any], _: RequestData
    ) -> list[dict[str, Any]]:
        chat_id, address = await self.address(params)
        admin = await self.store.group_admin(chat_id)
        return [] if admin is None else [await self._member(chat_id, address, admin)]

    async def _get_member_count(self, params: dict[str, Any], _: RequestData) -> int:
        _chat_id, address = await self.address(params)
        return 2 if address.kind is ChatKind.GROUP else 1


def lettered(lang: str, buttons: Sequence[tuple[str, str]], *, group: bool) -> str:
    """Choices as lettered lines (``bot.channels.choices``) and how to answer them."""
    labels = [text_markdown(label) for label, _data in buttons]
    hint = t(lang, "wecom.choices_group" if group else "wecom.choices")
    return "\n".join([to_markdown(hint), *choices.lines(labels)])


CARD_TITLE_CHARS = 26  # WeCom's advice for a card's main title


def card_title(shown: str) -> str:
    """A card's title: the first line of the screen it belongs to, shortened."""
    first = next((line.strip() for line in shown.split("\n") if line.strip()), "") or "👇"
    return first if len(first) <= CARD_TITLE_CHARS else first[: CARD_TITLE_CHARS - 1] + "…"


def _fits_card(buttons: Sequence[tuple[str, str]]) -> bool:
    return all(len(data.encode()) <= limits.CARD_KEY_MAX_BYTES for _label, data in buttons)


def _now() -> datetime:
    return datetime.now(UTC)
