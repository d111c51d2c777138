"""The index on a real Chroma server (`chroma run`), reached through NEWSBOT_CHROMA_HOST/PORT."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from index.build import build_index
from index.embeddings import HashingEmbedder
from index.errors import IndexChangedError
from index.store import ChunkStore

CHROMA = Path(sys.executable).with_name("chroma")

pytestmark = pytest.mark.slow  # `chroma run` and `newsbot` subprocesses


def chroma_executable() -> str | None:
    return str(CHROMA) if CHROMA.exists() else shutil.which("chroma")


def wait_for_heartbeat(process: subprocess.Popen, port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chroma run exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the Chroma server did not answer on port {port} in {seconds} s")


@pytest.fixture
def chroma_server(tmp_path, port):
    """A Chroma server on 127.0.0.1 with its data in tmp_path; stopped at the end."""
    executable = chroma_executable()
    if executable is None:
        pytest.skip("the `chroma` executable (from the chromadb package) is not installed")
    log = open(tmp_path / "chroma.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [executable, "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1"]
        + ["--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_heartbeat(process, port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_build_update_and_query_through_a_server(
    chroma_server, make_settings, corpus, write_article, read_chunks, counting_embedder
):
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=chroma_server)
    report = build_index(settings, embedder=counting_embedder)
    assert report.added == ["drones.txt", "football.txt", "world/economy.txt"]
    assert set(read_chunks(settings)) == {"drones.txt#0", "football.txt#0", "world/economy.txt#0"}
    assert not settings.chroma_dir.exists()  # nothing embedded locally

    write_article(corpus, "late.txt", "Breaking news arrived late.", title="Late")
    (corpus / "football.txt").unlink()
    counting_embedder.reset()
    report = build_index(settings, embedder=counting_embedder)
    assert report.added == ["late.txt"] and report.removed == ["football.txt"]
    assert report.unchanged == ["drones.txt", "world/economy.txt"]
    assert counting_embedder.embedded == ["Late\nBreaking news arrived late."]
    assert set(read_chunks(settings)) == {"drones.txt#0", "late.txt#0", "world/economy.txt#0"}

    store = ChunkStore(settings)
    hits = store.query(HashingEmbedder().embed_query("drones from Iran"), k=2)
    assert hits[0]["meta"]["source"] == "drones.txt"
    info = store.info()
    assert (info.articles, info.chunks, info.model) == (3, 3, "hashing")

    # A rebuild builds aside on the server too, and readers follow it there.
    before = read_chunks(settings)
    report = build_index(settings, rebuild=True)
    assert report.rebuilt and len(report.added) == 3
    assert read_chunks(settings) == before
    assert ChunkStore(settings).active_name().startswith("newsbot.g")
    with pytest.raises(IndexChangedError):
        store.count()  # the collection it had open was dropped ...
    assert store.count() == 3  # ... so it looks again


def test_cli_through_a_server(chroma_server, cli_env, run_newsbot, corpus, tmp_path):
    env = cli_env(
        corpus_dir=corpus,
        store_dir=tmp_path / "store",
        embed_model="hashing",
        chroma_host="127.0.0.1",
        chroma_port=chroma_server,
    )
    first = run_newsbot("index", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert len(json.loads(first.stdout)["added"]) == 3
    (corpus / "drones.txt").unlink()
    second = json.loads(run_newsbot("index", "--json", env=env).stdout)
    assert second["removed"] == ["drones.txt"] and len(second["unchanged"]) == 2


def test_unreachable_server_is_one_line(cli_env, run_newsbot, corpus, tmp_path, port):
    env = cli_env(
        corpus_dir=corpus,
        store_dir=tmp_path / "store",
        embed_model="hashing",
        chroma_host="127.0.0.1",
        chroma_port=port,  # nothing listens there
    )
    done = run_newsbot("index", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"newsbot: Cannot open the Chroma server at 127.0.0.1:{port}")
    assert "NEWSBOT_CHROMA_HOST" in lines[0]


def test_moving_the_index_to_a_server_indexes_everything(chroma_server, make_settings, read_chunks):
    """Same store dir (and manifest), new Chroma server: the manifest is not trusted."""
    embedded = make_settings()
    build_index(embedded)
    served = make_settings(chroma_host="127.0.0.1", chroma_port=chroma_server)
    report = build_index(served)
    assert report.added == ["drones.txt", "football.txt", "world/economy.txt"]
    assert read_chunks(served) == read_chunks(embedded)
