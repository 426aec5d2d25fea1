"""Draining the outbox through a ``Messenger`` per channel, within its limits, surviving errors.

A chat's messages go through the messenger of its channel (``OutboxMessage.channel``: Telegram,
WeCom); a sender given no messenger for a channel leaves that channel's chats' messages in the
outbox, unread, for a sender that has one (robots' messages do not depend on it).

Chats are served by a fixed pool of workers: one chat's messages go out in order, one at a time,
while other chats proceed, so a slow or rate-limited chat holds back no one. A global pacer keeps
the bot under Telegram's overall limit; each chat has a budget by its channel and kind
(``SenderPolicy.chat_rate``): a Telegram group its per-group limit, a Telegram private chat
about a message a second, a WeCom conversation its own. A chat that has used its budget (a
group's long digest, an agent's digest of many messages) is set aside, its worker going on with
other chats, until it may send again.

A digest is enqueued unrendered; its worker claims it, renders it from the sent-log as the cards
are now (a card renewed meanwhile is left out) and stores its messages, then sends them (a
digest of one message is stored together with its "sent" mark instead: one write, not two). Each
message is claimed (a lease in the database, so a second sender, e.g. ``remind`` run while the
bot is up, keeps off it), sent, and marked sent right after the send returns: a crash can repeat
only a message Telegram accepted in that instant. Outcomes of a send:

* ``RateLimited``: wait as told and retry, unless the wait is long; then it waits in the outbox;
* ``Transient`` (timeouts, network errors, 5xx): retry with exponential backoff, a few times,
  then leave it (and the chat's later messages, to keep their order) in the outbox, backing off;
* ``Rejected`` (400): record the error, give up on that message, carry on;
* ``Blocked`` (403): mark the chat inactive and drop its pending messages;
* ``Migrated``: move the chat to its new id (its cards follow; into the supergroup's own if it
  has one) and resend there, a digest not stored yet rendered again as the new chat has it.

Every row has a destination (``OutboxMessage.destination``): the chat itself, or one of its push
robots (WeCom, DingTalk, Feishu). A destination is served like a chat above, in order, by one
worker at a time, and fails on its own: a robot's refusals, back-offs and pause never touch the
chat or another robot. A robot's budget is not in this process's memory but in the database
(``RobotGateway.claim_slot``), shared by every sender and every chat pushing to that robot. A
robot renders the digest as its own markdown (``bot.robots.render``); a robot that refuses its
key (``Blocked``) is paused, its chat told once. These APIs take no idempotency key: as with
Telegram, only a message in flight at a crash (or whose answer was lost) can go twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time as time_module
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Protocol

from bot.chats import Channel
from bot.clock import Clock
from bot.i18n import resolve_language, t
from bot.reminders.digest import make_digest, render_digest
from bot.reminders.models import (
    Destination,
    DigestChat,
    DigestPart,
    Keyboard,
    OutboxMessage,
    notes_from_json,
)
from bot.reminders.outcomes import (
    Blocked,
    Delivery,
    Migrated,
    RateLimited,
    Rejected,
    Sent,
    Transient,
)
from bot.robots.models import LIMITS, PushTarget, Robot
from bot.robots.render import (
    from_stored,
    render_robot_digest,
    service_name,
    stored,
)
from storage.reminders import ReminderStore

__all__ = [  # the outcomes are the sender's vocabulary: importable from here too
    "Blocked",
    "Delivery",
    "Migrated",
    "RateLimited",
    "Rejected",
    "Sent",
    "Transient",
]

log = logging.getLogger(__name__)


class Messenger(Protocol):
    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        """Send one HTML message with inline buttons; errors are returned, not raised."""
        ...


class RobotGateway(Protocol):
    """What the sender needs for push robots: the targets, their shared budget, the services."""

    async def target(self, target_id: int) -> PushTarget | None:
        """The push target (None: removed since its message was enqueued)."""
        ...

    async def claim_slot(
        self, robot: Robot, *, interval: float, within: float | None = None
    ) -> float | None:
        """Reserve the robot's next send (every sender shares one budget per robot, kept in
        real time); the seconds until it may go. ``within``: only a slot at most that many
        seconds away, else None and nothing reserved."""
        ...

    async def send(self, target: PushTarget, title: str, text: str) -> Delivery:
        """Send one markdown message; errors are returned, not raised. ``Blocked``: the
        service refused the robot's key or its security settings refused the message."""
        ...


# Telegram's longest flood wait that a deferred message honours (a longer one is a clock that
# ran ahead, see ``OutboxSender.drain``).
LONGEST_RETRY_AFTER = timedelta(days=1)
# How far another sender's clock (or the moment it claimed) may be ahead of this one's.
CLAIM_SKEW = timedelta(hours=1)


@dataclass(frozen=True)
class SenderPolicy:
    concurrency: int = 8  # chats served at once
    # Push targets served at once, by workers of their own: a robot's send is a slow HTTP call
    # elsewhere plus a few database writes, and each robot may take only one every 3 s, so many
    # robots must be in flight at once for their limits, not this process, to bind.
    robot_concurrency: int = 48
    robot_fetch: int = 50_000  # robots' messages read per drain (the rest: the next one)
    # Telegram: about 30/s overall. 29/s leaves room for replies to people using the bot during
    # a drain (python-telegram-bot's AIORateLimiter holds everything to 30/s); a burst as
    # Telegram's and AIORateLimiter's buckets allow one. WeCom documents no limit for the robot
    # as a whole, only per conversation: its chats are paced by their own budgets alone.
    messages_per_second: float = 29.0
    burst: int = 20
    # Telegram: 20/min in one group. Kept as a bucket (this many at once, then one every
    # 60/N s), as AIORateLimiter and the emulator model it; a 429 beyond is still handled.
    group_messages_per_minute: int = 18
    # Telegram: about one message a second in one chat, short bursts tolerated.
    private_messages_per_second: float = 1.0
    private_burst: int = 2
    # WeCom (企业微信), per conversation, group or person alike: about 30 messages a minute and
    # 1,000 an hour are allowed. 20 a minute with a burst of 5 stays well under both (a digest
    # is a few messages; 1,000 an hour would be 50 digests of 20 parts in one chat).
    wecom_messages_per_minute: int = 20
    wecom_burst: int = 5
    transient_attempts: int = 4  # sends per message per drain on network errors
    backoff_base: float = 1.0  # seconds: 1, 2, 4, ... between those attempts
    backoff_max: float = 30.0
    max_wait: float = 30.0  # a longer retry_after: leave it in the outbox instead of waiting
    rate_limited_attempts: int = 5
    max_migrations: int = 2
    claim: timedelta = timedelta(minutes=10)  # a crashed sender's claim expires after this
    later_base: timedelta = timedelta(minutes=1)  # next drain after giving up: 1, 2, 4… min
    later_max: timedelta = timedelta(hours=1)
    fetch: int = 500

    def chat_rate(self, channel: Channel, is_group: bool) -> tuple[float, int]:
        """A chat's budget by its channel and kind: messages a second, and at most at once."""
        if channel is Channel.WECOM:
            return self.wecom_messages_per_minute / 60.0, self.wecom_burst
        if is_group:
            return self.group_messages_per_minute / 60.0, self.group_messages_per_minute
        return self.private_messages_per_second, self.private_burst


@dataclass
class DrainStats:
    sent: int = 0
    failed: int = 0  # rejected by Telegram (400)
    waiting: int = 0  # left in the outbox for a later drain
    blocked_chats: int = 0
    migrated_chats: int = 0
    dropped: int = 0  # digests with nothing left to say when their turn came
    skipped: int = 0  # claimed by another sender
    errors: list[tuple[int, str]] = field(default_factory=list)  # (chat id, error)
    robots_sent: int = 0  # of ``sent``: to push robots
    paused_targets: int = 0  # push targets whose key the service refused
    robot_errors: list[RobotError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RobotError:
    """A push target a drain could not deliver to (the robot, never its token in clear)."""

    chat_id: int
    target_id: int
    robot: Robot
    error: str  # a ``Refusal`` value when the service refused the robot, else the error


class _Verdict(Enum):
    NEXT = auto()  # go on with the chat's next message
    HALT = auto()  # stop the chat for this drain; its remaining messages stay pending
    RENDER = auto()  # render the digest again (the chat moved: see ``_Drain.deliver``)


class _Bucket:
    """A token bucket, ``rate`` a second and up to ``burst`` at once, kept as one instant:
    when it would be empty (GCRA). The shape of Telegram's limits and of PTB's
    ``AIORateLimiter``."""

    __slots__ = ("_due", "_interval", "_tolerance")

    def __init__(self, rate: float, burst: int) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._tolerance = self._interval * (max(burst, 1) - 1)
        self._due = -math.inf

    def delay(self, now: float) -> float:
        """Seconds until a send would fit; under a microsecond counts as none (floating-point
        crumbs, which a clock at a large value cannot even advance by)."""
        delay = max(self._due, now) - now - self._tolerance
        return delay if delay >= 1e-6 else 0.0

    def take(self, now: float) -> float:
        """Reserve the next send; the seconds to wait before making it."""
        delay = self.delay(now)
        self._due = max(self._due, now) + self._interval
        return delay

    def full(self, now: float) -> bool:
        """Refilled entirely: as good as a new bucket."""
        return self._due <= now


class OutboxSender:
    """Drains the outbox. ``messengers``: one per channel this sender can send to; the
    messages of chats of any other channel are not read, and stay pending for a sender that has
    their channel's messenger (the bot's process has them all; ``remind`` may not)."""

    def __init__(
        self,
        store: ReminderStore,
        messengers: Mapping[Channel, Messenger],
        clock: Clock,
        policy: SenderPolicy | None = None,
        *,
        default_language: str,
        robots: RobotGateway | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time_module.monotonic,
    ) -> None:
        self.store = store
        # read at each drain, not copied: a channel's messenger may come and go (WeCom's only
        # while this process holds its connection, bot.serve.LiveMessengers)
        self.messengers = messengers
        self.robots = robots  # None: robots' messages wait for a sender that has them
        self.clock = clock
        self.policy = policy or SenderPolicy()
        self.default_language = default_language
        self.sleep = sleep
        self.monotonic = monotonic
        # Budgets outlive a drain: the next tick's drain must not start a group's minute anew.
        self.pace = _Bucket(self.policy.messages_per_second, self.policy.burst)
        self.chat_budgets: dict[int, _Bucket] = {}

    async def drain(self, *, deadline: float | None = None) -> DrainStats:
        """Send what is pending until the outbox is empty or, if given, ``deadline`` (a
        ``monotonic()`` instant) has passed; what is left waits for the next drain."""
        now = self.monotonic()
        for chat_id in [c for c, b in self.chat_budgets.items() if b.full(now)]:
            del self.chat_budgets[chat_id]
        # Claims and back-offs set by a clock that ran ahead would hold messages for as long
        # as it was ahead: none is ever set further than these from the time it is set. The
        # margin: another sender's claim, taken a moment after ``instant`` (or on a clock a
        # little ahead of this one), is a live claim, not a clock that ran ahead; freed, its
        # message would go twice.
        instant, policy = self.clock.now(), self.policy
        longest_wait = max(policy.later_max, LONGEST_RETRY_AFTER)
        freed = await self.store.lift_holds_beyond(
            claims=instant + policy.claim + CLAIM_SKEW, waits=instant + longest_wait
        )
        if freed:
            log.warning("outbox: freed %d messages held by a clock that ran ahead", freed)
        run = _Drain(self, deadline)
        await run.run()
        return run.stats


# A robot's slot this near is waited for by its worker; a later one sets the robot aside.
ROBOT_INLINE_WAIT = 1.0
# A message goes at most this long after its slot, or takes a new one. Messages then fall in
# [slot, slot + 0.5 s], so a minute holds no more of them than the spacing allows: at 3.05 s,
# slots within 60.5 s number at most 20 (and at 0.61 s, at most 100 a minute and 5 a second).
ROBOT_LATE_TOLERANCE = 0.5


class _Drain:
    """One drain: a producer reading the outbox and a pool of per-destination workers."""

    def __init__(self, sender: OutboxSender, deadline: float | None) -> None:
        self.sender = sender
        self.policy = sender.policy
        self.store = sender.store
        self.clock = sender.clock
        self.deadline = deadline
        self.stats = DrainStats()
        policy = self.policy
        # Destinations in this drain, until served; a chat's id now, if it moved during it.
        self.work: dict[Destination, deque[OutboxMessage]] = {}
        self.targets: dict[int, int] = {}
        self.halted: set[Destination] = set()  # done for this drain; their later rows wait
        self.push_targets: dict[int, PushTarget | None] = {}  # read once a drain; None: gone
        # A robot's claimed slot, as the ``monotonic()`` instant it is due, while set aside for
        # it. Slots are waited for by this clock, not the wall clock the sender is given: that
        # one may be a date fixed for the reminders, standing still (the shell, tests).
        self.slots: dict[Destination, float] = {}
        # Messages this drain holds the claim of, and until when.
        self.claimed: dict[int, datetime] = {}
        # One-message digests rendered but not stored: they are stored when marked sent; and
        # each as it was before rendering (to render it again if its chat moves).
        self.unstored: dict[int, DigestPart] = {}
        self.unrendered: dict[int, OutboxMessage] = {}
        self.queue: asyncio.Queue[Destination | None] = asyncio.Queue(
            maxsize=policy.concurrency * 2
        )
        self.robot_queue: asyncio.Queue[Destination | None] = asyncio.Queue(
            maxsize=policy.robot_concurrency * 2
        )
        self.produced = False
        self.all_served = asyncio.Event()  # set once produced and nothing is left in work
        self.tasks: asyncio.TaskGroup | None = None

    def expired(self) -> bool:
        return self.deadline is not None and self.sender.monotonic() >= self.deadline

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                self.tasks = tasks
                for _ in range(self.policy.concurrency):
                    tasks.create_task(self.worker(self.queue))
                if self.sender.robots is not None:
                    for _ in range(self.policy.robot_concurrency):
                        tasks.create_task(self.worker(self.robot_queue))
                tasks.create_task(self.produce_then_stop())
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None  # the first failure, as if run inline

    async def produce_then_stop(self) -> None:
        await self.produce()
        self.produced = True
        if not self.work:
            self.all_served.set()
        await self.all_served.wait()  # set-aside groups come back to the queue until then
        for _ in range(self.policy.concurrency):
            await self.queue.put(None)
        if self.sender.robots is not None:
            for _ in range(self.policy.robot_concurrency):
                await self.robot_queue.put(None)

    async def produce(self) -> None:
        # Robots and chats are read side by side, each into its own workers' queue: robots
        # that hang (a service down) hold back no chat's digest.
        async with asyncio.TaskGroup() as producers:
            if self.sender.robots is not None:
                producers.create_task(self.produce_robots())
            producers.create_task(self.produce_chats())

    async def produce_chats(self) -> None:
        # Groups first: their per-minute budget makes a long group digest the slowest part
        # of a drain, so their minutes should start early; private chats fill the gaps.
        for groups in (True, False):
            await self.produce_some(groups=groups, robots=False)

    async def produce_robots(self) -> None:
        """Every robot's first message, then every robot's second...: claimed in that order,
        the robots' slots all start now, not one robot's after another's."""
        now, limit = self.clock.now(), self.policy.robot_fetch
        batch = await self.store.pending_robots(now=now, limit=limit)
        for _, push in batch:  # read with their messages: no lookup per destination
            self.push_targets.setdefault(push.id, push)
        await self.enqueue([message for message, _ in batch])

    async def enqueue(self, batch: list[OutboxMessage]) -> None:
        for message in batch:
            destination = message.destination
            if destination in self.halted:
                continue
            queued = self.work.get(destination)
            if queued is not None:
                queued.append(message)  # its worker picks it up, in order
                continue
            self.work[destination] = deque([message])
            await self._queue_of(destination).put(destination)

    async def produce_some(self, *, groups: bool | None, robots: bool) -> None:
        after = 0
        while not self.expired():
            batch = await self.store.pending(
                now=self.clock.now(),
                after_id=after,
                limit=self.policy.fetch,
                groups=groups,
                robots=robots,
                channels=self.sender.messengers.keys(),
            )
            if not batch:
                return
            after = batch[-1].id
            await self.enqueue(batch)

    def _queue_of(self, destination: Destination) -> asyncio.Queue[Destination | None]:
        return self.robot_queue if destination[1] else self.queue

    async def worker(self, queue: asyncio.Queue[Destination | None]) -> None:
        while (destination := await queue.get()) is not None:
            queued = self.work[destination]
            if destination[1]:
                aside = await self.serve_robot(destination, queued)
            else:
                aside = await self.serve(destination, queued)
            if aside:
                continue  # set aside: it comes back to the queue when it may send again
            # No await since serve's last look at the queue: the producer sees it gone.
            del self.work[destination]
            if not destination[1]:
                self.targets.pop(destination[0], None)
            if self.produced and not self.work:
                self.all_served.set()

    async def serve(self, destination: Destination, queued: deque[OutboxMessage]) -> bool:
        """Send one chat's own messages in order; True if the chat was set aside to wait for
        its budget (its messages stay queued)."""
        if not queued:
            return False
        chat_id = destination[0]
        target = self.targets.get(chat_id, chat_id)
        budget = self._chat_budget(chat_id, queued[0])
        while queued:
            if self.expired():
                break
            message = queued.popleft()
            if not message.rendered:
                queued.extendleft(reversed(await self.render(message, target)))
                continue
            wait = budget.delay(self.sender.monotonic())
            if wait > 0:
                queued.appendleft(message)
                if self._set_aside(destination, wait):
                    self.targets[chat_id] = target
                    return True
                break  # the drain ends first: the rest waits for the next one
            await self._keep_claims(message, queued)
            verdict, target = await self.deliver(message, target, budget)
            if verdict is _Verdict.RENDER:
                queued.appendleft(self.unrendered.pop(message.id))
                continue
            if verdict is _Verdict.HALT:
                self.halted.add(destination)
                break
        await self._hand_back(queued)
        return False

    async def _hand_back(self, queued: deque[OutboxMessage]) -> None:
        """Stopped early: hand back the claims on what is left, for the next drain."""
        leftover = [message.id for message in queued if message.id in self.claimed]
        if leftover:
            await self.store.release(leftover)
        queued.clear()

    async def serve_robot(self, destination: Destination, queued: deque[OutboxMessage]) -> bool:
        """Send one push target's messages in order, each in a slot of the robot's budget
        (shared by every sender and chat); True if set aside until its next slot."""
        push = await self._push_target(destination[1])
        if push is None or push.paused:  # removed or paused meanwhile: nothing goes to it
            await self._hand_back(queued)
            return False
        interval = LIMITS[push.robot.service].interval
        while queued:
            if self.expired():
                break
            message = queued.popleft()
            if not message.rendered:
                rendered = await self.render(message, message.chat_id, push)
                queued.extendleft(reversed(rendered))
                continue
            due = self.slots.pop(destination, None)
            if due is None or self._missed(due):
                due = await self._claim_slot(push, interval)
            if due is None:  # its next slot comes after this drain: the next drain's, unclaimed
                queued.appendleft(message)
                break
            wait = due - self.sender.monotonic()
            if wait > ROBOT_INLINE_WAIT:
                queued.appendleft(message)
                self.slots[destination] = due  # kept: it is this destination's turn then
                if self._set_aside(destination, wait):
                    return True
                break  # the drain ends first (cannot happen: the slot was within it)
            if wait > 0:
                await self.sender.sleep(wait)
                if self._missed(due):  # woke too late (a busy process): take a new slot
                    queued.appendleft(message)
                    continue
            await self._keep_claims(message, queued)
            if await self.deliver_robot(message, push, interval) is _Verdict.HALT:
                self.halted.add(destination)
                break
        await self._hand_back(queued)
        return False

    def _missed(self, due: float) -> bool:
        """Too late for the slot: sent now, it could bunch with the robot's next ones (a stalled
        process waking with several slots past) and put more in one minute than it allows."""
        return self.sender.monotonic() - due > ROBOT_LATE_TOLERANCE

    async def _push_target(self, target_id: int) -> PushTarget | None:
        if target_id not in self.push_targets:
            assert self.sender.robots is not None  # robots' rows are read only then
            self.push_targets[target_id] = await self.sender.robots.target(target_id)
        return self.push_targets[target_id]

    async def _claim_slot(self, push: PushTarget, interval: float) -> float | None:
        """The robot's next slot, as the ``monotonic()`` instant it is due; None when it comes
        after this drain's deadline (then none is claimed: a slot nobody uses would push the
        robot's budget on for every sender, and a robot many chats share would never catch
        up)."""
        assert self.sender.robots is not None
        within = None
        if self.deadline is not None:
            # a margin before the end: the send itself takes time
            within = self.deadline - self.sender.monotonic() - ROBOT_INLINE_WAIT
            if within < 0:
                return None
        wait = await self.sender.robots.claim_slot(push.robot, interval=interval, within=within)
        return None if wait is None else self.sender.monotonic() + wait

    async def deliver_robot(
        self, message: OutboxMessage, push: PushTarget, interval: float
    ) -> _Verdict:
        policy, store, clock = self.policy, self.store, self.clock
        robots = self.sender.robots
        assert message.text is not None and robots is not None
        if message.id not in self.claimed:
            now = clock.now()
            if not await store.claim(message.id, now=now, until=now + policy.claim):
                self.stats.skipped += 1
                return _Verdict.NEXT
            self.claimed[message.id] = now + policy.claim
        title, text = from_stored(message.text)
        transient = rate_limited = 0
        while True:
            outcome = await robots.send(push, title, text)
            if isinstance(outcome, Sent):
                content = self._settle(message)
                await store.mark_sent(message.id, 0, at=clock.now(), content=content,
                                      target_id=push.id)  # fmt: skip
                self.stats.sent += 1
                self.stats.robots_sent += 1
                return _Verdict.NEXT
            if isinstance(outcome, Rejected):
                log.warning("push target %s refused message %s: %s", push.id, message.id, outcome)
                content = self._settle(message)
                await store.mark_failed(message.id, outcome.error, at=clock.now(),
                                        content=content, target_id=push.id)  # fmt: skip
                self.stats.failed += 1
                self._robot_error(push, outcome.error)
                return _Verdict.NEXT
            if isinstance(outcome, Blocked):
                await self._pause(message, push, outcome.reason)
                return _Verdict.HALT
            if isinstance(outcome, RateLimited):
                # Someone else posts through this robot too, or a slot was missed: its budget
                # is spent for now. Wait as told, then take a new slot.
                rate_limited += 1
                wait = max(outcome.retry_after, interval)
                if wait > policy.max_wait or rate_limited >= policy.rate_limited_attempts:
                    return (
                        await self._later(message, message.chat_id, "rate limited", wait, push)
                    )[0]
            else:
                assert isinstance(outcome, Transient | Migrated)  # Migrated: not a robot's
                transient += 1
                error = outcome.error if isinstance(outcome, Transient) else "moved"
                if transient >= policy.transient_attempts:
                    return (await self._later(message, message.chat_id, error, push=push))[0]
                wait = min(policy.backoff_base * 2 ** (transient - 1), policy.backoff_max)
            if self.deadline is not None and self.sender.monotonic() + wait >= self.deadline:
                error = "rate limited" if isinstance(outcome, RateLimited) else "robot busy"
                return (await self._later(message, message.chat_id, error, wait, push))[0]
            # A retry is a new request: it takes a slot of its own.
            await self.sender.sleep(wait)
            due = await self._claim_slot(push, interval)
            if due is None:
                return (await self._later(message, message.chat_id, "robot busy", push=push))[0]
            if due > self.sender.monotonic():
                await self.sender.sleep(due - self.sender.monotonic())

    async def _pause(self, message: OutboxMessage, push: PushTarget, reason: str) -> None:
        """The service refused the robot's key (or its security settings, the message): stop
        sending to it and tell its chat, once, in the chat's language."""
        now = self.clock.now()
        lang = resolve_language(
            await self.store.chat_language(push.chat_id), None, self.sender.default_language
        )
        notice = t(
            lang,
            "robot.paused",
            service=service_name(lang, push.robot.service),
            token=push.robot.masked,
            reason=t(lang, f"robot.refusal.{reason}"),
        )
        log.warning("push target %s refused (%s): paused", push.id, reason)
        self._settle(message)
        if await self.store.pause_target(
            push.id, reason, at=now, day=message.digest_date, notice=notice
        ):
            self.stats.paused_targets += 1
        self.push_targets[push.id] = None  # its other rows in this drain: nothing goes
        self._robot_error(push, reason)

    def _robot_error(self, push: PushTarget, error: str) -> None:
        self.stats.robot_errors.append(RobotError(push.chat_id, push.id, push.robot, error))

    async def _keep_claims(self, message: OutboxMessage, queued: deque[OutboxMessage]) -> None:
        """Renew this chat's claims halfway through their life: a very long digest (an agent's
        hundreds of messages at one a second) outlasts a claim, and a lapsed claim would let
        another sender (``remind`` beside the bot) send the same messages again."""
        until = self.claimed.get(message.id)
        now = self.clock.now()
        if until is None or until - now > self.policy.claim / 2:
            return
        held = {m.id: self.claimed[m.id] for m in (message, *queued) if m.id in self.claimed}
        renewed = set(await self.store.renew_claims(held, until=now + self.policy.claim))
        for message_id in held:
            if message_id in renewed:
                self.claimed[message_id] = now + self.policy.claim
            else:  # lapsed and taken: deliver() must claim it anew (and will find it taken)
                del self.claimed[message_id]

    def _set_aside(self, destination: Destination, wait: float) -> bool:
        """Put the destination back in the queue after ``wait`` seconds, unless the drain ends
        first."""
        if self.deadline is not None and self.sender.monotonic() + wait >= self.deadline:
            return False
        assert self.tasks is not None
        self.tasks.create_task(self._requeue(destination, wait))
        return True

    async def _requeue(self, destination: Destination, wait: float) -> None:
        await self.sender.sleep(wait)
        await self._queue_of(destination).put(destination)

    async def render(
        self, message: OutboxMessage, target: int, push: PushTarget | None = None
    ) -> list[OutboxMessage]:
        """Claim an unrendered digest, render it as things are now (for ``push``, a robot,
        as its markdown) and store its messages."""
        now = self.clock.now()
        until = now + self.policy.claim
        found = await self.store.claim_digest(message, chat_id=target, now=now, until=until)
        if found is None:
            self.stats.skipped += 1
            return []
        chat, due = found
        target = chat.chat_id  # where the row is now: the chat may have moved meanwhile
        if push is not None:  # the robot's group is a group: ICCIDs are masked there
            chat = DigestChat(chat.chat_id, True, chat.language)
        digest = make_digest(
            chat,
            message.digest_date,
            due,
            notes_from_json(message.renewed),
            self.sender.default_language,
        )
        if push is None:
            parts = render_digest(digest)
        else:
            service = push.robot.service
            parts = [
                DigestPart(stored(part), "[]")
                for part in render_robot_digest(digest, service, push.source_name)
            ]
        if not parts:
            await self.store.drop(message.id, "nothing left to remind", at=now)
            self.stats.dropped += 1
            return []
        self.claimed[message.id] = until
        if len(parts) == 1:
            # Most digests: send first, store with the "sent" mark (one write, not two). Should
            # the send not end in a mark, the row stays unrendered and is rendered afresh.
            self.unstored[message.id] = parts[0]
            self.unrendered[message.id] = message
            return [
                replace(
                    message,
                    chat_id=target,
                    part=1,
                    parts=1,
                    text=parts[0].text,
                    buttons=parts[0].buttons,
                    renewed=None,
                )
            ]
        messages = await self.store.expand(message, parts, chat_id=target, claimed_until=until)
        self.claimed.update((m.id, until) for m in messages)
        return messages

    async def deliver(
        self, message: OutboxMessage, target: int, budget: _Bucket
    ) -> tuple[_Verdict, int]:
        policy, store, clock = self.policy, self.store, self.clock
        assert message.text is not None
        if message.id not in self.claimed:
            now = clock.now()
            if not await store.claim(message.id, now=now, until=now + policy.claim):
                self.stats.skipped += 1
                return _Verdict.NEXT, target
            self.claimed[message.id] = now + policy.claim
        transient = rate_limited = migrations = 0
        while True:
            await self._pace(budget, message.channel)
            messenger = self.sender.messengers[message.channel]
            outcome = await messenger.send(target, message.text, message.buttons)
            if isinstance(outcome, Sent):
                content = self._settle(message)
                await store.mark_sent(
                    message.id, outcome.message_id, at=clock.now(), content=content
                )
                self.stats.sent += 1
                return _Verdict.NEXT, target
            if isinstance(outcome, Rejected):
                log.warning("chat %s refused digest message %s: %s", target, message.id, outcome)
                content = self._settle(message)
                await store.mark_failed(message.id, outcome.error, at=clock.now(), content=content)
                self.stats.failed += 1
                self.stats.errors.append((target, outcome.error))
                return _Verdict.NEXT, target
            if isinstance(outcome, Blocked):
                log.info("chat %s is unreachable (%s): reminders paused", target, outcome.reason)
                await store.deactivate_chat(target, outcome.reason, at=clock.now())
                self.stats.blocked_chats += 1
                return _Verdict.HALT, target
            if isinstance(outcome, Migrated):
                migrations += 1
                if migrations > policy.max_migrations:
                    return await self._later(message, target, "migrated too often")
                log.info("chat %s moved to %s", target, outcome.new_chat_id)
                # A digest rendered but not stored is rendered again as the new chat has it:
                # the supergroup may have had cards and a digest for the day of its own, merged
                # with the group's (one digest of both, not two).
                again = self.unrendered.get(message.id)
                if again is not None:
                    self._settle(message)
                    self.unrendered[message.id] = again  # for serve() to render again
                    await store.release([message.id])
                await store.migrate_chat(target, outcome.new_chat_id)
                self.stats.migrated_chats += 1
                target = outcome.new_chat_id
                if again is not None:
                    return _Verdict.RENDER, target
                continue
            if isinstance(outcome, RateLimited):
                rate_limited += 1
                wait = outcome.retry_after
                too_long = wait > policy.max_wait or rate_limited >= policy.rate_limited_attempts
                ends_late = self.deadline is not None and (
                    self.sender.monotonic() + wait > self.deadline
                )
                if too_long or ends_late:
                    return await self._later(message, target, "rate limited", wait)
                await self.sender.sleep(wait)
                continue
            transient += 1
            if transient >= policy.transient_attempts:
                return await self._later(message, target, outcome.error)
            await self.sender.sleep(
                min(policy.backoff_base * 2 ** (transient - 1), policy.backoff_max)
            )

    def _settle(self, message: OutboxMessage) -> DigestPart | None:
        """This drain is done with the message: forget its claim; its content if it was sent
        without being stored first (a one-message digest), for the final mark to store."""
        self.claimed.pop(message.id, None)
        if message.id not in self.unstored:
            return None
        self.unrendered.pop(message.id, None)
        return self.unstored.pop(message.id)

    def _chat_budget(self, chat_id: int, message: OutboxMessage) -> _Bucket:
        """The chat's own budget, by its channel and kind (``SenderPolicy.chat_rate``; the
        message carries both from the chat's row). Only one worker at a time serves a chat, so
        nothing else spends it meanwhile."""
        budgets = self.sender.chat_budgets
        budget = budgets.get(chat_id)
        if budget is None:
            budget = _Bucket(*self.policy.chat_rate(message.channel, message.is_group))
            budgets[chat_id] = budget
        return budget

    async def _pace(self, budget: _Bucket, channel: Channel) -> None:
        # serve() sets a chat aside rather than wait for its budget; retries (after a
        # timeout, say) wait here, keeping the chat's order.
        wait = budget.delay(self.sender.monotonic())
        if wait > 0:
            await self.sender.sleep(wait)
        if channel is Channel.TELEGRAM:  # Telegram's limit is the bot's; WeCom's, per chat only
            delay = self.sender.pace.take(self.sender.monotonic())
            if delay > 0:
                await self.sender.sleep(delay)
        budget.take(self.sender.monotonic())

    async def _later(
        self,
        message: OutboxMessage,
        target: int,
        error: str,
        wait: float = 0.0,
        push: PushTarget | None = None,
    ) -> tuple[_Verdict, int]:
        """Give up for this drain: it (and its destination's later messages) stay pending,
        backing off across drains."""
        policy = self.policy
        backoff = min(policy.later_base * 2**message.attempts, policy.later_max)
        until = self.clock.now() + max(backoff, timedelta(seconds=wait))
        log.warning("digest message %s to %s waits until %s: %s", message.id, target, until, error)
        await self.store.defer(message.id, until=until, error=error)
        self._settle(message)  # it stays unrendered if it was never stored: rendered afresh
        self.stats.waiting += 1
        if push is None:
            self.stats.errors.append((target, error))
        else:
            self._robot_error(push, error)
        return _Verdict.HALT, target
