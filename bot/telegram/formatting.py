"""Telegram's side of an answer, as pure functions: HTML messages, split to fit.

Besides answers: `/sources`, whole articles (`render_article`: the body under its label, in
numbered parts), the one message an inline result sends (`render_inline`: its question first,
cut to one message), and the short lines that answer a pressed button.

Every message the bot sends is built here, in Telegram's HTML parse mode, and every piece of
corpus or user text goes through `html.escape` on its way in, so no article can produce the
Bot API's "Can't parse entities" (an article full of `<`, `&`, `*`, `_`, `[` or backticks is
just text: HTML mode gives Markdown's characters no meaning).

A message holds at most 4,096 characters. An answer is a list of self-contained blocks (a
paragraph, or one quote under its source's label) packed greedily into messages; a message is
only ever cut between blocks, never inside a quote, a tag or an entity. When a source's quotes
run on into the next message, its label is repeated there. A single quote too long for one
message is cut at sentence boundaries (words, if a sentence is itself too long; the longest
pieces that fit, if a word is) *before* it is escaped, and each piece gets its own tags. Cutting
takes time linear in the text, since a whole article may be one 10 MB word: lengths are added
up as pieces grow, never measured again, and a giant word is cut window by window.

Lengths are counted on the HTML source in UTF-16 code units, which is never less than what
Telegram counts (the text after parsing, in UTF-16).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from bot.answering.types import Answer, IndexStats, Passage, Quote
from bot.answering.wording import by_source, direct_line, short_title
from index.articles import Article
from index.chunking import split_sentences

MESSAGE_LIMIT = 4096
MIN_BUDGET = 64  # room for text in a part, whatever the label takes

START = (
    "Hello! I answer questions about a collection of news articles. I reply with quotes from "
    "the articles, and name the file each quote comes from.\n\n"
    "Just ask, e.g. <i>What did Stoltenberg say about Iran?</i> Follow-up questions work too; "
    "/reset starts afresh. /help lists the commands."
)
HELP = (
    "<b>Ask a question</b> in plain words and I quote the articles that answer it.\n"
    "In a group, mention me, reply to one of my messages, or use /ask &lt;question&gt;.\n"
    "Under each answer, <b>Sources</b> shows the passages I read and <b>Whole article</b> the "
    "article I quote. In any other chat, type my @username and a question to send my answer "
    "there.\n\n"
    "/ask &lt;question&gt; – ask in a group\n"
    "/sources – the full passages behind my last answer\n"
    "/stats – how many articles I know, and how fresh the index is\n"
    "/reset – forget our conversation so far\n"
    "/reindex – update the index (admins only)\n"
    "/help – this message"
)
NOT_ALLOWED = "Sorry, this bot is private: it only answers the people it was set up for."
NOT_TEXT = "I can only read text. Please type your question."
EDITED = "I only read new messages. Please send your question again as a new message."
UNKNOWN_COMMAND = "I do not know that command. /help lists what I can do."
ASK_USAGE = "Ask like this: <code>/ask What did Stoltenberg say about Iran?</code>"
APOLOGY = "Sorry, something went wrong while answering. Please try again in a moment."
RESET = "Done: I have forgotten our conversation. Ask away."
NO_SOURCES = "There is no answer to show sources for yet. Ask a question first."
ADMINS_ONLY = "Sorry, only the bot's admins may update the index."
INDEX_BUSY = "The index is being updated right now. Please try again when that has finished."
REINDEX_STARTED = "Updating the index…"
NO_PASSAGES = "No passages were retrieved for: {question}"
# Answers to a pressed button (answerCallbackQuery: a short line shown over the chat).
TOO_OLD = "This answer is too old to show its sources again. Please ask the question again."
BUTTON_BROKEN = "This button no longer works. Please ask the question again."
ARTICLE_GONE = "That article is no longer in the collection. Please ask again."
ARTICLE_MESSAGES = 3  # a longer article is sent as a .txt document (see `bot.telegram.app`)
CAPTION_LIMIT = 1024


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji counts two; a lone surrogate,
    which JSON can carry in from a user, one)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def plain(text: str) -> str:
    """User or corpus text, safe in a Telegram HTML message (a lone surrogate, which no UTF-8
    message can hold, shown as U+FFFD)."""
    return escape(LONE_SURROGATE.sub("\ufffd", text), quote=False)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# -- answers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """A piece of a message that can stand alone: `text` (plain) wrapped in `tag`.

    Blocks of one source share its `label` (HTML), shown once above them, and again at the top
    of the next message when they run on into it.
    """

    text: str
    tag: str = ""
    label: str = ""

    def html(self, text: str | None = None) -> str:
        body = plain(self.text if text is None else text)
        if not self.tag:
            return body
        name = self.tag.split()[0]
        return f"<{self.tag}>{body}</{name}>"

    def pieces(self, budget: int) -> list[str]:
        """The block as HTML, cut at sentence or word boundaries if it exceeds `budget`."""
        whole = self.html()
        if tg_len(whole) <= budget:
            return [whole]
        overhead = tg_len(self.html(""))
        return [self.html(t) for t in split_text(self.text, max(budget - overhead, 16))]


def render_html(answer: Answer, limit: int = MESSAGE_LIMIT) -> list[str]:
    """An answer as Telegram HTML messages of at most `limit` characters, in order."""
    return pack(answer_blocks(answer), limit)


def answer_blocks(answer: Answer) -> list[Block]:
    blocks: list[Block] = []
    if answer.kind in ("refusal", "llm") and answer.text.strip():  # no quotes, or an LLM's words
        blocks += [Block(p) for p in paragraphs(answer.text)]
    blocks += [Block(direct_line(d), "b") for d in answer.direct]
    for quotes in by_source(answer.quotes):
        label = source_html(quotes[0])
        blocks += [Block(q.shown, "blockquote", label) for q in quotes]
    if answer.notice:
        blocks.append(Block(answer.notice, "i"))
    return blocks


def render_sources(answer: Answer | None, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`/sources`: every passage retrieved for the last answer, in full, under its label."""
    if answer is None:
        return [NO_SOURCES]
    question = answer.standalone_question or answer.question
    if not answer.passages:
        return [NO_PASSAGES.format(question=plain(question))]
    blocks = [Block(f"Passages retrieved for: {question}", "b")]
    for number, passage in enumerate(answer.passages, 1):
        label = f"{number}. {source_html(passage)}"
        blocks.append(Block(passage.text, "blockquote expandable", label))
    return pack(blocks, limit)


@dataclass(frozen=True)
class InlineAnswer:
    """An answer offered in inline mode: the result's title and description, and the one
    message it sends."""

    title: str
    description: str
    html: str


def render_inline(answer: Answer, bot_username: str, limit: int = MESSAGE_LIMIT) -> InlineAnswer:
    """An answer as one message that names its question (the chat it lands in never saw it
    asked); what does not fit is left out, and the message says where the rest is."""
    question = Block(answer.question, "b")
    parts = pack([question, *answer_blocks(answer)], limit)
    if len(parts) > 1:
        more = f"<i>Shortened: ask @{plain(bot_username)} for the whole answer.</i>"
        parts = pack([question, *answer_blocks(answer)], limit - tg_len(more) - 2)
        parts[0] += f"\n\n{more}"
    if answer.kind == "refusal":
        title = "No answer in the articles"
    elif answer.kind == "llm":
        title = answer.text
    elif answer.direct:
        title = direct_line(answer.direct[0])
    elif answer.quotes:
        title = answer.quotes[0].shown
    else:
        title = answer.text
    sources = list(dict.fromkeys(q.source for q in answer.quotes))
    description = f"From {', '.join(sources)}" if sources else answer.question
    return InlineAnswer(_cut(title, 100), _cut(description, 200), parts[0])


def _cut(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


# -- whole articles -----------------------------------------------------------------------
def render_article(article: Article, limit: int = MESSAGE_LIMIT) -> list[str]:
    """An article's body as HTML messages, each headed by its label (and "i/n" when split);
    paragraphs are cut like quotes, at sentences, and never inside a tag. Megabytes take a
    second or more: `bot.telegram.app` calls this in a worker thread."""
    header = source_html(article)
    lines = [line.strip() for line in article.body.splitlines() if line.strip()]
    digits = 2
    while True:  # room for " (i/n)": packed again in the rare case n has more digits
        room = limit - tg_len(header) - len(f" ({'9' * digits}/{'9' * digits})") - 2
        parts = pack([Block(line) for line in lines], max(room, MIN_BUDGET))
        if len(str(len(parts))) <= digits:
            break
        digits = len(str(len(parts)))
    if len(parts) == 1:
        return [f"{header}\n\n{parts[0]}"]
    return [f"{header} ({i}/{len(parts)})\n\n{part}" for i, part in enumerate(parts, 1)]


def article_caption(article: Article) -> str:
    """The caption of an article sent as a document (Telegram allows 1,024 characters)."""
    caption = source_html(article)
    if tg_len(caption) <= CAPTION_LIMIT:
        return caption
    return plain(_cut(article.source, CAPTION_LIMIT // 5))  # "&amp;" is five characters


def source_html(item: Quote | Passage | Article) -> str:
    """`file.txt · Title · date`, the file name as code (one tap copies it in Telegram)."""
    parts = [f"<code>{plain(item.source)}</code>"]
    if item.title:
        parts.append(f"<b>{plain(short_title(item.title) or '')}</b>")
    if item.date:
        parts.append(plain(item.date))
    return " · ".join(parts)


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def pack(blocks: Iterable[Block], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Fill messages with whole blocks; blocks of one label sit under it, one per line."""
    parts: list[str] = []
    current: list[str] = []  # the message being filled, in pieces: joined once, when full
    size, label = 0, None  # its length (lengths add up, so nothing is measured twice)
    for block in blocks:
        label_size = tg_len(block.label) + 1 if block.label else 0
        budget = max(limit - label_size, MIN_BUDGET)
        for piece in block.pieces(budget):
            piece_size = tg_len(piece)
            fresh = [block.label, "\n", piece] if block.label else [piece]
            fresh_size = label_size + piece_size
            if not size:
                current, size = fresh, fresh_size
            elif block.label and block.label == label:
                if size + 1 + piece_size <= limit:
                    current += ["\n", piece]
                    size += 1 + piece_size
                else:
                    parts.append("".join(current))
                    current, size = fresh, fresh_size
            elif size + 2 + fresh_size <= limit:
                current += ["\n\n", *fresh]
                size += 2 + fresh_size
            else:
                parts.append("".join(current))
                current, size = fresh, fresh_size
            label = block.label
    if size:
        parts.append("".join(current))
    return parts


def split_text(text: str, budget: int) -> list[str]:
    """Cut plain text into pieces whose escaped form fits `budget`: at sentences, else words.

    Pieces are consecutive slices of `text` (stripped), so nothing is lost or reordered. Time
    is linear in the length of `text`, however long its words (a hostile article may be one
    10 MB word, and the whole article is cut).
    """
    pieces: list[str] = []
    current: list[str] = []  # units of the piece being filled, joined by spaces
    size = 0  # its escaped length
    for unit in _units(text, budget):
        unit_size = tg_len(plain(unit))
        if current and size + 1 + unit_size <= budget:
            current.append(unit)
            size += 1 + unit_size
        else:
            if current:
                pieces.append(" ".join(current))
            current, size = [unit], unit_size
    if current:
        pieces.append(" ".join(current))
    return pieces


def _units(text: str, budget: int) -> list[str]:
    """Sentences of `text`; a sentence too long for `budget` becomes words (or pieces of
    words); none is empty."""
    units: list[str] = []
    for a, b in split_sentences(text):
        sentence = text[a:b].strip()
        if tg_len(plain(sentence)) <= budget:
            units.append(sentence)
            continue
        for word in sentence.split():
            if tg_len(plain(word)) <= budget:
                units.append(word)
            else:  # a 5,000-character URL, say
                units += _cut_word(word, budget)
    return units


def _cut_word(word: str, budget: int) -> list[str]:
    """`word` in consecutive pieces, each the longest run of what is left whose escaped form
    fits `budget` (at least one character).

    A piece is at most `budget` characters (each counts at least one), found by bisecting that
    window when it does not fit whole, so a word costs O(len log budget); measuring the
    ever-shorter rest of the word, piece after piece, would be quadratic in its length.
    """
    pieces: list[str] = []
    start = 0
    while start < len(word):
        end = min(start + max(budget, 1), len(word))
        if tg_len(plain(word[start:end])) > budget:
            fits, too_long = start + 1, end  # `fits` fits, or is the one character that must go
            while too_long - fits > 1:
                middle = (fits + too_long) // 2
                if tg_len(plain(word[start:middle])) <= budget:
                    fits = middle
                else:
                    too_long = middle
            end = fits
        pieces.append(word[start:end])
        start = end
    return pieces


# -- other messages -----------------------------------------------------------------------
def render_stats(stats: IndexStats, now: float | None = None) -> str:
    lines = [f"<b>{stats.articles}</b> articles, {stats.chunks} passages indexed."]
    if stats.date_min and stats.date_max:
        lines.append(f"Articles dated {plain(stats.date_min)} to {plain(stats.date_max)}.")
    if stats.built_at:
        now = dt.datetime.now().timestamp() if now is None else now
        built = dt.datetime.fromtimestamp(float(stats.built_at)).strftime("%Y-%m-%d %H:%M")
        lines.append(f"Index last changed {built} ({age(now - float(stats.built_at))} ago).")
    return "\n".join(lines)


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def render_report(report) -> str:
    """What `/reindex` changed (an `index.build.BuildReport`)."""

    def names(items: Sequence[str]) -> str:
        shown = ", ".join(f"<code>{plain(s)}</code>" for s in items[:5])
        return f": {shown}{', …' if len(items) > 5 else ''}" if items else ""

    if not report.changed and not report.skipped:
        head = "The index was already up to date."
    else:
        head = "Index updated."
    lines = [
        head,
        f"added {len(report.added)}{names(report.added)}",
        f"updated {len(report.updated)}{names(report.updated)}",
        f"removed {len(report.removed)}{names(report.removed)}",
        f"unchanged {len(report.unchanged)}",
    ]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)}{names([s['source'] for s in report.skipped])}")
    lines.append(
        f"Now {report.articles} articles, {report.chunks} passages ({report.seconds:.1f} s)."
    )
    return "\n".join(lines)


def html_to_text(html: str) -> str:
    """Our own HTML back to plain text (the fallback if Telegram ever rejects a message)."""
    from html import unescape

    return unescape(re.sub(r"</?[a-z][^>]*>", "", html))
