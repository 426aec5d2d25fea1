"""/admin: who administers a group on a channel that does not say (WeCom).

Telegram tells the bot a group's administrators; WeCom does not, so there the first person to
speak to the robot in a group administers it (``chats.admin_user_id``). ``/admin`` hands it on:
a member asks, and the group gets the question with two buttons that only the administrator's
press decides. The buttons carry the asker's id, so nothing waits in memory; a stale or
forged press by anyone else changes nothing.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.chats import Channel
from handlers.common import Context, answer, here, is_admin, pressed, reply, services
from handlers.render import button, markup
from storage.channels import ChannelStore
from storage.factory import stores_for

HANDOVER = "ah"  # ah:<user id>: hand the group over to that person; an: refused


def _channels(context: Context) -> ChannelStore:
    return stores_for(services(context).cards.storage).channels


async def admin_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    if not where.is_group:
        await reply(update, where.t("admin.private"), edit=False)
        return
    if where.chat.channel is Channel.TELEGRAM:
        await reply(update, where.t("admin.telegram"), edit=False)
        return
    if where.user_id is None:
        return
    if await is_admin(update, context):
        await reply(update, where.t("admin.already"), edit=False)
        return
    keyboard = markup(
        [
            [
                button(where.t("admin.button_yes"), f"{HANDOVER}:{where.user_id}"),
                button(where.t("admin.button_no"), "an:"),
            ]
        ]
    )
    name = where.user_name or ""
    await reply(update, where.t("admin.asked", name=name), keyboard, edit=False)


async def handover_pressed(update: Update, context: Context) -> None:
    data, where = await pressed(update, context)
    if not await is_admin(update, context):
        await answer(update.callback_query, where.t("group.admins_only"), alert=True)
        return
    if data == "an:":
        await reply(update, where.t("admin.kept"))
        return
    candidate = data.removeprefix(f"{HANDOVER}:")
    if not candidate.isdecimal():
        await answer(update.callback_query, where.t("button.stale"), alert=True)
        return
    await _channels(context).set_group_admin(where.chat_id, int(candidate))
    await reply(update, where.t("admin.handed_over"))


HANDLERS = [
    CommandHandler("admin", admin_command),
    CallbackQueryHandler(handover_pressed, pattern=rf"^({HANDOVER}:\d{{1,20}}|an:)$"),
]
