"""Before `newsbot index --rebuild`: set aside whatever of the store cannot be read.

A store can be beyond reading: damaged SQLite files (the manifest, or Chroma's own), a Chroma
folder whose vectors do not load, a store path that is a file, an `index.lock` that is a
folder. An update refuses such a store with a one-line `StoreError` (`index.failures`); a
rebuild moves the broken parts out of the way and builds anew:

    the store path itself, not a folder  -> <store>.broken-<time>
    parts of it (the manifest and its     -> <store>/broken-<time>/
    -wal/-shm/-journal, the Chroma
    folder, the lock file)

Nothing is deleted: what was moved, why, and where is a warning in the build's report. What
can be read stays, so a rebuild over a sound index builds aside while it keeps answering.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

from index.clients import forget_shared_clients
from index.errors import StoreError
from index.settings import IndexSettings
from index.store import EMBEDDED_DATABASE, ChunkStore

log = logging.getLogger(__name__)

Warnings = list[dict[str, str]]


def set_aside_the_unusable_store(settings: IndexSettings, warnings: Warnings) -> None:
    """What must go before the indexer can even take its lock: a store path that is not a
    folder, a lock that is not a file."""
    lock = settings.store_dir / "index.lock"
    if is_not_a_folder(settings.store_dir):
        set_aside(settings, [settings.store_dir], "it is not a folder", warnings)
    elif (lock.exists() or lock.is_symlink()) and not lock.is_file():
        set_aside(settings, [lock], "index.lock is not a file", warnings)


def set_aside_what_cannot_be_read(settings: IndexSettings, warnings: Warnings) -> None:
    """Move the manifest and the Chroma folder out of the way if they cannot be read, so the
    rebuild starts from a store it can use (the indexer's lock is held)."""
    broken: list[tuple[Path, str]] = []
    problem = sqlite_problem(settings.manifest_path)
    if problem:
        broken += [(p, problem) for p in _with_sqlite_companions(settings.manifest_path)]
    if not settings.chroma_host:
        problem = _chroma_problem(settings)
        if problem:
            broken.append((settings.chroma_dir, problem))
    if broken:
        reasons = "; ".join(dict.fromkeys(f"{p.name}: {why}" for p, why in broken))
        set_aside(settings, [p for p, _ in broken], reasons, warnings)
        if any(p == settings.chroma_dir for p, _ in broken):
            forget_shared_clients()  # this process must not go on with the moved folder


def is_not_a_folder(path: Path) -> bool:
    return (path.is_symlink() and not path.exists()) or (path.exists() and not path.is_dir())


def sqlite_problem(path: Path) -> str | None:
    """Why the SQLite file at `path` (the manifest, or Chroma's) cannot be used, if so."""
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
    database = folder / EMBEDDED_DATABASE
    if database.exists():
        problem = sqlite_problem(database)
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


def set_aside(settings: IndexSettings, paths: list[Path], why: str, warnings: Warnings) -> None:
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
    warnings.append({"source": str(store), "warning": message})
