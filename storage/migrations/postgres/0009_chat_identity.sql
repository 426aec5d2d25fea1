-- A chat's identity (PostgreSQL; mirrors ../0009_chat_identity.sql): its channel, its kind
-- (``is_group``) and its address in that channel; ``chat_id`` stays the key every table uses.
-- Telegram chats keep their Telegram id (address: the id as text); chats of other channels get
-- ids from 2**53 up (bot.chats.FOREIGN_ID_BASE). And the small tables the channel layer needs.

ALTER TABLE chats ADD COLUMN channel text NOT NULL DEFAULT 'telegram';
ALTER TABLE chats ADD COLUMN address text;
UPDATE chats SET address = chat_id::text;
ALTER TABLE chats ALTER COLUMN address SET NOT NULL;
-- One chat per address: a WeCom user id can never reach a Telegram chat, nor a private chat
-- a group that happens to have the same id text.
ALTER TABLE chats ADD CONSTRAINT chats_by_address UNIQUE (channel, is_group, address);

-- A group's administrator, for channels that cannot tell us who that is (WeCom).
ALTER TABLE chats ADD COLUMN admin_user_id bigint;

-- People of channels other than Telegram, by their address there; ids from 2**53 up.
CREATE TABLE channel_users (
    user_id    bigint      PRIMARY KEY,
    channel    text        NOT NULL,
    address    text        NOT NULL,
    name       text,
    created_at timestamptz NOT NULL,
    UNIQUE (channel, address)
);

-- The numbered choices the bot last offered a person in a chat (user_id 0: nobody in
-- particular), for channels without enough buttons.
CREATE TABLE channel_menus (
    chat_id    bigint      NOT NULL
               REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    user_id    bigint      NOT NULL,
    message_id bigint      NOT NULL,
    options    text        NOT NULL,  -- JSON [[label, data], ...]
    created_at timestamptz NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);

-- Which process holds a channel's single connection (WeCom allows one per robot).
CREATE TABLE channel_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
