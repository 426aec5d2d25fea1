"""A chat's daily digest as messages: text lines and buttons, split to fit Telegram.

Every word comes from the catalogue (``digest.*``). A message holds at most ``MAX_CARDS`` cards'
buttons (a phone screen of buttons, and well under Telegram's keyboard limits) and at most
``MAX_TEXT_UNITS`` UTF-16 code units of HTML source (Telegram counts 4096 units of the visible
text, which is never longer than the source). A long digest becomes several messages; no card
is ever dropped.

A pass renders hundreds of thousands of lines, so the per-language templates are looked up once
(``_style``) and filled with ``str.format``, escaping user text exactly as ``bot.i18n.t`` does;
buttons are rendered straight to the JSON the outbox stores.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from bot.i18n import Html, catalogue, resolve_language, t
from bot.iccid import mask_iccid, shown_iccid
from bot.models import DEFAULT_LANGUAGE, CardStatus, status_for
from bot.money import format_fen
from bot.reminders.models import Digest, DigestChat, DigestPart, DueCard, RenewedNote

MAX_TEXT_UNITS = 4096
MAX_CARDS = 20
MAX_LABEL_CHARS = 40  # a label is the user's; keep one line one line
SNOOZE_DAYS = (1, 3)

RENEWED_PREFIX = "rn:"  # the renew conversation's entry point (handlers/renew.py)
SNOOZE_PREFIX = "dg:z:"  # dg:z:<days>:<card id>:<expiry as date.toordinal()>
MUTE_PREFIX = "dg:m:"  # dg:m:<card id>
UNMUTE_PREFIX = "dg:u:"  # dg:u:<card id>


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def snooze_data(days: int, card_id: int, expiry: date) -> str:
    return f"{SNOOZE_PREFIX}{days}:{card_id}:{expiry.toordinal()}"


def mute_data(card_id: int) -> str:
    return f"{MUTE_PREFIX}{card_id}"


def unmute_data(card_id: int) -> str:
    return f"{UNMUTE_PREFIX}{card_id}"


def renewed_data(card_id: int) -> str:
    return f"{RENEWED_PREFIX}{card_id}"


def _escape(value: str) -> str:
    return html.escape(value, quote=False)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


@lru_cache(maxsize=4096)
def status_text(lang: str, days_left: int) -> Html:
    status = status_for(days_left)
    if status is CardStatus.OK:
        return t(lang, "digest.status.ok", days=days_left)
    if status is CardStatus.EXPIRING:
        if days_left == 0:
            return t(lang, "digest.status.today")
        if days_left == 1:
            return t(lang, "digest.status.tomorrow")
        return t(lang, "digest.status.expiring", days=days_left)
    if status is CardStatus.SUSPENDED:
        return t(lang, "digest.status.suspended", days=-days_left)
    return t(lang, "digest.status.expired", days=-days_left)


def label_text(lang: str, label: str | None) -> Html:
    return t(lang, "digest.label", label=_short(label)) if label else Html("")


@lru_cache(maxsize=256)
def date_text(lang: str, day: date) -> Html:
    return t(lang, "digest.date", month=day.month, day=day.day)


def _template(lang: str, key: str) -> str:
    """The raw template, with ``t``'s fallback to the default language."""
    found = catalogue(lang).get(key)
    return found if found is not None else catalogue(DEFAULT_LANGUAGE)[key]


def _json_text(text: str) -> str:
    """A JSON string literal, with ``{``/``}`` doubled for use inside a format template."""
    return json.dumps(text, ensure_ascii=False).replace("{", "{{").replace("}", "}}")


@dataclass(frozen=True)
class _Style:
    """One language's digest templates, looked up once."""

    line: str
    label: str
    footer: str
    footer_renewed: str
    # The JSON of one card's two button rows; fill with n, iccid (JSON-safe), id, expiry.
    card_rows_json: str


@lru_cache(maxsize=16)
def _style(lang: str) -> _Style:
    renewed = _template(lang, "digest.button.renewed")
    # The renewed button's own placeholders stay; literal braces are doubled for format().
    renewed_json = json.dumps(renewed, ensure_ascii=False)
    later = ",".join(
        f"[{_json_text(t(lang, f'digest.button.snooze_{days}'))},"
        f'"{SNOOZE_PREFIX}{days}:{{id}}:{{expiry}}"]'
        for days in SNOOZE_DAYS
    )
    mute = f'[{_json_text(t(lang, "digest.button.mute"))},"{MUTE_PREFIX}{{id}}"]'
    rows = f'[[{renewed_json},"{RENEWED_PREFIX}{{id}}"]],[{later},{mute}]'
    return _Style(
        line=_template(lang, "digest.line"),
        label=_template(lang, "digest.label"),
        footer=t(lang, "digest.footer"),
        footer_renewed=t(lang, "digest.footer_renewed"),
        card_rows_json=rows,
    )


def _iccid_json(iccid: str) -> str:
    """The masked ICCID inside a JSON string (and a format template): ICCIDs are [0-9A-Z],
    anything else is escaped rather than trusted."""
    if iccid.isascii() and iccid.isalnum():
        return iccid
    return json.dumps(iccid, ensure_ascii=False)[1:-1]


# A block: lines that stay together in one message, the JSON of its buttons ("" for none),
# and whether it is a card (messages carry at most MAX_CARDS).
_Block = tuple[str, str, bool]


def _due_block(style: _Style, lang: str, number: int, card: DueCard, is_group: bool) -> _Block:
    label = card.label
    line = style.line.format(
        n=number,
        status=status_text(lang, card.days_left),
        iccid=_escape(shown_iccid(card.iccid, is_group)),
        label=style.label.format(label=_escape(_short(label))) if label else "",
        expiry=card.expiry.isoformat(),
    )
    if card.price_fen is not None:
        line += t(lang, "digest.needs", amount=format_fen(card.price_fen))
    rows = style.card_rows_json.format(
        n=number,
        iccid=_iccid_json(mask_iccid(card.iccid)),  # buttons show the last digits only
        id=card.id,
        expiry=card.expiry.toordinal(),
    )
    return line, rows, True


def _renewed_line(lang: str, note: RenewedNote, is_group: bool) -> str:
    periods = t(lang, "digest.renewed_periods", n=note.periods) if note.periods > 1 else ""
    charge = (
        t(lang, "digest.charge", amount=format_fen(note.charge_fen))
        if note.charge_fen is not None
        else ""
    )
    return t(
        lang,
        "digest.renewed_line",
        iccid=shown_iccid(note.iccid, is_group),
        label=label_text(lang, note.label),
        old=note.old_expiry.isoformat(),
        expiry=note.new_expiry.isoformat(),
        periods=Html(periods),
        charge=Html(charge),
    )


def _blocks(digest: Digest, style: _Style) -> list[_Block]:
    lang, is_group = digest.lang, digest.chat.is_group
    blocks = [
        _due_block(style, lang, number, due, is_group)
        for number, due in enumerate(digest.due, start=1)
    ]
    for index, note in enumerate(digest.renewed):
        line = _renewed_line(lang, note, is_group)
        if index == 0:  # the section title stays with its first line
            title = t(lang, "digest.renewed_header", count=len(digest.renewed))
            line = f"{title}\n{line}"
            if blocks:
                line = "\n" + line
        blocks.append((line, "", False))
    return blocks


def _header(digest: Digest) -> str:
    when = date_text(digest.lang, digest.day)
    if digest.due:
        return t(digest.lang, "digest.header", date=when, count=len(digest.due))
    return t(digest.lang, "digest.header_renewed", date=when, count=len(digest.renewed))


def _pack(blocks: Sequence[_Block], budget: int, max_cards: int) -> list[list[_Block]]:
    cards = sum(block[2] for block in blocks)
    if cards <= max_cards and 2 * sum(len(block[0]) + 1 for block in blocks) <= budget:
        return [list(blocks)]  # the usual case: surely fits (a character is <= 2 units)
    groups: list[list[_Block]] = []
    current: list[_Block] = []
    used = cards = 0
    for block in blocks:
        size = utf16_units(block[0]) + 1  # + the newline joining it
        full = used + size > budget or (block[2] and cards == max_cards)
        if current and full:
            groups.append(current)
            current, used, cards = [], 0, 0
        current.append(block)
        used += size
        cards += block[2]
    if current:
        groups.append(current)
    return groups


def render_digest(
    digest: Digest, *, max_units: int = MAX_TEXT_UNITS, max_cards: int = MAX_CARDS
) -> list[DigestPart]:
    """The digest as one or more messages, in order; [] when there is nothing to say."""
    if digest.is_empty:
        return []
    style = _style(digest.lang)
    header = _header(digest)
    footer = style.footer if digest.due else style.footer_renewed
    part_note = t(digest.lang, "digest.part", part=999, parts=999)
    # Reserve the header (with a part note) and the footer in every message: one packing pass.
    reserved = utf16_units(header) + utf16_units(part_note) + utf16_units(footer) + 4
    groups = _pack(_blocks(digest, style), max_units - reserved, max_cards)
    parts = []
    for number, group in enumerate(groups, start=1):
        title = header
        if len(groups) > 1:
            title += t(digest.lang, "digest.part", part=number, parts=len(groups))
        lines = [title, ""]
        lines.extend(block[0] for block in group)
        if number == len(groups):
            lines.extend(("", footer))
        rows = ",".join(block[1] for block in group if block[1])
        parts.append(DigestPart(text="\n".join(lines), buttons_json=f"[{rows}]"))
    return parts


def make_digest(
    chat: DigestChat,
    day: date,
    due: Iterable[DueCard],
    renewed: Iterable[RenewedNote],
    default_language: str,
) -> Digest:
    """The digest in the chat's language, the most urgent card first."""
    return Digest(
        chat=chat,
        lang=resolve_language(chat.language, None, default_language),
        day=day,
        due=tuple(sorted(due, key=lambda card: (card.days_left, card.id))),
        renewed=tuple(sorted(renewed, key=lambda note: (note.new_expiry, note.card_id))),
    )
