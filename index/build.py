"""Incremental, crash-safe builds: keep the Chroma collection in step with the corpus folder.

The manifest (SQLite, in the store dir) maps every indexed source path to the hash of its bytes
and a state, `ok` or `pending`. Identity is the path: two files with the same text are two
articles, and removing one removes only its chunks. The manifest records the id of the Chroma
collection it describes; against any other (a Chroma server newly set, a renamed collection, a
deleted Chroma folder) it is not trusted, and everything is indexed again.

A build compares the corpus with the manifest and touches only what differs:

    new or changed file   mark pending -> delete its chunks -> embed -> add -> mark ok
    removed file          mark pending -> delete its chunks -> forget it
    unchanged file        nothing (not even read by the model: only hashed)

Crash safety comes from that order. A file is marked `pending` (committed) before its chunks
are touched, and `ok` only after all its chunks are in Chroma; chunk ids are deterministic
(`<source>#<n>`) and writes are upserts. So after a kill at any moment, the next build finds
the pending rows, deletes whatever chunks they left, and indexes them again: no duplicates, no
orphans, no missing files. `--rebuild` marks every row pending before it drops the collection.

One indexer at a time: an exclusive `flock` on `<store>/index.lock`. A second indexer waits a
bounded time for it, then gives up with a clear message; readers never take the lock.

Embedding work is grouped across files (a few hundred chunks at a time, longest first inside
the embedder) so the model runs full batches, while each group commits as soon as it is stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from index.articles import (
    SkippedFile,
    content_hash,
    list_article_files,
    load_article,
    source_name,
)
from index.chunking import Chunk, Chunker
from index.embeddings import make_embedder
from index.errors import IndexBusyError, IndexMismatchError, NewsbotError
from index.lexical import cache_path, update_cache
from index.settings import IndexSettings
from index.store import ChunkStore, chunking_id, now

log = logging.getLogger(__name__)

GROUP_CHUNKS = 512
Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    articles: int = 0
    chunks: int = 0
    seconds: float = 0.0
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict:
        return asdict(self)


class Manifest:
    """source -> (hash, state) in SQLite; every write is its own committed transaction."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS files (
                source TEXT PRIMARY KEY, hash TEXT, state TEXT NOT NULL,
                chunks INTEGER DEFAULT 0, date TEXT);
            """
        )

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def files(self) -> dict[str, tuple[str | None, str]]:
        return {s: (h, st) for s, h, st in self.db.execute("SELECT source, hash, state FROM files")}

    def mark_pending(self, sources: list[str]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT INTO files (source, hash, state) VALUES (?, NULL, 'pending') "
                "ON CONFLICT(source) DO UPDATE SET state='pending'",
                [(s,) for s in sources],
            )

    def mark_ok(self, rows: list[tuple[str, str, int, str | None]]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO files (source, hash, state, chunks, date) "
                "VALUES (?, ?, 'ok', ?, ?)",
                rows,
            )

    def forget(self, sources: list[str]) -> None:
        with self._tx():
            self.db.executemany("DELETE FROM files WHERE source = ?", [(s,) for s in sources])

    def totals(self) -> tuple[int, int, str | None, str | None]:
        return self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(chunks), 0), MIN(NULLIF(date, '')), "
            "MAX(NULLIF(date, '')) FROM files WHERE state = 'ok'"
        ).fetchone()

    @contextlib.contextmanager
    def _tx(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


@contextlib.contextmanager
def index_lock(store_dir: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the store's indexer lock; raise IndexBusyError if it is not free in time."""
    store_dir.mkdir(parents=True, exist_ok=True)
    path = store_dir / "index.lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise IndexBusyError(
                        f"Another indexer ({holder}) is updating the index in {store_dir}; "
                        "try again when it has finished."
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_index(
    settings: IndexSettings,
    *,
    embedder=None,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_wait: float = 0.0,
    store: ChunkStore | None = None,
) -> BuildReport:
    """Bring the index in line with the corpus folder; returns what changed."""
    started = time.perf_counter()
    corpus_dir = settings.corpus_dir
    if not corpus_dir.is_dir():
        raise NewsbotError(
            f"The corpus folder {corpus_dir} does not exist. Create it and put article .txt "
            "files in it, or set NEWSBOT_CORPUS_DIR."
        )
    embedder = embedder or make_embedder(settings)
    report = BuildReport(rebuilt=rebuild)
    with index_lock(settings.store_dir, lock_wait):
        store = store or ChunkStore(settings)
        manifest = Manifest(settings.manifest_path)
        try:
            _build(settings, embedder, store, manifest, report, rebuild, progress)
        finally:
            manifest.close()
        if report.changed or rebuild or not cache_path(settings.store_dir).exists():
            update_cache(store, settings.store_dir)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _build(settings, embedder, store, manifest, report, rebuild, progress) -> None:
    model, chunking = embedder.model_id, chunking_id(settings)
    chunk_size = min(settings.chunk_size, embedder.max_tokens)
    store.open(create=True)
    if not rebuild:
        recorded = manifest.meta()
        if recorded.get("model") not in (None, model) or recorded.get("chunking") not in (
            None,
            chunking,
        ):
            raise IndexMismatchError(
                f"The index was built with model {recorded['model']!r} and chunking "
                f"{recorded['chunking']}, but the settings ask for {model!r} and {chunking}. "
                "Run `newsbot index --rebuild` to rebuild it."
            )
        store.check_compatible(model, chunking)

    if rebuild:
        manifest.mark_pending(list(manifest.files()))
        store.reset()
        manifest.forget(list(manifest.files()))
    elif manifest.meta().get("collection") != str(store.open().id):
        _adopt_collection(store, manifest)
    manifest.set_meta(model=model, chunking=chunking, collection=str(store.open().id))

    known = manifest.files()
    present: dict[str, tuple[Path, bytes, str]] = {}
    for path in list_article_files(settings.corpus_dir):
        source = source_name(settings.corpus_dir, path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            _skip(report, source, f"unreadable ({exc.strerror or exc})")
            continue
        present[source] = (path, data, content_hash(data))

    to_index: list[tuple[str, Path, bytes, str]] = []
    for source, (path, data, digest) in present.items():
        hash_, state = known.get(source, (None, None))
        if state == "ok" and hash_ == digest:
            report.unchanged.append(source)
        else:
            to_index.append((source, path, data, digest))
            (report.updated if state == "ok" else report.added).append(source)
    gone = [s for s in known if s not in present]
    report.removed = [s for s in gone if known[s][1] == "ok"]

    if not (to_index or gone or rebuild):
        _finish(store, manifest, report, changed=False)
        return

    store.update_meta(generation=new_generation(), model=model, chunking=chunking)
    if gone:
        manifest.mark_pending(gone)
        store.delete_sources(gone)
        manifest.forget(gone)

    chunker = Chunker(embedder.tokenize, chunk_size, settings.chunk_overlap)
    parsed: list[tuple[str, str, list[Chunk], str | None]] = []
    for source, path, data, digest in to_index:
        try:
            article = load_article(settings.corpus_dir, path, data)
        except SkippedFile as skipped:
            _skip(report, source, skipped.reason)
            _unlist(report, source)
            if source in known:  # it was indexed before: its old chunks must go
                manifest.mark_pending([source])
                store.delete_sources([source])
                manifest.forget([source])
                report.removed.append(source)
            continue
        for warning in article.warnings:
            log.warning("%s: %s", source, warning)
            report.warnings.append({"source": source, "warning": warning})
        chunks = chunker.chunk(article)
        parsed.append((source, digest, chunks, article.date))

    total = sum(len(c) for _, _, c, _ in parsed)
    if progress:
        progress(0, total)
    for group in _groups(parsed):
        sources = [source for source, _, _, _ in group]
        manifest.mark_pending(sources)
        store.delete_sources(sources)
        chunks = [chunk for _, _, file_chunks, _ in group for chunk in file_chunks]
        if chunks:
            vectors = embedder.embed_documents([c.embed_text for c in chunks])
            store.add(chunks, vectors)
        manifest.mark_ok([(s, d, len(c), date) for s, d, c, date in group])
        report.chunks_written += len(chunks)
        if progress:
            progress(report.chunks_written, total)
    _finish(store, manifest, report, changed=True)


def _adopt_collection(store: ChunkStore, manifest: Manifest) -> None:
    """The manifest was kept for another collection (another Chroma server or collection name,
    a deleted Chroma folder): trust neither side. Everything either lists becomes pending, so
    files that are present are indexed again and the chunks of the others are deleted."""
    in_store = {r["meta"]["source"] for r in store.iter_all(include_documents=False)}
    stale = sorted(in_store | set(manifest.files()))
    if stale:
        log.warning("the manifest does not describe this collection: indexing everything again")
        manifest.mark_pending(stale)


def _finish(store: ChunkStore, manifest: Manifest, report: BuildReport, changed: bool) -> None:
    articles, chunks, date_min, date_max = manifest.totals()
    report.articles, report.chunks = articles, chunks
    if changed:
        store.update_meta(
            generation=new_generation(),
            articles=articles,
            chunks=chunks,
            date_min=date_min,
            date_max=date_max,
            built_at=now(),
        )


def new_generation() -> int:
    """A fresh generation number: distinct across rebuilds, which start a new collection."""
    return time.time_ns()


def _groups(parsed):
    group, size = [], 0
    for item in parsed:
        group.append(item)
        size += len(item[2])
        if size >= GROUP_CHUNKS:
            yield group
            group, size = [], 0
    if group:
        yield group


def _skip(report: BuildReport, source: str, reason: str) -> None:
    log.warning("skipped %s: %s", source, reason)
    report.skipped.append({"source": source, "reason": reason})


def _unlist(report: BuildReport, source: str) -> None:
    for bucket in (report.added, report.updated):
        if source in bucket:
            bucket.remove(source)


def corpus_snapshot(corpus_dir: Path) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime) of every article file: cheap to take, changes when files do."""
    snapshot = set()
    for path in list_article_files(corpus_dir):
        try:
            stat = path.stat()
        except OSError:
            continue
        snapshot.add((path.as_posix(), stat.st_size, stat.st_mtime_ns))
    return frozenset(snapshot)


def watch_index(
    settings: IndexSettings,
    *,
    rebuild: bool = False,
    interval: float = 2.0,
    embedder=None,
    rounds: int | None = None,
) -> Iterator[BuildReport]:
    """Build, then rebuild incrementally whenever the corpus folder changes; yields reports.

    Polls (size, mtime) every `interval` seconds, so it works on any file system; `rounds`
    bounds the number of polls (for tests). Stops on KeyboardInterrupt.
    """
    embedder = embedder or make_embedder(settings)
    snapshot = corpus_snapshot(settings.corpus_dir)
    yield build_index(settings, embedder=embedder, rebuild=rebuild, lock_wait=interval * 5)
    polls = 0
    try:
        while rounds is None or polls < rounds:
            polls += 1
            time.sleep(interval)
            current = corpus_snapshot(settings.corpus_dir)
            if current == snapshot:
                continue
            snapshot = current
            report = build_index(settings, embedder=embedder, lock_wait=interval * 5)
            if report.changed or report.skipped:
                yield report
    except KeyboardInterrupt:
        return
