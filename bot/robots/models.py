"""What a push robot is: a service, the token its webhook URL carries, and the limits it keeps.

The token is the robot's only credential (whoever has it can post to the group), so it is
shown masked everywhere (``Robot.masked``) and never logged; ``repr`` masks it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Service(StrEnum):
    WECOM = "wecom"  # 企业微信 group robot
    DINGTALK = "dingtalk"  # 钉钉 custom robot
    FEISHU = "feishu"  # 飞书 custom bot
    LARK = "lark"  # Lark (Feishu abroad): the same API on another host


class Refusal(StrEnum):
    """Why a service refuses a robot for good (``Blocked.reason``): the target needs its owner,
    not a retry. DingTalk says only "security" (310000) whether the secret, the keyword or the
    IP allow-list refused it; Feishu says which."""

    INVALID_KEY = "invalid_key"  # no such robot (any more): removed, disabled, group dissolved
    SECURITY = "security"  # DingTalk 310000: secret, keyword or IP allow-list
    SIGNATURE = "signature"  # Feishu 19021: wrong secret (or a clock over an hour off)
    KEYWORD = "keyword"  # Feishu 19024: the message lacks the robot's keyword
    IP = "ip"  # Feishu 19022: the bot's address is not on the robot's allow-list


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """What one robot of a service accepts."""

    max_bytes: int  # what the size limit measures: see ``bot.robots.client.payload_size``
    interval: float  # seconds between two messages to one robot, whoever sends them


# WeCom and DingTalk: 20 messages a minute per robot; Feishu: 5 a second and 100 a minute.
# Messages go strictly spaced (no bursts): DingTalk blocks a robot for 10 minutes once it goes
# over, so the limit is never probed. The spacing is a little wider than 60/20 s so that clocks
# of two senders a few milliseconds apart still keep any 60 s window at 20.
LIMITS: dict[Service, ServiceLimits] = {
    Service.WECOM: ServiceLimits(max_bytes=4096, interval=3.05),  # markdown content, UTF-8
    Service.DINGTALK: ServiceLimits(max_bytes=20_000, interval=3.05),  # markdown text, UTF-8
    Service.FEISHU: ServiceLimits(max_bytes=20 * 1024, interval=0.61),  # whole request body
    Service.LARK: ServiceLimits(max_bytes=20 * 1024, interval=0.61),
}

MAX_TARGETS_PER_CHAT = 10


def mask(token: str) -> str:
    """A token as lists show it: enough to tell two apart, too little to use."""
    if len(token) <= 8:
        return "…" + token[-2:]
    return f"{token[:4]}…{token[-4:]}"


@dataclass(frozen=True, slots=True)
class Robot:
    """One robot, as its webhook URL names it. Shared by every chat that added the same URL:
    its rate budget (in the database) is the robot's, not a chat's."""

    service: Service
    token: str = field(repr=False)

    @property
    def masked(self) -> str:
        return mask(self.token)

    def __repr__(self) -> str:
        return f"Robot({self.service.value}, {self.masked})"


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A robot a chat's digests also go to."""

    id: int
    chat_id: int
    robot: Robot
    secret: str | None = field(repr=False)  # DingTalk 加签 / Feishu 签名校验, if the robot has one
    source_name: str | None  # the SimWatch chat's name, as the robot's messages name it
    added_at: datetime
    added_by: int | None
    paused_since: datetime | None = None  # the service refused the key: nothing goes out
    pause_reason: str | None = None
    last_at: datetime | None = None  # the last delivery (or test) and how it went
    last_result: str | None = None  # "ok", or the reason it failed

    @property
    def paused(self) -> bool:
        return self.paused_since is not None
