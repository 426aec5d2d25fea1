"""/find <text>: the chat's cards whose ICCID contains the digits, or whose label (terminal
serial) or note contains the text; paged like /cards, each button opens the card (``cd:``).

Page buttons carry the search text when it fits in Telegram's 64 bytes of callback data
(``fd:<page>:<text>``), so they keep working after a restart; a longer text is kept in the
chat's data under a short key (``fh:<page>:<key>``).
"""

from __future__ import annotations

import hashlib

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.bulk.find import find_query
from handlers.bulk import bulk
from handlers.common import CALLBACK_INT, Context, Here, answer_stale, callback_int, here, reply
from handlers.render import card_list

MAX_CALLBACK_BYTES = 64
_PAGE_DIGITS = 5  # room kept for the page number
_SEARCHES_KEY = "find.searches"
_MAX_KEPT = 20  # long searches remembered per chat


def _nav_data(context: Context, text: str) -> str:
    """The page buttons' prefix for this search (card_list appends ``:<page>``): the page
    comes last, so ``fd:<text>:<page>`` parses with one rpartition even if the text has colons."""
    inline = f"fd:{text}"
    if len(inline.encode()) + 1 + _PAGE_DIGITS <= MAX_CALLBACK_BYTES:
        return inline
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert context.chat_data is not None
    kept: dict[str, str] = context.chat_data.setdefault(_SEARCHES_KEY, {})
    kept.pop(key, None)
    kept[key] = text
    while len(kept) > _MAX_KEPT:
        kept.pop(next(iter(kept)))
    return f"fh:{key}"


async def _show(update: Update, context: Context, where: Here, text: str, page: int) -> None:
    query = find_query(text)
    if query is None:
        await reply(update, where.t("find.usage"), edit=False)
        return
    result = await bulk(context).find(where.chat_id, query, page)
    body, keyboard = card_list(
        where.lang,
        result,
        where.today,
        where.is_group,
        title_key="find.title",
        empty_key="find.empty",
        nav_data=_nav_data(context, query.text),
        query=query.text,
    )
    await reply(update, body, keyboard)


async def find_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    message = update.effective_message
    # the text after the command as typed (context.args would squeeze the spaces)
    raw = message.text if message is not None and message.text else ""
    parts = raw.split(maxsplit=1)
    await _show(update, context, where, parts[1] if len(parts) > 1 else "", 0)


async def page_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    kind, _, rest = query.data.partition(":")
    reference, _, page_text = rest.rpartition(":")
    page = callback_int(page_text)
    if page is None:
        await answer_stale(update, context)
        return
    await query.answer()
    where = await here(update, context)
    text: str | None = reference
    if kind == "fh":
        kept = (context.chat_data or {}).get(_SEARCHES_KEY, {})
        text = kept.get(reference)
    if not text:
        await reply(update, where.t("find.stale"), edit=False)
        return
    await _show(update, context, where, text, page)


HANDLERS = [
    CommandHandler("find", find_command),
    CallbackQueryHandler(page_button, pattern=rf"(?s)^f[dh]:.*:{CALLBACK_INT}$"),
]
