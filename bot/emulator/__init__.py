"""A local Telegram Bot API emulator the real PTB client cannot tell from Telegram.

An aiohttp server on 127.0.0.1 that speaks the Bot API wire format (form, multipart,
JSON and query-string parameters; ``{"ok": …}`` answers with real HTTP status codes),
validates like Telegram (unknown chat, empty or too long text, HTML entities, button
data, "message is not modified", …) and records everything the bot does. PTB therefore
raises its real exceptions: ``BadRequest``, ``Forbidden``, ``RetryAfter``,
``ChatMigrated``, ``NetworkError`` and ``TimedOut``.

Usage::

    from telegram.ext import ApplicationBuilder
    from bot.emulator import BotApiEmulator

    async with BotApiEmulator() as emu:
        app = (
            ApplicationBuilder()
            .token(emu.token)
            .base_url(emu.base_url)
            .base_file_url(emu.base_file_url)
            .build()
        )
        ...  # add handlers, initialize, start, updater.start_polling(poll_interval=0)
        alice = emu.user(1001, "Alice")
        chat = emu.private_chat(alice)
        emu.message_update(chat, alice, "/start")
        [reply] = await emu.wait_for_events(chat["id"])
        assert reply.kind == "message" and reply.buttons

Public API of :class:`BotApiEmulator` (all synchronous unless marked async; use it from
the event loop that runs the server, it is not thread-safe):

Lifecycle
    ``BotApiEmulator(token="123456:TEST-TOKEN", *, bot_id=123456,
    bot_username="simwatch_test_bot", bot_name="SimWatch", strict_html=True,
    max_calls=10_000)``; async ``start(host="127.0.0.1", port=0)``, async ``stop()``,
    ``async with``; ``base_url``, ``base_file_url``, ``port``, ``token``, ``bot_user``.

Simulated humans
    ``user(user_id, first_name="Test", *, language_code="zh-hans", username=None,
    last_name=None)``, ``private_chat(user)``, ``group_chat(chat_id, title="Shop", *,
    supergroup=False, admins=(), username=None, privacy_mode=None)``,
    ``set_privacy_mode(chat_id, enabled=True)``, ``set_admins(chat_id, user_ids)``,
    ``set_member_status(chat_id, user_id, status)`` (member / left / kicked),
    ``set_bot_status(chat_id, status, *, can_delete_messages=True)``,
    ``upgrade_to_supergroup(chat_id, new_chat_id=None)``,
    ``message_update(chat, user, text, *, reply_to=None, enqueue=True)``,
    ``callback_update(chat, user, message_id, data, *, enqueue=True, check_button=False)``,
    ``press_button(chat, user, text, *, message_id=None, enqueue=True)``,
    ``document_update(chat, user, filename, content, *, mime_type=None, caption=None,
    reply_to=None, enqueue=True)``, ``my_chat_member_update(chat, user, *,
    new_status="member", old_status=None, enqueue=True)``, ``enqueue(update)``,
    ``pending_updates``. ``chat``/``user`` are the dicts returned above or their ids.

Group privacy mode
    In a group made with ``privacy_mode=True`` a member's message is stored (others can
    reply to it) but reaches the bot only if it is a command for it (``/cmd``,
    ``/cmd@this_bot``), a reply to one of its messages or mentions ``@this_bot``, unless the
    bot is an administrator there; ``reaches_bot(update)`` says whether it does.
    ``force_reply_target(chat, user)`` is what a Telegram client does with ``ForceReply``:
    the id of the bot message the user's next message answers as a reply, or ``None``.

What the bot did
    ``calls`` (:class:`ApiCall` list), ``calls_to(method)``, ``chat_messages(chat_id)``
    and ``last_message(chat_id)`` (:class:`BotMessage`, current state),
    ``take_events(chat_id=None)`` and async ``wait_for_events(chat_id=None, count=1,
    timeout=5.0)`` (:class:`ChatEvent`: message / edit / delete / document / photo /
    callback_answer), async ``wait_idle(quiet=0.05, timeout=5.0)``, ``commands`` (keyed by
    ``(canonical scope JSON, language_code)``), ``commands_for(scope=None,
    language_code="")``, ``file(file_id)``.

Faults and limits
    ``inject_fault(method=None, *, kind, chat_id=None, times=1, retry_after=1, delay=0.0,
    migrate_to_chat_id=None, description=None)``, ``clear_faults()``, ``pending_faults``,
    ``set_blocked(chat_id, blocked=True)``, ``enable_rate_limits(*,
    global_per_second=30, group_per_minute=20, private_per_second=1, private_burst=3,
    methods=SENDING_METHODS)``, ``disable_rate_limits()``, ``rate_limited_count``.

Fault kinds: ``"429"`` (``RetryAfter``), ``"403"`` (blocked by the user / kicked from the
group), ``"400"``, ``"500"``, ``"502"`` (``NetworkError``), ``"migrate"``
(``ChatMigrated``; default new id ``-100<id>``), ``"slow"`` (answer normally after
``delay``), ``"timeout"`` (the request is *not* applied and not answered until the
client gives up; after ``delay`` > 0 it gets 504), ``"lost_response"`` (the request *is*
applied, then the answer is held like ``"timeout"``: the duplicate-send case).
``method=None`` matches any method except ``getUpdates``; faults fire in injection order.

Deliberate differences from Telegram: ``strict_html`` (default on) also rejects a bare
``&`` that Telegram would show literally; Markdown parse modes are accepted unvalidated;
inline mode, webhooks delivery and media other than documents and photos are not
emulated (unknown methods answer 404 like Telegram's unknown methods).
"""

from bot.emulator.emulator import BotApiEmulator
from bot.emulator.errors import ApiError
from bot.emulator.faults import SENDING_METHODS, FaultKind, RateLimits
from bot.emulator.html import HtmlParseError, parse_html
from bot.emulator.markup import Button
from bot.emulator.records import (
    ApiCall,
    BotMessage,
    ChatEvent,
    EventKind,
    StoredFile,
    UploadedFile,
)

__all__ = [
    "SENDING_METHODS",
    "ApiCall",
    "ApiError",
    "BotApiEmulator",
    "BotMessage",
    "Button",
    "ChatEvent",
    "EventKind",
    "FaultKind",
    "HtmlParseError",
    "RateLimits",
    "StoredFile",
    "UploadedFile",
    "parse_html",
]
