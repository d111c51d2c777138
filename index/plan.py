"""Planning a build: from what the corpus folder holds and what the index says of itself, what
must change. `index.build` then applies the plan (embedding, writing, swapping, the manifest).

    scan_files(corpus_dir, seen) -> CorpusScan   every article file's hash, and its bytes when
                                                 it had to be read; what is skipped before
                                                 reading and why (the only I/O)
    IndexState (read by build)                   the manifest's rows and meta, the collection's
                                                 id and recorded model/chunking
    plan_build(scan, state, ...) -> Plan         no I/O: parses the files to index, nothing more

A plan says how the build goes and why:

    update             the usual incremental build. Files whose hash and `ok` state match the
                       manifest are unchanged (not even parsed); the others are indexed again
                       (`added` unless the manifest had them `ok`: `updated`); files the
                       manifest lists but the corpus lacks are deleted (`removed` if they were
                       `ok`). A file that cannot be parsed any more is skipped and, if the index
                       had it, deleted. When the manifest describes another collection (another
                       Chroma server or collection name, a deleted Chroma folder), neither side
                       is trusted: every file either lists is `untrusted` -- marked pending
                       first, so present files are indexed again and the chunks of the others
                       deleted, even if the build dies half way.
    rebuild aside      `--rebuild` over an index that can answer: a new collection, starting
                       empty, so every file is added and nothing deleted; the manifest keeps
                       describing the old collection until the swap.
    rebuild in place   `--rebuild` with no index to keep answering: the manifest's rows are
                       forgotten (none of it is in Chroma) and every file is added.

A file is read and hashed unless the manifest's `seen` table knows its hash for the status it
has now -- size, modification and change times, inode (as git's index does) -- and that status
was at least `SETTLED_NS` old when the file was read: a file changed again within the same tick
of a coarse file-system clock could otherwise keep its size and times. The change time cannot
be set back by `touch`, and an editor that saves by renaming changes the inode. Links are
always read. So a no-op build over a large corpus reads no article (issue 11: 72,000 articles,
most of whose ~13 s went to reading, hashing and path checks); a file that must be indexed is
read then, in `plan_build`.

An update refuses (`IndexMismatchError`) when the manifest or the collection was built with
another embedding model or chunking than the settings ask for: only a rebuild can change those.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from index.articles import (
    Article,
    ArticleFileError,
    content_hash,
    load_article,
    read_article_file,
    scan_corpus,
    source_name,
)
from index.manifest import Seen
from index.store import mismatch

How = Literal["update", "rebuild aside", "rebuild in place"]
WHY = {
    "update": "an update of what changed",
    "rebuild aside": "a rebuild, aside while the old index answers",
    "rebuild in place": "a rebuild in place: there is no index to keep answering",
}
UNTRUSTED = "the manifest does not describe this collection: indexing everything again"


SETTLED_NS = 2_000_000_000  # FAT's clock ticks in 2 s; most others in ns or 1 s


@dataclass(frozen=True)
class CorpusFile:
    """An article file: its hash, and its bytes when this scan read it (None when its status
    showed it unchanged since a scan that did; `seen` is what this scan learned)."""

    source: str
    path: Path
    data: bytes | None
    digest: str
    seen: Seen | None = None


@dataclass(frozen=True)
class CorpusScan:
    """The article files of the corpus folder, read, and those skipped: (source, reason)."""

    corpus_dir: Path
    files: list[CorpusFile]
    skipped: list[tuple[str, str]]


@dataclass(frozen=True)
class IndexState:
    """What the index says of itself before a build.

    `collection` is the id of the collection readers read (None: there is none yet);
    `stored_model`/`stored_chunking` its recorded ones ("" when none is recorded);
    `stored_sources` the sources its chunks name, read only when the manifest describes
    another collection (None otherwise)."""

    manifest_meta: Mapping[str, str]
    manifest_files: Mapping[str, tuple[str | None, str]]
    collection: str | None
    stored_model: str = ""
    stored_chunking: str = ""
    stored_sources: frozenset[str] | None = None


@dataclass(frozen=True)
class ArticleToIndex:
    source: str
    digest: str
    article: Article
    known: bool  # the index may hold chunks of it already: of another version, or some of these


@dataclass
class Plan:
    how: How
    to_index: list[ArticleToIndex] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)  # every chunk of these files goes
    untrusted: list[str] = field(default_factory=list)  # mark pending before anything else
    forget: list[str] = field(default_factory=list)  # drop from the manifest first
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (source, warning)

    @property
    def why(self) -> str:
        return UNTRUSTED if self.untrusted else WHY[self.how]

    @property
    def rebuild(self) -> bool:
        return self.how != "update"

    @property
    def aside(self) -> bool:
        return self.how == "rebuild aside"

    @property
    def has_work(self) -> bool:
        """Anything to embed, delete or swap (a rebuild always has: it makes a new index)."""
        return bool(self.to_index or self.to_delete or self.rebuild)


def scan_files(corpus_dir: Path, seen: Mapping[str, Seen] | None = None) -> CorpusScan:
    """Hash every article file inside the corpus folder, reading those whose status `seen`
    does not vouch for (module docstring); nothing is parsed."""
    listing = scan_corpus(corpus_dir)
    files: list[CorpusFile] = []
    skipped = list(listing.skipped)
    for path in listing.files:
        source = source_name(corpus_dir, path)
        known = seen.get(source) if seen else None
        if known is not None and _unchanged(path, known):
            files.append(CorpusFile(source, path, None, known.hash))
            continue
        try:
            files.append(_read(corpus_dir, path, source))
        except ArticleFileError as skipped_file:
            skipped.append((source, skipped_file.reason))
    return CorpusScan(corpus_dir, files, skipped)


def _read(corpus_dir: Path, path: Path, source: str) -> CorpusFile:
    read_ns = time.time_ns()
    data, status = read_article_file(corpus_dir, path, source)
    digest = content_hash(data)
    seen = Seen(
        digest, status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, read_ns
    )
    return CorpusFile(source, path, data, digest, seen)


def _unchanged(path: Path, known: Seen) -> bool:
    """Does the file's status now vouch for the bytes `known` hashed?"""
    try:
        now = os.lstat(path)
    except OSError:
        return False
    settled = max(known.mtime_ns, known.ctime_ns) < known.read_ns - SETTLED_NS
    return (
        settled
        and stat.S_ISREG(now.st_mode)
        and (now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino)
        == (known.size, known.mtime_ns, known.ctime_ns, known.inode)
    )


def plan_build(
    scan: CorpusScan, state: IndexState, *, model: str, chunking: str, rebuild: bool
) -> Plan:
    """What a build of `scan` over an index in `state` must do (see the module docstring)."""
    if rebuild:
        how: How = "rebuild aside" if state.collection is not None else "rebuild in place"
        plan = Plan(how)
        if not plan.aside:
            plan.forget = list(state.manifest_files)
        known: Mapping[str, tuple[str | None, str]] = {}
    else:
        _check_compatible(state, model, chunking)
        plan = Plan("update")
        known = state.manifest_files
        if state.collection is None or state.manifest_meta.get("collection") != state.collection:
            plan.untrusted = sorted(set(state.stored_sources or ()) | set(known))
            known = {s: (known.get(s, (None, ""))[0], "pending") for s in plan.untrusted}

    plan.skipped = list(scan.skipped)
    present = {file.source for file in scan.files}
    plan.to_delete = [s for s in known if s not in present]
    plan.removed = [s for s in plan.to_delete if known[s][1] == "ok"]
    for file in scan.files:
        hash_, state_ = known.get(file.source, (None, None))
        if state_ == "ok" and hash_ == file.digest:
            plan.unchanged.append(file.source)
            continue
        try:
            if file.data is None:  # vouched for by its status, but to be indexed: read it now
                file = _read(scan.corpus_dir, file.path, file.source)
            article = load_article(scan.corpus_dir, file.path, file.data)
        except ArticleFileError as skipped:
            plan.skipped.append((file.source, skipped.reason))
            if file.source in known:  # it was indexed before: its old chunks must go
                plan.to_delete.append(file.source)
                plan.removed.append(file.source)
            continue
        plan.warnings += [(file.source, warning) for warning in article.warnings]
        plan.to_index.append(
            ArticleToIndex(file.source, file.digest, article, known=file.source in known)
        )
        (plan.updated if state_ == "ok" else plan.added).append(file.source)
    return plan


def _check_compatible(state: IndexState, model: str, chunking: str) -> None:
    """An update keeps the model and chunking the index was built with, as recorded by the
    manifest and by the collection (either may be gone, or not written yet)."""
    recorded = state.manifest_meta
    built = [(recorded.get("model"), recorded.get("chunking"))]
    if state.stored_model:
        built.append((state.stored_model, state.stored_chunking))
    for built_model, built_chunking in built:
        if built_model in (None, model) and built_chunking in (None, chunking):
            continue
        raise mismatch(built_model, built_chunking, model, chunking)
