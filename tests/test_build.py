"""Incremental builds: what changed is reported and embedded, nothing else; crashes heal."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CountingEmbedder, count_reads

import index.build
from index.articles import content_hash
from index.build import build_index, index_lock, watch_index
from index.embeddings import HashingEmbedder
from index.errors import IndexBusyError, IndexChangedError, IndexMismatchError, NewsbotError
from index.store import ChunkStore

NEWSBOT = Path(sys.executable).with_name("newsbot")


WORDS = (
    "the minister said on Tuesday that talks with unions over pay and pensions would resume "
    "next week after weeks of strikes that closed schools hospitals and railway lines across "
    "the country while prices rose faster than wages in most regions"
).split()


def long_body(seed: int, paragraphs: int = 8) -> str:
    rng = random.Random(seed)
    paras = []
    for _ in range(paragraphs):
        sents = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))).capitalize() + "."
            for _ in range(4)
        ]
        paras.append(" ".join(sents))
    return "\n".join(paras)


def manifest_states(store: Path) -> dict[str, str]:
    """source -> state (never creates the manifest of a store that has none)."""
    path = store / "manifest.sqlite3"
    if not path.exists():
        return {}
    try:
        # Read-write, as the next indexer would: after a kill the WAL may need recovering.
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            return dict(db.execute("SELECT source, state FROM files"))
    except sqlite3.OperationalError:  # tables not created yet
        return {}


# -- first build, no-op build ------------------------------------------------------------------
def test_first_build_indexes_everything(settings, counting_embedder, read_chunks):
    report = build_index(settings, embedder=counting_embedder)
    assert report.added == ["drones.txt", "football.txt", "world/economy.txt"]
    assert report.updated == report.removed == report.unchanged == report.skipped == []
    assert report.articles == 3
    records = read_chunks(settings)
    assert report.chunks == report.chunks_written == len(records) == len(counting_embedder.embedded)
    assert set(records) == {"drones.txt#0", "football.txt#0", "world/economy.txt#0"}
    text, meta = records["drones.txt#0"]
    assert text.startswith("Iran has supplied hundreds of drones")
    version = content_hash((settings.corpus_dir / "drones.txt").read_bytes())[:12]
    assert meta == {
        "source": "drones.txt",
        "version": version,
        "ordinal": 0,
        "start": len("Iran sends drones to Russia\ndate 2022-11-01 "),
        "end": meta["start"] + len(text),
        "title": "Iran sends drones to Russia",
        "date": "2022-11-01",
        "day": 20221101,
    }
    assert records["world/economy.txt#0"][1]["date"] == ""
    assert counting_embedder.embedded[0].startswith("Iran sends drones to Russia\nIran has")

    info = ChunkStore(settings).info()
    assert info.model == "hashing" and info.chunking == "256/48"
    assert (info.articles, info.chunks) == (3, 3)
    assert (info.date_min, info.date_max) == ("2022-10-15", "2022-11-01")
    assert info.generation > 0 and info.built_at


def test_second_build_without_changes_embeds_nothing(settings, counting_embedder):
    build_index(settings, embedder=counting_embedder)
    generation = ChunkStore(settings).info().generation
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert report.unchanged == ["drones.txt", "football.txt", "world/economy.txt"]
    assert not report.changed and report.chunks_written == 0
    assert counting_embedder.embedded == []
    assert (report.articles, report.chunks) == (3, 3)
    assert ChunkStore(settings).info().generation == generation


def test_query_ranks_the_relevant_chunk_first(settings, counting_embedder):
    build_index(settings, embedder=counting_embedder)
    store = ChunkStore(settings)
    hits = store.query(counting_embedder.embed_query("drones from Iran"), k=3)
    assert [h["meta"]["source"] for h in hits][0] == "drones.txt"
    dated = store.query(
        counting_embedder.embed_query("drones"),
        k=3,
        where={"$and": [{"day": {"$gt": 0}}, {"day": {"$lt": 20221101}}]},
    )
    assert {h["meta"]["source"] for h in dated} == {"football.txt"}


# -- add / change / remove -----------------------------------------------------------------------
def test_add_change_remove_in_one_build(
    settings, corpus, write_article, counting_embedder, read_chunks
):
    build_index(settings, embedder=counting_embedder)
    counting_embedder.reset()
    write_article(corpus, "new/elections.txt", "Voters went to the polls today.", title="Vote")
    write_article(corpus, "football.txt", "The derby ended in a draw.", title="Derby draw")
    (corpus / "world/economy.txt").unlink()

    report = build_index(settings, embedder=counting_embedder)
    assert report.added == ["new/elections.txt"]
    assert report.updated == ["football.txt"]
    assert report.removed == ["world/economy.txt"]
    assert report.unchanged == ["drones.txt"]
    assert sorted(counting_embedder.embedded) == [
        "Derby draw\nThe derby ended in a draw.",
        "Vote\nVoters went to the polls today.",
    ]
    records = read_chunks(settings)
    assert set(records) == {"drones.txt#0", "football.txt#0", "new/elections.txt#0"}
    assert records["football.txt#0"][0] == "The derby ended in a draw."
    assert (report.articles, report.chunks) == (3, 3)
    assert ChunkStore(settings).info().articles == 3


def test_shorter_update_leaves_no_orphan_chunks(
    make_settings, corpus, write_article, counting_embedder, read_chunks
):
    settings = make_settings(chunk_size=64, chunk_overlap=8)
    write_article(corpus, "long.txt", long_body(1), title="Long one")
    build_index(settings, embedder=counting_embedder)
    assert len([i for i in read_chunks(settings) if i.startswith("long.txt#")]) > 3
    write_article(corpus, "long.txt", "Now it is short.", title="Long one")
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert report.updated == ["long.txt"]
    assert counting_embedder.embedded == ["Long one\nNow it is short."]
    assert [i for i in read_chunks(settings) if i.startswith("long.txt#")] == ["long.txt#0"]


def test_identical_files_are_two_articles(settings, corpus, counting_embedder, read_chunks):
    data = (corpus / "drones.txt").read_bytes()
    (corpus / "copy.txt").write_bytes(data)
    (corpus / "sub").mkdir()
    (corpus / "sub/copy.txt").write_bytes(data)
    report = build_index(settings, embedder=counting_embedder)
    assert report.added == [
        "copy.txt",
        "drones.txt",
        "football.txt",
        "sub/copy.txt",
        "world/economy.txt",
    ]
    records = read_chunks(settings)
    assert {"copy.txt#0", "drones.txt#0", "sub/copy.txt#0"} <= set(records)
    assert records["copy.txt#0"][0] == records["drones.txt#0"][0]

    (corpus / "copy.txt").unlink()
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert report.removed == ["copy.txt"] and report.added == report.updated == []
    assert counting_embedder.embedded == []
    records = read_chunks(settings)
    assert "copy.txt#0" not in records
    assert {"drones.txt#0", "sub/copy.txt#0"} <= set(records)
    hits = ChunkStore(settings).query(counting_embedder.embed_query("Iran drones"), k=2)
    assert {h["meta"]["source"] for h in hits} == {"drones.txt", "sub/copy.txt"}


def test_touching_a_file_without_changing_it_embeds_nothing(settings, corpus, counting_embedder):
    build_index(settings, embedder=counting_embedder)
    path = corpus / "drones.txt"
    os.utime(path, (time.time() + 10, time.time() + 10))
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert not report.changed and counting_embedder.embedded == []


# -- rebuild and mismatches --------------------------------------------------------------------
def test_rebuild_starts_over(settings, counting_embedder, read_chunks):
    build_index(settings, embedder=counting_embedder)
    before = read_chunks(settings)
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder, rebuild=True)
    assert report.rebuilt
    assert report.added == ["drones.txt", "football.txt", "world/economy.txt"]
    assert report.unchanged == []
    assert len(counting_embedder.embedded) == 3
    assert read_chunks(settings) == before


@pytest.mark.parametrize(
    "changed", [{"chunk_size": 128}, {"chunk_overlap": 10}, {"embed_model": "bundled"}]
)
def test_changed_model_or_chunking_needs_a_rebuild(make_settings, read_chunks, changed):
    settings = make_settings()
    build_index(settings)
    before = read_chunks(settings)
    other = make_settings(**changed)
    with pytest.raises(IndexMismatchError, match=r"newsbot index --rebuild"):
        build_index(other)
    assert read_chunks(settings) == before  # refused before touching anything
    if "embed_model" not in changed:  # (a rebuild with the real model is an integration test)
        report = build_index(other, rebuild=True)
        assert report.rebuilt and len(report.added) == 3
        assert ChunkStore(other).info().chunking == f"{other.chunk_size}/{other.chunk_overlap}"
        assert build_index(other).unchanged  # and now it matches


def test_chunks_never_exceed_the_model_window(make_settings, corpus, write_article, read_chunks):
    settings = make_settings(chunk_size=1024, chunk_overlap=100)
    write_article(corpus, "long.txt", long_body(5, paragraphs=40), title="Long one")
    build_index(settings)
    sizes = [len(f"Long one\n{text}".split()) + 2 for text, _ in read_chunks(settings).values()]
    assert len(sizes) > 3 and max(sizes) <= HashingEmbedder.max_tokens


def test_mismatch_is_found_in_chroma_when_the_manifest_is_gone(make_settings):
    build_index(make_settings())
    make_settings().manifest_path.unlink()
    with pytest.raises(IndexMismatchError, match="chunking 256/48.*128/48"):
        build_index(make_settings(chunk_size=128))


@pytest.mark.parametrize("how", ["collection renamed", "chroma folder deleted"])
def test_manifest_of_another_collection_is_not_trusted(
    make_settings, counting_embedder, read_chunks, how
):
    """The manifest lives in the store dir, the chunks in Chroma: when they part (another
    collection or Chroma server, a deleted Chroma folder), everything is indexed again."""
    settings = make_settings()
    build_index(settings, embedder=counting_embedder)
    expected = read_chunks(settings)
    if how == "collection renamed":
        settings = make_settings(collection="another")
    else:
        from chromadb.api.client import SharedSystemClient

        shutil.rmtree(settings.chroma_dir)
        SharedSystemClient.clear_system_cache()  # as a new process would see it
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert report.added == ["drones.txt", "football.txt", "world/economy.txt"]
    assert len(counting_embedder.embedded) == 3
    assert read_chunks(settings) == expected
    assert build_index(settings).unchanged  # and the next build trusts it again


def test_foreign_chunks_in_a_shared_collection_are_cleaned_up(
    make_settings, tmp_path, corpus, write_article, read_chunks
):
    """A second store dir on the same collection: chunks of files it does not have are orphans."""
    first = make_settings()
    write_article(corpus, "only-here.txt", "This file is only in the first corpus.", title="Only")
    build_index(first)
    (corpus / "only-here.txt").unlink()
    second = make_settings(store_dir=tmp_path / "other-store")
    second.chroma_dir.parent.mkdir(parents=True)
    second.chroma_dir.symlink_to(first.chroma_dir.resolve())  # same Chroma, other manifest
    report = build_index(second)
    assert len(report.added) == 3
    assert not any(i.startswith("only-here.txt") for i in read_chunks(second))


# -- bad files ---------------------------------------------------------------------------------
def test_bad_files_are_skipped_and_reported(settings, corpus, counting_embedder, read_chunks):
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(b"\x89PNG\x00\x00\x01")
    (corpus / "broken.txt").symlink_to(corpus / "nowhere.txt")
    (corpus / "folder.txt").mkdir()
    (corpus / "latin.txt").write_bytes("Caf\xe9 opens\nThe caf\xe9 opened.\n".encode("latin-1"))
    report = build_index(settings, embedder=counting_embedder)
    skipped = {s["source"]: s["reason"] for s in report.skipped}
    assert skipped == {
        "binary.txt": "binary file (contains NUL bytes)",
        "broken.txt": "unreadable (No such file or directory)",
        "empty.txt": "empty file",
    }
    assert report.added == [
        "drones.txt",
        "football.txt",
        "latin.txt",
        "world/economy.txt",
    ]
    assert report.warnings == [
        {"source": "latin.txt", "warning": "not valid UTF-8; decoded as cp1252"}
    ]
    assert read_chunks(settings)["latin.txt#0"][0] == "The café opened."
    # Skipped files are reported again on every build, but nothing is re-embedded.
    counting_embedder.reset()
    again = build_index(settings, embedder=counting_embedder)
    assert {s["source"] for s in again.skipped} == set(skipped)
    assert counting_embedder.embedded == []


def test_indexed_file_that_becomes_empty_is_removed(
    settings, corpus, counting_embedder, read_chunks
):
    build_index(settings, embedder=counting_embedder)
    (corpus / "football.txt").write_bytes(b"")
    report = build_index(settings, embedder=counting_embedder)
    assert report.removed == ["football.txt"]
    assert report.skipped == [{"source": "football.txt", "reason": "empty file"}]
    assert report.added == report.updated == []
    assert not any(i.startswith("football.txt#") for i in read_chunks(settings))
    assert (report.articles, report.chunks) == (2, 2)
    assert "football.txt" not in manifest_states(settings.store_dir)


def test_missing_corpus_folder(make_settings, tmp_path):
    with pytest.raises(NewsbotError, match="does not exist.*NEWSBOT_CORPUS_DIR"):
        build_index(make_settings(corpus_dir=tmp_path / "nope"))


def test_empty_corpus_folder(make_settings, tmp_path):
    (tmp_path / "empty").mkdir()
    report = build_index(make_settings(corpus_dir=tmp_path / "empty"))
    assert (report.articles, report.chunks) == (0, 0)


def test_progress_is_reported(settings):
    calls = []
    build_index(settings, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)


# -- one indexer at a time -----------------------------------------------------------------------
def test_second_indexer_is_refused_while_the_lock_is_held(settings, corpus, read_chunks):
    build_index(settings)
    before = read_chunks(settings)
    (corpus / "drones.txt").unlink()
    with index_lock(settings.store_dir):
        with pytest.raises(IndexBusyError, match=r"Another indexer \(pid \d+\).*try again"):
            build_index(settings)
        start = time.monotonic()
        with pytest.raises(IndexBusyError):
            build_index(settings, lock_wait=0.5)
        assert time.monotonic() - start >= 0.5
    assert read_chunks(settings) == before
    assert build_index(settings).removed == ["drones.txt"]


# -- watch -----------------------------------------------------------------------------------
def test_watch_picks_up_a_new_file(settings, corpus, write_article, counting_embedder):
    reports = watch_index(settings, interval=0.05, rounds=40, embedder=counting_embedder)
    first = next(reports)
    assert len(first.added) == 3
    write_article(corpus, "late.txt", "Breaking news arrived late.", title="Late")
    second = next(reports)
    assert second.added == ["late.txt"] and len(second.unchanged) == 3
    reports.close()


# -- crash safety ------------------------------------------------------------------------------
class FailingEmbedder:
    """Fails on its n-th call, as a process killed in the middle of a build would stop."""

    def __init__(self, inner, fail_on: int):
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_documents(self, texts):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("simulated crash")
        return self.inner.embed_documents(texts)


def write_many(corpus: Path, count: int, seed: int = 0) -> None:
    for i in range(count):
        path = corpus / f"gen/{i % 7}/article{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = long_body(seed * 10_000 + i, paragraphs=3)
        path.write_text(f"Headline {i}\ndate 2022-01-{i % 28 + 1:02d} {body}\n")


def clean_build_records(make_settings, tmp_path, read_chunks, **overrides):
    clean = make_settings(store_dir=tmp_path / "clean-store", **overrides)
    build_index(clean)
    return read_chunks(clean)


@pytest.mark.parametrize("fail_on", [1, 2, 3])
@pytest.mark.slow
def test_build_that_dies_half_way_heals_on_the_next_run(
    make_settings, corpus, tmp_path, monkeypatch, read_chunks, fail_on
):
    monkeypatch.setattr(index.build, "GROUP_CHUNKS", 8)
    settings = make_settings()
    write_many(corpus, 30)
    build_index(settings)
    # Change, add and remove files, then die in the middle of the update.
    write_many(corpus, 40, seed=1)
    for i in range(0, 40, 5):
        (corpus / f"gen/{i % 7}/article{i:04d}.txt").unlink()
    failing = FailingEmbedder(index.build.make_embedder(settings), fail_on)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(settings, embedder=failing)
    assert "pending" in manifest_states(settings.store_dir).values()

    build_index(settings)
    assert read_chunks(settings) == clean_build_records(make_settings, tmp_path, read_chunks)
    assert set(manifest_states(settings.store_dir).values()) == {"ok"}


def test_rebuild_that_dies_half_way_heals_on_the_next_run(
    make_settings, corpus, tmp_path, monkeypatch, read_chunks
):
    monkeypatch.setattr(index.build, "GROUP_CHUNKS", 8)
    settings = make_settings()
    write_many(corpus, 30)
    build_index(settings)
    failing = FailingEmbedder(index.build.make_embedder(settings), 2)
    with pytest.raises(RuntimeError):
        build_index(settings, embedder=failing, rebuild=True)
    assert len(collection_names(settings)) == 2  # the old index, and the one built aside
    build_index(settings)
    assert read_chunks(settings) == clean_build_records(make_settings, tmp_path, read_chunks)
    assert collection_names(settings) == ["newsbot"]  # what the dead rebuild left is dropped


def collection_names(settings) -> list[str]:
    return sorted(c.name for c in ChunkStore(settings).client.list_collections())


# -- live updates: never a hole ----------------------------------------------------------------
class WatchingEmbedder:
    """Before each embedding, records which files a reader finds chunks of."""

    def __init__(self, settings):
        self.inner, self.settings, self.seen = HashingEmbedder(), settings, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_documents(self, texts):
        reader = ChunkStore(self.settings)
        self.seen.append({r["meta"]["source"] for r in reader.iter_all(include_documents=False)})
        return self.inner.embed_documents(texts)


def test_a_changed_file_keeps_its_old_chunks_until_the_new_are_stored(
    settings, corpus, write_article, read_chunks
):
    build_index(settings)
    write_article(corpus, "football.txt", "The derby ended in a draw.", title="Derby draw")
    watching = WatchingEmbedder(settings)
    report = build_index(settings, embedder=watching)
    assert report.updated == ["football.txt"]
    assert watching.seen and all("football.txt" in seen for seen in watching.seen)
    assert read_chunks(settings)["football.txt#0"][0] == "The derby ended in a draw."


def test_rebuild_builds_aside_while_the_old_index_answers(
    settings, corpus, write_article, read_chunks
):
    build_index(settings)
    before = read_chunks(settings)
    generation = ChunkStore(settings).info().generation
    reader = ChunkStore(settings)  # opened before, as a running bot's
    reader.open()
    write_article(corpus, "late.txt", "Breaking news arrived late.", title="Late")
    watching = WatchingEmbedder(settings)
    report = build_index(settings, embedder=watching, rebuild=True)
    assert report.rebuilt and len(report.added) == 4
    # While it embedded, readers saw the whole old index (and not the new file).
    assert watching.seen == [set(s.split("#")[0] for s in before)]
    assert ChunkStore(settings).info().generation != generation
    after = read_chunks(settings)
    assert set(after) == set(before) | {"late.txt#0"}
    assert ChunkStore(settings).active_name().startswith("newsbot.g")
    assert collection_names(settings) == ["newsbot.active", ChunkStore(settings).active_name()]
    # The reader that had the old collection open finds it gone, and follows the pointer.
    with pytest.raises(IndexChangedError):
        reader.count()
    assert reader.count() == 4
    # Chroma keeps the vector files of a dropped collection: the indexer removes them.
    segments = [p for p in settings.chroma_dir.iterdir() if p.is_dir()]
    assert len(segments) <= 1
    # A second rebuild swaps again; incremental builds go on in the new collection.
    build_index(settings, rebuild=True)
    (corpus / "late.txt").unlink()
    assert build_index(settings).removed == ["late.txt"]
    assert set(read_chunks(settings)) == set(before)
    assert len(collection_names(settings)) == 2


def test_rebuild_killed_after_its_manifest_commit_is_finished_by_the_next_build(
    settings, corpus, counting_embedder, monkeypatch, read_chunks
):
    build_index(settings)
    (corpus / "drones.txt").unlink()

    def die(self, staging):
        raise RuntimeError("killed before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(ChunkStore, "activate", die)
        with pytest.raises(RuntimeError):
            build_index(settings, rebuild=True)
    assert "drones.txt#0" in read_chunks(settings)  # readers still read the old index
    report = build_index(settings, embedder=counting_embedder)
    assert counting_embedder.embedded == []  # nothing built again: the swap is finished
    assert report.unchanged == ["football.txt", "world/economy.txt"]
    assert set(read_chunks(settings)) == {"football.txt#0", "world/economy.txt#0"}
    assert len(collection_names(settings)) == 2  # the rebuilt index and its pointer


def test_a_big_file_is_embedded_and_stored_in_parts_and_resumes(
    make_settings, corpus, tmp_path, monkeypatch, read_chunks
):
    """A 50 MB file was one batch: no progress, nothing stored until the end. Now it is stored
    part by part, and a build that dies half way keeps the parts it stored."""
    monkeypatch.setattr(index.build, "GROUP_CHUNKS", 8)
    settings = make_settings(chunk_size=64, chunk_overlap=8)
    (corpus / "big.txt").write_text(f"Big one\n{long_body(11, paragraphs=30)}\n")
    calls = []
    failing = FailingEmbedder(CountingEmbedder(HashingEmbedder()), fail_on=4)
    with pytest.raises(RuntimeError):
        build_index(settings, embedder=failing, progress=lambda *a: calls.append(a))
    assert len(failing.inner.embedded) == 3 * 8  # three parts of 8 were embedded ...
    stored = len(ChunkStore(settings).all_ids())
    assert stored == 3 * 8  # ... and stored before the fourth failed
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) >= 4 and calls[-1][0] < calls[-1][1]

    again = CountingEmbedder(HashingEmbedder())
    report = build_index(settings, embedder=again)
    assert report.chunks_written == report.chunks - stored  # only what was missing
    assert len(again.embedded) == report.chunks - stored
    expected = clean_build_records(
        make_settings, tmp_path, read_chunks, chunk_size=64, chunk_overlap=8
    )
    assert read_chunks(settings) == expected


def test_chunks_of_the_old_id_scheme_go_when_their_file_changes(
    settings, corpus, write_article, read_chunks
):
    """Stores made before ids carried a version hold `<source>#<n>` ids: they keep answering,
    and are replaced like any old version when their file changes."""
    build_index(settings)
    collection = ChunkStore(settings).open()
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    collection.delete(ids=got["ids"])
    old_metas = [{k: v for k, v in m.items() if k != "version"} for m in got["metadatas"]]
    collection.add(
        ids=[f"{m['source']}#{m['ordinal']}" for m in old_metas],
        embeddings=got["embeddings"],
        documents=got["documents"],
        metadatas=old_metas,
    )
    write_article(corpus, "football.txt", "The derby ended in a draw.", title="Derby draw")
    report = build_index(settings)
    assert report.updated == ["football.txt"] and len(report.unchanged) == 2
    ids = sorted(ChunkStore(settings).all_ids())
    assert ids[0] == "drones.txt#0" and ids[2] == "world/economy.txt#0"  # unchanged: kept
    assert ids[1].startswith("football.txt#") and ids[1].count("#") == 2


def run_and_kill(command, env, cwd, store: Path, delay: float, when_writing: bool) -> str:
    """Start `newsbot index` and SIGKILL it `delay` s after it starts or, with `when_writing`,
    after it has been seen writing; says what the kill interrupted."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if when_writing:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                if "pending" in manifest_states(store).values():
                    break
                time.sleep(0.01)
        process.wait(timeout=delay)
        return "nothing (it had finished)"
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    if "pending" in manifest_states(store).values():
        return "a write"
    return "start-up or reading"


def stored(settings) -> dict[str, tuple[str, dict, list[float]]]:
    collection = ChunkStore(settings).open()
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    return {
        i: (d, m, [round(float(x), 5) for x in e])
        for i, d, m, e in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }


@pytest.mark.slow
def test_killed_indexer_heals_on_the_next_run(tmp_path, corpus, cli_env, make_settings):
    """SIGKILL `newsbot index` at random moments while the corpus changes under it, then run
    it again: the index must equal a clean build's -- no duplicates, orphans or gaps."""
    write_many(corpus, 400)
    store = tmp_path / "killed-store"
    env = cli_env(corpus_dir=corpus, store_dir=store, embed_model="hashing")
    command = [str(NEWSBOT), "index", "--json"]
    seed = int(time.time())
    rng = random.Random(seed)
    # Fixed moments (start-up, reading, maybe writing: it depends on the machine's load), then
    # random moments after the indexer has been seen writing, so every machine kills mid-write.
    plan = [(0.3, False), (0.6, False), (1.0, False)]
    plan += [(rng.uniform(0.0, 0.3), True) for _ in range(3)]
    outcomes = []
    for round_, (delay, when_writing) in enumerate(plan):
        args = command + ["--rebuild"] if round_ == 4 else command  # a rebuild dies too
        outcomes.append(run_and_kill(args, env, tmp_path, store, delay, when_writing))
        if round_ == 2:  # the corpus changes between two interrupted builds
            for i in range(0, 400, 37):
                (corpus / f"gen/{i % 7}/article{i:04d}.txt").unlink()
            for i in range(5, 400, 41):
                path = corpus / f"gen/{i % 7}/article{i:04d}.txt"
                path.write_text(f"Changed {i}\nNew text.\n")
    context = f"seed {seed}, plan {plan}, outcomes {outcomes}"
    assert "a write" in outcomes, f"no kill interrupted a write ({context})"

    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    killed = make_settings(store_dir=store)
    ids = [r["id"] for r in ChunkStore(killed).iter_all(include_documents=False)]
    assert len(ids) == len(set(ids)) == ChunkStore(killed).count()

    clean = make_settings(store_dir=tmp_path / "clean-store")
    build_index(clean)
    expected = stored(clean)
    got = stored(killed)
    assert sorted(got) == sorted(expected), context
    assert got == expected, context
    assert set(manifest_states(store).values()) == {"ok"}
    info = ChunkStore(killed).info()
    assert (info.articles, info.chunks) == (len(manifest_states(store)), len(expected))
    vector = index.build.make_embedder(killed).embed_query("minister unions strikes")
    assert len(ChunkStore(killed).query(vector, k=5)) == 5


@pytest.mark.slow
def test_lock_refuses_a_second_cli_indexer_and_the_index_stays_intact(
    settings, corpus, cli_env, read_chunks, tmp_path
):
    build_index(settings)
    before = read_chunks(settings)
    (corpus / "drones.txt").unlink()
    env = cli_env(corpus_dir=corpus, store_dir=settings.store_dir, embed_model="hashing")
    with index_lock(settings.store_dir):
        done = subprocess.run(
            [str(NEWSBOT), "index"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
    assert done.returncode == 1
    assert done.stderr.startswith("newsbot: Another indexer (pid ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert read_chunks(settings) == before


# -- the real model ----------------------------------------------------------------------------
@pytest.mark.integration
def test_example_corpus_with_the_bundled_model(
    make_settings, example_corpus, bundled_embedder, bundled_tokenize
):
    settings = make_settings(corpus_dir=example_corpus, embed_model="bundled")
    report = build_index(settings, embedder=bundled_embedder)
    assert report.added == ["000_00196775ba7d3aee.txt", "001_5644935dc87ec3b5.txt"]
    assert report.chunks == report.chunks_written >= 3
    store = ChunkStore(settings)
    info = store.info()
    assert info.model == "all-MiniLM-L6-v2 (bundled)" and info.chunking == "256/48"
    for record in store.iter_all():
        title = record["meta"]["title"]
        embedded = f"{title}\n{record['text']}" if title else record["text"]
        assert len(bundled_tokenize([embedded])[0]) + 2 <= 256

    hits = store.query(bundled_embedder.embed_query("Did Iran supply drones to Russia?"), k=3)
    assert hits[0]["meta"]["source"] == "001_5644935dc87ec3b5.txt"
    assert "drones" in hits[0]["text"]
    assert hits[0]["distance"] < hits[-1]["distance"]
    # Without changes a build needs the tokenizer only, never the model.
    assert build_index(settings).unchanged == report.added


# -- a file's status vouches for its bytes -----------------------------------------------------
def test_a_build_with_nothing_changed_reads_no_article(
    settings, counting_embedder, monkeypatch, settled
):
    build_index(settings, embedder=counting_embedder)
    reads = count_reads(monkeypatch)
    report = build_index(settings, embedder=counting_embedder)
    assert reads == [] and report.chunks_written == 0
    assert report.unchanged == ["drones.txt", "football.txt", "world/economy.txt"]


def test_a_change_that_keeps_size_and_modification_time_is_still_seen(
    settings, corpus, counting_embedder, monkeypatch, settled, read_chunks
):
    build_index(settings, embedder=counting_embedder)
    path = corpus / "football.txt"
    before = path.stat()
    text = path.read_text()
    changed = text.replace("a", "e", 1)
    assert len(changed) == len(text) and changed != text
    path.write_text(changed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the change time still moves
    renamed = corpus / "drones.txt"  # saved by an editor that writes a copy and renames it
    before = renamed.stat()
    copy = corpus / "drones.tmp"
    copy.write_text(renamed.read_text().replace("Iran has", "Irak has"))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    copy.rename(renamed)
    reads = count_reads(monkeypatch)
    report = build_index(settings, embedder=counting_embedder)
    assert sorted(reads) == ["drones.txt", "football.txt"]
    assert report.updated == ["drones.txt", "football.txt"]
    assert read_chunks(settings)["drones.txt#0"][0].startswith("Irak has supplied")


def test_a_file_vouched_for_but_pending_in_the_manifest_is_read_and_indexed(
    settings, counting_embedder, monkeypatch, settled, read_chunks
):
    from index.manifest import Manifest

    build_index(settings, embedder=counting_embedder)
    manifest = Manifest(settings.manifest_path)
    manifest.mark_pending(["football.txt"])  # as a build that died would leave it
    manifest.close()
    reads = count_reads(monkeypatch)
    report = build_index(settings, embedder=counting_embedder)
    assert reads == ["football.txt"] and report.added == ["football.txt"]
    assert manifest_states(settings.store_dir) == dict.fromkeys(
        ["drones.txt", "football.txt", "world/economy.txt"], "ok"
    )
