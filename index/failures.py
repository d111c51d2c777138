"""What went wrong with the store, in one line that says what to do.

Chroma, SQLite and the file system each fail in their own words. `store_failure` turns any of
their exceptions into a `StoreError` whose message names the store (`where_is`) and the way
out, in this order of diagnosis:

    a file where a folder should be       move it, or `newsbot index --rebuild` sets it aside
    no room to write (disk, ulimit -f)    free space, `newsbot index` goes on where it stopped
    read-only for this user               let it write, or choose another NEWSBOT_STORE_DIR
    a Chroma server that does not answer  check NEWSBOT_CHROMA_HOST/PORT
    anything else                         damaged: `newsbot index --rebuild`

`index.store` wraps every Chroma call with it; `store_errors` does the same for the indexer's
own work in the store folder (the manifest, the lock file, setting broken parts aside).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from index.errors import StoreError
from index.settings import IndexSettings

SPACE_MARGIN = 4 << 20  # bytes: less room than this to write counts as a full disk


def where_is(settings: IndexSettings) -> str:
    if settings.chroma_host:
        return f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
    return f"the index in {settings.store_dir}"


def store_failure(
    exc: BaseException, settings: IndexSettings, doing: str, part: str | None = None
) -> StoreError:
    """One line for a failure of Chroma (or of the store folder, or of the file `part` in it):
    what is wrong and what to do."""
    where = where_is(settings)
    detail = f"{part}: {_detail(exc)}" if part else _detail(exc)
    text = detail.lower()
    store = settings.store_dir
    if isinstance(exc, FileExistsError | NotADirectoryError) or (
        not settings.chroma_host and _blocked_by_a_file(settings)
    ):
        return StoreError(
            f"The index folder {store} (or a folder in it) is a file, not a folder: move it "
            "away, set NEWSBOT_STORE_DIR, or run `newsbot index --rebuild` to move it aside."
        )
    space = None if settings.chroma_host else _out_of_space(store)
    if space or _is_disk_full(exc) or "disk is full" in text or "file too large" in text:
        return StoreError(
            f"Cannot write {where}: {space or 'the disk is full'} ({detail}). Free some "
            "space, then run `newsbot index` again (it goes on where it stopped)."
        )
    if isinstance(exc, PermissionError) or "readonly" in text or "read-only" in text:
        return StoreError(
            f"Cannot {doing} {where}: it is read-only for this user ({detail}). Let this user "
            "write to it, or set NEWSBOT_STORE_DIR to a folder it can write."
        )
    if settings.chroma_host and _is_connection_problem(exc):
        return StoreError(
            f"Cannot open {where} ({detail}). Check NEWSBOT_CHROMA_HOST/NEWSBOT_CHROMA_PORT, "
            "or NEWSBOT_STORE_DIR."
        )
    return StoreError(
        f"Cannot {doing} {where}: it is damaged or unreadable ({detail}). "
        "Run `newsbot index --rebuild` to rebuild it."
    )


@contextlib.contextmanager
def store_errors(settings: IndexSettings) -> Iterator[None]:
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


def _detail(exc: BaseException) -> str:
    """The failure in a few words on one line (Chroma's messages can span lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.removeprefix("Error executing plan: ")
    return text if len(text) <= 160 else text[:157] + "…"


def _is_disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _out_of_space(store: Path) -> str | None:
    """Why nothing more can be written in the store folder, if that is so (Chroma reports a
    full disk only as a failed write)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        with contextlib.suppress(OSError):
            files = [p for p in (*store.glob("*"), *store.glob("chroma/*")) if p.is_file()]
            biggest = max(files, key=lambda p: p.stat().st_size, default=None)
            if biggest and biggest.stat().st_size + min(SPACE_MARGIN, soft // 10) >= soft:
                return f"{biggest.name} has reached the file size limit (ulimit -f)"
    try:
        stat = os.statvfs(store)
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < SPACE_MARGIN:
        return "the disk is full"
    return None


def _is_connection_problem(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("connect", "timeout", "timed out", "refused", "resolve"))


def _blocked_by_a_file(settings: IndexSettings) -> bool:
    return any(p.exists() and not p.is_dir() for p in (settings.store_dir, settings.chroma_dir))
