"""python-telegram-bot's HTTP requests on aiohttp's client instead of httpx.

Why: delivering reminders is CPU-bound in the bot's process, and per Bot API call aiohttp's
client takes about half the CPU that PTB's default ``HTTPXRequest`` does (0.76 vs 1.43 ms a
``sendMessage`` on the benchmark machine; ``bench/README.md``). aiohttp is already a dependency
(the local Bot API emulator). Everything above the transport (building the request, reading
Telegram's answer, its errors) stays python-telegram-bot's own: this class only moves bytes,
like ``HTTPXRequest``, whose timeouts and errors it mirrors.
"""

from __future__ import annotations

import re
import urllib.request
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

# HTTPXRequest's defaults, in seconds.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
MEDIA_WRITE_TIMEOUT = 20.0  # uploads: exports, reports, charts
POOL_TIMEOUT = 1.0
UPLOAD_RATE = 32_768  # bytes a second an upload is allowed at worst, on top of its timeouts


class AiohttpRequest(BaseRequest):
    """``telegram.request.BaseRequest`` over one ``aiohttp.ClientSession`` (keep-alive pool).

    Timeouts, as PTB means them: ``connect_timeout`` to open a connection, ``read_timeout``
    between bytes of the answer (a slow but steady download of a big file goes through),
    ``pool_timeout`` to wait for a free connection (aiohttp counts it into one ``connect``
    budget together with opening one). aiohttp has no write timeout: an upload instead gets a
    bound on the whole request that grows with its size (``UPLOAD_RATE``), so a stalled upload
    cannot hang for ever while a slow one still finishes.

    Like PTB's default transport, proxies come from the environment (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``NO_PROXY``; not ``ALL_PROXY``, whose SOCKS proxies aiohttp cannot
    use), and an error never quotes the request URL, which holds the token.
    """

    __slots__ = ("_connection_pool_size", "_proxies", "_read_timeout", "_session", "_timeouts")

    def __init__(
        self,
        connection_pool_size: int = 1,
        *,
        read_timeout: float | None = READ_TIMEOUT,
        connect_timeout: float | None = CONNECT_TIMEOUT,
        pool_timeout: float | None = POOL_TIMEOUT,
        media_write_timeout: float | None = MEDIA_WRITE_TIMEOUT,  # an upload's write budget
    ) -> None:
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._timeouts = (connect_timeout, pool_timeout, media_write_timeout)
        # Made in initialize(): an aiohttp session belongs to the running event loop.
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}  # (scheme, host) -> proxy URL

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connection_pool_size)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
            )
            # Not trust_env=True: aiohttp would then look up .netrc and the proxy variables in
            # a worker thread on every request (measured: it halved the requests a second).
            # The environment is read once per host instead, as httpx reads it once per client.
            self._proxies.clear()

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,  # float | None | DEFAULT_NONE
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        default_connect, default_pool, media_write = self._timeouts
        read = _seconds(read_timeout, self._read_timeout)
        connect = _seconds(connect_timeout, default_connect)
        pool = _seconds(pool_timeout, default_pool)
        total = None
        if request_data is not None and request_data.contains_files:
            total = _upload_budget(
                request_data, connect, _seconds(write_timeout, media_write), read
            )
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        data, proxy = _form(request_data), self._proxy(url)
        try:
            async with session.request(
                method, url, data=data, timeout=timeout, proxy=proxy
            ) as response:
                return response.status, await response.read()
        # aiohttp quotes the URL in some errors (timeouts, a malformed base URL): say what
        # happened without it, and drop the original (its text would reach logs via the
        # traceback).
        except TimeoutError as error:  # before ClientError: some timeouts are both
            raise TimedOut(f"Timed out ({_without(url, error)})") from None
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{_without(url, error)}") from None

    def _proxy(self, url: str) -> str | None:
        """The proxy for ``url`` from ``HTTP_PROXY``/``HTTPS_PROXY`` unless ``NO_PROXY``
        exempts its host (read once per host)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            exempt = urllib.request.proxy_bypass(key[1])
            self._proxies[key] = None if exempt else urllib.request.getproxies().get(key[0])
        return self._proxies[key]


def _without(url: str, error: BaseException) -> str:
    """The error's class and text, the request URL replaced by its scheme, host and Bot API
    method (the path between them holds the token)."""
    text = str(error)
    parts = urlsplit(url)
    method = parts.path.rsplit("/", 1)[-1]
    shown = f"{parts.scheme}://{parts.netloc}/…/{method}"
    # aiohttp quotes the URL as it normalised it ("/./bot…" and "/x/../bot…" lose a piece,
    # odd characters are %-encoded): replace those forms too, and then anything after the host.
    quoted_forms, hosts = [url, parts.path], {f"{parts.scheme}://{parts.netloc}"}
    try:
        normalised = URL(url)
        quoted_forms += [str(normalised), normalised.raw_path, normalised.path]
        hosts.add(str(normalised.origin()))
    except ValueError:  # not a URL aiohttp could have normalised either
        pass
    for quoted in quoted_forms:
        if quoted and quoted != "/":
            text = text.replace(quoted, shown)
    for host in hosts:
        text = re.sub(re.escape(host) + r"/(?!…/)\S*", lambda _: shown, text)
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__


def _upload_budget(
    request_data: RequestData, connect: float | None, write: float | None, read: float | None
) -> float | None:
    """A bound on a whole upload, in place of a write timeout: the three budgets plus time for
    its bytes at ``UPLOAD_RATE``; none if any budget is unlimited."""
    if connect is None or write is None or read is None:
        return None
    files = request_data.multipart_data.values()
    size = sum(len(content) for _, content, _ in files if isinstance(content, bytes))
    return connect + write + read + size / UPLOAD_RATE


def _seconds(value: object, default: float | None) -> float | None:
    """A timeout PTB passed, or ours where it passed ``DEFAULT_NONE``."""
    if value is BaseRequest.DEFAULT_NONE:
        return default
    if value is None or isinstance(value, int | float):
        return value
    raise TypeError(f"a timeout must be a number of seconds or None, not {value!r}")


def _form(request_data: RequestData | None) -> aiohttp.FormData | None:
    """The parameters as a form: URL-encoded, or multipart when files go with them (as
    ``HTTPXRequest`` sends them)."""
    if request_data is None:
        return None
    # quote_fields=False: a file name goes as UTF-8 (导出.csv), as httpx and Telegram's own
    # clients send it, not percent-encoded (which Telegram would show as %E5%AF%BC….csv).
    form = aiohttp.FormData(request_data.json_parameters, quote_fields=False)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
