"""Questions asked while the index is updated or rebuilt are answered from the index as it was or
as it will be, never from a hole: a long-lived retriever asks in a loop while a real indexer
(a thread running build_index, or `newsbot index` as a subprocess) changes the articles."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import index.build
from bot.answering.retrieve import HybridRetriever
from index.build import build_index
from index.embeddings import HashingEmbedder
from index.lexical import cache_path
from index.store import ChunkStore

NEWSBOT = Path(sys.executable).with_name("newsbot")
FILLER = (
    "officials said the talks would continue next week while ministers met union leaders and "
    "prices rose across the region as reporters waited outside the building for news"
).split()
ARTICLES = 40
K = 5


def topic(i: int) -> str:
    """A made-up word only article i uses, so a question about it has one right answer."""
    rng = random.Random(i)
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4)) + f"x{i}"


def write_article(corpus: Path, i: int, version: int) -> None:
    rng = random.Random(i * 1000 + version)
    word = topic(i)
    sentences = [
        " ".join([word] + [rng.choice(FILLER) for _ in range(12)] + [word]).capitalize() + "."
        for _ in range(rng.randint(8, 14))
    ]
    body = " ".join(sentences) + f" Edition v{version}r{i}."
    path = corpus / f"live/{i:03d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"Report {word} {version}\n{body}\n")


def source(i: int) -> str:
    return f"live/{i:03d}.txt"


@pytest.fixture
def live(make_settings, corpus):
    settings = make_settings(chunk_size=64, chunk_overlap=8)
    for i in range(ARTICLES):
        write_article(corpus, i, 0)
    build_index(settings)
    return settings


class Asker:
    """Asks about every article in turn from a thread, with one long-lived retriever, until
    stopped; records failures (exceptions, and questions whose article was not retrieved)."""

    def __init__(self, settings, articles: list[int]):
        store = ChunkStore(settings)
        self.retriever = HybridRetriever(store, HashingEmbedder(), cache_path(settings.store_dir))
        self.articles = articles
        self.asked = 0
        self.errors: list[str] = []
        self.misses: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def ask(self, i: int) -> None:
        try:
            hits = self.retriever.retrieve(f"What happened with {topic(i)}?", K)
        except Exception as exc:  # noqa: BLE001 (any failure is what this test looks for)
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            self.asked += 1
        if source(i) not in [h.source for h in hits]:
            self.misses.append(f"{source(i)} not in {[h.id for h in hits]}")

    def _run(self) -> None:
        rng = random.Random(3)
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.ask(rng.choice(self.articles))

    def __enter__(self) -> Asker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()


class SlowEmbedder(HashingEmbedder):
    """The hashing model, slowed down like a real one, so questions fall inside every step."""

    def embed_documents(self, texts):
        time.sleep(0.05)
        return super().embed_documents(texts)


@pytest.mark.slow
def test_questions_during_updates_and_rebuilds_in_the_same_process(live, corpus, monkeypatch):
    """The Telegram bot's /reindex: an indexer thread beside the threads that answer."""
    monkeypatch.setattr(index.build, "GROUP_CHUNKS", 6)  # many groups: many steps to fall into
    changed = list(range(0, ARTICLES, 2))
    with Asker(live, list(range(ARTICLES))) as asker:
        for round_ in (1, 2):
            asked = asker.asked
            for i in changed:
                write_article(corpus, i, round_)
            report = build_index(live, embedder=SlowEmbedder())
            assert len(report.updated) == len(changed)
            report = build_index(live, embedder=SlowEmbedder(), rebuild=True)
            assert report.rebuilt and len(report.added) == ARTICLES + 3  # and the 3 of `corpus`
            assert asker.asked - asked >= 5, "too few questions fell inside the builds"
    assert asker.errors == []
    assert asker.misses == []
    # And the long-lived retriever now reads the new versions.
    hits = asker.retriever.retrieve(f"Edition v2r{changed[0]}", K)
    assert hits[0].source == source(changed[0]) and "Edition v2r" in hits[0].text


@pytest.mark.slow
def test_questions_while_newsbot_index_runs_in_another_process(
    live, corpus, cli_env, tmp_path, make_settings
):
    """`newsbot index` and `newsbot index --rebuild` as subprocesses while a bot process asks:
    its Chroma client does not see the other process's writes until it reopens, so it meets
    rows deleted under it, and a collection dropped under it."""
    env = cli_env(
        corpus_dir=corpus,
        store_dir=live.store_dir,
        embed_model="hashing",
        chunk_size=64,
        chunk_overlap=8,
    )
    # More and bigger articles, so each build runs long enough to be asked during.
    many = ARTICLES * 4
    for i in range(ARTICLES, many):
        write_article(corpus, i, 0)
    build_index(live)
    changed = list(range(0, many, 2))
    with Asker(live, list(range(many))) as asker:
        for round_, args in ((1, ["index"]), (2, ["index", "--rebuild"]), (3, ["index"])):
            asked = asker.asked
            if round_ != 2:
                for i in changed:
                    write_article(corpus, i, round_)
            done = subprocess.run(
                [str(NEWSBOT), *args, "--json"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
            assert asker.asked > asked, "no question fell inside the build"
    assert asker.errors == []
    assert asker.misses == []
    hits = asker.retriever.retrieve(f"Edition v3r{changed[1]}", K)
    assert hits[0].source == source(changed[1]) and "Edition v3r" in hits[0].text
