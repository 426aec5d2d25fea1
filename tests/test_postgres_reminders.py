"""The PostgreSQL reminder store with two writers at once: what SQLite gets from serialising
everything (one connection, BEGIN IMMEDIATE) must hold here under concurrency. Each "writer" is
its own pool, as a second ``python -m bot remind`` or a second sender would be."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.clock import FixedClock
from bot.emulator import BotApiEmulator
from bot.reminders.compose import ComposeStats, ReminderComposer, group_by_settings
from bot.reminders.models import DigestPart, ReminderSettings
from storage.postgres.pool import open_pool
from storage.postgres.reminders import PostgresReminderStore

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 25)
NOW = datetime.combine(DAY, time(10, 0), SHANGHAI).astimezone(UTC)
GROUP, SUPERGROUP = -100500, -1000000100500


@pytest.fixture
async def second_pool(pg_pool: asyncpg.Pool, pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Another writer on the same (migrated) schema."""
    pool = await open_pool(pg_url, max_size=4)
    yield pool
    await pool.close()


async def add_chat(pool: asyncpg.Pool, chat_id: int) -> None:
    await pool.execute(
        "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES ($1, $2, $3, $4)",
        chat_id,
        chat_id < 0,
        NOW,
        str(chat_id),
    )


async def add_card(
    pool: asyncpg.Pool,
    chat_id: int,
    iccid: str,
    expiry: date,
    *,
    auto_renew: bool = False,
    plan_months: int | None = None,
) -> int:
    card_id = await pool.fetchval(
        "INSERT INTO cards (chat_id, iccid, expiry, carrier, plan_months, plan_price_fen, "
        "auto_renew, created_at) VALUES ($1, $2, $3, 'cmcc', $4, 3000, $5, $6) RETURNING id",
        chat_id,
        iccid,
        expiry,
        plan_months,
        auto_renew,
        NOW,
    )
    return int(card_id)


async def test_two_composers_at_once_renew_each_card_once_and_send_each_chat_one_digest(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    auto_cards = []
    for n in range(300):
        chat_id = 10_000 + n
        await add_chat(pg_pool, chat_id)
        await add_card(pg_pool, chat_id, f"8986001234567800{n:04d}", DAY + timedelta(days=3))
        if n % 3 == 0:  # due for renewal today: the one thing that must not happen twice
            auto_cards.append(
                await add_card(
                    pg_pool,
                    chat_id,
                    f"8986009999999900{n:04d}",
                    DAY,
                    auto_renew=True,
                    plan_months=1,
                )
            )
    composers = [
        ReminderComposer(
            PostgresReminderStore(pool), FixedClock(NOW), default_language="zh_CN", batch_chats=25
        )
        for pool in (pg_pool, second_pool)
    ]
    results = await asyncio.gather(*(composer.compose_due() for composer in composers))
    total = ComposeStats()
    for stats in results:
        total.add(stats)
    assert (total.digests, total.auto_renewed, total.cards_due) == (300, 100, 300)
    assert all(stats.chats for stats in results), "both composers took a share"
    per_chat = await pg_pool.fetch(
        "SELECT chat_id, count(*) FROM outbox GROUP BY chat_id HAVING count(*) <> 1"
    )
    assert per_chat == []
    assert await pg_pool.fetchval("SELECT count(DISTINCT chat_id) FROM outbox") == 300
    renewals = await pg_pool.fetch(
        "SELECT card_id, count(*) FROM renewals GROUP BY card_id ORDER BY card_id"
    )
    assert [(row[0], row[1]) for row in renewals] == [(card_id, 1) for card_id in auto_cards]
    expiries = await pg_pool.fetch(
        "SELECT DISTINCT expiry FROM cards WHERE id = ANY($1::bigint[])", auto_cards
    )
    assert [row[0] for row in expiries] == [date(2026, 12, 25)]
    # and a third pass later that day finds nothing left to do
    again = await composers[0].compose_due()
    assert (again.digests, again.auto_renewed) == (0, 0)


async def test_a_batch_being_composed_is_not_handed_to_a_second_composer(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    await add_chat(pg_pool, 1001)
    card_id = await add_card(pg_pool, 1001, "89860012345678000001", DAY, auto_renew=True,
                             plan_months=1)  # fmt: skip
    first, second = PostgresReminderStore(pg_pool), PostgresReminderStore(second_pool)
    args = {"timezone": None, "today": DAY, "local_time": None, "after_chat_id": None}
    async with first.batch() as a:
        assert [c.chat_id for c in await a.due_chats(**args, limit=10)] == [1001]
        [candidate] = await a.auto_renew_candidates([1001], DAY)
        assert candidate.id == card_id
        async with second.batch() as b:  # meanwhile, the other composer
            assert await b.due_chats(**args, limit=10) == []
        await a.mark_composed([1001], DAY, now=NOW)
    async with second.batch() as b:  # after the first committed: done for the day
        assert await b.due_chats(**args, limit=10) == []


async def test_auto_renewal_records_only_what_it_moved(pg_pool: asyncpg.Pool) -> None:
    """A card renewed by someone else between the read and the write is not renewed again, and
    gets no automatic renewal record."""
    from bot.reminders.autorenew import auto_renewal

    await add_chat(pg_pool, 1001)
    await add_card(pg_pool, 1001, "89860012345678000001", DAY, auto_renew=True, plan_months=1)
    store = PostgresReminderStore(pg_pool)
    async with store.batch() as batch:
        [candidate] = await batch.auto_renew_candidates([1001], DAY)
    renewal = auto_renewal(candidate, DAY)
    assert renewal is not None
    await pg_pool.execute("UPDATE cards SET expiry = $1", DAY + timedelta(days=365))  # by hand
    async with store.batch() as batch:
        await batch.apply_auto_renewals([renewal], renewed_at=NOW)
    assert await pg_pool.fetchval("SELECT count(*) FROM renewals") == 0
    assert await pg_pool.fetchval("SELECT expiry FROM cards") == DAY + timedelta(days=365)


async def _group_with_a_digest(pool: asyncpg.Pool) -> int:
    await add_chat(pool, GROUP)
    card_id = await add_card(pool, GROUP, "89860012345678000001", DAY + timedelta(days=3))
    store = PostgresReminderStore(pool)
    await store.save_settings(GROUP, ReminderSettings(send_time=time(8, 0)))
    await ReminderComposer(store, FixedClock(NOW), default_language="zh_CN").compose_due()
    return card_id


async def test_two_reports_of_one_move_at_once_move_it_once(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    card_id = await _group_with_a_digest(pg_pool)
    stores = [PostgresReminderStore(pool) for pool in (pg_pool, second_pool)]
    await asyncio.gather(*(store.migrate_chat(GROUP, SUPERGROUP) for store in stores))
    assert [tuple(r) for r in await pg_pool.fetch("SELECT chat_id FROM chats")] == [(SUPERGROUP,)]
    assert await pg_pool.fetchval("SELECT chat_id FROM cards WHERE id = $1", card_id) == SUPERGROUP
    assert (await stores[1].get_settings(SUPERGROUP)).send_time == time(8, 0)
    _, cards = await stores[0].digest_cards(SUPERGROUP, DAY)
    assert [card.id for card in cards] == [card_id]


async def test_a_move_while_the_supergroup_writes_first_merges_instead_of_failing(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    """The supergroup's first message creates its chat row while the move is under way: the
    move's rename would collide with it; it starts over and merges the two."""
    card_id = await _group_with_a_digest(pg_pool)
    async with second_pool.acquire() as conn:
        first_message = conn.transaction()
        await first_message.start()
        await conn.execute(
            "INSERT INTO chats (chat_id, is_group, language, created_at, address) "
            "VALUES ($1, true, 'en', $2, $3)",
            SUPERGROUP,
            NOW,
            str(SUPERGROUP),
        )
        move = asyncio.create_task(PostgresReminderStore(pg_pool).migrate_chat(GROUP, SUPERGROUP))
        await asyncio.sleep(0.3)  # the move now waits on the new row's key
        assert not move.done()
        await first_message.commit()
    await asyncio.wait_for(move, 10)
    rows = await pg_pool.fetch("SELECT chat_id, language FROM chats")
    assert [tuple(row) for row in rows] == [(SUPERGROUP, "en")]
    assert await pg_pool.fetchval("SELECT chat_id FROM cards WHERE id = $1", card_id) == SUPERGROUP
    store = PostgresReminderStore(pg_pool)
    assert (await store.get_settings(SUPERGROUP)).send_time == time(8, 0)
    assert [c.id for c in (await store.digest_cards(SUPERGROUP, DAY))[1]] == [card_id]


async def test_two_senders_claiming_the_same_messages_get_each_one_once(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    for n in range(50):
        chat_id = 10_000 + n
        await add_chat(pg_pool, chat_id)
        await add_card(pg_pool, chat_id, f"8986001234567800{n:04d}", DAY + timedelta(days=3))
    await ReminderComposer(
        PostgresReminderStore(pg_pool), FixedClock(NOW), default_language="zh_CN"
    ).compose_due()
    stores = [PostgresReminderStore(pool) for pool in (pg_pool, second_pool)]
    messages = await stores[0].pending(now=NOW, after_id=0, limit=100)
    assert len(messages) == 50
    until = NOW + timedelta(minutes=5)

    async def sender(store: PostgresReminderStore) -> list[int]:
        claimed = await asyncio.gather(
            *(store.claim(m.id, now=NOW, until=until) for m in messages[::2]),
            *(store.claim_digest(m, chat_id=m.chat_id, now=NOW, until=until)
              for m in messages[1::2]),
        )  # fmt: skip
        ids = [m.id for m in messages[::2]] + [m.id for m in messages[1::2]]
        return [message_id for message_id, got in zip(ids, claimed, strict=True) if got]

    first, second = await asyncio.gather(*(sender(store) for store in stores))
    assert sorted(first + second) == sorted(m.id for m in messages)
    assert not set(first) & set(second)
    assert await stores[1].pending(now=NOW, after_id=0, limit=100) == []
    assert (await stores[1].held(now=NOW)).count == 50


async def test_two_digests_of_one_day_expanded_at_once_number_their_parts_apart(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    """After a group merged into its supergroup, the day can have two digests to render (the
    old one numbered after the new one's); two senders expanding them at once must not give
    two messages the same part number."""
    await add_chat(pg_pool, SUPERGROUP)
    ids = [
        await pg_pool.fetchval(
            "INSERT INTO outbox (chat_id, digest_date, part, created_at) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            SUPERGROUP,
            DAY,
            part,
            NOW,
        )
        for part in (1, 2)
    ]
    stores = [PostgresReminderStore(pool) for pool in (pg_pool, second_pool)]
    messages = await stores[0].pending(now=NOW, after_id=0, limit=10)
    assert [m.id for m in messages] == ids
    parts = [DigestPart(f"part {n}", "[]") for n in range(4)]
    until = NOW + timedelta(minutes=5)
    for _ in range(5):  # the two expansions race each time
        expanded = await asyncio.gather(
            *(
                store.expand(message, parts, chat_id=SUPERGROUP, claimed_until=until)
                for store, message in zip(stores, messages, strict=True)
            )
        )
        assert [len(e) for e in expanded] == [4, 4]
        numbers = await pg_pool.fetch(
            "SELECT part FROM outbox WHERE chat_id = $1 AND digest_date = $2 ORDER BY part",
            SUPERGROUP,
            DAY,
        )
        assert [row[0] for row in numbers] == list(range(1, 9))
        await pg_pool.execute("DELETE FROM outbox WHERE part > 2")
        await pg_pool.execute("UPDATE outbox SET text = NULL, parts = 0")


ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-TOKEN"


async def test_two_remind_processes_at_once_send_each_of_300_chats_one_digest(
    pg_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    """Two ``python -m bot remind`` started together on one PostgreSQL database: they share the
    300 due chats, each chat hears once, each auto-renewing card is renewed once."""
    chats = [20_000 + n for n in range(300)]
    await pg_pool.executemany(
        "INSERT INTO chats (chat_id, created_at, address) VALUES ($1, $2, $3)",
        [(c, NOW, str(c)) for c in chats],
    )
    await pg_pool.executemany(
        "INSERT INTO cards (chat_id, iccid, expiry, carrier, plan_months, auto_renew, "
        "created_at) VALUES ($1, $2, $3, 'cmcc', $4, $5, $6)",
        [(c, f"89860012345678{c:06d}", DAY + timedelta(days=3), None, False, NOW) for c in chats]
        + [(c, f"89860099999999{c:06d}", DAY, 1, True, NOW) for c in chats[::3]],
    )
    async with BotApiEmulator(TOKEN) as emulator:
        for chat_id in chats:
            emulator.private_chat(emulator.user(chat_id, f"User{chat_id}"))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": emulator.base_url,
            "TELEGRAM_BASE_FILE_URL": emulator.base_file_url,
            "DATABASE_URL": pg_url,
            "DATABASE_PATH": str(tmp_path / "unused.sqlite3"),
        }
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "remind",
                "--date",
                DAY.isoformat(),
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(2)
        ]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in processes)), timeout=120
        )
        said = [out.decode() for out, _ in outputs]
        heard = {chat_id: len(emulator.chat_messages(chat_id)) for chat_id in chats}
    assert [p.returncode for p in processes] == [0, 0], said
    sent = [int(n) for out in said for n in re.findall(r"发送成功 (\d+) 条", out)]
    assert sum(sent) == 300, said
    assert set(heard.values()) == {1}, {c: n for c, n in heard.items() if n != 1}
    assert not (tmp_path / "unused.sqlite3").exists()
    renewals = await pg_pool.fetch("SELECT card_id, count(*) FROM renewals GROUP BY card_id")
    assert len(renewals) == 100
    assert {row[1] for row in renewals} == {1}
    assert await pg_pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'sent'") == 300


async def test_two_merges_into_an_existing_supergroup_at_once_merge_once(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    """Both chats have rows and a card in common: the two reports of the move merge them once
    (one card, both renewals kept), the second finding the group gone."""
    await _group_with_a_digest(pg_pool)
    await add_chat(pg_pool, SUPERGROUP)
    shared = await add_card(pg_pool, SUPERGROUP, "89860012345678000001", DAY + timedelta(days=9))
    for card_id in await pg_pool.fetch("SELECT id FROM cards"):
        await pg_pool.execute(
            "INSERT INTO renewals (card_id, renewed_at, old_expiry, new_expiry, rule) "
            "VALUES ($1, $2, $3, $3, 'set_date')",
            card_id[0],
            NOW,
            DAY,
        )
    stores = [PostgresReminderStore(pool) for pool in (pg_pool, second_pool)]
    await asyncio.gather(*(store.migrate_chat(GROUP, SUPERGROUP) for store in stores))
    assert [tuple(r) for r in await pg_pool.fetch("SELECT chat_id FROM chats")] == [(SUPERGROUP,)]
    assert [tuple(r) for r in await pg_pool.fetch("SELECT id, expiry FROM cards")] == [
        (shared, DAY + timedelta(days=9))
    ]
    assert await pg_pool.fetchval("SELECT count(*) FROM renewals WHERE card_id = $1", shared) == 2
    assert (await stores[0].get_settings(SUPERGROUP)).send_time == time(8, 0)


async def test_a_move_during_a_pass_waits_for_its_batch(
    pg_pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    """A group moving while a pass holds it: the move waits for the batch to commit, and the
    digest the batch enqueued follows the group to its new id."""
    await add_chat(pg_pool, GROUP)
    card_id = await add_card(pg_pool, GROUP, "89860012345678000001", DAY + timedelta(days=3))
    composer = ReminderComposer(
        PostgresReminderStore(pg_pool), FixedClock(NOW), default_language="zh_CN"
    )
    async with composer.store.batch() as batch:
        chats = await batch.due_chats(
            timezone=None, today=DAY, local_time=None, after_chat_id=None, limit=10
        )
        move = asyncio.create_task(
            PostgresReminderStore(second_pool).migrate_chat(GROUP, SUPERGROUP)
        )
        await asyncio.sleep(0.3)
        assert not move.done()  # waiting for the batch's lock on the chat
        await batch.remind(group_by_settings(chats, DAY), today=DAY, now=NOW, renewed={})
        await batch.mark_composed([GROUP], DAY, now=NOW)
    await asyncio.wait_for(move, 10)
    rows = await pg_pool.fetch("SELECT chat_id, digest_date FROM outbox")
    assert [tuple(row) for row in rows] == [(SUPERGROUP, DAY)]
    store = PostgresReminderStore(pg_pool)
    assert [c.id for c in (await store.digest_cards(SUPERGROUP, DAY))[1]] == [card_id]
    assert (await composer.compose_due()).digests == 0  # composed for the day, at its new id
