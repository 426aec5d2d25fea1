"""Files in WeCom's scheme: AES-256-CBC, key = base64-decoded aeskey (32 bytes), IV = the
key's first 16 bytes, PKCS#7 padding to a multiple of 32 bytes (SDK src/crypto.ts)."""

from __future__ import annotations

import base64
import binascii

import aiohttp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.wecom.errors import MediaError

_BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16


def _key(aeskey: str) -> bytes:
    try:
        key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("aeskey is not base64") from None
    if len(key) != 32:
        raise MediaError(f"aeskey decodes to {len(key)} bytes, AES-256 needs 32")
    return key


def decrypt_file(data: bytes, aeskey: str) -> bytes:
    """Decrypt a downloaded file; MediaError if the key or the padding is wrong."""
    key = _key(aeskey)
    if not data or len(data) % 16:
        raise MediaError("encrypted data is empty or not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
        raise MediaError("decrypted data has bad padding (wrong aeskey or corrupt file)")
    return plain[:-pad]


def encrypt_file(data: bytes, aeskey: str) -> bytes:
    """Encrypt as WeCom does (the emulator serves files this way)."""
    key = _key(aeskey)
    pad = _BLOCK - len(data) % _BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()


async def download_file(
    session: aiohttp.ClientSession, url: str, aeskey: str, *, max_bytes: int
) -> bytes:
    """Download and decrypt a file a user sent; refuse more than ``max_bytes`` early."""
    limit = max_bytes + _BLOCK  # the ciphertext is up to one padding block longer
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise MediaError(f"download answered HTTP {response.status}")
            if response.content_length is not None and response.content_length > limit:
                raise MediaError(f"file is {response.content_length} bytes, over {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise MediaError(f"file is over {max_bytes} bytes")
                chunks.append(chunk)
    except aiohttp.ClientError as exc:
        raise MediaError(f"download failed: {exc.__class__.__name__}") from None
    except TimeoutError:
        raise MediaError("download timed out") from None
    plain = decrypt_file(b"".join(chunks), aeskey)
    if len(plain) > max_bytes:
        raise MediaError(f"file is {len(plain)} bytes, over {max_bytes}")
    return plain
