"""`bot.cli.prefetch`: a one-shot question retrieved in a forked child gets the answer it would get
without the child, whatever the child does. Real Chroma in tmp_path, hashing embedder.

Forking is only safe from a process that has not loaded chromadb or ONNX Runtime (this one
has), so each answer is asked by a fresh Python process running DRIVER, as `newsbot ask` is.
"""

import json
import subprocess
import sys

import pytest

from bot.cli.prefetch import prefetch
from bot.settings import BotSettings
from index.build import build_index

TODAY = "2022-11-03"
QUESTIONS = [
    "What did officials in Kyiv say about drones?",
    "What did Iran supply to Russia this week?",  # a period read from the question's words
    "Who won the chess tournament in Reykjavik?",  # refused
]
DRIVER = """
import datetime as dt, json, os, sys
import bot.cli.prefetch
from bot.cli.prefetch import prefetch
from bot.answering.answer import Answerer
from bot.settings import BotSettings
from index.errors import NewsbotError
from index.lexical import BM25Index

question, how = sys.argv[1], sys.argv[2]
today = dt.date.fromisoformat(sys.argv[3])
settings = BotSettings()
if how == "child dies":
    bot.cli.prefetch._retrieve = lambda *args: os._exit(3)
retriever = None
if how != "here":
    asked_on = today - dt.timedelta(days=99) if how == "another day" else today
    retriever = prefetch(settings, question, asked_on)
    assert retriever is not None, "no child was started"
if how == "stale bm25":  # as if the child could not save its state: an older one is read here
    stale = BM25Index()
    stale.generation = -1
    retriever.__dict__["_bm25"] = stale
try:
    answer = Answerer(settings, retriever=retriever).answer(question, [], asked_on=today)
    out = {k: getattr(answer, k) for k in ("text", "sources", "refused", "retrieved")}
except NewsbotError as exc:
    out = {"error": str(exc)}
if retriever is not None:
    retriever.close()
    out["retrieved here"] = "local" in vars(retriever)
    out["child exit"] = retriever._child.exitcode
out["chromadb here"] = "chromadb" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture
def env(make_settings, built_index, cli_env):
    settings = make_settings(BotSettings)
    built_index(settings)
    return cli_env(
        corpus_dir=settings.corpus_dir, store_dir=settings.store_dir, embed_model="hashing"
    )


def ask(env, question: str, how: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, question, how, TODAY],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def answer_of(out: dict) -> dict:
    return {k: out.get(k) for k in ("text", "sources", "refused", "retrieved", "error")}


@pytest.mark.slow
@pytest.mark.parametrize("question", QUESTIONS)
def test_the_childs_hits_give_the_answer_retrieval_here_gives(env, question):
    prefetched, here = ask(env, question, "child"), ask(env, question, "here")
    assert answer_of(prefetched) == answer_of(here)
    assert not prefetched["retrieved here"]
    assert not prefetched["chromadb here"], "this process opened the index too"
    assert here["chromadb here"]  # which the check above would see


@pytest.mark.parametrize(
    ("how", "exit_code"), [("another day", 0), ("child dies", 3), ("stale bm25", 0)]
)
@pytest.mark.slow
def test_hits_that_do_not_fit_or_never_come_are_retrieved_here(env, how, exit_code):
    """The child counted "recent" from another day (as when the parse reads another period
    than the question's words), died without a word, or BM25's saved counts are not of the
    generation it read: the answer is the same, retrieved here."""
    prefetched, here = ask(env, QUESTIONS[0], how), ask(env, QUESTIONS[0], "here")
    assert answer_of(prefetched) == answer_of(here)
    assert prefetched["retrieved here"]
    assert prefetched["child exit"] == exit_code


@pytest.mark.slow
def test_without_an_index_the_error_is_the_one_without_the_child(env, tmp_path):
    env = {**env, "NEWSBOT_STORE_DIR": str(tmp_path / "never-indexed")}
    prefetched, here = ask(env, QUESTIONS[0], "child"), ask(env, QUESTIONS[0], "here")
    assert "newsbot index" in here["error"]
    assert prefetched["error"] == here["error"]


def test_no_child_is_forked_from_a_process_running_native_threads(make_settings):
    settings = make_settings(BotSettings)
    build_index(settings)  # chromadb's core is loaded in this process now
    assert prefetch(settings, QUESTIONS[0], None) is None


@pytest.mark.parametrize("question", ["", "   ", "x" * 5000])
def test_a_question_refused_unread_starts_no_child(make_settings, question):
    assert prefetch(make_settings(BotSettings), question, None) is None
