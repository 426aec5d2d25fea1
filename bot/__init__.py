"""SimWatch (流量卡管家): the domain, configuration and wiring of the bot.

Domain modules here never import ``telegram``; the Telegram surface lives in ``handlers/``.
"""
