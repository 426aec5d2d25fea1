"""python-telegram-bot's ``PicklePersistence``, made crash-safe.

PTB rewrites the file in place every few seconds: a kill during a write leaves it truncated,
and the next start fails (``EOFError`` inside a ``TypeError``). Here a write goes to a
temporary file that replaces the old one only once it is complete and on disk
(``bot.files.atomic_write``), and a damaged file no longer stops the bot: it starts with no
conversation in progress, says so once in the log, and keeps the damaged file aside
(``….damaged``) for a look.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, BinaryIO

from telegram.ext import PicklePersistence

from bot.files import atomic_write

log = logging.getLogger(__name__)


class SafePicklePersistence(PicklePersistence[Any, Any, Any]):
    """``PicklePersistence`` (single file) with atomic writes and a damaged file set aside."""

    _damaged = False  # the file was found damaged: start (and stay) without it

    def _load_singlefile(self) -> None:
        try:
            if self._damaged:
                raise FileNotFoundError(self.filepath)  # PTB loads lazily, more than once
            super()._load_singlefile()
        except FileNotFoundError:
            self._empty()
        except TypeError as exc:  # PTB's wrapping of any unpickling failure
            self._damaged = True
            aside = self.filepath.with_name(self.filepath.name + ".damaged")
            try:
                self.filepath.replace(aside)
            except OSError as error:  # then the next write replaces it
                aside = self.filepath
                log.warning("could not set %s aside: %s", self.filepath, error)
            log.warning(
                "the conversations file %s was damaged (%s); starting without conversations "
                "in progress, the damaged file is kept as %s",
                self.filepath,
                exc.__cause__ or exc,
                aside,
            )
            self._empty()

    def _empty(self) -> None:
        self.conversations = {}
        self.user_data = {}
        self.chat_data = {}
        self.bot_data = self.context_types.bot_data()
        self.callback_data = None

    def _dump_singlefile(self) -> None:
        data = {
            "conversations": self.conversations,
            "user_data": self.user_data,
            "chat_data": self.chat_data,
            "bot_data": self.bot_data,
            "callback_data": self.callback_data,
        }
        atomic_write(self.filepath, lambda file: self._pickle(file, data))

    def _pickle(self, file: BinaryIO, data: object) -> None:
        from telegram.ext._picklepersistence import _BotPickler  # PTB's own pickler

        _BotPickler(self.bot, file, protocol=pickle.HIGHEST_PROTOCOL).dump(data)
