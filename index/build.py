"""Incremental, crash-safe builds: keep the Chroma collection in step with the corpus folder.

The manifest (SQLite, in the store dir) maps every indexed source path to the hash of its bytes
and a state, `ok` or `pending`. Identity is the path: two files with the same text are two
articles, and removing one removes only its chunks. The manifest records the id of the Chroma
collection it describes; against any other (a Chroma server newly set, a renamed collection, a
deleted Chroma folder) it is not trusted, and everything is indexed again.

A build compares the corpus with the manifest and touches only what differs:

    new or changed file   mark pending -> embed -> add the new version's chunks
                          -> new generation -> delete its other chunks -> mark ok
    removed file          mark pending -> new generation -> delete its chunks -> forget it
    unchanged file        nothing (not even read by the model: only hashed)

Questions keep being answered while a build runs (the chat, the Telegram bot, another process).
Chunk ids carry a hash of the file's bytes (`<source>#<version>#<n>`, see `index.store`), so a
changed file's new chunks are written beside the old ones, and the old ones are deleted only
once the new are stored and the generation has moved: a reader always finds a version of every
article, the old or the new, never a hole; a reader that meets a row deleted under it sees the
generation moved, and looks again.

Crash safety comes from that order. A file is marked `pending` (committed) before its chunks
are touched, and `ok` only after all its chunks are in Chroma and its other chunks are gone;
writes are upserts of deterministic ids. So after a kill at any moment, the next build finds the
pending rows and indexes them again -- chunks of the current version already stored are kept,
not embedded again, and every other chunk of the file is deleted: no duplicates, no orphans,
no missing files. A big file is embedded and stored in parts of `GROUP_CHUNKS`, with progress
after each, so a killed build of a 50 MB file resumes where it stopped.

`--rebuild` builds a new collection aside while the old one keeps answering (the manifest keeps
describing the old one), then, in this order: writes the new collection's metadata, replaces
the manifest's rows in one transaction, and points readers at the new collection
(`ChunkStore.activate`, which drops the old one). A rebuild killed before the manifest commit
leaves a collection that the next build drops; one killed after it is finished by the next
build. With no index to keep answering (none yet, or one set aside as unreadable), a rebuild
builds in place, resumable like any build.

A store that cannot be read (damaged SQLite files, a store path that is a file, a read-only
folder, a full disk) is a `StoreError` of one line saying what to do. `--rebuild` first sets
aside whatever of the store cannot be read -- into `<store>/broken-<time>/`, or
`<store>.broken-<time>` when the store path itself is a file -- says where in the report's
warnings, and builds anew.

One indexer at a time: an exclusive `flock` on `<store>/index.lock`. A second indexer waits a
bounded time for it, then gives up with a clear message; readers never take the lock.

Embedding work is grouped across files (a few hundred chunks at a time, longest first inside
the embedder) so the model runs full batches, while each group commits as soon as it is stored.
"""

from __future__ import annotations

import contextlib
import errno
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
    read_article_bytes,
    scan_corpus,
    source_name,
)
from index.chunking import Chunk, Chunker
from index.embeddings import make_embedder
from index.errors import IndexBusyError, IndexMismatchError, NewsbotError, StoreError
from index.lexical import cache_path, update_cache
from index.settings import IndexSettings
from index.store import (
    ChunkStore,
    chunk_id,
    chunking_id,
    forget_shared_client,
    now,
    store_failure,
)

VERSION_CHARS = 12  # of the content hash, in chunk ids: a file's versions never share ids

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

    def replace_all(self, rows: list[tuple[str, str, int, str | None]], **meta: str) -> None:
        """Describe another collection: all its rows `ok`, and its meta, in one transaction."""
        with self._tx():
            self.db.execute("DELETE FROM files")
            self.db.executemany(
                "INSERT INTO files (source, hash, state, chunks, date) VALUES (?, ?, 'ok', ?, ?)",
                rows,
            )
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))

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
    lock = settings.store_dir / "index.lock"
    with _store_errors(settings):
        if rebuild and _is_not_a_folder(settings.store_dir):
            _set_aside(settings, [settings.store_dir], "it is not a folder", report)
        elif rebuild and (lock.exists() or lock.is_symlink()) and not lock.is_file():
            _set_aside(settings, [lock], "index.lock is not a file", report)
        with index_lock(settings.store_dir, lock_wait):
            if rebuild:
                _set_aside_what_cannot_be_read(settings, report)
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
    _finish_interrupted_swap(store, manifest)
    store.drop_strays()
    # A rebuild over an index that can answer builds aside, so that it keeps answering.
    aside = rebuild and store.exists()
    target = store.staging(new_generation()) if aside else store
    target.open(create=True)
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

    if rebuild and not aside:  # nothing it lists is in Chroma
        manifest.forget(list(manifest.files()))
    elif not rebuild and manifest.meta().get("collection") != store.id:
        _adopt_collection(store, manifest)
    if not aside:
        manifest.set_meta(
            model=model, chunking=chunking, collection=store.id, collection_name=store.name
        )

    known = manifest.files()
    present: dict[str, tuple[Path, bytes, str]] = {}
    listing = scan_corpus(settings.corpus_dir)  # only what is inside the corpus folder
    for source, reason in listing.skipped:
        _skip(report, source, reason)
    for path in listing.files:
        source = source_name(settings.corpus_dir, path)
        try:
            data = read_article_bytes(settings.corpus_dir, path, source)
        except SkippedFile as skipped:
            _skip(report, source, skipped.reason)
            continue
        present[source] = (path, data, content_hash(data))

    if aside:
        known = {}  # the new collection starts empty: every file is added to it
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

    target.update_meta(model=model, chunking=chunking)
    chunker = Chunker(embedder.tokenize, chunk_size, settings.chunk_overlap)
    parsed: list[tuple[str, str, list[Chunk], str | None]] = []
    for source, path, data, digest in to_index:
        try:
            article = load_article(settings.corpus_dir, path, data)
        except SkippedFile as skipped:
            _skip(report, source, skipped.reason)
            _unlist(report, source)
            if source in known:  # it was indexed before: its old chunks must go
                gone.append(source)
                report.removed.append(source)
            continue
        for warning in article.warnings:
            log.warning("%s: %s", source, warning)
            report.warnings.append({"source": source, "warning": warning})
        chunks = chunker.chunk(article)
        parsed.append((source, digest, chunks, article.date))

    if gone:
        manifest.mark_pending(gone)
        target.update_meta(generation=new_generation())  # readers look again: these rows go
        target.delete_sources(gone)
        manifest.forget(gone)

    versions = {source: digest[:VERSION_CHARS] for source, digest, _, _ in parsed}
    rows: list[tuple[str, str, int, str | None]] = []  # files stored whole, for the manifest
    total, done = sum(len(c) for _, _, c, _ in parsed), 0
    if progress:
        progress(0, total)
    for group in _groups(parsed):
        pieces = [chunk for _, _, piece, _, _ in group for chunk in piece]
        chunks = pieces
        if not aside:
            manifest.mark_pending(list(dict.fromkeys(source for source, *_ in group)))
            # A build that died left some chunks of these very versions: keep them.
            stored = target.existing_ids([chunk_id(c, versions[c.source]) for c in pieces])
            chunks = [c for c in pieces if chunk_id(c, versions[c.source]) not in stored]
        if chunks:
            vectors = embedder.embed_documents([c.embed_text for c in chunks])
            target.add(chunks, vectors, versions)
        whole = [(s, d, count, date) for s, d, _, date, count in group if count is not None]
        if whole and not aside:
            current = {s: (versions[s], count) for s, _, count, _ in whole if s in known}
            if current:
                target.update_meta(generation=new_generation())  # the new versions are in
                target.delete_other_versions(current)
            manifest.mark_ok(whole)
        rows += whole
        report.chunks_written += len(chunks)
        done += len(pieces)
        if progress:
            progress(done, total)
    if aside:
        _swap_in(store, target, manifest, report, rows, model, chunking)
    else:
        _finish(store, manifest, report, changed=True)


def _swap_in(store, target, manifest, report, rows, model, chunking) -> None:
    """Make the collection built aside the index: its metadata, then the manifest, then the
    pointer readers follow (each step leaves a state the next build can finish)."""
    dates = [date for _, _, _, date in rows if date]
    target.update_meta(
        generation=new_generation(),
        model=model,
        chunking=chunking,
        articles=len(rows),
        chunks=sum(count for _, _, count, _ in rows),
        date_min=min(dates, default=None),
        date_max=max(dates, default=None),
        built_at=now(),
    )
    manifest.replace_all(
        rows, model=model, chunking=chunking, collection=target.id, collection_name=target.name
    )
    store.activate(target)
    _finish(store, manifest, report, changed=False)


def _finish_interrupted_swap(store: ChunkStore, manifest: Manifest) -> None:
    """A rebuild that died after its manifest commit but before readers were pointed at its
    collection: point them now (the collection is whole: its manifest says so)."""
    recorded = manifest.meta()
    name = recorded.get("collection_name")
    if not name or name == store.family or not store.is_ours(name):
        return
    if name == store.active_name():
        return
    built = ChunkStore(store.settings, client=store.client, name=name)
    if built.exists() and built.id == recorded.get("collection"):
        log.warning("finishing the rebuild that was interrupted: %s is now the index", name)
        store.activate(built)


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


# -- a store that cannot be read -----------------------------------------------------------------
@contextlib.contextmanager
def _store_errors(settings: IndexSettings) -> Iterator[None]:
    """The manifest's SQLite errors, and failures to write the store folder (read-only, a
    full disk, a file in the way), as one-line StoreErrors."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_failure(exc, settings, "use", part=settings.manifest_path.name) from exc
    except OSError as exc:
        if not _about_the_store(exc, settings):
            raise
        raise store_failure(exc, settings, "write") from exc


def _about_the_store(exc: OSError, settings: IndexSettings) -> bool:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS):
        return True
    store = os.path.abspath(settings.store_dir)
    return any(
        isinstance(name, str | bytes | os.PathLike)
        and os.path.abspath(os.fsdecode(name)).startswith(store)
        for name in (exc.filename, exc.filename2)
    )


def _is_not_a_folder(path: Path) -> bool:
    return (path.is_symlink() and not path.exists()) or (path.exists() and not path.is_dir())


def _set_aside_what_cannot_be_read(settings: IndexSettings, report: BuildReport) -> None:
    """Before a rebuild: move the manifest and the Chroma folder out of the way if they cannot
    be read, so the rebuild starts from a store it can use."""
    broken: list[tuple[Path, str]] = []
    problem = _manifest_problem(settings.manifest_path)
    if problem:
        broken += [(p, problem) for p in _with_sqlite_companions(settings.manifest_path)]
    if not settings.chroma_host:
        problem = _chroma_problem(settings)
        if problem:
            broken.append((settings.chroma_dir, problem))
    if broken:
        reasons = "; ".join(dict.fromkeys(f"{p.name}: {why}" for p, why in broken))
        _set_aside(settings, [p for p, _ in broken], reasons, report)
        if any(p == settings.chroma_dir for p, _ in broken):
            forget_shared_client(settings)


def _manifest_problem(path: Path) -> str | None:
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return "not a file"
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return "damaged"
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if "files" in tables:
                db.execute("SELECT source, hash, state, chunks, date FROM files LIMIT 1")
            if "meta" in tables:
                db.execute("SELECT key, value FROM meta LIMIT 1")
    except sqlite3.Error as exc:
        return str(exc)
    return None


def _chroma_problem(settings: IndexSettings) -> str | None:
    folder = settings.chroma_dir
    if not folder.exists() and not folder.is_symlink():
        return None
    if not folder.is_dir():
        return "not a folder"
    database = folder / "chroma.sqlite3"
    if database.exists():
        problem = _manifest_problem(database)  # the same check: SQLite's own
        if problem:
            return problem
    try:
        store = ChunkStore(settings)
        if store.exists():
            store.info()
    except StoreError as exc:
        return " ".join(str(exc.__cause__ or exc).split())[:160]
    return None


def _with_sqlite_companions(path: Path) -> list[Path]:
    names = [path] + [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]
    return [p for p in names if p.exists() or p.is_symlink()]


def _set_aside(settings: IndexSettings, paths: list[Path], why: str, report: BuildReport):
    """Move `paths` (the whole store, or parts of it) aside, keeping them for inspection."""
    store = settings.store_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    whole = paths == [store]
    base = store.with_name(f"{store.name}.broken-{stamp}") if whole else store / f"broken-{stamp}"
    dest, n = base, 1
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = base.with_name(f"{base.name}-{n}")
    if whole:
        os.replace(store, dest)
    else:
        dest.mkdir()
        for path in paths:
            os.replace(path, dest / path.name)
    what = store if whole else ", ".join(p.name for p in paths)
    message = f"could not be read ({why}); moved {what} to {dest} and built the index anew"
    log.info("the index in %s %s", store, message)
    report.warnings.append({"source": str(store), "warning": message})


def new_generation() -> int:
    """A fresh generation number: distinct across rebuilds, which start a new collection."""
    return time.time_ns()


def _groups(parsed):
    """Groups of about GROUP_CHUNKS chunks: several small files, or a part of a big one.

    Items are (source, digest, chunks of this part, date, the file's chunk count if this part
    is its last, else None)."""
    group, room = [], GROUP_CHUNKS
    for source, digest, chunks, date in parsed:
        start = 0
        while True:
            piece = chunks[start : start + room]
            start += len(piece)
            last = start >= len(chunks)
            group.append((source, digest, piece, date, len(chunks) if last else None))
            room -= len(piece)
            if room <= 0:
                yield group
                group, room = [], GROUP_CHUNKS
            if last:
                break
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
