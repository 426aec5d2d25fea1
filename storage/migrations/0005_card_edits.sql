-- The edit trail: who changed which field of a card, when, from what to what (/edit). Not a
-- renewal: nothing was paid, so /cost and the renewal history never read it. Values are text:
-- an ISO date, a carrier code, the label, note or ICCID as saved, a plan as 'months:days:fen'.
-- Deleting a card deletes its trail, as it does its renewals. (Only creates a table: it applies
-- the same after any 0004.)
CREATE TABLE card_edits (
    id         INTEGER PRIMARY KEY,
    card_id    INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    edited_at  TEXT    NOT NULL,
    by_user_id INTEGER,
    by_name    TEXT,
    field      TEXT    NOT NULL,  -- expiry | carrier | label | plan | note | iccid
    old_value  TEXT,
    new_value  TEXT
);

CREATE INDEX card_edits_by_card ON card_edits (card_id, edited_at);
