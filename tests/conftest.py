"""Shared fixtures: an environment that never sees the developer's own settings, small corpora
written into `tmp_path`, settings that point at them, and helpers to run the CLI.

Unit tests embed with the deterministic `hashing` model (no torch); tests marked `integration`
use the real bundled model, loaded once per session.

The CLI is run two ways. `run_main` calls `bot.cli.main.main(args)` in this process -- what the
`newsbot` script runs -- with the command's environment, working folder, stdin, stdout and
stderr, so most CLI tests pay neither Python's start-up nor a model load per command. A real
subprocess (`run_newsbot`, `NEWSBOT`) is kept for what only a process shows: exit statuses set
at exit, closed pipes, signals, a terminal, resource limits, and the cold `newsbot ask` that
retrieves in a forked child (bot.cli.prefetch; `run_main` never forks, as chromadb is loaded).
Those tests are marked `slow`; `make test-unit` leaves them out.

What keeps the fast tier fast, without sharing any state between tests:
- `tmp_path` lives in memory (/dev/shm) where there is one with 2 GB free: the index's SQLite
  files and Chroma sync every write, and on a disk a small index took ~0.3 s to build instead
  of ~0.05 s.
- every httpx client (python-telegram-bot's two per Application, the LLM providers') loads the
  CA bundle named by SSL_CERT_FILE: ~45 ms of CPU for certifi's ~150 certificates, so tests name
  a bundle of one. Tests only speak plain HTTP to 127.0.0.1; no certificate is ever checked.
- `built_index` builds an index of a given corpus once per session and gives each test its own
  copy of that store, for tests whose subject is not the build itself.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CORPUS = REPO / "corpus"
NEWSBOT = Path(sys.executable).with_name("newsbot")
ENV_PREFIXES = ("NEWSBOT_", "TELEGRAM_")


MEMORY_DIR = Path("/dev/shm")
MEMORY_DIR_NEEDS = 2 << 30  # the whole suite's folders at once, with room to spare


def _without_our_vars(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(ENV_PREFIXES)}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Put `tmp_path` folders in memory unless --basetemp names a place; removed at the end.

    Runs before pytest's own tmp_path plugin reads `basetemp`. Each session gets a new folder,
    so sessions run side by side never share one."""
    if config.option.basetemp or not os.access(MEMORY_DIR, os.W_OK):
        return
    if shutil.disk_usage(MEMORY_DIR).free < MEMORY_DIR_NEEDS:  # a container's 64 MB /dev/shm
        return
    base = tempfile.mkdtemp(prefix="newsbot-tests-", dir=MEMORY_DIR)
    config.option.basetemp = base
    config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))


@pytest.fixture(scope="session")
def _one_cert_bundle(tmp_path_factory) -> Path:
    """A CA bundle of one certificate (the first of certifi's), cheap for httpx to load."""
    import certifi

    bundle = Path(certifi.where()).read_text(encoding="ascii")
    first = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", bundle, re.S)
    path = tmp_path_factory.mktemp("certs") / "one.pem"
    path.write_text(first[0], encoding="ascii")
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, _one_cert_bundle):
    """No test sees the developer's NEWSBOT_* / TELEGRAM_* variables, and nothing goes online."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("SSL_CERT_FILE", str(_one_cert_bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


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


@dataclass(frozen=True)
class Ran:
    """A finished `run_main` command, read as a `subprocess.CompletedProcess` is."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class _Exited(BaseException):
    """`os._exit(status)` of a command run in this process (`newsbot chat` leaves that way)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _exit_status(code) -> int:
    """The status `sys.exit(code)` leaves a process with (argparse exits with 2)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@pytest.fixture
def run_main(tmp_path, monkeypatch, capsys) -> Callable[..., Ran]:
    """run_main(*args, env=..., cwd=tmp_path, stdin=b"") -> Ran: `newsbot ARGS` in this process.

    Only the NEWSBOT_/TELEGRAM_ variables of `env` (a `cli_env` environment, say) are set;
    `stdin` is piped in (bytes as they are, text as UTF-8). Each run starts as a new process
    would: logging set up afresh by the command, and Chroma reading the store from disk (a
    process keeps one Chroma system per folder, index.clients). An exception `main` lets out
    is raised here, where a process would print its traceback. Afterwards the environment,
    working folder, logging and stdin are as they were."""
    import chromadb  # noqa: F401 -- loaded, so that `newsbot ask` never forks pytest

    from bot.cli.main import main
    from index.clients import forget_shared_clients

    root = logging.getLogger()

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: bytes | str = b"",
    ) -> Ran:
        piped = stdin.encode() if isinstance(stdin, str) else stdin
        capsys.readouterr()  # what the test printed before is not the command's
        handlers, level = root.handlers[:], root.level
        loggers = logging.root.manager.loggerDict.values()
        levels = {log: log.level for log in loggers if isinstance(log, logging.Logger)}

        pid, real_exit = os.getpid(), os._exit

        def exit_now(status: int):
            if os.getpid() != pid:
                real_exit(status)  # a forked child leaves as it would have
            raise _Exited(status)

        with monkeypatch.context() as patch:
            for name in list(os.environ):
                if name.startswith(ENV_PREFIXES):
                    patch.delenv(name)
            for name, value in (env or {}).items():
                if name.startswith(ENV_PREFIXES):
                    patch.setenv(name, str(value))
            patch.chdir(cwd or tmp_path)
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped), encoding="utf-8"))
            patch.setattr(sys, "argv", [str(NEWSBOT), *args])
            patch.setattr(os, "_exit", exit_now)
            root.handlers = []  # as in a new process: the command's logging.basicConfig applies
            try:
                status = main(list(args))
            except SystemExit as exc:
                status = _exit_status(exc.code)
            except _Exited as exc:
                status = exc.status
            finally:
                root.handlers = handlers
                root.setLevel(level)
                # only the changed ones: each setLevel clears the cache of every logger
                for logger, was in levels.items():
                    if logger.level != was:
                        logger.setLevel(was)
                forget_shared_clients()
        out, err = capsys.readouterr()
        return Ran(tuple(args), status, out, err)

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


def _build_key(settings) -> str:
    """What decides a build's result: the corpus files' names and bytes, and every index
    setting but the two folders."""
    from index.settings import IndexSettings

    corpus = settings.corpus_dir
    files = sorted(
        (path.relative_to(corpus).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in corpus.rglob("*")
        if path.is_file()
    )
    values = [(name, getattr(settings, name)) for name in sorted(IndexSettings.model_fields)]
    return repr(([v for v in values if v[0] not in ("corpus_dir", "store_dir")], files))


@pytest.fixture(scope="session")
def _built_stores() -> dict[str, Path]:
    return {}


@pytest.fixture
def built_index(_built_stores, tmp_path_factory) -> Callable[..., Path]:
    """built_index(settings) -> settings.store_dir, holding the index of settings.corpus_dir.

    For tests whose subject is not the build (tests/test_build.py builds for real). The first
    test to ask for a corpus builds it with `build_index` and the result is kept aside; later
    ones get a copy of that store in their own folder, as a build of the same bytes with the
    same settings would leave it (a store holds no absolute path), so what one test writes no
    other sees. The folder must be missing or empty."""
    from index.build import build_index

    def build(settings) -> Path:
        store = settings.store_dir
        assert not store.exists() or not any(store.iterdir()), f"{store} is not empty"
        key = _build_key(settings)
        if key in _built_stores:
            shutil.copytree(_built_stores[key], store, dirs_exist_ok=True)
        else:
            build_index(settings)
            kept = tmp_path_factory.mktemp("built") / "store"
            shutil.copytree(store, kept)
            _built_stores[key] = kept
        return store

    return build


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled as soon as they were read (no waiting out the clock's tick):
    a build trusts the manifest's `seen` row of a file whose status has not changed."""
    monkeypatch.setattr("index.plan.SETTLED_NS", 0)


def count_reads(monkeypatch) -> list[str]:
    """The sources `index.plan` reads article files of from now on, in order."""
    import index.plan

    read, real = [], index.plan.read_article_file

    def reading(corpus_dir, path, source=None):
        read.append(source)
        return real(corpus_dir, path, source)

    monkeypatch.setattr(index.plan, "read_article_file", reading)
    return read
