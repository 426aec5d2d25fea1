-- A chat's digest language, a group's move to a supergroup, and a system clock that ran ahead
-- (PostgreSQL; mirrors ../0004_chat_language_and_clock_repair.sql).

-- The language of the first person who used the bot in the chat (NULL: nobody with a known
-- Telegram language yet). Digests use it when /settings has not fixed ``language``.
ALTER TABLE chats ADD COLUMN default_language text;

-- True once the chat changed its time zone in /settings: when a group becomes a supergroup that
-- wrote to the bot first, the old group's zone fills the new chat's only if it has not chosen.
-- Existing chats: a zone other than the default counts as chosen (the rest can't be told).
ALTER TABLE chats ADD COLUMN timezone_chosen boolean NOT NULL DEFAULT false;
UPDATE chats SET timezone_chosen = true WHERE timezone <> 'Asia/Shanghai';

-- The instant of the pass that set ``composed_on``, and the ``composed_on`` before it. A pass
-- made while the system clock ran ahead is recognised by both a date after the chat's today and
-- an instant after now (``remind --date`` for a later day stamps the real instant and stays);
-- undoing it puts ``prev_composed_on`` back.
ALTER TABLE chat_reminders ADD COLUMN composed_at timestamptz;
ALTER TABLE chat_reminders ADD COLUMN prev_composed_on date;
CREATE INDEX chat_reminders_composed_at ON chat_reminders (composed_at)
    WHERE composed_at IS NOT NULL;

-- The sent-log's entry before the latest pass changed it (set when a pass of a later date
-- overwrites it), so that undoing a pass made by a clock that ran ahead puts it back.
ALTER TABLE reminder_log ADD COLUMN prev_level integer;
ALTER TABLE reminder_log ADD COLUMN prev_reminded_on date;
