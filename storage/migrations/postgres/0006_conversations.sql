-- Conversations in progress (PostgreSQL; mirrors ../0006_conversations.sql): where each person
-- is in a conversation, and their draft, written after every update. Keyed per
-- (chat, user, conversation), as the coming channels namespace chats and people; no foreign
-- key to chats: a group's move to a supergroup leaves its old rows unused, never blocked.

-- The step: `name` is the conversation (addcard, renew, edit, settings, import, reminders),
-- `state` its step as JSON text (an integer today).
CREATE TABLE conversations (
    chat_id    bigint      NOT NULL,
    user_id    bigint      NOT NULL,
    name       text        NOT NULL,
    state      text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (chat_id, user_id, name)
);

-- The person's drafts (their `user_data`): `name` is the conversation whose draft it is in
-- that chat; chat 0 holds what is the person's own rather than one chat's. `draft` is opaque
-- to SQL (python's pickle of it).
CREATE TABLE conversation_drafts (
    chat_id    bigint      NOT NULL,
    user_id    bigint      NOT NULL,
    name       text        NOT NULL,
    draft      bytea       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (chat_id, user_id, name)
);
