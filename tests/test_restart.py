"""A restart of the bot loses nothing: a half-finished conversation goes on where it stopped."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cards_util import iccid
from conftest import NOW, running_bot

from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from storage.sqlite import SqliteStorage


async def test_addcard_goes_on_after_a_restart(emulator: BotApiEmulator, tmp_path: Path) -> None:
    settings = Settings(
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
    )
    user = emulator.user(7, "Zhao")
    chat = emulator.private_chat(user)

    storage = await SqliteStorage.open(settings.database_path)
    async with running_bot(settings, storage) as before:
        driver = ChatDriver(before, emulator, chat, user)
        await driver.send("/addcard")
        await driver.send(iccid(1))
    await storage.close()

    storage = await SqliteStorage.open(settings.database_path)
    try:
        async with running_bot(settings, storage) as after:
            driver = ChatDriver(after, emulator, chat, user)
            # the next answer is taken as the expiry of the card typed before the restart
            assert "第 3 步：哪个运营商" in texts(await driver.send("2027-01-31"))
            await driver.press("中国移动")
            await driver.press("跳过")
            await driver.press("跳过")
            assert "已保存" in texts(await driver.press("保存"))
            card = await storage.get_card_by_iccid(7, iccid(1))
            assert card is not None
            assert card.expiry == date(2027, 1, 31)
    finally:
        await storage.close()


async def test_import_anyway_button_works_after_a_restart(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    settings = Settings(
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
    )
    user = emulator.user(8, "Qian")
    chat = emulator.private_chat(user)
    old = f"ICCID,到期日,套餐\r\n{iccid(1)},2027-01-01,3个月 30元\r\n".encode()

    storage = await SqliteStorage.open(settings.database_path)
    await storage.ensure_chat(8, is_group=False)
    await storage.add_card(8, CardDraft(iccid=iccid(1), expiry=date(2027, 6, 1)), NOW)
    async with running_bot(settings, storage) as before:
        driver = ChatDriver(before, emulator, chat, user)
        assert "比 SimWatch 里的早" in texts(await driver.send_document("old.csv", old, "/import"))
    await storage.close()

    storage = await SqliteStorage.open(settings.database_path)
    try:
        async with running_bot(settings, storage) as after:
            driver = ChatDriver(after, emulator, chat, user)
            assert "已按文件导入 1 行" in texts(await driver.press("仍然导入"))
            card = await storage.get_card_by_iccid(8, iccid(1))
            assert card is not None
            assert (card.expiry, card.plan_price_fen) == (date(2027, 1, 1), 3000)
    finally:
        await storage.close()
