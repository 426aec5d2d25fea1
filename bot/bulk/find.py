"""``/find``: a chat's cards by part of the ICCID, the terminal serial, the label or the note."""

from __future__ import annotations

import math
import re
import unicodedata

from bot.bulk.models import FindQuery
from bot.iccid import normalize_iccid
from bot.services.cards import MAX_PAGE, PAGE_SIZE, CardPage
from storage.bulk import BulkStore

MAX_QUERY_LEN = 64
_ICCID_FRAGMENT = re.compile(r"[0-9A-Z]+")


def find_query(text: str) -> FindQuery | None:
    """What to look for, or None when there is nothing (or too much) to look for."""
    text = unicodedata.normalize("NFKC", text).strip()
    if not text or len(text) > MAX_QUERY_LEN:
        return None
    fragment = normalize_iccid(text)  # "8986 0012" and "8986-0012" find the same cards
    return FindQuery(iccid=fragment if _ICCID_FRAGMENT.fullmatch(fragment) else None, text=text)


async def find_page(store: BulkStore, chat_id: int, query: FindQuery, page: int) -> CardPage:
    """One page of matches, by expiry; ``page`` is clamped into range like /cards."""
    page = min(max(page, 0), MAX_PAGE)  # a forged page must not overflow the offset
    total, cards = await store.find_cards(chat_id, query, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page >= pages:  # the list shrank since the button was made: show the last page
        page = pages - 1
        total, cards = await store.find_cards(
            chat_id, query, offset=page * PAGE_SIZE, limit=PAGE_SIZE
        )
    return CardPage(cards=cards, page=page, pages=pages, total=total)
