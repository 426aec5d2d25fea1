"""/settings: the chat's language and time zone (reminder settings live behind ``rs:menu``)."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.errors import excerpt
from bot.i18n import LANGUAGES, resolve_language, t
from bot.timezones import parse_timezone, zone_label
from handlers.common import (
    Context,
    Here,
    answer,
    answer_stale,
    ask,
    here,
    is_admin,
    reply,
    services,
)
from handlers.conversation import END, conversation
from handlers.render import button, markup

TIMEZONE = 0
COMMON_ZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "UTC")


def digest_language_line(where: Here, default: str) -> str:
    """Which language the chat's daily digest is in, and why (``default``: LANGUAGE)."""
    chat = where.chat
    lang = resolve_language(chat.language or chat.default_language, None, default)
    name = where.t(f"settings.language_name.{lang}")
    key = "settings.digest_language" if chat.language else "settings.digest_language_default"
    return where.t(key, language=name)


async def _show(update: Update, context: Context, where: Here) -> None:
    rows = [
        # each language named in itself, so a user who can't read the current one finds theirs
        [
            button(t(lang, f"settings.language_name.{lang}"), f"st:lang:{lang}")
            for lang in LANGUAGES
        ],
        [button(where.t("settings.change_timezone"), "st:tz")],
        [button(where.t("settings.reminders"), "rs:menu")],
        [button(where.t("push.settings_button"), "pu:list")],  # handlers/push.py
    ]
    language = where.t(f"settings.language_name.{where.lang}")
    timezone = zone_label(where.chat.timezone)
    text = where.t("settings.show", language=language, timezone=timezone)
    digest = digest_language_line(where, services(context).settings.language)
    await reply(update, f"{text}\n{digest}", markup(rows))


async def settings_command(update: Update, context: Context) -> None:
    await _show(update, context, await here(update, context))


async def language_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    where = await here(update, context)
    if not await is_admin(update, context):
        await answer(query, where.t("group.admins_only"), alert=True)
        return
    lang = query.data.rsplit(":", 1)[1]
    if lang not in LANGUAGES:
        await answer_stale(update, context)
        return
    chat = where.chat.model_copy(update={"language": lang})
    await services(context).cards.save_settings(chat)
    await answer(query)
    await _show(update, context, await here(update, context))


async def timezone_button(update: Update, context: Context) -> int:
    query = update.callback_query
    where = await here(update, context)
    if not await is_admin(update, context):
        await answer(query, where.t("group.admins_only"), alert=True)
        return END
    await answer(query)
    rows = [[button(zone, f"st:tzset:{zone}")] for zone in COMMON_ZONES]
    text = where.t("settings.ask_timezone")
    await ask(update, where, text, "ask.placeholder.timezone", markup(rows), edit=False)
    return TIMEZONE


async def _set_zone(update: Update, context: Context, text: str) -> int:
    where = await here(update, context)
    zone = parse_timezone(text)
    if zone is None:
        said = where.t("settings.bad_timezone", text=excerpt(text))
        await ask(update, where, said, "ask.placeholder.timezone", edit=False)
        return TIMEZONE
    chat = where.chat.model_copy(update={"timezone": zone})
    await services(context).cards.save_settings(chat)
    where = await here(update, context)
    today = where.today.isoformat()
    await reply(update, where.t("settings.timezone_set", timezone=zone_label(zone), today=today))
    return END


async def timezone_typed(update: Update, context: Context) -> int:
    assert update.message is not None and update.message.text is not None
    return await _set_zone(update, context, update.message.text)


async def timezone_picked(update: Update, context: Context) -> int:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    await answer(query)
    return await _set_zone(update, context, query.data.split(":", 2)[2])


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        "settings",
        entry_points=[CallbackQueryHandler(timezone_button, pattern=r"^st:tz$")],
        states={
            TIMEZONE: [
                CallbackQueryHandler(timezone_picked, pattern=r"^st:tzset:"),
                MessageHandler(filters.TEXT & ~filters.COMMAND, timezone_typed),
            ]
        },
    )


HANDLERS = [
    CommandHandler("settings", settings_command),
    CallbackQueryHandler(language_button, pattern=r"^st:lang:"),
]
