"""The push robots' side of the outbox: ``bot.reminders.sender.RobotGateway`` over the push
targets' store (the targets and each robot's shared budget) and the services' HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.clock import Clock
from bot.config import Settings
from bot.reminders.sender import Delivery
from bot.robots.client import RobotClient, RobotMessage
from bot.robots.models import PushTarget, Robot
from storage.factory import Stores
from storage.push import PushStore


class PushGateway:
    """``clock`` is the real time (the services' limits and signatures are in it), not a date
    fixed for the reminders."""

    def __init__(self, store: PushStore, client: RobotClient, clock: Clock) -> None:
        self.store = store
        self.client = client
        self.clock = clock

    async def target(self, target_id: int) -> PushTarget | None:
        return await self.store.target(target_id)

    async def claim_slot(
        self, robot: Robot, *, interval: float, within: float | None = None
    ) -> float | None:
        now = self.clock.now()
        slot = await self.store.claim_slot(robot, now=now, interval=interval, within=within)
        return None if slot is None else max((slot - now).total_seconds(), 0.0)

    async def send(self, target: PushTarget, title: str, text: str) -> Delivery:
        message = RobotMessage(title=title, text=text)
        return await self.client.send(target.robot, target.secret, message, now=self.clock.now())


@asynccontextmanager
async def open_robots(
    settings: Settings, stores: Stores, clock: Clock
) -> AsyncIterator[PushGateway]:
    """The push robots of ``stores``' database, reached at the configured API bases."""
    client = RobotClient.from_settings(settings)
    await client.start()
    try:
        yield PushGateway(stores.push, client, clock)
    finally:
        await client.close()
