"""Answers as terminal text: what `newsbot ask` prints and what `newsbot chat` shows.

    render_text(answer, color)      the direct answer, then each source's label and its quotes
    render_passages(answer, color)  the passages behind an answer, for the chat's /sources

Quote and source must be easy to tell apart. On a terminal the label is bold cyan, every line
of a quote hangs off a dim bar, and blank lines part the sources. Without colour (a pipe, a
file, NO_COLOR) the label stands at the margin, quote lines start with "  > " and there are no
blank lines inside an answer, so that a script reading `newsbot chat < questions` gets one
paragraph per answer. Quotes are never reworded: wrapping (only when a width is given) moves
line breaks, nothing else -- except that text from an article, a question or an LLM is shown
without terminal controls (`terminal_text.printable`: escape sequences, control characters
and bidi overrides are dropped), so that a file cannot clear the screen or write the clipboard.
`--json` output keeps the exact text.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from bot.answering.types import Answer, Passage, Quote
from bot.answering.wording import by_source, direct_line, source_label
from bot.cli.terminal_text import one_line, printable

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
BOLD_CYAN = "\x1b[1;36m"
DIM = "\x1b[2m"
YELLOW = "\x1b[33m"


def use_color(stream) -> bool:
    """Colour only on a terminal, and not when NO_COLOR is set (no-color.org) or TERM=dumb."""
    isatty = getattr(stream, "isatty", None)
    return bool(
        isatty
        and isatty()
        and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM", "") != "dumb"
    )


@dataclass(frozen=True)
class Style:
    color: bool

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and text else text

    def label(self, text: str) -> str:
        return self.paint(text, BOLD_CYAN)

    def dim(self, text: str) -> str:
        return self.paint(text, DIM)

    def notice(self, text: str) -> str:
        return self.paint(text, YELLOW)

    def answer(self, text: str) -> str:
        return self.paint(text, BOLD)

    @property
    def gutter(self) -> str:
        return self.dim("  │ ") if self.color else "  > "

    @property
    def gap(self) -> list[str]:
        """What parts blocks of one reply: a blank line on a terminal, nothing in plain text."""
        return [""] if self.color else []


def render_text(answer: Answer, color: bool = False, width: int | None = None) -> str:
    """The answer for a terminal: prose (if any), then quotes grouped under their sources."""
    style = Style(color)
    lines: list[str] = []
    if answer.kind == "refusal" or not answer.quotes:
        lines += _prose(answer.text, style, width)
    else:
        if answer.kind == "llm":  # the LLM's prose, then the quotes it rests on
            lines += _prose(answer.text, style, width) + style.gap
        if answer.kind == "direct":  # the answer itself first, then its evidence
            lines += [style.answer(one_line(direct_line(d))) for d in answer.direct] + style.gap
        for number, quotes in enumerate(by_source(answer.quotes)):
            lines += (style.gap if number else []) + _source_block(quotes, style, width)
    if answer.notice:
        lines += style.gap + [style.notice(line) for line in _prose(answer.notice, style, width)]
    return "\n".join(lines)


def render_passages(answer: Answer | None, color: bool = False, width: int | None = None) -> str:
    """Every passage retrieved for `answer`: file, title and date, character range, score, text."""
    style = Style(color)
    if answer is None:
        return "No answer yet: ask a question first, then /sources shows what it rests on."
    question = one_line(answer.question)
    if not answer.passages:
        return f"No passages were retrieved for “{question}”."
    count = len(answer.passages)
    lines = [f"{count} passage{'s' * (count != 1)} retrieved for “{question}”:"]
    for number, passage in enumerate(answer.passages, 1):
        quoted = " · quoted" if _is_quoted(passage, answer.quotes) else ""
        lines += style.gap + [
            style.label(f"[{number}] {_label(passage.source, passage.title, passage.date)}"),
            style.dim(
                f"    characters {passage.start}–{passage.end} · score {passage.score:.4f}{quoted}"
            ),
        ]
        for paragraph in passage.text.strip().split("\n"):
            if paragraph.strip():
                lines += _wrap(paragraph, width, indent="    ")
    return "\n".join(lines)


def _source_block(quotes: list[Quote], style: Style, width: int | None) -> list[str]:
    first = quotes[0]
    lines = [style.label(_label(first.source, first.title, first.date))]
    for quote in quotes:
        lines += [style.gutter + line[4:] for line in _wrap(quote.shown, width, indent="  > ")]
    return lines


def _label(source: str, title: str | None, date: str | None) -> str:
    return one_line(source_label(source, title, date))


def _prose(text: str, style: Style, width: int | None) -> list[str]:
    lines = _wrap(text.strip(), width)
    return lines if style.color else [line for line in lines if line.strip()]


def _wrap(text: str, width: int | None, indent: str = "") -> list[str]:
    """Lines of `text`, made printable, with `indent` before each; wrapped to `width` when one
    is given."""
    lines = []
    for paragraph in printable(text).split("\n"):
        if width is None or len(indent) + len(paragraph) <= width:
            lines.append(indent + paragraph)
            continue
        lines += textwrap.wrap(
            paragraph,
            width=max(width, len(indent) + 20),
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [indent]
    return lines


def _is_quoted(passage: Passage, quotes: list[Quote]) -> bool:
    return any(
        q.source == passage.source and q.start < passage.end and passage.start < q.end
        for q in quotes
    )
