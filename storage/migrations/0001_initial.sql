-- Chats own cards; cards keep their renewal history.
-- Dates are ISO 'YYYY-MM-DD' text; instants are ISO 8601 UTC text.
CREATE TABLE chats (
    chat_id    INTEGER PRIMARY KEY,
    is_group   INTEGER NOT NULL DEFAULT 0,
    language   TEXT,
    timezone   TEXT    NOT NULL DEFAULT 'Asia/Shanghai',
    created_at TEXT    NOT NULL
);

CREATE TABLE cards (
    id             INTEGER PRIMARY KEY,
    -- ON UPDATE CASCADE: when a group becomes a supergroup its cards follow the new chat id
    chat_id        INTEGER NOT NULL REFERENCES chats (chat_id) ON UPDATE CASCADE ON DELETE CASCADE,
    iccid          TEXT    NOT NULL,
    expiry         TEXT    NOT NULL,
    carrier        TEXT    NOT NULL,
    label          TEXT,
    plan_months    INTEGER,
    plan_days      INTEGER,
    plan_price_fen INTEGER,
    auto_renew     INTEGER NOT NULL DEFAULT 0,
    note           TEXT,
    muted          INTEGER NOT NULL DEFAULT 0,
    snoozed_until  TEXT,
    created_at     TEXT    NOT NULL,
    UNIQUE (chat_id, iccid)
);

-- /cards and /expiring page through a chat's cards by expiry
CREATE INDEX cards_by_chat_expiry ON cards (chat_id, expiry, id);

CREATE TABLE renewals (
    id            INTEGER PRIMARY KEY,
    card_id       INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    renewed_at    TEXT    NOT NULL,
    by_user_id    INTEGER,
    by_name       TEXT,
    old_expiry    TEXT    NOT NULL,
    new_expiry    TEXT    NOT NULL,
    period_months INTEGER,
    period_days   INTEGER,
    rule          TEXT    NOT NULL,
    amount_fen    INTEGER,
    automatic     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX renewals_by_card ON renewals (card_id, renewed_at);
