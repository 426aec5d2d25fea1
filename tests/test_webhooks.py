"""Reading pasted webhook URLs and secrets: exactly the services' own forms, nothing else."""

from __future__ import annotations

import pytest

from bot.robots.models import Robot, Service
from bot.robots.webhooks import (
    WebhookError,
    WebhookProblem,
    check_secret,
    parse_webhook,
    webhook_url,
)

WECOM_KEY = "693a91f6-7a0c-4bc4-97a0-0e2c1f2a5aaa"
DING_TOKEN = "1f" * 32
HOOK_ID = "5e3d587e-d78e-4a07-bd07-265f269f86fd"

WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
DINGTALK = f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"
FEISHU = f"https://open.feishu.cn/open-apis/bot/v2/hook/{HOOK_ID}"
LARK = f"https://open.larksuite.com/open-apis/bot/v2/hook/{HOOK_ID}"


@pytest.mark.parametrize(
    ("pasted", "robot"),
    [
        (WECOM, Robot(Service.WECOM, WECOM_KEY)),
        (DINGTALK, Robot(Service.DINGTALK, DING_TOKEN)),
        (FEISHU, Robot(Service.FEISHU, HOOK_ID)),
        (LARK, Robot(Service.LARK, HOOK_ID)),
        # what chat clients and people wrap around a URL
        (f"  {WECOM}\n", Robot(Service.WECOM, WECOM_KEY)),
        (f"<{DINGTALK}>", Robot(Service.DINGTALK, DING_TOKEN)),
        (f"{FEISHU}.", Robot(Service.FEISHU, HOOK_ID)),
        (f"({LARK}),", Robot(Service.LARK, HOOK_ID)),
        (f"「{WECOM}」。", Robot(Service.WECOM, WECOM_KEY)),
        (f'"{DINGTALK}"', Robot(Service.DINGTALK, DING_TOKEN)),
        # the host in any case, the default port spelled out
        (
            WECOM.replace("qyapi.weixin.qq.com", "QYAPI.Weixin.QQ.com"),
            Robot(Service.WECOM, WECOM_KEY),
        ),
        (FEISHU.replace("open.feishu.cn", "open.feishu.cn:443"), Robot(Service.FEISHU, HOOK_ID)),
        ("HTTPS" + WECOM.removeprefix("https"), Robot(Service.WECOM, WECOM_KEY)),
        # other query parameters are ignored (never stored nor sent)
        (f"{DINGTALK}&timestamp=1599360473000&sign=abc%2B", Robot(Service.DINGTALK, DING_TOKEN)),
        (f"{WECOM}&debug=1", Robot(Service.WECOM, WECOM_KEY)),
        (f"{FEISHU}?from=share", Robot(Service.FEISHU, HOOK_ID)),
    ],
)
def test_accepted_forms(pasted: str, robot: Robot) -> None:
    assert parse_webhook(pasted) == robot


@pytest.mark.parametrize(
    ("pasted", "problem"),
    [
        ("", WebhookProblem.NOT_A_URL),
        ("qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + WECOM_KEY, WebhookProblem.NOT_A_URL),
        ("hello there", WebhookProblem.NOT_A_URL),
        (WECOM.replace("key=", "key= "), WebhookProblem.NOT_A_URL),
        (WECOM + "\x00", WebhookProblem.NOT_A_URL),
        (
            "https://qyapi。weixin。qq。com/cgi-bin/webhook/send?key=" + WECOM_KEY,
            WebhookProblem.NOT_A_URL,
        ),
        (
            "https://qyapi.weixin.qq.com\\@evil.cn/cgi-bin/webhook/send?key=" + WECOM_KEY,
            WebhookProblem.NOT_A_URL,
        ),
        (WECOM + "&x=" + "a" * 2100, WebhookProblem.NOT_A_URL),
        ("http" + WECOM.removeprefix("https"), WebhookProblem.NOT_HTTPS),
        ("ftp" + FEISHU.removeprefix("https"), WebhookProblem.NOT_HTTPS),
        # other hosts and lookalikes
        (
            WECOM.replace("qyapi.weixin.qq.com", "qyapi.weixin.qq.com.evil.cn"),
            WebhookProblem.UNKNOWN_HOST,
        ),
        (
            WECOM.replace("qyapi.weixin.qq.com", "evil-qyapi.weixin.qq.com"),
            WebhookProblem.UNKNOWN_HOST,
        ),
        (WECOM.replace("qyapi.weixin.qq.com", "qyapi.weixin.qq.com."), WebhookProblem.UNKNOWN_HOST),
        (DINGTALK.replace("oapi.dingtalk.com", "evil.cn"), WebhookProblem.UNKNOWN_HOST),
        (FEISHU.replace("open.feishu.cn", "open.feishu.cn@evil.cn"), WebhookProblem.UNKNOWN_HOST),
        (FEISHU.replace("open.feishu.cn", "user:pw@open.feishu.cn"), WebhookProblem.UNKNOWN_HOST),
        (FEISHU.replace("open.feishu.cn", "open.feishu.cn:8443"), WebhookProblem.UNKNOWN_HOST),
        (FEISHU.replace("open.feishu.cn", "open.feishu.cn:"), WebhookProblem.UNKNOWN_HOST),
        (WECOM.replace("qyapi.weixin.qq.com", "101.91.40.18"), WebhookProblem.UNKNOWN_HOST),
        (WECOM.replace("qyapi.weixin.qq.com", "[::1]"), WebhookProblem.UNKNOWN_HOST),
        (
            WECOM.replace("qyapi.weixin.qq.com", "qyapi%2Eweixin.qq.com"),
            WebhookProblem.UNKNOWN_HOST,
        ),
        (
            WECOM.replace("qyapi.weixin.qq.com", "%71yapi.weixin.qq.com"),
            WebhookProblem.UNKNOWN_HOST,
        ),
        # the right host, not the robot's path
        (WECOM.replace("/send", "/send/"), WebhookProblem.WRONG_PATH),
        (WECOM.replace("/cgi-bin/", "/cgi-bin/../cgi-bin/"), WebhookProblem.WRONG_PATH),
        (WECOM.replace("/cgi-bin/", "/./cgi-bin/"), WebhookProblem.WRONG_PATH),
        (WECOM.replace("/send", "/%73end"), WebhookProblem.WRONG_PATH),
        (DINGTALK.replace("/robot/send", "/robot/send/x"), WebhookProblem.WRONG_PATH),
        (DINGTALK.replace("/robot/send", "//robot/send"), WebhookProblem.WRONG_PATH),
        ("https://oapi.dingtalk.com?access_token=" + DING_TOKEN, WebhookProblem.WRONG_PATH),
        (FEISHU + "/extra", WebhookProblem.WRONG_PATH),
        (FEISHU.replace("/v2/", "/v1/"), WebhookProblem.WRONG_PATH),
        (FEISHU.replace("hook/", "hook/../hook/"), WebhookProblem.WRONG_PATH),
        (FEISHU + "#frag", WebhookProblem.WRONG_PATH),
        (WECOM.replace("qyapi.weixin.qq.com", "open.feishu.cn"), WebhookProblem.WRONG_PATH),
        # tokens
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send", WebhookProblem.NO_TOKEN),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=", WebhookProblem.NO_TOKEN),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?KEY=" + WECOM_KEY,
            WebhookProblem.NO_TOKEN,
        ),
        ("https://open.feishu.cn/open-apis/bot/v2/hook/", WebhookProblem.NO_TOKEN),
        (f"{WECOM}&key={WECOM_KEY}", WebhookProblem.BAD_TOKEN),
        (WECOM.replace(WECOM_KEY, "a" * 129), WebhookProblem.BAD_TOKEN),
        (WECOM.replace(WECOM_KEY, "short"), WebhookProblem.BAD_TOKEN),
        (WECOM.replace(WECOM_KEY, WECOM_KEY + "%2F"), WebhookProblem.BAD_TOKEN),
        (WECOM.replace(WECOM_KEY, WECOM_KEY + "'or'1"), WebhookProblem.BAD_TOKEN),
        (DINGTALK.replace(DING_TOKEN, "xyz" * 20), WebhookProblem.BAD_TOKEN),
        (FEISHU.replace(HOOK_ID, "a" * 200), WebhookProblem.BAD_TOKEN),
        (FEISHU.replace(HOOK_ID, HOOK_ID + "%20"), WebhookProblem.WRONG_PATH),
    ],
)
def test_hostile_forms_refused(pasted: str, problem: WebhookProblem) -> None:
    with pytest.raises(WebhookError) as caught:
        parse_webhook(pasted)
    assert caught.value.reason is problem
    # the error never quotes what was pasted: it may hold a token
    for token in (WECOM_KEY, DING_TOKEN, HOOK_ID):
        assert token not in str(caught.value)


def test_secrets() -> None:
    ding_secret = "SEC" + "0a1b" * 16
    assert check_secret(Service.DINGTALK, f" {ding_secret} ") == ding_secret
    assert check_secret(Service.FEISHU, "nIMtb7r3N9pkXyXdtAbx6e") == "nIMtb7r3N9pkXyXdtAbx6e"
    assert check_secret(Service.LARK, "nIMtb7r3N9pkXyXdtAbx6e") == "nIMtb7r3N9pkXyXdtAbx6e"
    refused = [
        (Service.WECOM, ding_secret, WebhookProblem.SECRET_NOT_USED),
        (Service.DINGTALK, "0a1b" * 16, WebhookProblem.BAD_SECRET),  # no SEC
        (Service.DINGTALK, "SEC", WebhookProblem.BAD_SECRET),
        (Service.DINGTALK, "SEC" + "a" * 200, WebhookProblem.BAD_SECRET),
        (Service.DINGTALK, "SEC 0a1b0a1b0a1b0a1b0a1b", WebhookProblem.BAD_SECRET),
        (Service.FEISHU, "short", WebhookProblem.BAD_SECRET),
        (Service.FEISHU, "nIMtb7r3N9pkX/yXdtAbx6e", WebhookProblem.BAD_SECRET),
        (Service.LARK, "", WebhookProblem.BAD_SECRET),
    ]
    for service, secret, problem in refused:
        with pytest.raises(WebhookError) as caught:
            check_secret(service, secret)
        assert caught.value.reason is problem, (service, secret)
        if len(secret) > 8:
            assert secret.strip() not in str(caught.value)


@pytest.mark.parametrize("service", list(Service))
def test_the_url_of_a_robot_reads_back_as_that_robot(service: Service) -> None:
    token = "0123456789abcdef0123456789abcdef"
    robot = Robot(service, token)
    assert parse_webhook(webhook_url(robot)) == robot
