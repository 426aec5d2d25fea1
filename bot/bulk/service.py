"""What the handlers and the CLI call: import, export, calendar, statistics and search."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

from bot.bulk.calendar import calendar_file
from bot.bulk.chart import weekly_chart_png
from bot.bulk.export import export_file
from bot.bulk.find import find_page
from bot.bulk.importer import (
    IMPORTED_BY,
    ImportAuthor,
    ImportReport,
    OlderApplied,
    OlderRow,
    Progress,
    apply_older,
    import_sheet,
)
from bot.bulk.models import FindQuery
from bot.bulk.reading import CHAT_LIMITS, Limits, Sheet
from bot.bulk.stats import ChatStats, chat_stats
from bot.bulk.worker import read_upload
from bot.bulk.writing import OutputFormat
from bot.clock import Clock
from bot.models import ChatSettings
from bot.reminders.models import DEFAULT_SETTINGS, ReminderSettings
from bot.services.cards import CardPage
from storage.bulk import BulkStore
from storage.reminders import ReminderStore


@dataclass(frozen=True)
class ImportResult:
    sheet: Sheet
    report: ImportReport


def _author(by_user_id: int | None, by_name: str | None) -> ImportAuthor:
    if by_user_id is None and by_name is None:
        return IMPORTED_BY
    return ImportAuthor(by_user_id, by_name)


class BulkService:
    def __init__(
        self, store: BulkStore, clock: Clock, reminders: ReminderStore | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.reminders = reminders

    async def read(
        self, content: bytes, limits: Limits = CHAT_LIMITS, owners: Sequence[Hashable] = ()
    ) -> Sheet:
        """Parse an upload (``InputError`` if it is no usable spreadsheet) in a worker process
        with CPU and memory limits, so that the bot keeps serving the other chats meanwhile;
        one upload at a time per owner (``read_upload``)."""
        return await read_upload(content, limits, owners)

    async def import_file(
        self,
        chat_id: int,
        content: bytes,
        *,
        today: date,
        limits: Limits = CHAT_LIMITS,
        progress: Progress | None = None,
        owners: Sequence[Hashable] = (),
        by_user_id: int | None = None,
        by_name: str | None = None,
        timezone: str = "UTC",
    ) -> ImportResult:
        """``owners``: who may have one upload in flight at a time (the chat, the user);
        ``by_user_id``/``by_name``: who sent the file, for the cards' edit trail and renewal
        history (without either, they say "import"); ``timezone``: the chat's (a renewal
        file's "renewed today" is the chat's today)."""
        sheet = await self.read(content, limits, owners)
        report = await import_sheet(
            self.store,
            chat_id,
            sheet,
            today=today,
            now=self.clock.now(),
            progress=progress,
            author=_author(by_user_id, by_name),
            timezone=timezone,
        )
        return ImportResult(sheet, report)

    async def apply_older(
        self,
        chat_id: int,
        older: Sequence[OlderRow],
        *,
        by_user_id: int | None = None,
        by_name: str | None = None,
    ) -> OlderApplied:
        """Apply rows an import left because they move an expiry earlier (see ``apply_older``)."""
        return await apply_older(
            self.store, chat_id, older, now=self.clock.now(), author=_author(by_user_id, by_name)
        )

    async def export(
        self, chat: ChatSettings, *, lang: str, today: date, fmt: OutputFormat
    ) -> tuple[bytes, int]:
        """The file and how many cards it lists."""
        cards = await self.store.cards_with_last_renewal(chat.chat_id)
        content = await asyncio.to_thread(export_file, fmt, lang, cards, today, chat.timezone)
        return content, len(cards)

    async def reminder_settings(self, chat_id: int) -> ReminderSettings:
        if self.reminders is None:
            return DEFAULT_SETTINGS
        return await self.reminders.get_settings(chat_id)

    async def calendar(
        self, chat: ChatSettings, *, lang: str, today: date, until: date
    ) -> tuple[bytes, int]:
        """The .ics file and how many events it has: the cards in service expiring by ``until``
        (a horizon keeps 20,000 cards from making an 18 MB file), the overdue ones today."""
        every = await self.store.cards_with_last_renewal(chat.chat_id)
        cards = [item for item in every if not item.card.archived and item.card.expiry <= until]
        settings = await self.reminder_settings(chat.chat_id)
        content = await asyncio.to_thread(
            partial(
                calendar_file,
                cards,
                chat_id=chat.chat_id,
                lang=lang,
                is_group=chat.is_group,
                days_before=settings.days_before,
                alarm_time=settings.send_time,
                now=self.clock.now(),
                today=today,
            )
        )
        return content, len(cards)

    async def stats(self, chat_id: int, today: date) -> ChatStats:
        expiries = await self.store.expiry_counts(chat_id)
        carriers = await self.store.carrier_counts(chat_id)
        muted, auto_renew = await self.store.flag_counts(chat_id)
        return chat_stats(expiries, carriers, muted=muted, auto_renew=auto_renew, today=today)

    async def chart(self, stats: ChatStats) -> bytes:
        return await asyncio.to_thread(weekly_chart_png, stats.weeks)

    async def find(self, chat_id: int, query: FindQuery, page: int) -> CardPage:
        return await find_page(self.store, chat_id, query, page)
