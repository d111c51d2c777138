"""Hostile queries for the llama-index adapters (`bot.answering.llamaindex`): an empty index,
queries of no words, of stop words only, of controls, huge ones, and odd `similarity_top_k`
values, over a real Chroma index in `tmp_path` (hashing embedder). Defects are
`xfail(strict=True)` until
fixed."""

from __future__ import annotations

import pytest
from llama_index.core.schema import QueryBundle

from bot.answering.llamaindex import NewsbotRetriever
from bot.settings import BotSettings
from index.build import build_index


@pytest.fixture
def indexed(make_settings, built_index):
    settings = make_settings(BotSettings)
    built_index(settings)
    return settings


def test_an_empty_index_retrieves_nothing_for_any_query(make_settings, tmp_path):
    empty = tmp_path / "empty-corpus"
    empty.mkdir()
    settings = make_settings(BotSettings, corpus_dir=empty)
    build_index(settings)
    retriever = NewsbotRetriever.from_settings(settings)
    for query in ["What did Smith say about the drones?", "", "the of and", "on 9 November 2022"]:
        assert retriever.retrieve(query) == []


@pytest.mark.parametrize(
    "query",
    ["", "   ", "the of and what is", "???", "\x00\x1b[31m\u202e\u200b", "x" * 100_000,
     "drones " * 20_000, "on 31 February 2022", "between 2022-11-09 and 2021-01-01"],
)  # fmt: skip
def test_odd_queries_retrieve_real_chunks_without_error(indexed, query):
    retriever = NewsbotRetriever.from_settings(indexed, similarity_top_k=4)
    nodes = retriever.retrieve(QueryBundle(query))
    assert len(nodes) <= 4
    for node in nodes:
        source = node.node.metadata["source"]
        text = (indexed.corpus_dir / source).read_text(encoding="utf-8")
        assert text[node.node.start_char_idx : node.node.end_char_idx] == node.node.text


def test_a_negative_top_k_is_refused(indexed):
    retriever = NewsbotRetriever.from_settings(indexed)
    with pytest.raises(ValueError):
        NewsbotRetriever(retriever.retriever, similarity_top_k=-1).retrieve("drones")


@pytest.mark.parametrize("top_k", [0, -1, 2.5, 3.0, "3", None, True])
def test_a_top_k_that_is_not_a_whole_number_of_one_or_more_is_refused_at_construction(
    indexed, top_k
):
    hybrid = NewsbotRetriever.from_settings(indexed).retriever
    with pytest.raises(ValueError, match="similarity_top_k must be a whole number, 1 or more"):
        NewsbotRetriever(hybrid, similarity_top_k=top_k)
    if top_k is not None:  # None means "the settings' top_k" there
        with pytest.raises(ValueError, match="similarity_top_k"):
            NewsbotRetriever.from_settings(indexed, similarity_top_k=top_k)


def test_a_numpy_integer_top_k_is_a_whole_number(indexed):
    numpy = pytest.importorskip("numpy")
    hybrid = NewsbotRetriever.from_settings(indexed).retriever
    nodes = NewsbotRetriever(hybrid, similarity_top_k=numpy.int64(2)).retrieve("drones")
    assert 1 <= len(nodes) <= 2
