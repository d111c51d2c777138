"""BM25: words, scores, and staying in step with the Chroma collection incrementally."""

import json
import pickle
import random
import sys
import threading

import numpy as np
import pytest
import snowballstemmer

from index import lexical
from index.build import build_index
from index.lexical import BM25Index, cache_path, stem, update_cache, words
from index.store import ChunkStore


def test_words_drop_stopwords_and_stem():
    assert words("The drones were attacking Iran's cities") == ["drone", "attack", "iran", "citi"]
    assert stem("churches") == "church"
    assert stem("bus") == "bus"


def test_ranks_the_chunk_with_rare_words_first(settings):
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    assert index.sync(store, store.info().generation)
    best, _score = index.top(words("drones power stations"), 3)[0]
    assert index.sources[best] == "drones.txt"
    assert index.top(words("zebra"), 3) == []


def test_sync_is_incremental_and_follows_removals(settings, write_article, corpus, monkeypatch):
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    assert not index.sync(store, store.info().generation)  # same generation: nothing to do

    write_article(
        corpus, "volcano.txt", "A volcano erupted in Iceland overnight.", title="Eruption"
    )
    (corpus / "football.txt").unlink()
    build_index(settings)
    tokenized = []
    monkeypatch.setattr(lexical, "words", lambda text: tokenized.append(text) or words(text))
    assert index.sync(store, store.info().generation)
    assert "volcano.txt" in index.sources and "football.txt" not in index.sources
    # Only the new chunk was tokenized: the others kept their postings.
    assert len(tokenized) == 1 and "volcano" in tokenized[0]
    best, _ = index.top(words("volcano Iceland"), 1)[0]
    assert index.sources[best] == "volcano.txt"
    # Dropping and merging gave the very scores of an index made from scratch.
    fresh = BM25Index()
    fresh.sync(store, store.info().generation)
    for query in ("volcano Iceland", "drones power stations", "inflation", "eruption"):
        ours = dict(zip(index.ids, index.scores(words(query)), strict=True))
        theirs = dict(zip(fresh.ids, fresh.scores(words(query)), strict=True))
        assert ours == pytest.approx(theirs)


def test_a_saved_state_loads_without_sorting_or_tokenizing(settings, tmp_path, monkeypatch):
    """Its postings are saved grouped by term: loading is reading arrays and weighing them, so
    a fresh process with a big index is ready in the time its bytes take (issue 11)."""
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    index.save(tmp_path / "bm25.npz")

    def forbidden(*args, **kwargs):
        raise AssertionError("loading a saved state sorted or tokenized")

    monkeypatch.setattr(np, "argsort", forbidden)
    monkeypatch.setattr(lexical, "words", forbidden)
    loaded = BM25Index.load(tmp_path / "bm25.npz")
    assert loaded.ids == index.ids
    assert list(loaded.scores(words("drones"))) == list(index.scores(words("drones")))


def test_a_state_saved_chunk_by_chunk_is_still_read(settings, tmp_path):
    """States of the first layout (each chunk's terms and counts in turn) are grouped by term
    on loading, not made again from Chroma."""
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    order = np.argsort(index._docs, kind="stable")  # postings chunk by chunk
    term_of = np.repeat(np.arange(len(index.vocab)), np.diff(index._ptr))
    header = {
        "format": 1,
        "words_version": lexical.WORDS_VERSION,
        "generation": index.generation,
        "ids": index.ids,
        "sources": index.sources,
        "vocab": list(index.vocab),
    }
    path = tmp_path / "bm25.npz"
    with open(path, "wb") as handle:
        np.savez(
            handle,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            days=np.asarray(index.days, dtype=np.int64),
            sizes=np.bincount(index._docs, minlength=len(index)),
            terms=term_of[order].astype(np.int32),
            tfs=index._tfs[order],
        )
    loaded = BM25Index.load(path)
    assert loaded.ids == index.ids and loaded.generation == index.generation
    for query in ("drones power stations", "inflation"):
        assert list(loaded.scores(words(query))) == list(index.scores(words(query)))


def test_saved_state_loads_without_retokenizing(settings, tmp_path):
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    index.save(tmp_path / "bm25.npz")
    loaded = BM25Index.load(tmp_path / "bm25.npz")
    assert loaded.ids == index.ids and loaded.generation == index.generation
    assert loaded.sources == index.sources and loaded.days == index.days
    assert loaded.vocab == index.vocab
    assert list(loaded.scores(words("inflation"))) == list(index.scores(words("inflation")))
    assert len(BM25Index.load(tmp_path / "missing.npz")) == 0
    # A reader that loaded it syncs incrementally: nothing to tokenize again.
    assert not loaded.sync(store, store.info().generation)


def test_the_retriever_counts_the_chunks_once_per_generation(
    settings, write_article, corpus, monkeypatch
):
    """Chroma counts a collection row by row (150 ms a question at 500,000 chunks): the
    retriever counts when the index changes, not for every question."""
    from bot.answering.retrieve import HybridRetriever
    from index.embeddings import HashingEmbedder

    build_index(settings)
    store = ChunkStore(settings)
    counted = []
    count = store.count
    monkeypatch.setattr(store, "count", lambda: counted.append(1) or count())
    retriever = HybridRetriever(store, HashingEmbedder(), cache_path(settings.store_dir))
    for _ in range(3):
        assert retriever.retrieve("drones power stations", 3)[0].source == "drones.txt"
    assert len(counted) == 1
    write_article(
        corpus, "volcano.txt", "A volcano erupted in Iceland overnight.", title="Eruption"
    )
    build_index(settings)
    assert retriever.retrieve("volcano Iceland", 3)[0].source == "volcano.txt"
    assert len(counted) == 2


# -- stemming from many threads ---------------------------------------------------------------
@pytest.mark.slow
def test_stemming_is_safe_from_many_threads(monkeypatch):
    """The Telegram bot answers in worker threads: a burst of chats stems at once. Every stem
    must be what one thread alone gets, with no exception (a shared Snowball stemmer raised
    IndexError and cached wrong stems)."""
    rng = random.Random(7)
    endings = ["ing", "ed", "ations", "ness", "ly", "s", "ies", "ement", ""]
    vocabulary = sorted(
        {
            "".join(rng.choice("abcdefghilmnoprstu") for _ in range(rng.randint(3, 12)))
            + rng.choice(endings)
            for _ in range(6000)
        }
    )
    alone = snowballstemmer.stemmer("english")
    expected = {w: alone.stemWord(w) for w in vocabulary}
    monkeypatch.setattr(lexical, "_STEMS", {})  # nothing cached: every word is stemmed
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    errors: list[str] = []
    wrong: list[tuple[str, str]] = []

    def hammer(seed: int) -> None:
        order = vocabulary[:]
        random.Random(seed).shuffle(order)
        for word in order:
            try:
                got = stem(word)
            except Exception as exc:  # noqa: BLE001 (any failure is what this test looks for)
                errors.append(repr(exc))
                continue
            if got != expected[word]:
                wrong.append((word, got))

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(previous)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and wrong == []
    assert expected == lexical._STEMS  # and nothing wrong stays cached


# -- the saved state cannot run code ----------------------------------------------------------
class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_an_old_pickled_state_is_never_unpickled_and_is_removed(settings, tmp_path):
    build_index(settings)
    store_dir = settings.store_dir
    cache_path(store_dir).unlink()
    marker = tmp_path / "code-ran"
    (store_dir / "bm25.pkl").write_bytes(pickle.dumps({"words_version": 2, "x": Payload(marker)}))

    from bot.answering.retrieve import HybridRetriever

    retriever = HybridRetriever(ChunkStore(settings), None, cache_path(store_dir))
    retriever.sync()
    index = update_cache(ChunkStore(settings), store_dir)
    assert not marker.exists()
    assert not (store_dir / "bm25.pkl").exists()
    assert len(index) == 3 and cache_path(store_dir).exists()


def test_a_state_that_hides_a_pickle_is_refused(settings, tmp_path):
    """An .npz may hold object arrays, which numpy stores as pickles: never loaded."""
    build_index(settings)
    marker = tmp_path / "code-ran"
    path = cache_path(settings.store_dir)
    with open(path, "wb") as handle:
        np.savez(handle, header=np.array([Payload(marker)], dtype=object))
    assert len(BM25Index.load(path)) == 0
    assert not marker.exists()
    assert len(update_cache(ChunkStore(settings), settings.store_dir)) == 3
    assert len(BM25Index.load(path)) == 3  # made again, and readable


def good_state(settings) -> bytes:
    build_index(settings)
    return cache_path(settings.store_dir).read_bytes()


def rewrite(path, **changes) -> None:
    """Rewrite the saved state with some arrays (or header fields) changed."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header.update(changes.pop("header", {}))
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    arrays.update(changes)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    "damage",
    [
        "garbage",
        "truncated",
        "empty",
        "another format",
        "other words",
        "chunks out of range",
        "offsets do not add up",
        "header not json",
    ],
)
def test_an_unreadable_state_counts_as_missing_and_is_made_again(settings, damage):
    data = good_state(settings)
    path = cache_path(settings.store_dir)
    if damage == "garbage":
        path.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(len(data))))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "another format":
        rewrite(path, header={"format": 99})
    elif damage == "other words":
        rewrite(path, header={"words_version": 1})
    elif damage == "chunks out of range":
        with np.load(path) as loaded:
            rewrite(path, docs=loaded["docs"] + 10_000)
    elif damage == "offsets do not add up":
        with np.load(path) as loaded:
            rewrite(path, ptr=loaded["ptr"] + 1)
    else:
        with np.load(path) as loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        arrays["header"] = np.frombuffer(b"{not json", dtype=np.uint8)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    assert len(BM25Index.load(path)) == 0
    index = update_cache(ChunkStore(settings), settings.store_dir)
    assert len(index) == 3
    assert BM25Index.load(path).ids == index.ids  # saved again, readable
    best, _ = index.top(words("drones power stations"), 1)[0]
    assert index.sources[best] == "drones.txt"


def test_a_state_is_saved_into_a_store_folder_not_made_yet(tmp_path):
    """A bot on a Chroma server may have no store folder of its own yet: its BM25 state is
    still kept, so that its next start loads it instead of tokenizing every chunk again."""
    path = lexical.cache_path(tmp_path / "bot-store")
    lexical.BM25Index().save(path)
    assert lexical.BM25Index.load(path).generation is None and path.is_file()
