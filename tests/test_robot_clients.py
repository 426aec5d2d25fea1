"""The real ``RobotClient`` against the local robot emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from bot.config import Settings
from bot.reminders.sender import Blocked, Delivery, RateLimited, Rejected, Sent, Transient
from bot.robots.client import (
    RATE_LIMIT_WAIT,
    RobotClient,
    RobotMessage,
    dingtalk_sign,
    feishu_sign,
    payload_size,
)
from bot.robots.emulator import DINGTALK_BLOCK, Fault, RobotEmulator
from bot.robots.models import LIMITS, Refusal, Robot, Service

TOKENS = {
    Service.WECOM: "693a91f6-7a0c-4bc4-97a0-0e2c1f2a5aaa",
    Service.DINGTALK: "9d2c" * 16,
    Service.FEISHU: "5e3d587e-d78e-4a07-bd07-265f269f86fd",
    Service.LARK: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
}
SECRETS = {
    Service.DINGTALK: "SEC" + "7e1f" * 16,
    Service.FEISHU: "nIMtb7r3N9pkXyXdtAbx6e",
    Service.LARK: "Q2w3E4r5T6y7U8i9O0pAsD",
}
SIGNED = (Service.DINGTALK, Service.FEISHU, Service.LARK)
START = 1_796_000_000.0  # the emulator's clock at the start of a test (2026-11-30)
MESSAGE = RobotMessage(title="流量卡到期提醒", text="## 流量卡到期提醒\n- 8986 **0012** 3天后到期")


class Clock:
    """The emulator's clock, moved by the test; ``now`` is the same instant for the client."""

    def __init__(self) -> None:
        self.value = START

    def __call__(self) -> float:
        return self.value

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.value, UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def robots(clock: Clock) -> AsyncIterator[RobotEmulator]:
    async with RobotEmulator(clock=clock, slow=10.0) as emulator:
        yield emulator


@pytest.fixture
async def client(robots: RobotEmulator) -> AsyncIterator[RobotClient]:
    async with RobotClient(robots.bases(), timeout=0.5) as client:
        yield client


def robot(service: Service) -> Robot:
    return Robot(service, TOKENS[service])


def no_credentials(text: str) -> None:
    for value in (*TOKENS.values(), *SECRETS.values()):
        assert value not in text
        assert value[4:-4] not in text  # not even the middle of one


@pytest.mark.parametrize("service", list(Service))
async def test_each_service_delivers(
    service: Service, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(service, TOKENS[service])
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Sent(message_id=0)
    [received] = robots.received(service, TOKENS[service])
    assert received.text == MESSAGE.text
    assert received.title == (None if service is Service.WECOM else MESSAGE.title)
    assert received.at == START
    if service is Service.WECOM:
        assert received.raw == {"msgtype": "markdown", "markdown": {"content": MESSAGE.text}}
    elif service is Service.DINGTALK:
        markdown = {"title": MESSAGE.title, "text": MESSAGE.text}
        assert received.raw == {"msgtype": "markdown", "markdown": markdown}
    else:
        assert received.raw["msg_type"] == "interactive"
        assert "sign" not in received.raw


@pytest.mark.parametrize("service", SIGNED)
async def test_signing(
    service: Service, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(service, TOKENS[service], secret=SECRETS[service])
    # several instants: some signatures hold "+" and "/", which the URL must carry intact
    for step in range(12):
        clock.value = START + step * 7.123
        outcome = await client.send(robot(service), SECRETS[service], MESSAGE, now=clock.now)
        assert outcome == Sent(message_id=0), step
    assert len(robots.received(service, TOKENS[service])) == 12
    signs = [
        dingtalk_sign(SECRETS[service], int((START + step * 7.123) * 1000))
        if service is Service.DINGTALK
        else feishu_sign(SECRETS[service], int(START + step * 7.123))
        for step in range(12)
    ]
    assert any("+" in sign for sign in signs)
    assert any("/" in sign for sign in signs)

    refusal = Refusal.SECURITY if service is Service.DINGTALK else Refusal.SIGNATURE
    wrong = SECRETS[service][:-4] + "zzzz"
    assert await client.send(robot(service), wrong, MESSAGE, now=clock.now) == Blocked(refusal)
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Blocked(refusal)
    # a signature from a clock more than an hour off is refused too
    late = clock.now - timedelta(hours=1, seconds=5)
    outcome = await client.send(robot(service), SECRETS[service], MESSAGE, now=late)
    assert outcome == Blocked(refusal)
    assert len(robots.received(service, TOKENS[service])) == 12


@pytest.mark.parametrize("service", SIGNED)
async def test_keyword_and_ip(
    service: Service, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(service, TOKENS[service], keyword="流量卡")
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Sent(message_id=0)
    other = RobotMessage(title="Reminder", text="3 cards are due")
    refusal = Refusal.SECURITY if service is Service.DINGTALK else Refusal.KEYWORD
    assert await client.send(robot(service), None, other, now=clock.now) == Blocked(refusal)

    robots.register(service, TOKENS[service], allow_ip=False)
    refusal = Refusal.SECURITY if service is Service.DINGTALK else Refusal.IP
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Blocked(refusal)


@pytest.mark.parametrize(
    ("service", "code"),
    [(s, None) for s in Service]
    + [
        (Service.WECOM, 93000),
        (Service.DINGTALK, 300001),
        (Service.DINGTALK, 400102),
        (Service.FEISHU, 19001),
        (Service.LARK, 19001),
    ],
)
async def test_invalid_key_blocks(
    service: Service, code: int | None, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    if code is not None:  # a robot the service knew, removed since
        robots.register(service, TOKENS[service])
        robots.fail(service, TOKENS[service], code)
    outcome = await client.send(robot(service), None, MESSAGE, now=clock.now)
    assert outcome == Blocked(Refusal.INVALID_KEY)


@pytest.mark.parametrize(
    ("service", "code"),
    [
        (Service.WECOM, 45009),
        (Service.DINGTALK, 410100),
        (Service.FEISHU, 11232),
        (Service.LARK, 11232),
    ],
)
async def test_rate_limit_codes(
    service: Service, code: int, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(service, TOKENS[service])
    robots.fail(service, TOKENS[service], code, times=2)
    for _ in range(2):
        outcome = await client.send(robot(service), None, MESSAGE, now=clock.now)
        assert outcome == RateLimited(RATE_LIMIT_WAIT[service])
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Sent(message_id=0)
    assert RATE_LIMIT_WAIT[Service.DINGTALK] >= DINGTALK_BLOCK  # retrying sooner is refused


async def test_emulated_rate_limits(
    robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    for service in Service:
        robots.register(service, TOKENS[service])

    async def send(service: Service) -> Delivery:
        return await client.send(robot(service), None, MESSAGE, now=clock.now)

    # WeCom: 20 in any 60 s; the 21st waits until the first leaves the window
    for _ in range(20):
        assert await send(Service.WECOM) == Sent(message_id=0)
        clock.value += 1.0
    assert isinstance(await send(Service.WECOM), RateLimited)
    clock.value = START + 60.0
    assert await send(Service.WECOM) == Sent(message_id=0)

    # DingTalk: over the limit once, refused for ten minutes, whatever the window says
    clock.value = START
    for _ in range(20):
        assert await send(Service.DINGTALK) == Sent(message_id=0)
    assert isinstance(await send(Service.DINGTALK), RateLimited)
    clock.value = START + 300.0
    assert isinstance(await send(Service.DINGTALK), RateLimited)
    clock.value = START + DINGTALK_BLOCK + 1.0
    assert await send(Service.DINGTALK) == Sent(message_id=0)

    # Feishu: 5 a second and 100 a minute
    clock.value = START
    for _ in range(5):
        assert await send(Service.FEISHU) == Sent(message_id=0)
    assert isinstance(await send(Service.FEISHU), RateLimited)
    clock.value += 1.0
    for _ in range(95):  # 4 a second
        clock.value += 0.25
        assert await send(Service.FEISHU) == Sent(message_id=0)
    clock.value += 1.0
    assert isinstance(await send(Service.FEISHU), RateLimited)

    # strictly spaced as LIMITS says, a robot is never refused
    clock.value = START + 10_000
    for _ in range(200):
        assert await send(Service.LARK) == Sent(message_id=0)
        clock.value += LIMITS[Service.LARK].interval
    assert robots.refusals == {
        robot(Service.WECOM): 1,
        robot(Service.DINGTALK): 2,
        robot(Service.FEISHU): 2,
    }
    assert len(robots.received(Service.FEISHU, TOKENS[Service.FEISHU])) == 100


@pytest.mark.parametrize("service", list(Service))
async def test_transient_failures(
    service: Service, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(service, TOKENS[service])
    token = TOKENS[service]
    for fault in (Fault.HTTP_500, Fault.TIMEOUT, Fault.DROP, Fault.NOT_JSON):
        robots.fail(service, token, fault)
        outcome = await client.send(robot(service), None, MESSAGE, now=clock.now)
        assert isinstance(outcome, Transient), fault
    assert robots.received(service, token) == []
    # accepted, the answer lost: the sender will retry, and the group sees it twice
    robots.fail(service, token, Fault.LOSE_ANSWER)
    assert isinstance(await client.send(robot(service), None, MESSAGE, now=clock.now), Transient)
    assert await client.send(robot(service), None, MESSAGE, now=clock.now) == Sent(message_id=0)
    assert len(robots.received(service, token)) == 2


async def test_other_codes_are_rejected(
    robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    robots.register(Service.WECOM, TOKENS[Service.WECOM])
    robots.fail(Service.WECOM, TOKENS[Service.WECOM], 40008)
    outcome = await client.send(robot(Service.WECOM), None, MESSAGE, now=clock.now)
    assert outcome == Rejected("wecom error 40008: invalid message type")


@pytest.mark.parametrize("service", list(Service))
async def test_size_limit_boundary(
    service: Service, robots: RobotEmulator, client: RobotClient, clock: Clock
) -> None:
    """A message of exactly ``max_bytes`` by ``payload_size`` is accepted, a byte more refused
    (Feishu's limit counts the whole body: a signed robot, whose body is the longest)."""
    secret = SECRETS.get(service)
    robots.register(service, TOKENS[service], secret=secret)
    limit = LIMITS[service].max_bytes
    head = '流量卡 "quoted" \\ line\n'  # multi-byte and JSON-escaped characters
    base = payload_size(service, RobotMessage(MESSAGE.title, head))
    fits = RobotMessage(MESSAGE.title, head + "x" * (limit - base))
    assert payload_size(service, fits) == limit
    assert await client.send(robot(service), secret, fits, now=clock.now) == Sent(message_id=0)
    over = RobotMessage(MESSAGE.title, fits.text + "y")
    assert payload_size(service, over) == limit + 1
    outcome = await client.send(robot(service), secret, over, now=clock.now)
    assert isinstance(outcome, Rejected)
    assert len(robots.received(service, TOKENS[service])) == 1


async def test_no_credentials_in_errors_or_logs(
    robots: RobotEmulator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes: list[Delivery] = []
    async with RobotClient(robots.bases(), timeout=0.5) as client:
        for service in Service:
            secret = SECRETS.get(service)
            robots.register(service, TOKENS[service], secret=secret, keyword=None)
            for fault in (*Fault, 40058, 460101, 19036, 9499):
                robots.fail(service, TOKENS[service], fault)
                outcomes.append(await client.send(robot(service), secret, MESSAGE, now=clock.now))
            if secret is not None:
                wrong = secret[:-1] + "Z"
                outcomes.append(await client.send(robot(service), wrong, MESSAGE, now=clock.now))
    # nobody listening: aiohttp's connection errors name the host, never the URL's rest
    url = robots.url
    await robots.stop()
    async with RobotClient({s: url for s in Service}, timeout=0.5) as client:
        for service in Service:
            secret = SECRETS.get(service)
            outcomes.append(await client.send(robot(service), secret, MESSAGE, now=clock.now))
    assert all(not isinstance(outcome, Sent) for outcome in outcomes)
    for outcome in outcomes:
        no_credentials(str(outcome))
        no_credentials(repr(outcome))
    no_credentials(caplog.text)
    assert "robot Robot(wecom, 693a…5aaa)" in caplog.text


async def test_old_feishu_answer_and_settings(clock: Clock) -> None:
    """Feishu's older answer ({"StatusCode": 0}) counts as sent; a service's error text quoting
    the key is kept without it; the client takes its bases from the settings."""

    async def old(request: web.Request) -> web.Response:
        return web.json_response({"StatusCode": 0, "StatusMessage": "success", "Extra": None})

    async def echo(request: web.Request) -> web.Response:
        # a service quoting what it was sent: the URL (the key in it) and the body
        said = f"bad {request.url} key={request.query['key']} {await request.text()}"
        return web.json_response({"errcode": 40035, "errmsg": said})

    app = web.Application()
    app.router.add_post("/open-apis/bot/v2/hook/{token}", old)
    app.router.add_post("/cgi-bin/webhook/send", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        settings = Settings(feishu_api_base=url + "/", wecom_api_base=url)
        async with RobotClient.from_settings(settings) as client:
            assert client.bases[Service.FEISHU] == url
            assert client.bases[Service.LARK] == "https://open.larksuite.com"
            outcome = await client.send(robot(Service.FEISHU), None, MESSAGE, now=clock.now)
            assert outcome == Sent(message_id=0)
            echoed = await client.send(robot(Service.WECOM), None, MESSAGE, now=clock.now)
            assert isinstance(echoed, Rejected)
            assert echoed.error.startswith("wecom error 40035: bad http://127.0.0.1:")
            assert "693a…5aaa" in echoed.error
            no_credentials(str(echoed))
    finally:
        await runner.cleanup()
