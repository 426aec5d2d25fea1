"""The bot's replies sorted by chat, for many simulated people at once (load tests, benchmarks).

A bot polling the emulator answers its chats in any order. ``ChatQueues`` takes every event the
emulator records and queues it by chat, so that each simulated person waits for its own replies
only::

    async with ChatQueues(emulator) as queues:
        emulator.message_update(chat_id, user_id, "/cards")
        [reply] = await queues.take(chat_id, 1, timeout=20)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Self

from bot.emulator.emulator import BotApiEmulator
from bot.emulator.records import ChatEvent


class ChatQueues:
    def __init__(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator
        self._queues: defaultdict[int, asyncio.Queue[ChatEvent]] = defaultdict(asyncio.Queue)
        self._sorting: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._sorting = asyncio.create_task(self._sort())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sorting is not None:
            self._sorting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sorting

    async def _sort(self) -> None:
        while True:
            try:
                events = await self.emulator.wait_for_events(None, timeout=1.0)
            except TimeoutError:
                continue
            for event in events:
                self._queues[event.chat_id].put_nowait(event)

    async def take(
        self,
        chat_id: int,
        count: int,
        *,
        timeout: float,  # noqa: ASYNC109 - same shape as the emulator's wait_for_events
    ) -> list[ChatEvent]:
        """The chat's next ``count`` events. ``TimeoutError`` if they do not all come within
        ``timeout`` seconds; the chat's queue is then emptied, so that late replies are not
        taken for the replies to what is sent next."""
        queue = self._queues[chat_id]
        try:
            async with asyncio.timeout(timeout):
                return [await queue.get() for _ in range(count)]
        except TimeoutError:
            self._queues[chat_id] = asyncio.Queue()
            raise
