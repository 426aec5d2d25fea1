"""The WeCom channel's update source: what people do in WeCom, as ``telegram.Update`` objects on
the channel application's update queue (python-telegram-bot's custom update source pattern).

- A message is a ``message`` update from the chat (the person for a single chat, the group's
  ``chatid`` for a group) and the person, both with SimWatch ids (``ChannelStore``): a WeCom
  id can never name a Telegram chat. In a group WeCom delivers only messages that mention the
  robot: the mention is taken off, so "@流量卡管家 /cards" is "/cards".
- Letters answering the lettered choices the bot last offered are the press of that choice.
- A click on a card is a ``callback_query``. WeCom lets the pressed card be updated only within
  5 seconds of the click, with the click's req_id: that is done here at once, before the update
  joins the chat's queue (where it may wait behind an /import); the handler's answer follows.
- A file is a ``document`` whose ``file_id`` the bridge downloads and decrypts on ``getFile``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.channels import choices
from bot.channels.wecom.bridge import BOT_USER, Languages, Link, chat_json, user_json
from bot.channels.wecom.identities import Identities
from bot.channels.wecom.markdown import to_markdown as _md
from bot.channels.wecom.markdown import to_plain as _plain
from bot.channels.wecom.state import CURRENT, BridgeState, IncomingFile, ReplyWindow
from bot.chats import Channel, ChatAddress, ChatKind
from bot.i18n import t
from bot.wecom import bodies, frames
from handlers.conversation import in_conversation
from storage.channels import UNPROMPTED

log = logging.getLogger(__name__)

_MENTIONS = re.compile(
    r"^(?:\s*@\S+)+\s*"
)  # "@流量卡管家 ", maybe after others: "@张三 @流量卡管家"
_TASK = re.compile(r"^m(\d{1,18})_[0-9a-f]{1,32}$")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}")
MAX_TEXT_CHARS = 4096  # as a Telegram message: the handlers' limits assume no more

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def without_mention(text: str) -> str:
    """A group message without the mentions it starts with (WeCom delivers a robot only
    messages that mention it; the rest is what was said to it)."""
    return _MENTIONS.sub("", text, count=1)


def _file_size(item: frames.MessageIn) -> int | None:
    size = (
        item.raw.get("file", {}).get("file_size")
        if isinstance(item.raw.get("file"), dict)
        else None
    )
    return size if isinstance(size, int) and size >= 0 else None


class WeComUpdates:
    """Turns the connection's inbound callbacks into updates for ``application``."""

    def __init__(
        self,
        application: AnyApplication,
        store: Identities,
        state: BridgeState,
        link: Callable[[], Link | None],
        language: Languages,
    ) -> None:
        self.application = application
        self.store = store
        self.state = state
        self._link = link
        self._language = language
        self.handled = 0  # callbacks taken in (answered here or put on the queue)
        self._progress = asyncio.Condition()
        # by WeCom chat, while callbacks of it are under way: its lock, and how many wait on it
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self.accepting = True  # False while the process stops: no new updates

    async def on_inbound(self, item: frames.Inbound) -> None:
        if not self.accepting:  # stopping: WeCom shows it undelivered-to-us; nothing half-done
            return
        # The connection hands over each callback in a task of its own: one chat's are taken in
        # one at a time, in the order they came, so "C" then "/help" reach the handlers so. A
        # click's card is updated first, outside that order: WeCom allows it for 5 s only.
        lock, users = self._locks.get(item.chat, (asyncio.Lock(), 0))
        self._locks[item.chat] = (lock, users + 1)
        try:
            acknowledged = await self._acknowledge_click(item)
            async with lock:
                if isinstance(item, frames.EventIn):
                    await self._event(item, acknowledged)
                else:
                    await self._message(item)
        except Exception:  # one bad callback must not stop the next ones
            log.exception("a WeCom callback could not be handled")
        finally:
            lock, users = self._locks[item.chat]
            if users <= 1:
                del self._locks[item.chat]
            else:
                self._locks[item.chat] = (lock, users - 1)
            async with self._progress:
                self.handled += 1
                self._progress.notify_all()

    async def wait_handled(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until ``count`` callbacks in all were taken in (tests and the shell wait on it)."""
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self.handled >= count)

    # --- who and where ---------------------------------------------------------------------

    async def _where(
        self, chattype: str, chatid: str | None, userid: str
    ) -> tuple[int, int, ChatAddress]:
        group = chattype == "group" and bool(chatid)
        kind = ChatKind.GROUP if group else ChatKind.PRIVATE
        address = ChatAddress(Channel.WECOM, kind, chatid if group and chatid else userid)
        now = datetime.now(UTC)
        chat_id = await self.store.chat_id_for(address, at=now)
        user_id = await self.store.user_id_for(userid, at=now)
        if group:  # the first to speak to the robot in a group administers it (README)
            await self.store.claim_group_admin(chat_id, user_id)
        return chat_id, user_id, address

    async def _put(self, update: dict[str, Any], window: ReplyWindow) -> None:
        # The window goes with the update (``begin``): two people writing in a group at once
        # each get their own answer as the reply to their own message.
        self.state.windows[int(update["update_id"])] = window
        await self.application.update_queue.put(Update.de_json(update, self.application.bot))

    async def begin(self, update: object, context: object) -> None:
        """First of every update's handlers: its reply window becomes the chat's (a chat's
        updates are handled one at a time, so what the handlers send answers this one)."""
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        window = self.state.windows.pop(update.update_id, None)
        if window is not None:  # for this update's task only (a ContextVar)
            CURRENT.set(window)

    # --- messages --------------------------------------------------------------------------

    async def _message(self, item: frames.MessageIn) -> None:
        chat_id, user_id, address = await self._where(item.chattype, item.chatid, item.userid)
        window = ReplyWindow(item.req_id, user_id, time.monotonic())
        message: dict[str, Any] = {
            "message_id": self.state.ids.next(),
            "date": int(time.time()),
            "chat": chat_json(chat_id, address),
            "from": user_json(user_id, item.userid),
        }
        if item.msgtype == "file" and item.file_url and item.file_aeskey:
            file_id = f"f{self.state.ids.next()}"
            name = item.file_name or "file"
            self.state.files[file_id] = IncomingFile(item.file_url, item.file_aeskey, name)
            document: dict[str, Any] = {
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_name": name,
            }
            size = _file_size(item)
            if size is not None:  # lets /import refuse a file too big before downloading it
                document["file_size"] = size
            message["document"] = document
            await self._put({"update_id": self.state.next_update_id(), "message": message}, window)
            return
        text = (item.text or "").strip()
        if address.kind is ChatKind.GROUP:
            text = without_mention(text)
            if not text and item.msgtype in ("text", "mixed"):  # only "@robot": how to talk here
                text = "/help"
        if not text:  # an image or a voice message without words: say what the bot reads
            lang = await self._language(chat_id)
            await self._say(address, t(lang, "wecom.text_only"), window, chat_id)
            return
        text = text[:MAX_TEXT_CHARS]
        if await self._answered_menu(chat_id, user_id, address, item.userid, text, window):
            return
        message["text"] = text
        command = _COMMAND.match(text)
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
        await self._put({"update_id": self.state.next_update_id(), "message": message}, window)

    async def _answered_menu(
        self,
        chat_id: int,
        user_id: int,
        address: ChatAddress,
        userid: str,
        text: str,
        window: ReplyWindow,
    ) -> bool:
        """Letters answering the lettered choices on offer: the press of that choice."""
        if len(text) > 4:  # "AB." at most: anything longer is text for the conversation
            return False
        menu = await self.store.menu(chat_id, user_id)
        if menu is None or not menu.options:
            return False
        if in_conversation(self.application, chat_id, user_id):
            # choices shown to nobody in particular (a digest's) do not take the typed answer
            # of someone in the middle of a conversation: "A" may be the label asked for
            unprompted = await self.store.menu(chat_id, UNPROMPTED)
            if unprompted is not None and unprompted.message_id == menu.message_id:
                return False
        index = choices.index_of(text, len(menu.options))
        if index is None:
            if not choices.is_single_letter(text):
                return False  # "ok", "30", "7": an answer to the conversation, not a choice
            lang = await self._language(chat_id)
            count = len(menu.options)
            first, last = choices.code(0, count), choices.code(count - 1, count)
            refusal = t(lang, "wecom.no_such_choice", first=first, last=last)
            await self._say(address, refusal, window, chat_id)
            return True
        _label, data = menu.options[index]
        await self._press(chat_id, user_id, address, userid, menu.message_id, data, window)
        return True

    async def _press(
        self,
        chat_id: int,
        user_id: int,
        address: ChatAddress,
        userid: str,
        message_id: int,
        data: str,
        window: ReplyWindow,
    ) -> None:
        query_id = f"q{self.state.ids.next()}"
        self.state.callback_chats[query_id] = chat_id
        callback = {
            "id": query_id,
            "from": user_json(user_id, userid),
            "chat_instance": str(chat_id),
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat_json(chat_id, address),
                "from": BOT_USER,
                "text": "",
            },
        }
        update = {"update_id": self.state.next_update_id(), "callback_query": callback}
        await self._put(update, window)

    # --- events ----------------------------------------------------------------------------

    def _our_click(self, item: frames.EventIn) -> re.Match[str] | None:
        """The task id's match when ``item`` is a click on a button of a card of ours."""
        if item.event_type != "template_card_event" or not item.event_key or not item.task_id:
            return None
        if item.event_key == bodies.DISABLED_KEY:  # the decided card's inert button
            return None
        known = self.state.cards.get(item.task_id)
        if known is not None and item.event_key not in known[1]:
            return None  # a key that card never had
        return _TASK.fullmatch(item.task_id)

    async def _acknowledge_click(self, item: frames.Inbound) -> int | None:
        """For a click on our card: the chat's id, after updating the card (at once)."""
        if not isinstance(item, frames.EventIn) or self._our_click(item) is None:
            return None
        chat_id, _user_id, _address = await self._where(item.chattype, item.chatid, item.userid)
        await self._acknowledge(chat_id, item)
        return chat_id

    async def _event(self, item: frames.EventIn, acknowledged: int | None) -> None:
        if item.event_type == "enter_chat":
            link = self._link()
            if link is not None:
                lang = await self._language(0)
                welcome = bodies.welcome_text_body(_plain(t(lang, "wecom.welcome")))
                await link.respond_welcome(item.req_id, welcome)
            return
        task = self._our_click(item)
        if task is None or acknowledged is None or item.event_key is None:
            return  # not a click on a card of ours
        chat_id, user_id, address = await self._where(item.chattype, item.chatid, item.userid)
        # no reply req_id: a click is answered unprompted (its req_id only updates the card)
        window = ReplyWindow("", user_id, time.monotonic(), used=True)
        message_id = int(task.group(1))
        await self._press(
            chat_id, user_id, address, item.userid, message_id, item.event_key, window
        )

    async def _acknowledge(self, chat_id: int, item: frames.EventIn) -> None:
        """Update the pressed card at once (WeCom allows it within 5 s of the click), for the
        person who pressed it: its buttons give way to their choice, so they don't press it
        twice. The others keep theirs (the press may be refused: "only the administrator")."""
        link = self._link()
        if link is None or item.task_id is None or item.event_key is None:
            return
        lang = await self._language(chat_id)
        title, labels = self.state.cards.get(item.task_id, ("👇", {}))
        label = labels.get(item.event_key) or t(lang, "wecom.pressed_unknown")
        card = bodies.button_card(
            item.task_id,
            title,
            "",
            [(label, item.event_key)],
            disabled_text=_plain(t(lang, "wecom.pressed", label=label)),
        )
        try:
            await link.update_card(item.req_id, card, [item.userid])
        except Exception as exc:  # late or refused: the answer below still comes
            log.info("the pressed WeCom card was not updated: %s", type(exc).__name__)

    async def _say(
        self, address: ChatAddress, text: str, window: ReplyWindow, chat_id: int
    ) -> None:
        """Answer a message here, without the handlers: as its reply while ``window`` allows
        (never touching whichever update the chat's handlers are busy with)."""
        link: Link | None = self._link()
        if link is None:
            return
        await self.state.pace.wait(chat_id)
        if not window.used and window.open(time.monotonic()):
            window.used = True
            stream = bodies.stream_body(f"s{self.state.ids.next()}", _md(text))
            await link.respond(window.req_id, stream)
        else:
            await link.send(address.address, bodies.markdown_body(_md(text)))
