"""The WeCom side of a running bot: the lease, the long connection, and what it feeds.

WeCom allows one connection per robot, so exactly one process holds it: the one holding the
lease ``wecom:<bot id>`` in the database, renewed while it runs. The others stand by and take
the lease over within ``LEASE_TTL`` when the holder dies; only the holder sends WeCom rows of
the outbox (``link()`` is None elsewhere). A refused subscription (wrong id or secret) and a
takeover by a connection outside SimWatch stop the channel: fighting either would only make
WeCom drop connections back and forth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.channels.wecom.bridge import Languages, Link
from bot.channels.wecom.inbound import WeComUpdates
from bot.channels.wecom.state import BridgeState
from bot.wecom.connection import WeComConnection
from bot.wecom.errors import SubscribeRefused, TakenOver
from storage.base import Storage
from storage.channels import ChannelStore

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=20)
RENEW_SECONDS = 5.0  # well inside the TTL: a slow database round trip never loses the lease
STANDBY_SECONDS = 3.0  # how often a standby asks whether the lease is free


def lease_name(bot_id: str) -> str:
    return f"wecom:{bot_id}"


def process_holder() -> str:
    """This process, as a lease holder names it: host and pid for the operator reading the
    table, and a random part, as two containers may share both (pid 1 on the host network)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class ChannelStopped(Exception):
    """The channel stopped for good; ``key`` is the catalogue key saying why."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class WeComChannel:
    """Holds the lease and the connection, and hands inbound callbacks to ``updates``."""

    def __init__(
        self,
        *,
        url: str,
        bot_id: str,
        secret: str,
        store: ChannelStore,
        state: BridgeState,
        holder: str | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        renew_seconds: float = RENEW_SECONDS,
        standby_seconds: float = STANDBY_SECONDS,
        connection_options: dict[str, Any] | None = None,
    ) -> None:
        self.url, self.bot_id, self._secret = url, bot_id, secret
        self.store, self.state = store, state
        self.holder = holder or process_holder()
        self.lease = lease_name(bot_id)
        self.lease_ttl, self.renew_seconds, self.standby_seconds = (
            lease_ttl,
            renew_seconds,
            standby_seconds,
        )
        self.connection_options = connection_options or {}
        self.connection: WeComConnection | None = None
        self.updates: WeComUpdates | None = None
        self._closing = asyncio.Event()
        self._holding = False
        self._dialing = asyncio.Event()  # set while a connection (of ours) exists
        self._running = asyncio.Event()  # run() is under way
        self._ended = asyncio.Event()  # run() has returned (the lease let go)

    def link(self) -> Link | None:
        """The live connection while this process holds the lease and is subscribed."""
        connection = self.connection
        if connection is None or not self._holding or not connection.connected:
            return None
        return connection

    async def wait_linked(self, timeout: float) -> None:  # noqa: ASYNC109 - as the connection's
        """Until this process holds the lease and is subscribed (``TimeoutError`` after
        ``timeout``): for tests and the shell, which want to talk at once."""
        async with asyncio.timeout(timeout):
            while self.link() is None:
                await self._dialing.wait()
                connection = self.connection
                if connection is not None:
                    await connection.wait_connected(timeout)

    def attach(self, updates: WeComUpdates) -> None:
        self.updates = updates

    async def _acquire(self) -> bool:
        now = datetime.now(UTC)
        return await self.store.acquire_lease(self.lease, self.holder, now=now, ttl=self.lease_ttl)

    async def _try_acquire(self) -> bool:
        """``_acquire``, a database that is away counting as "not now" (it is asked again)."""
        try:
            return await self._acquire()
        except Exception as exc:
            log.warning("WeCom: the lease could not be read (%s); trying again", type(exc).__name__)
            return False

    async def run(self) -> None:
        """Until ``close()``: stand by until the lease is ours, then stay connected. Raises
        ``ChannelStopped`` for a refused subscription or a takeover from outside SimWatch."""
        said_standby = False
        self._running.set()
        try:
            await self._serve(said_standby)
        finally:
            self._running.clear()
            self._ended.set()

    async def _serve(self, said_standby: bool) -> None:
        while not self._closing.is_set():
            if not await self._try_acquire():
                if not said_standby:
                    log.info("WeCom: another process holds the connection; standing by")
                    said_standby = True
                await self._sleep(self.standby_seconds)
                continue
            said_standby = False
            if self._closing.is_set():  # asked to stop while the lease was being taken
                await self.store.release_lease(self.lease, self.holder)
                return
            self._holding = True
            log.info("WeCom: this process holds the connection (lease %s)", self.lease)
            try:
                await self._connected()
            finally:
                self._holding = False
                try:
                    await self.store.release_lease(self.lease, self.holder)
                except Exception as exc:  # it lapses by itself; what stopped us matters more
                    log.warning("WeCom: the lease was not released (%s)", type(exc).__name__)

    async def _connected(self) -> None:
        assert self.updates is not None, "attach() the update source first"
        connection = WeComConnection(
            self.url,
            self.bot_id,
            self._secret,
            on_inbound=self.updates.on_inbound,
            **self.connection_options,
        )
        self.connection = connection
        self._dialing.set()
        renewing = asyncio.create_task(self._renew(connection))
        try:
            await connection.run()
        except SubscribeRefused as exc:  # the caller says so, in the operator's language
            raise ChannelStopped("wecom.refused", errcode=exc.errcode) from None
        except TakenOver:
            if await self._sibling_holds():  # our lease lapsed and a sibling connected: fine
                log.warning("WeCom: another SimWatch process took the connection; standing by")
                return
            raise ChannelStopped("wecom.taken_over") from None
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await connection.close()
            self.connection = None
            self._dialing.clear()

    async def _sibling_holds(self) -> bool:
        """Whether another SimWatch process holds the lease; not knowing (the database is
        away) counts as yes: standing by and asking again is safe, stopping for good is not."""
        try:
            holder = await self.store.lease_holder(self.lease, now=datetime.now(UTC))
        except Exception:
            return True
        return holder is not None and holder != self.holder

    async def _renew(self, connection: WeComConnection) -> None:
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                held = await self._acquire()
            except Exception as exc:  # the database is away: keep going while the lease lasts
                log.warning("WeCom lease not renewed: %s", type(exc).__name__)
                if time.monotonic() - renewed < self.lease_ttl.total_seconds():
                    continue
                held = False  # it has lapsed: another process may hold it by now
            if not held:
                log.warning("WeCom: the lease lapsed or went to another process; disconnecting")
                self._holding = False
                await connection.close()
                return
            renewed = time.monotonic()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop: close the connection and wait (up to ``timeout``) until ``run`` has let go of
        the lease, so that a process starting next takes it over at once."""
        self._closing.set()
        if self.connection is not None:
            await self.connection.close()
        if self._running.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), timeout)


def chat_language(storage: Storage, default: str) -> Languages:
    """A chat's language for the channel's own words (0 or unknown: ``default``)."""

    async def language(chat_id: int) -> str:
        if chat_id:
            chat = await storage.get_chat(chat_id)
            if chat is not None:
                return str(chat.language or chat.default_language or default)
        return default

    return language
