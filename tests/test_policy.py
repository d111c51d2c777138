"""Every threshold of answering in one object (`bot.answering.policy`), and the Answerer
follows it."""

from __future__ import annotations

import dataclasses

import pytest

from bot.answering.answer import Answerer
from bot.answering.policy import POLICY
from bot.settings import BotSettings

QUESTION = "Has Iran supplied drones to Russia?"


@pytest.fixture
def settings(make_settings, built_index):
    settings = make_settings(BotSettings, rerank=False)
    built_index(settings)
    return settings


def test_the_answerer_reads_with_the_policy_it_is_given(settings):
    assert not Answerer(settings).answer(QUESTION).refused
    strict = dataclasses.replace(POLICY, min_sentence_coverage=1.01)
    assert Answerer(settings, policy=strict).answer(QUESTION).refused
    short = dataclasses.replace(POLICY, max_quote_chars=30)
    answer = Answerer(settings, policy=short).answer(QUESTION)
    assert answer.quotes and all(len(q.shown) <= 30 for q in answer.quotes)


def test_an_uncalibrated_embedding_model_has_no_similarity_bar():
    assert POLICY.similarity_bar("all-MiniLM-L6-v2 (bundled)") == 0.2
    assert POLICY.similarity_bar("someone/else") == -1.0
