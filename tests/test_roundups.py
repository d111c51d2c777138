"""Roundups (`bot.answering.roundups`): an article of many stories is cited after the article
about the one asked of, when both answer; focus from the article's own chunk vectors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bot.answering.answer import Answerer
from bot.answering.retrieve import Hit
from bot.answering.roundups import FOCUS_FLOOR, Roundups, focus
from bot.settings import BotSettings
from index.build import build_index
from index.errors import StoreError
from index.store import ChunkStore

# -- focus --------------------------------------------------------------------------------------


def test_focus_is_the_mean_cosine_between_every_two_chunks():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(6, 16)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = [unit[i] @ unit[j] for i in range(6) for j in range(6) if i != j]
    assert focus(vectors) == pytest.approx(np.mean(pairs), abs=1e-5)


def test_focus_of_one_story_and_of_unrelated_ones():
    assert focus(np.ones((1, 4), dtype=np.float32)) == 1.0
    assert focus(np.array([[1, 1, 0], [2, 2, 0]], dtype=np.float32)) == pytest.approx(1.0)
    assert focus(np.eye(5, dtype=np.float32)) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_corrupt_vector_gives_no_focus(bad):
    vectors = np.eye(3, dtype=np.float32)
    vectors[1, 2] = bad
    assert np.isnan(focus(vectors))
    assert np.isnan(focus(np.zeros((2, 3), dtype=np.float32)))


# -- Roundups, over a store that counts its reads ------------------------------------------------


class VectorStore:
    def __init__(self, vectors: dict[tuple[str, str], np.ndarray], fail: bool = False):
        self.vectors = vectors
        self.fail = fail
        self.asked: list[list[str]] = []

    def article_vectors(self, sources):
        self.asked.append(list(sources))
        if self.fail:
            raise StoreError("The index cannot be read just now.")
        return {key: v for key, v in self.vectors.items() if key[0] in sources}


def hit(source: str, version: str = "v1") -> Hit:
    return Hit(f"{source}#{version}", "text", {"source": source, "version": version})


ONE_STORY = np.array([[1, 0.1, 0], [1, 0, 0.1], [0.9, 0.1, 0.1]], dtype=np.float32)
MANY_STORIES = np.eye(3, dtype=np.float32)


def test_an_article_of_unrelated_parts_is_a_roundup_and_one_of_one_chunk_is_not():
    store = VectorStore(
        {
            ("digest.txt", "v1"): MANY_STORIES,
            ("story.txt", "v1"): ONE_STORY,
            ("short.txt", "v1"): MANY_STORIES[:1],
        }
    )
    found = Roundups().among(
        store, ("model", 1), [hit("digest.txt"), hit("story.txt"), hit("short.txt")]
    )
    assert found == {"digest.txt"}
    assert focus(ONE_STORY) > FOCUS_FLOOR > focus(MANY_STORIES)


def test_focus_is_read_once_per_article_version():
    store = VectorStore({("a.txt", "v1"): MANY_STORIES, ("a.txt", "v2"): ONE_STORY})
    roundups = Roundups()
    assert roundups.among(store, ("model", 1), [hit("a.txt")]) == {"a.txt"}
    assert roundups.among(store, ("model", 1), [hit("a.txt")]) == {"a.txt"}
    assert store.asked == [["a.txt"]]
    # the article was rewritten: its new version is read, and is about one story
    assert roundups.among(store, ("model", 1), [hit("a.txt", "v2")]) == set()
    assert store.asked == [["a.txt"], ["a.txt"]]


def test_focus_is_read_again_once_the_index_moves():
    # an indexer writes a long article in batches: what was read mid-build is not kept
    store = VectorStore({("a.txt", "v2"): ONE_STORY})
    roundups = Roundups()
    assert roundups.among(store, ("model", 7), [hit("a.txt", "v2")]) == set()
    store.vectors[("a.txt", "v2")] = MANY_STORIES  # the rest of its chunks arrive
    assert roundups.among(store, ("model", 7), [hit("a.txt", "v2")]) == set()
    assert roundups.among(store, ("model", 8), [hit("a.txt", "v2")]) == {"a.txt"}


def test_a_version_the_index_no_longer_holds_is_not_a_roundup():
    store = VectorStore({("a.txt", "v2"): MANY_STORIES})
    assert Roundups().among(store, ("model", 1), [hit("a.txt", "v1")]) == set()


def test_an_unreadable_index_leaves_the_order_alone_and_is_tried_again():
    store = VectorStore({("a.txt", "v1"): MANY_STORIES}, fail=True)
    roundups = Roundups()
    assert roundups.among(store, ("model", 1), [hit("a.txt")]) == set()
    store.fail = False
    assert roundups.among(store, ("model", 1), [hit("a.txt")]) == {"a.txt"}


def test_only_so_many_article_versions_are_remembered():
    store = VectorStore({(f"{i}.txt", "v1"): ONE_STORY for i in range(5)})
    roundups = Roundups(kept=2)
    for i in range(5):
        roundups.among(store, ("model", 1), [hit(f"{i}.txt")])
    roundups.among(store, ("model", 1), [hit("4.txt")])  # remembered
    roundups.among(store, ("model", 1), [hit("0.txt")])  # forgotten: read again
    assert store.asked[-1] == ["0.txt"] and len(store.asked) == 6


def test_threads_share_one_roundups():
    store = VectorStore({(f"{i}.txt", "v1"): MANY_STORIES for i in range(50)})
    roundups = Roundups(kept=20)
    results: list[set[str]] = []

    def ask(start: int) -> None:
        for i in range(start, start + 50):
            results.append(roundups.among(store, ("model", 1), [hit(f"{i % 50}.txt")]))

    threads = [threading.Thread(target=ask, args=(n * 7,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 200 and all(len(found) == 1 for found in results)


# -- the real thing: Chroma in a folder, the bundled model ---------------------------------------


def test_article_vectors_are_grouped_by_article_and_version(settings, corpus):
    build_index(settings)
    store = ChunkStore(settings)
    vectors = store.article_vectors(["drones.txt", "football.txt", "missing.txt"])
    assert {source for source, _ in vectors} == {"drones.txt", "football.txt"}
    for rows in vectors.values():
        assert rows.dtype == np.float32 and rows.ndim == 2 and len(rows) >= 1
    assert store.article_vectors([]) == {}


def test_damaged_vectors_are_left_out(settings, monkeypatch, caplog):
    class Damaged:  # what a store with a truncated vector would hand back
        def get(self, **_):
            metas = [{"source": s, "version": "1"} for s in ("a.txt", "a.txt", "b.txt")]
            return {"metadatas": metas, "embeddings": [[1.0, 0.0], [1.0], [0.0, 1.0]]}

    store = ChunkStore(settings)
    monkeypatch.setattr(store, "open", lambda create=False: Damaged())
    vectors = store.article_vectors(["a.txt", "b.txt"])
    assert list(vectors) == [("b.txt", "1")]
    assert "a.txt" in caplog.text


SECTIONS = {
    "Snow in the Alps": (
        "Heavy snow fell across the Alps over the weekend, closing ski lifts in three "
        "countries. Avalanche warnings were raised to the highest level in parts of "
        "Switzerland and Austria, and mountain roads stayed shut while crews cleared them. "
        "Forecasters expect more snow before the end of the month. Hotels in the valleys "
        "said guests were stranded but safe, and rail operators ran extra trains."
    ),
    "A bridge for Riverton": (
        "Riverton's council approved the county's first new bridge since 1974, a crossing "
        "over the Silver River that will cost 40 million dollars."
    ),
    "Tennis": (
        "The women's final at the indoor championships went to three sets before the "
        "second seed won on a tie-break. She thanked her coach and the crowd, and said the "
        "win made up for a difficult season of injuries. Her opponent, who had saved four "
        "match points in the semi-final, said she would rest before the new season."
    ),
    "A comet": (
        "Astronomers using a telescope in Chile found a comet that will pass close to the "
        "Sun next spring. It may be bright enough to see without binoculars for a few "
        "nights. The comet's orbit suggests it last came this way thousands of years ago, "
        "and observatories around the world plan to follow it."
    ),
    "Recall": (
        "A carmaker recalled two hundred thousand vehicles over a fault in their brake "
        "sensors. Owners will be contacted by letter and the repair is free. The company "
        "said no accidents had been linked to the fault, which affects models built over "
        "two years at one of its plants."
    ),
}

STORY = (
    "Riverton approves the Silver River bridge",
    "The city council of Riverton voted on Monday to build a bridge across the Silver "
    "River. The crossing will cost 40 million dollars and should open in three years. "
    "The mayor said the bridge would cut the drive to the hospital by twenty minutes for "
    "families on the east bank. Construction will start in the spring, once the river is "
    "low enough for crews to set the foundations. Residents who spoke at the meeting "
    "mostly welcomed the plan, though some asked how traffic would be handled during "
    "the works. The council will publish the contractor's timetable next month.",
)


@pytest.mark.integration
def test_the_article_about_the_story_is_cited_before_the_digest(
    make_settings, tmp_path, write_article, bundled_embedder
):
    folder = tmp_path / "news"
    digest = "\n".join(f"{n}. {name}\n{text}" for n, (name, text) in enumerate(SECTIONS.items(), 1))
    write_article(folder, "digest.txt", digest, title="Five things to know today")
    write_article(folder, "bridge.txt", STORY[1], title=STORY[0])
    settings = make_settings(BotSettings, corpus_dir=folder, embed_model="bundled")
    build_index(settings, embedder=bundled_embedder)
    answerer = Answerer(settings, embedder=bundled_embedder)

    answer = answerer.answer(
        "Which river will Riverton's new bridge cross, the first in the county since 1974?"
    )

    assert not answer.refused
    # Retrieval ranks the digest first: it holds the question's own words ...
    assert answer.passages[0].source == "digest.txt"
    # ... and the reader's first citation is the article about the bridge.
    assert answer.sources == ["bridge.txt", "digest.txt"]
    assert answer.text.index("bridge.txt") < answer.text.index("digest.txt")
    assert [d.text for d in answer.direct] == ["Silver River"]
