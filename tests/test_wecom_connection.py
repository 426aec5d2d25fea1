"""The real WeComConnection against the local WeCom emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

import pytest

from bot.wecom.bodies import button_card, file_body, markdown_body, send_body, stream_body
from bot.wecom.connection import WeComConnection
from bot.wecom.emulator import WeComEmulator
from bot.wecom.errors import (
    AnswerTimeout,
    ConnectionLost,
    SubscribeRefused,
    TakenOver,
    WeComApiError,
)
from bot.wecom.frames import (
    CMD_SEND_MSG,
    CMD_SUBSCRIBE,
    EventIn,
    Frame,
    Inbound,
    MessageIn,
    parse_inbound,
)
from bot.wecom.limits import ERR_BAD_CREDENTIALS, ERR_RATE_LIMITED
from tests.wecom_util import FAST, running


@pytest.fixture
async def emu() -> WeComEmulator:
    async with WeComEmulator() as emulator:
        yield emulator  # type: ignore[misc]


async def test_subscribes_and_close_ends_run(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        assert robot.conn.connected
        assert emu.connected
        assert emu.subscriptions == 1
    assert robot.task.done()
    assert robot.task.exception() is None
    assert not robot.conn.connected


async def test_wrong_secret_raises_quickly_without_retrying(
    emu: WeComEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(emu, secret="wrong-secret-value") as robot:
        with pytest.raises(SubscribeRefused) as refused:
            await asyncio.wait_for(robot.task, 1)
        with pytest.raises(ConnectionLost):
            await robot.conn.wait_connected(0.5)
    assert refused.value.errcode == ERR_BAD_CREDENTIALS
    await asyncio.sleep(0.1)  # a retry loop would have reconnected by now
    assert emu.connections == 1
    assert emu.subscriptions == 0
    assert "wrong-secret-value" not in str(refused.value) + caplog.text


async def test_credential_refusal_of_the_right_secret_still_stops_at_once(
    emu: WeComEmulator,
) -> None:
    emu.refuse_next(CMD_SUBSCRIBE, ERR_BAD_CREDENTIALS, "invalid bot_id or secret")
    async with running(emu) as robot:
        with pytest.raises(SubscribeRefused) as refused:
            await asyncio.wait_for(robot.task, 1)
        await asyncio.sleep(0.1)  # a retry loop would have reconnected by now
    assert refused.value.errcode == ERR_BAD_CREDENTIALS
    assert emu.connections == 1
    assert emu.subscriptions == 0


async def test_busy_refusal_of_the_resubscription_reconnects_and_inbound_resumes(
    emu: WeComEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        emu.refuse_next(CMD_SUBSCRIBE, ERR_RATE_LIMITED, "api freq out of limit")
        emu.drop_connection()
        await emu.wait_subscriptions(2, timeout=2)
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "after the refusal")
        [item] = await robot.next_inbound(1)
        assert not robot.task.done()
    assert isinstance(item, MessageIn)
    assert item.text == "after the refusal"
    assert emu.connections == 3  # the first, the refused one, the one that took
    assert f"errcode {ERR_RATE_LIMITED}" in caplog.text
    assert emu.secret not in caplog.text


@pytest.mark.parametrize("errcode", [ERR_RATE_LIMITED, 500, 654321])
async def test_refused_first_subscriptions_are_retried_with_growing_waits(
    emu: WeComEmulator, errcode: int
) -> None:
    emu.refuse_next(CMD_SUBSCRIBE, errcode, "try later", times=3)
    options = {**FAST, "backoff_min": 0.05, "backoff_max": 1.0}
    conn = WeComConnection(emu.url, emu.bot_id, emu.secret, on_inbound=_ignore, **options)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(3)
        waited = loop.time() - started
    finally:
        await conn.close()
        await asyncio.wait_for(task, 2)
    assert emu.connections == 4
    assert emu.subscriptions == 1
    # Waits of 0.05, 0.1 and 0.2 s, each jittered down to half at most: 0.175 s at least,
    # more than three waits at the floor (0.15 s at most) could take.
    assert waited >= 0.17


async def test_pings_keep_the_connection_and_missed_pings_reconnect(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await asyncio.sleep(0.3)  # six ping intervals
        assert emu.connections == 1
        assert robot.conn.connected
        emu.lose_answers(times=2, cmd="ping")
        await emu.wait_subscriptions(2, timeout=2)
        assert emu.connections == 2
        await robot.conn.wait_connected(2)


async def test_inbound_callbacks_reach_the_bot_once(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "/start")
        await emu.duplicate_last()
        await emu.send_file("alice", "cards.xlsx", b"PK\x03\x04 sheet")
        await emu.enter_chat("bob")
        [first] = await robot.next_inbound(1)
        assert isinstance(first, MessageIn)
        card = button_card("renew_1", "Renew?", "SIM 8986", [("Renew", "renew:1")])
        await robot.conn.respond(first.req_id, stream_body("s1", "hi", card=card))
        await emu.click("alice", "renew_1", "renew:1")
        await emu.duplicate_last()
        await emu.send_text("carol", "hello team", chatid="group-1")
        inbox = await robot.next_inbound(5)
        await emu.wait_idle()
        assert len(robot.inbox) == 5  # both repeats were dropped
    text, file, enter, click, group = inbox
    assert isinstance(text, MessageIn)
    assert text.text == "/start"
    assert text.chat == ("single", "alice")
    assert isinstance(file, MessageIn)
    assert file.msgtype == "file"
    assert file.file_url
    assert file.file_name == "cards.xlsx"
    assert file.file_aeskey
    assert isinstance(enter, EventIn)
    assert enter.event_type == "enter_chat"
    assert isinstance(click, EventIn)
    assert click.event_type == "template_card_event"
    assert (click.task_id, click.event_key) == ("renew_1", "renew:1")
    assert isinstance(group, MessageIn)
    assert group.chat == ("group", "group-1")
    assert group.text == "@SimWatch hello team"
    assert group.userid == "carol"


async def test_slow_handler_does_not_block_the_reader(emu: WeComEmulator) -> None:
    release = asyncio.Event()
    seen: list[Inbound] = []

    async def slow(item: Inbound) -> None:
        seen.append(item)
        if len(seen) == 1:
            await release.wait()

    async with running(emu, on_inbound=slow) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "first")
        await emu.send_text("bob", "second")
        async with asyncio.timeout(2):
            while len(seen) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        # the first handler still waits, yet requests are answered and pings flow
        await robot.conn.send("bob", markdown_body("still here"))
        await asyncio.sleep(0.2)
        assert emu.connections == 1
        release.set()
    [event] = emu.take_events(("single", "bob"))
    assert event.markdown == "still here"


async def test_fifty_concurrent_requests_get_their_own_answers(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        for n in range(50):
            await emu.send_text(f"user{n}", f"question {n}")
        inbox = await robot.next_inbound(50)
        emu.slow_answers(0.05, times=10)  # some answers overtake others

        async def answer(item: Inbound) -> tuple[str, str]:
            assert isinstance(item, MessageIn)
            reply = await robot.conn.respond(item.req_id, stream_body("s", f"answer {item.text}"))
            return reply.req_id, item.req_id

        pairs = await asyncio.gather(*(answer(item) for item in inbox))
    assert all(got == sent for got, sent in pairs)
    events = emu.take_events()
    assert len(events) == 50
    for event in events:
        assert event.markdown == f"answer question {event.chat[1].removeprefix('user')}"


async def test_dropped_connection_reconnects_and_inbound_resumes(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "before")
        emu.drop_connection()
        await emu.wait_subscriptions(2, timeout=2)
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "after")
        items = await robot.next_inbound(2)
        await robot.conn.send("alice", markdown_body("back"))
    assert [i.text for i in items if isinstance(i, MessageIn)] == ["before", "after"]
    assert emu.connections == 2
    assert [e.markdown for e in emu.take_events()] == ["back"]


async def test_reconnect_backs_off_while_wecom_is_unreachable(emu: WeComEmulator) -> None:
    await emu.stop()  # nobody listens on the port any more
    conn = WeComConnection(
        emu.url, "bot", "secret", on_inbound=_ignore, **{**FAST, "backoff_max": 0.2}
    )
    attempts: list[float] = []
    loop = asyncio.get_running_loop()
    conn._log = _Recorder(attempts, loop)  # type: ignore[assignment]
    task = asyncio.create_task(conn.run())
    await asyncio.sleep(0.6)
    await conn.close()
    await asyncio.wait_for(task, 2)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 3
    assert gaps[-1] > gaps[0]  # the waits grow
    assert max(gaps) <= 0.2 + 0.1  # and stay under the ceiling


async def test_takeover_raises_and_does_not_reconnect(emu: WeComEmulator) -> None:
    async with running(emu) as first:
        await first.conn.wait_connected(2)
        async with running(emu) as second:
            await second.conn.wait_connected(2)
            with pytest.raises(TakenOver):
                await asyncio.wait_for(first.task, 2)
            await asyncio.sleep(0.1)
            assert emu.connections == 2
            assert emu.subscriptions == 2
            assert second.conn.connected
            assert not first.conn.connected
            await emu.send_text("alice", "to the new one")
            [item] = await second.next_inbound(1)
        assert first.inbox == []
        assert isinstance(item, MessageIn)


async def test_emulated_takeover_stops_the_robot(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.take_over()
        with pytest.raises(TakenOver):
            await asyncio.wait_for(robot.task, 2)
        await asyncio.sleep(0.1)
    assert emu.connections == 1


async def test_slow_and_lost_answers_time_out(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "hi")
        emu.slow_answers(0.3)
        with pytest.raises(AnswerTimeout):
            await robot.conn.request(
                CMD_SEND_MSG, send_body("alice", None, "markdown", {"content": "a"}), timeout=0.1
            )
        emu.lose_answers()
        with pytest.raises(AnswerTimeout):
            await robot.conn.send("alice", markdown_body("b"))
        await asyncio.sleep(0.3)  # the late answer arrives and is ignored
        await robot.conn.send("alice", markdown_body("c"))
    # the timed-out requests were applied all the same
    assert [e.markdown for e in emu.take_events()] == ["a", "b", "c"]


async def test_requests_fail_fast_when_the_connection_is_down(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        with pytest.raises(ConnectionLost):
            await robot.conn.send("alice", markdown_body("too early"))
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "hi")
        emu.lose_answers()
        pending = asyncio.create_task(robot.conn.send("alice", markdown_body("x")))
        await asyncio.sleep(0.05)
        emu.drop_connection()
        with pytest.raises(ConnectionLost):
            await pending


async def test_requests_in_flight_fail_with_connection_lost_at_once_when_the_link_drops(
    emu: WeComEmulator,
) -> None:
    async with running(emu, answer_timeout=5) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "hi")
        [item] = await robot.next_inbound(1)
        emu.lose_answers(times=3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        in_flight = [
            asyncio.create_task(robot.conn.send("alice", markdown_body("x"))),
            asyncio.create_task(robot.conn.respond(item.req_id, stream_body("s", "a"))),
            # waits behind the first refresh of the same stream (same req_id)
            asyncio.create_task(robot.conn.respond(item.req_id, stream_body("s", "ab"))),
        ]
        await asyncio.sleep(0.05)
        emu.drop_connection()
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        elapsed = loop.time() - started
    assert all(isinstance(outcome, ConnectionLost) for outcome in outcomes), outcomes
    assert elapsed < 1  # not after the 5 s answer timeout


async def test_a_request_in_flight_on_a_silent_link_fails_when_the_pings_notice(
    emu: WeComEmulator,
) -> None:
    async with running(emu, answer_timeout=5) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "hi")
        emu.lose_answers()  # the request's answer
        emu.lose_answers(times=2, cmd="ping")  # and the pings': the link is dead
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionLost):
            await robot.conn.send("alice", markdown_body("x"))
        assert loop.time() - started < 1  # two ping intervals, not the answer timeout
        await emu.wait_subscriptions(2, timeout=2)


async def test_upload_of_a_megabyte_round_trips(emu: WeComEmulator) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: three chunks
    async with running(emu, answer_timeout=5) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "/export")
        [item] = await robot.next_inbound(1)
        media_id = await robot.conn.upload(data, "cards.xlsx")
        await robot.conn.respond(item.req_id, file_body(media_id))
    [event] = emu.take_events()
    assert event.kind == "file"
    assert event.file == ("cards.xlsx", data)


async def test_malformed_frames_from_wecom_do_not_kill_the_reader(emu: WeComEmulator) -> None:
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        for garbage in (
            b"\xff\xfe not utf-8",
            "not json",
            "[1, 2]",
            '{"headers": {}}',
            '{"cmd": "aibot_msg_callback", "headers": {"req_id": "x"}, "body": []}',
            '{"cmd": "aibot_msg_callback", "headers": {"req_id": "x"}, "body": {"msgid": "m"}}',
            "[" * 100_000,
            '{"cmd": "who_knows", "headers": {"req_id": "y"}}',
        ):
            await emu.send_raw(garbage)
        await emu.send_text("alice", "still works")
        [item] = await robot.next_inbound(1)
        assert isinstance(item, MessageIn)
        assert item.text == "still works"
        assert emu.connections == 1


def _callback(body: dict[str, object]) -> str:
    frame = {"cmd": "aibot_msg_callback", "headers": {"req_id": "cb-bad"}, "body": body}
    return json.dumps(frame)


async def test_callbacks_with_fields_of_the_wrong_type_do_not_stop_the_channel(
    emu: WeComEmulator,
) -> None:
    sender = {"from": {"userid": "mallory"}, "msgtype": "mixed"}
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        for n, broken in enumerate(
            (
                {"mixed": {"msg_item": 5}},
                {"mixed": {"msg_item": [5, None, {"msgtype": ["text"]}]}},
                {"mixed": "text"},
                {"chattype": ["group"]},
                {"from": "mallory"},
                {"msgid": {"id": 1}},
            )
        ):
            await emu.send_raw(_callback({"msgid": f"bad-{n}", **sender, **broken}))
        await emu.send_text("alice", "still works")
        inbox = await robot.next_inbound(4)
        assert robot.conn.connected
        assert not robot.task.done()
        assert emu.connections == 1
    # mixed messages with unreadable parts arrive without text; no sender or id: dropped
    assert [(i.userid, i.text) for i in inbox if isinstance(i, MessageIn)] == [
        ("mallory", None),
        ("mallory", None),
        ("mallory", None),
        ("alice", "still works"),
    ]


async def test_a_callback_the_parser_fails_on_costs_one_frame_and_one_warning(
    emu: WeComEmulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parser bug not found yet: whatever parse_inbound raises must not end the reader.
    def parse_with_a_bug(frame: Frame) -> Inbound | None:
        if "poison" in json.dumps(frame.body):
            raise KeyError("poison")
        return parse_inbound(frame)

    monkeypatch.setattr("bot.wecom.connection.parse_inbound", parse_with_a_bug)
    caplog.set_level(logging.WARNING)
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_raw(_callback({"msgid": "m-poison", "from": {"userid": "a"}}))
        await emu.send_text("alice", "still works")
        [item] = await robot.next_inbound(1)
        assert robot.conn.connected
        assert emu.connections == 1
    assert isinstance(item, MessageIn)
    assert item.text == "still works"
    [warning] = [r for r in caplog.records if "could not be read" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "KeyError" in warning.getMessage()
    assert "poison" not in caplog.text  # nothing of the body
    assert emu.secret not in caplog.text


async def test_rate_limit_surfaces_as_wecom_api_error(emu: WeComEmulator) -> None:
    emu.rate_limit(per_minute=2, per_hour=100)
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        await emu.send_text("alice", "hi")
        await robot.conn.send("alice", markdown_body("1"))
        await robot.conn.send("alice", markdown_body("2"))
        with pytest.raises(WeComApiError) as limited:
            await robot.conn.send("alice", markdown_body("3"))
    assert limited.value.errcode == ERR_RATE_LIMITED
    assert [e.markdown for e in emu.take_events()] == ["1", "2"]


async def test_secret_never_reaches_the_logs(
    emu: WeComEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        emu.drop_connection()
        await emu.wait_subscriptions(2, timeout=2)
        assert emu.secret not in repr(robot.conn)
    assert caplog.records
    assert emu.secret not in caplog.text


async def _ignore(item: Inbound) -> None:
    return None


class _Recorder(logging.Logger):
    """A logger that notes when each reconnect wait starts."""

    def __init__(self, attempts: list[float], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("test")
        self._attempts = attempts
        self._loop = loop

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        if "reconnecting" in str(msg):
            self._attempts.append(self._loop.time())
