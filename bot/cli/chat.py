"""The local chat, `newsbot chat`: questions in, quoted and cited answers out.

    run_chat(settings)  update the index, open the Answerer, then loop:
        line -> Conversation.respond(line) -> Reply -> printed

As in simonw/llm's chat, the loop never touches retrieval: `Conversation` is handed an `ask`
callback (`Answerer.answer`) and keeps the conversation (the earlier `Answer`s, which the
Answerer uses to resolve follow-ups) and the commands. The terminal side stays here in
`run_chat` and `_loop`:

- on a terminal (stdin and stdout both TTYs): a prompt, GNU readline line editing, a question
  history kept in `<store>/chat_history`, colour (unless NO_COLOR is set). Ctrl-C abandons the
  line being typed or the answer being looked for; Ctrl-D or /quit leaves.
- otherwise (questions piped in, answers piped out): no prompt, no colour, the one-line index
  summary on stderr, one answer per question on stdout, exit 0 at end of input.

Input is read with bad UTF-8 replaced (U+FFFD): one bad line is one odd question, not the end
of a piped session. Lines lose their terminal controls before they are asked, and every reply
is printable (`render` and `terminal_text`): a question or an article cannot drive the
terminal.

Start-up is kept short: the models (the query embedder, spaCy and the reranker: a few seconds)
load in a background thread while the first question is being typed, and the first answer
waits for them only if they have not finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.answering.answer import QuestionError, make_answerer
from bot.answering.types import Answer, IndexStats
from bot.cli.render import render_passages, render_text, use_color
from bot.cli.terminal_text import decoded, one_line, printable
from bot.settings import BotSettings
from index.errors import IndexBusyError, NewsbotError

HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
LOCK_WAIT = 2.0  # seconds to wait for another indexer before chatting over the index as it is
MAX_WIDTH = 100  # quotes wrap at the terminal's width, but no wider than this
PROMPT = "you> "  # as in the README; unlike "  > ", never the start of a quote line
COMMANDS = ("/help", "/sources", "/reset", "/stats", "/quit", "/exit")

HELP = """\
Ask a question about the articles, e.g. “What did Stoltenberg say about Iran?”
Follow-up questions use the conversation so far (“and what did he say about drones?”).
  /sources  the passages behind the last answer, with file and position
  /reset    forget the conversation
  /stats    what the index holds
  /help     this text
  /quit     leave (also /exit or Ctrl-D)
Ctrl-C abandons the line being typed or the answer being looked for."""

Ask = Callable[[str, Sequence[Answer]], Answer]


@dataclass(frozen=True)
class Reply:
    text: str
    quit: bool = False


class Conversation:
    """Turns each line into a reply, remembering the answers so far for follow-ups."""

    def __init__(
        self,
        ask: Ask,
        stats: Callable[[], str],
        color: bool = False,
        width: Callable[[], int | None] = lambda: None,
    ):
        self.ask = ask
        self.stats = stats
        self.color = color
        self.width = width
        self.history: list[Answer] = []

    def respond(self, line: str) -> Reply | None:
        """The reply to one line; None for a blank line. KeyboardInterrupt leaves no trace."""
        text = printable(decoded(line)).strip()
        if not text:
            return None
        if text.startswith("/"):
            return self.command(text)
        try:
            answer = self.ask(text, list(self.history))
        except QuestionError as exc:
            return Reply(printable(str(exc)))
        self.history.append(answer)
        return Reply(render_text(answer, self.color, self.width()))

    def command(self, text: str) -> Reply:
        name = text.split()[0].lower()
        if name == "/help":
            return Reply(HELP)
        if name == "/sources":
            last = self.history[-1] if self.history else None
            return Reply(render_passages(last, self.color, self.width()))
        if name == "/reset":
            self.history.clear()
            return Reply("Conversation forgotten: the next question starts afresh.")
        if name == "/stats":
            return Reply(printable(self.stats()))
        if name in ("/quit", "/exit"):
            return Reply("", quit=True)
        return Reply(f"Unknown command {one_line(name)}; /help lists the commands.")


def run_chat(settings: BotSettings, update: bool = True) -> int:
    """`newsbot chat`: update the index (unless told not to), then chat until the user leaves."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdin.reconfigure(errors="replace")  # for input() too, which decodes with it
    color = use_color(sys.stdout)
    info = sys.stdout if interactive else sys.stderr

    current: bool | None = None
    changes = ""
    if update:
        current, changes = _update_index(settings, info, interactive)
    answerer = make_answerer(settings)
    stats = answerer.stats()
    if stats.articles == 0:
        raise NewsbotError(_no_articles(settings))
    if current is None:
        current = _index_current(settings)
    # BM25 syncs here; only the models load in the background. Chroma must not be busy in a
    # thread when the interpreter exits (leaving at once then ends in a segfault).
    answerer.refresh()
    warm_up = _WarmUp(answerer.load_models)

    def ask(question: str, history: Sequence[Answer]) -> Answer:
        warm_up.wait(announce=interactive)
        return answerer.answer(question, history)

    def describe() -> str:
        return _describe_stats(answerer.stats(), _index_current(settings), settings)

    conversation = Conversation(
        ask, describe, color=color, width=_terminal_width if interactive else lambda: None
    )
    summary = one_line(dataclasses.replace(stats, current=current).describe())
    print(f"newsbot: {summary}{changes}.", file=info, flush=True)
    if interactive:
        print("Ask a question; /help lists the commands, Ctrl-D leaves.", flush=True)
        with _readline_history(settings.store_dir / HISTORY_FILE):
            return _loop(conversation, lambda: input(PROMPT), interactive=True)
    try:
        return _loop(conversation, _stdin_line, interactive=False)
    except BrokenPipeError:
        # The reader went away (`newsbot chat < questions | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _loop(conversation: Conversation, read_line: Callable[[], str], interactive: bool) -> int:
    while True:
        try:
            line = read_line()
        except EOFError:
            if interactive:
                print()
            return 0
        except KeyboardInterrupt:
            if not interactive:
                raise
            print()  # the abandoned line stays on screen; a fresh prompt follows
            continue
        try:
            reply = conversation.respond(line)
        except KeyboardInterrupt:
            if not interactive:
                raise
            print("\n(answer abandoned)\n", flush=True)
            continue
        if reply is None:
            continue
        if reply.quit:
            return 0
        print(reply.text + "\n", flush=True)


def _stdin_line() -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


# -- start-up ------------------------------------------------------------------------------
def _update_index(
    settings: BotSettings, info: TextIO, interactive: bool
) -> tuple[bool | None, str]:
    """Bring the index in line with the corpus; (whether it is now current, what changed)."""
    from bot.cli.progress import progress_bar
    from index.build import build_index

    try:
        with progress_bar("updating the index") as progress, _quiet_skips():
            report = build_index(settings, progress=progress, lock_wait=LOCK_WAIT)
    except IndexBusyError:
        print(
            "newsbot: another indexer is updating the index; chatting over it as it is.",
            file=info,
            flush=True,
        )
        return None, ""
    except KeyboardInterrupt:
        if not interactive:
            raise
        print(
            "\nnewsbot: index update interrupted; chatting over the index as it is.",
            file=info,
            flush=True,
        )
        return False, ""
    done = [
        f"{len(names)} {what}"
        for names, what in (
            (report.added, "added"),
            (report.updated, "updated"),
            (report.removed, "removed"),
            (report.skipped, "skipped"),
        )
        if names
    ]
    return True, f" ({', '.join(done)})" if done else ""


@contextlib.contextmanager
def _quiet_skips() -> Iterator[None]:
    """The indexer warns about every file it skips; the chat's summary counts them instead."""
    logger = logging.getLogger("index.build")
    if logger.getEffectiveLevel() < logging.WARNING:  # NEWSBOT_LOG_LEVEL=INFO or DEBUG
        yield
        return
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _no_articles(settings: BotSettings) -> str:
    """What to do when the index holds no article: one sentence."""
    from index.articles import list_article_files

    folder = settings.corpus_dir
    files = len(list_article_files(folder)) if folder.is_dir() else 0
    if files:
        return (
            f"None of the {files} .txt files in {folder}/ could be read as an article "
            "(`newsbot index` says why): add readable article .txt files there (or point "
            "NEWSBOT_CORPUS_DIR at them) and run `newsbot index`."
        )
    return (
        f"There are no article .txt files in {folder}/ yet: put some there (or point "
        "NEWSBOT_CORPUS_DIR at them) and run `newsbot index`."
    )


def _index_current(settings: BotSettings) -> bool | None:
    """Whether the index holds exactly the corpus folder's files, as they are now.

    Compares content hashes with the indexer's manifest, read-only; None when there is no
    manifest here (e.g. the index lives on a Chroma server another machine builds).
    """
    from index.articles import (
        ArticleFileError,
        content_hash,
        list_article_files,
        load_article,
        read_article_bytes,
        source_name,
    )

    path = settings.manifest_path
    if not path.is_file() or not settings.corpus_dir.is_dir():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            indexed = dict(db.execute("SELECT source, hash FROM files WHERE state = 'ok'"))
            pending = db.execute("SELECT COUNT(*) FROM files WHERE state != 'ok'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if pending:
        return False
    seen = 0
    for file in list_article_files(settings.corpus_dir):
        source = source_name(settings.corpus_dir, file)
        try:
            data = read_article_bytes(settings.corpus_dir, file, source)
        except ArticleFileError:
            continue  # the indexer skips it too
        if indexed.get(source) == content_hash(data):
            seen += 1
            continue
        try:
            load_article(settings.corpus_dir, file, data)
        except ArticleFileError:
            continue  # not indexable, so not missing from the index either
        return False
    return seen == len(indexed)


def _describe_stats(stats: IndexStats, current: bool | None, settings: BotSettings) -> str:
    import datetime as dt

    stats = dataclasses.replace(stats, current=current)
    where = (
        f"Chroma at {settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else f"{settings.store_dir}/"
    )
    built = (
        f", built {dt.datetime.fromtimestamp(float(stats.built_at)):%Y-%m-%d %H:%M}"
        if stats.built_at
        else ""
    )
    lines = [
        f"{stats.describe()}.",
        f"{stats.chunks} chunks in {where}{built}; articles from {settings.corpus_dir}/.",
    ]
    if current is False:
        lines.append(
            "Run `newsbot index` (here in another terminal is fine) to bring in the changes; "
            "this chat picks them up at its next question."
        )
    return "\n".join(lines)


class _WarmUp:
    """Runs `load` in a background thread; `wait()` returns when it is done (or re-raises)."""

    def __init__(self, load: Callable[[], None]):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), daemon=True)
        self._thread.start()

    def _run(self, load: Callable[[], None]) -> None:
        try:
            load()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by wait()
            self._error = exc

    def wait(self, announce: bool = False) -> None:
        if self._thread.is_alive() and announce:
            print("(loading the language models, a few seconds…)", file=sys.stderr, flush=True)
        while self._thread.is_alive():
            self._thread.join(0.1)  # short joins: Ctrl-C still gets through
        if self._error is not None:
            error, self._error = self._error, None
            raise error


# -- terminal ------------------------------------------------------------------------------
def _terminal_width() -> int:
    return min(shutil.get_terminal_size().columns, MAX_WIDTH)


@contextlib.contextmanager
def _readline_history(path: Path) -> Iterator[None]:
    """Line editing, /command completion, and a bounded history kept between sessions."""
    try:
        import readline
    except ImportError:  # no readline on this platform: plain input() still works
        yield
        return
    readline.set_history_length(HISTORY_LENGTH)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_completer_delims(" \t\n")
    readline.set_completer(_complete_command)
    readline.parse_and_bind("tab: complete")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


def _complete_command(text: str, state: int) -> str | None:
    if not text.startswith("/"):
        return None
    matches = [c for c in COMMANDS if c.startswith(text.lower())]
    return matches[state] if state < len(matches) else None
