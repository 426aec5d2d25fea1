-- Conversations in progress (python-telegram-bot's persistence), in the database rather than a
-- pickle file next to it: where each person is in a conversation, and their draft. Written
-- after every update, so a crash loses at most the step being answered. Keyed per
-- (chat, user, conversation), as the coming channels namespace chats and people; no foreign
-- key to chats: a group's move to a supergroup leaves its old rows unused, never blocked.

-- The step: `name` is the conversation (addcard, renew, edit, settings, import, reminders),
-- `state` its step as JSON (an integer today).
CREATE TABLE conversations (
    chat_id    INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (chat_id, user_id, name)
) WITHOUT ROWID;

-- The person's drafts (their `user_data`): `name` is the conversation whose draft it is in
-- that chat; chat 0 holds what is the person's own rather than one chat's (the rows an import
-- left as older, kept per chat inside). `draft` is opaque to SQL (python's pickle of it).
CREATE TABLE conversation_drafts (
    chat_id    INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    draft      BLOB    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (chat_id, user_id, name)
) WITHOUT ROWID;
