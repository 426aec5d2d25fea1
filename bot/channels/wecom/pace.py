"""WeCom's per-conversation limits, kept on our side: about 30 messages a minute and 1,000 an
hour to one chat, replies and pushes together (``bot.wecom.limits``).

Every message the bridge sends to a chat first passes its chat's two budgets (aiolimiter's
leaky buckets). Under the minute's, a reply waits the few seconds it takes rather than being
refused and lost; past the hour's, the bridge answers like Telegram's flood control
(``RetryAfter``), so the reminder sender leaves the message for later.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter

from bot.channels.bounded import Bounded
from bot.wecom.limits import CHAT_PER_HOUR, CHAT_PER_MINUTE

PER_MINUTE = CHAT_PER_MINUTE - 2  # a margin for clocks that disagree with WeCom's
PER_HOUR = CHAT_PER_HOUR - 20
HOUR_RETRY_SECONDS = 300


class ChatPace:
    def __init__(self, per_minute: float = PER_MINUTE, per_hour: float = PER_HOUR) -> None:
        self.per_minute, self.per_hour = per_minute, per_hour
        self._chats: Bounded[int, tuple[AsyncLimiter, AsyncLimiter]] = Bounded()

    def _limiters(self, chat_id: int) -> tuple[AsyncLimiter, AsyncLimiter]:
        limiters = self._chats.get(chat_id)
        if limiters is None:
            limiters = (AsyncLimiter(self.per_minute, 60), AsyncLimiter(self.per_hour, 3600))
            self._chats[chat_id] = limiters
        return limiters

    async def wait(self, chat_id: int) -> None:
        """Until one more message to the chat is within WeCom's limits; ``RetryAfter`` if
        that would take more than the minute's wait."""
        minute, hour = self._limiters(chat_id)
        if not hour.has_capacity():
            raise RetryAfter(HOUR_RETRY_SECONDS)
        await hour.acquire()
        await minute.acquire()


class NoPace(ChatPace):
    """No limits of our own (tests and benchmarks against an emulator told not to limit)."""

    async def wait(self, chat_id: int) -> None:
        return None
