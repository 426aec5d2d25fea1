"""Shared helpers of the WeCom tests: a robot connection running against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bot.wecom.connection import WeComConnection
from bot.wecom.emulator import WeComEmulator
from bot.wecom.frames import Inbound

FAST = {"ping_interval": 0.05, "backoff_min": 0.01, "backoff_max": 0.05, "answer_timeout": 0.5}


@dataclass
class Robot:
    """A connection plus everything it received."""

    conn: WeComConnection
    task: asyncio.Task[None]
    inbox: list[Inbound] = field(default_factory=list)

    async def next_inbound(self, count: int = 1, timeout: float = 2.0) -> list[Inbound]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.inbox) < count:  # noqa: ASYNC110 - polling a test inbox
                await asyncio.sleep(0.005)
        return self.inbox[:count]


@contextlib.asynccontextmanager
async def running(
    emu: WeComEmulator, *, secret: str | None = None, **options: Any
) -> AsyncIterator[Robot]:
    """A subscribed robot; closed (and its run() awaited) on exit."""
    inbox: list[Inbound] = []

    async def on_inbound(item: Inbound) -> None:
        inbox.append(item)

    kwargs = {**FAST, "on_inbound": on_inbound, **options}
    conn = WeComConnection(emu.url, emu.bot_id, secret or emu.secret, **kwargs)
    robot = Robot(conn, asyncio.create_task(conn.run()), inbox)
    try:
        yield robot
    finally:
        await conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(robot.task, 5)
