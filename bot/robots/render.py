"""A digest as a push robot's markdown: no buttons, ICCIDs masked (a robot's group is a group),
a line saying where to record the renewal, split to the service's size limit, never truncated.

Every message carries 流量卡 in its heading, in every language: a robot protected by the keyword
流量卡 (DingTalk's and Feishu's 自定义关键词) accepts each of them. A card's label is the user's
text: markdown and HTML in it are neutralised (``markdown_safe``), so a label can never turn
into a link, a mention or a format in the shop's group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

from bot.i18n import catalogue, t
from bot.iccid import shown_iccid
from bot.models import DEFAULT_LANGUAGE
from bot.money import format_fen
from bot.reminders.digest import date_text, status_text
from bot.reminders.models import Digest, DueCard, RenewedNote
from bot.robots.client import RobotMessage, payload_size
from bot.robots.models import LIMITS, Service

MAX_LABEL_CHARS = 40
KEYWORD = "流量卡"  # in every message: see the module's docstring

# Characters with a meaning in one of the services' markdown (or HTML: WeCom's <font>, Feishu's
# <at>), replaced by look-alikes that have none.
_NEUTRAL = str.maketrans(
    {
        "*": "＊", "_": "＿", "~": "～", "`": "'", "[": "［", "]": "］", "(": "（", ")": "）",
        "<": "‹", ">": "›", "#": "＃", "|": "｜", "!": "！", "\\": "＼", "&": "＆",
        "\n": " ", "\r": " ", "\t": " ",
    }
)  # fmt: skip


def markdown_safe(text: str) -> str:
    # and no bare link either ("http://…" in a label would be clickable in the group)
    return text.translate(_NEUTRAL).replace("://", "：//")


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _template(lang: str, key: str) -> str:
    found = catalogue(lang).get(key)
    return found if found is not None else catalogue(DEFAULT_LANGUAGE)[key]


def service_name(lang: str, service: Service) -> str:
    """The service as users know it: 企业微信, 钉钉, 飞书, Lark."""
    return t(lang, f"robot.service.{service.value}")


def stored(message: RobotMessage) -> str:
    """A robot's message as the outbox keeps it (its ``text`` column)."""
    return json.dumps({"title": message.title, "text": message.text}, ensure_ascii=False)


def from_stored(text: str) -> tuple[str, str]:
    """(title, markdown) of a robot's message kept by ``stored``."""
    value = json.loads(text)
    return str(value["title"]), str(value["text"])


# A line break each service's markdown keeps: DingTalk joins single newlines into one paragraph.
_BREAK = {Service.DINGTALK: "  \n"}


def _label(lang: str, label: str | None) -> str:
    if not label:
        return ""
    return _template(lang, "digest.label").format(label=markdown_safe(_short(label)))


def _due_line(lang: str, number: int, card: DueCard) -> str:
    line = _template(lang, "robot.line").format(
        n=number,
        status=status_text(lang, card.days_left),
        iccid=markdown_safe(shown_iccid(card.iccid, True)),
        label=_label(lang, card.label),
        expiry=card.expiry.isoformat(),
    )
    if card.price_fen is not None:
        line += t(lang, "digest.needs", amount=format_fen(card.price_fen))
    return line


def _renewed_line(lang: str, note: RenewedNote) -> str:
    periods = t(lang, "digest.renewed_periods", n=note.periods) if note.periods > 1 else ""
    charge = (
        t(lang, "digest.charge", amount=format_fen(note.charge_fen))
        if note.charge_fen is not None
        else ""
    )
    return _template(lang, "robot.renewed_line").format(
        iccid=markdown_safe(shown_iccid(note.iccid, True)),
        label=_label(lang, note.label),
        old=note.old_expiry.isoformat(),
        expiry=note.new_expiry.isoformat(),
        periods=periods,
        charge=charge,
    )


def _lines(digest: Digest) -> list[str]:
    lang = digest.lang
    lines = [_due_line(lang, n, card) for n, card in enumerate(digest.due, start=1)]
    for index, note in enumerate(digest.renewed):
        line = _renewed_line(lang, note)
        if index == 0:  # the section title stays with its first line
            title = t(lang, "robot.renewed_header", count=len(digest.renewed))
            line = f"{title}\n{line}" if not lines else f"\n{title}\n{line}"
        lines.append(line)
    return lines


@lru_cache(maxsize=64)
def _headings(lang: str, renewed_only: bool) -> tuple[str, str]:
    key = "robot.header_renewed" if renewed_only else "robot.header"
    return _template(lang, key), _template(
        lang, "robot.title_renewed" if renewed_only else "robot.title"
    )


def render_robot_digest(
    digest: Digest, service: Service, source_name: str | None
) -> list[RobotMessage]:
    """The digest as one or more of ``service``'s messages, in order; [] when it is empty."""
    if digest.is_empty:
        return []
    lang = digest.lang
    header, title = _headings(lang, not digest.due)
    count = len(digest.due) or len(digest.renewed)
    when = date_text(lang, digest.day)
    title = title.format(date=when)
    chat = markdown_safe(source_name) if source_name else None
    if not digest.due:  # auto-renewals only: nothing to record
        footer = str(t(lang, "digest.footer_renewed"))  # no markup in it
    elif chat:  # filled by hand: t() escapes for HTML, and markdown_safe neutralised it already
        footer = _template(lang, "robot.footer").format(chat=chat)
    else:
        footer = str(t(lang, "robot.footer_unnamed"))

    def message(lines: Sequence[str], part: int, parts: int) -> RobotMessage:
        heading = "### " + header.format(date=when, count=count)
        if parts > 1:
            heading += t(lang, "digest.part", part=part, parts=parts)
        body = [heading, *([t(lang, "robot.from", chat=chat)] if chat else []), "", *lines]
        if part == parts:
            body += ["", footer]
        joined = "\n".join(body)
        brk = _BREAK.get(service)
        return RobotMessage(title=title, text=joined.replace("\n", brk) if brk else joined)

    limit = LIMITS[service].max_bytes
    lines = _lines(digest)
    whole = message(lines, 1, 1)
    if payload_size(service, whole) <= limit:
        return [whole]
    # Pack greedily, measuring each candidate the way the service does. A part reserves room
    # for the footer and for the longest part note, so numbering afterwards cannot overflow.
    groups: list[list[str]] = [[]]
    for line in lines:
        trial = [*groups[-1], line]
        if groups[-1] and payload_size(service, message(trial, 999, 999)) > limit:
            groups.append([line])
        else:
            groups[-1] = trial
    return [message(group, n, len(groups)) for n, group in enumerate(groups, start=1)]
