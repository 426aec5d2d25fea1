"""The bot's HTTP transport (``handlers.transport.AiohttpRequest``) against the emulator: what
python-telegram-bot above it sees for answers, uploads, timeouts and a dead server."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot, InputFile
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bot.emulator import BotApiEmulator
from bot.logs import RedactToken
from handlers.transport import AiohttpRequest

ALICE = 1001


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator("123456:TRANSPORT") as emulator:
        emulator.private_chat(emulator.user(ALICE, "Alice"))
        yield emulator


def client(emu: BotApiEmulator, request: AiohttpRequest | None = None) -> Bot:
    return Bot(
        emu.token,
        base_url=emu.base_url,
        base_file_url=emu.base_file_url,
        request=request or AiohttpRequest(),
    )


async def test_messages_arrive_as_sent_and_answers_become_ptb_objects(emu: BotApiEmulator) -> None:
    async with client(emu) as bot:
        text = "续费提醒 <b>3 张卡</b> &amp; 1 &lt; 2"
        sent = await bot.send_message(ALICE, text, parse_mode="HTML")
    (stored,) = emu.chat_messages(ALICE)
    assert stored.text == "续费提醒 3 张卡 & 1 < 2"
    assert sent.message_id == stored.message_id
    assert sent.text == stored.text
    assert [e.type for e in sent.entities] == ["bold"]


async def test_an_upload_keeps_its_bytes_name_and_caption(emu: BotApiEmulator) -> None:
    content = "ICCID,到期日\n89860000000000000001,2026-12-01\n".encode("utf-8-sig")
    async with client(emu) as bot:
        sent = await bot.send_document(
            ALICE, InputFile(content, filename="导出.csv"), caption="3 张卡"
        )
    (stored,) = emu.chat_messages(ALICE)
    assert stored.caption == "3 张卡"
    assert stored.file is not None
    assert emu.file(stored.file.file_id).content == content
    assert sent.document is not None
    assert sent.document.file_name == "导出.csv"


async def test_telegram_errors_come_through_as_ptb_errors(emu: BotApiEmulator) -> None:
    async with client(emu) as bot:
        emu.inject_fault("sendMessage", kind="429")
        with pytest.raises(RetryAfter):
            await bot.send_message(ALICE, "too fast")
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(ALICE, "<b>unclosed", parse_mode="HTML")
        emu.inject_fault("sendMessage", kind="502")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(ALICE, "gateway down")
        await bot.send_message(ALICE, "recovered")
    assert [m.text for m in emu.chat_messages(ALICE)] == ["recovered"]


async def test_read_timeout_and_a_lost_answer_are_timeouts(emu: BotApiEmulator) -> None:
    async with client(emu, AiohttpRequest(read_timeout=0.3)) as bot:
        emu.inject_fault("sendMessage", kind="timeout")
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.send_message(ALICE, "never arrives")
        assert time.monotonic() - started < 3  # the read timeout, not the emulator's hang
        emu.inject_fault("sendMessage", kind="lost_response")
        with pytest.raises(TimedOut):
            await bot.send_message(ALICE, "arrives unseen")
        emu.inject_fault("sendMessage", kind="slow", delay=0.1)
        await bot.send_message(ALICE, "slow but in time")
        # A call's own timeout wins over the default.
        emu.inject_fault("sendMessage", kind="slow", delay=0.5)
        await bot.send_message(ALICE, "given longer", read_timeout=2)
    texts = [m.text for m in emu.chat_messages(ALICE)]
    assert texts == ["arrives unseen", "slow but in time", "given longer"]


async def test_long_polling_waits_longer_than_the_read_timeout(emu: BotApiEmulator) -> None:
    # PTB adds getUpdates' own ``timeout`` to the transport's read timeout.
    async with client(emu, AiohttpRequest(read_timeout=0.2)) as bot:
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def test_an_unreachable_server_is_a_network_error_without_the_token() -> None:
    port = free_port()  # nobody listens on it
    token = "123456:SECRET-TOKEN"
    bot = Bot(token, base_url=f"http://127.0.0.1:{port}/bot", request=AiohttpRequest())
    with pytest.raises(NetworkError) as raised:
        await bot.initialize()
    assert "aiohttp.ClientConnectorError" in str(raised.value)
    assert "SECRET" not in str(raised.value)
    await bot.shutdown()


async def test_a_request_needs_initialize_and_survives_a_restart(emu: BotApiEmulator) -> None:
    request = AiohttpRequest()
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(f"{emu.base_url}/getMe")
    bot = client(emu, request)
    async with bot:
        await bot.send_message(ALICE, "first run")
    async with bot:  # shut down, then initialized again: a fresh session
        await bot.send_message(ALICE, "second run")
    assert len(emu.chat_messages(ALICE)) == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_timeout_waiting_for_a_connection_does_not_quote_the_token(
    emu: BotApiEmulator,
) -> None:
    # One connection, held by a send that never gets its answer: the next send waits for it
    # in vain. aiohttp's own error for that quotes the request URL, token and all.
    request = AiohttpRequest(1, read_timeout=5, connect_timeout=0.2, pool_timeout=0.1)
    async with client(emu, request) as bot:
        emu.inject_fault("sendMessage", kind="timeout")
        stuck = asyncio.create_task(bot.send_message(ALICE, "hangs"))
        await asyncio.sleep(0.1)
        with pytest.raises(TimedOut) as raised:
            await bot.send_message(ALICE, "waits for the connection")
        stuck.cancel()
    shown = "".join(traceback.format_exception(raised.value))
    assert "sendMessage" in shown
    assert emu.token not in shown
    assert emu.token.split(":")[1] not in shown


@pytest.mark.parametrize(
    "base_url",
    [
        "htps://api.telegram.org/bot",
        "htps://api.telegram.org/./bot",  # aiohttp quotes the URL normalised: no "/./"
        "htps://api.telegram.org/x/../bot",
        "http://api.telegram.org:99999/bot",
    ],
)
async def test_a_mistyped_base_url_is_reported_without_the_token(base_url: str) -> None:
    token = "123456:SECRET-TOKEN"
    bot = Bot(token, base_url=base_url, request=AiohttpRequest())
    with pytest.raises(NetworkError) as raised:
        await bot.initialize()
    shown = "".join(traceback.format_exception(raised.value))
    assert "getMe" in shown
    assert "SECRET" not in shown
    await bot.shutdown()


def test_the_log_never_shows_the_token_even_in_a_traceback() -> None:
    token = "123456:SECRET-TOKEN"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactToken(token))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"while calling https://api.telegram.org/bot{token}/getMe")
        except RuntimeError:
            log.exception("polling failed for %s", token)
    finally:
        log.removeHandler(handler)
    assert "SECRET" not in out.getvalue()
    assert out.getvalue().count("<BOT_TOKEN>") == 2  # the message and the traceback


async def test_proxies_come_from_the_environment_as_with_ptbs_default(
    emu: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())  # the request line, absolute URL and all
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    bot = client(emu)
    try:
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.initialize()
    finally:
        await bot.shutdown()
        server.close()
        await server.wait_closed()
    assert len(seen) == 1
    assert seen[0].startswith(f"POST {emu.base_url}".encode())

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # exempt: straight to the emulator
    async with client(emu) as bot:
        await bot.send_message(ALICE, "direct")
    assert len(seen) == 1
    assert [m.text for m in emu.chat_messages(ALICE)] == ["direct"]


async def test_a_slow_but_steady_download_is_not_cut_off() -> None:
    # The read timeout is the longest wait between bytes, not a bound on the whole file
    # (an agent's 5 MB spreadsheet on a slow line).
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 10 * 1000
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 1000)
            await asyncio.sleep(0.2)
        return response

    app = web.Application()
    app.router.add_get("/file/bot1:T/big.xlsx", trickle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    request = AiohttpRequest(read_timeout=0.5, connect_timeout=0.5, pool_timeout=0.5)
    await request.initialize()
    try:
        started = time.monotonic()
        data = await request.retrieve(f"http://127.0.0.1:{port}/file/bot1:T/big.xlsx")
        assert len(data) == 10_000
        assert time.monotonic() - started > 0.5 + 0.5 + 0.5  # longer than all budgets together
    finally:
        await request.shutdown()
        await runner.cleanup()
