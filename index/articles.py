"""Find the article files of the corpus folder and read one: text, headline, date and body,
tolerant of bad files.

An article is a `.txt` file (`.TXT`, `.Txt`: any case, so a corpus indexes the same on every
file system) anywhere under the corpus folder. Its *source* -- the citation users see -- is its
path relative to the corpus folder with `/` separators.

What is indexed stays inside the corpus folder: `scan_corpus` lists only files whose real path
(links followed) is inside it, and `read_article_bytes` checks the file it actually opened
again, so a link to `~/.env` can never be quoted to whoever asks. A link to a file inside the
folder is an article under the link's name. Links to folders are not followed: one pointing
inside holds files that are indexed under their own path anyway, and one pointing outside is
listed as skipped. Unreadable folders, links out of the folder and `.txt` names that are not
regular files (a FIFO would block the reader) are listed as skipped with the reason, and so
are names that are not UTF-8 (a source is stored and shown as text), so nothing vanishes
silently.

Layout, all of it optional:

    Headline on the first line
    date 2022-11-09 First paragraph goes on straight after the date prefix ...
    Another paragraph.

The first line is taken as the headline when it reads as one (short, no final full stop, more
text after it). A `date YYYY-MM-DD` prefix on the first or second line gives the publication
date; the prefix is not part of the body.

Offsets: every offset newsbot records (chunks, quotes) is a character offset into `text`, the
file's whole decoded content exactly as `decode()` returns it (no newline translation), so a
quote can be checked against the file later by decoding it the same way (`ArticleTexts`, the
one grounding check every quote, answer phrase and LLM passage passes).

Bad files: UTF-8 is tried first, then cp1252, then Latin-1 (which never fails), with a warning.
Empty files, binary files (NUL bytes) and unreadable ones raise `ArticleFileError` with the reason;
the build reports them and goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from index.errors import ArticleFileError, NewsbotError

# The date may be followed by text on the same line or stand on a line of its own.
DATE_PREFIX = re.compile(r"[ \t]*date (\d{4}-\d{2}-\d{2})(?:[ \t]+|(?=[\r\n])|$)")
MAX_TITLE_CHARS = 250
MAX_TITLE_WORDS = 30
ARTICLE_SUFFIX = ".txt"  # compared case-insensitively
OUTSIDE = "links outside the corpus folder"
FOLDER_OUTSIDE = "links to a folder outside the corpus folder"
NOT_REGULAR = "not a regular file"
NOT_UTF8_NAME = "name is not valid UTF-8; rename it"


@dataclass(frozen=True)
class Article:
    source: str
    text: str
    title: str | None
    date: str | None
    body_spans: tuple[tuple[int, int], ...]
    encoding: str = "utf-8"
    warnings: tuple[str, ...] = field(default=())

    @property
    def body(self) -> str:
        return "\n".join(self.text[start:end] for start, end in self.body_spans)


def source_name(corpus_dir: Path, path: Path) -> str:
    return path.relative_to(corpus_dir).as_posix()


@dataclass(frozen=True)
class CorpusListing:
    """The article files under the corpus folder, and what was left out: (source, reason)."""

    files: list[Path]
    skipped: list[tuple[str, str]]  # a folder's source ends with "/"


def list_article_files(corpus_dir: Path) -> list[Path]:
    """Every article file under the corpus folder, sorted by source name."""
    return scan_corpus(corpus_dir).files


def scan_corpus(corpus_dir: Path) -> CorpusListing:
    """Walk the corpus folder: article files inside it, and what is skipped and why."""
    root = Path(os.path.realpath(corpus_dir))
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    folders = [corpus_dir]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            reason = f"unreadable folder ({exc.strerror or exc})"
            if folder == corpus_dir:
                raise NewsbotError(
                    f"Cannot read the corpus folder {corpus_dir}: {reason}. Make it readable, "
                    "or set NEWSBOT_CORPUS_DIR to another folder."
                ) from None
            skipped.append((source_name(corpus_dir, folder) + "/", reason))
            continue
        for entry in entries:
            path = folder / entry.name
            if not _utf8(entry.name):
                # A source is stored and shown as text; these bytes have no text to be.
                try:
                    shown = entry.is_dir() and not entry.is_symlink()
                except OSError:
                    shown = False
                if shown or entry.name.lower().endswith(ARTICLE_SUFFIX):
                    name = source_name(corpus_dir, path) + ("/" if shown else "")
                    skipped.append((_replace_bad_bytes(name), NOT_UTF8_NAME))
                continue
            try:
                linked = entry.is_symlink()
                is_dir = entry.is_dir()  # a link to a folder counts as a folder
                is_file = entry.is_file()
            except OSError:
                linked = is_dir = is_file = False
            if is_dir:
                if not linked:
                    folders.append(path)
                elif not _inside(os.path.realpath(path), root):
                    skipped.append((source_name(corpus_dir, path) + "/", FOLDER_OUTSIDE))
                continue
            if not entry.name.lower().endswith(ARTICLE_SUFFIX):
                continue
            if linked and not _inside(os.path.realpath(path), root):
                skipped.append((source_name(corpus_dir, path), OUTSIDE))
            elif is_file or linked:  # a broken link inside is listed: reading it says why
                files.append(path)
            else:
                skipped.append((source_name(corpus_dir, path), NOT_REGULAR))
    files.sort(key=lambda p: source_name(corpus_dir, p))
    skipped.sort()
    return CorpusListing(files, skipped)


def _utf8(name: str) -> bool:
    """Is a name from the OS UTF-8? Its bytes that are not come as lone surrogates."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _replace_bad_bytes(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _inside(real_path: str | Path, root: Path) -> bool:
    return Path(real_path).is_relative_to(root)


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode(data: bytes) -> tuple[str, str]:
    """Decode file bytes; returns (text, encoding used)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), "utf-8" if encoding == "utf-8-sig" else encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def read_article_bytes(corpus_dir: Path, path: Path, source: str | None = None) -> bytes:
    """The bytes of one article file. Raises `ArticleFileError` when the file, links followed, is
    not inside the corpus folder, is not a regular file, or cannot be read."""
    return read_article_file(corpus_dir, path, source)[0]


def read_article_file(
    corpus_dir: Path, path: Path, source: str | None = None
) -> tuple[bytes, os.stat_result]:
    """`read_article_bytes`, with the status of the file read, taken before reading it (so a
    change while it is read leaves a newer modification time than the one returned)."""
    source = source if source is not None else source_name(corpus_dir, path)
    try:
        # Non-blocking, so that a FIFO put in place of a file cannot hang the open itself.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArticleFileError(source, f"unreadable ({exc.strerror or exc})") from None
    with open(fd, "rb") as handle:
        # The file actually opened, not the name: a link swapped after the scan is caught too.
        if not _inside(_opened_path(fd, path), Path(os.path.realpath(corpus_dir))):
            raise ArticleFileError(source, OUTSIDE)
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ArticleFileError(source, NOT_REGULAR)
        try:
            return handle.read(), status
        except OSError as exc:
            raise ArticleFileError(source, f"unreadable ({exc.strerror or exc})") from None


def _opened_path(fd: int, path: Path) -> str:
    """The real path of an open file: from /proc on Linux, else of its name."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def read_source_text(corpus_dir: Path, source: str) -> str | None:
    """The decoded text of a source as indexing saw it, or None when it cannot be read (or is
    not an article inside the corpus folder: a source from the index is not trusted)."""
    try:
        return decode(read_article_bytes(corpus_dir, corpus_dir / source, source))[0]
    except ArticleFileError:
        return None


class ArticleTexts:
    """The grounding check: does an article's file still say exactly this, at these offsets?

    Everything newsbot shows as the articles' words -- a quote, a direct answer, a passage
    given to an LLM, a quote graded by `newsbot eval` -- passes it, so a citation can never
    point to a file that does not say it. Each file is read (`read_source_text`) once per
    instance: make one per answer, so that an edited or deleted file counts from the next one.
    """

    def __init__(self, corpus_dir: Path):
        self.corpus_dir = corpus_dir
        self._texts: dict[str, str | None] = {}

    def text(self, source: str) -> str | None:
        """The decoded text of `source`, or None when it cannot be read."""
        if source not in self._texts:
            self._texts[source] = read_source_text(self.corpus_dir, source)
        return self._texts[source]

    def says(self, source: str, start: int, end: int, text: str) -> bool:
        """Does the file `source` hold exactly `text` at [start, end)?"""
        content = self.text(source)
        return content is not None and content[start:end] == text


def load_article(corpus_dir: Path, path: Path, data: bytes | None = None) -> Article:
    """Read and parse one article file. Raises `ArticleFileError` for one that cannot be indexed."""
    source = source_name(corpus_dir, path)
    if data is None:
        data = read_article_bytes(corpus_dir, path, source)
    if b"\x00" in data:
        raise ArticleFileError(source, "binary file (contains NUL bytes)")
    text, encoding = decode(data)
    if not text.strip():
        raise ArticleFileError(source, "empty file")
    warnings = ()
    if encoding != "utf-8":
        warnings = (f"not valid UTF-8; decoded as {encoding}",)
    title, date, spans = parse_layout(text)
    if not spans:
        raise ArticleFileError(source, "no article text after the headline")
    return Article(source, text, title, date, spans, encoding, warnings)


def parse_layout(text: str) -> tuple[str | None, str | None, tuple[tuple[int, int], ...]]:
    """Split text into (title, date, body spans). Offsets index into `text`."""
    lines = _line_spans(text)
    title = date = None
    body_start = 0
    date_cut: tuple[int, int] | None = None

    first = _first_nonblank(text, lines, 0)
    if first is None:
        return None, None, ()
    start, end = lines[first]
    match = _date_at(text, start)
    if match:
        date, date_cut = match
    elif first + 1 < len(lines):
        second = _first_nonblank(text, lines, first + 1)
        dated = _date_at(text, lines[second][0]) if second is not None else None
        line = text[start:end].strip()
        # A line followed by the date line is the headline even if it ends with a full stop.
        if _reads_as_headline(line) or (dated and len(line) <= MAX_TITLE_CHARS):
            title = line
            body_start = lines[first + 1][0]
            if dated:
                date, date_cut = dated

    spans = []
    if date_cut:
        spans = [(body_start, date_cut[0]), (date_cut[1], len(text))]
    else:
        spans = [(body_start, len(text))]
    return title, date, tuple(_trim(text, s, e) for s, e in spans if text[s:e].strip())


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((start, start + len(line.rstrip("\r\n"))))
        start += len(line)
    return spans


def _first_nonblank(text: str, lines: list[tuple[int, int]], begin: int) -> int | None:
    for i in range(begin, len(lines)):
        if text[lines[i][0] : lines[i][1]].strip():
            return i
    return None


def _date_at(text: str, start: int) -> tuple[str, tuple[int, int]] | None:
    match = DATE_PREFIX.match(text, start)
    if not match:
        return None
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return match.group(1), (match.start(), match.end())


def _reads_as_headline(line: str) -> bool:
    line = line.strip()
    if not line or len(line) > MAX_TITLE_CHARS or len(line.split()) > MAX_TITLE_WORDS:
        return False
    return not (line.endswith(".") and not line.endswith("..."))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
