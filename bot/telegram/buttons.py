"""The buttons under a Telegram answer: their callback data, and reading it back safely.

Telegram keeps a button's callback data (at most 64 bytes) with the message, so buttons outlive
the process that made them: after a restart, or once the chat's memory has moved on, a button
must still mean something, and data anyone can forge must never open a path. So the data names
nothing that only this process knows, and no file:

    s:<key>[:<question>]   "Sources": <key> (8 random characters) finds the answer among the
                           chat's last few (`bot.telegram.app`); when it is gone, the passages are
                           retrieved again for <question>, the standalone question, carried
                           whole when it fits in the 64 bytes (or, in groups, for the question
                           the answer replies to); failing both, the button says politely that
                           the answer is too old.
    a:<hash>               "Whole article": 12 characters of a hash of the article's source,
                           matched against the corpus folder's listing (`index.articles`), which
                           holds only files inside the folder; a forged hash matches nothing.

Anything else -- garbled (not UTF-8: a lone surrogate), forged, too long, or of a format this
code no longer writes -- reads as `None`, and the bot answers that the button no longer works.
A new format takes new letters.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.answering.types import Answer
from bot.answering.wording import short_title
from index.articles import Article, ArticleFileError, load_article, scan_corpus, source_name
from index.errors import NewsbotError

DATA_BYTES = 64  # Telegram's limit on callback data
ARTICLE_BUTTONS = 3  # one "Whole article" button per cited article, for the first few
LABEL_CHARS = 40  # a longer button label is cut ("…"): Telegram shows about that much
SOURCES, ARTICLE = "s", "a"
SOURCES_LABEL, ARTICLE_LABEL = "Sources", "Whole article"
_KEY = re.compile(r"[A-Za-z0-9_-]{8}")
_HASH = re.compile(r"[A-Za-z0-9_-]{12}")


@dataclass(frozen=True)
class Button:
    """What a pressed button asks for: `kind` SOURCES (answer `key`, maybe its `question`)
    or ARTICLE (`key` is the source's hash)."""

    kind: str
    key: str
    question: str | None = None


def new_key() -> str:
    """A key for one answer's Sources button, unique across restarts (not a counter)."""
    return secrets.token_urlsafe(6)


def source_hash(source: str) -> str:
    digest = hashlib.blake2b(source.encode("utf-8", "surrogateescape"), digest_size=9).digest()
    return base64.urlsafe_b64encode(digest).decode()


def sources_data(key: str, question: str | None) -> str:
    data = f"{SOURCES}:{key}"
    with_question = f"{data}:{question}"
    if question and _fits(with_question):
        return with_question
    return data


def _fits(data: str) -> bool:
    """Does `data` fit Telegram's 64 bytes of UTF-8? Text with a lone surrogate (JSON lets one
    through, as `\\ud800`) is not UTF-8 at all, so it fits nothing."""
    try:
        return len(data.encode("utf-8")) <= DATA_BYTES
    except UnicodeEncodeError:
        return False


def article_data(source: str) -> str:
    return f"{ARTICLE}:{source_hash(source)}"


def parse(data: object) -> Button | None:
    """The button behind callback data, or None when it is not data this bot writes."""
    if not isinstance(data, str) or not _fits(data):
        return None
    kind, _, rest = data.partition(":")
    if kind == ARTICLE and _HASH.fullmatch(rest):
        return Button(ARTICLE, rest)
    if kind == SOURCES:
        key, _, question = rest.partition(":")
        question = " ".join(question.split())
        if _KEY.fullmatch(key):
            return Button(SOURCES, key, question or None)
    return None


def cited(answer: Answer) -> list[tuple[str, str | None]]:
    """The articles an answer quotes, as (source, title), in the order the answer shows them."""
    titles: dict[str, str | None] = {}
    for direct in answer.direct:
        titles.setdefault(direct.phrase.source, direct.phrase.title)
    for quote in answer.quotes:
        titles.setdefault(quote.source, quote.title)
    return list(titles.items())


def keyboard(answer: Answer, key: str) -> InlineKeyboardMarkup | None:
    """Sources (when anything was retrieved) and Whole article (per cited article) buttons."""
    if not answer.passages and not answer.quotes:
        return None
    question = answer.standalone_question or answer.question
    sources = InlineKeyboardButton(SOURCES_LABEL, callback_data=sources_data(key, question))
    articles = cited(answer)[:ARTICLE_BUTTONS]
    if len(articles) <= 1:
        row = [sources] + [
            InlineKeyboardButton(ARTICLE_LABEL, callback_data=article_data(s)) for s, _ in articles
        ]
        return InlineKeyboardMarkup([row])
    rows = [[sources]] + [
        [InlineKeyboardButton(article_label(s, t), callback_data=article_data(s))]
        for s, t in articles
    ]
    return InlineKeyboardMarkup(rows)


def article_label(source: str, title: str | None) -> str:
    """ "Whole article: <short title>" (or the file's name), cut to fit a button."""
    name = short_title(title) or Path(source).stem
    label = f"{ARTICLE_LABEL}: {name}"
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1].rstrip() + "…"


def without_sources(markup: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    """The keyboard minus its Sources button (the Whole article ones still work)."""
    rows: Sequence[Sequence[InlineKeyboardButton]] = markup.inline_keyboard if markup else ()
    kept = [
        [b for b in row if not str(b.callback_data or "").startswith(f"{SOURCES}:")] for row in rows
    ]
    kept = [row for row in kept if row]
    return InlineKeyboardMarkup(kept) if kept else None


def count(markup: InlineKeyboardMarkup | None) -> int:
    return sum(len(row) for row in markup.inline_keyboard) if markup else 0


def find_article(corpus_dir: Path, digest: str) -> Path | None:
    """The article file of the corpus folder whose source hashes to `digest`, or None.

    Only the folder's listing is searched, and it holds only files inside the folder (links
    out of it are skipped), so nothing a button says can name a path of its own.
    """
    for path in scan_corpus(corpus_dir).files:
        if source_hash(source_name(corpus_dir, path)) == digest:
            return path
    return None


def load_cited(corpus_dir: Path, digest: str) -> Article | None:
    """The article a Whole article button names, read as the indexer reads it; None when it
    is gone, unreadable, or never was (a forged button)."""
    try:
        path = find_article(corpus_dir, digest)
        return load_article(corpus_dir, path) if path is not None else None
    except (ArticleFileError, NewsbotError):  # unreadable now, or the corpus folder itself
        return None
