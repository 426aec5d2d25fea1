"""python-telegram-bot's persistence over the database: conversations survive a crash.

Where each person is in a conversation (``ConversationHandler`` states) and their drafts
(``user_data``, where ``handlers.conversation.scratch`` keeps them) are kept in the database's
conversation tables (``storage.conversations``), for SQLite and PostgreSQL alike. They are
written after every update, the update's changes in one transaction (``FLUSH_HANDLER``, in the
last handler group), so a ``kill -9`` loses at most the step being answered. Only what changed
is written: a person's unchanged drafts cost no write.

A row that cannot be read back (a draft of a class a newer SimWatch renamed, a damaged row) is
skipped with one log line and dropped, and the bot starts all the same; a damaged draft drops
its conversation's step too, so that person starts that conversation afresh rather than
carrying on without what they had typed.

Before this, the conversations were PTB's pickle next to the SQLite file: on the first start
that finds one, it is imported once (rows already in the database win) and renamed
``….imported``; a damaged one is set aside as ``….damaged`` with one log line, as before.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import pickle
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import BasePersistence, PersistenceInput, TypeHandler
from telegram.ext._picklepersistence import _BotPickler, _BotUnpickler  # PTB's own pickler
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from handlers.common import Context
from storage.conversations import OWN_CHAT, ConversationStore
from storage.conversations import ConversationKey as RowKey

log = logging.getLogger(__name__)

Data = dict[Any, Any]
StoreOpener = Callable[[], Awaitable[ConversationStore]]
FLUSH_GROUP = 1_000  # after every other handler group: the update's changes are all made
_PER_CHAT = re.compile(r"^(?P<name>.+):(?P<chat>-?\d+)$")  # conversation.scratch's keys


def draft_row(user_id: int, key: str) -> RowKey:
    """Where a ``user_data`` entry is kept: ``addcard:<chat>`` is that chat's addcard draft;
    any other key is the person's own (chat 0)."""
    match = _PER_CHAT.match(key)
    if match is None:
        return RowKey(OWN_CHAT, user_id, key)
    return RowKey(int(match["chat"]), user_id, match["name"])


def draft_key(row: RowKey) -> str:
    return row.name if row.chat_id == OWN_CHAT else f"{row.name}:{row.chat_id}"


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    """Conversation states and ``user_data`` in a ``ConversationStore``.

    ``open_store`` gives the store when PTB first loads (``Application.initialize``), so the
    database may be opened then. ``old_file``: the pickle file of earlier versions, imported
    once if it is there.
    """

    def __init__(
        self,
        open_store: StoreOpener,
        *,
        old_file: Path | None = None,
        update_interval: float = 60,
    ) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, chat_data=False, callback_data=False),
            update_interval=update_interval,
        )
        self._open_store = open_store
        self._old_file = old_file
        self._store: ConversationStore | None = None
        self._load_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._states: dict[str, dict[ConversationKey, object]] | None = None
        self._user_data: dict[int, Data] = {}
        # What the database holds once the pending writes are done: each person's drafts.
        self._kept: dict[int, dict[RowKey, bytes]] = {}
        self._pending_states: dict[RowKey, str | None] = {}
        self._pending_drafts: dict[RowKey, bytes | None] = {}
        self._failing = False  # the last write failed (said once, until one succeeds)

    # --- loading -----------------------------------------------------------------------------

    async def _load(self) -> dict[str, dict[ConversationKey, object]]:
        async with self._load_lock:
            if self._states is None:
                self._store = store = await self._open_store()
                if self._old_file is not None:
                    await self._import_old_file(store, self._old_file)
                self._states = await self._read(store)
            return self._states

    async def _read(self, store: ConversationStore) -> dict[str, dict[ConversationKey, object]]:
        saved = await store.load_conversations()
        states: dict[str, dict[ConversationKey, object]] = {}
        for row, drafted in saved.drafts.items():
            try:
                value = self._unpickle(drafted)
            except Exception as exc:  # anything a damaged or outdated pickle raises
                self._skip(row, "draft", exc)
                self._pending_drafts[row] = None
                if row.chat_id != OWN_CHAT and row in saved.states:
                    del saved.states[row]  # no step without its draft: start afresh
                    self._pending_states[row] = None
                continue
            self._user_data.setdefault(row.user_id, {})[draft_key(row)] = value
            self._kept.setdefault(row.user_id, {})[row] = drafted
        for row, text in saved.states.items():
            try:
                state = json.loads(text)
            except ValueError as exc:
                self._skip(row, "step", exc)
                self._pending_states[row] = None
                continue
            states.setdefault(row.name, {})[(row.chat_id, row.user_id)] = state
        if self._pending_states or self._pending_drafts:
            await self.flush()  # the damaged rows go, so they are reported once
        return states

    @staticmethod
    def _skip(row: RowKey, what: str, exc: Exception) -> None:
        log.warning(
            "the %s of user %s's %s conversation in chat %s could not be read (%s: %s); "
            "skipped: that conversation starts afresh",
            what,
            row.user_id,
            row.name,
            row.chat_id,
            type(exc).__name__,
            exc,
        )

    async def _import_old_file(self, store: ConversationStore, path: Path) -> None:
        """Earlier versions' pickle file, once: into the database, then renamed ….imported."""
        try:
            with path.open("rb") as file:
                data = _BotUnpickler(self.bot, file).load()
            conversations: dict[str, dict[Any, object]] = data["conversations"]
            user_data: dict[int, Data] = data["user_data"]
        except FileNotFoundError:
            return
        except Exception as exc:  # a truncated or garbled file: as before, set it aside
            aside = self._set_aside(path, ".damaged")
            log.warning(
                "the conversations file %s was damaged (%s: %s); starting without the "
                "conversations it held, the damaged file is kept as %s",
                path,
                type(exc).__name__,
                exc,
                aside,
            )
            return
        states: dict[RowKey, str | None] = {}
        for name, kept in conversations.items():
            for key, state in kept.items():
                row = self._state_row(name, key)
                text = self._state_text(name, key, state)
                if row is not None and text is not None:
                    states[row] = text
        drafts: dict[RowKey, bytes | None] = {}
        for user_id, values in user_data.items():
            drafts.update(self._draft_rows(user_id, values))
        await store.save_conversations(states, drafts, at=datetime.now(UTC), keep_existing=True)
        aside = self._set_aside(path, ".imported")
        log.info(
            "imported %d conversations in progress from %s into the database (the file is "
            "kept as %s)",
            len(states),
            path,
            aside,
        )

    @staticmethod
    def _set_aside(path: Path, suffix: str) -> Path:
        aside = path.with_name(path.name + suffix)
        try:
            path.replace(aside)
        except OSError as error:
            log.warning("could not rename %s to %s: %s", path, aside, error)
            return path
        return aside

    # --- what PTB reads at start-up --------------------------------------------------------

    async def get_user_data(self) -> dict[int, Data]:
        await self._load()
        loaded, self._user_data = self._user_data, {}
        return loaded

    async def get_chat_data(self) -> dict[int, Data]:
        return {}

    async def get_bot_data(self) -> Data:
        return {}

    async def get_callback_data(self) -> CDCData | None:
        return None

    async def get_conversations(self, name: str) -> ConversationDict:
        states = await self._load()
        return states.pop(name, {})

    # --- what PTB writes (update_persistence): recorded, then written in one transaction -------

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        row = self._state_row(name, key)
        if row is None:
            return
        if new_state is None:
            self._pending_states[row] = None
        else:
            text = self._state_text(name, key, new_state)
            if text is None:
                return
            self._pending_states[row] = text
        await self._write_soon()

    async def update_user_data(self, user_id: int, data: Data) -> None:
        rows = self._draft_rows(user_id, data)
        kept = self._kept.setdefault(user_id, {})
        changed = False
        for row in [row for row in kept if row not in rows]:
            del kept[row]
            self._pending_drafts[row] = None
            changed = True
        for row, pickled in rows.items():
            if pickled is not None and kept.get(row) != pickled:
                kept[row] = pickled
                self._pending_drafts[row] = pickled
                changed = True
        if not kept:
            del self._kept[user_id]
        if changed:
            await self._write_soon()

    async def drop_user_data(self, user_id: int) -> None:
        for row in self._kept.pop(user_id, {}):
            self._pending_drafts[row] = None
        await self._write_soon()

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        pass

    async def update_bot_data(self, data: Data) -> None:
        pass

    async def update_callback_data(self, data: CDCData) -> None:
        pass

    async def drop_chat_data(self, chat_id: int) -> None:
        pass

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        pass  # this process holds the live data; the database is written from it

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        pass

    async def refresh_bot_data(self, bot_data: Data) -> None:
        pass

    async def _write_soon(self) -> None:
        # PTB hands over one update's changes in concurrent calls (asyncio.gather): let them
        # all be recorded first, so the first call writes them in one transaction.
        await asyncio.sleep(0)
        await self.flush()

    async def flush(self) -> None:
        """Write what is pending, in one transaction. A failure is logged (once until a write
        succeeds again) and kept pending for the next try: answering people goes on."""
        async with self._write_lock:
            if self._store is None or not (self._pending_states or self._pending_drafts):
                return
            states, self._pending_states = self._pending_states, {}
            drafts, self._pending_drafts = self._pending_drafts, {}
            try:
                await self._store.save_conversations(states, drafts, at=datetime.now(UTC))
            except Exception as exc:
                # newer changes recorded meanwhile win over these
                self._pending_states = {**states, **self._pending_states}
                self._pending_drafts = {**drafts, **self._pending_drafts}
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "conversations in progress could not be saved (%s: %s); they are "
                        "kept in memory and saved with the next update",
                        type(exc).__name__,
                        exc,
                    )
                return
            if self._failing:
                self._failing = False
                log.info("conversations in progress are saved again")

    # --- rows ----------------------------------------------------------------------------------

    @staticmethod
    def _state_row(name: str, key: object) -> RowKey | None:
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, int) for part in key):
            return RowKey(key[0], key[1], name)
        log.warning("conversation %s: key %r is not (chat, user); not kept", name, key)
        return None

    @staticmethod
    def _state_text(name: str, key: object, state: object) -> str | None:
        try:
            return json.dumps(state)
        except (TypeError, ValueError):
            log.warning("conversation %s: state %r of %r is not JSON; not kept", name, state, key)
            return None

    def _draft_rows(self, user_id: int, data: Data) -> dict[RowKey, bytes | None]:
        rows: dict[RowKey, bytes | None] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                log.warning("user_data key %r of user %s is not text; not kept", key, user_id)
                continue
            try:
                rows[draft_row(user_id, key)] = self._pickle(value)
            except Exception as exc:  # pickle raises whatever the object's reduce raises
                log.warning(
                    "user_data %r of user %s cannot be kept (%s: %s)",
                    key,
                    user_id,
                    type(exc).__name__,
                    exc,
                )
        return rows

    def _pickle(self, value: object) -> bytes:
        buffer = io.BytesIO()
        _BotPickler(self.bot, buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return buffer.getvalue()

    def _unpickle(self, data: bytes) -> object:
        return _BotUnpickler(self.bot, io.BytesIO(data)).load()


async def flush_after_update(update: Update, context: Context) -> None:
    """The last handler of every update: what it changed is written now, not seconds later.

    PTB marks a person's ``user_data`` for writing only after the handlers are done; this runs
    among them, so it marks it itself."""
    application = context.application
    if application.persistence is None:
        return
    user = update.effective_user
    if user is not None:
        application.mark_data_for_update_persistence(user_ids=user.id)
    await application.update_persistence()


FLUSH_HANDLER = TypeHandler(Update, flush_after_update)
