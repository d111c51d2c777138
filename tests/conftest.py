"""Shared fixtures: an environment that never sees the developer's own settings, small corpora
written into `tmp_path`, settings that point at them, and helpers to run the real CLI.

Unit tests embed with the deterministic `hashing` model (no torch); tests marked `integration`
use the real bundled model, loaded once per session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CORPUS = REPO / "corpus"
NEWSBOT = Path(sys.executable).with_name("newsbot")
ENV_PREFIXES = ("NEWSBOT_", "TELEGRAM_")


def _without_our_vars(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(ENV_PREFIXES)}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No test sees the developer's NEWSBOT_* / TELEGRAM_* variables, and nothing goes online."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so that no `.env` but the test's own is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def article_text(title: str | None, body: str, date: str | None = None) -> str:
    lines = [title] if title else []
    lines.append(f"date {date} {body}" if date else body)
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_article() -> Callable[..., Path]:
    """write_article(folder, name, body, title=..., date=...) -> path of the new file."""

    def write(
        folder: Path, name: str, body: str, title: str | None = None, date: str | None = None
    ) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(article_text(title, body, date), encoding="utf-8")
        return path

    return write


SMALL_CORPUS = {
    "drones.txt": (
        "Iran sends drones to Russia",
        "2022-11-01",
        "Iran has supplied hundreds of drones to Russia. Officials in Kyiv said the drones hit "
        "power stations. Mr. Smith of the U.S. embassy declined to comment.",
    ),
    "football.txt": (
        "Late goal wins the derby",
        "2022-10-15",
        "A late goal from the striker won the derby on Saturday. The manager praised his "
        "players. Fans celebrated in the streets until midnight.",
    ),
    "world/economy.txt": (
        "Inflation slows in October",
        None,
        "Inflation slowed for the first time this year. Prices of food and fuel fell slightly. "
        "Economists expect the central bank to pause its rate rises.",
    ),
}


@pytest.fixture
def corpus(tmp_path, write_article) -> Path:
    """A small corpus of three short articles, one of them in a subfolder."""
    folder = tmp_path / "corpus"
    for name, (title, date, body) in SMALL_CORPUS.items():
        write_article(folder, name, body, title=title, date=date)
    return folder


@pytest.fixture
def example_corpus(tmp_path) -> Path:
    """A copy of the repository's two example articles."""
    folder = tmp_path / "example-corpus"
    shutil.copytree(EXAMPLE_CORPUS, folder)
    return folder


@pytest.fixture
def make_settings(workdir, corpus):
    """make_settings(**overrides) -> IndexSettings on the small corpus, hashing embedder."""
    from index.settings import IndexSettings, load_settings

    def make(settings_class=IndexSettings, **overrides):
        values = {
            "corpus_dir": corpus,
            "store_dir": workdir / "store",
            "embed_model": "hashing",
        }
        values.update(overrides)
        return load_settings(settings_class, **values)

    return make


@pytest.fixture
def settings(make_settings):
    return make_settings()


class CountingEmbedder:
    """Wraps an embedder and records every text it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.embedded: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_documents(self, texts: Sequence[str]):
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def reset(self) -> None:
        self.embedded.clear()


@pytest.fixture
def counting_embedder() -> CountingEmbedder:
    from index.embeddings import HashingEmbedder

    return CountingEmbedder(HashingEmbedder())


@pytest.fixture(scope="session")
def bundled_embedder():
    """The real bundled model, loaded once (importing torch takes seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from index.embeddings import Embedder

    embedder = Embedder("bundled")
    embedder.embed_query("warm up")
    return embedder


@pytest.fixture(scope="session")
def bundled_tokenize():
    """The bundled model's own tokenizer (no torch needed)."""
    from index.embeddings import Embedder

    return Embedder("bundled").tokenize


@pytest.fixture
def cli_env(tmp_path) -> Callable[..., dict[str, str]]:
    """cli_env(**NEWSBOT_vars) -> environment for a `newsbot` subprocess, none of ours leaked."""

    def make(**values: str | os.PathLike) -> dict[str, str]:
        env = _without_our_vars(dict(os.environ))
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        env.update({f"NEWSBOT_{k.upper()}": str(v) for k, v in values.items()})
        return env

    return make


@pytest.fixture
def run_newsbot(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """run_newsbot(*args, env=..., cwd=tmp_path) -> the finished `newsbot` process."""

    def run(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120):
        return subprocess.run(
            [str(NEWSBOT), *args],
            env=env,
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port()


@pytest.fixture
def read_chunks() -> Callable[..., dict[str, tuple[str, dict]]]:
    """read_chunks(settings) -> {"<source>#<ordinal>": (text, metadata)}, checking that every
    id is `<source>#<version>#<ordinal>` and that no file has chunks of two versions."""

    from index.store import ChunkStore

    def read(settings) -> dict[str, tuple[str, dict]]:
        records: dict[str, tuple[str, dict]] = {}
        for record in ChunkStore(settings).iter_all():
            meta = record["meta"]
            assert record["id"] == f"{meta['source']}#{meta['version']}#{meta['ordinal']}"
            key = f"{meta['source']}#{meta['ordinal']}"
            assert key not in records, f"two versions of {key}"
            records[key] = (record["text"], meta)
        return records

    return read
