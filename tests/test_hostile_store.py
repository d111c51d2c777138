"""Hostile stores: a BM25 state and a manifest `seen` table written by someone else.

"Any file in the store may be corrupt": a crafted or damaged `bm25.npz` is refused -- it counts
as missing and is made again from Chroma -- so answers are those of a clean state, and reading
it neither hangs nor takes memory out of proportion to its size. A damaged `seen` row only
means the file is read again; a file whose bytes changed is always indexed again, and nothing
outside the corpus folder is read, however the folder's entries are swapped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import count_reads

from bot.answering.answer import Answerer
from bot.answering.retrieve import HybridRetriever
from bot.settings import BotSettings
from index.build import build_index
from index.embeddings import HashingEmbedder
from index.lexical import BM25Index, cache_path, update_cache, words
from index.store import ChunkStore

QUESTION = "Which drones hit the power stations?"


def rewrite(path, header=None, drop=(), **arrays) -> None:
    """Save the state again with some arrays replaced or added, header fields changed, or
    members dropped -- each array of the dtype given, as an attacker would write it."""
    with np.load(path, allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    fields = {**json.loads(saved["header"].tobytes()), **(header or {})}
    saved["header"] = np.frombuffer(json.dumps(fields).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **{k: v for k, v in {**saved, **arrays}.items() if k not in drop})


def add_member(path, name: str, npy_header: dict, payload=(), deflate=True) -> None:
    """Append a member to the state's zip: an .npy header, then the payload's pieces (deflated,
    a megabyte of zeros or spaces is about 1 kB on disk: a zip bomb)."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with (
        zipfile.ZipFile(path, "a", compression=method) as archive,
        archive.open(f"{name}.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(member, npy_header)
        for piece in payload:
            member.write(piece)


def hits(settings) -> list[tuple[str, float, float]]:
    retriever = HybridRetriever.open(settings, HashingEmbedder())
    return [
        (hit.id, round(hit.score, 6), round(hit.bm25, 6)) for hit in retriever.retrieve(QUESTION, 5)
    ]


@pytest.fixture
def clean(settings):
    """The store built over the small corpus, and the hits a clean state gives."""
    build_index(settings)
    return hits(settings)


def with_state(path, attack: str) -> None:
    with np.load(path, allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    if attack == "counts past int32":  # wrapped to negative by a cast: negative scores
        rewrite(path, tfs=saved["tfs"].astype(np.int64) + (1 << 31))
    elif attack == "offsets unsigned, not monotonic":  # np.diff of uint64 is never negative
        ptr = saved["ptr"].astype(np.uint64)
        ptr[1:-1] = ptr[-1] - ptr[1:-1]
        rewrite(path, ptr=ptr)
    elif attack == "negative chunk numbers":
        rewrite(path, docs=saved["docs"] - 1)
    elif attack == "format 2 with format-1 arrays":
        sizes = np.bincount(saved["docs"], minlength=len(saved["days"]))
        rewrite(path, drop=("ptr", "docs"), sizes=sizes, terms=saved["docs"])
    elif attack == "a member declaring 800 GB":
        rewrite(path, drop=("docs",))
        shape = (2 * 10**11,)
        add_member(
            path, "docs", {"descr": "<i4", "fortran_order": False, "shape": shape}, (), False
        )
    elif attack == "header inflating to 64 MB":
        text = saved["header"].tobytes()
        spaces = [b" " * (1 << 20)] * 64  # still valid JSON
        shape = (len(text) + (64 << 20),)
        rewrite(path, drop=("header",))
        add_member(
            path,
            "header",
            {"descr": "|u1", "fortran_order": False, "shape": shape},
            [text, *spaces],
        )
    else:
        raise AssertionError(attack)


ATTACKS = [
    "counts past int32",
    "offsets unsigned, not monotonic",
    "negative chunk numbers",
    "format 2 with format-1 arrays",
    "a member declaring 800 GB",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_crafted_state_is_refused_and_answers_are_those_of_a_clean_one(settings, clean, attack):
    path = cache_path(settings.store_dir)
    with_state(path, attack)
    assert len(BM25Index.load(path)) == 0  # refused: made again from Chroma
    assert hits(settings) == clean
    assert BM25Index.load(path).ids == BM25Index.load(path).ids != []  # saved again, readable


def test_answers_and_newsbot_index_with_a_crafted_state(settings, clean, corpus, write_article):
    bot = BotSettings(**{**settings.model_dump(), "rerank": False})

    def answer():
        reply = Answerer(bot, embedder=HashingEmbedder()).answer(QUESTION, with_llm=False)
        return reply.text, reply.sources, reply.retrieved

    expected = answer()
    path = cache_path(settings.store_dir)
    with_state(path, "counts past int32")
    assert answer() == expected
    write_article(corpus, "late.txt", "Drones were seen again.", title="Drones", date="2022-12-01")
    assert build_index(settings).added == ["late.txt"]  # what `newsbot index` runs
    fresh = BM25Index()
    fresh.sync(ChunkStore(settings), ChunkStore(settings).info().generation)
    saved = BM25Index.load(path)
    assert saved.ids == fresh.ids
    assert list(saved.scores(words(QUESTION))) == list(fresh.scores(words(QUESTION)))


@pytest.mark.parametrize("member", ["junk", "header"])
def test_a_zip_bomb_in_the_state_takes_no_memory(settings, clean, member):
    """np.savez stores its members as they are: a deflated member is refused unread, and a
    member the format does not name is not read at all."""
    path = cache_path(settings.store_dir)
    if member == "header":
        with_state(path, "header inflating to 64 MB")
    else:
        npy_header = {"descr": "<i8", "fortran_order": False, "shape": (8 << 20,)}
        add_member(path, "junk", npy_header, [bytes(1 << 20)] * 64)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        loaded = BM25Index.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert len(loaded) == (3 if member == "junk" else 0)
    assert hits(settings) == clean


def test_a_fifo_in_place_of_the_state_does_not_hang(settings, clean):
    path = cache_path(settings.store_dir)
    path.unlink()
    os.mkfifo(path)
    done = threading.Event()
    loaded = []
    thread = threading.Thread(target=lambda: (loaded.append(BM25Index.load(path)), done.set()))
    thread.daemon = True
    thread.start()
    if not done.wait(5):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked reader go
        pytest.fail("loading the BM25 state hung on a FIFO")
    assert len(loaded[0]) == 0
    update_cache(ChunkStore(settings), settings.store_dir)  # what `newsbot index` runs
    assert path.is_file() and len(BM25Index.load(path)) == 3
    assert hits(settings) == clean


# -- the manifest's seen table ------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    [
        "size = NULL, mtime_ns = NULL, ctime_ns = NULL, inode = NULL, read_ns = NULL",
        "size = 'big', read_ns = 'later'",
        "mtime_ns = x'00ff', ctime_ns = 1.5",
        "inode = -inode",
    ],
)
def test_a_damaged_seen_row_means_reading_the_file(settings, monkeypatch, settled, damage):
    build_index(settings)
    db = sqlite3.connect(settings.manifest_path)
    db.execute(f"UPDATE seen SET {damage} WHERE source = 'football.txt'")
    db.commit()
    db.close()
    read = count_reads(monkeypatch)
    report = build_index(settings)
    assert read == ["football.txt"] and not report.changed
    assert build_index(settings).unchanged == ["drones.txt", "football.txt", "world/economy.txt"]


def test_a_seen_table_of_other_columns_is_made_anew(settings, monkeypatch, settled):
    """It is a cache of the files' status: left as it is, every build failed, even --rebuild."""
    build_index(settings)
    db = sqlite3.connect(settings.manifest_path)
    db.executescript("DROP TABLE seen; CREATE TABLE seen (source TEXT PRIMARY KEY, hash TEXT);")
    db.close()
    read = count_reads(monkeypatch)
    assert not build_index(settings).changed
    assert read == ["drones.txt", "football.txt", "world/economy.txt"]
    assert not build_index(settings).changed and len(read) == 3  # remembered again


def test_a_file_swapped_for_a_link_out_of_the_corpus_is_never_read(
    settings, corpus, tmp_path, monkeypatch, settled, read_chunks
):
    """The link has the size and times of the file it replaced: still nothing is read."""
    build_index(settings)
    outside = tmp_path / "secret" / "football.txt"
    outside.parent.mkdir()
    path = corpus / "football.txt"
    status = path.stat()
    outside.write_text(path.read_text().replace("derby", "SECRT"))
    os.utime(outside, ns=(status.st_atime_ns, status.st_mtime_ns))
    path.unlink()
    path.symlink_to(outside)
    (corpus / "world").rename(tmp_path / "secret" / "world")  # a folder swapped for a link
    (corpus / "world").symlink_to(tmp_path / "secret" / "world")
    read = count_reads(monkeypatch)
    report = build_index(settings)
    assert read == [] and sorted(report.removed) == ["football.txt", "world/economy.txt"]
    assert {r["source"] for r in report.skipped} == {"football.txt", "world/"}
    assert not any("SECRT" in text for text, _ in read_chunks(settings).values())


def test_a_file_with_a_future_mtime_changed_in_place_is_indexed_again(
    settings, corpus, monkeypatch, settled, read_chunks
):
    """Clock skew: times ahead of the clock never count as settled, the file is always read."""
    path = corpus / "football.txt"
    future = path.stat().st_mtime_ns + 86_400 * 10**9
    os.utime(path, ns=(future, future))
    build_index(settings)
    path.write_text(path.read_text().replace("derby", "match"))
    os.utime(path, ns=(future, future))
    read = count_reads(monkeypatch)
    assert build_index(settings).updated == ["football.txt"] and read == ["football.txt"]
    assert "match" in read_chunks(settings)["football.txt#0"][0]


def test_a_file_deleted_and_another_renamed_into_its_name_is_indexed_again(
    settings, corpus, settled, read_chunks
):
    build_index(settings)
    path = corpus / "football.txt"
    status, text = path.stat(), path.read_text()
    path.unlink()  # its inode may go to the next file made
    other = corpus / "football.new"
    other.write_text(text.replace("derby", "match"))
    os.utime(other, ns=(status.st_atime_ns, status.st_mtime_ns))
    other.rename(path)
    assert build_index(settings).updated == ["football.txt"]
    assert "match" in read_chunks(settings)["football.txt#0"][0]
