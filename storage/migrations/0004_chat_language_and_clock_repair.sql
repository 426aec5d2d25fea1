-- A chat's digest language, a group's move to a supergroup, and a system clock that ran ahead.

-- The language of the first person who used the bot in the chat (NULL: nobody with a known
-- Telegram language yet). Digests use it when /settings has not fixed ``language``.
ALTER TABLE chats ADD COLUMN default_language TEXT;

-- 1 once the chat changed its time zone in /settings: when a group becomes a supergroup that
-- wrote to the bot first, the old group's zone fills the new chat's only if it has not chosen.
-- Existing chats: a zone other than the default counts as chosen (the rest can't be told).
ALTER TABLE chats ADD COLUMN timezone_chosen INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET timezone_chosen = 1 WHERE timezone <> 'Asia/Shanghai';

-- The instant (UTC) of the pass that set ``composed_on``, set only when that pass was made
-- after a jump ahead of the system clock (NULL for a pass on a trusted clock and for
-- ``remind --date``), and the ``composed_on`` before it. Such a marked pass with a date after
-- the chat's today and an instant after now was made by a clock that ran ahead; undoing it
-- puts ``prev_composed_on`` back.
ALTER TABLE chat_reminders ADD COLUMN composed_at TEXT;
ALTER TABLE chat_reminders ADD COLUMN prev_composed_on TEXT;
CREATE INDEX chat_reminders_composed_at ON chat_reminders (composed_at)
    WHERE composed_at IS NOT NULL;

-- The sent-log's entry before the latest pass changed it (set when a pass of a later date
-- overwrites it), so that undoing a pass made by a clock that ran ahead puts it back.
ALTER TABLE reminder_log ADD COLUMN prev_level INTEGER;
ALTER TABLE reminder_log ADD COLUMN prev_reminded_on TEXT;
