"""/push end to end: the real Application against the Telegram emulator and the robot emulator
(WeCom, DingTalk, Feishu/Lark), with the real robot client pointed at it by the *_API_BASE
settings. Adding tests the robot first and saves only what arrived; every refusal says why and
what to change; lists mask the token; in groups the URL's message is deleted and only
administrators add, test or remove."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import TOKEN
from db_rows import fetch

from bot.app import AnyApplication, build_application
from bot.chatdriver import ChatDriver, texts
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.emulator.records import ChatEvent
from bot.i18n import LANGUAGES
from bot.robots.emulator import Fault, RobotEmulator
from bot.robots.models import LIMITS, MAX_TARGETS_PER_CHAT, Robot, Service
from bot.services.push import probe_message
from storage.base import Storage
from storage.factory import stores_for

WECOM_KEY = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
DINGTALK_TOKEN = "b2f7c1d0e9a84c3b8f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
DINGTALK_SECRET = "SEC" + "7f" * 32
FEISHU_HOOK = "8c0b2a3e-4f5d-6e7f-8091-a2b3c4d5e6f7"
FEISHU_SECRET = "fsSecret0123456789abcd"
LARK_HOOK = "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"

WECOM_URL = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
DINGTALK_URL = f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}"
FEISHU_URL = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK}"
LARK_URL = f"https://open.larksuite.com/open-apis/bot/v2/hook/{LARK_HOOK}"


@pytest.fixture
async def robots(clock: FixedClock) -> AsyncIterator[RobotEmulator]:
    # the emulator's clock is the bot's: signatures are checked against the time they carry
    async with RobotEmulator(clock=lambda: clock.now().timestamp(), slow=2.0) as emulator:
        yield emulator


@pytest.fixture
async def app(
    emulator: BotApiEmulator,
    storage: Storage,
    clock: FixedClock,
    tmp_path: Path,
    database_url: str | None,
    robots: RobotEmulator,
) -> AsyncIterator[AnyApplication]:
    """conftest's application, its robots' API bases at the robot emulator."""
    settings = Settings(
        bot_token=TOKEN,
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
        database_url=database_url,
        wecom_api_base=robots.base(Service.WECOM),
        dingtalk_api_base=robots.base(Service.DINGTALK),
        feishu_api_base=robots.base(Service.FEISHU),
        lark_api_base=robots.base(Service.LARK),
    )
    application = build_application(
        settings,
        token=TOKEN,
        storage=storage,
        clock=clock,
        rate_limit=False,
        reminder_tick=False,
        robot_clock=clock,  # the robots' emulator runs on it too
    )
    await application.initialize()
    assert application.post_init is not None
    await application.post_init(application)
    await application.start()
    emulator.take_events()
    yield application
    await application.stop()
    await application.shutdown()
    assert application.post_shutdown is not None
    await application.post_shutdown(application)


def register_all(robots: RobotEmulator) -> None:
    robots.register(Service.WECOM, WECOM_KEY)
    robots.register(Service.DINGTALK, DINGTALK_TOKEN, secret=DINGTALK_SECRET, keyword="流量卡")
    robots.register(Service.FEISHU, FEISHU_HOOK, secret=FEISHU_SECRET)
    robots.register(Service.LARK, LARK_HOOK, keyword="流量卡")


async def targets(storage: Storage, chat_id: int) -> list[Robot]:
    return [t.robot for t in await stores_for(storage).push.targets(chat_id)]


def later(clock: FixedClock, seconds: float = 10.0) -> None:
    """Time passes: the robots' next slots are free again."""
    clock.instant += timedelta(seconds=seconds)


def shown(events: list[ChatEvent]) -> str:
    """Everything the chat saw, buttons included (no token may be in any of it)."""
    parts = [texts(events)]
    parts += [text for e in events for row in e.buttons for text, _ in row]
    return "\n".join(parts)


def nothing_received(robots: RobotEmulator) -> bool:
    tokens = {
        Service.WECOM: WECOM_KEY,
        Service.DINGTALK: DINGTALK_TOKEN,
        Service.FEISHU: FEISHU_HOOK,
        Service.LARK: LARK_HOOK,
    }
    return all(not robots.received(service, token) for service, token in tokens.items())


async def test_each_service_is_tested_then_saved_and_listed_masked(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage
) -> None:
    register_all(robots)
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "测试消息已送达企业微信机器人" in said
    assert "第 1 个推送机器人" in said
    said = texts(await alice.send(f"/push {DINGTALK_URL} {DINGTALK_SECRET}"))
    assert "测试消息已送达钉钉机器人" in said
    assert "第 2 个" in said
    assert "飞书机器人" in texts(await alice.send(f"/push {FEISHU_URL} {FEISHU_SECRET}"))
    assert "Lark机器人" in texts(await alice.send(f"/push <{LARK_URL}>"))  # as a client wraps it
    assert await targets(storage, alice.chat_id) == [
        Robot(Service.WECOM, WECOM_KEY),
        Robot(Service.DINGTALK, DINGTALK_TOKEN),
        Robot(Service.FEISHU, FEISHU_HOOK),
        Robot(Service.LARK, LARK_HOOK),
    ]
    # each robot got one test message naming the chat that added it, with the keyword
    for service, token in [
        (Service.WECOM, WECOM_KEY),
        (Service.DINGTALK, DINGTALK_TOKEN),
        (Service.FEISHU, FEISHU_HOOK),
        (Service.LARK, LARK_HOOK),
    ]:
        (message,) = robots.received(service, token)
        assert "流量卡" in message.text
        assert "「Alice」" in message.text
    listed = await alice.send("/push")
    text = shown(listed)
    assert "推送机器人</b>" not in text  # HTML rendered, not shown
    assert "推送机器人（4/10）" in text
    for name in ("1. 企业微信 693a…5aaa", "2. 钉钉 b2f7…5b4a", "3. 飞书", "4. Lark"):
        assert name in text
    assert text.count("最近推送：2026-11-25 10:00 ✅ 成功") == 4  # the chat's time zone
    for secret in (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET, FEISHU_HOOK, FEISHU_SECRET):
        assert secret not in text
    assert "🔔 测试 4" in text
    assert "🗑 删除 4" in text


async def test_a_known_robot_added_again_is_updated_not_doubled(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    robots.register(Service.FEISHU, FEISHU_HOOK, secret=FEISHU_SECRET)
    await alice.send(f"/push {FEISHU_URL} {FEISHU_SECRET}")
    later(clock)
    said = texts(await alice.send(f"/push {FEISHU_URL} {FEISHU_SECRET}"))
    assert "第 1 个推送机器人（飞书 8c0b…e6f7）已更新" in said
    assert len(await targets(storage, alice.chat_id)) == 1
    assert len(robots.received(Service.FEISHU, FEISHU_HOOK)) == 2


@pytest.mark.parametrize(
    ("pasted", "answer"),
    [
        ("qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x", "这不是一个 Webhook 地址"),
        (WECOM_URL.replace("https", "http"), "地址要以 https:// 开头"),
        (WECOM_URL.replace("qq.com", "qq.com.evil.cn"), "不是企业微信、钉钉或飞书的群机器人地址"),
        ("https://oapi.dingtalk.com/robot/sendx?access_token=" + "ab" * 16, "路径不是群机器人"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=", "缺少机器人的密钥"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=short", "密钥不完整"),
        (f"{WECOM_URL} SECabc", "企业微信群机器人没有签名密钥"),
        (f"{DINGTALK_URL} not-a-secret", "钉钉的加签密钥以 SEC 开头"),
    ],
)
async def test_a_wrong_url_or_secret_is_answered_and_nothing_saved(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, pasted: str, answer: str
) -> None:
    register_all(robots)
    said = texts(await alice.send(f"/push {pasted}"))
    assert "没有添加" in said
    assert answer in said
    assert "什么都没有保存" in said
    assert await targets(storage, alice.chat_id) == []
    assert nothing_received(robots)


async def test_refusals_say_which_setting_to_change_and_save_nothing(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage
) -> None:
    # a key the service does not know
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "企业微信说这个机器人不存在或已失效" in said
    # DingTalk says only "security": all three settings are named
    robots.register(Service.DINGTALK, DINGTALK_TOKEN, secret=DINGTALK_SECRET)
    said = texts(await alice.send(f"/push {DINGTALK_URL}"))
    for setting in ("加签", "自定义关键词", "流量卡", "IP 地址"):
        assert setting in said
    # Feishu says which
    robots.register(Service.FEISHU, FEISHU_HOOK, secret=FEISHU_SECRET)
    said = texts(await alice.send(f"/push {FEISHU_URL} {'x' * 22}"))
    assert "飞书机器人的签名校验没有通过" in said
    robots.register(Service.FEISHU, FEISHU_HOOK, keyword="收款")
    said = texts(await alice.send(f"/push {FEISHU_URL}"))
    assert "飞书机器人的自定义关键词拒绝了测试消息" in said
    assert "“流量卡”" in said
    robots.register(Service.LARK, LARK_HOOK, allow_ip=False)
    assert "Lark机器人的 IP 白名单" in texts(await alice.send(f"/push {LARK_URL}"))
    assert await targets(storage, alice.chat_id) == []
    assert nothing_received(robots)


async def test_refusals_in_english(alice_en: ChatDriver, robots: RobotEmulator) -> None:
    robots.register(Service.FEISHU, FEISHU_HOOK, keyword="收款")
    said = texts(await alice_en.send(f"/push {FEISHU_URL}"))
    assert "Not added: The Feishu robot's custom keyword refused" in said
    assert "Nothing was saved." in said
    said = texts(await alice_en.send("/push https://example.com/hook"))
    assert "That is not a WeCom, DingTalk or Feishu group robot's URL" in said


async def test_a_busy_or_failing_service_is_try_again_later(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    robots.register(Service.WECOM, WECOM_KEY)
    robots.fail(Service.WECOM, WECOM_KEY, 45009)
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "企业微信说发送太频繁了，请过一会儿再试" in said
    later(clock)
    robots.fail(Service.WECOM, WECOM_KEY, Fault.HTTP_500)
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "现在连不上企业微信" in said
    assert "什么都没有保存" in said
    # the robot's budget is taken by digests for a while: no waiting that long, no probing
    later(clock)
    robot = Robot(Service.WECOM, WECOM_KEY)
    interval = LIMITS[Service.WECOM].interval
    for _ in range(4):
        await stores_for(storage).push.claim_slot(robot, now=clock.now(), interval=interval)
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "这个机器人正在发送别的消息，请 13 秒后再试" in said
    assert robots.received(Service.WECOM, WECOM_KEY) == []
    assert await targets(storage, alice.chat_id) == []
    # asking again claims nothing: a user's retries delay no other chat's digests to it
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "请 13 秒后再试" in said


async def test_a_refused_robot_leaves_nothing_behind(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    """Not even its rate budget: no token of a robot nobody pushes to stays stored."""
    said = texts(await alice.send(f"/push {WECOM_URL}"))  # not registered: an invalid key
    assert "什么都没有保存" in said
    assert await fetch(storage, "SELECT * FROM robot_slots") == []
    robots.register(Service.WECOM, WECOM_KEY)
    later(clock)
    await alice.send(f"/push {WECOM_URL}")
    assert len(await fetch(storage, "SELECT * FROM robot_slots")) == 1
    await alice.send("/push remove 1")
    assert await fetch(storage, "SELECT * FROM robot_slots") == []


async def test_an_edited_push_command_does_nothing(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    robots.register(Service.WECOM, WECOM_KEY)
    robots.register(Service.FEISHU, FEISHU_HOOK)
    await alice.send(f"/push {WECOM_URL}")
    later(clock)
    await alice.send(f"/push {FEISHU_URL}")
    await alice.send("/push remove 1")  # WeCom goes; Feishu is number 1 now
    assert [t.service for t in await targets(storage, alice.chat_id)] == [Service.FEISHU]
    await alice.edit("/push remove 1")  # the user edits that old message
    assert [t.service for t in await targets(storage, alice.chat_id)] == [Service.FEISHU]


async def test_a_full_chat_adds_no_more(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    push = stores_for(storage).push
    for n in range(MAX_TARGETS_PER_CHAT):
        await push.add_target(
            alice.chat_id,
            Robot(Service.FEISHU, f"hook-{n:04d}-abcdefghijkl"),
            secret=None,
            source_name="Alice",
            added_by=None,
            at=clock.now(),
            is_group=False,
        )
    robots.register(Service.WECOM, WECOM_KEY)
    said = texts(await alice.send(f"/push {WECOM_URL}"))
    assert "已经有 10 个推送机器人，到上限了" in said
    assert robots.received(Service.WECOM, WECOM_KEY) == []


async def test_in_a_group_the_url_is_deleted_and_only_admins_add(
    group: dict[str, ChatDriver],
    emulator: BotApiEmulator,
    robots: RobotEmulator,
    storage: Storage,
) -> None:
    boss, bob = group["boss"], group["bob"]
    robots.register(Service.WECOM, WECOM_KEY)
    # the bot is no administrator: it cannot delete, so it asks
    events = await bob.send(f"/push {WECOM_URL}")
    said = texts(events)
    assert "只有群管理员可以添加、测试或删除推送机器人" in said
    assert "请手动删除你发的那条消息" in said
    assert [e for e in events if e.kind == "delete"] == []
    # an administrator without the right to delete messages cannot either
    emulator.set_bot_status(boss.chat_id, "administrator", can_delete_messages=False)
    assert "请手动删除" in texts(await bob.send(f"/push {WECOM_URL}"))
    # with it, a non-administrator's paste is deleted too: it is a credential all the same
    emulator.set_bot_status(boss.chat_id, "administrator")
    events = await bob.send(f"/push {WECOM_URL}")
    deleted = [e for e in events if e.kind == "delete"]
    assert [e.text for e in deleted] == [f"/push {WECOM_URL}"]
    said = texts(events)
    assert "我删除了你发的那条消息：Webhook 地址就是机器人的密码" in said
    assert "只有群管理员" in said
    assert await targets(storage, boss.chat_id) == []
    assert robots.received(Service.WECOM, WECOM_KEY) == []
    events = await boss.send(f"/push {WECOM_URL}")
    assert [e.text for e in events if e.kind == "delete"] == [f"/push {WECOM_URL}"]
    said = texts(events)
    assert "测试消息已送达企业微信机器人" in said
    assert "我删除了你发的那条消息" in said
    (message,) = robots.received(Service.WECOM, WECOM_KEY)
    assert "「门店群」" in message.text  # the group's title names where it comes from
    assert await targets(storage, boss.chat_id) == [Robot(Service.WECOM, WECOM_KEY)]
    # a mistyped URL is deleted as well
    events = await boss.send(f"/push {WECOM_URL.replace('https', 'http')}")
    assert [e.kind for e in events].count("delete") == 1
    # everyone may list; the list masks the token
    listed = shown(await bob.send("/push"))
    assert "1. 企业微信 693a…5aaa" in listed
    assert WECOM_KEY not in listed


async def test_test_and_remove_buttons(
    group: dict[str, ChatDriver],
    robots: RobotEmulator,
    storage: Storage,
    clock: FixedClock,
) -> None:
    boss, bob = group["boss"], group["bob"]
    robots.register(Service.WECOM, WECOM_KEY)
    await boss.send(f"/push {WECOM_URL}")
    (target,) = await stores_for(storage).push.targets(boss.chat_id)
    later(clock, 3600)
    await bob.send("/push")
    (refusal,) = await bob.press("测试 1")
    assert refusal.kind == "callback_answer"
    assert refusal.show_alert
    assert "只有群管理员" in (refusal.text or "")
    said = texts(await boss.press("测试 1"))
    assert "✅ 测试消息已送达企业微信机器人 693a…5aaa" in said
    assert "最近推送：2026-11-25 11:00 ✅ 成功" in said  # the list, updated
    assert len(robots.received(Service.WECOM, WECOM_KEY)) == 2
    # pressing again at once sends nothing: one test a minute, the group is not flooded
    said = texts(await boss.press("测试 1"))
    assert "请 60 秒后再测试" in said
    assert len(robots.received(Service.WECOM, WECOM_KEY)) == 2
    # a failed test is the target's last result, in the list
    later(clock, 61)
    robots.fail(Service.WECOM, WECOM_KEY, Fault.HTTP_500)
    said = texts(await boss.press("测试 1"))
    assert "❌ 测试消息没有送达企业微信机器人 693a…5aaa：现在连不上企业微信" in said
    assert "11:01 ❌ 连不上" in said
    # remove: asked first; keeping changes nothing
    assert "要删除第 1 个推送机器人（企业微信 693a…5aaa）吗" in texts(await boss.press("删除 1"))
    assert "推送机器人（1/10）" in texts(await boss.press("保留"))
    await boss.press("删除 1")
    said = texts(await boss.press("确认删除"))
    assert "🗑 已删除企业微信机器人 693a…5aaa" in said
    assert "这个聊天还没有推送机器人" in said
    assert await targets(storage, boss.chat_id) == []
    # the same buttons again, and forged ones, are stale: answered, never a crash
    for data in (f"pu:rmok:{target.id}", f"pu:test:{target.id}", "pu:test:x", "pu:zap", "pu:rm"):
        (stale,) = await boss.press_data(data)
        assert stale.kind == "callback_answer"
        assert "这个按钮已失效" in (stale.text or "")


async def test_another_chats_target_cannot_be_touched(
    alice: ChatDriver, group: dict[str, ChatDriver], robots: RobotEmulator, storage: Storage
) -> None:
    boss = group["boss"]
    robots.register(Service.WECOM, WECOM_KEY)
    await boss.send(f"/push {WECOM_URL}")
    (target,) = await stores_for(storage).push.targets(boss.chat_id)
    await alice.send("/push")
    for data in (f"pu:rmok:{target.id}", f"pu:test:{target.id}"):
        (stale,) = await alice.press_data(data)
        assert "这个按钮已失效" in (stale.text or "")
    assert await targets(storage, boss.chat_id) == [Robot(Service.WECOM, WECOM_KEY)]
    assert len(robots.received(Service.WECOM, WECOM_KEY)) == 1


async def test_remove_by_number_and_usage(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage
) -> None:
    assert "这个聊天还没有推送机器人，没有可以删除的" in texts(await alice.send("/push remove 1"))
    robots.register(Service.WECOM, WECOM_KEY)
    await alice.send(f"/push {WECOM_URL}")
    said = texts(await alice.send("/push remove 5"))
    assert "没有第 5 个推送机器人：这个聊天共有 1 个" in said
    for number in ("two", "２", "9" * 23):
        assert "请写要删除的机器人编号" in texts(await alice.send(f"/push remove {number}"))
    assert await targets(storage, alice.chat_id) == [Robot(Service.WECOM, WECOM_KEY)]
    assert "已删除企业微信机器人 693a…5aaa" in texts(await alice.send("/push remove 1"))
    assert await targets(storage, alice.chat_id) == []
    usage = texts(await alice.send("/push help"))
    assert "/push Webhook地址 密钥" in usage
    assert "https://oapi.dingtalk.com/robot/send?access_token=…" in usage
    assert "“流量卡”" in usage


async def test_too_many_words_is_the_usage(alice: ChatDriver, robots: RobotEmulator) -> None:
    robots.register(Service.WECOM, WECOM_KEY)
    said = texts(await alice.send(f"/push {WECOM_URL} a b"))
    assert "支持的地址" in said
    assert robots.received(Service.WECOM, WECOM_KEY) == []


async def test_a_paused_target_is_shown_so_and_resumed_by_a_test_that_arrives(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage, clock: FixedClock
) -> None:
    robots.register(Service.FEISHU, FEISHU_HOOK)
    await alice.send(f"/push {FEISHU_URL}")
    (target,) = await stores_for(storage).push.targets(alice.chat_id)
    # the sender paused it: the key was refused once
    await stores_for(storage).reminders.pause_target(
        target.id, "invalid_key", at=clock.now(), day=clock.now().date(), notice=None
    )
    listed = texts(await alice.send("/push"))
    assert "⏸ 已暂停：机器人已失效" in listed
    later(clock, 61)
    said = texts(await alice.press("测试 1"))
    assert "已恢复向它推送" in said
    assert "⏸" not in said
    resumed = await stores_for(storage).push.target(target.id)
    assert resumed is not None
    assert not resumed.paused


async def test_reachable_from_settings_help_and_the_menu(
    alice: ChatDriver, app: AnyApplication, robots: RobotEmulator
) -> None:
    await alice.send("/settings")
    said = texts(await alice.press("推送到企业微信、钉钉、飞书"))
    assert "这个聊天还没有推送机器人" in said
    assert "/push Webhook地址" in said
    assert "/push — 把提醒也推送到企业微信、钉钉、飞书群" in texts(await alice.send("/help"))
    commands = await app.bot.get_my_commands(language_code="zh")
    menu = [(c.command, c.description) for c in commands]
    assert ("push", "推送到企业微信、钉钉、飞书群") in menu


async def test_nothing_of_a_token_reaches_the_database_but_service_and_token(
    alice: ChatDriver, robots: RobotEmulator, storage: Storage
) -> None:
    """The URL is never stored: only the service and the token (README)."""
    register_all(robots)
    await alice.send(f"/push {DINGTALK_URL}&timestamp=1&sign=abc {DINGTALK_SECRET}")
    rows = await fetch(storage, "SELECT service, token, secret FROM push_targets")
    assert rows == [("dingtalk", DINGTALK_TOKEN, DINGTALK_SECRET)]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_test_message_carries_the_keyword_and_no_markup_from_a_chat_name(lang: str) -> None:
    """A robot protected by the keyword 流量卡 takes it; a chat titled like a link or a mention
    cannot put one into the robot's group."""
    for name in ("门店群", '[优惠](https://evil.example) <at user_id="all"></at> **x**', None):
        message = probe_message(lang, name)
        assert "流量卡" in message.title
        assert "流量卡" in message.text
        for markup in ("](", "<at", "**x**"):
            assert markup not in message.text
