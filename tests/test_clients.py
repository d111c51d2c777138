"""Chroma clients: a reader that reopens loads its folder from disk again (another process's
writes included), and forgetting the shared clients disturbs no store already open."""

from __future__ import annotations

import pytest

from index.build import build_index
from index.embeddings import HashingEmbedder
from index.store import ChunkStore

NEWS = "Volcano erupts near the coast; the harbour closes and ferries stop for the week."


def sources(store: ChunkStore, text: str) -> list[str]:
    return [h["meta"]["source"] for h in store.query(HashingEmbedder().embed_query(text), k=5)]


@pytest.mark.slow
def test_reopen_sees_another_processs_writes_and_other_stores_keep_working(
    make_settings, corpus, tmp_path, write_article, cli_env, run_newsbot
):
    settings = make_settings()
    other = make_settings(store_dir=tmp_path / "other-store")
    build_index(settings)
    build_index(other)
    reader, other_reader = ChunkStore(settings), ChunkStore(other)
    assert "volcano.txt" not in sources(reader, NEWS)
    before = sources(other_reader, NEWS)

    write_article(corpus, "volcano.txt", NEWS, title="Volcano erupts")
    env = cli_env(corpus_dir=corpus, store_dir=settings.store_dir, embed_model="hashing")
    done = run_newsbot("index", env=env)
    assert done.returncode == 0, done.stderr
    assert "volcano.txt" not in sources(reader, NEWS)  # this process's copy is stale

    reader.reopen()
    assert sources(reader, NEWS)[0] == "volcano.txt"
    # The other folder's store, open before, answers as before; a new one loads it again.
    assert sources(other_reader, NEWS) == before
    assert sources(ChunkStore(other), NEWS) == before
