"""`newsbot telegram`: the Answerer behind a Telegram bot (python-telegram-bot v22).

    update -> gate (allow list) -> handler -> Answerer.answer in a thread -> HTML parts -> replies

The services live in `application.bot_data` from start-up (the answerer, the settings, the
user lists) and the handlers fetch them, as the python-telegram-bot maintainers' own rules-bot
does; every message text comes from `bot.telegram.formatting` and every button from
`bot.telegram.buttons`, so the handlers stay a few lines. The settings come checked from
`bot.settings` (URLs, the webhook secret, the user lists as `UserList`s); only the token,
required by this front end alone, is checked here (`bot_token`), before the model loads.

- Updates are handled concurrently and answers are computed in threads (`compute`: messages,
  buttons and inline queries alike), as whole articles are read and cut into messages, so a
  slow answer or a huge article never holds up another chat; a per-chat lock (`chat_lock`,
  `in_order`) keeps each chat's replies in order.
- Each chat remembers its last `history_turns` answers (`context.chat_data`) for follow-ups,
  only answers that were delivered, and only the most recently active `MAX_CHATS` chats are
  remembered at all; the last `SOURCES_KEPT` keep their passages for /sources and buttons.
- Under each answer (not under a refusal that read nothing, nor an error) sit inline buttons,
  under its last part: Sources (the passages, as /sources) and Whole article, one per cited
  article up to a few (the article read from the corpus folder: up to
  `fmt.ARTICLE_MESSAGES` messages, else one `.txt` document). Their callback data outlives
  the process, so after a restart Sources retrieves the passages again for the question the
  button carries (or the answer replies to) and otherwise says the answer is too old and takes
  the button away (editMessageReplyMarkup); `bot.telegram.buttons` draws the format. Every
  press is answered (answerCallbackQuery), a forged or garbled one politely.
- Inline mode (`@bot question` in any chat, once BotFather's /setinline is on): the answer as
  one InlineQueryResultArticle to send. Queries shorter than `INLINE_MIN_CHARS` get no
  results; one is answered only if its user typed nothing newer within `INLINE_PAUSE` (Telegram
  sends one per keystroke); results are personal, so Telegram's cache never shows one user's
  results to another.
- In groups every reply threads to the message it answers (the question; for a button, the
  answer it sits under), sent all the same if that message was deleted meanwhile
  (`allow_sending_without_reply`); in private chats nothing is threaded, as the chat is one
  thread already.
- Strangers (not in TELEGRAM_ALLOWED_USERS) get one polite refusal in a private chat; in a
  group they are ignored without a word; their button presses get the refusal as the press's
  answer (seen by them only) and their inline queries no results.
- Flood control is python-telegram-bot's `AIORateLimiter`: it keeps under Telegram's limits and,
  on a `RetryAfter`, waits as long as Telegram asks and sends again.
- Delivery (`deliver`): sendMessage is not idempotent, and Telegram offers no way to ask whether
  a message arrived, so each failure is judged by what it says about the message:
  an error status (5xx, with a JSON body, an HTML page or garbage) or a connection that never
  opened means it was not stored: send again. A timeout or a connection dropped after the
  request went out leaves it unknown: send again too, so an answer arrives at least once (a
  rare duplicate beats a lost answer). A 2xx whose body does not parse means it was stored: do
  not send again. At most `SEND_ATTEMPTS` tries, with exponential backoff; if all fail, the user
  gets the apology and the answer stays out of the history.
- Polling errors are logged and retried by python-telegram-bot; handler errors get the user a
  short apology and the log a traceback. The token and the webhook secret are redacted from
  every log record.
- Webhook mode (`TELEGRAM_WEBHOOK_URL`) is python-telegram-bot's own webhook server
  (`Updater.start_webhook`, the `webhooks` extra), which refuses (403) every call without the
  secret registered with `setWebhook`: TELEGRAM_WEBHOOK_SECRET, or when that is empty a random
  one made for the run, so a forged update never reaches a handler.
- The index can change under a running bot (`newsbot index --watch`, `/reindex`, another
  process): the answerer checks the index generation on every question.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
import re
import secrets
import signal
import sys
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InputFile,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.answering.answer import Answerer, QuestionError
from bot.answering.types import Answer
from bot.settings import BotSettings
from bot.telegram import buttons
from bot.telegram import formatting as fmt
from index.articles import Article
from index.errors import IndexBusyError, NewsbotError, SettingsError

log = logging.getLogger(__name__)

# bot_data / chat_data keys
ANSWERER, SETTINGS, ALLOWED, ADMINS, REFUSED, CHATS, INLINE = (
    "answerer",
    "settings",
    "allowed",
    "admins",
    "refused",
    "chats",
    "inline",
)
HISTORY, LAST, ANSWERS, LOCK = "history", "last", "answers", "lock"

TOKEN = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{30,100}")
# Telegram sends only what is asked for: buttons and inline mode must be named here.
UPDATES = ["message", "edited_message", "callback_query", "inline_query"]
TYPING_EVERY = 4.0  # Telegram shows "typing…" for 5 s per chat action
MAX_CHATS = 5000  # chats whose conversation is remembered (least recently active forgotten)
MAX_REFUSED = 10000  # strangers already refused once
FLOOD_RETRIES = 4  # sends again after a RetryAfter, each after the wait Telegram asks for
SEND_ATTEMPTS = 5  # tries of one message before the user gets the apology instead
SEND_BACKOFF = 0.5  # seconds before the first retry, doubled for each one after
SEND_TIMEOUT = 5.0  # seconds to wait for Telegram's answer to a sendMessage
BOOTSTRAP_RETRIES = 5  # tries of deleteWebhook / setWebhook when the bot starts
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
SOURCES_KEPT = 3  # answers per chat whose passages a Sources button shows without retrieving
INLINE_MIN_CHARS = 5  # a shorter inline query is a question still being typed
INLINE_PAUSE = 0.5  # seconds an inline query waits: one typed after it replaces it
INLINE_CACHE = 60  # seconds Telegram may show a user the same inline results again
COMMANDS = [
    ("ask", "ask a question (in groups)"),
    ("sources", "the passages behind the last answer"),
    ("stats", "articles, dates and index age"),
    ("reset", "forget the conversation"),
    ("help", "how to ask"),
]


# -- start-up ------------------------------------------------------------------------------
def bot_token(settings: BotSettings) -> str:
    """The token, checked for shape before anything talks to Telegram."""
    token = settings.telegram_bot_token.get_secret_value().strip()
    if not token:
        raise SettingsError(
            "No Telegram bot token: set TELEGRAM_BOT_TOKEN (in .env or the environment) to the "
            "token @BotFather gave you — see docs/TELEGRAM.md."
        )
    if not TOKEN.fullmatch(token):
        raise SettingsError(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then about 35 "
            "letters, digits, '-' or '_'); copy it again from @BotFather."
        )
    return token


class RedactSecret(logging.Filter):
    """Replaces `secret` with `label` in a record's message and traceback."""

    def __init__(self, secret: str, label: str):
        super().__init__()
        self.secret, self.label = secret, label

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, self.label), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.secret in record.exc_text:
            record.exc_text = record.exc_text.replace(self.secret, self.label)
        if record.stack_info and self.secret in record.stack_info:
            record.stack_info = record.stack_info.replace(self.secret, self.label)
        return True


class RedactToken(RedactSecret):
    """Replaces the token's secret part in a record's message and traceback."""

    def __init__(self, token: str):
        super().__init__(token.split(":", 1)[-1], "[token]")


def hide_token(token: str) -> None:
    """Keep the token out of every log line: quiet HTTP loggers, redact at every handler."""
    for name in ("httpx", "httpcore"):  # they log each URL, and Bot API URLs hold the token
        logging.getLogger(name).setLevel(logging.WARNING)
    hide(RedactToken(token))


def hide(redact: RedactSecret) -> None:
    """Add `redact` to every log handler that does not have it yet."""
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None and not any(
            isinstance(f, RedactSecret) and f.secret == redact.secret for f in handler.filters
        ):
            handler.addFilter(redact)


def build_application(settings: BotSettings, answerer: Answerer) -> Application:
    """The Application with its services in bot_data and all handlers; not yet started."""
    token = bot_token(settings)
    hide_token(token)
    builder = (
        ApplicationBuilder()
        .token(token)
        .rate_limiter(AIORateLimiter(max_retries=FLOOD_RETRIES))
        .concurrent_updates(True)
    )
    if base_url := settings.telegram_base_url:
        builder = builder.base_url(base_url)
        if base_url.endswith("/bot"):
            builder = builder.base_file_url(base_url[: -len("bot")] + "file/bot")
    application = builder.build()
    application.bot_data.update(
        {
            ANSWERER: answerer,
            SETTINGS: settings,
            ALLOWED: settings.telegram_allowed_users,
            ADMINS: settings.telegram_admin_users,
            REFUSED: OrderedDict(),
            CHATS: OrderedDict(),
            INLINE: OrderedDict(),  # user id -> their latest inline query's id
        }
    )
    add_handlers(application)
    return application


def add_handlers(application: Application) -> None:
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    new = filters.UpdateType.MESSAGE
    application.add_handler(TypeHandler(Update, gate), group=-1)
    for name, callback in [
        ("start", on_start),
        ("help", on_help),
        ("reset", on_reset),
        ("sources", on_sources),
        ("stats", on_stats),
        ("reindex", on_reindex),
        ("ask", on_ask),
    ]:
        application.add_handler(CommandHandler(name, in_order(callback), filters=new))
    text = filters.TEXT & ~filters.COMMAND & new
    edited = filters.UpdateType.EDITED_MESSAGE
    for callback, where in [
        (on_private_text, text & private),
        (on_group_text, text & groups),
        (on_unknown_command, filters.COMMAND & private & new),
        (on_not_text, private & new),
        (on_edited_message, private & edited),
    ]:
        application.add_handler(MessageHandler(where, in_order(callback)))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(InlineQueryHandler(on_inline_query))
    application.add_error_handler(on_error)


def in_order(handler):
    """Run `handler` holding its chat's lock, so that a chat's replies never interleave.

    Updates are handled concurrently (a slow answer must not hold up other chats), but within
    a chat a question, its follow-up and a /sources are answered one after the other.
    """

    @functools.wraps(handler)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with chat_lock(context):
            await handler(update, context)

    return run


def chat_lock(context: ContextTypes.DEFAULT_TYPE) -> asyncio.Lock:
    return context.chat_data.setdefault(LOCK, asyncio.Lock())


def run_telegram(settings: BotSettings) -> int:
    """Run until interrupted: long polling, or a webhook server when TELEGRAM_WEBHOOK_URL is set."""
    from bot.answering.answer import make_answerer

    bot_token(settings)  # required here alone; every other value was checked when read
    answerer = make_answerer(settings)
    answerer.warm_up()
    application = build_application(settings, answerer)
    try:
        asyncio.run(serve(application, settings))
    except InvalidToken:
        raise NewsbotError(
            "Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped?); get the current token "
            "from @BotFather."
        ) from None
    except NetworkError as exc:
        server = urlsplit(settings.telegram_base_url or "https://api.telegram.org").netloc
        raise NewsbotError(
            f"Cannot reach the Telegram Bot API at {server} ({type(exc).__name__}); check the "
            "network, or TELEGRAM_BASE_URL."
        ) from None
    return 0


async def serve(
    application: Application, settings: BotSettings, stop: asyncio.Event | None = None
) -> None:
    """Answer until `stop` is set (by default: on SIGINT or SIGTERM).

    What `Application.run_polling` does, in the running event loop, so that tests and the load
    benchmark run exactly this; webhook mode shares it.
    """
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    webhook = bool(settings.telegram_webhook_url)
    async with application:  # getMe: a bad token or an unreachable server fails here
        await _set_commands(application)
        if webhook:
            await start_webhook(application, settings)
        else:

            def polling_error(exc: TelegramError) -> None:
                application.create_task(application.process_error(update=None, error=exc))

            await application.updater.start_polling(
                allowed_updates=UPDATES,
                bootstrap_retries=BOOTSTRAP_RETRIES,
                error_callback=polling_error,
            )
        await application.start()
        print(
            f"newsbot: answering on Telegram as @{application.bot.username} "
            f"({'webhook' if webhook else 'long polling'}); Ctrl+C stops.",
            file=sys.stderr,
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await application.updater.stop()
            await application.stop()


async def _set_commands(application: Application) -> None:
    try:
        await application.bot.set_my_commands([BotCommand(*c) for c in COMMANDS])
    except TelegramError as exc:  # a menu is nice to have, not a reason to stop
        log.warning("could not set the bot's command menu: %s", exc)
    if not application.bot.supports_inline_queries:
        log.info("inline mode is off for this bot; @BotFather's /setinline turns it on")


async def start_webhook(application: Application, settings: BotSettings) -> None:
    """Receive updates on TELEGRAM_WEBHOOK_LISTEN:PORT at the path of TELEGRAM_WEBHOOK_URL.

    Meant to sit behind a reverse proxy that terminates HTTPS. python-telegram-bot's server
    registers the webhook with its secret and answers 403 to any call without that secret.
    """
    url = settings.telegram_webhook_url
    secret = webhook_secret(settings)
    hide(RedactSecret(secret, "[webhook secret]"))  # setWebhook's parameters are logged at DEBUG
    host, port = settings.telegram_webhook_listen, settings.telegram_webhook_port
    try:
        await application.updater.start_webhook(
            listen=host,
            port=port,
            url_path=re.escape(urlsplit(url).path or "/"),  # it becomes a route's regex
            webhook_url=url,
            secret_token=secret,
            allowed_updates=UPDATES,
            bootstrap_retries=BOOTSTRAP_RETRIES,
        )
    except OSError as exc:
        raise NewsbotError(
            f"Cannot listen for the webhook on {host}:{port} ({exc.strerror or exc}); set "
            "TELEGRAM_WEBHOOK_LISTEN and TELEGRAM_WEBHOOK_PORT."
        ) from None


def webhook_secret(settings: BotSettings) -> str:
    """TELEGRAM_WEBHOOK_SECRET; when it is empty, a strong random one for this run.

    Without a secret anyone who finds the webhook's address could post updates "from" an admin.
    Each start registers the secret anew with setWebhook, so a random one needs no setup.
    """
    # 43 characters of [A-Za-z0-9_-], which bot.settings.WEBHOOK_SECRET accepts
    return settings.telegram_webhook_secret.get_secret_value() or secrets.token_urlsafe(32)


# -- the gate ------------------------------------------------------------------------------
async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs before every handler: strangers get one polite refusal in a private chat, then
    silence; in groups, silence from the start (a group is not theirs to be told about)."""
    allowed, user = context.bot_data[ALLOWED], update.effective_user
    if not allowed or user in allowed or user in context.bot_data[ADMINS]:
        return
    message, refused = update.message, context.bot_data[REFUSED]
    private = message is not None and message.chat.type == ChatType.PRIVATE
    if user is not None and private and user.id not in refused:
        _remember(refused, user.id, MAX_REFUSED)
        log.info("refused user %s (not in TELEGRAM_ALLOWED_USERS)", user.id)
        await send_parts(message, [fmt.NOT_ALLOWED])
    if update.callback_query:  # a button always gets an answer; only its presser sees it
        await answer_button(update.callback_query, fmt.NOT_ALLOWED)
    if update.inline_query:
        await answer_inline(update.inline_query, [])
    raise ApplicationHandlerStop


def group_question(message: Message) -> str | None:
    """The question of a group message that mentions the bot or replies to it; else None."""
    bot = message.get_bot()
    text = message.text or ""
    mention = re.compile(rf"(?<!\w)@{re.escape(bot.username or '')}\b", re.I)
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot.id)
    if bot.username and mention.search(text):
        return " ".join(mention.sub(" ", text).split())
    return text if to_bot else None


# -- commands ------------------------------------------------------------------------------
async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_parts(update.effective_message, [fmt.START])


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_parts(update.effective_message, [fmt.HELP])


async def on_reset(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    for key in (HISTORY, LAST, ANSWERS):
        context.chat_data.pop(key, None)
    await send_parts(update.effective_message, [fmt.RESET])


async def on_sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    last = context.chat_data.get(LAST)  # the newest of ANSWERS
    await send_parts(update.effective_message, fmt.render_sources(last))


async def on_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    stats = await asyncio.to_thread(context.bot_data[ANSWERER].stats)
    await send_parts(update.effective_message, [fmt.render_stats(stats)])


async def on_reindex(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if update.effective_user not in context.bot_data[ADMINS]:
        await send_parts(message, [fmt.ADMINS_ONLY])
        return
    await send_parts(message, [fmt.REINDEX_STARTED])
    try:
        report = await asyncio.to_thread(reindex, context.bot_data)
    except IndexBusyError:
        await send_parts(message, [fmt.INDEX_BUSY])
        return
    await send_parts(message, [fmt.render_report(report)])


def reindex(bot_data: dict):
    """Incremental build with the answerer's own model; the answerer sees it at once."""
    from index.build import build_index

    answerer = bot_data[ANSWERER]
    report = build_index(bot_data[SETTINGS], embedder=answerer.embedder)
    answerer.refresh()
    return report


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    question = " ".join(context.args or [])
    if not question:
        await send_parts(update.effective_message, [fmt.ASK_USAGE])
        return
    await answer_question(update, context, question)


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_parts(update.effective_message, [fmt.UNKNOWN_COMMAND])


# -- messages ------------------------------------------------------------------------------
async def on_private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer_question(update, context, update.message.text)


async def on_group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    question = group_question(update.message)
    if question is None:  # chatter among the members
        return
    if not question:
        await send_parts(update.message, [fmt.ASK_USAGE])
        return
    await answer_question(update, context, question)


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_parts(update.message, [fmt.NOT_TEXT])


async def on_edited_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_parts(update.edited_message, [fmt.EDITED])


async def answer_question(update: Update, context: ContextTypes.DEFAULT_TYPE, question: str):
    message = update.effective_message
    history = context.chat_data.get(HISTORY, ())
    try:
        async with typing(message):
            answer = await compute(context, question, list(history))
    except QuestionError as exc:  # its message is the polite explanation
        await send_parts(message, [fmt.plain(str(exc))])
        return
    key = buttons.new_key()
    markup = buttons.keyboard(answer, key)
    await send_parts(message, fmt.render_html(answer), markup)  # raises if not delivered
    remember(context, message.chat_id, answer, key)


async def compute(
    context: ContextTypes.DEFAULT_TYPE, question: str, history=(), **options
) -> Answer:
    """The answer, computed in a worker thread (messages, buttons and inline queries alike),
    so that a slow one never holds up the bot. `options` go to `Answerer.answer`."""
    answerer = context.bot_data[ANSWERER]
    return await asyncio.to_thread(answerer.answer, question, list(history), **options)


def remember(context: ContextTypes.DEFAULT_TYPE, chat_id: int, answer: Answer, key: str) -> None:
    """Keep the answer for follow-ups, /sources and its Sources button; forget the least
    recently active chats."""
    turns = context.bot_data[SETTINGS].history_turns
    history = context.chat_data.setdefault(HISTORY, deque(maxlen=turns))
    history.append(replace(answer, passages=[]))  # only the last few keep their passages
    context.chat_data[LAST] = answer
    _remember(context.chat_data.setdefault(ANSWERS, OrderedDict()), key, SOURCES_KEPT)
    context.chat_data[ANSWERS][key] = answer
    for old in _remember(context.bot_data[CHATS], chat_id, MAX_CHATS):
        context.application.drop_chat_data(old)


def _remember(recent: OrderedDict, key, limit: int) -> list:
    """Mark `key` most recent; return the keys that fell off the end."""
    recent[key] = None
    recent.move_to_end(key)
    return [recent.popitem(last=False)[0] for _ in range(len(recent) - limit)]


@contextlib.asynccontextmanager
async def typing(message: Message):
    """Show "typing…" in the chat, renewed every few seconds, while the block runs."""

    async def keep_typing() -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await message.reply_chat_action(ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- buttons -------------------------------------------------------------------------------
async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button under an answer (`bot.telegram.buttons`). Every press is answered, a forged or
    garbled one with a polite line."""
    query = update.callback_query
    button = buttons.parse(query.data)
    if button is None:
        log.info("a button with data this bot does not write was pressed")
        await answer_button(query, fmt.BUTTON_BROKEN)
    elif not isinstance(query.message, Message):  # older than Telegram lets a bot reach
        await answer_button(query, fmt.TOO_OLD)
    elif button.kind == buttons.SOURCES:
        await show_sources(query, query.message, button, context)
    else:
        await show_article(query, query.message, button, context)


async def show_sources(
    query: CallbackQuery,
    message: Message,
    button: buttons.Button,
    context: ContextTypes.DEFAULT_TYPE,
) -> None:
    """The passages behind the answer `message` shows: remembered, or retrieved again."""
    answer = context.chat_data.get(ANSWERS, {}).get(button.key)
    question = button.question or asked_in(message.reply_to_message)
    if answer is None and not question:
        await answer_button(query, fmt.TOO_OLD)
        await drop_sources_button(message)
        return
    await answer_button(query)
    async with chat_lock(context):
        if answer is None:  # after a restart, or long after: the same question, retrieved again
            try:
                async with typing(message):  # the passages only: no LLM call for them
                    answer = await compute(context, question, with_llm=False)
            except QuestionError as exc:
                await send_parts(message, [fmt.plain(str(exc))])
                return
        await send_parts(message, fmt.render_sources(answer))


def asked_in(message: Message | None) -> str | None:
    """The question a message asked, `/ask` and mentions of the bot taken off; None if none."""
    text = (message.text or "").strip() if message else ""
    command, _, rest = text.partition(" ")
    if re.fullmatch(r"/ask(?:@\w+)?", command, re.I):
        return " ".join(rest.split()) or None
    if not text or text.startswith("/"):
        return None
    return group_question(message) or text


async def drop_sources_button(message: Message) -> None:
    """Take a Sources button that can no longer work off the message (editMessageReplyMarkup)."""
    kept = buttons.without_sources(message.reply_markup)
    if buttons.count(kept) == buttons.count(message.reply_markup):
        return  # none there (a forged press): Telegram refuses an edit that changes nothing
    try:
        await message.edit_reply_markup(kept)
    except TelegramError as exc:  # a tidier keyboard is nice to have, nothing more
        log.warning("could not remove a stale Sources button: %s", exc)


async def show_article(
    query: CallbackQuery,
    message: Message,
    button: buttons.Button,
    context: ContextTypes.DEFAULT_TYPE,
) -> None:
    """The whole article, read from the corpus folder: a few messages, or one document."""
    corpus_dir = context.bot_data[SETTINGS].corpus_dir
    article = await asyncio.to_thread(buttons.load_cited, corpus_dir, button.key)
    if article is None:
        await answer_button(query, fmt.ARTICLE_GONE)
        return
    await answer_button(query)
    # A whole article may be megabytes: cut it in a thread, as answers are computed.
    parts = await asyncio.to_thread(fmt.render_article, article)
    async with chat_lock(context):
        if len(parts) <= fmt.ARTICLE_MESSAGES:
            await send_parts(message, parts)
        else:
            await send_document(message, article)


async def answer_button(query: CallbackQuery, text: str | None = None) -> None:
    """answerCallbackQuery: it stops the button's spinner, and shows `text` to the presser."""
    try:
        await query.answer(text)
    except TelegramError as exc:  # too late (Telegram waits about 15 s), or answered already
        log.warning("could not answer a button press: %s", exc)


# -- inline mode ---------------------------------------------------------------------------
async def on_inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`@bot question` in any chat: the answer, offered as one message to send there."""
    query = update.inline_query
    question = " ".join(query.query.split())
    if len(question) < INLINE_MIN_CHARS:
        await answer_inline(query, [])
        return
    if not await still_typed(context.bot_data[INLINE], query):
        return  # the user typed on; Telegram has dropped this query for the newer one
    try:
        answer = await compute(context, question)
    except QuestionError:
        await answer_inline(query, [])
        return
    shown = fmt.render_inline(answer, context.bot.username or "")
    result = InlineQueryResultArticle(
        id=hashlib.blake2b(question.encode(), digest_size=16).hexdigest(),
        title=shown.title,
        description=shown.description,
        input_message_content=InputTextMessageContent(
            shown.html, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        ),
    )
    await answer_inline(query, [result])


async def still_typed(latest: OrderedDict, query: InlineQuery) -> bool:
    """Wait INLINE_PAUSE; is `query` still its user's newest? Telegram sends one per
    keystroke, and only the last deserves an answer (each costs seconds of CPU)."""
    user = query.from_user.id
    _remember(latest, user, MAX_CHATS)
    latest[user] = query.id
    await asyncio.sleep(INLINE_PAUSE)
    return latest.get(user) == query.id


async def answer_inline(query: InlineQuery, results: list) -> None:
    """answerInlineQuery, personal: Telegram never shows one user's results to another (who
    may not be on the allow list)."""
    try:
        await query.answer(results, cache_time=INLINE_CACHE, is_personal=True)
    except TelegramError as exc:  # answered too late: the user has moved on
        log.warning("could not answer an inline query: %s", exc)


# -- sending -------------------------------------------------------------------------------
async def send_parts(
    message: Message, parts: Sequence[str], markup: InlineKeyboardMarkup | None = None
) -> None:
    """Send HTML parts in order, `markup` under the last. In groups the first one replies to
    `message` (the question), and so does the one with the buttons, which a Sources button
    may need after a restart; each still goes out if that message was deleted meanwhile."""
    group = message.chat.type != ChatType.PRIVATE
    for i, part in enumerate(parts):
        buttons_here = markup if i == len(parts) - 1 else None
        quote = group and (i == 0 or buttons_here is not None)
        await send_html(message, part, quote=quote, markup=buttons_here)


def reply_options(quote: bool) -> dict:
    if quote:
        return {"do_quote": True, "allow_sending_without_reply": True}
    return {"do_quote": False}


async def send_html(
    message: Message, html: str, quote: bool = False, markup: InlineKeyboardMarkup | None = None
) -> None:
    options = {"link_preview_options": NO_PREVIEW, **reply_options(quote)}
    if markup is not None:
        options["reply_markup"] = markup
    try:
        await deliver(message.reply_text, html, parse_mode=ParseMode.HTML, **options)
    except BadRequest as exc:
        # Everything is escaped, so this cannot happen; if Telegram disagrees, the user still
        # gets the answer, as plain text.
        if "parse entities" not in str(exc).lower():
            raise
        log.error("Telegram rejected our HTML (%s); sending plain text instead", exc)
        await deliver(message.reply_text, fmt.html_to_text(html), **options)


async def send_document(message: Message, article: Article) -> None:
    """A long article as one `.txt` document rather than many messages: it does not flood the
    chat (Telegram allows a group 20 messages a minute), and it opens in any viewer and can be
    saved or forwarded whole."""
    name = PurePosixPath(article.source).name
    document = InputFile(article.text.encode("utf-8"), filename=name)
    quote = message.chat.type != ChatType.PRIVATE
    caption = {"caption": fmt.article_caption(article), "parse_mode": ParseMode.HTML}
    await deliver(message.reply_document, document, **caption, **reply_options(quote))


async def deliver(send: Callable[..., Awaitable[object]], content: object, **options) -> None:
    """`send(content, **options)` (a sendMessage or sendDocument), tried again while it fails
    on the way.

    The policy is in the module docstring: an error status, a network error or a timeout is
    tried again, up to SEND_ATTEMPTS times with exponential backoff (a timeout may mean the
    message did arrive, so the user may rarely see it twice); a refusal (BadRequest, Forbidden)
    is final; a 2xx whose body does not parse counts as delivered. A RetryAfter is handled, and
    waited for, by the rate limiter underneath.
    """
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            await send(content, read_timeout=SEND_TIMEOUT, **options)
            return
        except BadRequest:
            raise
        except NetworkError as exc:  # 5xx, no connection, a dropped one, TimedOut
            if attempt == SEND_ATTEMPTS:
                raise
            wait = SEND_BACKOFF * 2 ** (attempt - 1) * random.uniform(1.0, 1.5)
            log.warning(
                "sending failed (%s: %s); trying again in %.1f s (attempt %d of %d)",
                type(exc).__name__,
                exc,
                wait,
                attempt + 1,
                SEND_ATTEMPTS,
            )
            await asyncio.sleep(wait)
        except TelegramError as exc:
            if not stored_but_garbled(exc):
                raise
            log.warning("Telegram's answer to sendMessage did not parse; taking it as delivered")
            return


def stored_but_garbled(exc: TelegramError) -> bool:
    """Did Telegram answer 2xx (it stored the message) with a body that is not JSON?

    python-telegram-bot raises a bare TelegramError, caused by the JSON error, only then; an
    error status with such a body becomes a NetworkError (5xx) or one of its kin.
    """
    return type(exc) is TelegramError and isinstance(exc.__cause__, ValueError)


# -- errors --------------------------------------------------------------------------------
async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    if update is None:  # from polling, which retries by itself
        if isinstance(error, NetworkError):
            log.warning("Telegram unreachable (%s: %s); retrying", type(error).__name__, error)
        else:
            log.error("error while polling Telegram", exc_info=error)
        return
    log.error("error while handling an update", exc_info=error)
    if not isinstance(update, Update):
        return
    if update.callback_query:  # its spinner stops either way (a second answer is refused)
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer()
    message = update.effective_message
    if isinstance(message, Message):
        try:
            await send_parts(message, [fmt.APOLOGY])
        except TelegramError as exc:
            log.warning("could not send the apology either: %s", exc)
