"""The `newsbot` command: index, ask, chat, eval, telegram.

This module only parses arguments, sets up logging and turns every error a user can cause into
one line on stderr: a `NewsbotError` (bad settings among them, however the settings file is
bad) and a pydantic `ValidationError` that got past `load_settings` exit with status 1 (a
traceback only with NEWSBOT_DEBUG=1); Ctrl-C says what was interrupted and what to do about
it, with status 130. A reader that goes away (`newsbot index | head -1`) ends the command
quietly with status 141, as a pipe ends `yes`.

Everything printed that came from a file, a user or an LLM goes through `terminal_text`:
text without terminal controls, JSON with them escaped, log lines too (file names reach the
log). A question given with bytes that are not UTF-8 is answered with U+FFFD in their place.

The work lives elsewhere:
`index.build` for indexing, `bot.answering.answer` for answers, `chat`, `evaluate` and
`bot.telegram.app` for the rest. Heavy imports happen inside the subcommand that needs them, so
`newsbot --help` and a no-change `newsbot index` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from bot.cli.terminal_text import decoded, json_text, one_line, printable
from index.errors import NewsbotError

log = logging.getLogger("newsbot")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except NewsbotError as exc:
        return _failed(exc)
    except KeyboardInterrupt:
        print(f"\nnewsbot: {args.interrupted}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return 141
    except Exception as exc:
        from pydantic import ValidationError  # imported already if it is one

        if not isinstance(exc, ValidationError):
            raise
        from index.settings import settings_error

        return _failed(settings_error(exc))


INTERRUPTED = "interrupted."
PRELOAD_GRACE = 5.0  # seconds an interrupted `newsbot ask` waits for its models to finish
# A build commits as it goes (index.build: crash-safe), so the next run goes on from there.
INDEX_INTERRUPTED = "interrupted; what was indexed is kept, and `newsbot index` finishes it."


def output(text: str) -> None:
    """Print `text` to standard output: one that is closed or cannot be written (a full disk,
    an I/O error) is an error the user is told of in one line, not a silent success."""
    if sys.stdout is None:
        raise NewsbotError("standard output is closed, so the answer cannot be printed.")
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as exc:
        _drop_stdout()
        raise NewsbotError(
            f"cannot write to standard output ({exc.strerror or exc}); nothing was printed."
        ) from None


def _drop_stdout() -> None:
    """Whatever is still buffered for stdout must not fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _failed(exc: NewsbotError) -> int:
    if os.environ.get("NEWSBOT_DEBUG"):
        raise exc
    print(f"newsbot: {one_line(str(exc))}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot", description="Ask questions over a folder of news articles."
    )
    parser.set_defaults(interrupted=INTERRUPTED)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index of the corpus folder")
    p.add_argument("--rebuild", action="store_true", help="start the index from scratch")
    p.add_argument("--watch", action="store_true", help="keep updating until interrupted")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(run=_run_index, interrupted=INDEX_INTERRUPTED)

    p = sub.add_parser("ask", help="answer one question and exit")
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.set_defaults(run=_run_ask)

    p = sub.add_parser("chat", help="ask questions interactively (the main mode)")
    p.add_argument("--no-update", action="store_true", help="do not update the index first")
    p.set_defaults(run=_run_chat)

    p = sub.add_parser("eval", help="answer a JSONL question set and print quality figures")
    p.add_argument("questions", help="JSONL file in the format of the evaluation README")
    p.add_argument("--out", help="write one JSON line per question here")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--prepare", help="path of the evaluation prepare.py (for normalize)")
    p.set_defaults(run=_run_eval)

    p = sub.add_parser("telegram", help="run the Telegram bot")
    p.set_defaults(run=_run_telegram)
    return parser


class PrintableFormatter(logging.Formatter):
    """Log lines without terminal controls: messages name files and quote questions. A message
    stays on one line (a file name with a newline must not forge a second log line); only a
    traceback after it has lines of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return one_line(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # Bot API URLs carry the token; chromadb and httpx are chatty at INFO.
    for noisy in ("httpx", "httpcore", "chromadb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings():
    from bot.settings import BotSettings
    from index.settings import load_settings

    settings = load_settings(BotSettings)
    setup_logging(settings.log_level)
    return settings


# -- index ---------------------------------------------------------------------------------
def _run_index(args) -> int:
    from bot.cli.progress import progress_bar
    from index.build import build_index, watch_index

    settings = _settings()
    if args.watch:
        try:
            for report in watch_index(settings, rebuild=args.rebuild):
                _print_report(report, settings, args.json)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends, even mid-build: the next build resumes it
        return 0
    with progress_bar("embedding", enabled=not args.json) as progress:
        report = build_index(settings, rebuild=args.rebuild, progress=progress)
    _print_report(report, settings, args.json)
    return 0


def _print_report(report, settings, as_json: bool) -> None:
    if as_json:
        output(json_text(report.to_dict()))
        return
    output(format_report(report, settings))


def format_report(report, settings) -> str:
    def names(items: list[str]) -> str:
        shown = ", ".join(one_line(item) for item in items[:5])
        return f" ({shown}{', …' if len(items) > 5 else ''})" if items else ""

    folder = one_line(str(settings.corpus_dir))
    lines = [
        f"Index of {folder}/ — {report.articles} articles, {report.chunks} chunks"
        f"{' (rebuilt)' if report.rebuilt else ''}",
        f"  added {len(report.added)}{names(report.added)}",
        f"  updated {len(report.updated)}{names(report.updated)}",
        f"  removed {len(report.removed)}{names(report.removed)}",
        f"  unchanged {len(report.unchanged)}",
        f"  skipped {len(report.skipped)}",
    ]
    skipped = sorted(report.skipped, key=lambda s: s["source"])
    lines += [f"    {one_line(s['source'])}: {one_line(s['reason'])}" for s in skipped]
    lines += [
        f"  warning {one_line(w['source'])}: {one_line(w['warning'])}" for w in report.warnings
    ]
    rate = report.chunks_written / report.seconds if report.seconds else 0.0
    lines.append(
        f"  chunks written {report.chunks_written} in {report.seconds:.1f} s"
        + (f" ({rate:.0f} chunks/s)" if report.chunks_written else "")
    )
    return "\n".join(lines)


# -- ask / chat / eval / telegram -----------------------------------------------------------
def _run_ask(args) -> int:
    import datetime as dt

    from bot.cli.prefetch import prefetch
    from bot.cli.preload import preload_models

    settings = _settings()
    question, today = printable(decoded(args.question)), dt.date.today()
    # Retrieval starts in a forked child first (no thread may run yet), then the reading
    # models load in a thread while this one imports the rest: see bot.cli.prefetch.
    retriever = prefetch(settings, question, today)
    loading = preload_models(settings)
    try:
        from bot.answering.answer import make_answerer
        from bot.cli.render import render_text, use_color

        answerer = make_answerer(settings, retriever=retriever)
        answer = answerer.answer(question, [], asked_on=today)
        if args.json:
            output(json_text(answer.to_dict()))
        else:
            output(render_text(answer, color=use_color(sys.stdout)))
    except BaseException:
        # Ctrl-C or an error: wait for the models a little only. A Ctrl-C that lands while
        # both threads import can leave an import lock held, and the preload never ends.
        loading.join(timeout=PRELOAD_GRACE)
        raise
    else:
        # An answer that needs no reranker can be ready while its ONNX session is still
        # being made; leaving then aborts in ONNX Runtime's teardown (status 134).
        loading.join()
    finally:
        if retriever is not None:
            retriever.close()
    return 0


def _run_chat(args) -> int:
    from bot.cli.chat import run_chat

    status = run_chat(_settings(), update=not args.no_update)
    # Leave without the interpreter's teardown: a model that was still loading in the
    # background when the user pressed Ctrl-C left ONNX Runtime's native threads in a state
    # whose teardown aborts ("terminate called without an active exception"), after the chat
    # had ended well. Everything the chat writes (its history) is written by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _run_eval(args) -> int:
    from bot.cli.evaluate import run_eval

    return run_eval(
        _settings(),
        args.questions,
        out=args.out,
        limit=args.limit,
        as_json=args.json,
        prepare=args.prepare,
    )


def _run_telegram(args) -> int:
    from bot.telegram.app import run_telegram

    return run_telegram(_settings())


if __name__ == "__main__":
    sys.exit(main())
