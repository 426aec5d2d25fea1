"""A chat's identity: which channel it is on, whether a person or a group, and its address there.

``chats.chat_id`` is the internal key every table uses. A Telegram chat keeps its Telegram id as
that key (its address is the id as text); a chat of any other channel gets a key allocated from
``FOREIGN_ID_BASE`` upward. The Bot API promises Telegram ids fit in 52 significant bits, so the
two ranges never meet, and no address of another channel can ever name a Telegram chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Chat and user ids of channels other than Telegram start here (Telegram's stay below 2**52).
FOREIGN_ID_BASE = 2**53


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WECOM = "wecom"  # 企业微信


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"

    @classmethod
    def of(cls, is_group: bool) -> ChatKind:
        return cls.GROUP if is_group else cls.PRIVATE

    @property
    def is_group(self) -> bool:
        return self is ChatKind.GROUP


@dataclass(frozen=True)
class ChatAddress:
    """Where a chat is: its channel, its kind and its address in that channel (a Telegram chat
    id as text, a WeCom user or group chat id)."""

    channel: Channel
    kind: ChatKind
    address: str


def telegram_chat_id(address: str) -> int:
    """The Telegram chat id an address of a Telegram chat stands for; ``ValueError`` if it is
    not one (not an integer, or outside Telegram's range)."""
    try:
        chat_id = int(address)
    except ValueError:
        chat_id = FOREIGN_ID_BASE
    if not -FOREIGN_ID_BASE < chat_id < FOREIGN_ID_BASE or str(chat_id) != address:
        raise ValueError(f"not a Telegram chat id: {address!r}")
    return chat_id
