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
-- reminder level already composed, and the digest (its date) that carries it. Levels: a
-- threshold (days before expiry, >= 0), or minus the days since expiry for the daily overdue
-- reminders. Lower is more urgent. A digest lists the chat's cards reminded on its date.
CREATE TABLE reminder_log (
    card_id     INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    expiry      TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    reminded_on TEXT    NOT NULL,  -- the digest's date (the chat's local date)
    PRIMARY KEY (card_id, expiry)
) WITHOUT ROWID;

-- Digests waiting to be sent. A pass enqueues one row per chat and day with no text: what it
-- says is in the sent-log (the cards reminded that day) and in ``renewed`` (the auto-renewals
-- of that day, JSON). The sender renders it when it gets to it, turning the row into part 1 of
-- the digest and adding a row per further part; each row is then one Telegram message.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    chat_id       INTEGER NOT NULL
                  REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    digest_date   TEXT    NOT NULL,  -- the chat's local date the digest is for
    part          INTEGER NOT NULL DEFAULT 1,  -- 1..parts: a long digest is several messages
    parts         INTEGER NOT NULL DEFAULT 0,  -- 0 until rendered
    text          TEXT,              -- Telegram HTML; NULL until rendered
    buttons       TEXT,              -- JSON [[[text, callback_data], ...], ...]
    renewed       TEXT,              -- JSON: the day's auto-renewals to report (part 1 only)
    created_at    TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',  -- pending | sent | failed | dropped
    attempts      INTEGER NOT NULL DEFAULT 0,          -- drains that gave up on it for now
    not_before    TEXT,   -- UTC instant: backing off (retry_after, repeated network errors)
    claimed_until TEXT,   -- UTC instant: a sender is on it; another sender keeps off until then
    sent_at       TEXT,
    message_id    INTEGER,
    error         TEXT,
    UNIQUE (chat_id, digest_date, part)
);

-- The sender reads only what is pending, in order (the UNIQUE index serves cascades and a
-- blocked chat's digests). Old sent rows are pruned: a daily full scan, cheaper than an index.
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';

-- The reminder tick walks the chats of one time zone at a time, and looks for the few cards
-- that auto-renew without reading the rest.
CREATE INDEX chats_by_timezone ON chats (timezone, chat_id);
CREATE INDEX cards_auto_renew ON cards (chat_id, expiry) WHERE auto_renew = 1;
