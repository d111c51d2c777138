"""How answers are worded (`bot.answering.wording`), the same for the terminal and for Telegram."""

from __future__ import annotations

from bot.answering.types import Answer, DirectAnswer, Quote
from bot.answering.wording import (
    TITLE_CHARS,
    articles,
    by_source,
    direct_line,
    format_answer,
    listed,
    short_title,
    source_label,
)
from bot.cli.render import render_text
from bot.telegram import formatting as telegram_format

LONG_TITLE = (
    "Russia’s Kherson retreat is ‘encouraging’ but too soon for conclusions, says NATO chief"
)


def quote(text: str, source: str, start: int = 0, **details) -> Quote:
    return Quote(text, source, start, start + len(text), **details)


def test_a_long_title_is_cut_at_a_word_to_a_label_with_an_ellipsis():
    cut = short_title(LONG_TITLE)
    assert len(cut) <= TITLE_CHARS and cut.endswith("…")
    assert cut == "Russia’s Kherson retreat is ‘encouraging’ but too soon for…"
    assert short_title("x" * 100) == "x" * (TITLE_CHARS - 1) + "…"  # one long word: cut it
    assert short_title("Short") == "Short" and short_title(None) is None
    assert source_label("a.txt", LONG_TITLE, "2022-11-10") == f"a.txt · {cut} · 2022-11-10"
    assert source_label("a.txt", None, None) == "a.txt"


def test_lists_and_counts_read_as_english():
    assert listed(["a.txt"]) == "a.txt"
    assert listed(["a.txt", "b.txt", "c.txt"]) == "a.txt, b.txt and c.txt"
    assert listed(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
    assert (articles(1), articles(2)) == ("1 article", "2 articles")


def test_quotes_group_by_file_in_the_order_first_cited():
    a1, b1, a2 = quote("One.", "a.txt"), quote("Two.", "b.txt"), quote("Three.", "a.txt", 9)
    assert by_source([a1, b1, a2]) == [[a1, a2], [b1]]


def test_the_plain_text_answer_leads_with_the_direct_answer():
    evidence = quote("Russian Defense Minister Sergey Shoigu ordered it.", "a.txt", title="T")
    phrase = quote("Sergey Shoigu", "a.txt", 25)
    direct = DirectAnswer(phrase, ("a.txt", "b.txt"))
    assert direct_line(direct) == "Sergey Shoigu — 2 articles"
    assert format_answer([evidence], [direct]) == (
        "Sergey Shoigu — 2 articles\n\na.txt · T\n  > Russian Defense Minister Sergey Shoigu "
        "ordered it."
    )


def test_terminal_and_telegram_label_an_article_alike():
    q = quote("Iran is supporting Russia.", "001.txt", title=LONG_TITLE, date="2022-11-10")
    answer = Answer(question="q?", text=format_answer([q]), quotes=[q])
    label = source_label("001.txt", LONG_TITLE, "2022-11-10")
    assert label in render_text(answer)
    html = "".join(telegram_format.render_html(answer))
    assert telegram_format.html_to_text(html).count(short_title(LONG_TITLE)) == 1
