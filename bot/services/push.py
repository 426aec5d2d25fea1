"""Push targets, as a chat manages them: add a robot (tested first, saved only if the test
arrived), send it a test, remove it, list them. No Telegram here: the handlers word the results.

A test message is a real message to the robot's group, so it takes a slot of the robot's shared
budget (``PushStore.claim_slot``) like a digest does; a slot a few seconds away is waited for, a
later one (a robot busy with digests) is answered "try again in N s" rather than holding the
chat's update that long.
"""

from __future__ import annotations

import asyncio
import builtins
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.clock import Clock
from bot.i18n import catalogue
from bot.models import DEFAULT_LANGUAGE
from bot.reminders.outcomes import Blocked, Delivery, RateLimited, Rejected, Sent, Transient
from bot.robots.client import RobotClient, RobotMessage
from bot.robots.models import LIMITS, MAX_TARGETS_PER_CHAT, PushTarget, Refusal, Robot
from bot.robots.render import markdown_safe
from bot.robots.webhooks import WebhookError, WebhookProblem, check_secret, parse_webhook
from storage.push import PushStore

MAX_SLOT_WAIT = 5.0  # seconds a test waits for its robot's slot before answering "busy"
TEST_COOLDOWN = 60.0  # seconds between two tests of one target
OK = "ok"  # ``PushTarget.last_result`` of a delivery that arrived


class Problem(StrEnum):
    """Why nothing was added, tested or removed (the handler's text is ``push.problem.*``)."""

    URL = "url"  # the URL or the secret (``Failure.webhook`` says what)
    REFUSED = "refused"  # the service refused the key, or a security setting the message
    BUSY = "busy"  # the robot's budget is taken for a while (``Failure.wait`` seconds)
    TOO_SOON = "too_soon"  # tested (or delivered to) under a minute ago (``Failure.wait``)
    RATE_LIMITED = "rate_limited"  # the service said too many messages
    UNREACHABLE = "unreachable"  # 5xx, a time-out, no connection
    REJECTED = "rejected"  # any other answer (``Failure.error``: its code and message)
    FULL = "full"  # the chat has MAX_TARGETS_PER_CHAT targets
    NOT_FOUND = "not_found"  # no such target in this chat (removed, or a number out of range)


@dataclass(frozen=True, slots=True)
class Failure:
    problem: Problem
    webhook: WebhookProblem | None = None  # Problem.URL
    refusal: Refusal | None = None  # Problem.REFUSED
    wait: int = 0  # Problem.BUSY: seconds until its slot
    error: str | None = None  # Problem.REJECTED (no token in it: the client scrubs it)
    count: int = 0  # Problem.NOT_FOUND: how many targets the chat has; FULL: the maximum

    @property
    def code(self) -> str:
        """What ``PushTarget.last_result`` keeps for a failed test."""
        if self.refusal is not None:
            return self.refusal.value
        if self.problem is Problem.REJECTED and self.error:
            return self.error
        return self.problem.value


@dataclass(frozen=True, slots=True)
class AddResult:
    target: PushTarget | None = None  # saved (tested and arrived)
    again: bool = False  # the chat had this robot already: updated, and active again
    failure: Failure | None = None
    robot: Robot | None = None  # what the URL named, when it could be read


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: PushTarget | None = None  # as it is after the test
    failure: Failure | None = None
    resumed: bool = False  # it was paused and the test arrived: digests go to it again


@dataclass(frozen=True, slots=True)
class RemoveResult:
    target: PushTarget | None = None  # what was removed
    failure: Failure | None = None


def _template(lang: str, key: str) -> str:
    found = catalogue(lang).get(key)
    return found if found is not None else catalogue(DEFAULT_LANGUAGE)[key]


def probe_message(lang: str, source_name: str | None) -> RobotMessage:
    """The message a robot gets when it is added or tested: it says which SimWatch chat added it,
    and carries 流量卡 (in every language: tests/test_push_flow.py) for robots whose keyword it
    is. The chat's name is neutralised: a title can never become a link or a mention there."""
    title = _template(lang, "push.robot_test.title")
    if source_name:
        # Filled by hand, not with t(): that escapes for Telegram's HTML; this is markdown.
        text = _template(lang, "push.robot_test.text").format(chat=markdown_safe(source_name))
    else:
        text = _template(lang, "push.robot_test.text_unnamed")
    return RobotMessage(title=title, text=text)


def _failure(outcome: Delivery) -> Failure | None:
    if isinstance(outcome, Sent):
        return None
    if isinstance(outcome, Blocked):
        try:
            return Failure(Problem.REFUSED, refusal=Refusal(outcome.reason))
        except ValueError:
            return Failure(Problem.REJECTED, error=outcome.reason)
    if isinstance(outcome, RateLimited):
        return Failure(Problem.RATE_LIMITED)
    if isinstance(outcome, Transient):
        return Failure(Problem.UNREACHABLE)
    if isinstance(outcome, Rejected):
        return Failure(Problem.REJECTED, error=outcome.error)
    return Failure(Problem.REJECTED, error=type(outcome).__name__)


class PushService:
    def __init__(
        self,
        store: PushStore,
        client: RobotClient,
        clock: Clock,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = MAX_SLOT_WAIT,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait

    async def _send_test(
        self, robot: Robot, secret: str | None, lang: str, source_name: str | None
    ) -> Failure | None:
        """Send the test message in the robot's next slot: None if it arrived."""
        now = self.clock.now()
        interval = LIMITS[robot.service].interval
        slot = await self.store.claim_slot(robot, now=now, interval=interval, within=self.max_wait)
        if slot is None:  # busy for longer: nothing claimed, so asking again delays nobody
            after = await self.store.next_slot(robot)
            wait = (after - now).total_seconds() if after is not None else self.max_wait
            return Failure(Problem.BUSY, wait=max(math.ceil(wait), 1))
        wait = (slot - now).total_seconds()
        if wait > 0:
            await self.sleep(wait)
        message = probe_message(lang, source_name)
        return _failure(await self.client.send(robot, secret, message, now=self.clock.now()))

    async def add(
        self,
        chat_id: int,
        url: str,
        secret: str | None,
        *,
        added_by: int | None,
        source_name: str | None,
        is_group: bool,
        lang: str,
    ) -> AddResult:
        """Read the URL (and secret), send the robot a test message, and only if it arrived
        save it as the chat's target; a robot the chat has already is updated."""
        try:
            robot = parse_webhook(url)
        except WebhookError as error:
            return AddResult(failure=Failure(Problem.URL, webhook=error.reason))
        if secret is not None:
            try:
                secret = check_secret(robot.service, secret)
            except WebhookError as error:
                return AddResult(failure=Failure(Problem.URL, webhook=error.reason), robot=robot)
        targets = await self.store.targets(chat_id)
        again = any(target.robot == robot for target in targets)
        if not again and len(targets) >= MAX_TARGETS_PER_CHAT:
            full = Failure(Problem.FULL, count=MAX_TARGETS_PER_CHAT)
            return AddResult(failure=full, robot=robot)
        failure = await self._send_test(robot, secret, lang, source_name)
        if failure is not None:
            if failure.problem is not Problem.BUSY:  # (busy: the budget is others' too)
                await self.store.forget_unused(robot)  # a refused robot leaves nothing behind
            return AddResult(failure=failure, robot=robot)  # nothing saved
        now = self.clock.now()
        target = await self.store.add_target(
            chat_id,
            robot,
            secret=secret,
            source_name=source_name,
            added_by=added_by,
            at=now,
            is_group=is_group,
        )
        if target is None:  # filled up meanwhile (another administrator)
            full = Failure(Problem.FULL, count=MAX_TARGETS_PER_CHAT)
            return AddResult(failure=full, robot=robot)
        await self.store.record_result(target.id, OK, at=now)
        return AddResult(target=await self.store.target(target.id), again=again, robot=robot)

    async def find(self, chat_id: int, target_id: int) -> PushTarget | None:
        """The chat's target with this id (another chat's id finds nothing)."""
        target = await self.store.target(target_id)
        return target if target is not None and target.chat_id == chat_id else None

    async def test(self, chat_id: int, target_id: int, lang: str) -> ProbeResult:
        """Send the target a test message now; its result is its last delivery. A paused target
        whose test arrives is active again (its owner fixed the robot)."""
        target = await self.find(chat_id, target_id)
        if target is None:
            return ProbeResult(failure=Failure(Problem.NOT_FOUND))
        # One test a minute per target: pressing again and again must not spend a robot's
        # budget (shared with other chats) nor flood its group.
        since = (self.clock.now() - target.last_at).total_seconds() if target.last_at else None
        if since is not None and 0 <= since < TEST_COOLDOWN:
            wait = math.ceil(TEST_COOLDOWN - since)
            return ProbeResult(target=target, failure=Failure(Problem.TOO_SOON, wait=wait))
        failure = await self._send_test(target.robot, target.secret, lang, target.source_name)
        now = self.clock.now()
        if failure is not None:
            if failure.problem not in (Problem.BUSY, Problem.TOO_SOON):  # nothing was sent
                await self.store.record_result(target.id, failure.code, at=now)
            return ProbeResult(target=await self.store.target(target.id), failure=failure)
        if target.paused:
            await self.store.resume_target(chat_id, target.id)
        await self.store.record_result(target.id, OK, at=now)
        return ProbeResult(target=await self.store.target(target.id), resumed=target.paused)

    async def remove(
        self, chat_id: int, *, number: int | None = None, target_id: int | None = None
    ) -> RemoveResult:
        """Remove the chat's target numbered ``number`` in its list (1…), or with this id (a
        button). Its undelivered messages go with it."""
        targets = await self.store.targets(chat_id)
        if number is not None:
            chosen = targets[number - 1] if 1 <= number <= len(targets) else None
        else:
            chosen = next((t for t in targets if t.id == target_id), None)
        if chosen is None or not await self.store.remove_target(chat_id, chosen.id):
            return RemoveResult(failure=Failure(Problem.NOT_FOUND, count=len(targets)))
        await self.store.forget_unused(chosen.robot)  # its token too, if no chat uses it now
        return RemoveResult(target=chosen)

    # last: a method named ``list`` shadows the builtin in the class body below it
    async def list(self, chat_id: int) -> builtins.list[PushTarget]:
        """The chat's targets, in the order (and with the numbers) the chat sees them."""
        return await self.store.targets(chat_id)
