"""SimWatch (流量卡管家): the domain, configuration and wiring of the bot.

Domain modules here never import ``telegram``; the Telegram surface lives in ``handlers/``.
"""

import os

# python-telegram-bot 22 reports durations (RetryAfter.retry_after…) as timedelta when this is
# set, as v23 will by default; without it each RetryAfter raises a deprecation warning.
os.environ.setdefault("PTB_TIMEDELTA", "true")
