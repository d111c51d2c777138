"""Read one article file: its text, headline, date and body, tolerant of bad files.

An article is a `.txt` file anywhere under the corpus folder. Its *source* -- the citation users
see -- is its path relative to the corpus folder with `/` separators.

Layout, all of it optional:

    Headline on the first line
    date 2022-11-09 First paragraph goes on straight after the date prefix ...
    Another paragraph.

The first line is taken as the headline when it reads as one (short, no final full stop, more
text after it). A `date YYYY-MM-DD` prefix on the first or second line gives the publication
date; the prefix is not part of the body.

Offsets: every offset newsbot records (chunks, quotes) is a character offset into `text`, the
file's whole decoded content exactly as `decode()` returns it (no newline translation), so a
quote can be checked against the file later by decoding it the same way.

Bad files: UTF-8 is tried first, then cp1252, then Latin-1 (which never fails), with a warning.
Empty files, binary files (NUL bytes) and unreadable ones raise `SkippedFile` with the reason;
the build reports them and goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

# The date may be followed by text on the same line or stand on a line of its own.
DATE_PREFIX = re.compile(r"[ \t]*date (\d{4}-\d{2}-\d{2})(?:[ \t]+|(?=[\r\n])|$)")
MAX_TITLE_CHARS = 250
MAX_TITLE_WORDS = 30


class SkippedFile(Exception):
    """The file cannot be indexed; `reason` says why in a few words."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


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


def list_article_files(corpus_dir: Path) -> list[Path]:
    """Every `*.txt` file under the corpus folder, sorted by source name."""
    files = (p for p in corpus_dir.rglob("*.txt") if p.is_file() or p.is_symlink())
    return sorted(files, key=lambda p: source_name(corpus_dir, p))


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


def read_source_text(corpus_dir: Path, source: str) -> str | None:
    """The decoded text of a source as indexing saw it, or None when it cannot be read."""
    try:
        return decode((corpus_dir / source).read_bytes())[0]
    except OSError:
        return None


def load_article(corpus_dir: Path, path: Path, data: bytes | None = None) -> Article:
    """Read and parse one article file. Raises `SkippedFile` for files that cannot be indexed."""
    source = source_name(corpus_dir, path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SkippedFile(source, f"unreadable ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise SkippedFile(source, "binary file (contains NUL bytes)")
    text, encoding = decode(data)
    if not text.strip():
        raise SkippedFile(source, "empty file")
    warnings = ()
    if encoding != "utf-8":
        warnings = (f"not valid UTF-8; decoded as {encoding}",)
    title, date, spans = parse_layout(text)
    if not spans:
        raise SkippedFile(source, "no article text after the headline")
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
