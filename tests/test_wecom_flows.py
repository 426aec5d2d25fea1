"""The bot in WeCom: the conversations over the WeCom long connection, end to end.

The real bot (``bot.serve.Process`` with only WeCom set) talks to the local WeCom emulator over
a real WebSocket; people type, click and send files in the emulator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cards_util import iccid
from conftest import wecom_person, wecom_process
from test_cards_flow import add_cards

from bot.channels.wecom.pace import ChatPace
from bot.chatdriver import texts
from bot.clock import FixedClock
from bot.serve import Process
from bot.wecom.emulator import WeComEmulator
from handlers.reminder_schedule import RUNNER_KEY
from storage.base import Storage


async def test_start_in_a_single_chat_says_how_digests_arrive(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    said = texts(await alice.send("/start"))
    assert "流量卡管家" in said
    assert "每日提醒会发到这个单聊" in said


async def test_one_line_addcard_then_cards(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    said = texts(await alice.send(f"/addcard {iccid(1)} 2026-12-31 移动 收银台1"))
    assert "已保存" in said
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.label == "收银台1"
    listed = texts(await alice.send("/cards"))
    assert "收银台1" in listed


async def test_a_group_hears_mentions_and_its_first_speaker_administers_it(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    said = texts(await boss.send("/start"))
    assert "@我" in said
    assert "boss" in said
    assert "已保存" in texts(await bob.send(f"/addcard {iccid(1)} 2026-12-31 移动 收银台1"))
    refused = texts(await bob.send(f"/delete {iccid(1)[-4:]}"))
    assert "管理员" in refused
    assert await storage.get_card_by_iccid(boss.chat_id, iccid(1)) is not None
    asked = texts(await boss.send(f"/delete {iccid(1)[-4:]}"))
    assert "删除" in asked
    # in the group the ICCID is masked to its last digits
    listed = texts(await bob.send("/cards"))
    assert iccid(1) not in listed
    assert iccid(1)[-6:] in listed


async def test_more_choices_than_a_card_holds_are_numbered_and_a_number_picks(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    for n in range(1, 9):
        await alice.send(f"/addcard {iccid(n)} 2026-12-{10 + n} 移动 T{n}")
    listed = (await alice.send("/cards"))[-1]
    assert listed.text is not None
    assert "回复字母选择" in listed.text
    assert "H. " in listed.text  # eight cards: lettered lines
    detail = texts(await alice.send("C"))
    assert iccid(3) in detail
    assert "T3" in detail
    await alice.send("/cards")
    assert "没有这个选项" in texts(await alice.send("Z"))
    assert "没看懂" in texts(await alice.send("42"))  # a number is text, never a choice


async def test_numbered_choices_survive_a_restart(
    wecom_emulator: WeComEmulator, storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    async with wecom_process(wecom_emulator, storage, clock, tmp_path) as first:
        alice = await wecom_person(first, wecom_emulator, "alice")
        for n in range(1, 8):
            await alice.send(f"/addcard {iccid(n)} 2026-12-{10 + n} 移动 T{n}")
        await alice.send("/cards")
    async with wecom_process(wecom_emulator, storage, clock, tmp_path) as second:
        alice = await wecom_person(second, wecom_emulator, "alice")
        assert "T2" in texts(await alice.send("b"))


async def test_a_click_is_acknowledged_at_once_even_behind_a_slow_answer(
    storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    # WeCom lets a clicked card be updated within its window only: the bot does it when the
    # click comes, not when the chat's queue (here stuck on a slow answer) gets to it.
    async with (
        WeComEmulator(event_reply_seconds=1.0) as emulator,
        wecom_process(emulator, storage, clock, tmp_path) as process,
    ):
        alice = await wecom_person(process, emulator, "alice")
        await alice.send(f"/addcard {iccid(1)} 2026-12-31 移动 T1")
        await alice.send("/cards")  # one card: a card with its button
        screen, data = alice.find_button("T1")
        assert screen.task_id is not None
        emulator.slow_answers(2.0, cmd="aibot_respond_msg")
        slow = asyncio.create_task(alice.send("/help"))
        await asyncio.sleep(0.2)
        await emulator.click("alice", screen.task_id, data)
        await asyncio.sleep(0.5)
        updates = [e for e in emulator.events if e.kind == "update"]
        assert updates, "the pressed card was not updated within WeCom's window"
        await slow


async def test_pictures_and_voice_without_words_get_an_answer(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    said = texts(await alice.after(wecom_emulator.send_image("alice")))
    assert "只能读文字和文件" in said
    assert "还没有" in texts(await alice.after(wecom_emulator.send_voice("alice", "/cards")))


async def test_a_wecom_user_never_reaches_a_telegram_chat_of_the_same_number(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    await storage.ensure_chat(1001, is_group=False)
    await add_cards(storage, 1001, [30])
    same_number = await wecom_person(wecom_bot, wecom_emulator, "1001")
    assert same_number.chat_id != 1001
    assert "还没有" in texts(await same_number.send("/cards"))


async def test_the_daily_digest_reaches_a_wecom_chat_and_its_buttons_work(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    await alice.send(f"/addcard {iccid(1)} 2026-11-28 移动 收银台1")
    runner = wecom_bot.wecom.bot_data[RUNNER_KEY]
    await runner.tick()
    [digest] = alice.collect()
    assert digest.text is not None
    assert "流量卡到期提醒" in digest.text
    assert "收银台1" in digest.text
    renewing = texts(await alice.press("续费"))
    assert "续多久" in renewing


async def test_two_people_writing_at_once_in_a_group_each_get_their_own_answer(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    for n in range(1, 9):
        await boss.send(f"/addcard {iccid(n)} 2026-12-{10 + n} 移动 T{n}")
    await asyncio.gather(boss.send("/cards"), bob.send("/help"))
    replies = [e for e in wecom_emulator.events[-2:] if e.kind == "respond"]
    assert len(replies) == 2, "each message got its own reply"
    # the lettered choices were offered to the boss, who asked for the list
    assert "T3" in texts(await boss.send("C"))


async def test_a_typed_time_on_a_lettered_screen_is_a_time_not_a_choice(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    await alice.send("/settings")
    await alice.press("提醒设置")
    await alice.press("发送时间")
    saved = texts(await alice.send("7"))
    assert "07:00" in saved


async def test_a_digest_arriving_mid_conversation_does_not_swallow_the_answer(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    for n in (1, 2):  # two due cards: the digest has more buttons than a card holds
        await alice.send(f"/addcard {iccid(n)} 2026-11-2{6 + n} 移动 T{n}")
    await alice.send("/addcard")
    for step in (iccid(3), "2027-01-31"):
        await alice.send(step)
    await alice.press("中国移动")
    await alice.send("收银台3")
    assert "价格" in texts(await alice.press("3 个月"))
    await wecom_bot.wecom.bot_data[RUNNER_KEY].tick()  # the digest, unprompted, lettered
    assert "流量卡到期提醒" in texts(alice.collect())
    asked = texts(await alice.send("30"))  # the price the conversation asked for
    assert "自动续费" in asked


async def test_a_refused_click_leaves_the_card_to_the_others(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    await boss.send(f"/addcard {iccid(1)} 2026-12-31 移动 T1")
    await boss.send(f"/delete {iccid(1)[-4:]}")
    assert "管理员" in texts(await bob.press("确认删除"))
    assert await storage.get_card_by_iccid(boss.chat_id, iccid(1)) is not None
    assert "已删除" in texts(await boss.press("确认删除"))
    assert await storage.get_card_by_iccid(boss.chat_id, iccid(1)) is None


async def test_mentions_are_taken_off_and_a_bare_mention_gets_help(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    bob = await wecom_person(wecom_bot, wecom_emulator, "bob", chatid="shop-group")
    assert "还没有" in texts(await bob.send("@张三 /cards"))
    assert "/addcard" in texts(await bob.send(""))


async def test_replies_beyond_wecoms_limit_wait_instead_of_being_lost(
    storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    # WeCom refuses a chat's 31st message within a minute; the bridge keeps to its own budget
    # (here 3 a minute, and the emulator's 4) and makes the 4th answer wait for its turn.
    async with (
        WeComEmulator() as emulator,
        wecom_process(
            emulator, storage, clock, tmp_path, wecom_pace=ChatPace(per_minute=3)
        ) as process,
    ):
        emulator.rate_limit(4, 1000)
        alice = await wecom_person(process, emulator, "alice")
        for _ in range(3):
            assert "/addcard" in texts(await alice.send("/help"))
        started = asyncio.get_running_loop().time()
        waiting = asyncio.create_task(alice.send("/help"))
        await asyncio.sleep(1)
        assert not waiting.done(), "the 4th answer went out at once"
        assert "/addcard" in texts(await asyncio.wait_for(waiting, 30))
        assert asyncio.get_running_loop().time() - started >= 10


async def test_opening_the_chat_with_the_robot_gets_a_welcome(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    await wecom_emulator.enter_chat("newcomer")
    [welcome] = await wecom_emulator.wait_for_events(("single", "newcomer"))
    assert welcome.kind == "welcome"
    assert "/addcard" in str(welcome.body)


async def test_a_digest_after_someone_spoke_offers_its_choices_to_everyone(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    for n in (1, 2):  # two due cards: 8 buttons, lettered
        await boss.send(f"/addcard {iccid(n)} 2026-11-2{6 + n} 移动 T{n}")
    await bob.send("/help")
    await wecom_bot.wecom.bot_data[RUNNER_KEY].tick()  # not an answer to Bob: nobody's
    assert "流量卡到期提醒" in texts(boss.collect())
    assert "再提醒" in texts(await boss.send("B"))  # B: 💤 tomorrow, for the boss too


async def test_a_time_out_does_not_wipe_someone_elses_choices(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    for n in range(1, 9):
        await boss.send(f"/addcard {iccid(n)} 2026-12-{10 + n} 移动 T{n}")
    await boss.send("/addcard")  # the boss starts a conversation and walks away
    await bob.send("/cards")  # Bob gets the lettered list
    job_queue = wecom_bot.wecom.job_queue
    assert job_queue is not None
    (timeout,) = job_queue.get_jobs_by_name("_trigger_timeout")
    await timeout.run(wecom_bot.wecom)  # the boss's conversation times out
    assert "太久没有回复" in texts(boss.collect())
    assert "T3" in texts(await bob.send("C"))


async def test_a_one_letter_label_mid_conversation_is_a_label_not_a_digest_choice(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    for n in (1, 2):
        await alice.send(f"/addcard {iccid(n)} 2026-11-2{6 + n} 移动 T{n}")
    await alice.send("/addcard")
    await alice.send(iccid(3))
    await alice.send("2027-01-31")
    assert "标签" in texts(await alice.press("中国移动"))
    await wecom_bot.wecom.bot_data[RUNNER_KEY].tick()  # a digest with lettered choices
    assert "流量卡到期提醒" in texts(alice.collect())
    asked = texts(await alice.send("A"))  # the label asked for
    assert "套餐" in asked
    renewing = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert renewing is not None
    assert not renewing.muted


async def test_the_administrator_hands_a_group_on_and_only_they_can(
    wecom_bot: Process, wecom_emulator: WeComEmulator, storage: Storage
) -> None:
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    bob = boss.as_user("bob")
    carol = boss.as_user("carol")
    await boss.send(f"/addcard {iccid(1)} 2026-12-31 移动 T1")  # the boss spoke first
    asked = texts(await bob.send("/admin"))
    assert "bob想成为这个群的管理员" in asked
    assert "管理员" in texts(await carol.press("同意交接"))  # not hers to decide
    assert "管理员" in texts(await bob.send(f"/delete {iccid(1)[-4:]}"))  # still not Bob's
    assert "已交接" in texts(await boss.press("同意交接"))
    assert "删除" in texts(await bob.send(f"/delete {iccid(1)[-4:]}"))
    refused = texts(await boss.send(f"/delete {iccid(1)[-4:]}"))
    assert "只有群管理员" in refused


async def test_a_file_that_cannot_be_downloaded_is_asked_for_again(
    wecom_bot: Process, wecom_emulator: WeComEmulator
) -> None:
    alice = await wecom_person(wecom_bot, wecom_emulator, "alice")
    await alice.send("/import")
    content = f"ICCID,到期日\n{iccid(1)},2026-12-31\n".encode()
    act = wecom_emulator.send_file("alice", "cards.csv", content, wrong_key=True)
    assert "再发送一次" in texts(await alice.after(act))
    assert "新增" in texts(await alice.send_document("cards.csv", content))  # and it works
