"""/start, /help, and what happens with buttons and text nobody is waiting for."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.chats import Channel
from handlers.common import Context, answer, here, reply
from handlers.conversation import conversation_owner

MAX_NAME_SHOWN = 32  # a button's answer holds 200 characters at most


async def start_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    name = update.effective_user.first_name if update.effective_user else ""
    if where.chat.channel is Channel.TELEGRAM:
        key = "start.group" if where.is_group else "start.private"
        await reply(update, where.t(key, name=name))
        return
    # WeCom and the like: no command menu, a robot hears a group only when mentioned, and
    # reaches only chats that wrote to it: say how this chat will get its digests.
    if where.is_group:
        admins = await context.bot.get_chat_administrators(where.chat_id)
        admin = admins[0].user.full_name if admins else name
        text = "\n\n".join(
            [where.t("start.channel_group"), where.t("wecom.group_delivery", admin=admin)]
        )
    else:
        text = "\n\n".join([where.t("start.private", name=name), where.t("wecom.private_delivery")])
    await reply(update, text)


async def help_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    await reply(update, where.t("help.text"))


async def id_command(update: Update, context: Context) -> None:
    """The chat's id, for the operator's ``python -m bot import/export --chat``."""
    where = await here(update, context)
    await reply(update, where.t("id.text", chat_id=where.chat_id), edit=False)


async def nothing_to_cancel(update: Update, context: Context) -> None:
    """/cancel outside any conversation (every conversation answers its own /cancel)."""
    where = await here(update, context)
    await reply(update, where.t("conversation.nothing_to_cancel"), edit=False)


async def stale_button(update: Update, context: Context) -> None:
    """A button from a finished or timed-out conversation, or data we never made; or, in a
    group, a button of someone else's conversation in progress: say whose."""
    where = await here(update, context)
    owner = conversation_owner(update, context)
    if owner is not None:
        name = await _member_name(update, context, owner)
        text = where.t("button.not_yours", name=name) if name else where.t("button.not_yours_anon")
        await answer(update.callback_query, text, alert=True)
        return
    await answer(update.callback_query, where.t("button.stale"), alert=True)


async def _member_name(update: Update, context: Context, user_id: int) -> str | None:
    chat = update.effective_chat
    if chat is None:
        return None
    try:
        member = await context.bot.get_chat_member(chat.id, user_id)
    except TelegramError:  # they left the group meanwhile, or Telegram can't say
        return None
    name = member.user.full_name
    return name if len(name) <= MAX_NAME_SHOWN else name[: MAX_NAME_SHOWN - 1] + "…"


async def unknown_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    await reply(update, where.t("unknown.command"), edit=False)


async def stray_text(update: Update, context: Context) -> None:
    """Private chats get a hint; in Telegram groups staff talk among themselves, so stay quiet
    (where a robot hears a group only when mentioned, as in WeCom, the text was for us)."""
    chat = update.effective_chat
    if chat is None:
        return
    where = await here(update, context)
    if chat.type == ChatType.PRIVATE or where.chat.channel is not Channel.TELEGRAM:
        await reply(update, where.t("unknown.text"), edit=False)


HANDLERS = [
    CommandHandler("start", start_command),
    CommandHandler("help", help_command),
    CommandHandler("id", id_command),
    CommandHandler("cancel", nothing_to_cancel),
]

# registered last, after every other handler had its chance
FALLBACK_HANDLERS = [
    CallbackQueryHandler(stale_button),
    MessageHandler(filters.COMMAND, unknown_command),
    MessageHandler(filters.TEXT & ~filters.COMMAND, stray_text),
]
