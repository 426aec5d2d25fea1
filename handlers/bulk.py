"""/import, /export and /calendar: cards in bulk for agents (代理商).

Which documents are imported, decided to be explicit so a stray file is never imported:

* a document whose caption starts with ``/import``; or
* the next document the same user sends in the same chat after ``/import`` (within the usual
  10-minute conversation window; /cancel stops waiting). In a group with privacy mode on, the
  bot only sees a document that is a reply to it or has a command caption: the prompt says so;
* after an import that asked for a fixed file (the file was refused, or some rows were), the
  next document the same user sends: the wait goes on, so the fix is sent straight back.

Rows that would move a card's expiry earlier (an old spreadsheet) are left; the report offers a
button to apply them anyway. What it applies is kept in the importing user's ``user_data``
(persisted with the conversations), packed small (``pack_older``) and bounded per user across
chats (``MAX_OLDER_*``; the oldest imports' buttons go first), for ``OLDER_HOURS``; the button
works on its own report only, for whoever may import in the chat, once, and only on cards whose
expiry is still the one the import saw.

Any other document gets a hint in a private chat and is ignored in groups. Importing (it can
overwrite many cards) and exporting (the file has the full ICCIDs) are for administrators in
groups; /calendar is for everyone and masks ICCIDs in groups, like the card list.

Register ``conversation_handler()`` with the other conversations, ``HANDLERS`` with the
one-shot handlers, and ``FALLBACK_HANDLERS`` before the catch-all fallbacks.
"""

from __future__ import annotations

import html
import pickle
import re
import secrets
from datetime import date, timedelta
from pathlib import PurePath
from typing import Any

from dateutil.relativedelta import relativedelta
from telegram import Document, ForceReply, InputFile, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.bulk.importer import OlderRow, PackedOlder, pack_older, unpack_older
from bot.bulk.reading import CHAT_LIMITS
from bot.bulk.report import rejected_file, report_text
from bot.bulk.service import BulkService
from bot.bulk.writing import OutputFormat
from bot.chats import Channel
from bot.errors import InputError
from bot.i18n import Html
from handlers.common import (
    Context,
    Here,
    answer,
    ask,
    callback_arg,
    command_args,
    here,
    is_admin,
    reply,
    services,
    with_archived_hint,
)
from handlers.conversation import END, conversation
from handlers.render import button, markup
from storage.factory import stores_for

BULK_KEY = "simwatch.bulk"
WAITING = 0
NAME = "import"
IMPORT_CAPTION = filters.CaptionRegex(r"^/import(@\w+)?(\s|$)")
EXPORT_PREFIX = "bx:"
OLDER_PREFIX = "io:"  # io:<importing user's id>:<token>
# in that user's user_data: {token: (chat id, report's message id, saved at (epoch s), bytes,
# (PackedOlder…))}, oldest first
OLDER_KEY = "import.older"
MAX_PENDING_OLDER = 3  # per user and chat: the latest imports' buttons work, older ones expire
MAX_OLDER_IMPORTS = 6  # per user, all chats together
MAX_OLDER_ROWS = 40_000  # per user, all chats together (an import has at most 20,000 rows)
MAX_OLDER_BYTES = 4 * 1024 * 1024  # per user, all chats together, as pickled
OLDER_HOURS = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,16}")
_FORMATS: dict[str, OutputFormat] = {"csv": "csv", "xlsx": "xlsx", "excel": "xlsx", "xls": "xlsx"}
_SAFE_STEM = re.compile(r"[^\w.\-]+")


def bulk(context: Context) -> BulkService:
    """The bulk service, made on first use over the bot's storage."""
    service = context.application.bot_data.get(BULK_KEY)
    if isinstance(service, BulkService):
        return service
    base = services(context)
    stores = stores_for(base.cards.storage)
    service = BulkService(stores.bulk, base.clock, stores.reminders)
    context.application.bot_data[BULK_KEY] = service
    return service


async def _refuse_non_admin(update: Update, context: Context, where: Here, key: str) -> bool:
    """True (after saying so politely) when a group member who isn't an admin asked."""
    if not where.is_group or await is_admin(update, context):
        return False
    query = update.callback_query
    if query is not None:
        await answer(query, where.t(key), alert=True)
    else:
        await reply(update, where.t(key), edit=False)
    return True


# --- /import ----------------------------------------------------------------------------------


async def import_command(update: Update, context: Context) -> int:
    where = await here(update, context)
    if await _refuse_non_admin(update, context, where, "import.admins_only"):
        return END
    if where.is_group and where.chat.channel is not Channel.TELEGRAM:
        # WeCom delivers robots no files from groups: say where a file can go instead
        await reply(update, where.t("import.no_files_in_group", chat_id=where.chat_id), edit=False)
        return END
    key = "import.ask_group" if where.is_group else "import.ask"
    limits = CHAT_LIMITS
    text = where.t(key, max_mb=limits.max_mb, max_rows=limits.max_rows)
    # In groups the file must come as a reply (privacy mode): ForceReply opens the reply box.
    await ask(update, where, text, "ask.placeholder.import_file", edit=False)
    return WAITING


def _stem(document: Document) -> str:
    stem = _SAFE_STEM.sub("_", PurePath(document.file_name or "import").stem).strip("._")
    return stem[:40] or "import"


Pending = tuple[int, int | None, float, int, tuple[PackedOlder, ...]]


def _pending(user_data: dict[Any, Any] | None, now: float) -> dict[str, Pending]:
    """The user's kept imports, those past ``OLDER_HOURS`` (or in an older shape) dropped."""
    if user_data is None:
        return {}
    kept = user_data.get(OLDER_KEY)
    if not isinstance(kept, dict):
        kept = user_data[OLDER_KEY] = {}
    for token, entry in list(kept.items()):
        fresh = isinstance(entry, tuple) and len(entry) == 5 and now - entry[2] < OLDER_HOURS * 3600
        if not fresh:
            del kept[token]
    return kept


def _keep_older(context: Context, where: Here, older: list[OlderRow]) -> str | None:
    """Keep the rows for the "apply anyway" button; its callback data, None without a user or
    when they are more than a user may keep."""
    if where.user_id is None or context.user_data is None:
        return None
    now = services(context).clock.now().timestamp()
    kept = _pending(context.user_data, now)
    rows = tuple(pack_older(row) for row in older)
    size = len(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    if len(rows) > MAX_OLDER_ROWS or size > MAX_OLDER_BYTES:
        return None

    def over() -> bool:
        entries = kept.values()
        return (
            len(kept) >= MAX_OLDER_IMPORTS
            or sum(1 for e in entries if e[0] == where.chat_id) >= MAX_PENDING_OLDER
            or sum(len(e[4]) for e in entries) + len(rows) > MAX_OLDER_ROWS
            or sum(e[3] for e in entries) + size > MAX_OLDER_BYTES
        )

    while kept and over():  # dicts keep insertion order: the oldest import goes first
        del kept[next(iter(kept))]
    token = secrets.token_urlsafe(6)
    kept[token] = (where.chat_id, None, now, size, rows)
    return f"{OLDER_PREFIX}{where.user_id}:{token}"


def _kept_on(context: Context, data: str, message_id: int | None) -> None:
    """Note which message carries the button of ``data``: the only one it works on."""
    token = data.rsplit(":", 1)[1]
    kept = context.user_data.get(OLDER_KEY) if context.user_data is not None else None
    entry = kept.get(token) if isinstance(kept, dict) else None
    if isinstance(kept, dict) and entry is not None:
        kept[token] = (entry[0], message_id, entry[2], entry[3], entry[4])


async def import_document(update: Update, context: Context) -> bool:
    """Import the document of this message (the caller decided that it is meant for import).
    True when the answer asks for a fixed file: the next document is then awaited."""
    where = await here(update, context)
    message = update.effective_message
    assert message is not None and message.document is not None
    document = message.document
    if await _refuse_non_admin(update, context, where, "import.admins_only"):
        return False
    limits = CHAT_LIMITS
    if document.file_size is not None and document.file_size > limits.max_bytes:
        text = where.t("import.file.too_big", max=limits.max_mb)
        await ask(update, where, text, "ask.placeholder.import_file", edit=False)
        return True
    try:
        telegram_file = await document.get_file()
        content = bytes(await telegram_file.download_as_bytearray())
    except TelegramError:  # expired, too big for the channel, or the network: ask again
        text = where.t("import.file.not_downloaded")
        await ask(update, where, text, "ask.placeholder.import_file", edit=False)
        return True
    try:
        owners = [("chat", where.chat_id)]
        if where.user_id is not None:
            owners.append(("user", where.user_id))
        result = await bulk(context).import_file(
            where.chat_id,
            content,
            today=where.today,
            owners=owners,
            by_user_id=where.user_id,
            by_name=where.user_name,
            timezone=where.chat.timezone,
        )
    except InputError as exc:
        # a question for the fixed file: in groups it opens the reply box (privacy mode)
        text = where.t(exc.key, **exc.params)
        await ask(update, where, text, "ask.placeholder.import_file", edit=False)
        return True
    report = result.report
    keyboard = None
    text = report_text(where.lang, report, is_group=where.is_group)
    data = _keep_older(context, where, report.older) if report.older else None
    if data is not None:
        label = where.t("import.older.button", count=len(report.older))
        keyboard = markup([[button(label, data)]])
    elif report.older:
        text = Html(f"{text}\n{where.t('import.older.not_kept')}")
    sent = await reply(update, text, keyboard, edit=False)
    if data is not None:
        _kept_on(context, data, sent.message_id if sent is not None else None)
    rejected = rejected_file(where.lang, result.sheet, report, _stem(document))
    if rejected is None:
        return False
    force = None
    if where.is_group:  # the fixed file must come as a reply to reach the bot: open the box
        hint = html.unescape(where.t("ask.placeholder.import_file"))
        force = ForceReply(selective=True, input_field_placeholder=hint)
    await message.reply_document(
        InputFile(rejected.content, filename=rejected.filename),
        caption=where.t("import.rejected.caption", count=len(report.rejected)),
        parse_mode=ParseMode.HTML,
        reply_markup=force,
        do_quote=True,
    )
    return True


def _waiting_after(fix_asked: bool) -> int:
    return WAITING if fix_asked else END


async def captioned_document(update: Update, context: Context) -> int | None:
    """``/import`` in the caption; ``/import@other_bot`` is another bot's business (None: a
    wait for our file, if any, goes on)."""
    message = update.effective_message
    caption = message.caption if message is not None and message.caption else ""
    command = caption.split(maxsplit=1)[0] if caption.strip() else ""
    _, _, mention = command.partition("@")
    if mention and mention.lower() != (context.bot.username or "").lower():
        return None
    return _waiting_after(await import_document(update, context))


async def document_while_waiting(update: Update, context: Context) -> int:
    return _waiting_after(await import_document(update, context))


async def _drop_older_button(update: Update) -> None:
    query = update.callback_query
    if query is None:
        return
    try:
        await query.edit_message_reply_markup(None)
    except BadRequest as exc:  # already gone (pressed twice at once, or an old message)
        if "not modified" not in exc.message:
            raise


def _carries(message: object, data: str) -> bool:
    """Whether ``message`` is one of ours with a button of exactly this data."""
    keyboard = message.reply_markup if isinstance(message, Message) else None
    if keyboard is None:
        return False
    return any(b.callback_data == data for row in keyboard.inline_keyboard for b in row)


async def older_button(update: Update, context: Context) -> None:
    """The button under an import report that applies the rows left as older, after all.
    Button data can be forged: the keyboard is only taken off the import's own report."""
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    where = await here(update, context)
    if await _refuse_non_admin(update, context, where, "import.admins_only"):
        return
    importer = callback_arg(update, 1)
    parts = query.data.split(":")
    token = parts[2] if len(parts) == 3 and _TOKEN.fullmatch(parts[2]) else None
    data = context.application.user_data.get(importer) if importer is not None else None
    raw = data.get(OLDER_KEY) if data is not None else None
    entry = raw.get(token) if isinstance(raw, dict) and token is not None else None
    message = query.message
    message_id = message.message_id if message is not None else None
    if not (isinstance(entry, tuple) and len(entry) == 5) or entry[:2] != (
        where.chat_id,
        message_id,
    ):
        await answer(query, where.t("import.older.gone"), alert=True)
        if _carries(message, query.data):  # a real button, applied or evicted: take it off
            await _drop_older_button(update)
        return  # else forged, or another chat's: leave the message be
    assert isinstance(raw, dict) and token is not None
    now = services(context).clock.now().timestamp()
    if token not in _pending(data, now):  # past OLDER_HOURS
        context.application.mark_data_for_update_persistence(user_ids=importer)
        await answer(query, where.t("import.older.expired", hours=OLDER_HOURS), alert=True)
        await _drop_older_button(update)
        return
    try:
        older = [unpack_older(packed) for packed in entry[4]]
    except (TypeError, ValueError):  # kept by another version of the bot
        del raw[token]
        await answer(query, where.t("import.older.gone"), alert=True)
        await _drop_older_button(update)
        return
    await answer(query)
    outcome = await bulk(context).apply_older(
        where.chat_id, older, by_user_id=where.user_id, by_name=where.user_name
    )
    raw.pop(token, None)  # once applied, never again (a second press finds nothing)
    context.application.mark_data_for_update_persistence(user_ids=importer)
    await _drop_older_button(update)
    text = where.t("import.older.done", applied=outcome.applied)
    if outcome.changed:
        text = Html(f"{text}\n{where.t('import.older.changed', changed=outcome.changed)}")
    await reply(update, text, edit=False)


async def not_a_document(update: Update, context: Context) -> int:
    """Text or a photo (a screenshot of the sheet) while a file is awaited."""
    where = await here(update, context)
    message = update.effective_message
    photo = message is not None and bool(message.photo)
    await reply(update, where.t("import.photo" if photo else "import.not_a_file"), edit=False)
    return WAITING


async def stray_document(update: Update, context: Context) -> None:
    """A document nobody asked for, in a private chat: say how to import instead of guessing."""
    where = await here(update, context)
    telegram = where.chat.channel is Channel.TELEGRAM  # other channels' files have no caption
    await reply(
        update, where.t("import.stray_document" if telegram else "import.stray_file"), edit=False
    )


def conversation_handler() -> ConversationHandler[Any]:
    """/import, then the document: a fresh handler per Application (it holds the state)."""
    typed_or_photo = (filters.TEXT & ~filters.COMMAND) | filters.PHOTO
    return conversation(
        NAME,
        entry_points=[
            CommandHandler("import", import_command),
            MessageHandler(filters.Document.ALL & IMPORT_CAPTION, captioned_document),
        ],
        states={
            WAITING: [
                MessageHandler(filters.Document.ALL, document_while_waiting),
                # in groups staff talk among themselves: only nag in private chats
                MessageHandler(typed_or_photo & filters.ChatType.PRIVATE, not_a_document),
            ]
        },
    )


# --- /export ----------------------------------------------------------------------------------


async def _send_export(context: Context, where: Here, fmt: OutputFormat) -> None:
    content, count = await bulk(context).export(
        where.chat, lang=where.lang, today=where.today, fmt=fmt
    )
    filename = f"simwatch-cards-{where.today:%Y%m%d}.{fmt}"
    key = "export.caption" if count else "export.empty_caption"
    await context.bot.send_document(
        where.chat_id,
        InputFile(content, filename=filename),
        caption=where.t(key, count=count),
        parse_mode=ParseMode.HTML,
    )


async def export_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    if await _refuse_non_admin(update, context, where, "export.admins_only"):
        return
    args = command_args(context)
    fmt = _FORMATS.get(args[0].lower()) if args else None
    if fmt is not None:
        await _send_export(context, where, fmt)
        return
    keyboard = markup(
        [
            [
                button(where.t("export.button_xlsx"), f"{EXPORT_PREFIX}xlsx"),
                button(where.t("export.button_csv"), f"{EXPORT_PREFIX}csv"),
            ]
        ]
    )
    await reply(update, where.t("export.choose"), keyboard, edit=False)


async def export_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    where = await here(update, context)
    if await _refuse_non_admin(update, context, where, "export.admins_only"):
        return
    fmt = _FORMATS[query.data.removeprefix(EXPORT_PREFIX)]
    await answer(query)
    await reply(update, where.t("export.preparing", format=fmt.upper()))
    await _send_export(context, where, fmt)


# --- /calendar --------------------------------------------------------------------------------


def _alarm_days(where: Here, days_before: tuple[int, ...]) -> Html:
    before = where.t("calendar.days_separator").join(str(d) for d in days_before if d > 0)
    if not before:
        return where.t("calendar.days_today_only")
    key = "calendar.days_list_and_today" if 0 in days_before else "calendar.days_list"
    return where.t(key, list=before)


CALENDAR_MONTHS = 12  # /calendar alone: the next 12 months
MAX_CALENDAR_DAYS = 730


def calendar_until(today: date, args: list[str]) -> date | None:
    """The horizon's last day: ``/calendar 90`` → 90 days on; 12 months without a number;
    None for anything but a whole number of days in 1..MAX_CALENDAR_DAYS."""
    if not args:
        return today + relativedelta(months=CALENDAR_MONTHS)
    text = args[0].removesuffix("d").removesuffix("天")
    if len(args) > 1 or not text.isdecimal() or not 1 <= int(text) <= MAX_CALENDAR_DAYS:
        return None
    return today + timedelta(days=int(text))


async def calendar_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    until = calendar_until(where.today, command_args(context))
    if until is None:
        await reply(update, where.t("calendar.bad_days", max=MAX_CALENDAR_DAYS), edit=False)
        return
    service = bulk(context)
    content, count = await service.calendar(
        where.chat, lang=where.lang, today=where.today, until=until
    )
    if count == 0:
        if await services(context).cards.storage.count_cards(where.chat_id):
            # cards, none expiring that soon: say so, not "no cards yet"
            days = (until - where.today).days
            text = where.t("calendar.none_within", days=days, max=MAX_CALENDAR_DAYS)
        else:
            text = await with_archived_hint(context, where, where.t("calendar.empty"))
        await reply(update, text, edit=False)
        return
    settings = await service.reminder_settings(where.chat_id)
    await context.bot.send_document(
        where.chat_id,
        InputFile(content, filename="simwatch-expiries.ics"),
        caption=where.t(
            "calendar.caption",
            count=count,
            when=_alarm_days(where, settings.days_before),
            time=settings.send_time.strftime("%H:%M"),
        )
        + where.t("calendar.horizon", until=until.isoformat(), max=MAX_CALENDAR_DAYS),
        parse_mode=ParseMode.HTML,
    )


HANDLERS = [
    CallbackQueryHandler(older_button, pattern=rf"^{OLDER_PREFIX}"),
    CommandHandler("export", export_command),
    CallbackQueryHandler(export_button, pattern=rf"^{EXPORT_PREFIX}(csv|xlsx)$"),
    CommandHandler("calendar", calendar_command),
]

# after every other handler, before the catch-alls: documents no one asked to import
FALLBACK_HANDLERS = [
    MessageHandler(filters.Document.ALL & filters.ChatType.PRIVATE, stray_document),
]
