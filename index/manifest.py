"""The indexer's manifest: what the index holds, file by file, and which collection it describes.

A SQLite file in the store folder (`manifest.sqlite3`, WAL, `synchronous=FULL`), three tables:

    files   source -> content hash of its bytes, state (`ok` | `pending`), chunk count, date
    meta    model, chunking, collection (the Chroma collection id it describes),
            collection_name
    seen    source -> the hash of its bytes when the file had this size, modification and
            change times and inode, and when it was read: lets a build skip reading a file
            whose status has not changed since (`index.plan.scan_files`). It says nothing
            about the index, so it is written whenever files are read, in any order. A row
            that is not a text hash and five integers (a damaged manifest) is left out: its
            file is read again, as one never seen; a table of other columns is made anew
            (else every build, even `--rebuild`, would fail on it).

Every write is its own committed transaction, so the manifest is always a state the next
build can start from: `pending` rows are files whose chunks may be half written or half
deleted (see `index.build` for the order that makes this crash-safe). Only the indexer, holding
the store's lock, writes it; anyone may read it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import NamedTuple

# source, content hash, chunk count, date: a file stored whole
ManifestRow = tuple[str, str, int, str | None]
SEEN_COLUMNS = ("source", "hash", "size", "mtime_ns", "ctime_ns", "inode", "read_ns")
SEEN_TABLE = """CREATE TABLE IF NOT EXISTS seen (
    source TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, inode INTEGER, read_ns INTEGER)"""


class Seen(NamedTuple):
    """A file's bytes had `hash` when its status was this, read at `read_ns` (wall clock)."""

    hash: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    read_ns: int


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
        self.db.execute(SEEN_TABLE)

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def files(self) -> dict[str, tuple[str | None, str]]:
        return {s: (h, st) for s, h, st in self.db.execute("SELECT source, hash, state FROM files")}

    def seen(self) -> dict[str, Seen]:
        columns = tuple(row[1] for row in self.db.execute("PRAGMA table_info(seen)"))
        if columns != SEEN_COLUMNS:
            with self._tx():
                self.db.execute("DROP TABLE IF EXISTS seen")
                self.db.execute(SEEN_TABLE)
        rows = self.db.execute(f"SELECT {', '.join(SEEN_COLUMNS)} FROM seen")
        return {row[0]: Seen(*row[1:]) for row in rows if _well_formed(row)}

    def remember_seen(self, read: dict[str, Seen], present: set[str]) -> None:
        """Record the files read by a scan, and forget those no longer in the corpus."""
        gone = [(s,) for (s,) in self.db.execute("SELECT source FROM seen") if s not in present]
        if not read and not gone:
            return
        with self._tx():
            self.db.executemany("DELETE FROM seen WHERE source = ?", gone)
            self.db.executemany(
                "INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(source, *seen) for source, seen in read.items()],
            )

    def mark_pending(self, sources: list[str]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT INTO files (source, hash, state) VALUES (?, NULL, 'pending') "
                "ON CONFLICT(source) DO UPDATE SET state='pending'",
                [(s,) for s in sources],
            )

    def mark_ok(self, rows: list[ManifestRow]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO files (source, hash, state, chunks, date) "
                "VALUES (?, ?, 'ok', ?, ?)",
                rows,
            )

    def forget(self, sources: list[str]) -> None:
        with self._tx():
            self.db.executemany("DELETE FROM files WHERE source = ?", [(s,) for s in sources])

    def replace_all(self, rows: list[ManifestRow], **meta: str) -> None:
        """Describe another collection: all its rows `ok`, and its meta, in one transaction."""
        with self._tx():
            self.db.execute("DELETE FROM files")
            self.db.executemany(
                "INSERT INTO files (source, hash, state, chunks, date) VALUES (?, ?, 'ok', ?, ?)",
                rows,
            )
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))

    def totals(self) -> tuple[int, int, str | None, str | None]:
        """Articles, chunks, first and last date of the files stored whole."""
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


def _well_formed(row: tuple) -> bool:
    """A seen row as `remember_seen` writes it: SQLite keeps whatever type a damaged one has."""
    return isinstance(row[1], str) and all(type(value) is int for value in row[2:])
