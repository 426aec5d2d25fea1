"""Updates of different chats run concurrently; updates of one chat run one at a time, in order.

python-telegram-bot handles one update at a time unless told otherwise, so a multi-second
``/import`` in one chat held up every other chat. Running everything concurrently would break
what depends on the order of a chat's updates: a conversation's steps (``ConversationHandler``
keys its state by chat and user and expects them one by one), drafts, stale-button checks.

So each chat has a lane: the first update of an idle chat runs at once and then runs, in
arrival order, whatever else of that chat arrived meanwhile. Waiting updates are queued in the
lane, not parked on the processor's semaphore, so one busy (or flooding) chat occupies one of
the ``MAX_CONCURRENT_UPDATES`` slots and never all of them. A lane is dropped as soon as it is
empty, so the table only ever holds chats with work in progress.

Arrival order is kept because PTB starts one task per update in the order the updates were
fetched, and each task reaches :meth:`do_process_update` in that order: the semaphore in
``BaseUpdateProcessor.process_update`` does not suspend while a slot is free and wakes its
waiters first in, first out; the lane is chosen without any ``await`` in between.

Why conversations stay safe although PTB's docs say ``ConversationHandler`` wants updates one by
one (PTB 22 only documents this; it emits no warning): our conversations are keyed by chat and
user (``handlers.conversation``, per_message off), so every step of one lies in one chat's lane.
A person's ``user_data`` is shared by their chats, but drafts in it are keyed per chat
(``conversation.scratch``) and ``/cancel`` drops only its own chat's. Idle timeouts run from
the JobQueue, concurrently with updates, exactly as before.

Stopping the application while updates are still queued makes PTB warn, once per update, that
"Tasks created via `Application.create_task` while the application is not running won't be
automatically awaited". They are processed all the same: an update queued behind a busy chat
is counted done by PTB's update queue at once, but the task running that chat's lane works
through it, and ``Application.stop`` waits for every task it created before it returns.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

# Chats served at the same time. Each waits mostly on Telegram's HTTP API and on the single
# SQLite connection (which serialises transactions itself), so more would only queue there.
MAX_CONCURRENT_UPDATES = 64


def lane_key(update: object) -> int | None:
    """Whose order an update belongs to: its chat; else its user (an inline button pressed
    without a chat, whose id is also the user's private chat id); else nobody (runs freely)."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """``ApplicationBuilder().concurrent_updates(PerChatUpdateProcessor())``: concurrent across
    chats, strictly sequential within a chat."""

    __slots__ = ("_lanes",)

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        # chat -> updates of that chat waiting behind the one being processed
        self._lanes: dict[int, deque[Awaitable[Any]]] = {}

    @property
    def busy_chats(self) -> dict[int, int]:
        """A snapshot: chats with an update in progress -> how many more of theirs wait."""
        return {key: len(waiting) for key, waiting in self._lanes.items()}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = lane_key(update)
        if key is None:
            await coroutine
            return
        waiting = self._lanes.get(key)
        if waiting is not None:
            # The chat is busy: the task running it will run this one next. Returning frees
            # this task's concurrency slot for other chats meanwhile.
            waiting.append(coroutine)
            return
        waiting = self._lanes[key] = deque()
        try:
            await self._run(key, coroutine)
            while waiting:
                await self._run(key, waiting.popleft())
        finally:
            # No await between the last emptiness check and this: nothing can slip in between.
            del self._lanes[key]
            for dropped in waiting:  # only when cancelled (a hard shutdown)
                log.warning("chat %s: an update was dropped unprocessed at shutdown", key)
                if inspect.iscoroutine(dropped):
                    dropped.close()  # never awaited; closing avoids a RuntimeWarning

    @staticmethod
    async def _run(key: int, coroutine: Awaitable[Any]) -> None:
        try:
            await coroutine
        except Exception:
            # Application.process_update already hands handler errors to the error handlers;
            # anything reaching here must not stop this chat's later updates.
            log.exception("chat %s: processing an update failed", key)

    async def initialize(self) -> None:
        """Nothing to set up: lanes are made on demand."""

    async def shutdown(self) -> None:
        """Nothing to free: Application.stop() waits for the running updates, which drain and
        drop their lanes."""
