-- Reminders: per-chat settings and delivery state, the sent-log, and the outbox of digests.
-- Every table keyed by a chat cascades on UPDATE, so a group that becomes a supergroup (a new
-- chat id) keeps its settings and pending digests, exactly as its cards do.

-- One row per chat that changed a setting, stopped receiving messages or got a digest; a chat
-- without a row uses the defaults (NULL columns mean "default" too, decided in Python).
CREATE TABLE chat_reminders (
    chat_id            INTEGER PRIMARY KEY
                       REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    send_time          TEXT,     -- 'HH:MM' in the chat's time zone
    days_before        TEXT,     -- '30,7,3,1,0'
    overdue_daily_days INTEGER,
    inactive_since     TEXT,     -- set when Telegram refused (blocked, kicked); NULL = active
    inactive_reason    TEXT,
    composed_on        TEXT      -- the chat's local date of the last digest pass that ran for it
);

-- The sent-log: for one card and one expiry date (a renewal starts a new cycle), the most urgent
-- reminder level already composed. Levels: a threshold (days before expiry, >= 0), or minus the
-- days since expiry for the daily overdue reminders. Lower is more urgent.
CREATE TABLE reminder_log (
    card_id     INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    expiry      TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    reminded_on TEXT    NOT NULL,  -- the chat's local date
    PRIMARY KEY (card_id, expiry)
) WITHOUT ROWID;

-- Digest messages waiting to be sent (and, for a while, what happened to them).
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    chat_id       INTEGER NOT NULL
                  REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    digest_date   TEXT    NOT NULL,  -- the chat's local date the digest is for
    part          INTEGER NOT NULL,  -- 1..parts: a long digest is several messages
    parts         INTEGER NOT NULL,
    text          TEXT    NOT NULL,  -- Telegram HTML
    buttons       TEXT    NOT NULL,  -- JSON [[[text, callback_data], ...], ...]
    created_at    TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',  -- pending | sent | failed | dropped
    attempts      INTEGER NOT NULL DEFAULT 0,          -- drains that gave up on it for now
    not_before    TEXT,   -- UTC instant: backing off (retry_after, repeated network errors)
    claimed_until TEXT,   -- UTC instant: a sender is on it; another sender keeps off until then
    sent_at       TEXT,
    message_id    INTEGER,
    error         TEXT
);

-- The sender reads only what is pending, in order; per chat for cascades and for dropping a
-- blocked chat's digests. Old sent rows are pruned (a rare full scan, cheaper than an index).
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_by_chat ON outbox (chat_id, status);

-- The reminder tick walks the chats of one time zone at a time.
CREATE INDEX chats_by_timezone ON chats (timezone, chat_id);
