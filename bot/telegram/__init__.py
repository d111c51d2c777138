"""The Telegram front end: the python-telegram-bot application (`app`), its inline buttons
(`buttons`) and Telegram-safe HTML (`formatting`)."""
