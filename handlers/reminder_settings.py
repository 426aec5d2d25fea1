"""Reminder settings, behind the ``rs:menu`` button of /settings: the daily send time, the days
before expiry to remind, and how long to keep reminding after expiry.

Presets are one tap; anything else is typed as a reply (a reply to the bot's message reaches
it in groups even in privacy mode, and in groups the question is followed by a ForceReply line
that opens the reply box). In groups only administrators may change settings.

Register ``conversation_handler()`` (a conversation, for typed values) with the other
conversations and ``HANDLERS`` (the menu and one-tap presets) with the one-shot button handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import time
from typing import Any

from telegram import InlineKeyboardButton, Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.errors import InputError
from bot.i18n import Html
from bot.reminders.models import MAX_OVERDUE_DAILY_DAYS, ReminderSettings
from bot.reminders.parsing import parse_days_before, parse_overdue_days, parse_send_time
from bot.reminders.service import ReminderService
from handlers.common import (
    Context,
    Here,
    answer,
    answer_stale,
    ask,
    callback_int,
    here,
    is_admin,
    reply,
)
from handlers.conversation import END, conversation
from handlers.reminder_schedule import reminders
from handlers.render import Keyboard, button, markup

ASK_TIME, ASK_DAYS, ASK_OVERDUE = range(3)
PLACEHOLDERS = {
    ASK_TIME: "ask.placeholder.time",
    ASK_DAYS: "ask.placeholder.days",
    ASK_OVERDUE: "ask.placeholder.overdue",
}
TIME_PRESETS = (("07:00", "08:00", "09:00", "10:00"), ("12:00", "18:00", "20:00", "21:00"))
DAYS_PRESETS = ((30, 7, 3, 1, 0), (15, 7, 3, 1, 0), (7, 3, 1, 0), (3, 1, 0))
OVERDUE_PRESETS = (0, 7, 30, 90)
_CURRENT = "✓ "


def _service(context: Context) -> ReminderService:
    service = reminders(context)
    if service is None:
        raise RuntimeError("install_reminders() was not called")
    return service


def days_summary(where: Here, days_before: tuple[int, ...]) -> Html:
    before = [day for day in days_before if day > 0]
    listed = where.t("reminder_settings.list_separator").join(str(day) for day in before)
    if not before:
        return where.t("reminder_settings.days_today_only")
    if 0 in days_before:
        return where.t("reminder_settings.days_list_and_today", list=listed)
    return where.t("reminder_settings.days_list", list=listed)


def overdue_summary(where: Here, days: int) -> Html:
    if days == 0:
        return where.t("reminder_settings.overdue_off")
    return where.t("reminder_settings.overdue_on", days=days)


def menu_text(where: Here, settings: ReminderSettings) -> Html:
    return where.t(
        "reminder_settings.menu",
        time=settings.send_time.strftime("%H:%M"),
        timezone=where.chat.timezone,
        days=days_summary(where, settings.days_before),
        overdue=overdue_summary(where, settings.overdue_daily_days),
    )


def menu_keyboard(where: Here) -> Keyboard:
    return [
        [
            button(where.t("reminder_settings.button.time"), "rs:time"),
            button(where.t("reminder_settings.button.days"), "rs:days"),
        ],
        [button(where.t("reminder_settings.button.overdue"), "rs:overdue")],
        [button(where.t("reminder_settings.button.done"), "rs:done")],
    ]


async def _show_menu(
    update: Update, context: Context, where: Here, *, saved: bool = False, edit: bool = True
) -> None:
    settings = await _service(context).settings(where.chat_id)
    text = menu_text(where, settings)
    if saved:
        text = Html(where.t("reminder_settings.saved") + "\n\n" + text)
    await reply(update, text, markup(menu_keyboard(where)), edit=edit)


async def menu_pressed(update: Update, context: Context) -> int:
    await answer(update.callback_query)
    await _show_menu(update, context, await here(update, context))
    return END


async def done_pressed(update: Update, context: Context) -> int:
    await answer(update.callback_query)
    where = await here(update, context)
    settings = await _service(context).settings(where.chat_id)
    text = where.t(
        "reminder_settings.closed",
        time=settings.send_time.strftime("%H:%M"),
        timezone=where.chat.timezone,
    )
    await reply(update, text)
    return END


async def _admin(update: Update, context: Context, where: Here) -> bool:
    if await is_admin(update, context):
        return True
    text = where.t("reminder_settings.admins_only")
    if update.callback_query is not None:
        await answer(update.callback_query, text, alert=True)
    else:
        await reply(update, text, edit=False)
    return False


def _back(where: Here) -> list[InlineKeyboardButton]:
    return [button(where.t("reminder_settings.button.back"), "rs:menu")]


def _mark(label: str, current: bool) -> str:
    return _CURRENT + label if current else label


async def ask_time(update: Update, context: Context) -> int:
    where = await here(update, context)
    if not await _admin(update, context, where):
        return END
    await answer(update.callback_query)
    current = (await _service(context).settings(where.chat_id)).send_time.strftime("%H:%M")
    rows: Keyboard = [
        [
            button(_mark(value, value == current), f"rs:set:t:{value.replace(':', '')}")
            for value in row
        ]
        for row in TIME_PRESETS
    ]
    rows.append(_back(where))
    text = where.t("reminder_settings.ask_time", timezone=where.chat.timezone)
    await ask(update, where, text, PLACEHOLDERS[ASK_TIME], markup(rows))
    return ASK_TIME


async def ask_days(update: Update, context: Context) -> int:
    where = await here(update, context)
    if not await _admin(update, context, where):
        return END
    await answer(update.callback_query)
    current = (await _service(context).settings(where.chat_id)).days_before
    rows: Keyboard = [
        [
            button(
                _mark(
                    where.t("reminder_settings.preset_days", list="/".join(map(str, preset))),
                    preset == current,
                ),
                "rs:set:d:" + ".".join(map(str, preset)),
            )
        ]
        for preset in DAYS_PRESETS
    ]
    rows.append(_back(where))
    text = where.t("reminder_settings.ask_days")
    await ask(update, where, text, PLACEHOLDERS[ASK_DAYS], markup(rows))
    return ASK_DAYS


async def ask_overdue(update: Update, context: Context) -> int:
    where = await here(update, context)
    if not await _admin(update, context, where):
        return END
    await answer(update.callback_query)
    current = (await _service(context).settings(where.chat_id)).overdue_daily_days
    presets = [
        button(
            _mark(
                where.t("reminder_settings.preset_overdue", n=days)
                if days
                else where.t("reminder_settings.preset_overdue_off"),
                days == current,
            ),
            f"rs:set:o:{days}",
        )
        for days in OVERDUE_PRESETS
    ]
    rows: Keyboard = [presets, _back(where)]
    text = where.t("reminder_settings.ask_overdue", max=MAX_OVERDUE_DAILY_DAYS)
    await ask(update, where, text, PLACEHOLDERS[ASK_OVERDUE], markup(rows))
    return ASK_OVERDUE


async def _save(
    update: Update, context: Context, where: Here, changes: dict[str, object], *, edit: bool
) -> None:
    service = _service(context)
    current = await service.settings(where.chat_id)
    updated = ReminderSettings.model_validate({**current.model_dump(), **changes})
    await service.save_settings(where.chat_id, updated)
    await _show_menu(update, context, where, saved=True, edit=edit)


_PRESET = r"^rs:set:(t:[0-9]{4}|d:[0-9]{1,4}(\.[0-9]{1,4}){0,15}|o:[0-9]{1,4})$"


def _preset_changes(data: str) -> dict[str, object] | None:
    """``rs:set:t:0900`` / ``rs:set:d:30.7.3.1.0`` / ``rs:set:o:90`` as settings changes."""
    parts = data.split(":")
    if len(parts) != 4:
        return None
    kind, value = parts[2], parts[3]
    numbers = [callback_int(number) for number in value.split(".")]
    if None in numbers:
        return None
    changes: dict[str, object]
    try:
        if kind == "t" and len(value) == 4:
            changes = {"send_time": time(int(value[:2]), int(value[2:]))}
        elif kind == "d":
            changes = {"days_before": tuple(numbers)}
        elif kind == "o" and len(numbers) == 1:
            changes = {"overdue_daily_days": numbers[0]}
        else:
            return None
        ReminderSettings.model_validate(changes)  # forged data must not get further
    except ValueError:
        return None
    return changes


async def preset_pressed(update: Update, context: Context) -> int:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    where = await here(update, context)
    if not await _admin(update, context, where):
        return END
    changes = _preset_changes(query.data)
    if changes is None:
        await answer_stale(update, context)
        return END
    await answer(query)
    await _save(update, context, where, changes, edit=True)
    return END


async def _typed(update: Update, context: Context, state: int) -> int:
    message = update.effective_message
    assert message is not None and message.text is not None
    where = await here(update, context)
    if not await _admin(update, context, where):
        return END
    try:
        if state == ASK_TIME:
            changes: dict[str, object] = {"send_time": parse_send_time(message.text)}
        elif state == ASK_DAYS:
            changes = {"days_before": parse_days_before(message.text)}
        else:
            changes = {"overdue_daily_days": parse_overdue_days(message.text)}
    except InputError as problem:
        text = where.t(problem.key, **problem.params)
        await ask(update, where, text, PLACEHOLDERS[state], edit=False)
        return state
    await _save(update, context, where, changes, edit=False)
    return END


async def time_typed(update: Update, context: Context) -> int:
    return await _typed(update, context, ASK_TIME)


async def days_typed(update: Update, context: Context) -> int:
    return await _typed(update, context, ASK_DAYS)


async def overdue_typed(update: Update, context: Context) -> int:
    return await _typed(update, context, ASK_OVERDUE)


def _state(
    typed: Callable[[Update, Context], Coroutine[Any, Any, int]],
) -> list[BaseHandler[Update, Any, Any]]:
    return [
        CallbackQueryHandler(preset_pressed, pattern=_PRESET),
        CallbackQueryHandler(menu_pressed, pattern=r"^rs:menu$"),
        CallbackQueryHandler(done_pressed, pattern=r"^rs:done$"),
        MessageHandler(filters.TEXT & ~filters.COMMAND, typed),
    ]


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        "reminder_settings",
        entry_points=[
            CallbackQueryHandler(ask_time, pattern=r"^rs:time$"),
            CallbackQueryHandler(ask_days, pattern=r"^rs:days$"),
            CallbackQueryHandler(ask_overdue, pattern=r"^rs:overdue$"),
        ],
        states={
            ASK_TIME: _state(time_typed),
            ASK_DAYS: _state(days_typed),
            ASK_OVERDUE: _state(overdue_typed),
        },
    )


HANDLERS = [
    CallbackQueryHandler(menu_pressed, pattern=r"^rs:menu$"),
    CallbackQueryHandler(done_pressed, pattern=r"^rs:done$"),
    CallbackQueryHandler(preset_pressed, pattern=_PRESET),
]
