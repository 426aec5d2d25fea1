-- The reminder pass picks each batch's due cards by chat and expiry window, then drops the
-- muted, snoozed and auto-renewing ones (PostgreSQL; mirrors ../0003_due_cards_index.sql): with
-- those three columns in the index (INCLUDE: carried, not sorted) the statement can decide from
-- the index alone. The key keeps the old index's (chat_id, expiry, id), so /cards and /expiring
-- page through it exactly as before.
DROP INDEX cards_by_chat_expiry;
CREATE INDEX cards_by_chat_expiry
    ON cards (chat_id, expiry, id) INCLUDE (muted, snoozed_until, auto_renew);
