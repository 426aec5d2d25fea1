"""``python -m bot migrate-db``: a SQLite database the bot wrote, copied into PostgreSQL and read
back through the PostgreSQL stores; ids kept and the sequences moved past them; a target with
data, a bad source or an unreachable server refused in one line (exit 2) with nothing written;
the original file never changed; 100,000 cards."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import sqlite3
import subprocess
import sys
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.chats import FOREIGN_ID_BASE, Channel, ChatAddress, ChatKind
from bot.clock import FixedClock
from bot.models import CardDraft, CardEditDraft, Carrier, EditField, Period, RenewalRule
from bot.reminders.compose import ReminderComposer
from bot.reminders.models import ReminderSettings
from bot.robots.models import Robot, Service
from storage.base import RenewalDraft
from storage.conversations import ConversationKey, conversations_for
from storage.factory import Stores, open_stores
from storage.migrate import load_migrations
from storage.postgres.migrate import VERSION_TABLE
from tests.db_rows import fetch

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY = date(2026, 11, 25)
ALICE = 1001  # private chat, English, Berlin
SHOP = -100500  # a group, Chinese, Shanghai, with a WeCom robot
PASSWORD = "s3cret-Pa55word"
WECOM = Robot(Service.WECOM, "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
DINGTALK_SECRET = "SECd1n9ta1k-s1gn1ng-secret"
DINGTALK = Robot(
    Service.DINGTALK, "b2f7c1d0e9a84c3b8f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4"
)
ADDCARD = ConversationKey(SHOP, 1003, "addcard")
DRAFT = pickle.dumps({"iccid": "89860012345678901234", "step": "expiry"})
# Chats and a person of WeCom (ids from 2**53 up), a Telegram-looking address among them
WECOM_SHOP = ChatAddress(Channel.WECOM, ChatKind.GROUP, "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
WECOM_LOOKALIKE = ChatAddress(Channel.WECOM, ChatKind.PRIVATE, str(ALICE))


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate-db", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "LANGUAGE": "en", **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """A refusal: exit 2, one line on stderr, no traceback, no secret."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for secret in (PASSWORD, WECOM.token, DINGTALK.token, DINGTALK_SECRET):
        assert secret not in result.stderr + result.stdout
    return result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def build_source(path: Path) -> dict[str, Any]:
    """A SQLite database as the bot leaves it, written through the real stores."""
    stores = await open_stores(database_url=None, database_path=path)
    try:
        storage = stores.storage
        alice = await storage.ensure_chat(ALICE, is_group=False, language="en")
        await storage.save_chat(alice.model_copy(update={"timezone": "Europe/Berlin"}))
        await storage.ensure_chat(SHOP, is_group=True, language="zh_CN")
        monthly = {"plan_period": Period(months=1), "plan_price_fen": 3000}
        cards = [
            await storage.add_card(
                SHOP,
                CardDraft(
                    iccid="89860012345678901234",
                    expiry=DAY + timedelta(days=3),
                    carrier=Carrier.CHINA_MOBILE,
                    label="门店1",
                    note="收银台左边",
                    **monthly,  # type: ignore[arg-type]
                ),
                NOW - timedelta(days=90),
            ),
            await storage.add_card(
                SHOP,
                CardDraft(
                    iccid="89860012345678901242",
                    expiry=DAY,
                    auto_renew=True,
                    **monthly,  # type: ignore[arg-type]
                ),
                NOW - timedelta(days=60, microseconds=123456),
            ),
            await storage.add_card(  # due: 7 days before its expiry
                SHOP, CardDraft(iccid="89860012345678901275", expiry=DAY + timedelta(days=7)), NOW
            ),
            await storage.add_card(
                ALICE,
                CardDraft(
                    iccid="89860012345678901259",
                    expiry=DAY + timedelta(days=30),
                    plan_period=Period(months=12),
                    plan_price_fen=9900,
                ),
                NOW - timedelta(days=30),
            ),
        ]
        renewed = await storage.renew_card(
            SHOP,
            cards[0].id,
            RenewalDraft(
                renewed_at=NOW - timedelta(days=20),
                by_user_id=1003,
                by_name="Boss",
                old_expiry=cards[0].expiry,
                new_expiry=cards[0].expiry + timedelta(days=31),
                period=Period(months=1),
                rule=RenewalRule.EXTEND,
                amount_fen=2950,
            ),
        )
        assert renewed is not None
        first = await storage.get_card(SHOP, cards[0].id)
        assert first is not None
        edited = await storage.update_card(
            SHOP,
            first.model_copy(update={"label": "门店一号"}),
            edits=[
                CardEditDraft(
                    edited_at=NOW - timedelta(days=10),
                    by_user_id=1002,
                    by_name="Bob",
                    field=EditField.LABEL,
                    old_value="门店1",
                    new_value="门店一号",
                )
            ],
        )
        assert edited is not None
        await stores.reminders.save_settings(
            ALICE, ReminderSettings(send_time=time(8, 30), days_before=(30, 7, 1))
        )
        robot = await stores.push.add_target(
            SHOP, WECOM, secret=None, source_name="门店群", added_by=1003, at=NOW, is_group=True
        )
        assert robot is not None
        await stores.push.add_target(
            ALICE,
            DINGTALK,
            secret=DINGTALK_SECRET,
            source_name=None,
            added_by=ALICE,
            at=NOW,
            is_group=False,
        )
        await stores.push.claim_slot(WECOM, now=NOW, interval=3.0)
        # the 10:00 pass: the auto-renewal, the sent-log, digests to the group and its robot
        composer = ReminderComposer(stores.reminders, FixedClock(NOW), default_language="zh_CN")
        await composer.compose_due()
        [to_chat] = await stores.reminders.pending(
            now=NOW, after_id=0, limit=10, robots=False, groups=True
        )
        await stores.reminders.mark_sent(to_chat.id, 4242, at=NOW + timedelta(seconds=1))
        await conversations_for(storage).save_conversations(
            {ADDCARD: "2"}, {ADDCARD: DRAFT}, at=NOW
        )
        channels = stores.channels
        wecom_shop = await channels.chat_id_for(WECOM_SHOP, at=NOW)
        await channels.chat_id_for(WECOM_LOOKALIKE, at=NOW)
        zhang = await channels.user_id_for(Channel.WECOM, "zhangsan", name="张三", at=NOW)
        await channels.claim_group_admin(wecom_shop, zhang)
        await channels.save_menu(wecom_shop, zhang, 77, [("续费", "renew:1")], at=NOW)
        await channels.acquire_lease("wecom:shop", "host-a", now=NOW, ttl=timedelta(days=1))
        return {"cards": [card.id for card in cards], "robot": robot.id, "zhang": zhang}
    finally:
        await stores.close()


def _normal(value: object) -> object:
    """One form for both sides' rows (tests.db_rows gives PostgreSQL's as SQLite text): an
    instant as an aware datetime, however many digits of its fraction the text kept."""
    if isinstance(value, str) and len(value) > 19 and value[10] == "T" and value[4] == "-":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value


def sqlite_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the SQLite file, by column name order of its table."""
    with sqlite3.connect(path) as db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        found = {}
        for table in tables:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            found[table] = columns, rows
    db.close()
    return {
        table: sorted((tuple(_normal(v) for v in row) for row in rows), key=repr)
        for table, (_, rows) in found.items()
    } | {f"{table} columns": [tuple(columns)] for table, (columns, _) in found.items()}


async def postgres_rows(stores: Stores, like: dict[str, Any]) -> dict[str, Any]:
    """The same tables and columns, read from PostgreSQL."""
    found: dict[str, Any] = {}
    for key, value in like.items():
        if key.endswith(" columns"):
            found[key] = value
            continue
        columns = like[f"{key} columns"][0]
        rows = await fetch(stores.storage, f"SELECT {', '.join(columns)} FROM {key}")
        found[key] = sorted((tuple(_normal(v) for v in row) for row in rows), key=repr)
    return found


@pytest.fixture
async def source(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "data" / "simwatch.sqlite3"
    return path, await build_source(path)


async def test_everything_is_copied_and_reads_back_the_same(
    source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    path, made = source
    before = sqlite_rows(path)
    assert before["reminder_log"]
    assert before["conversation_drafts"]
    mine = await open_stores(database_url=None, database_path=path)
    sqlite_view = await _user_view(mine, made)
    await mine.close()
    unchanged = digest(path)

    result = run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "cards: SQLite 4, PostgreSQL 4" in result.stdout
    assert "outbox: SQLite 2, PostgreSQL 2" in result.stdout  # the group's digest, its robot's
    assert "the same count in every table on both sides" in result.stdout
    assert digest(path) == unchanged  # only a snapshot of it was read

    stores = await open_stores(database_url=pg_url, database_path=tmp_path / "unused.sqlite3")
    try:
        assert stores.backend == "postgresql"
        # what users see, through the PostgreSQL stores
        assert await _user_view(stores, made) == sqlite_view
        # and every row of every table, whatever its type on each side
        assert await postgres_rows(stores, before) == before

        # new rows get fresh ids: every identity sequence was moved past the copied ones
        card = await stores.storage.add_card(
            SHOP, CardDraft(iccid="89860012345678901267", expiry=DAY), NOW
        )
        assert card.id == max(made["cards"]) + 1
        renewal = await stores.storage.renew_card(
            SHOP,
            card.id,
            RenewalDraft(
                renewed_at=NOW,
                by_user_id=None,
                by_name=None,
                old_expiry=DAY,
                new_expiry=DAY + timedelta(days=30),
                period=Period(days=30),
                rule=RenewalRule.EXTEND,
            ),
        )
        assert renewal is not None
        assert renewal.id == 1 + max(r[0] for r in before["renewals"])  # type: ignore[type-var]
        other = Robot(Service.FEISHU, "8c0b2a3e-4f5d-6e7f-8091-a2b3c4d5e6f7")
        target = await stores.push.add_target(
            SHOP, other, secret=None, source_name=None, added_by=None, at=NOW, is_group=True
        )
        assert target is not None
        assert target.id == 3
        # a new WeCom chat and person get ids after the copied ones
        newer = await stores.channels.chat_id_for(
            ChatAddress(Channel.WECOM, ChatKind.PRIVATE, "lisi"), at=NOW
        )
        copied = [r[0] for r in before["chats"] if r[0] >= FOREIGN_ID_BASE]  # type: ignore[operator]
        assert newer == max(copied) + 1  # type: ignore[call-overload]
        li = await stores.channels.user_id_for(Channel.WECOM, "lisi", name=None, at=NOW)
        assert li == made["zhang"] + 1
    finally:
        await stores.close()


async def _user_view(stores: Stores, made: dict[str, Any]) -> dict[str, Any]:
    """The chats, cards, histories, settings, robots and conversations, as the stores give
    them (each backend its own way: equal means the copy holds the same)."""
    storage = stores.storage
    view: dict[str, Any] = {}
    for chat_id in (ALICE, SHOP):
        view[f"chat {chat_id}"] = await storage.get_chat(chat_id)
        view[f"cards {chat_id}"] = await storage.list_cards(chat_id, limit=100)
        view[f"reminders {chat_id}"] = await stores.reminders.get_settings(chat_id)
        view[f"robots {chat_id}"] = await stores.push.targets(chat_id)
        view[f"spent {chat_id}"] = await storage.spent_by_carrier(
            chat_id, NOW - timedelta(days=400)
        )
        for card in view[f"cards {chat_id}"]:
            view[f"renewals {card.id}"] = await storage.list_renewals(chat_id, card.id)
            view[f"edits {card.id}"] = await storage.list_card_edits(chat_id, card.id)
    view["sent-log"] = await stores.reminders.digest_cards(SHOP, DAY)
    view["pending"] = await stores.reminders.pending(now=NOW, after_id=0, limit=100)
    view["conversations"] = await conversations_for(storage).load_conversations()
    channels = stores.channels
    wecom_shop = await channels.chat_id_for(WECOM_SHOP, at=NOW)
    lookalike = await channels.chat_id_for(WECOM_LOOKALIKE, at=NOW)
    assert min(wecom_shop, lookalike) >= FOREIGN_ID_BASE
    view["addresses"] = [
        await channels.chat_address(chat_id) for chat_id in (ALICE, SHOP, wecom_shop, lookalike)
    ]
    view["chat wecom"] = await storage.get_chat(wecom_shop)
    view["zhang"] = await channels.user_address(made["zhang"])
    view["admin"] = await channels.group_admin(wecom_shop)
    view["menu"] = await channels.menu(wecom_shop, made["zhang"])
    view["lease"] = await channels.lease_holder("wecom:shop", now=NOW)
    assert (view["admin"], view["lease"]) == (made["zhang"], "host-a")
    assert view["menu"] is not None
    assert view["menu"].options == (("续费", "renew:1"),)
    # what the pass made: the auto-renewal, with its money, and the digest to the robot
    renewed = view[f"renewals {made['cards'][1]}"]
    assert [(r.automatic, r.amount_fen) for r in renewed] == [(True, 3000)]
    assert any(m.target_id == made["robot"] for m in view["pending"])
    assert view["conversations"].drafts == {ADDCARD: DRAFT}
    assert view[f"spent {SHOP}"] == {Carrier.CHINA_MOBILE: 2950, Carrier.OTHER: 3000}
    return view


async def _count_rows(url: str) -> dict[str, int]:
    """The rows of each data table of the target (not the version table)."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> $1",
            VERSION_TABLE,
        )
        return {
            t["tablename"]: int(await conn.fetchval(f"SELECT count(*) FROM {t['tablename']}"))
            for t in tables
        }
    finally:
        await conn.close()


async def test_a_target_with_data_is_refused_and_left_as_it_was(
    source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    path, _ = source
    assert run(["--from", str(path), "--to", pg_url], tmp_path).returncode == 0
    stores = await open_stores(database_url=pg_url, database_path=tmp_path / "unused.sqlite3")
    try:
        tables = [
            row[0]
            for row in await fetch(
                stores.storage,
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
            )
        ]
        before = {t: await fetch(stores.storage, f"SELECT * FROM {t} ORDER BY 1") for t in tables}
        line = one_line(run(["--from", str(path), "--to", pg_url], tmp_path))
        assert "already holds data" in line
        assert "nothing was copied" in line
        after = {t: await fetch(stores.storage, f"SELECT * FROM {t} ORDER BY 1") for t in tables}
        assert after == before
    finally:
        await stores.close()


async def test_a_card_added_while_the_bot_writes_is_not_half_copied(
    source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    """The bot may be running on the file: what it has not committed is not copied, and the
    copy does not wait for it."""
    path, _ = source
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO cards (chat_id, iccid, expiry, carrier, created_at) "
            "VALUES (?, '89860099999999999999', '2027-01-01', 'other', ?)",
            (SHOP, NOW.isoformat()),
        )
        result = run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url)
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert result.returncode == 0, result.stderr
    assert "cards: SQLite 4, PostgreSQL 4" in result.stdout
    assert (await _count_rows(pg_url))["cards"] == 4


def test_an_old_schema_is_migrated_in_the_copy_not_in_the_file(pg_url: str, tmp_path: Path) -> None:
    """A database of schema 6 (before push robots): the copy is brought up to date, its
    outbox rows get no target; the file itself stays at version 6."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for migration in load_migrations()[:6]:
            db.executescript(migration.sql)
        db.execute("PRAGMA user_version = 6")
        db.execute(
            "INSERT INTO chats (chat_id, created_at) VALUES (?, ?)", (ALICE, NOW.isoformat())
        )
        db.execute(
            "INSERT INTO cards (id, chat_id, iccid, expiry, carrier, created_at) "
            "VALUES (7, ?, '89860012345678901234', '2026-12-01', 'cmcc', '2026-01-02 03:04:05')",
            (ALICE,),
        )
        db.execute(
            "INSERT INTO outbox (chat_id, digest_date, created_at, status) "
            "VALUES (?, '2026-11-25', ?, 'sent')",
            (ALICE, NOW.isoformat()),
        )
    db.close()
    result = run(["--from", f"sqlite:{path}"], tmp_path, DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (6,)
        assert "push_targets" not in {r[0] for r in db.execute("SELECT name FROM sqlite_schema")}
    db.close()

    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetch(
                "SELECT c.id, c.created_at, o.target_id FROM cards c JOIN outbox o USING (chat_id)"
            )
        finally:
            await conn.close()

    [row] = asyncio.run(read())
    # SQLite's own 'YYYY-MM-DD HH:MM:SS' (no zone) is read as UTC
    assert (row["id"], row["created_at"], row["target_id"]) == (
        7,
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        None,
    )


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "there is no file"),
        (lambda p: p.mkdir(), "is not an SQLite database"),
        (lambda p: p.write_text("iccid,expiry\n"), "is not an SQLite database"),
        (lambda p: p.write_bytes(b""), "is not an SQLite database"),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(),
            "is an SQLite database, but not SimWatch's",
        ),
    ],
    ids=["missing", "folder", "csv", "empty", "another-app"],
)
def test_a_source_that_is_no_simwatch_database_is_one_line(
    make: Any, says: str, pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "source.sqlite3"
    make(path)
    line = one_line(run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url))
    assert says in line
    assert str(path) in line


def test_an_unreachable_target_is_one_line_without_the_password(tmp_path: Path) -> None:
    path = tmp_path / "simwatch.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE chats (chat_id INTEGER PRIMARY KEY)")
    db.close()
    url = f"postgresql://simwatch:{PASSWORD}@127.0.0.1:1/simwatch"
    line = one_line(run(["--from", str(path), "--to", url], tmp_path))
    assert line.startswith("simwatch: migrate-db: can't use the PostgreSQL database")
    assert "postgresql://simwatch:***@127.0.0.1:1/simwatch" in line
    line = one_line(run(["--from", str(path)], tmp_path))  # neither --to nor DATABASE_URL
    assert "give --to postgresql://… or set DATABASE_URL" in line


async def test_a_value_postgresql_cannot_take_stops_the_copy_naming_it(
    source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    """Nothing is written, and the line names the table, column and row, never a token."""
    path, made = source
    with sqlite3.connect(path) as db:
        db.execute("UPDATE push_targets SET added_at = 'yesterday' WHERE id = ?", (made["robot"],))
    db.close()
    line = one_line(run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url))
    assert "push_targets.added_at" in line
    assert "'yesterday'" in line
    assert set((await _count_rows(pg_url)).values()) == {0}  # the tables made, left empty

    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE push_targets SET added_at = ? WHERE id = ?", (NOW.isoformat(), made["robot"])
        )
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute(
            "INSERT INTO card_edits (card_id, edited_at, field, old_value, new_value) "
            "VALUES (999, ?, 'note', NULL, 'x')",
            (NOW.isoformat(),),
        )
    db.close()
    line = one_line(run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url))
    assert "PostgreSQL refused a row of card_edits" in line
    assert "foreign key" in line
    assert set((await _count_rows(pg_url)).values()) == {0}


def test_chinese_is_the_default_language(
    source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    path, _ = source
    result = run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url, LANGUAGE="")
    assert result.returncode == 0, result.stderr
    assert "cards：SQLite 4 行，PostgreSQL 4 行" in result.stdout
    assert "每张表两边的行数都一致" in result.stdout


def _big_source(path: Path, cards: int) -> None:
    """``cards`` cards in cards / 10 chats, each renewed once, a sent-log row for every tenth:
    direct inserts, as fast as SQLite takes them."""
    from storage.migrate import load_migrations as migrations

    with sqlite3.connect(path) as db:
        for migration in migrations():
            db.executescript(migration.sql)
        db.execute(f"PRAGMA user_version = {len(migrations())}")
        stamp = NOW.isoformat(timespec="microseconds")
        chats = cards // 10
        db.executemany(
            "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES (?1, ?2, ?3, ?1)",
            ((-100000 - i if i % 2 else 10000 + i, i % 2, stamp) for i in range(chats)),
        )
        db.executemany(
            "INSERT INTO cards (id, chat_id, iccid, expiry, carrier, plan_months, plan_price_fen, "
            "auto_renew, created_at) VALUES (?, ?, ?, ?, 'cmcc', 1, 3000, ?, ?)",
            (
                (
                    n + 1,
                    -100000 - (n // 10) if (n // 10) % 2 else 10000 + n // 10,
                    f"8986{n:016d}",
                    (DAY + timedelta(days=n % 365)).isoformat(),
                    n % 7 == 0,
                    stamp,
                )
                for n in range(cards)
            ),
        )
        db.execute(
            "INSERT INTO renewals (card_id, renewed_at, old_expiry, new_expiry, period_months, "
            "rule, amount_fen) SELECT id, created_at, expiry, date(expiry, '+1 month'), 1, "
            "'extend', 3000 FROM cards"
        )
        db.execute(
            "INSERT INTO reminder_log (card_id, expiry, level, reminded_on) "
            "SELECT id, expiry, 30, '2026-11-20' FROM cards WHERE id % 10 = 0"
        )
    db.close()


def test_a_hundred_thousand_cards(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite3"
    started = clock.monotonic()
    _big_source(path, 100_000)
    built = clock.monotonic() - started
    started = clock.monotonic()
    result = run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url)
    took = clock.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "cards: SQLite 100000, PostgreSQL 100000" in result.stdout
    assert "renewals: SQLite 100000, PostgreSQL 100000" in result.stdout
    assert "reminder_log: SQLite 10000, PostgreSQL 10000" in result.stdout
    # not asserted (machines differ): recorded for the report with -s
    print(f"\n100,000 cards: built in {built:.1f} s, migrate-db took {took:.1f} s")
    print(result.stdout)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("CREATE TABLE shop_notes (id INTEGER PRIMARY KEY, text TEXT)", "no table shop_notes"),
        ("ALTER TABLE cards ADD COLUMN colour TEXT", "cards has no column colour"),
    ],
    ids=["table", "column"],
)
async def test_what_postgresql_has_no_place_for_stops_the_copy(
    change: str, says: str, source: tuple[Path, dict[str, Any]], pg_url: str, tmp_path: Path
) -> None:
    """A table or column only the SQLite side has (added by hand, or by a migration the
    PostgreSQL side lacks) would be lost: refused before anything is written."""
    path, _ = source
    with sqlite3.connect(path) as db:
        db.execute(change)
    db.close()
    line = one_line(run(["--from", str(path)], tmp_path, DATABASE_URL=pg_url))
    assert "can't copy the database" in line
    assert says in line
    assert set((await _count_rows(pg_url)).values()) == {0}
