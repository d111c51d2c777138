"""The grounding check (`index.articles.ArticleTexts`) and the answer's check step
(`bot.answering.grounding`): what is shown as an article's words is the file's text at its
offsets."""

from __future__ import annotations

import shutil

import pytest

from bot.answering.grounding import Grounding
from bot.answering.read import Sentence
from bot.answering.retrieve import Hit
from index.articles import ArticleTexts
from index.build import build_index
from index.embeddings import make_embedder
from index.errors import IndexMismatchError
from index.store import ChunkStore, chunking_id

BODY = "Iran has supplied drones to Russia. Officials said the drones hit power stations."


@pytest.fixture
def article(tmp_path, write_article):
    return write_article(tmp_path / "news", "drones.txt", BODY, title="Drones", date="2022-11-01")


def chunk_of(path, source: str) -> Hit:
    """The whole body of the article at `path` as one retrieved chunk."""
    text = path.read_text(encoding="utf-8")
    start = text.index(BODY)
    meta = {"source": source, "start": start, "end": start + len(BODY), "title": "Drones"}
    return Hit(f"{source}#1", BODY, meta | {"date": "2022-11-01"})


def sentence_of(hit: Hit, words: str) -> Sentence:
    at = hit.text.index(words)
    return Sentence(words, hit.start + at, hit.start + at + len(words), hit, 0)


def test_says_only_the_exact_text_at_its_offsets(article):
    texts = ArticleTexts(article.parent)
    at = article.read_text(encoding="utf-8").index("drones to Russia")
    assert texts.says("drones.txt", at, at + 16, "drones to Russia")
    assert not texts.says("drones.txt", at + 1, at + 17, "drones to Russia")
    assert not texts.says("drones.txt", at, at + 16, "drones to Turkey")


def test_each_file_is_read_once_per_instance(article):
    """One instance per answer: an answer checks its quotes against one reading of a file,
    and the next answer sees the file as it is then."""
    texts = ArticleTexts(article.parent)
    at = article.read_text(encoding="utf-8").index("Russia")
    assert texts.says("drones.txt", at, at + 6, "Russia")
    article.write_text(article.read_text(encoding="utf-8").replace("Russia", "Belarus"), "utf-8")
    assert texts.says("drones.txt", at, at + 6, "Russia")
    assert not ArticleTexts(article.parent).says("drones.txt", at, at + 6, "Russia")


def test_files_gone_or_outside_the_folder_say_nothing(article, tmp_path):
    (tmp_path / "secret.txt").write_text("Iran has supplied drones", encoding="utf-8")
    texts = ArticleTexts(article.parent)
    assert not texts.says("../secret.txt", 0, 24, "Iran has supplied drones")
    assert texts.text("gone.txt") is None
    assert not texts.says("gone.txt", 0, 4, "Iran")


def test_quotes_carry_the_chunks_article_and_lose_what_the_file_no_longer_says(article):
    hit = chunk_of(article, "drones.txt")
    first = sentence_of(hit, "Iran has supplied drones to Russia.")
    second = sentence_of(hit, "Officials said the drones hit power stations.")
    article.write_text(article.read_text(encoding="utf-8").replace("power", "water"), "utf-8")
    quotes = Grounding(article.parent).quotes([first, second])
    assert [q.text for q in quotes] == ["Iran has supplied drones to Russia."]
    assert (quotes[0].source, quotes[0].title, quotes[0].date) == (
        "drones.txt",
        "Drones",
        "2022-11-01",
    )
    assert not quotes[0].cut_before and not quotes[0].cut_after


def test_a_quote_that_stops_inside_a_sentence_is_marked_cut(article):
    hit = chunk_of(article, "drones.txt")
    piece = sentence_of(hit, "Officials said the drones")
    quote = Grounding(article.parent).quote(piece.text, hit, piece.start, piece.end)
    assert quote.shown == "Officials said the drones…"


def test_unreadable_names_the_files_gone_or_the_whole_folder(article):
    grounding = Grounding(article.parent)
    assert grounding.unreadable(["drones.txt"]) is None
    article.unlink()
    grounding = Grounding(article.parent)
    assert grounding.unreadable(["drones.txt"]).startswith(
        f"drones.txt is no longer in {article.parent}, so quotes of it were left out"
    )
    shutil.rmtree(article.parent)
    assert Grounding(article.parent).unreadable(["drones.txt"]) == (
        f"The corpus folder {article.parent} is missing; run `newsbot index` after restoring it."
    )


def test_a_model_mismatch_reads_the_same_when_querying_and_when_updating(make_settings):
    """One message, whether `newsbot ask` opens the index or `newsbot index` updates it."""
    build_index(make_settings())
    other = make_settings(chunk_size=128)
    with pytest.raises(IndexMismatchError) as updating:
        build_index(other)
    store = ChunkStore(other)
    store.open()
    with pytest.raises(IndexMismatchError) as querying:
        store.check_compatible(make_embedder(other).model_id, chunking_id(other))
    assert str(updating.value) == str(querying.value)
    assert "--rebuild" in str(querying.value)
