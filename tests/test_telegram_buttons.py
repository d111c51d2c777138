"""The buttons under a Telegram answer: callback data that fits, reads back, and names no path."""

from __future__ import annotations

import os

import pytest

from bot.answering.types import Answer, DirectAnswer, Passage, Quote
from bot.telegram import buttons


def quote(source: str, title: str | None = "Title", text: str = "Said so.") -> Quote:
    return Quote(text, source, 0, len(text), title, None)


def answer(*quotes: Quote, question: str = "What did he say?", **fields) -> Answer:
    passages = [Passage(q.text, q.source, 0, 1, q.title, None) for q in quotes]
    return Answer(question, "", quotes=list(quotes), passages=passages, **fields)


def data_of(markup) -> list[list[str]]:
    return [[b.callback_data for b in row] for row in markup.inline_keyboard]


@pytest.mark.parametrize(
    "question",
    ["What did Stoltenberg say about Iran?", "Que dit Zelensky 🇺🇦 à propos de Kherson ?" * 3, ""],
)
def test_sources_data_fits_64_bytes_and_reads_back(question):
    key = buttons.new_key()
    data = buttons.sources_data(key, question)
    assert len(data.encode()) <= 64
    button = buttons.parse(data)
    assert button.kind == buttons.SOURCES and button.key == key
    fits = len(f"s:{key}:{question}".encode()) <= 64
    assert button.question == (question if fits and question else None)


def test_article_data_is_a_short_hash_never_the_file_name():
    source = "a/very/long/folder/name/" + "x" * 200 + ".txt"
    data = buttons.article_data(source)
    assert data == f"a:{buttons.source_hash(source)}" and len(data) == 14
    assert buttons.parse(data) == buttons.Button(buttons.ARTICLE, buttons.source_hash(source))
    assert buttons.source_hash("a.txt") != buttons.source_hash("b.txt")


@pytest.mark.parametrize(
    "data",
    [None, "", "x", "s:", "s:short", "s:bad key!:q", "a:", "a:../../etc/passwd",
     "a:" + "A" * 13, "a:AAAAAAAAAAA=", "z:AAAAAAAAAAAA", "s:" + "A" * 8 + ":" + "q" * 60, 42],
)  # fmt: skip
def test_garbled_or_forged_data_reads_as_nothing(data):
    assert buttons.parse(data) is None


def test_one_cited_article_gets_sources_and_whole_article_side_by_side():
    markup = buttons.keyboard(answer(quote("001.txt"), quote("001.txt")), "k" * 8)
    [[sources, article]] = markup.inline_keyboard
    assert (sources.text, article.text) == ("Sources", "Whole article")
    assert sources.callback_data == "s:kkkkkkkk:What did he say?"
    assert article.callback_data == buttons.article_data("001.txt")


def test_several_cited_articles_get_one_labelled_button_each_up_to_a_limit():
    quotes = [
        quote(f"{i:03}.txt", f"Headline number {i} of a rather long series") for i in range(5)
    ]
    direct = DirectAnswer(quote("009.txt", None), ("009.txt",))
    markup = buttons.keyboard(answer(*quotes, direct=[direct]), "k" * 8)
    rows = markup.inline_keyboard
    assert [b.text for b in rows[0]] == ["Sources"]
    labels = [row[0].text for row in rows[1:]]
    assert labels[0] == "Whole article: 009"  # the direct answer's article comes first
    assert labels[1].startswith("Whole article: Headline number 0") and labels[1].endswith("…")
    assert len(rows) == 1 + buttons.ARTICLE_BUTTONS
    assert all(len(label) <= buttons.LABEL_CHARS for label in labels)


def test_refusals_get_sources_only_with_passages_and_nothing_without():
    passage = Passage("Read but not quoted.", "001.txt", 0, 5, None, None)
    read = Answer("q?", "No.", refused=True, passages=[passage])
    assert data_of(buttons.keyboard(read, "k" * 8)) == [["s:kkkkkkkk:q?"]]
    assert buttons.keyboard(Answer("q?", "No.", refused=True), "k" * 8) is None


def test_without_sources_keeps_the_article_buttons():
    markup = buttons.keyboard(answer(quote("1.txt"), quote("2.txt")), "k" * 8)
    kept = buttons.without_sources(markup)
    assert data_of(kept) == [[buttons.article_data("1.txt")], [buttons.article_data("2.txt")]]
    single = buttons.keyboard(answer(quote("1.txt")), "k" * 8)
    assert data_of(buttons.without_sources(single)) == [[buttons.article_data("1.txt")]]
    refusal = Answer("q?", "No.", refused=True, passages=answer(quote("1.txt")).passages)
    assert buttons.without_sources(buttons.keyboard(refusal, "k" * 8)) is None


def test_an_article_is_found_only_among_the_corpus_folder_files(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "inside.txt").write_text("Headline\nBody text here.\n", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=hunter2\n", encoding="utf-8")
    os.symlink(secret, corpus / "leak.txt")

    found = buttons.load_cited(corpus, buttons.source_hash("sub/inside.txt"))
    assert found.source == "sub/inside.txt" and found.body == "Body text here."
    for source in ("leak.txt", "../secret.txt", str(secret), "missing.txt"):
        assert buttons.load_cited(corpus, buttons.source_hash(source)) is None
    assert buttons.load_cited(tmp_path / "gone", buttons.source_hash("sub/inside.txt")) is None


@pytest.mark.parametrize("data", ["s:AAAAAAAA:\ud800", "s:AAAAAAAA:\udc80", "a:\udfff" * 4])
def test_data_that_is_not_utf8_reads_as_a_broken_button(data):
    assert buttons.parse(data) is None


def test_a_question_that_is_not_utf8_is_left_out_of_the_sources_data():
    data = buttons.sources_data("k" * 8, "Why \udc80?")
    assert data == "s:kkkkkkkk"
    assert buttons.parse(data) == buttons.Button(buttons.SOURCES, "k" * 8)
