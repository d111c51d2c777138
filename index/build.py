"""Incremental, crash-safe builds: keep the Chroma collection in step with the corpus folder.

The manifest (`index.manifest`, SQLite in the store dir) maps every indexed source path to the
hash of its bytes and a state, `ok` or `pending`. Identity is the path: two files with the same
text are two articles, and removing one removes only its chunks. The manifest records the id of
the Chroma collection it describes; against any other (a Chroma server newly set, a renamed
collection, a deleted Chroma folder) it is not trusted, and everything is indexed again.

A build goes in three steps, under the store's lock:

    recover   finish a rebuild that died after its manifest commit; drop leftover collections
    plan      `index.plan`: read the corpus folder (bytes and hashes) and what the manifest
              and the collection say (`read_index_state`), and decide -- with no I/O -- what
              to add, update, remove and skip, whether this is an update or a rebuild (aside
              or in place), and why; an update with another model or chunking is refused
    apply     `apply_plan`: chunk, embed and write, delete, swap, and keep the manifest true

and applying touches only what the plan says differs:

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
folder, a full disk) is a `StoreError` of one line saying what to do (`index.failures`).
`--rebuild` first sets aside whatever of the store cannot be read (`index.recovery`) -- into
`<store>/broken-<time>/`, or `<store>.broken-<time>` when the store path itself is a file --
says where in the report's warnings, and builds anew.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from index.articles import list_article_files
from index.chunking import Chunker
from index.embeddings import make_embedder
from index.errors import IndexBusyError, NewsbotError
from index.failures import store_errors
from index.lexical import cache_path, update_cache
from index.manifest import Manifest, ManifestRow
from index.plan import IndexState, Plan, plan_build, scan_files
from index.recovery import set_aside_the_unusable_store, set_aside_what_cannot_be_read
from index.settings import IndexSettings
from index.store import ChunkStore, chunk_id, chunking_id, now

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
    with store_errors(settings):
        if rebuild:
            set_aside_the_unusable_store(settings, report.warnings)
        with index_lock(settings.store_dir, lock_wait):
            if rebuild:
                set_aside_what_cannot_be_read(settings, report.warnings)
            store = store or ChunkStore(settings)
            manifest = Manifest(settings.manifest_path)
            try:
                _finish_interrupted_swap(store, manifest)
                store.drop_strays()
                scan = scan_files(corpus_dir, manifest.seen())
                manifest.remember_seen(
                    {f.source: f.seen for f in scan.files if f.seen},
                    {f.source for f in scan.files},
                )
                plan = plan_build(
                    scan,
                    read_index_state(store, manifest, rebuild),
                    model=embedder.model_id,
                    chunking=chunking_id(settings),
                    rebuild=rebuild,
                )
                apply_plan(plan, settings, embedder, store, manifest, report, progress)
            finally:
                manifest.close()
            if report.changed or rebuild or not cache_path(settings.store_dir).exists():
                update_cache(store, settings.store_dir)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def read_index_state(store: ChunkStore, manifest: Manifest, rebuild: bool) -> IndexState:
    """What the manifest and the collection say, for planning (read only what it will use:
    a rebuild checks no model, and the collection's sources are read only when the manifest
    describes another collection)."""
    collection = store.id if store.exists() else None
    meta, files = manifest.meta(), manifest.files()
    if rebuild or collection is None:
        return IndexState(meta, files, collection)
    info = store.info()
    stored = None
    if meta.get("collection") != collection:
        stored = frozenset(r["meta"]["source"] for r in store.iter_all(include_documents=False))
    return IndexState(meta, files, collection, info.model or "", info.chunking or "", stored)


def apply_plan(
    plan: Plan,
    settings: IndexSettings,
    embedder,
    store: ChunkStore,
    manifest: Manifest,
    report: BuildReport,
    progress: Progress | None = None,
) -> None:
    """Carry out a plan, in the order that keeps every step safe to die in (module docstring)."""
    model, chunking = embedder.model_id, chunking_id(settings)
    _report_plan(plan, report)
    log.info("indexing %s: %s", settings.corpus_dir, plan.why)
    if plan.untrusted:
        log.warning(plan.why)
        manifest.mark_pending(plan.untrusted)
    if plan.forget:
        manifest.forget(plan.forget)
    target = store.staging(new_generation()) if plan.aside else store
    target.open(create=True)
    if not plan.aside:
        manifest.set_meta(
            model=model, chunking=chunking, collection=store.id, collection_name=store.name
        )
    if not plan.has_work:
        _finish(store, manifest, report, changed=False)
        return

    target.update_meta(model=model, chunking=chunking)
    chunker = Chunker(
        embedder.tokenize, min(settings.chunk_size, embedder.max_tokens), settings.chunk_overlap
    )
    parsed = [(a.source, a.digest, chunker.chunk(a.article), a.article.date) for a in plan.to_index]
    known = {a.source for a in plan.to_index if a.known}

    if plan.to_delete:
        manifest.mark_pending(plan.to_delete)
        target.update_meta(generation=new_generation())  # readers look again: these rows go
        target.delete_sources(plan.to_delete)
        manifest.forget(plan.to_delete)

    versions = {source: digest[:VERSION_CHARS] for source, digest, _, _ in parsed}
    rows: list[ManifestRow] = []  # files stored whole, for the manifest
    total, done = sum(len(c) for _, _, c, _ in parsed), 0
    if progress:
        progress(0, total)
    for group in _groups(parsed):
        pieces = [chunk for _, _, piece, _, _ in group for chunk in piece]
        chunks = pieces
        if not plan.aside:
            manifest.mark_pending(list(dict.fromkeys(source for source, *_ in group)))
            # A build that died left some chunks of these very versions: keep them.
            stored = target.existing_ids([chunk_id(c, versions[c.source]) for c in pieces])
            chunks = [c for c in pieces if chunk_id(c, versions[c.source]) not in stored]
        if chunks:
            vectors = embedder.embed_documents([c.embed_text for c in chunks])
            target.add(chunks, vectors, versions)
        whole = [(s, d, count, date) for s, d, _, date, count in group if count is not None]
        if whole and not plan.aside:
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
    if plan.aside:
        _swap_in(store, target, manifest, report, rows, model, chunking)
    else:
        _finish(store, manifest, report, changed=True)


def _report_plan(plan: Plan, report: BuildReport) -> None:
    report.added, report.updated = list(plan.added), list(plan.updated)
    report.removed, report.unchanged = list(plan.removed), list(plan.unchanged)
    for source, reason in plan.skipped:
        log.warning("skipped %s: %s", source, reason)
        report.skipped.append({"source": source, "reason": reason})
    for source, warning in plan.warnings:
        log.warning("%s: %s", source, warning)
        report.warnings.append({"source": source, "warning": warning})


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
