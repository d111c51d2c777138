"""BM25: words, scores, and staying in step with the Chroma collection incrementally."""

from index.build import build_index
from index.lexical import BM25Index, stem, words
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


def test_sync_is_incremental_and_follows_removals(settings, write_article, corpus):
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    before = dict(zip(index.ids, index.counts, strict=True))
    assert not index.sync(store, store.info().generation)  # same generation: nothing to do

    write_article(
        corpus, "volcano.txt", "A volcano erupted in Iceland overnight.", title="Eruption"
    )
    (corpus / "football.txt").unlink()
    build_index(settings)
    assert index.sync(store, store.info().generation)
    assert "volcano.txt" in index.sources and "football.txt" not in index.sources
    # Chunks that did not change keep the very same token counts object: not re-tokenized.
    for chunk_id, counts in zip(index.ids, index.counts, strict=True):
        if chunk_id in before:
            assert counts is before[chunk_id]
    best, _ = index.top(words("volcano Iceland"), 1)[0]
    assert index.sources[best] == "volcano.txt"


def test_saved_state_loads_without_retokenizing(settings, tmp_path):
    build_index(settings)
    store = ChunkStore(settings)
    index = BM25Index()
    index.sync(store, store.info().generation)
    index.save(tmp_path / "bm25.pkl")
    loaded = BM25Index.load(tmp_path / "bm25.pkl")
    assert loaded.ids == index.ids and loaded.generation == index.generation
    assert list(loaded.scores(words("inflation"))) == list(index.scores(words("inflation")))
    assert len(BM25Index.load(tmp_path / "missing.pkl")) == 0
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    assert len(BM25Index.load(tmp_path / "broken.pkl")) == 0
