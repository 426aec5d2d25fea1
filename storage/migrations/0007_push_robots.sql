-- Push robots (WeCom, DingTalk, Feishu/Lark group robots) as destinations of a chat's digests,
-- and the outbox keyed by destination: a row is (destination, digest, part), the destination
-- being the chat itself (target_id NULL) or one of its push targets (README, "Two identities").

-- A robot a chat's digests also go to. The service and the token of the pasted webhook URL
-- are kept, never the URL: the bot sends to the configured API base of the service. A token is
-- a credential: lists mask it, logs never show it.
CREATE TABLE push_targets (
    id           INTEGER PRIMARY KEY,
    chat_id      INTEGER NOT NULL
                 REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    service      TEXT    NOT NULL,  -- wecom | dingtalk | feishu | lark
    token        TEXT    NOT NULL,  -- the webhook's key / access_token / hook id
    secret       TEXT,              -- DingTalk 加签 / Feishu 签名校验 secret, if the robot has one
    source_name  TEXT,              -- the SimWatch chat's name, as the robot's messages say it
    added_at     TEXT    NOT NULL,
    added_by     INTEGER,
    paused_since TEXT,              -- UTC instant: the service refused the key; NULL = active
    pause_reason TEXT,
    last_at      TEXT,              -- UTC instant of the last delivery or test
    last_result  TEXT,              -- 'ok', or why it failed
    UNIQUE (chat_id, service, token)
);

-- Several chats may share one robot: its rate budget is the robot's.
CREATE INDEX push_targets_by_robot ON push_targets (service, token);

-- Each robot's rate budget, shared by every sender (the bot, `remind`, several instances): the
-- earliest instant its next message may go. A sender claims a slot by moving it on atomically.
CREATE TABLE robot_slots (
    service TEXT NOT NULL,
    token   TEXT NOT NULL,
    next_at TEXT NOT NULL,  -- UTC instant
    PRIMARY KEY (service, token)
) WITHOUT ROWID;

-- The outbox, rebuilt with its destination (SQLite cannot change a table's UNIQUE in place).
CREATE TABLE outbox_new (
    id            INTEGER PRIMARY KEY,
    chat_id       INTEGER NOT NULL
                  REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    target_id     INTEGER REFERENCES push_targets (id) ON DELETE CASCADE,  -- NULL: the chat
    digest_date   TEXT    NOT NULL,  -- the chat's local date the digest is for
    part          INTEGER NOT NULL DEFAULT 1,  -- 1..parts: a long digest is several messages
    parts         INTEGER NOT NULL DEFAULT 0,  -- 0 until rendered
    text          TEXT,              -- Telegram HTML, or a robot's markdown; NULL until rendered
    buttons       TEXT,              -- JSON [[[text, callback_data], ...], ...]
    renewed       TEXT,              -- JSON: the day's auto-renewals to report (part 1 only)
    created_at    TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',  -- pending | sent | failed | dropped
    attempts      INTEGER NOT NULL DEFAULT 0,          -- drains that gave up on it for now
    not_before    TEXT,   -- UTC instant: backing off (retry_after, repeated network errors)
    claimed_until TEXT,   -- UTC instant: a sender is on it; another sender keeps off until then
    sent_at       TEXT,
    message_id    INTEGER,
    error         TEXT
);
INSERT INTO outbox_new (id, chat_id, digest_date, part, parts, text, buttons, renewed,
                        created_at, status, attempts, not_before, claimed_until, sent_at,
                        message_id, error)
SELECT id, chat_id, digest_date, part, parts, text, buttons, renewed, created_at, status,
       attempts, not_before, claimed_until, sent_at, message_id, error
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

-- A delivery's identity: destination (chat, target), digest (its date) and part.
CREATE UNIQUE INDEX outbox_delivery ON outbox (chat_id, coalesce(target_id, 0), digest_date, part);
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_by_target ON outbox (target_id) WHERE target_id IS NOT NULL;
