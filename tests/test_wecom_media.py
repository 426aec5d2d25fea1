"""WeCom's file crypto and the bounded download of files users send."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.wecom.emulator_media import FileServer
from bot.wecom.errors import MediaError
from bot.wecom.media import decrypt_file, download_file, encrypt_file

KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # as WeCom sends it, unpadded


def _wecom_encrypt(data: bytes, aeskey: str) -> bytes:
    """The scheme of the SDK's crypto.ts, built from library primitives independently."""
    key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4))
    padder = padding.PKCS7(256).padder()  # 32-byte blocks
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


@pytest.mark.parametrize("size", [0, 1, 15, 16, 31, 32, 33, 1000])
def test_decrypts_wecom_files_and_encrypts_the_same_way(size: int) -> None:
    data = os.urandom(size)
    assert decrypt_file(_wecom_encrypt(data, KEY), KEY) == data
    assert encrypt_file(data, KEY) == _wecom_encrypt(data, KEY)


def test_wrong_key_or_garbage_is_a_media_error() -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    encrypted = encrypt_file(b"hello world, a sim card list", KEY)
    with pytest.raises(MediaError):
        decrypt_file(encrypted, other)
    with pytest.raises(MediaError):
        decrypt_file(b"short", KEY)
    with pytest.raises(MediaError, match="32"):
        decrypt_file(encrypted, base64.b64encode(b"too short").decode())
    with pytest.raises(MediaError, match="base64"):
        decrypt_file(encrypted, "not base64 !!!")


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server = FileServer()
    await server.start()
    yield server
    await server.stop()


async def test_download_decrypts_a_published_file(files: FileServer) -> None:
    content = "ICCID,到期\n89860000000000000001,2027-01-01\n".encode()
    url, aeskey = files.publish("卡.csv", content)
    async with aiohttp.ClientSession() as session:
        assert await download_file(session, url, aeskey, max_bytes=1024) == content
        with pytest.raises(MediaError, match="HTTP 404"):
            await download_file(session, url + "x", aeskey, max_bytes=1024)


async def test_download_refuses_files_over_the_limit(files: FileServer) -> None:
    url, aeskey = files.publish("big.bin", os.urandom(10_000))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(MediaError, match="over 1000"):
            await download_file(session, url, aeskey, max_bytes=1000)


async def test_download_stops_reading_a_stream_without_length() -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()  # chunked: no Content-Length to trust
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"x" * 65536)
            sent += 65536
        return response

    app = web.Application()
    app.router.add_get("/f", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(MediaError, match="over"):
                await download_file(session, f"http://127.0.0.1:{port}/f", KEY, max_bytes=100_000)
    finally:
        await runner.cleanup()
    assert sent < 1000 * 65536  # the reader gave up long before the end
