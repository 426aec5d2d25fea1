"""A simulated person in WeCom chatting with the real bot: for tests, the shell and benchmarks.

The twin of ``bot.chatdriver.ChatDriver`` (same methods, same ``ChatEvent`` records), so a
conversation test runs on both channels. What the person does goes to the local WeCom
emulator (``bot.wecom.emulator``), over the real long connection to the bot, through the
bridge into the real handlers; what the bot answers comes back the same way. A screen the bot
sends as markdown plus a card (two WeCom messages when unprompted) is one event with the
card's buttons; lettered choices are buttons whose press is typing the letter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.channels import choices
from bot.channels.wecom.identities import Identities
from bot.channels.wecom.inbound import WeComUpdates
from bot.channels.wecom.markdown import shown
from bot.chatdriver import NoSuchButtonError
from bot.chats import Channel, ChatAddress, ChatKind
from bot.emulator.markup import Button
from bot.emulator.records import ChatEvent, StoredFile
from bot.wecom.emulator import WeComEmulator, WeComEvent


@dataclass
class Screen:
    """A bot message as the person sees it, and how to press its buttons."""

    event: ChatEvent
    task_id: str | None = None  # the card holding the buttons, if any
    lettered: bool = False  # the buttons are lettered lines: pressing one is typing its letter
    pressed_by: set[str] = field(default_factory=set)  # whose card view lost its buttons


@dataclass
class WeComChatDriver:
    emulator: WeComEmulator
    updates: WeComUpdates
    store: Identities
    chat_id: int  # the chat's SimWatch id (``ChannelStore.chat_id_for``)
    userid: str
    chatid: str | None = None  # a group's chatid; None: the single chat with ``userid``
    screens: list[Screen] = field(default_factory=list)
    user_id: int | None = None  # the person's SimWatch id, once known (``open``)

    @property
    def user(self) -> dict[str, Any]:
        """The person as the handlers see them (``ChatDriver.user``'s shape)."""
        return {"id": self.user_id, "first_name": self.userid}

    @classmethod
    async def open(
        cls,
        emulator: WeComEmulator,
        updates: WeComUpdates,
        store: Identities,
        userid: str,
        chatid: str | None = None,
    ) -> WeComChatDriver:
        kind = ChatKind.GROUP if chatid else ChatKind.PRIVATE
        address = ChatAddress(Channel.WECOM, kind, chatid or userid)
        now = datetime.now(UTC)
        chat_id = await store.chat_id_for(address, at=now)
        user_id = await store.user_id_for(userid, at=now)
        return cls(emulator, updates, store, chat_id, userid, chatid, user_id=user_id)

    @property
    def chat(self) -> tuple[str, str]:
        return ("group", self.chatid) if self.chatid else ("single", self.userid)

    @property
    def is_group(self) -> bool:
        return self.chatid is not None

    def as_user(self, userid: str) -> WeComChatDriver:
        """The same chat, someone else typing (group members)."""
        return WeComChatDriver(
            self.emulator, self.updates, self.store, self.chat_id, userid, self.chatid, self.screens
        )

    async def after(self, act: Any) -> list[ChatEvent]:
        before = self.updates.handled
        await act
        await self.updates.wait_handled(before + 1)
        await self.updates.application.update_queue.join()
        return self.collect()

    @property
    def app(self) -> Any:
        """The WeCom channel's application (its job queue runs the conversations' timers)."""
        return self.updates.application

    def take_events(self) -> list[ChatEvent]:
        """What the bot did in this chat that no call returned yet (a timer's message)."""
        return self.collect()

    def collect(self) -> list[ChatEvent]:
        """What the bot did in this chat since last asked, as the person sees it."""
        events: list[ChatEvent] = []
        for item in self.emulator.take_events(self.chat):
            event = self._event(item, events)
            if event is not None:
                events.append(event)
        return events

    def _event(self, item: WeComEvent, so_far: list[ChatEvent]) -> ChatEvent | None:
        if item.kind == "update":  # the pressed card's own acknowledgement
            return None
        if item.file is not None:
            name, content = item.file
            caption = None  # WeCom files have none: the bridge sends it just before the file
            if so_far and so_far[-1].kind == "message" and not so_far[-1].buttons:
                caption = so_far.pop().text
            if item.body.get("msgtype") == "image":
                photo = StoredFile(name, name, name, content, kind="photo", filename=name)
                return ChatEvent("photo", self.chat_id, None, text=caption, file=photo)
            document = StoredFile(name, name, name, content, filename=name)
            return ChatEvent("document", self.chat_id, None, text=caption, file=document)
        buttons: list[list[Button]] = []
        task_id = None
        if item.card is not None:
            task_id = item.card.get("task_id")
            buttons = [
                [Button(str(b.get("text")), str(b.get("key")))]
                for b in item.card.get("button_list") or []
            ]
        text = shown(item.markdown) if item.markdown else None
        if text is None and buttons and so_far and so_far[-1].kind == "message":
            # an unprompted screen: its markdown, then its card as a message of its own
            previous = so_far.pop()
            merged = ChatEvent("message", self.chat_id, None, text=previous.text, buttons=buttons)
            self.screens.append(Screen(merged, task_id))
            return merged
        lettered = False
        offered = self.updates.state.choices.get(self.chat_id, [])
        if item.card is None and text is not None and offered:
            last = text.rsplit("\n", 1)[-1]
            final = choices.code(len(offered) - 1, len(offered))
            if last.startswith(f"{final}. "):  # the screen ends with the lettered choices
                buttons = [[Button(label, data)] for label, data in offered]
                lettered = True
        event = ChatEvent("message", self.chat_id, None, text=text, buttons=buttons)
        self.screens.append(Screen(event, task_id, lettered))
        return event

    # --- what the person does --------------------------------------------------------------

    async def send(self, text: str) -> list[ChatEvent]:
        """Type ``text`` (in a group, WeCom sends it with the robot's mention)."""
        return await self.after(self.emulator.send_text(self.userid, text, chatid=self.chatid))

    async def send_document(
        self, filename: str, content: bytes, caption: str | None = None
    ) -> list[ChatEvent]:
        """Send a file. WeCom files carry no caption: a caption is typed first, as a WeCom user
        would ("/import", then the file)."""
        said = await self.send(caption) if caption else []
        act = self.emulator.send_file(self.userid, filename, content, chatid=self.chatid)
        return said + await self.after(act)

    def find_button(self, label: str) -> tuple[Screen, str]:
        """The newest screen with a button whose text contains ``label`` (or whose data is)."""
        for screen in reversed(self.screens):
            if self.userid in screen.pressed_by:
                continue
            for row in screen.event.buttons:
                for text, data in row:
                    if data is not None and (label in text or label == data):
                        return screen, data
        raise NoSuchButtonError(f"no button {label!r} in WeCom chat {self.chat}")

    async def press(self, label: str) -> list[ChatEvent]:
        """Click the button labelled ``label``, or answer its number."""
        screen, data = self.find_button(label)
        return await self._press(screen, data)

    async def press_data(self, data: str, message_id: int | None = None) -> list[ChatEvent]:
        """Press the newest button with exactly this data (a stale one, on an older screen).
        WeCom's clicks carry the keys of the card clicked: no other data can be forged."""
        for screen in reversed(self.screens):
            if self.userid in screen.pressed_by:
                continue
            if any(data == button_data for row in screen.event.buttons for _, button_data in row):
                return await self._press(screen, data)
        raise NoSuchButtonError(f"no button with data {data!r} in WeCom chat {self.chat}")

    async def _press(self, screen: Screen, data: str) -> list[ChatEvent]:
        if screen.lettered:
            datas = [button_data for row in screen.event.buttons for _, button_data in row]
            return await self.send(choices.code(datas.index(data), len(datas)))
        assert screen.task_id is not None
        act = self.emulator.click(self.userid, screen.task_id, data, chatid=self.chatid)
        # the bot replaces a clicked card at once, for whoever clicked it
        screen.pressed_by.add(self.userid)
        return await self.after(act)
