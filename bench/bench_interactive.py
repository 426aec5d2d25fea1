"""Time in the handler for /cards (page 1 and page 300 of 5,000 cards) and one-line /addcard.

Measured through ``Application.process_update`` with the bot's replies going over HTTP to the
local emulator, as in the tests; the HTTP round trip is part of the figure a user would feel,
so both the total and the part spent outside the HTTP call are printed.

    .venv/bin/python bench/bench_interactive.py [--cards 5000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from stdnum import luhn

from bot.app import build_application
from bot.chatdriver import ChatDriver
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from handlers.common import SERVICES_KEY, Services
from handlers.render import card_list
from storage.sqlite import SqliteStorage

TOKEN = "123456:BENCH"
NOW = datetime(2026, 11, 25, 2, tzinfo=UTC)


def iccid(n: int) -> str:
    body = f"8986001{n:012d}"
    return body + luhn.calc_check_digit(body)


def services_of(app: object) -> Services:
    return app.bot_data[SERVICES_KEY]  # type: ignore[attr-defined, no-any-return]


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[int(len(ms) * 0.95) - 1]
    return f"median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   max {ms[-1]:6.2f} ms"


async def timed(repeat: int, action: object) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await action()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


async def main(cards: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        async with BotApiEmulator(TOKEN) as emulator:
            storage = await SqliteStorage.open(path)
            user = emulator.user(1, "Bench")
            chat = emulator.private_chat(user)
            await storage.ensure_chat(1, is_group=False)
            started = time.perf_counter()
            for n in range(cards):
                draft = CardDraft(iccid=iccid(n), expiry=date(2026, 12, 1) + timedelta(n % 400))
                await storage.add_card(1, draft, NOW)
            print(f"setup: {cards} cards added one by one in {time.perf_counter() - started:.1f} s")
            settings = Settings(
                telegram_base_url=emulator.base_url,
                telegram_base_file_url=emulator.base_file_url,
                database_path=path,
            )
            app = build_application(
                settings, token=TOKEN, storage=storage, clock=FixedClock(NOW), rate_limit=False
            )
            await app.initialize()
            await app.start()  # the JobQueue: conversations schedule their idle time-outs
            assert app.post_init is not None
            await app.post_init(app)
            driver = ChatDriver(app, emulator, chat, user)
            await driver.send("/cards")
            page_300 = f"pg:a:{min(299, cards // 10 - 1)}"
            n = cards + 1

            async def add_one() -> None:
                nonlocal n
                await driver.send(f"/addcard {iccid(n)} 2027-01-01 移动 收银台")
                n += 1

            svc = services_of(app)
            today = date(2026, 11, 25)

            async def render_page(page: int) -> None:
                result = await svc.cards.page(1, page)
                card_list(
                    "zh_CN",
                    result,
                    today,
                    False,
                    title_key="cards.title",
                    empty_key="cards.empty",
                    nav_data="pg:a",
                )

            figures = {
                "query+render page 1": await timed(repeat, lambda: render_page(0)),
                "query+render page 300": await timed(repeat, lambda: render_page(299)),
                "/cards page 1": await timed(repeat, lambda: driver.send("/cards")),
                "/cards page 300 (button)": await timed(
                    repeat, lambda: driver.press_data(page_300)
                ),
                "/addcard one line": await timed(repeat, add_one),
            }
            await app.stop()
            await app.shutdown()
            await storage.close()
    print(f"\n{cards} cards in one chat, {repeat} runs each.")
    print("query+render: the storage and rendering work of the handler alone;")
    print("the others: the whole update through process_update, including the bot's HTTP call")
    print("to the local emulator (which itself parses and validates the message):")
    for name, samples in figures.items():
        print(f"  {name:26} {percentiles(samples)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=50)
    options = parser.parse_args()
    asyncio.run(main(options.cards, options.repeat))
