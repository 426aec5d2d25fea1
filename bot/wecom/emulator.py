"""A local stand-in for WeCom's smart-robot long-connection server, for tests.

A websockets server on 127.0.0.1 (plus an aiohttp server for users' encrypted files)
that speaks the frames of bot.wecom.frames, enforces WeCom's rules (subscription, one
connection per robot, reply windows, limits, rate limits, uploads; see emulator_rules)
and records what the robot did as ``WeComEvent``s::

    async with WeComEmulator() as emu:
        conn = WeComConnection(emu.url, emu.bot_id, emu.secret, on_inbound=...)
        ...
        await emu.send_text("alice", "/start")
        [reply] = await emu.wait_for_events(("single", "alice"))

Assumed where WeCom's documentation is silent: unprompted sends reach a chat once a
message from it was delivered to the robot; a message gets one reply message; a group
message reaches the robot only when it @-mentions it; users cannot send files in groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bot.wecom.bodies import DISABLED_KEY
from bot.wecom.emulator_media import FileServer, Uploads
from bot.wecom.emulator_rules import (
    Chat,
    RateLimiter,
    Refusal,
    ReplyWindow,
    WindowKind,
    check_content,
    check_reply,
    mark_reply,
)
from bot.wecom.errors import FrameError
from bot.wecom.frames import (
    CMD_EVENT_CALLBACK,
    CMD_MSG_CALLBACK,
    CMD_PING,
    CMD_RESPOND_MSG,
    CMD_RESPOND_UPDATE,
    CMD_RESPOND_WELCOME,
    CMD_SEND_MSG,
    CMD_SUBSCRIBE,
    CMD_UPLOAD_CHUNK,
    CMD_UPLOAD_FINISH,
    CMD_UPLOAD_INIT,
    MAX_FRAME_BYTES,
    Frame,
    new_req_id,
)
from bot.wecom.limits import (
    CHAT_PER_HOUR,
    CHAT_PER_MINUTE,
    ERR_BAD_CREDENTIALS,
    ERR_CHAT_NOT_REACHABLE,
    ERR_INVALID_PARAM,
    ERR_RATE_LIMITED,
    EVENT_REPLY_SECONDS,
    STREAM_REPLY_SECONDS,
)

EventKind = Literal["respond", "welcome", "update", "send", "file"]
_MEDIA = ("file", "image", "voice", "video")
_REPLY_TYPES = ("stream", "stream_with_template_card", "template_card", *_MEDIA)
_WELCOME_TYPES = ("text", "template_card")
_SEND_TYPES = ("markdown", "template_card", *_MEDIA)
_CHAT_TYPE_CODES = {1: "single", 2: "group"}
# Frame-by-frame DEBUG logs of the server would show the robot's secret; keep them off.
_WIRE_LOG = logging.getLogger("bot.wecom.emulator.wire")
_WIRE_LOG.setLevel(logging.WARNING)  # no frame (a secret) at DEBUG; no chatter in the shell


@dataclass(frozen=True)
class WeComEvent:
    """Something the robot made appear: a reply, welcome, card update, push or file."""

    kind: EventKind
    chat: Chat
    req_id: str
    body: dict[str, Any]
    markdown: str | None
    card: dict[str, Any] | None
    file: tuple[str, bytes] | None
    at: float


@dataclass
class _Fault:
    cmd: str | None  # None: any request but ping and subscribe
    times: int
    delay: float = 0.0
    errcode: int = 0
    errmsg: str = ""

    def matches(self, cmd: str) -> bool:
        if self.cmd is None:
            return cmd not in (CMD_PING, CMD_SUBSCRIBE)
        return self.cmd == cmd


class WeComEmulator:
    """See the module docstring; use it from the event loop that runs it."""

    def __init__(
        self,
        bot_id: str = "bot-test",
        secret: str = "secret-test",
        *,
        robot_name: str = "SimWatch",
        event_reply_seconds: float = EVENT_REPLY_SECONDS,
        stream_reply_seconds: float = STREAM_REPLY_SECONDS,
    ) -> None:
        self.bot_id = bot_id
        self.secret = secret
        self.robot_name = robot_name
        self._event_seconds = event_reply_seconds
        self._stream_seconds = stream_reply_seconds
        self.connections = 0
        self.subscriptions = 0
        self.events: list[WeComEvent] = []
        self._recorded = asyncio.Event()
        self._taken = 0  # events before this index were taken
        self._server: Server | None = None
        self._files = FileServer()
        self._uploads = Uploads()
        self._active: ServerConnection | None = None
        self._windows: dict[str, ReplyWindow] = {}
        self._reachable: dict[str, str] = {}  # chatid → chat type, once it wrote
        self._cards: dict[str, tuple[Chat, dict[str, Any]]] = {}  # task_id → (chat, card)
        # a card replaced for some people only (update with userids): (task_id, userid) → card
        self._card_views: dict[tuple[str, str], dict[str, Any]] = {}
        self._limiter = RateLimiter(CHAT_PER_MINUTE, CHAT_PER_HOUR)
        self._refusals: list[_Fault] = []
        self._slow: list[_Fault] = []
        self._lost: list[_Fault] = []
        self._last_callback: Frame | None = None
        self._last_frame_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self._files.start()
        self._server = await serve(
            self._serve_connection,
            "127.0.0.1",
            0,
            max_size=MAX_FRAME_BYTES,
            ping_interval=None,
            logger=_WIRE_LOG,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._files.stop()

    async def __aenter__(self) -> WeComEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        """A subscribed robot is connected."""
        return self._active is not None

    async def wait_subscriptions(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` subscriptions have succeeded in total."""
        async with asyncio.timeout(timeout):
            while self.subscriptions < count or self._active is None:  # noqa: ASYNC110
                await asyncio.sleep(0.005)  # polling keeps the emulator free of wake-up plumbing

    # --- the robot's side of the wire -------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        self.connections += 1
        subscribed = False
        try:
            async for raw in ws:
                try:
                    frame = Frame.parse(raw)
                except FrameError as exc:
                    self._last_frame_at = time.monotonic()
                    await self._answer(ws, _salvage_req_id(raw), (ERR_INVALID_PARAM, str(exc)))
                    continue
                if frame.cmd != CMD_PING:  # keep-alives are not the robot being busy
                    self._last_frame_at = time.monotonic()
                if frame.cmd is None:
                    continue  # the robot has nothing to answer; ignore stray answers
                if not subscribed:
                    subscribed = await self._subscribe(ws, frame)
                    if not subscribed:
                        return
                    continue
                if ws is self._active:
                    await self._serve_frame(ws, frame)
        except ConnectionClosed:
            pass
        finally:
            if self._active is ws:
                self._active = None

    async def _subscribe(self, ws: ServerConnection, frame: Frame) -> bool:
        if frame.cmd != CMD_SUBSCRIBE:
            await self._answer(ws, frame.req_id, (ERR_INVALID_PARAM, "subscribe first"))
            await ws.close()
            return False
        body = frame.body
        if body.get("bot_id") != self.bot_id or body.get("secret") != self.secret:
            await self._answer(ws, frame.req_id, (ERR_BAD_CREDENTIALS, "invalid bot_id or secret"))
            await ws.close()
            return False
        refusal = self._take_fault(self._refusals, CMD_SUBSCRIBE)  # refuse_next(subscribe)
        if refusal is not None:
            await self._answer(ws, frame.req_id, (refusal.errcode, refusal.errmsg))
            await ws.close()
            return False
        if self._active is not None:
            await self._kick(self._active)
        self._active = ws
        self.subscriptions += 1
        await self._answer(ws, frame.req_id, None)
        return True

    async def _serve_frame(self, ws: ServerConnection, frame: Frame) -> None:
        cmd = frame.cmd or ""
        refusal = self._take_fault(self._refusals, cmd)
        if refusal is not None:
            await self._answer(ws, frame.req_id, (refusal.errcode, refusal.errmsg))
            return
        outcome = self._apply(frame)
        if self._take_fault(self._lost, cmd) is not None:
            return
        slow = self._take_fault(self._slow, cmd)
        if slow is None:
            await self._answer(ws, frame.req_id, outcome)
        else:
            self._spawn(self._answer_later(ws, frame.req_id, outcome, slow.delay))

    def _apply(self, frame: Frame) -> Refusal | dict[str, Any] | None:
        """Carry out one request; a Refusal, an answer body, or None for a bare ok."""
        body, cmd = frame.body, frame.cmd
        if cmd in (CMD_PING, CMD_SUBSCRIBE):
            return None
        if cmd == CMD_RESPOND_MSG:
            return self._reply(frame, "msg", "respond", _REPLY_TYPES)
        if cmd == CMD_RESPOND_WELCOME:
            return self._reply(frame, "enter_chat", "welcome", _WELCOME_TYPES)
        if cmd == CMD_RESPOND_UPDATE:
            return self._update(frame)
        if cmd == CMD_SEND_MSG:
            return self._send(frame)
        if cmd == CMD_UPLOAD_INIT:
            return self._uploads.init(body)
        if cmd == CMD_UPLOAD_CHUNK:
            return self._uploads.chunk(body)
        if cmd == CMD_UPLOAD_FINISH:
            return self._uploads.finish(body)
        return (ERR_INVALID_PARAM, f"unknown cmd {cmd}")

    def _reply(
        self, frame: Frame, window_kind: WindowKind, kind: EventKind, allowed: tuple[str, ...]
    ) -> Refusal | None:
        window = self._windows.get(frame.req_id)
        refusal = check_reply(
            window,
            window_kind,
            frame.body,
            time.monotonic(),
            event_seconds=self._event_seconds,
            stream_seconds=self._stream_seconds,
        ) or self._check_message(frame.body, allowed)
        if refusal is not None or window is None:
            return refusal
        new_message = window.stream_id is None and not window.used
        if new_message and not self._limiter.allow(window.chat, time.monotonic()):
            return (ERR_RATE_LIMITED, "api freq out of limit")
        mark_reply(window, frame.body)
        self._record(kind, window.chat, frame.req_id, frame.body)
        return None

    def _update(self, frame: Frame) -> Refusal | None:
        window = self._windows.get(frame.req_id)
        body = frame.body
        refusal = check_reply(
            window,
            "card_event",
            body,
            time.monotonic(),
            event_seconds=self._event_seconds,
            stream_seconds=self._stream_seconds,
        )
        if refusal is not None or window is None:
            return refusal
        if body.get("response_type") != "update_template_card":
            return (ERR_INVALID_PARAM, "response_type must be update_template_card")
        card = body.get("template_card")
        problem = check_content({"msgtype": "template_card", **body}, ("template_card",), set())
        if problem is not None:
            return problem
        assert isinstance(card, dict)
        if card.get("task_id") != window.task_id:
            return (ERR_INVALID_PARAM, "task_id must be the clicked card's")
        mark_reply(window, body)
        userids = body.get("userids")
        if isinstance(userids, list) and userids:  # replaced for these people only
            for userid in userids:
                self._card_views[(str(window.task_id), str(userid))] = card
        else:
            self._cards[str(window.task_id)] = (window.chat, card)
        self._record("update", window.chat, frame.req_id, body)
        return None

    def _send(self, frame: Frame) -> Refusal | None:
        body = frame.body
        chatid = body.get("chatid")
        chat_type = self._reachable.get(chatid) if isinstance(chatid, str) else None
        if chat_type is None or not isinstance(chatid, str):
            return (ERR_CHAT_NOT_REACHABLE, "chat has not talked to the robot")
        wanted = body.get("chat_type")
        if wanted not in (None, 0) and _CHAT_TYPE_CODES.get(wanted) != chat_type:
            return (ERR_INVALID_PARAM, "chat_type does not match the chat")
        refusal = self._check_message(body, _SEND_TYPES)
        if refusal is not None:
            return refusal
        chat: Chat = (chat_type, chatid)
        if not self._limiter.allow(chat, time.monotonic()):
            return (ERR_RATE_LIMITED, "api freq out of limit")
        self._record("send", chat, frame.req_id, body)
        return None

    def _check_message(self, body: dict[str, Any], allowed: tuple[str, ...]) -> Refusal | None:
        refusal = check_content(body, allowed, set(self._uploads.media))
        if refusal is not None:
            return refusal
        card = body.get("template_card")
        if isinstance(card, dict) and card.get("task_id") in self._cards:
            return (ERR_INVALID_PARAM, "task_id already used by this robot")
        return None

    def _record(self, kind: EventKind, chat: Chat, req_id: str, body: dict[str, Any]) -> None:
        msgtype = str(body.get("msgtype", ""))
        card = body.get("template_card") if isinstance(body.get("template_card"), dict) else None
        if card is not None and kind != "update" and card.get("task_id"):
            self._cards[str(card["task_id"])] = (chat, card)
        file: tuple[str, bytes] | None = None
        if msgtype in _MEDIA:
            stored = self._uploads.media[body[msgtype]["media_id"]]
            file = (stored.filename, stored.data)
            kind = "file"
        item = body.get("stream") if "stream" in body else body.get(msgtype)
        text = item.get("content") if isinstance(item, dict) else None
        self.events.append(WeComEvent(kind, chat, req_id, body, text, card, file, time.time()))
        self._recorded.set()  # wakes wait_for_events at once (a poll would add its interval)

    async def _kick(self, ws: ServerConnection) -> None:
        """Tell a connection another one took over, then close it (as WeCom does)."""
        body = {
            "msgid": secrets.token_hex(8),
            "create_time": int(time.time()),
            "aibotid": self.bot_id,
            "msgtype": "event",
            "event": {"eventtype": "disconnected_event"},
        }
        try:
            await ws.send(Frame(CMD_EVENT_CALLBACK, new_req_id("event"), body).dumps())
            await ws.close()
        except ConnectionClosed:
            pass
        if self._active is ws:
            self._active = None

    async def _answer(
        self, ws: ServerConnection, req_id: str, outcome: Refusal | dict[str, Any] | None
    ) -> None:
        if isinstance(outcome, tuple):
            frame = Frame(None, req_id, {}, outcome[0], outcome[1])
        else:
            frame = Frame(None, req_id, outcome or {}, 0, "ok")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame.dumps())

    async def _answer_later(
        self,
        ws: ServerConnection,
        req_id: str,
        outcome: Refusal | dict[str, Any] | None,
        delay: float,
    ) -> None:
        await asyncio.sleep(delay)
        await self._answer(ws, req_id, outcome)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _take_fault(faults: list[_Fault], cmd: str) -> _Fault | None:
        for fault in faults:
            if fault.matches(cmd):
                fault.times -= 1
                if fault.times <= 0:
                    faults.remove(fault)
                return fault
        return None

    # --- what people do ---------------------------------------------------------------

    async def send_text(
        self, userid: str, text: str, *, chatid: str | None = None, mention: bool = True
    ) -> str:
        """A person writes; in a group only a message @-mentioning the robot reaches it."""
        if chatid is not None:
            if not mention:
                return secrets.token_hex(8)  # WeCom does not deliver it at all
            text = f"@{self.robot_name} {text}"
        return await self._message(userid, chatid, "text", {"content": text})

    async def send_file(
        self,
        userid: str,
        filename: str,
        content: bytes,
        *,
        chatid: str | None = None,
        wrong_key: bool = False,
    ) -> str:
        """A person sends a file (single chats only); it is served encrypted. ``wrong_key``:
        the callback carries another file's key (the download can't be decrypted)."""
        if chatid is not None:
            raise ValueError("WeCom delivers files to robots from single chats only")
        url, aeskey = self._files.publish(filename, content)
        if wrong_key:
            aeskey = self._files.publish("other", b"other")[1]
        item = {"url": url, "aeskey": aeskey, "filename": filename, "file_size": len(content)}
        return await self._message(userid, None, "file", item)

    def reachable(self, userid: str, chatid: str | None = None) -> None:
        """As if the person (or the group) had written to the robot before: pushes reach it."""
        chat = _chat(userid, chatid)
        self._reachable[chat[1]] = chat[0]

    async def send_image(
        self, userid: str, content: bytes = b"\x89PNG", *, chatid: str | None = None
    ) -> str:
        """A person sends a picture (served encrypted, like a file)."""
        url, aeskey = self._files.publish("image.png", content)
        return await self._message(userid, chatid, "image", {"url": url, "aeskey": aeskey})

    async def send_voice(self, userid: str, transcript: str, *, chatid: str | None = None) -> str:
        """A person sends a voice message; WeCom gives the robot its transcript."""
        return await self._message(userid, chatid, "voice", {"content": transcript})

    async def click(
        self, userid: str, task_id: str, event_key: str, *, chatid: str | None = None
    ) -> str:
        """A person clicks a button of a card the robot sent to this chat."""
        chat = _chat(userid, chatid)
        sent = self._cards.get(task_id)
        if sent is None or sent[0] != chat:
            raise ValueError(f"no card {task_id!r} in chat {chat}")
        card = self._card_views.get((task_id, userid), sent[1])  # as this person sees it
        keys = {b.get("key") for b in card.get("button_list") or [] if isinstance(b, dict)}
        if keys and event_key not in keys | {DISABLED_KEY}:
            raise ValueError(f"card {task_id!r} has no button {event_key!r}")
        detail = {"card_type": sent[1].get("card_type"), "event_key": event_key, "task_id": task_id}
        event = {"eventtype": "template_card_event", "template_card_event": detail}
        return await self._event(userid, chatid, event, "card_event", task_id)

    async def enter_chat(self, userid: str) -> str:
        """A person opens the single chat with the robot (first time today)."""
        return await self._event(userid, None, {"eventtype": "enter_chat"}, "enter_chat", None)

    async def duplicate_last(self) -> None:
        """Deliver the last callback again, same msgid and req_id (WeCom's redelivery)."""
        if self._last_callback is None:
            raise LookupError("nothing was delivered yet")
        await self._push(self._last_callback)

    async def _message(
        self, userid: str, chatid: str | None, msgtype: str, item: dict[str, Any]
    ) -> str:
        body = self._callback_body(userid, chatid, msgtype)
        body[msgtype] = item
        frame = Frame(CMD_MSG_CALLBACK, new_req_id("callback"), body)
        self._open_window(frame, "msg", userid, chatid, None)
        await self._push(frame)
        chat = _chat(userid, chatid)
        self._reachable[chat[1]] = chat[0]
        return str(body["msgid"])

    async def _event(
        self,
        userid: str,
        chatid: str | None,
        event: dict[str, Any],
        kind: WindowKind,
        task_id: str | None,
    ) -> str:
        body = self._callback_body(userid, chatid, "event")
        body["event"] = event
        frame = Frame(CMD_EVENT_CALLBACK, new_req_id("event"), body)
        self._open_window(frame, kind, userid, chatid, task_id)
        await self._push(frame)
        return str(body["msgid"])

    def _callback_body(self, userid: str, chatid: str | None, msgtype: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "msgid": secrets.token_hex(12),
            "aibotid": self.bot_id,
            "chattype": "group" if chatid else "single",
            "from": {"userid": userid},
            "create_time": int(time.time()),
            "msgtype": msgtype,
        }
        if chatid:
            body["chatid"] = chatid
        return body

    def _open_window(
        self,
        frame: Frame,
        kind: WindowKind,
        userid: str,
        chatid: str | None,
        task_id: str | None,
    ) -> None:
        chat = _chat(userid, chatid)
        self._windows[frame.req_id] = ReplyWindow(kind, chat, userid, time.monotonic(), task_id)

    async def _push(self, frame: Frame) -> None:
        ws = self._active
        if ws is None:
            raise LookupError("no robot is connected and subscribed")
        self._last_callback = frame
        await ws.send(frame.dumps())

    # --- faults -----------------------------------------------------------------------

    def drop_connection(self) -> None:
        """The network drops the robot's connection (no close handshake)."""
        if self._active is not None:
            self._active.transport.abort()
            self._active = None

    async def take_over(self) -> None:
        """Another process subscribes the robot: the current connection is kicked."""
        if self._active is not None:
            await self._kick(self._active)

    async def send_raw(self, data: str | bytes) -> None:
        """Send the robot arbitrary bytes (malformed frames, unknown commands)."""
        if self._active is None:
            raise LookupError("no robot is connected and subscribed")
        await self._active.send(data)

    def refuse_next(self, cmd: str, errcode: int, errmsg: str, times: int = 1) -> None:
        """Answer the next ``times`` ``cmd`` requests with this error, not applying them."""
        self._refusals.append(_Fault(cmd, times, errcode=errcode, errmsg=errmsg))

    def slow_answers(self, delay: float, times: int = 1, *, cmd: str | None = None) -> None:
        """Apply the next requests at once but answer them ``delay`` seconds late."""
        self._slow.append(_Fault(cmd, times, delay=delay))

    def lose_answers(self, times: int = 1, *, cmd: str | None = None) -> None:
        """Apply the next requests but never answer them (``cmd="ping"`` for pings)."""
        self._lost.append(_Fault(cmd, times))

    def rate_limit(self, per_minute: int, per_hour: int) -> None:
        """Change the per-conversation limits (WeCom: 30 a minute, 1,000 an hour)."""
        self._limiter = RateLimiter(per_minute, per_hour)

    # --- what the robot did -------------------------------------------------------------

    def _pending(self, chat: Chat | None) -> list[WeComEvent]:
        return [e for e in self.events[self._taken :] if chat is None or e.chat == chat]

    def take_events(self, chat: Chat | None = None) -> list[WeComEvent]:
        """Events since the last take (of one chat, or all), oldest first."""
        taken = self._pending(chat)
        if chat is None:
            self._taken = len(self.events)
        else:
            rest = [e for e in self.events[self._taken :] if e.chat != chat]
            self.events[self._taken :] = rest
            self.events[self._taken : self._taken] = taken
            self._taken += len(taken)
        return taken

    async def wait_for_events(
        self,
        chat: Chat | None = None,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline argument reads best in tests
    ) -> list[WeComEvent]:
        """Wait until at least ``count`` events are pending, then take them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._pending(chat)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = [(e.kind, e.markdown) for e in self._pending(chat)]
                raise TimeoutError(f"waited {timeout}s for {count} event(s) in {chat}, got {got}")
            self._recorded.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recorded.wait(), remaining)
        return self.take_events(chat)

    async def wait_idle(self, quiet: float = 0.05, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the robot has sent nothing for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while time.monotonic() - self._last_frame_at < quiet or self._tasks:
            if loop.time() >= deadline:
                raise TimeoutError(f"the robot was still busy after {timeout}s")
            await asyncio.sleep(min(quiet, 0.01))


def _chat(userid: str, chatid: str | None) -> Chat:
    return ("group", chatid) if chatid else ("single", userid)


def _salvage_req_id(raw: str | bytes) -> str:
    """The req_id of a frame that failed checks, if one can be read, to answer it."""
    try:
        data = json.loads(raw)
        req_id = data["headers"]["req_id"]
    except (ValueError, RecursionError, TypeError, KeyError):
        return "unknown"
    return req_id if isinstance(req_id, str) and 0 < len(req_id) <= 256 else "unknown"
