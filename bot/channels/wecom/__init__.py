"""WeCom (企业微信) smart robot as a SimWatch channel: the bridge between its long connection
(``bot.wecom``) and the handlers' python-telegram-bot ``Application``."""
