"""Expiry reminders: one digest per chat per day, durable delivery, auto-renew (issue 3).

* ``models``: per-chat ``ReminderSettings`` and the row-shaped data of a pass;
* ``thresholds``: when a card is due (reminder levels, the sent-log, catch-up);
* ``autorenew``: cards the carrier renews by itself roll forward on their expiry day;
* ``compose``: the pass: due chats, auto-renewals, sent-log and outbox in one transaction per
  batch of chats;
* ``digest``: a digest as Telegram messages (text and buttons), split to fit;
* ``sender``: draining the outbox through an abstract ``Messenger`` (Telegram's errors as
  outcomes, rate limits, per-chat order, claims so two senders never send one message);
* ``runner``: the tick the JobQueue runs; ``service``: what the buttons and settings menu do;
* ``parsing``: send times and day lists as users type them; ``cli``: ``python -m bot remind``.

Nothing here imports ``telegram``: the Telegram side is ``handlers/delivery.py``,
``handlers/digest.py``, ``handlers/reminder_settings.py`` and ``handlers/reminder_schedule.py``.
"""
