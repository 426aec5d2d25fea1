"""What the WeCom bridge keeps in memory, and why memory is the right place for each.

Everything here is worth seconds to minutes and is WeCom's to forget too: a ``req_id`` may be
answered for a short while only, a file's download link expires, a card's button labels are
needed only to say which one was pressed. What must survive a restart (chats, people, the
lettered choices on offer, conversations) is in the database.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from bot.channels.bounded import Bounded
from bot.channels.wecom.pace import ChatPace

REPLY_WINDOW = 60.0  # seconds a message's req_id is used for the bot's answer (then unprompted)
EPOCH_MS = 1_767_225_600_000  # 2026-01-01 UTC: message ids count milliseconds from here


class MessageIds:
    """Message ids for a channel that has none of its own: strictly increasing, also across
    restarts (milliseconds of the real clock), so an old button never names a newer message."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, int(time.time() * 1000) - EPOCH_MS)
        return self._last


@dataclass
class ReplyWindow:
    """A person's message the bot may still answer as a reply (``aibot_respond_msg``)."""

    req_id: str
    user_id: int
    opened: float  # time.monotonic()
    used: bool = False  # WeCom takes one answer to a message; the rest go unprompted

    def open(self, now: float) -> bool:
        return now - self.opened < REPLY_WINDOW


# The window of the update being handled, set for its handlers' task by WeComUpdates.begin:
# what they send answers that update. A digest, a time-out or another chat's task has none.
CURRENT: ContextVar[ReplyWindow | None] = ContextVar("wecom_reply_window", default=None)


@dataclass(frozen=True)
class IncomingFile:
    """A file a person sent: where WeCom keeps it (encrypted) and its key."""

    url: str
    aeskey: str
    name: str


class BridgeState:
    """The short-lived facts the update source records and the request uses."""

    def __init__(self, pace: ChatPace | None = None) -> None:
        self.pace = pace if pace is not None else ChatPace()  # WeCom's limits per chat
        self.ids = MessageIds()
        self.windows: Bounded[int, ReplyWindow] = Bounded()  # by update id: not handled yet
        self.files: Bounded[str, IncomingFile] = Bounded()  # by file id
        # task id → (the card's title, key → button label): to say what was pressed
        self.cards: Bounded[str, tuple[str, dict[str, str]]] = Bounded()
        self.callback_chats: Bounded[str, int] = Bounded()  # a press's query id → its chat
        # the lettered choices last shown in each chat (the database has them per person;
        # this copy lets the test driver and the shell show a choice's data)
        self.choices: Bounded[int, list[tuple[str, str]]] = Bounded()
        # screens that failed part-way: (chat id, the screen's hash) → (parts delivered, when)
        self.partial: Bounded[tuple[int, str], tuple[int, float]] = Bounded()
        self._update_id = 0

    def next_update_id(self) -> int:
        self._update_id += 1
        return self._update_id

    @staticmethod
    def take_reply() -> str | None:
        """The req_id to answer the update being handled with (WeCom takes one reply to a
        message: used up by taking it); None outside an update's handling (a digest, a
        conversation's time-out) or once used."""
        window = CURRENT.get()
        if window is None or window.used or not window.open(time.monotonic()):
            return None
        window.used = True
        return window.req_id

    @staticmethod
    def replying_user() -> int:
        """Whom the update being handled came from (0: no update, e.g. a digest)."""
        window = CURRENT.get()
        return window.user_id if window is not None else 0
