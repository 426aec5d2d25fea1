-- Cards out of service (PostgreSQL; mirrors ../0008_archived_cards.sql): ``archived_at`` is when
-- the card was archived, NULL while it is in service. The pass's covering index carries the
-- column (INCLUDE) beside muted, snoozed_until and auto_renew, so the pass still reads the
-- index alone; the key (chat_id, expiry, id) is unchanged for /cards and /expiring.
ALTER TABLE cards ADD COLUMN archived_at timestamptz;
DROP INDEX cards_by_chat_expiry;
CREATE INDEX cards_by_chat_expiry
    ON cards (chat_id, expiry, id) INCLUDE (muted, snoozed_until, auto_renew, archived_at);
