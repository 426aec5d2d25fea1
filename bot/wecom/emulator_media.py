"""The emulator's media: chunked uploads from the robot (init → chunks → finish) and the
HTTP server that hands users' files to the robot encrypted, as WeCom's CDN does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.wecom.limits import (
    ERR_INVALID_PARAM,
    MEDIA_TYPES,
    UPLOAD_CHUNK_BYTES,
    UPLOAD_MAX_CHUNKS,
)
from bot.wecom.media import encrypt_file

Refusal = tuple[int, str]


@dataclass
class _Upload:
    media_type: str
    filename: str
    total_size: int
    total_chunks: int
    md5: str | None
    chunks: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredMedia:
    media_type: str
    filename: str
    data: bytes


class Uploads:
    """Upload sessions and the media they produced, keyed by media_id."""

    def __init__(self) -> None:
        self._open: dict[str, _Upload] = {}
        self.media: dict[str, StoredMedia] = {}

    def init(self, body: dict[str, Any]) -> dict[str, Any] | Refusal:
        media_type, filename = body.get("type"), body.get("filename")
        size, count, md5 = body.get("total_size"), body.get("total_chunks"), body.get("md5")
        if media_type not in MEDIA_TYPES or not isinstance(filename, str) or not filename:
            return (ERR_INVALID_PARAM, "type must be file/image/voice/video, with a filename")
        if not isinstance(count, int) or not 1 <= count <= UPLOAD_MAX_CHUNKS:
            return (ERR_INVALID_PARAM, f"total_chunks must be 1-{UPLOAD_MAX_CHUNKS}")
        if not isinstance(size, int) or not 0 < size <= count * UPLOAD_CHUNK_BYTES:
            return (ERR_INVALID_PARAM, "total_size does not fit total_chunks")
        upload_id = "upload_" + secrets.token_hex(8)
        self._open[upload_id] = _Upload(
            str(media_type), filename, size, count, md5 if isinstance(md5, str) else None
        )
        return {"upload_id": upload_id}

    def chunk(self, body: dict[str, Any]) -> dict[str, Any] | Refusal:
        upload = self._open.get(str(body.get("upload_id")))
        if upload is None:
            return (ERR_INVALID_PARAM, "invalid upload_id")
        index = body.get("chunk_index")
        if not isinstance(index, int) or not 0 <= index < upload.total_chunks:
            return (ERR_INVALID_PARAM, "chunk_index out of range")
        try:
            data = base64.b64decode(str(body.get("base64_data", "")), validate=True)
        except (binascii.Error, ValueError):
            return (ERR_INVALID_PARAM, "base64_data is not base64")
        if not data or len(data) > UPLOAD_CHUNK_BYTES:
            return (ERR_INVALID_PARAM, f"a chunk is 1-{UPLOAD_CHUNK_BYTES} bytes")
        upload.chunks[index] = data
        return {}

    def finish(self, body: dict[str, Any]) -> dict[str, Any] | Refusal:
        upload_id = str(body.get("upload_id"))
        upload = self._open.get(upload_id)
        if upload is None:
            return (ERR_INVALID_PARAM, "invalid upload_id")
        if len(upload.chunks) != upload.total_chunks:
            return (ERR_INVALID_PARAM, "chunks missing")
        data = b"".join(upload.chunks[i] for i in range(upload.total_chunks))
        if len(data) != upload.total_size:
            return (ERR_INVALID_PARAM, "total_size does not match the chunks")
        if upload.md5 and hashlib.md5(data).hexdigest() != upload.md5.lower():
            return (ERR_INVALID_PARAM, "md5 does not match")
        del self._open[upload_id]
        media_id = "media_" + secrets.token_hex(12)
        self.media[media_id] = StoredMedia(upload.media_type, upload.filename, data)
        return {"type": upload.media_type, "media_id": media_id, "created_at": "0"}


class FileServer:
    """Serves users' files encrypted with their per-file aeskey, on 127.0.0.1."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[str, bytes]] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/files/{token}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def publish(self, filename: str, content: bytes) -> tuple[str, str]:
        """Store a file; return (url, aeskey) — a fresh key per file, as WeCom does."""
        aeskey = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        token = secrets.token_urlsafe(12)
        self._files[token] = (filename, encrypt_file(content, aeskey))
        return f"{self.base_url}/files/{token}", aeskey

    async def _serve(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["token"])
        if found is None:
            raise web.HTTPNotFound()
        filename, encrypted = found
        disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
        return web.Response(body=encrypted, headers={"Content-Disposition": disposition})
