-- A chat's identity (README, "Two identities"): its channel, its kind (``is_group``) and its
-- address in that channel; ``chat_id`` stays the key every table uses. Telegram chats keep their
-- Telegram id (address: the id as text); chats of other channels get ids from 2**53 up
-- (bot.chats.FOREIGN_ID_BASE). And the small tables the channel layer needs.

ALTER TABLE chats ADD COLUMN channel TEXT NOT NULL DEFAULT 'telegram';
-- SQLite adds a NOT NULL column only with a default, and cannot rebuild ``chats`` here (dropping
-- it would cascade to every card): the default '' is refused by the triggers below, so an
-- insert must name the address, as in PostgreSQL, where the column has no default.
ALTER TABLE chats ADD COLUMN address TEXT NOT NULL DEFAULT '';
UPDATE chats SET address = CAST(chat_id AS TEXT);
CREATE TRIGGER chats_address_required BEFORE INSERT ON chats WHEN NEW.address = ''
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: chats.address');
END;
CREATE TRIGGER chats_address_kept BEFORE UPDATE OF address ON chats WHEN NEW.address = ''
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: chats.address');
END;
-- One chat per address: a WeCom user id can never reach a Telegram chat, nor a private chat
-- a group that happens to have the same id text.
CREATE UNIQUE INDEX chats_by_address ON chats (channel, is_group, address);

-- A group's administrator, for channels that cannot tell us who that is (WeCom): the first
-- person to claim it, or whom an administrator named. NULL: nobody yet (and always on Telegram,
-- which says who administers a group).
ALTER TABLE chats ADD COLUMN admin_user_id INTEGER;

-- People of channels other than Telegram, by their address there (a WeCom userid); their ids
-- are allocated from 2**53 up, as foreign chats' are, so they never meet a Telegram user id.
CREATE TABLE channel_users (
    user_id    INTEGER PRIMARY KEY,
    channel    TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    name       TEXT,
    created_at TEXT    NOT NULL,
    UNIQUE (channel, address)
);

-- The numbered choices the bot last offered a person in a chat, for channels without enough
-- buttons: an answer like "3" must mean the same after a restart. user_id 0: offered to nobody
-- in particular (a digest's choices).
CREATE TABLE channel_menus (
    chat_id    INTEGER NOT NULL
               REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    options    TEXT    NOT NULL,  -- JSON [[label, data], ...]
    created_at TEXT    NOT NULL,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;

-- Which process holds a channel's single connection (WeCom allows one per robot): taken while
-- free or expired, renewed by its holder.
CREATE TABLE channel_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL  -- UTC instant
) WITHOUT ROWID;
