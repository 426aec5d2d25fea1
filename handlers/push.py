"""/push: the chat's push robots (WeCom, DingTalk, Feishu/Lark group robots its digests also go
to). ``/push <url> [secret]`` adds one (tested first), ``/push`` lists them with a test and a
remove button each, ``/push remove N`` removes one, ``/push help`` says how. Also behind a
button of /settings (``pu:list``).

The pasted URL is the robot's only credential: in a group the message carrying it is deleted
when the bot may (and the chat told so), else the sender is asked to delete it. That happens
before anything else, a non-administrator's paste and a mistyped URL included. In groups only
administrators add, test or remove; everyone may list.

Buttons: ``pu:list``, ``pu:test:<id>``, ``pu:rm:<id>`` (asks), ``pu:rmok:<id>`` (removes). A
target id from another chat, or one removed meanwhile, is a stale button and answered so.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from telegram import Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.errors import excerpt
from bot.i18n import Html, resolve_language
from bot.robots.models import MAX_TARGETS_PER_CHAT, PushTarget, Service
from bot.robots.render import service_name
from bot.services.push import OK, Failure, Problem, PushService
from handlers.common import (
    Context,
    Here,
    answer,
    answer_stale,
    callback_arg,
    command_args,
    here,
    is_admin,
    reply,
    services,
)
from handlers.render import Keyboard, button, markup

HELP_WORDS = frozenset({"help", "?", "帮助", "说明"})
REMOVE_WORDS = frozenset({"remove", "rm", "delete", "del", "删除"})
LIST_WORDS = frozenset({"list", "ls", "列表"})
_NUMBER = re.compile("[0-9]{1,6}")
MAX_RESULT_SHOWN = 80  # characters of a service's error text in a list line
# PushTarget.last_result values the catalogue words (push.result.*); others are shown as said
_RESULT_WORDS = frozenset(
    {"invalid_key", "security", "signature", "keyword", "ip"}
    | {"rate_limited", "unreachable", "rejected"}
)


def _push(context: Context) -> PushService:
    return services(context).push


def _service(where: Here, service: Service) -> str:
    return service_name(where.lang, service)


def _result(where: Here, code: str) -> str:
    if code in _RESULT_WORDS:
        return where.t(f"push.result.{code}")
    return excerpt(code, MAX_RESULT_SHOWN)


def _robot_language(context: Context, where: Here) -> str:
    """The language the chat's robots get their messages in: its digests' (the chat's chosen
    language, else its first user's), not that of whoever is adding one."""
    chat = where.chat
    return resolve_language(
        chat.language or chat.default_language, None, services(context).settings.language
    )


def _when(where: Here, target: PushTarget) -> str:
    assert target.last_at is not None
    return target.last_at.astimezone(ZoneInfo(where.chat.timezone)).strftime("%Y-%m-%d %H:%M")


def _item(where: Here, number: int, target: PushTarget) -> Html:
    if target.last_at is None or target.last_result is None:
        last = where.t("push.last_never")
    elif target.last_result == OK:
        last = where.t("push.last_ok", when=_when(where, target))
    else:
        last = where.t(
            "push.last_failed", when=_when(where, target), reason=_result(where, target.last_result)
        )
    paused = ""
    if target.paused:
        paused = where.t("push.paused", reason=_result(where, target.pause_reason or "rejected"))
    return where.t(
        "push.item",
        n=number,
        service=_service(where, target.robot.service),
        token=target.robot.masked,
        paused=Html(paused),
        last=Html(last),
    )


def list_view(where: Here, targets: list[PushTarget]) -> tuple[str, Keyboard]:
    """The chat's targets, numbered as ``/push remove N`` takes them, with their buttons."""
    if not targets:
        return f"{where.t('push.empty')}\n\n{usage(where)}", []
    header = where.t("push.header", count=len(targets), max=MAX_TARGETS_PER_CHAT)
    lines = [_item(where, n, target) for n, target in enumerate(targets, start=1)]
    rows = [
        [
            button(where.t("push.button.test", n=n), f"pu:test:{target.id}"),
            button(where.t("push.button.remove", n=n), f"pu:rm:{target.id}"),
        ]
        for n, target in enumerate(targets, start=1)
    ]
    text = "\n\n".join([header, *lines, where.t("push.footer")])
    return text, rows


def usage(where: Here) -> Html:
    return where.t("push.usage", accepted=where.t("push.accepted"))


def failure_text(where: Here, failure: Failure, service: Service | None) -> Html:
    """Why an add or a test failed, and what to change."""
    name = _service(where, service) if service is not None else ""
    problem = failure.problem
    if problem is Problem.URL and failure.webhook is not None:
        return where.t(f"push.webhook.{failure.webhook.value}", accepted=where.t("push.accepted"))
    if problem is Problem.REFUSED and failure.refusal is not None:
        return where.t(f"push.refusal.{failure.refusal.value}", service=name)
    if problem is Problem.BUSY:
        return where.t("push.problem.busy", seconds=failure.wait)
    if problem is Problem.TOO_SOON:
        return where.t("push.problem.too_soon", seconds=failure.wait)
    if problem is Problem.FULL:
        return where.t("push.problem.full", max=failure.count)
    if problem is Problem.NOT_FOUND:
        return where.t("push.problem.not_found")
    if problem is Problem.REJECTED:
        return where.t("push.problem.rejected", service=name, error=excerpt(failure.error or ""))
    return where.t(f"push.problem.{problem.value}", service=name)


async def _show_list(update: Update, context: Context, where: Here, note: str = "") -> None:
    text, rows = list_view(where, await _push(context).list(where.chat_id))
    await reply(update, f"{note}\n\n{text}" if note else text, markup(rows) if rows else None)


async def _delete_paste(update: Update, context: Context, where: Here) -> tuple[str, bool]:
    """In a group, delete the message that carried a URL: the note to say about it, and
    whether it is gone (nothing to say in a private chat, where only its owner sees it)."""
    message = update.effective_message
    if not where.is_group or message is None:
        return "", False
    try:
        await context.bot.delete_message(message.chat_id, message.message_id)
    except TelegramError:  # not an administrator, or without the right to delete
        return where.t("push.delete_by_hand"), False
    return where.t("push.deleted"), True


async def _say(update: Update, text: str, *, deleted: bool) -> Message | None:
    """Answer a /push message; once it is deleted there is nothing to reply to."""
    chat = update.effective_chat
    if deleted and chat is not None:
        return await chat.send_message(text, parse_mode=ParseMode.HTML)
    return await reply(update, text, edit=False)


async def _add(update: Update, context: Context, where: Here, args: list[str]) -> None:
    note, deleted = await _delete_paste(update, context, where)

    async def say(text: str) -> None:
        await _say(update, f"{text}\n\n{note}" if note else text, deleted=deleted)

    if not await is_admin(update, context):
        await say(where.t("push.admins_only"))
        return
    if len(args) > 2:
        await say(usage(where))
        return
    chat = update.effective_chat
    if chat is not None:  # the test can take a few seconds
        await chat.send_action(ChatAction.TYPING)
    result = await _push(context).add(
        where.chat_id,
        args[0],
        args[1] if len(args) == 2 else None,
        added_by=where.user_id,
        source_name=chat.effective_name if chat is not None else None,
        is_group=where.is_group,
        lang=_robot_language(context, where),
    )
    if result.failure is not None or result.target is None:
        failure = result.failure or Failure(Problem.FULL, count=MAX_TARGETS_PER_CHAT)
        service = result.robot.service if result.robot is not None else None
        await say(where.t("push.add_failed", reason=failure_text(where, failure, service)))
        return
    target = result.target
    targets = await _push(context).list(where.chat_id)
    number = next((n for n, t in enumerate(targets, start=1) if t.id == target.id), len(targets))
    key = "push.updated" if result.again else "push.added"
    await say(
        where.t(
            key,
            service=_service(where, target.robot.service),
            token=target.robot.masked,
            n=number,
        )
    )


async def _remove_typed(update: Update, context: Context, where: Here, args: list[str]) -> None:
    if not await is_admin(update, context):
        await reply(update, where.t("push.admins_only"), edit=False)
        return
    # a few ASCII digits: a long number (or "２") is no list number, and is not quoted back
    number = int(args[1]) if len(args) == 2 and _NUMBER.fullmatch(args[1]) else None
    if number is None:
        await reply(update, where.t("push.remove_usage"), edit=False)
        return
    result = await _push(context).remove(where.chat_id, number=number)
    if result.target is None:
        count = result.failure.count if result.failure is not None else 0
        text = (
            where.t("push.problem.no_number", n=number, count=count)
            if count
            else where.t("push.problem.none_yet")
        )
        await reply(update, text, edit=False)
        return
    await reply(update, _removed_text(where, result.target), edit=False)


def _removed_text(where: Here, target: PushTarget) -> Html:
    return where.t(
        "push.removed", service=_service(where, target.robot.service), token=target.robot.masked
    )


async def push_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    args = command_args(context)
    word = args[0].lower() if args else ""
    if not args or (word in LIST_WORDS and len(args) == 1):
        text, rows = list_view(where, await _push(context).list(where.chat_id))
        await reply(update, text, markup(rows) if rows else None, edit=False)
    elif word in HELP_WORDS:
        await reply(update, usage(where), edit=False)
    elif word in REMOVE_WORDS:
        await _remove_typed(update, context, where, args)
    else:
        await _add(update, context, where, args)


async def _target_pressed(
    update: Update, context: Context, where: Here
) -> tuple[PushTarget, int] | None:
    """The target a button names, and its number, if it is still this chat's (else the stale
    answer, and None)."""
    target_id = callback_arg(update, 2)
    targets = await _push(context).list(where.chat_id) if target_id is not None else []
    for number, target in enumerate(targets, start=1):
        if target.id == target_id:
            return target, number
    await answer_stale(update, context)
    return None


async def push_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    data = query.data if isinstance(query.data, str) else ""
    action = data.split(":")[1] if data.count(":") >= 1 else ""
    where = await here(update, context)
    if action == "list" and data == "pu:list":
        await answer(query)
        await _show_list(update, context, where)
        return
    if action not in ("test", "rm", "rmok") or data.count(":") != 2:
        await answer_stale(update, context)
        return
    if not await is_admin(update, context):
        await answer(query, where.t("push.admins_only"), alert=True)
        return
    found = await _target_pressed(update, context, where)
    if found is None:
        return
    target, number = found
    await answer(query)
    service, token = _service(where, target.robot.service), target.robot.masked
    if action == "rm":
        rows = [
            [
                button(where.t("push.button.confirm_remove"), f"pu:rmok:{target.id}"),
                button(where.t("push.button.keep"), "pu:list"),
            ]
        ]
        text = where.t("push.confirm_remove", n=number, service=service, token=token)
        await reply(update, text, markup(rows))
        return
    if action == "rmok":
        removed = await _push(context).remove(where.chat_id, target_id=target.id)
        note = (
            _removed_text(where, removed.target)
            if removed.target is not None
            else where.t("push.problem.not_found")
        )
        await _show_list(update, context, where, note)
        return
    chat = update.effective_chat
    if chat is not None:
        await chat.send_action(ChatAction.TYPING)
    tested = await _push(context).test(where.chat_id, target.id, _robot_language(context, where))
    if tested.failure is None:
        note = where.t(
            "push.resumed" if tested.resumed else "push.tested", service=service, token=token
        )
    elif tested.failure.problem is Problem.NOT_FOUND:
        note = where.t("push.problem.not_found")
    else:
        reason = failure_text(where, tested.failure, target.robot.service)
        note = where.t("push.test_failed", service=service, token=token, reason=reason)
    await _show_list(update, context, where, note)


HANDLERS = [
    # New messages only: an edited "/push remove 1" must not remove whatever is now number 1.
    CommandHandler("push", push_command, filters=filters.UpdateType.MESSAGE),
    CallbackQueryHandler(push_button, pattern=r"^pu:"),
]
