"""The evidence gate (`bot.answering.gate`) over a real index of the small corpus (Chroma in
tmp_path, the hashing embedder): each signal, and that its bar is the policy's."""

from __future__ import annotations

import dataclasses

import pytest

from bot.answering.followup import condense
from bot.answering.gate import Closed, Gate
from bot.answering.policy import POLICY
from bot.answering.question import analyze
from bot.answering.retrieve import HybridRetriever
from bot.settings import BotSettings
from index.lexical import words

DRONES = "How many drones has Iran supplied to Russia?"


@pytest.fixture
def retriever(make_settings, built_index) -> HybridRetriever:
    settings = make_settings(BotSettings)
    built_index(settings)
    retriever = HybridRetriever.open(settings)
    retriever.sync()
    return retriever


def gate_of(retriever, policy=POLICY, margin=0.0) -> Gate:
    return Gate(policy, retriever.bm25, retriever.model_id, margin)


def closed(gate: Gate, retriever, question: str, lexical: bool = True, speaker=frozenset()):
    hits = retriever.retrieve(question, 8)
    turn = condense(question, ())
    return gate.closed(analyze(question), turn, hits, words(question), set(speaker), lexical)


def test_evidence_in_the_chunks_opens_the_gate(retriever):
    assert closed(gate_of(retriever), retriever, DRONES) is None


def test_a_name_no_article_has_closes_it_and_is_named(retriever):
    question = "What did Zorblax Quinterra say about drones?"
    assert closed(gate_of(retriever), retriever, question) == Closed("Zorblax Quinterra")


def test_a_country_is_known_by_its_other_names():
    from types import SimpleNamespace

    vocab = {w: 1 for w in words("The UK will send tents to Ukraine, British officials said.")}
    gate = Gate(POLICY, SimpleNamespace(vocab=vocab), "model")
    assert gate.unknown_name(analyze("What is Britain sending to Ukraine?")) is None
    assert gate.unknown_name(analyze("What is Zorblax sending?")) == "Zorblax"
    assert gate.unknown_name(analyze("What is France sending?")) == "France"


def test_a_name_is_known_by_its_capitalised_words():
    from types import SimpleNamespace

    vocab = {w: 1 for w in words("Russia has suffered casualties since the war began.")}
    gate = Gate(POLICY, SimpleNamespace(vocab=vocab), "model")
    question = analyze("How many casualties were there in the Iraq war?")
    assert gate.unknown_name(question) == "the Iraq war"


def test_a_question_the_chunks_hardly_cover_closes_it(retriever):
    assert closed(gate_of(retriever), retriever, "How do I bake sourdough bread?") == Closed()


def test_the_coverage_bar_is_the_policys_and_the_margin_raises_it(retriever):
    strict = dataclasses.replace(POLICY, min_coverage=1.01)
    assert closed(gate_of(retriever, strict), retriever, DRONES) == Closed()
    assert closed(gate_of(retriever, margin=0.7), retriever, DRONES) == Closed()
    # Without the lexical signals (the reranker reads the question), coverage is not asked.
    assert closed(gate_of(retriever, strict), retriever, DRONES, lexical=False) is None


def test_a_speaker_no_chunk_names_closes_it(retriever):
    question = "What did Officials say about drones?"
    assert closed(gate_of(retriever), retriever, question, speaker={"smith"}) is None
    assert closed(gate_of(retriever), retriever, question, speaker={"jones"}) == Closed()


def test_unknown_words_count_only_over_a_vocabulary_of_some_size(retriever):
    gate = gate_of(retriever)
    question = words("Which tungsten alloys did Iran supply?")
    assert gate.unknown_share(question) == 0.0  # three articles: absence says little
    small = gate_of(retriever, dataclasses.replace(POLICY, min_vocabulary=10))
    assert 0.5 < small.unknown_share(question) < 1.0
    assert small.unknown_share(words("Has Iran supplied drones to Russia?")) == 0.0


def test_he_with_nobody_named_before_closes_it(retriever):
    assert closed(gate_of(retriever), retriever, "What did he say about drones?") == Closed()
