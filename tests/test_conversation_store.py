"""The conversation store on both backends: what is saved comes back as it was, and two
writers at once (two bot processes on one database) never mix or deadlock."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from conftest import NOW

from storage.base import Storage
from storage.conversations import ConversationKey, conversations_for
from storage.factory import open_storage

GROUP = -1001234567890  # a supergroup's id: more than 32 bits
ZHAO, QIAN = 7, 8_000_000_001  # user ids are 64-bit too


async def test_steps_and_drafts_come_back_as_saved(storage: Storage) -> None:
    store = conversations_for(storage)
    addcard = ConversationKey(GROUP, ZHAO, "addcard")
    renew = ConversationKey(GROUP, QIAN, "renew")
    own = ConversationKey(0, QIAN, "import.older")
    draft = bytes(range(256))  # any bytes, NUL included
    await store.save_conversations(
        {addcard: "2", renew: '"amount"'}, {addcard: draft, own: b"\x80\x05N."}, at=NOW
    )
    saved = await store.load_conversations()
    assert saved.states == {addcard: "2", renew: '"amount"'}
    assert saved.drafts == {addcard: draft, own: b"\x80\x05N."}

    # a step moves on, a conversation ends (its step and draft go), another one begins
    edit = ConversationKey(ZHAO, ZHAO, "edit")
    await store.save_conversations({addcard: "3", renew: None, edit: "0"}, {addcard: None}, at=NOW)
    saved = await store.load_conversations()
    assert saved.states == {addcard: "3", edit: "0"}
    assert saved.drafts == {own: b"\x80\x05N."}


async def test_keep_existing_leaves_what_is_there(storage: Storage) -> None:
    store = conversations_for(storage)
    kept, new = ConversationKey(ZHAO, ZHAO, "addcard"), ConversationKey(QIAN, QIAN, "addcard")
    await store.save_conversations({kept: "3"}, {kept: b"newer"}, at=NOW)
    await store.save_conversations(
        {kept: "1", new: "1"}, {kept: b"older", new: b"old"}, at=NOW, keep_existing=True
    )
    saved = await store.load_conversations()
    assert saved.states == {kept: "3", new: "1"}
    assert saved.drafts == {kept: b"newer", new: b"old"}


async def test_two_writers_at_once_neither_mix_nor_deadlock(
    storage: Storage, database_url: str | None, tmp_path: Path
) -> None:
    """Each save is whole: many saves of the same rows, from two connections to one database,
    in every order, end with all the rows of one of them."""
    other = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    try:
        stores = [conversations_for(storage), conversations_for(other)]
        keys = [ConversationKey(GROUP, user, "addcard") for user in range(1, 9)]
        shuffled = random.Random(14)

        async def save(writer: int) -> None:
            order = shuffled.sample(keys, len(keys))  # each writer its own order
            states = {key: str(writer) for key in order}
            drafts = {key: f"draft {writer}".encode() for key in order}
            await stores[writer % 2].save_conversations(states, drafts, at=NOW)

        await asyncio.gather(*(save(writer) for writer in range(40)))
        saved = await stores[0].load_conversations()
    finally:
        await other.close()
    assert len(set(saved.states.values())) == 1, saved.states
    (winner,) = set(saved.states.values())
    assert saved.drafts == dict.fromkeys(keys, f"draft {winner}".encode())
