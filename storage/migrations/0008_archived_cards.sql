-- Cards out of service (停用: the terminal came back, the shop closed): ``archived_at`` is when
-- the card was archived, NULL while it is in service. An archived card keeps its row, renewals
-- and edit trail; the reminder pass, /cards, /expiring, /stats, /cost and /calendar leave it out.
-- The pass's covering index (0003) gets the column too, so that the pass still decides from the
-- index alone; its prefix (chat_id, expiry, id) is unchanged for /cards and /expiring.
ALTER TABLE cards ADD COLUMN archived_at TEXT;
DROP INDEX cards_by_chat_expiry;
CREATE INDEX cards_by_chat_expiry
    ON cards (chat_id, expiry, id, muted, snoozed_until, auto_renew, archived_at);
