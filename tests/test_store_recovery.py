"""A store that cannot be read, or written: `newsbot index` and `newsbot ask` say in one line
what is wrong and what to do, and `newsbot index --rebuild` recovers from any state of the store
folder, setting aside what it could not read.

The commands run in this process (`run_main`), each opening the store from disk as a new
process would; the full disk is a real subprocess under a file size limit (marked `slow`)."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import NEWSBOT

from bot.answering.retrieve import HybridRetriever
from index.build import build_index
from index.embeddings import HashingEmbedder
from index.lexical import cache_path
from index.store import ChunkStore

QUESTION = "What did officials in Kyiv say about drones?"


@pytest.fixture
def env(cli_env, corpus, tmp_path):
    # Without the reranker: a `newsbot ask` that ends while its ONNX session is still being
    # made in the preload thread can abort at exit, which is not what these tests are about.
    return cli_env(
        corpus_dir=corpus, store_dir=tmp_path / "store", embed_model="hashing", rerank="off"
    )


@pytest.fixture
def store(env, make_settings, built_index) -> Path:
    return built_index(make_settings())  # the corpus, folder and model of `env`


def one_line_error(done) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("newsbot: ")
    return lines[0]


def answers(run, env) -> None:
    done = run("ask", "--json", QUESTION, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sources"][0] == "drones.txt"


def garbage(path: Path, offset: int = 0, size: int | None = None) -> None:
    size = size if size is not None else path.stat().st_size - offset
    rng = random.Random(str(path))
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(rng.randrange(256) for _ in range(size)))


def damage(store: Path, how: str) -> None:
    chroma = store / "chroma" / "chroma.sqlite3"
    manifest = store / "manifest.sqlite3"
    if how == "chroma.sqlite3 garbage":
        garbage(chroma, size=4096)
    elif how == "chroma.sqlite3 garbage inside":
        garbage(chroma, offset=8192, size=chroma.stat().st_size - 16384)
    elif how == "chroma.sqlite3 truncated":
        os.truncate(chroma, chroma.stat().st_size // 3)
    elif how == "manifest garbage":
        garbage(manifest)
    elif how == "manifest truncated":
        os.truncate(manifest, 3000)
    elif how == "store is a file":
        for path in sorted(store.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        store.rmdir()
        store.write_text("not a folder\n")
    elif how == "chroma folder is a file":
        for path in sorted((store / "chroma").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (store / "chroma").rmdir()
        (store / "chroma").write_text("not a folder\n")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how, ask_fails",
    [
        ("chroma.sqlite3 garbage", True),
        ("chroma.sqlite3 garbage inside", True),
        ("chroma.sqlite3 truncated", True),
        ("manifest garbage", False),  # questions need Chroma only
        ("manifest truncated", False),
        ("store is a file", True),
        ("chroma folder is a file", True),
    ],
)
def test_damaged_store_is_one_line_and_rebuild_recovers(
    store, env, run_main, tmp_path, how, ask_fails
):
    damage(store, how)
    line = one_line_error(run_main("index", env=env))
    assert "newsbot index --rebuild" in line, line
    if ask_fails:
        line = one_line_error(run_main("ask", QUESTION, env=env))
        assert "newsbot index --rebuild" in line, line
    else:
        answers(run_main, env)

    done = run_main("index", "--rebuild", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == ["drones.txt", "football.txt", "world/economy.txt"]
    [warning] = report["warnings"]
    assert warning["source"] == str(store)
    moved_to = Path(warning["warning"].split(" moved ", 1)[1].split(" to ", 1)[1].split()[0])
    assert moved_to.exists() and "broken-" in moved_to.name  # kept, to look at
    answers(run_main, env)
    again = json.loads(run_main("index", "--json", env=env).stdout)
    assert len(again["unchanged"]) == 3 and again["warnings"] == []


def test_damaged_vectors_are_rebuilt_aside(store, env, run_main, make_settings):
    """Chroma's vector files of the collection unreadable: the rebuild never reads them."""
    more = make_settings(store_dir=store)
    corpus = more.corpus_dir
    for i in range(120):  # enough chunks for Chroma to write its vector files
        body = " ".join(f"Sentence {j} of report {i} on the harbour works." for j in range(30))
        (corpus / f"bulk/{i:03d}.txt").parent.mkdir(exist_ok=True)
        (corpus / f"bulk/{i:03d}.txt").write_text(f"Report {i}\n{body}\n")
    assert run_main("index", env=env).returncode == 0
    [segment] = [p for p in (store / "chroma").iterdir() if p.is_dir()]
    header = segment / "header.bin"
    garbage(header)
    done = run_main("index", "--rebuild", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert not segment.exists()  # the old collection and its files are gone
    retriever = HybridRetriever(ChunkStore(more), HashingEmbedder(), cache_path(store))
    assert retriever.retrieve(QUESTION, 3)[0].source == "drones.txt"


def test_read_only_store_is_one_line(store, env, run_main):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders anyway")
    modes = {}
    for path in [store, *store.rglob("*")]:
        modes[path] = path.stat().st_mode
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        line = one_line_error(run_main("index", env=env))
        assert "read-only" in line and "NEWSBOT_STORE_DIR" in line
        line = one_line_error(run_main("index", "--rebuild", env=env))
        assert "read-only" in line
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    answers(run_main, env)


def write_bulk(corpus: Path, count: int) -> None:
    for i in range(count):
        body = " ".join(f"Line {j} of bulletin {i} about the grain harvest." for j in range(40))
        path = corpus / f"bulk/{i:03d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"Bulletin {i}\n{body}\n")


@pytest.mark.slow
def test_full_disk_is_one_line_and_the_next_build_goes_on(
    env, corpus, tmp_path, make_settings, run_newsbot
):
    """A file size limit (`ulimit -f`) stands in for a full disk: writes fail with EFBIG
    (SIGXFSZ ignored in the child, as a shell's `ulimit -f` user would see a failed write)."""
    write_bulk(corpus, 150)

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

    done = subprocess.run(
        [str(NEWSBOT), "index"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,
    )
    lines = [line for line in done.stderr.splitlines() if not line.startswith("embedding: ")]
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert "file size limit" in lines[0] and "newsbot index" in lines[0], lines[0]

    done = run_newsbot("index", "--json", env=env)
    assert done.returncode == 0, done.stderr
    killed = make_settings(store_dir=tmp_path / "store")
    clean = make_settings(store_dir=tmp_path / "clean-store")
    build_index(clean)

    def records(settings):
        return {r["id"]: (r["text"], r["meta"]) for r in ChunkStore(settings).iter_all()}

    assert records(killed) == records(clean)
    answers(run_newsbot, env)
