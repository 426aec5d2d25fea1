"""A chat's expiries as an iCalendar (.ics) file that phone calendars import.

One all-day event per card on its expiry date (a card already expired: today), with an alarm
on each of the chat's reminder days at the chat's reminder time. The UID is the card's id, so
importing a newer file updates the events instead of duplicating them. Muted cards get no
alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from icalendar import Alarm, Calendar, Event

from bot.bulk.export import plain
from bot.bulk.models import CardWithRenewal
from bot.i18n import t
from bot.iccid import mask_iccid, shown_iccid
from bot.models import Card

PRODUCT_ID = "-//SimWatch//流量卡管家//ZH"
UID_DOMAIN = "simwatch.bot"
DEFAULT_ALARM_TIME = time(9, 0)
_BEGIN_EVENT = b"BEGIN:VEVENT\r\n"
_END_EVENT = b"END:VEVENT\r\n"
_END_CALENDAR = b"END:VCALENDAR\r\n"


def card_uid(chat_id: int, card: Card) -> str:
    """Stable for the card's lifetime (edits and renewals keep it)."""
    return f"card-{card.id}-chat-{chat_id}@{UID_DOMAIN}"


def _alarm(trigger: timedelta, description: str) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", description)
    alarm.add("trigger", trigger)  # relative to the start of the all-day event (00:00)
    return alarm


def _alarms_ical(lang: str, days_before: Sequence[int], alarm_time: time) -> bytes:
    """The VALARM blocks every unmuted card shares, serialised once: a card's alarms differ
    from another's only by the event they sit in, and serialising them per card made a
    5,000-card calendar take seconds."""
    at = timedelta(hours=alarm_time.hour, minutes=alarm_time.minute)
    holder = Event()
    for days in sorted(set(days_before), reverse=True):
        key = "calendar.alarm_today" if days == 0 else "calendar.alarm"
        holder.add_component(_alarm(at - timedelta(days=days), plain(t(lang, key, days=days))))
    text: bytes = holder.to_ical()
    return text.removeprefix(_BEGIN_EVENT).removesuffix(_END_EVENT)


def _event_ical(
    card: Card, *, chat_id: int, lang: str, is_group: bool, now: datetime, on: date
) -> bytes:
    shown = shown_iccid(card.iccid, is_group)
    label = card.label or ""
    summary = plain(t(lang, "calendar.summary", iccid=mask_iccid(card.iccid), label=label))
    event = Event()
    event.add("uid", card_uid(chat_id, card))
    event.add("dtstamp", now)
    event.add("dtstart", on)  # a date: an all-day event
    if on < date.max:
        event.add("dtend", on + timedelta(days=1))
    else:  # a card saved before expiries were bounded: one day long all the same (RFC 5545)
        event.add("duration", timedelta(days=1))
    event.add("summary", summary.strip())
    event.add("description", plain(t(lang, "calendar.description", iccid=shown, label=label)))
    event.add("transp", "TRANSPARENT")  # an expiry doesn't make anyone busy
    text: bytes = event.to_ical()
    return text


def calendar_file(
    cards: Sequence[CardWithRenewal],
    *,
    chat_id: int,
    lang: str,
    is_group: bool,
    days_before: Sequence[int],
    alarm_time: time = DEFAULT_ALARM_TIME,
    now: datetime,
    today: date | None = None,
) -> bytes:
    """``today``: a card expired before it is an event on it (with the day's alarm only), so
    that the overdue ones stand on the calendar where they are seen, not in the past."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", plain(t(lang, "calendar.name")))
    head: bytes = calendar.to_ical()
    alarms = _alarms_ical(lang, days_before, alarm_time)
    overdue_alarms = _alarms_ical(lang, (0,), alarm_time)
    parts = [head.removesuffix(_END_CALENDAR)]
    for item in cards:
        overdue = today is not None and item.card.expiry < today
        on = today if overdue and today is not None else item.card.expiry
        event = _event_ical(
            item.card, chat_id=chat_id, lang=lang, is_group=is_group, now=now, on=on
        )
        if not item.card.muted:  # muted cards: the date without the alarms
            event = event.removesuffix(_END_EVENT) + (overdue_alarms if overdue else alarms)
            event += _END_EVENT
        parts.append(event)
    parts.append(_END_CALENDAR)
    return b"".join(parts)
