"""The HTTP face of the emulator: routing, token check, call log, faults and flood limits."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from typing import Any

from aiohttp import web

from bot.emulator.errors import ApiError, not_found, too_many_requests, unauthorized
from bot.emulator.faults import Fault, FaultPlan, RateLimits
from bot.emulator.methods import BotApiMethods, Handler
from bot.emulator.params import RequestParams, read_request_params
from bot.emulator.records import ApiCall
from bot.emulator.state import EmulatorState

_LOG = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # bots may upload up to 50 MB


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _json_response(body: dict[str, Any], status: int) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


class ApiServer:
    """Serves ``/bot<token>/<method>`` and ``/file/bot<token>/<path>`` on one local port."""

    def __init__(self, state: EmulatorState, methods: BotApiMethods, token: str) -> None:
        self.state = state
        self.methods = methods
        self.token = token
        self.faults = FaultPlan()
        self.rate_limits: RateLimits | None = None
        self.rate_limited_count = 0
        self.in_flight = 0  # requests other than getUpdates being answered
        self.last_request_at = 0.0  # loop time
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up (read timeout) ends its long poll or
        # held request at once instead of leaving it running until stop().
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Answer pending long polls and held requests, then close the port."""
        if self._runner is None:
            return
        self.state.close()
        if self._closing is not None:
            self._closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    # --- routing ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["tail"]
        if path.startswith("file/bot"):
            return self._download(path.removeprefix("file/bot"))
        if path.startswith("bot"):
            token, _, method = path.removeprefix("bot").partition("/")
            if token != self.token:
                return _json_response(unauthorized().to_json(), 401)
            if method and "/" not in method:
                return await self._api_call(request, method)
        return _json_response(not_found().to_json(), 404)

    def _download(self, rest: str) -> web.StreamResponse:
        token, _, file_path = rest.partition("/")
        if token != self.token:
            return _json_response(unauthorized().to_json(), 401)
        stored = self.state.files_by_path.get(file_path)
        if stored is None:
            return _json_response(not_found().to_json(), 404)
        mime_type = stored.mime_type or "application/octet-stream"
        return web.Response(body=stored.content, headers={"Content-Type": mime_type})

    async def _api_call(self, request: web.Request, method: str) -> web.Response:
        call = ApiCall(method=method, params={}, time=time.time(), http_method=request.method)
        self.state.record_call(call)
        counted = method.lower() != "getupdates"
        if counted:
            self.in_flight += 1
            self.last_request_at = asyncio.get_running_loop().time()
        try:
            try:
                params = await read_request_params(request)
                call.params, call.files = params.values, dict(params.files)
                result = await self._dispatch(method, params, call)
                status, body = 200, {"ok": True, "result": result}
            except ApiError as error:
                status, body = error.status, error.to_json()
            call.status, call.response = status, copy.deepcopy(body)
            return _json_response(body, status)
        finally:
            if counted:
                self.in_flight -= 1
                self.last_request_at = asyncio.get_running_loop().time()

    # --- faults and limits -----------------------------------------------------------

    async def _dispatch(self, method: str, params: RequestParams, call: ApiCall) -> Any:
        handler = self.methods.lookup(method)
        if handler is None:
            _LOG.warning("emulator: unknown Bot API method %r", method)
            raise not_found()
        chat_id = params.values.get("chat_id")
        fault = self.faults.take(method, chat_id)
        if fault is not None:
            call.fault = fault.kind
            return await self._faulty(fault, handler, params, method, call)
        self._check_rate_limits(method, chat_id, call)
        return await handler(params)

    async def _faulty(
        self, fault: Fault, handler: Handler, params: RequestParams, method: str, call: ApiCall
    ) -> Any:
        if fault.kind == "slow":
            if fault.delay > 0:
                await self._hold(fault.delay)
            self._check_rate_limits(method, params.values.get("chat_id"), call)
            return await handler(params)
        if fault.kind == "timeout":
            await self._hold(fault.delay)
            raise ApiError(504, "Gateway Timeout")  # reached only if the client still waits
        if fault.kind == "lost_response":
            result = await handler(params)
            await self._hold(fault.delay)
            return result
        chat_id = params.values.get("chat_id")
        chat = self.state.find_chat(chat_id)
        raise fault.error(chat_id, chat.type if chat is not None else None)

    async def _hold(self, delay: float) -> None:
        """Sleep ``delay`` seconds (``<= 0``: until the client hangs up), cut short by stop()."""
        if self._closing is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay if delay > 0 else None)

    def _check_rate_limits(self, method: str, chat_id: object, call: ApiCall) -> None:
        limits = self.rate_limits
        if limits is None or not limits.applies_to(method):
            return
        if not isinstance(chat_id, int | str):
            return
        chat = self.state.find_chat(chat_id)
        is_group = chat.is_group if chat is not None else isinstance(chat_id, int) and chat_id < 0
        retry_after = limits.check(chat_id, is_group)
        if retry_after is not None:
            self.rate_limited_count += 1
            call.fault = "rate_limit"
            raise too_many_requests(retry_after)
