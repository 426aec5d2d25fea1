"""The robot's long connection to WeCom: subscribe, keep alive, reconnect, match answers
to requests by req_id, and hand callbacks to the bot without ever blocking the reader.

Usage::

    conn = WeComConnection(url, bot_id, secret, on_inbound=handle)
    runner = asyncio.create_task(conn.run())   # raises SubscribeRefused / TakenOver
    await conn.wait_connected(10)
    await conn.respond(msg.req_id, stream_body(new_req_id("stream"), "hello"))
    await conn.close(); await runner
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bot.wecom.backoff import backoff_delay
from bot.wecom.bodies import update_card_body
from bot.wecom.dedup import RecentIds
from bot.wecom.errors import (
    AnswerTimeout,
    ConnectionLost,
    FrameError,
    MediaError,
    SubscribeRefused,
    TakenOver,
    WeComApiError,
)
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
    Inbound,
    new_req_id,
    parse_inbound,
)
from bot.wecom.limits import (
    MEDIA_TYPES,
    SUBSCRIBE_PERMANENT_ERRORS,
    UPLOAD_CHUNK_BYTES,
    UPLOAD_MAX_CHUNKS,
)

OnInbound = Callable[[Inbound], Awaitable[None]]
# Consecutive unanswered pings after which the link counts as dead (as the SDK does).
MAX_MISSED_PINGS = 2
_CHUNK_RETRIES = 2
# websockets logs every frame at DEBUG, the subscription (with the secret) included; its
# logger for this connection is pinned at INFO so no log level setting can leak it.
_WIRE_LOG = logging.getLogger("bot.wecom.wire")
_WIRE_LOG.setLevel(logging.INFO)


class WeComConnection:
    """One robot's long connection; see the module docstring."""

    def __init__(
        self,
        url: str,
        bot_id: str,
        secret: str,
        *,
        on_inbound: OnInbound,
        ping_interval: float = 30,
        backoff_min: float = 1,
        backoff_max: float = 30,
        answer_timeout: float = 10,
        logger: logging.Logger | None = None,
        dedup_capacity: int = 10_000,
        dedup_ttl: float = 3_600,
    ) -> None:
        self._url = url
        self._bot_id = bot_id
        self._secret = secret
        self._on_inbound = on_inbound
        self._ping_interval = ping_interval
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._answer_timeout = answer_timeout
        self._log = logger or logging.getLogger("bot.wecom")
        self._seen = RecentIds(dedup_capacity, dedup_ttl)
        self._rng = random.Random()
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._req_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closing = asyncio.Event()
        self._taken_over = False
        self._running = False

    def __repr__(self) -> str:  # never show the secret
        return f"WeComConnection(url={self._url!r}, bot_id={self._bot_id!r})"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 - API shape
        """Wait until subscribed; TimeoutError, or ConnectionLost if run() has ended."""
        if self._connected.is_set():
            return
        waiters = {
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._stopped.wait()),
        }
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._connected.is_set():
            return
        if done:
            raise ConnectionLost("the connection has stopped")
        raise TimeoutError(f"not connected within {timeout}s")

    async def close(self) -> None:
        """Stop for good: run() returns, pending requests fail with ConnectionLost."""
        self._closing.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    # --- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve until close(); raise SubscribeRefused or TakenOver."""
        if self._running:
            raise RuntimeError("run() is already running")
        self._running = True
        self._stopped.clear()
        self._taken_over = False
        attempt = 0
        try:
            while not self._closing.is_set():
                subscribed = await self._session()
                if self._taken_over:
                    self._log.error(
                        "WeCom: another connection subscribed robot %s; this one stops "
                        "(start only one instance per robot)",
                        self._bot_id,
                    )
                    raise TakenOver(f"robot {self._bot_id} was taken over by another connection")
                if self._closing.is_set():
                    break
                attempt = 1 if subscribed else attempt + 1
                delay = backoff_delay(attempt, self._backoff_min, self._backoff_max, self._rng)
                self._log.warning("WeCom: connection lost, reconnecting in %.2fs", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
        finally:
            self._running = False
            self._stopped.set()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    async def _session(self) -> bool:
        """One connection's life; True if it got subscribed before it ended."""
        subscribed = False
        try:
            async with connect(
                self._url,
                max_size=MAX_FRAME_BYTES,
                ping_interval=None,  # WeCom's keep-alive is the application-level ping
                open_timeout=self._answer_timeout,
                close_timeout=min(self._answer_timeout, 2),
                logger=_WIRE_LOG,
            ) as ws:
                self._ws = ws
                reader = asyncio.create_task(self._read(ws))
                pinger: asyncio.Task[None] | None = None
                try:
                    await self._subscribe(ws)
                    subscribed = True
                    self._connected.set()
                    self._log.info("WeCom: robot %s subscribed", self._bot_id)
                    pinger = asyncio.create_task(self._ping(ws))
                    await reader
                finally:
                    self._connected.clear()
                    tasks = [task for task in (reader, pinger) if task is not None]
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except SubscribeRefused:
            raise
        except WeComApiError as exc:  # a busy or failing WeCom refused this subscription
            self._log.warning(
                "WeCom: subscription refused for now (errcode %s: %s)", exc.errcode, exc.errmsg
            )
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ConnectionLost) as exc:
            self._log.warning("WeCom: connection failed: %s", exc.__class__.__name__)
        except AnswerTimeout:
            self._log.warning("WeCom: subscription not answered in time")
        finally:
            self._ws = None
            self._fail_pending()
        return subscribed

    async def _subscribe(self, ws: ClientConnection) -> None:
        """Subscribe on ``ws``; a refusal closes it and raises SubscribeRefused if the
        credentials are wrong (retrying cannot help), else the WeComApiError (retry)."""
        body = {"bot_id": self._bot_id, "secret": self._secret}
        try:
            await self._call(
                ws, CMD_SUBSCRIBE, body, new_req_id(CMD_SUBSCRIBE), self._answer_timeout
            )
        except WeComApiError as exc:
            await ws.close()
            if exc.errcode not in SUBSCRIBE_PERMANENT_ERRORS:
                raise
            self._log.error("WeCom: subscription refused: %s %s", exc.errcode, exc.errmsg)
            raise SubscribeRefused(exc.errcode, exc.errmsg) from None

    async def _ping(self, ws: ClientConnection) -> None:
        missed = 0
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                await self._call(ws, CMD_PING, {}, new_req_id(CMD_PING), self._ping_interval)
                missed = 0
            except WeComApiError as exc:
                self._log.warning("WeCom: ping answered errcode %s", exc.errcode)
            except AnswerTimeout:
                missed += 1
                if missed >= MAX_MISSED_PINGS:
                    self._log.warning("WeCom: %d pings unanswered, dropping the link", missed)
                    ws.transport.abort()
                    return

    async def _read(self, ws: ClientConnection) -> None:
        try:
            await self._read_frames(ws)
        finally:
            self._fail_pending()

    async def _read_frames(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                frame = Frame.parse(raw)
            except FrameError as exc:
                self._log.warning("WeCom: ignored a malformed frame: %s", exc)
                continue
            if frame.cmd in (CMD_MSG_CALLBACK, CMD_EVENT_CALLBACK):
                if self._is_takeover(frame):
                    self._taken_over = True
                    await ws.close()
                    return
                self._dispatch(frame)
            elif frame.is_answer:
                future = self._pending.get(frame.req_id)
                if future is not None and not future.done():
                    future.set_result(frame)
                else:
                    self._log.debug("WeCom: answer to no pending request %s", frame.req_id)
            else:
                self._log.warning("WeCom: ignored a frame with cmd %r", frame.cmd)

    @staticmethod
    def _is_takeover(frame: Frame) -> bool:
        event = frame.body.get("event")
        return isinstance(event, dict) and event.get("eventtype") == "disconnected_event"

    def _dispatch(self, frame: Frame) -> None:
        try:
            inbound = parse_inbound(frame)
        except FrameError as exc:
            self._log.warning("WeCom: ignored a malformed callback: %s", exc)
            return
        except Exception as exc:  # a parser bug must cost this one frame, not the channel
            # The class and the place only: the message could quote the body.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self._log.warning(
                "WeCom: ignored a callback that could not be read: %s at %s:%s",
                exc.__class__.__name__,
                where.filename.rsplit("/", 1)[-1],
                where.lineno,
            )
            return
        if inbound is None:
            return
        if inbound.msgid is not None and not self._seen.check_and_add(inbound.msgid):
            self._log.info("WeCom: dropped a repeated callback %s", inbound.msgid)
            return
        task = asyncio.create_task(self._handle(inbound))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, inbound: Inbound) -> None:
        try:
            await self._on_inbound(inbound)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("WeCom: on_inbound failed for %s", inbound.req_id)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("the connection dropped before the answer"))
        self._pending.clear()

    # --- requests -------------------------------------------------------------------

    async def _call(
        self,
        ws: ClientConnection,
        cmd: str,
        body: dict[str, Any],
        req_id: str,
        timeout: float | None,  # noqa: ASYNC109 - None means no deadline
    ) -> Frame:
        """Send one frame on ``ws`` and wait (up to ``timeout``, None: no limit) for the
        answer carrying its req_id."""
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            try:
                await ws.send(Frame(cmd, req_id, body).dumps())
            except ConnectionClosed:
                raise ConnectionLost("the connection is closed") from None
            try:
                async with asyncio.timeout(timeout):
                    answer = await future
            except TimeoutError:
                raise AnswerTimeout(f"{cmd} {req_id}: no answer in time") from None
        finally:
            if self._pending.get(req_id) is future:
                del self._pending[req_id]
        if answer.errcode:
            raise WeComApiError(answer.errcode, answer.errmsg or "")
        return answer

    async def request(
        self,
        cmd: str,
        body: dict[str, Any],
        *,
        req_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-request deadline
    ) -> Frame:
        """Send one request and return its answer frame.

        Requests sharing a req_id (a stream's refreshes) go one at a time, as WeCom
        answers them by req_id. Raises WeComApiError, ConnectionLost, AnswerTimeout.
        """
        ws = self._ws
        if ws is None or not self._connected.is_set():
            raise ConnectionLost("not connected to WeCom")
        req_id = req_id or new_req_id(cmd)
        lock, users = self._req_locks.get(req_id, (asyncio.Lock(), 0))
        self._req_locks[req_id] = (lock, users + 1)
        try:
            async with asyncio.timeout(timeout or self._answer_timeout):
                async with lock:
                    return await self._call(ws, cmd, body, req_id, None)
        except TimeoutError:
            raise AnswerTimeout(f"{cmd} {req_id}: no answer in time") from None
        finally:
            lock, users = self._req_locks[req_id]
            if users <= 1:
                del self._req_locks[req_id]
            else:
                self._req_locks[req_id] = (lock, users - 1)

    async def respond(self, req_id: str, body: dict[str, Any]) -> Frame:
        """aibot_respond_msg: answer the message callback ``req_id``."""
        return await self.request(CMD_RESPOND_MSG, body, req_id=req_id)

    async def respond_welcome(self, req_id: str, body: dict[str, Any]) -> Frame:
        """aibot_respond_welcome_msg: greet within 5 s of the enter_chat event ``req_id``."""
        return await self.request(CMD_RESPOND_WELCOME, body, req_id=req_id)

    async def update_card(
        self, req_id: str, card: dict[str, Any], userids: list[str] | None = None
    ) -> Frame:
        """aibot_respond_update_msg: replace a clicked card within 5 s of the click."""
        body = update_card_body(card, userids)
        return await self.request(CMD_RESPOND_UPDATE, body, req_id=req_id)

    async def send(self, chatid: str, body: dict[str, Any]) -> Frame:
        """aibot_send_msg: push unprompted to a chat that has written to the robot."""
        return await self.request(CMD_SEND_MSG, {**body, "chatid": chatid})

    async def upload(self, data: bytes, filename: str, media_type: str = "file") -> str:
        """Upload a temporary media file (init, chunks, finish) and return its media_id."""
        if media_type not in MEDIA_TYPES:
            raise MediaError(f"media type {media_type!r} is not one of {MEDIA_TYPES}")
        if not data:
            raise MediaError("an empty file cannot be uploaded")
        chunks = [data[i : i + UPLOAD_CHUNK_BYTES] for i in range(0, len(data), UPLOAD_CHUNK_BYTES)]
        if len(chunks) > UPLOAD_MAX_CHUNKS:
            raise MediaError(f"file of {len(data)} bytes needs over {UPLOAD_MAX_CHUNKS} chunks")
        init = await self.request(
            CMD_UPLOAD_INIT,
            {
                "type": media_type,
                "filename": filename,
                "total_size": len(data),
                "total_chunks": len(chunks),
                "md5": hashlib.md5(data).hexdigest(),  # WeCom's integrity check, not security
            },
        )
        upload_id = init.body.get("upload_id")
        if not isinstance(upload_id, str) or not upload_id:
            raise MediaError("upload init answered no upload_id")
        # Like the SDK: a few chunks in flight (WeCom errs on many), each retried twice.
        workers = len(chunks) if len(chunks) <= 4 else 3 if len(chunks) <= 10 else 2
        queue = list(enumerate(chunks))

        async def worker() -> None:
            while queue:
                index, chunk = queue.pop(0)
                await self._upload_chunk(upload_id, index, chunk)

        await asyncio.gather(*(worker() for _ in range(workers)))
        finish = await self.request(CMD_UPLOAD_FINISH, {"upload_id": upload_id})
        media_id = finish.body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise MediaError("upload finish answered no media_id")
        return media_id

    async def _upload_chunk(self, upload_id: str, index: int, chunk: bytes) -> None:
        body = {
            "upload_id": upload_id,
            "chunk_index": index,  # 0-based, as the SDK sends it
            "base64_data": base64.b64encode(chunk).decode("ascii"),
        }
        for attempt in range(_CHUNK_RETRIES + 1):
            try:
                await self.request(CMD_UPLOAD_CHUNK, body)
                return
            except (WeComApiError, AnswerTimeout):
                if attempt == _CHUNK_RETRIES:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
