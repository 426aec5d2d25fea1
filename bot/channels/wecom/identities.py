"""The channel store, with what never changes kept in memory.

A WeCom chat's id and address and a person's id do not change, and a group's administrator is
claimed once, so each is read from the database once per process; every message would otherwise cost
three to five round trips more than on Telegram (``bench/bench_wecom.py``). Menus are written
through, except an empty menu over one known to be empty (the common case: most messages
offer no numbered choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.channels.bounded import Bounded
from bot.chats import Channel, ChatAddress
from storage.channels import ChannelStore, Menu


class Identities:
    def __init__(self, store: ChannelStore) -> None:
        self.store = store
        self._chat_ids: Bounded[ChatAddress, int] = Bounded()
        self._addresses: Bounded[int, ChatAddress] = Bounded()
        self._user_ids: Bounded[str, int] = Bounded()
        self._claimed: Bounded[int, bool] = Bounded()  # groups whose administrator is set
        self._menus: Bounded[tuple[int, int], bool] = Bounded()  # (chat, user) → has options

    async def chat_id_for(self, address: ChatAddress, *, at: datetime) -> int:
        chat_id = self._chat_ids.get(address)
        if chat_id is None:
            chat_id = await self.store.chat_id_for(address, at=at)
            self._chat_ids[address] = chat_id
            self._addresses[chat_id] = address
        return chat_id

    async def chat_address(self, chat_id: int) -> ChatAddress | None:
        address = self._addresses.get(chat_id)
        if address is None:
            address = await self.store.chat_address(chat_id)
            if address is not None:
                self._addresses[chat_id] = address
        return address

    async def user_id_for(self, userid: str, *, at: datetime) -> int:
        user_id = self._user_ids.get(userid)
        if user_id is None:
            user_id = await self.store.user_id_for(Channel.WECOM, userid, name=None, at=at)
            self._user_ids[userid] = user_id
        return user_id

    async def user_address(self, user_id: int) -> tuple[Channel, str, str | None] | None:
        return await self.store.user_address(user_id)

    async def claim_group_admin(self, chat_id: int, user_id: int) -> None:
        """Once per group and process: a group has its administrator from then on."""
        if chat_id not in self._claimed:
            await self.store.claim_group_admin(chat_id, user_id)
            self._claimed[chat_id] = True

    async def group_admin(self, chat_id: int) -> int | None:
        # read through: /admin hands a group over (in any process); asked only on admin checks
        return await self.store.group_admin(chat_id)

    async def save_menu(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        options: Sequence[tuple[str, str]],
        *,
        at: datetime,
    ) -> None:
        key = (chat_id, user_id)
        unprompted = (chat_id, 0)
        # nothing on offer before, nothing now; and no digest's choices a newer row must hide
        if not options and self._menus.get(key) is False and self._menus.get(unprompted) is False:
            return
        await self.store.save_menu(chat_id, user_id, message_id, options, at=at)
        self._menus[key] = bool(options)

    async def menu(self, chat_id: int, user_id: int) -> Menu | None:
        return await self.store.menu(chat_id, user_id)
