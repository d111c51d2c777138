"""The cross-encoder: the real int8 model from the installed wheel, checked and repeatable."""

import importlib.metadata
import threading

import numpy as np
import pytest

from bot.answering import rerank
from bot.answering.rerank import CrossEncoder, RerankerError

QUESTION = "What did Stoltenberg say about Iran?"
ANSWERS = "“What I can say is that what we see is that Iran is supporting Russia,” he said."
ABOUT = "Stoltenberg was speaking after Moscow ordered its troops to withdraw from Kherson."
ELSEWHERE = "Fans celebrated in the streets until midnight after the derby."


@pytest.fixture(scope="module")
def reranker() -> CrossEncoder:
    return CrossEncoder.shared()


def test_a_sentence_that_answers_outscores_one_that_is_only_about_it(reranker):
    answers, about, elsewhere = reranker.score(QUESTION, [ANSWERS, ABOUT, ELSEWHERE])
    assert answers > about > elsewhere
    assert answers > 0 > elsewhere  # the logit's sign is meaningful: refusals rely on it


def test_a_score_does_not_depend_on_what_else_is_read(reranker):
    alone = reranker.score(QUESTION, [ANSWERS])[0]
    together = reranker.score(QUESTION, [ELSEWHERE, ANSWERS * 3, ANSWERS])[2]
    assert alone == together


def test_nothing_to_read_and_overlong_input(reranker):
    assert reranker.score(QUESTION, []).shape == (0,)
    [score] = reranker.score("why " * 500, ["word " * 2000])
    assert np.isfinite(score)


def test_safe_to_call_from_many_threads(reranker):
    expected = reranker.score(QUESTION, [ANSWERS, ABOUT])
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(reranker.score(QUESTION, [ANSWERS, ABOUT]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 30 and all(np.array_equal(r, expected) for r in results)


def test_files_are_found_through_the_wheel_and_checked(monkeypatch):
    folder = rerank.model_dir()
    assert (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()

    monkeypatch.setattr(rerank, "_sha256", lambda path: "not-the-recorded-sum")
    with pytest.raises(RerankerError, match="damaged .* NEWSBOT_RERANK=off"):
        rerank.model_dir()


def test_a_missing_carrier_is_an_install_hint(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(RerankerError, match="not installed: run `make setup`"):
        rerank.model_dir()
