"""PostgreSQL implementation of ``storage.base.Storage`` (asyncpg pool).

SQLite serialises every writer; PostgreSQL lets them run side by side, so nothing here reads a
row and then writes on the strength of what it read: each change is one statement whose WHERE
(or ON CONFLICT) states the condition, and the database decides between two writers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from bot.chats import Channel
from bot.models import (
    Card,
    CardDraft,
    CardEdit,
    CardEditDraft,
    Carrier,
    ChatSettings,
    EditField,
    Period,
    Renewal,
    RenewalRule,
)
from storage.base import CardFilter, DuplicateCardError, RenewalDraft, SchemaTooNewError
from storage.postgres.migrate import migrate
from storage.postgres.pool import Connection, open_pool

CARD_COLUMNS = (
    "id, chat_id, iccid, expiry, carrier, label, plan_months, plan_days, plan_price_fen, "
    "auto_renew, note, muted, snoozed_until, created_at, archived_at"
)
_RENEWAL_COLUMNS = (
    "r.id, r.card_id, r.renewed_at, r.by_user_id, r.by_name, r.old_expiry, r.new_expiry, "
    "r.period_months, r.period_days, r.rule, r.amount_fen, r.automatic"
)
_WRITTEN = (
    "iccid",
    "expiry",
    "carrier",
    "label",
    "plan_months",
    "plan_days",
    "plan_price_fen",
    "auto_renew",
    "note",
)


def _period(months: int | None, days: int | None) -> Period | None:
    if months is None and days is None:
        return None
    return Period(months=months or 0, days=days or 0)


def card_from_row(row: asyncpg.Record) -> Card:
    return Card(
        id=row["id"],
        chat_id=row["chat_id"],
        iccid=row["iccid"],
        expiry=row["expiry"],
        carrier=Carrier(row["carrier"]),
        label=row["label"],
        plan_period=_period(row["plan_months"], row["plan_days"]),
        plan_price_fen=row["plan_price_fen"],
        auto_renew=row["auto_renew"],
        note=row["note"],
        muted=row["muted"],
        snoozed_until=row["snoozed_until"],
        created_at=row["created_at"],
        archived_at=row["archived_at"],
    )


def _renewal(row: asyncpg.Record) -> Renewal:
    return Renewal(
        id=row["id"],
        card_id=row["card_id"],
        renewed_at=row["renewed_at"],
        by_user_id=row["by_user_id"],
        by_name=row["by_name"],
        old_expiry=row["old_expiry"],
        new_expiry=row["new_expiry"],
        period=_period(row["period_months"], row["period_days"]),
        rule=RenewalRule(row["rule"]),
        amount_fen=row["amount_fen"],
        automatic=row["automatic"],
    )


def _card_edit(row: asyncpg.Record) -> CardEdit:
    return CardEdit(
        id=row["id"],
        card_id=row["card_id"],
        edited_at=row["edited_at"],
        by_user_id=row["by_user_id"],
        by_name=row["by_name"],
        field=EditField(row["field"]),
        old_value=row["old_value"],
        new_value=row["new_value"],
    )


def _chat(row: asyncpg.Record) -> ChatSettings:
    return ChatSettings(
        chat_id=row["chat_id"],
        channel=Channel(row["channel"]),
        is_group=row["is_group"],
        language=row["language"],
        timezone=row["timezone"],
        default_language=row["default_language"],
    )


def card_values(draft: CardDraft) -> list[Any]:
    """The values of ``_WRITTEN``, in that order."""
    plan = draft.plan_period
    return [
        draft.iccid,
        draft.expiry,
        draft.carrier.value,
        draft.label,
        plan.months if plan else None,
        plan.days if plan else None,
        draft.plan_price_fen,
        draft.auto_renew,
        draft.note,
    ]


def _filter_sql(card_filter: CardFilter | None, first: int) -> tuple[str, list[Any]]:
    """The extra condition and its parameters, numbered from ``$first``."""
    card_filter = card_filter or CardFilter()
    where = " AND archived_at IS NOT NULL" if card_filter.archived else " AND archived_at IS NULL"
    if card_filter.expiring_before is None:
        return where, []
    return where + f" AND expiry <= ${first}", [card_filter.expiring_before]


_ENSURE_CHAT = (
    "INSERT INTO chats (chat_id, is_group, created_at, default_language, address) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id) DO UPDATE SET "
    "default_language = coalesce(chats.default_language, excluded.default_language) RETURNING *"
)


class PostgresStorage:
    """The ``Storage`` protocol on a pool; ``close`` closes the pool (which the sibling stores,
    made on ``pool``, share)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresStorage:
        """Connect and migrate: ``DatabaseUnreachableError``, ``SchemaTooNewError``."""
        pool = await open_pool(url)
        try:
            await migrate(pool)
        except SchemaTooNewError as exc:
            await pool.close()
            raise SchemaTooNewError(f"DATABASE_URL: {exc}") from None
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside BEGIN … COMMIT; rolled back on any exception."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    # chats

    async def ensure_chat(
        self, chat_id: int, *, is_group: bool, language: str | None = None
    ) -> ChatSettings:
        chat = await self.get_chat(chat_id)
        if chat is not None and (chat.default_language is not None or language is None):
            return chat
        for attempt in (1, 2):
            try:
                row = await self.pool.fetchrow(
                    _ENSURE_CHAT,
                    chat_id,
                    is_group,
                    datetime.now(UTC),
                    language,
                    str(chat_id),
                )
            except asyncpg.UniqueViolationError:
                # two first updates of a new chat at once: the other's row can meet the unique
                # address before the chat id; it exists now, and the second try updates it
                if attempt == 2:
                    raise
                continue
            assert row is not None
            return _chat(row)
        raise AssertionError("unreachable")

    async def get_chat(self, chat_id: int) -> ChatSettings | None:
        row = await self.pool.fetchrow("SELECT * FROM chats WHERE chat_id = $1", chat_id)
        return _chat(row) if row else None

    async def save_chat(self, chat: ChatSettings) -> None:
        await self.pool.execute(
            "UPDATE chats SET is_group = $1, language = $2, "
            "default_language = coalesce($3, default_language), "
            "timezone_chosen = CASE WHEN timezone <> $4 THEN true ELSE timezone_chosen END, "
            "timezone = $4 WHERE chat_id = $5",
            chat.is_group,
            chat.language,
            chat.default_language,
            chat.timezone,
            chat.chat_id,
        )

    # cards

    async def add_card(self, chat_id: int, draft: CardDraft, created_at: datetime) -> Card:
        names = ", ".join(_WRITTEN)
        marks = ", ".join(f"${i}" for i in range(3, 3 + len(_WRITTEN)))
        while True:
            # No read-then-insert: of two writers adding the same ICCID at once, the unique
            # constraint lets one insert and makes the other wait, then insert nothing.
            row = await self.pool.fetchrow(
                f"INSERT INTO cards (chat_id, created_at, {names}) VALUES ($1, $2, {marks}) "
                f"ON CONFLICT (chat_id, iccid) DO NOTHING RETURNING {CARD_COLUMNS}",
                chat_id,
                created_at,
                *card_values(draft),
            )
            if row is not None:
                return card_from_row(row)
            existing = await self.get_card_by_iccid(chat_id, draft.iccid)
            if existing is not None:
                raise DuplicateCardError(existing)
            # deleted in between: try again

    async def get_card(self, chat_id: int, card_id: int) -> Card | None:
        row = await self.pool.fetchrow(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1 AND id = $2", chat_id, card_id
        )
        return card_from_row(row) if row else None

    async def get_card_by_iccid(self, chat_id: int, iccid: str) -> Card | None:
        row = await self.pool.fetchrow(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1 AND iccid = $2", chat_id, iccid
        )
        return card_from_row(row) if row else None

    async def find_cards_by_suffix(self, chat_id: int, suffix: str, limit: int) -> list[Card]:
        # right() rather than LIKE so '%' or '_' typed by a user match only themselves
        rows = await self.pool.fetch(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1 "
            "AND right(iccid, $2) = $3 ORDER BY expiry, id LIMIT $4",
            chat_id,
            len(suffix),
            suffix,
            limit,
        )
        return [card_from_row(row) for row in rows]

    async def find_cards_by_label(self, chat_id: int, label: str, limit: int) -> list[Card]:
        rows = await self.pool.fetch(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1 "
            "AND lower(label) = lower($2) ORDER BY expiry, id LIMIT $3",
            chat_id,
            label,
            limit,
        )
        return [card_from_row(row) for row in rows]

    async def count_cards(self, chat_id: int, card_filter: CardFilter | None = None) -> int:
        where, params = _filter_sql(card_filter, 2)
        count = await self.pool.fetchval(
            f"SELECT count(*) FROM cards WHERE chat_id = $1{where}", chat_id, *params
        )
        return int(count)

    async def list_cards(
        self,
        chat_id: int,
        *,
        offset: int = 0,
        limit: int = 10,
        card_filter: CardFilter | None = None,
    ) -> list[Card]:
        where, params = _filter_sql(card_filter, 2)
        n = 2 + len(params)
        rows = await self.pool.fetch(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1{where} "
            f"ORDER BY expiry, id LIMIT ${n} OFFSET ${n + 1}",
            chat_id,
            *params,
            limit,
            offset,
        )
        return [card_from_row(row) for row in rows]

    async def update_card(
        self,
        chat_id: int,
        card: Card,
        *,
        edits: Sequence[CardEditDraft] = (),
        if_expiry: date | None = None,
    ) -> Card | None:
        values = [*card_values(card), card.muted, card.snoozed_until]
        names = [*_WRITTEN, "muted", "snoozed_until"]
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=1))
        n = len(names)
        params: list[Any] = [*values, chat_id, card.id]
        condition = ""
        if if_expiry is not None:
            condition = f" AND expiry = ${n + 3}"
            params.append(if_expiry)
        try:
            async with self.transaction() as conn:
                row = await conn.fetchrow(
                    f"UPDATE cards SET {assignments} WHERE chat_id = ${n + 1} AND id = ${n + 2}"
                    f"{condition} RETURNING {CARD_COLUMNS}",
                    *params,
                )
                if row is not None and edits:
                    await conn.executemany(
                        "INSERT INTO card_edits (card_id, edited_at, by_user_id, by_name, field, "
                        "old_value, new_value) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        [
                            (
                                card.id,
                                edit.edited_at,
                                edit.by_user_id,
                                edit.by_name,
                                edit.field.value,
                                edit.old_value,
                                edit.new_value,
                            )
                            for edit in edits
                        ],
                    )
        except asyncpg.UniqueViolationError:
            existing = await self.get_card_by_iccid(chat_id, card.iccid)
            if existing is None:
                raise
            raise DuplicateCardError(existing) from None
        return card_from_row(row) if row else None

    async def delete_card(self, chat_id: int, card_id: int) -> bool:
        status = await self.pool.execute(
            "DELETE FROM cards WHERE chat_id = $1 AND id = $2", chat_id, card_id
        )
        return status != "DELETE 0"

    async def set_archived(
        self,
        chat_id: int,
        card_id: int,
        archived_at: datetime | None,
        *,
        restored_on: date | None = None,
    ) -> Card | None:
        lapsed = restored_on if archived_at is None else None
        row = await self.pool.fetchrow(
            "UPDATE cards SET archived_at = CASE WHEN $1::timestamptz IS NULL THEN NULL "
            "ELSE coalesce(archived_at, $1::timestamptz) END, "
            "auto_renew = CASE WHEN expiry < $4::date THEN false ELSE auto_renew END "
            f"WHERE chat_id = $2 AND id = $3 RETURNING {CARD_COLUMNS}",
            archived_at,
            chat_id,
            card_id,
            lapsed,
        )
        return card_from_row(row) if row else None

    # renewals

    async def renew_card(self, chat_id: int, card_id: int, renewal: RenewalDraft) -> Renewal | None:
        period = renewal.period
        async with self.transaction() as conn:
            # Only if the expiry is still what the user saw: of two staff pressing "renew" on
            # the same stale message, the second one's UPDATE waits for the first's row lock,
            # then finds the expiry changed and renews nothing. A renewal by a person ends a
            # mute too, and puts an archived card back in service (an automatic one does neither).
            updated = await conn.fetchval(
                "UPDATE cards SET expiry = $1, snoozed_until = NULL, "
                "muted = CASE WHEN $2 THEN muted ELSE false END, "
                # restored with its expiry still past (a backdated renewal): no auto-renewing
                # of every month it was out, as set_archived's restore
                "auto_renew = CASE WHEN archived_at IS NOT NULL AND NOT $2 AND $1 < $6::date "
                "THEN false ELSE auto_renew END, "
                "archived_at = CASE WHEN $2 THEN archived_at END "
                "WHERE chat_id = $3 AND id = $4 AND expiry = $5 RETURNING id",
                renewal.new_expiry,
                renewal.automatic,
                chat_id,
                card_id,
                renewal.old_expiry,
                renewal.renewed_at.astimezone(UTC).date(),
            )
            if updated is None:
                return None
            renewal_id = await conn.fetchval(
                "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, "
                "new_expiry, period_months, period_days, rule, amount_fen, automatic) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                card_id,
                renewal.renewed_at,
                renewal.by_user_id,
                renewal.by_name,
                renewal.old_expiry,
                renewal.new_expiry,
                period.months if period else None,
                period.days if period else None,
                renewal.rule.value,
                renewal.amount_fen,
                renewal.automatic,
            )
        return Renewal(id=renewal_id, card_id=card_id, **renewal.model_dump())

    async def list_renewals(self, chat_id: int, card_id: int, limit: int = 10) -> list[Renewal]:
        rows = await self.pool.fetch(
            f"SELECT {_RENEWAL_COLUMNS} FROM renewals r JOIN cards c ON c.id = r.card_id "
            "WHERE c.chat_id = $1 AND r.card_id = $2 "
            "ORDER BY r.renewed_at DESC, r.id DESC LIMIT $3",
            chat_id,
            card_id,
            limit,
        )
        return [_renewal(row) for row in rows]

    async def list_card_edits(self, chat_id: int, card_id: int, limit: int = 10) -> list[CardEdit]:
        rows = await self.pool.fetch(
            "SELECT e.id, e.card_id, e.edited_at, e.by_user_id, e.by_name, e.field, e.old_value, "
            "e.new_value FROM card_edits e JOIN cards c ON c.id = e.card_id "
            "WHERE c.chat_id = $1 AND e.card_id = $2 "
            "ORDER BY e.edited_at DESC, e.id DESC LIMIT $3",
            chat_id,
            card_id,
            limit,
        )
        return [_card_edit(row) for row in rows]

    async def spent_by_carrier(self, chat_id: int, since: datetime) -> dict[Carrier, int]:
        rows = await self.pool.fetch(
            # sum() of bigint is numeric in PostgreSQL: back to bigint fen
            "SELECT c.carrier, sum(r.amount_fen)::bigint AS fen FROM renewals r "
            "JOIN cards c ON c.id = r.card_id "
            "WHERE c.chat_id = $1 AND r.renewed_at >= $2 AND r.amount_fen IS NOT NULL "
            "GROUP BY c.carrier",
            chat_id,
            since,
        )
        return {Carrier(row["carrier"]): int(row["fen"]) for row in rows}
