"""Telegram HTML: everything escaped, messages split at block boundaries, user lists."""

from __future__ import annotations

import html
import logging
import re

import pytest
from fake_bot_api import TAG, html_error

from bot.answering.types import Answer, DirectAnswer, IndexStats, Passage, Quote
from bot.answering.wording import format_answer
from bot.telegram.formatting import (
    MESSAGE_LIMIT,
    NO_SOURCES,
    article_caption,
    html_to_text,
    pack,
    plain,
    render_article,
    render_html,
    render_inline,
    render_report,
    render_sources,
    render_stats,
    split_text,
    tg_len,
)
from index.articles import Article
from index.build import BuildReport
from index.errors import SettingsError

SPECIALS = "a < b && c > d; <b>bold</b> <script>x</script> *star* _under_ [link](u) `tick` &amp;"


def quote(text: str, source: str = "001_x.txt", title: str | None = "Title", date=None) -> Quote:
    return Quote(text, source, 0, len(text), title, date)


def extractive(*quotes: Quote) -> Answer:
    return Answer(question="q?", text=format_answer(list(quotes)), quotes=list(quotes))


def visible(part: str) -> str:
    return html.unescape(TAG.sub("", part))


def assert_valid(parts: list[str], limit: int = MESSAGE_LIMIT) -> None:
    assert parts
    for part in parts:
        assert html_error(part) is None, part
        assert tg_len(part) <= limit


# -- escaping -----------------------------------------------------------------------------
def test_every_piece_of_corpus_text_is_escaped():
    answer = extractive(
        quote(SPECIALS, source="we<ird>&file.txt", title="Title <i> & *co*", date="2022-11-09")
    )
    answer.notice = "LLM <failed> & fell back"
    [message] = render_html(answer)
    assert_valid([message])
    text = visible(message)
    assert SPECIALS in text
    assert "we<ird>&file.txt" in text and "Title <i> & *co*" in text and "2022-11-09" in text
    assert "LLM <failed> & fell back" in text
    assert "<blockquote>" in message and "<code>we&lt;ird&gt;&amp;file.txt</code>" in message


def test_refusal_and_llm_prose_are_shown_as_escaped_text():
    refusal = Answer(question="q", text="Nothing on <that> & so on.\n\nTry again.", refused=True)
    [message] = render_html(refusal)
    assert_valid([message])
    assert message == "Nothing on &lt;that&gt; &amp; so on.\n\nTry again."

    prose = Answer(question="q", text="He said [1] <yes>.", quotes=[quote("Yes & no.")], kind="llm")
    [message] = render_html(prose)
    assert_valid([message])
    assert visible(message).startswith("He said [1] <yes>.")
    assert "<blockquote>Yes &amp; no.</blockquote>" in message


def test_a_direct_answer_comes_first_in_bold_with_its_article_count():
    shoigu = "Russian Defense Minister Sergey Shoigu ordered a withdrawal <now>."
    evidence = quote(shoigu, "000_x.txt")
    phrase = Quote("Russian Defense Minister", "000_x.txt", 0, 24, "Title", None)
    answer = Answer(
        question="What is Sergey Shoigu's job?",
        text=format_answer([evidence], [DirectAnswer(phrase, ("000_x.txt",))]),
        quotes=[evidence],
        direct=[DirectAnswer(phrase, ("000_x.txt",))],
    )
    assert answer.kind == "direct"
    [message] = render_html(answer)
    assert_valid([message])
    assert message.startswith("<b>Russian Defense Minister — 1 article</b>\n")
    assert (
        "<blockquote>Russian Defense Minister Sergey Shoigu ordered a withdrawal &lt;now&gt;."
        in message
    )


def test_quotes_are_grouped_under_their_source_label():
    answer = extractive(
        quote("First.", "a.txt", "Alpha", "2022-01-01"),
        quote("Second.", "b.txt", None, None),
        quote("Third.", "a.txt", "Alpha", "2022-01-01"),
    )
    [message] = render_html(answer)
    assert message == (
        "<code>a.txt</code> · <b>Alpha</b> · 2022-01-01\n"
        "<blockquote>First.</blockquote>\n<blockquote>Third.</blockquote>\n\n"
        "<code>b.txt</code>\n<blockquote>Second.</blockquote>"
    )


# -- splitting ----------------------------------------------------------------------------
def test_long_answers_split_between_quotes_in_order_with_labels_repeated():
    quotes = [quote(f"Quote {i} says {'& <x> ' * 60}end {i}.", f"s{i % 3}.txt") for i in range(20)]
    parts = render_html(extractive(*quotes))
    assert len(parts) > 1
    assert_valid(parts)
    texts = [visible(p) for p in parts]
    order = sorted(range(20), key=lambda n: n % 3)  # grouped by source, in answer order
    found = [(i, t.index(f"Quote {n} says")) for n in order for i, t in enumerate(texts)
             if f"Quote {n} says" in t]  # fmt: skip
    assert len(found) == 20  # each quote whole, exactly once
    assert found == sorted(found)  # and the parts arrive in that order
    for part in parts:  # every part says where its quotes come from
        assert part.startswith("<code>s")


def test_a_quote_longer_than_a_message_is_cut_at_sentences_with_tags_reopened():
    sentences = [f"Sentence {i} has <{i}> & some *words* in it." for i in range(400)]
    long = " ".join(sentences)
    parts = render_html(extractive(quote(long, "big.txt", "Big")))
    assert len(parts) >= 3
    assert_valid(parts)
    for part in parts:
        assert part.startswith("<code>big.txt</code> · <b>Big</b>\n<blockquote>")
        assert part.endswith("</blockquote>")
        body = visible(part).split("\n", 1)[1]
        assert body.startswith("Sentence ") and body.endswith(" in it.")  # whole sentences
    bodies = [visible(p).split("\n", 1)[1] for p in parts]
    assert " ".join(bodies) == long


def test_a_giant_word_is_cut_without_breaking_an_entity():
    word = "&<>" * 3000
    parts = pack(render_blocks(word), 500)
    assert_valid(parts, 500)
    assert "".join(visible(p) for p in parts) == word


def render_blocks(text: str):
    from bot.telegram.formatting import Block

    return [Block(text, "i")]


def test_lengths_are_counted_in_utf16_units():
    assert tg_len("ab") == 2 and tg_len("📰") == 2
    emoji = "📰" * 3000  # 3,000 characters, 6,000 UTF-16 units
    parts = render_html(Answer(question="q", text=emoji, refused=True))
    assert len(parts) == 2
    assert all(tg_len(p) <= MESSAGE_LIMIT for p in parts)


def test_split_text_keeps_words_in_order_and_fits():
    text = "One two three. Four five six seven! " * 50
    pieces = split_text(text, 100)
    assert all(tg_len(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == text.split()


# A hostile article may be megabytes without a space: cutting it must take time linear in its
# length (these finish in a second; cut the quadratic way they took minutes, freezing the bot).
GIANT_WORD = "a&<😀é>" * 350_000  # 2.1 million characters, 4.2 MB escaped


def test_a_2_mb_unbreakable_word_is_cut_into_longest_pieces_that_fit_and_join_back():
    pieces = split_text(GIANT_WORD, MESSAGE_LIMIT)
    assert "".join(pieces) == GIANT_WORD
    sizes = [tg_len(html.escape(p, quote=False)) for p in pieces]
    assert max(sizes) <= MESSAGE_LIMIT
    # Each piece is as long as fits: one character more would not have.
    end = 0
    for piece in pieces[:-1]:
        end += len(piece)
        assert tg_len(html.escape(piece + GIANT_WORD[end], quote=False)) > MESSAGE_LIMIT


def test_cutting_a_word_never_stalls_on_a_tiny_budget():
    assert split_text("&&&", 1) == ["&", "&", "&"]  # a character wider than the budget goes alone
    assert split_text("ab&", 3) == ["ab", "&"]


def test_a_whole_article_of_one_giant_word_renders_in_parts_within_the_limit():
    parts = render_article(article(GIANT_WORD[:400_000]))
    assert len(parts) > 100
    assert_valid(parts)
    assert "".join(visible(p).split("\n\n", 1)[1] for p in parts) == GIANT_WORD[:400_000]


def test_a_whole_article_of_a_line_of_initials_renders():
    # Every "A." might end a sentence, and none does: the sentence so far was searched again
    # at each one (index.chunking), quadratic in the line's length.
    line = "A. " * 100_000
    parts = render_article(article(line))
    assert_valid(parts)
    assert " ".join(visible(p).split("\n\n", 1)[1] for p in parts).split() == line.split()


def test_answers_and_sources_cut_a_giant_word_the_same_way():
    word = GIANT_WORD[:300_000]
    answer = extractive(quote(word))
    answer.passages = [Passage(word, "001_x.txt", 0, len(word), "Title", None)]
    for parts in (render_html(answer), render_sources(answer)):
        assert_valid(parts)
        quoted = re.findall(r"<blockquote[^>]*>(.*?)</blockquote>", "".join(parts), re.S)
        assert html.unescape("".join(quoted)) == word


def test_sources_show_every_passage_in_full_and_split():
    passages = [
        Passage(f"Passage {i}: " + "words & <more> words. " * 60, f"f{i}.txt", 0, 10, "T", None)
        for i in range(8)
    ]
    answer = Answer(question="q <1>?", text="", passages=passages, standalone_question=None)
    parts = render_sources(answer)
    assert len(parts) > 1
    assert_valid(parts)
    joined = "\n".join(visible(p) for p in parts)
    assert "q <1>?" in joined
    for i, passage in enumerate(passages):
        assert passage.text.strip() in joined
        assert joined.index(f"Passage {i}:") < joined.index(f"Passage {i + 1}:") if i < 7 else True
    assert "<blockquote expandable>" in parts[0]
    assert render_sources(None) == [NO_SOURCES]
    nothing = Answer(question="q <2>", text="", refused=True)
    assert render_sources(nothing) == ["No passages were retrieved for: q &lt;2&gt;"]


# -- whole articles and inline answers ----------------------------------------------------
def article(body: str, source: str = "dir/we<ird>.txt", title: str | None = "A <b> & title"):
    text = f"{title}\n{body}" if title else body
    start = len(title) + 1 if title else 0
    return Article(source, text, title, "2022-11-09", ((start, len(text)),))


def test_a_short_article_is_one_message_headed_by_its_label():
    body = f"{SPECIALS}\n\nSecond paragraph."
    [message] = render_article(article(body))
    assert_valid([message])
    assert message.startswith("<code>dir/we&lt;ird&gt;.txt</code> · <b>A &lt;b&gt; &amp; title</b>")
    assert visible(message).endswith(f"{SPECIALS}\n\nSecond paragraph.")


def test_a_long_article_is_split_into_numbered_parts_losing_nothing():
    paragraphs = [f"Paragraph {i}: " + "a < b & c. " * 90 for i in range(12)]
    paragraphs.append("One giant sentence " + "é<&>" * 3000)  # longer than one message
    parts = render_article(article("\n".join(paragraphs), title=None))
    assert len(parts) > 3
    assert_valid(parts)
    assert all(p.startswith(f"<code>dir/we&lt;ird&gt;.txt</code> · 2022-11-09 ({i}/{len(parts)})")
               for i, p in enumerate(parts, 1))  # fmt: skip
    body = " ".join(visible(p).split("\n\n", 1)[1] for p in parts)
    # In order and whole (a giant word is cut into pieces, so compare without spaces).
    assert "".join(body.split()) == "".join("".join(paragraphs).split())


def test_an_article_caption_fits_telegram_caption_limit():
    assert article_caption(article("x")) == render_article(article("x"))[0].split("\n")[0]
    long = article("x", source="d/" + "n" * 3000 + ".txt")
    assert html_error(article_caption(long)) is None and len(article_caption(long)) <= 1024


def test_an_inline_answer_names_its_question_and_fits_one_message():
    answer = extractive(quote("Iran <supplies> drones & more.", "001.txt", "Kherson"))
    answer.question = "What did <he> say?"
    shown = render_inline(answer, "newsbot_test_bot")
    assert_valid([shown.html])
    assert shown.html.startswith("<b>What did &lt;he&gt; say?</b>")
    assert "Iran <supplies> drones & more." in visible(shown.html)
    assert shown.title == "Iran <supplies> drones & more." and shown.description == "From 001.txt"
    assert "Shortened" not in shown.html

    many = extractive(*[quote(f"Quote {i}: " + "word " * 150, f"{i}.txt") for i in range(12)])
    long = render_inline(many, "newsbot_test_bot")
    assert_valid([long.html])
    assert long.html.endswith("<i>Shortened: ask @newsbot_test_bot for the whole answer.</i>")
    assert "Quote 0:" in long.html and "Quote 11:" not in long.html
    assert len(long.title) <= 100 and len(long.description) <= 200

    refused = Answer(question="Who won?", text="I could not find this.", refused=True)
    assert render_inline(refused, "b").title == "No answer in the articles"
    assert "I could not find this." in render_inline(refused, "b").html


def test_html_to_text_undoes_our_markup():
    [message] = render_html(extractive(quote(SPECIALS, "a.txt", None)))
    assert html_to_text(message) == f"a.txt\n{SPECIALS}"


# -- other messages -----------------------------------------------------------------------
def test_stats_and_reindex_report():
    stats = IndexStats(12, 40, "2022-01-01", "2022-11-09", built_at=1_000_000.0)
    text = render_stats(stats, now=1_000_000.0 + 7200)
    assert html_error(text) is None
    assert "<b>12</b> articles" in text and "2022-01-01 to 2022-11-09" in text
    assert "(2 hours ago)" in text
    assert "ago" not in render_stats(IndexStats(0, 0, None, None, None))

    report = BuildReport(added=["new <1>.txt"], unchanged=["a.txt"], articles=2, chunks=5)
    text = render_report(report)
    assert html_error(text) is None
    assert "Index updated." in text and "added 1: <code>new &lt;1&gt;.txt</code>" in text
    assert "already up to date" in render_report(BuildReport(unchanged=["a.txt"]))


# -- the token ----------------------------------------------------------------------------
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"


@pytest.mark.parametrize("token", ["", "   ", "not-a-token", "123456789:short", "abc:" + "x" * 35])
def test_missing_or_malformed_token_is_one_clear_sentence(token):
    from bot.settings import BotSettings
    from bot.telegram.app import bot_token

    settings = BotSettings(telegram_bot_token=token, _env_file=None)
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN") as info:
        bot_token(settings)
    message = str(info.value)
    assert "\n" not in message and (not token.strip() or token not in message)


def test_token_is_redacted_from_messages_arguments_and_tracebacks(caplog):
    from bot.telegram.app import RedactToken

    logger = logging.getLogger("test.redact")
    redact = RedactToken(TOKEN)
    caplog.handler.addFilter(redact)
    try:
        with caplog.at_level(logging.DEBUG, logger="test.redact"):
            logger.info("GET https://api.telegram.org/bot%s/getMe", TOKEN)
            logger.info(f"in the message itself: {TOKEN}")
            try:
                raise RuntimeError(f"url http://x/bot{TOKEN}/sendMessage failed")
            except RuntimeError:
                logger.exception("while sending")
        text = caplog.text
    finally:
        caplog.handler.removeFilter(redact)
    secret = TOKEN.split(":")[1]
    assert secret not in text
    assert text.count("[token]") >= 3 and "while sending" in text and "RuntimeError" in text
    assert re.search(r"bot123456789:\[token\]/getMe", text)


def test_a_lone_surrogate_from_a_user_is_counted_and_shown_safely():
    """JSON can carry "\\ud800" in a message or inline query; rendering must not fail on it."""
    assert tg_len("a\ud800b") == 3
    shown = plain("<why \ud800?>")
    assert shown == "&lt;why \ufffd?&gt;"
    assert shown.encode("utf-8")
