-- The reminder pass picks each batch's due cards by chat and expiry window, then drops the
-- muted, snoozed and auto-renewing ones (``_DUE_SQL`` in storage/reminders.py). With those three
-- columns in the index the statement decides from the index alone instead of reading every
-- card row in the window. bench/bench_pass.py, 1M cards in 100k chats, three alternating runs
-- each: that statement 0.94-1.02 s -> 0.84-0.89 s per pass; a first-day pass 4.61 -> 4.34 s,
-- a following day 3.25 -> 2.90 s. The database grows from 167 to 171 MB (a second index beside
-- the old one would add 25 MB); this migration takes 1.4 s on a 1M-card database.
-- The index keeps the old one's prefix (chat_id, expiry, id), so /cards and /expiring page
-- through it exactly as before.
DROP INDEX cards_by_chat_expiry;
CREATE INDEX cards_by_chat_expiry
    ON cards (chat_id, expiry, id, muted, snoozed_until, auto_renew);
