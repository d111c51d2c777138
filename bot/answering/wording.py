"""How answers are worded, the same in every front end: labels, counts, lists, the plain text.

    format_answer(quotes, direct)   an extractive answer as plain text (`Answer.text`)
    refusal_text(articles)          the general refusal
    source_label(source, title, date), short_title(title), direct_line(direct)
    by_source(quotes), listed(names), articles(count)

The answerer words `Answer.text` with these; the terminal (`bot.cli.render`) and Telegram
(`bot.telegram.formatting`) renderers lay out the same pieces with their own markup, so an article
is labelled and a direct answer is counted alike everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.answering.types import DirectAnswer, Quote

TITLE_CHARS = 70  # a headline is cut to this in labels ("…" included)
LISTED = 3  # names `listed` shows before "and 2 more"


def refusal_text(articles: int) -> str:
    return (
        f"I could not find this in the indexed articles ({articles} in all), so I cannot "
        "answer it from them. Try naming a person, place or event the articles cover."
    )


def short_title(title: str | None) -> str | None:
    if not title:
        return None
    if len(title) <= TITLE_CHARS:
        return title
    cut = title[: TITLE_CHARS - 1]
    space = cut.rfind(" ")  # at a word's end: "too soon for conclusions", not "conclusion…"
    return (cut[:space] if space > TITLE_CHARS // 2 else cut).rstrip(" ,;:–—-") + "…"


def source_label(source: str, title: str | None, date: str | None) -> str:
    """ "000_x.txt · Headline of the article · 2022-11-10" """
    parts = [source]
    if title:
        parts.append(short_title(title))
    if date:
        parts.append(date)
    return " · ".join(parts)


def listed(names: Sequence[str], most: int = LISTED) -> str:
    """ "a.txt, b.txt and c.txt"; past `most` names, "... and 2 more"."""
    if len(names) > most:
        return ", ".join(names[:most]) + f" and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def articles(count: int) -> str:
    return f"{count} article{'s' * (count != 1)}"


def direct_line(direct: DirectAnswer) -> str:
    """ "Russian Defense Minister — 1 article" """
    return f"{direct.text} — {articles(len(direct.sources))}"


def by_source(quotes: Sequence[Quote]) -> list[list[Quote]]:
    """Quotes grouped by file, files in the order the answer first cites them."""
    groups: dict[str, list[Quote]] = {}
    for quote in quotes:
        groups.setdefault(quote.source, []).append(quote)
    return list(groups.values())


def format_answer(quotes: Sequence[Quote], direct: Sequence[DirectAnswer] = ()) -> str:
    """Plain text: the direct answer(s), then each source's label and its quotes, verbatim."""
    blocks = ["\n".join(direct_line(d) for d in direct)] if direct else []
    for own in by_source(quotes):
        lines = [source_label(own[0].source, own[0].title, own[0].date)]
        lines += [f"  > {q.shown}" for q in own]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
