"""Reading article files: headline, date, body spans, discovery and bad files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from index.articles import (
    FOLDER_OUTSIDE,
    NOT_REGULAR,
    NOT_UTF8_NAME,
    OUTSIDE,
    ArticleFileError,
    content_hash,
    decode,
    list_article_files,
    load_article,
    parse_layout,
    read_article_bytes,
    read_source_text,
    scan_corpus,
)
from index.errors import NewsbotError

EXAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def load(folder: Path, name: str, content: str | bytes):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return load_article(folder, path)


def span_texts(article) -> list[str]:
    return [article.text[a:b] for a, b in article.body_spans]


# -- layout ----------------------------------------------------------------------------------
def test_headline_then_body(tmp_path):
    article = load(tmp_path, "a.txt", "Storm hits the coast\nWinds of 100 km/h. Trees fell.\n")
    assert article.title == "Storm hits the coast"
    assert article.date is None
    assert article.body == "Winds of 100 km/h. Trees fell."
    assert article.source == "a.txt"
    assert article.encoding == "utf-8"
    assert article.warnings == ()


def test_headline_then_date_prefix_with_body_on_the_same_line(tmp_path):
    text = "Storm hits the coast\ndate 2022-11-09 Winds of 100 km/h. Trees fell.\nMore text.\n"
    article = load(tmp_path, "a.txt", text)
    assert article.title == "Storm hits the coast"
    assert article.date == "2022-11-09"
    assert article.body == "Winds of 100 km/h. Trees fell.\nMore text."
    assert all("date 2022" not in part for part in span_texts(article))
    assert article.body_spans[0][0] == text.index("Winds")


def test_date_on_a_line_of_its_own(tmp_path):
    article = load(tmp_path, "a.txt", "Storm hits the coast\ndate 2022-11-09\nWinds. Trees fell.\n")
    assert article.title == "Storm hits the coast"
    assert article.date == "2022-11-09"
    assert article.body == "Winds. Trees fell."


def test_a_line_followed_by_the_date_line_is_the_headline(tmp_path):
    text = "Storm hits the coast on Monday.\ndate 2022-11-09 Winds blew. Trees fell.\n"
    article = load(tmp_path, "a.txt", text)
    assert article.title == "Storm hits the coast on Monday."
    assert article.date == "2022-11-09"
    assert article.body == "Winds blew. Trees fell."


def test_date_on_the_first_line_means_no_headline(tmp_path):
    article = load(tmp_path, "a.txt", " date 2022-11-09 NATO Secretary General spoke.\nMore.\n")
    assert article.title is None
    assert article.date == "2022-11-09"
    assert article.body == "NATO Secretary General spoke.\nMore."


def test_example_article_without_headline():
    article = load_article(EXAMPLE_CORPUS, EXAMPLE_CORPUS / "000_00196775ba7d3aee.txt")
    assert article.title is None
    assert article.date == "2022-11-09"
    assert article.body.startswith("NATO Secretary General Jens Stoltenberg told CNN")
    assert all("date 2022-11-09" not in part for part in span_texts(article))


def test_example_article_with_headline():
    article = load_article(EXAMPLE_CORPUS, EXAMPLE_CORPUS / "001_5644935dc87ec3b5.txt")
    assert article.title == (
        "Russia’s Kherson retreat is ‘encouraging’ but too soon for conclusions, NATO chief says"
    )
    assert article.date is None
    assert article.body.startswith("Russia has “absolutely lost the momentum”")


@pytest.mark.parametrize(
    "first_line",
    [
        "The storm hit the coast on Monday night.",  # a sentence, not a headline
        " ".join(["word"] * 31),  # too many words
        "x" * 251,  # too long
    ],
)
def test_first_line_that_is_not_a_headline_stays_in_the_body(tmp_path, first_line):
    article = load(tmp_path, "a.txt", f"{first_line}\nSecond line.\n")
    assert article.title is None
    assert article.body == f"{first_line}\nSecond line."


def test_headline_may_end_with_an_ellipsis(tmp_path):
    assert load(tmp_path, "a.txt", "And then...\nBody.\n").title == "And then..."


def test_single_line_is_body_not_headline(tmp_path):
    article = load(tmp_path, "a.txt", "Just one short line")
    assert article.title is None
    assert article.body == "Just one short line"


def test_blank_lines_between_headline_and_body(tmp_path):
    text = "\n\nChelsea sack Mutu\n\nChelsea have sacked him.\n\nMore.\n"
    article = load(tmp_path, "a.txt", text)
    assert article.title == "Chelsea sack Mutu"
    assert article.body == "Chelsea have sacked him.\n\nMore."


@pytest.mark.parametrize(
    "line",
    [
        "date 2022-13-45 Not a real date.",
        "the date 2022-11-09 is not at the start.",
        "date 22-11-09 short year.",
        "date 2022-11-09x glued to a word.",
    ],
)
def test_not_a_date_prefix(line):
    title, date, spans = parse_layout(f"Headline\n{line}\n")
    assert title == "Headline"
    assert date is None
    assert line in "".join(f"Headline\n{line}\n"[a:b] for a, b in spans)


def test_date_prefix_on_the_third_line_is_body(tmp_path):
    text = "Headline\nFirst paragraph.\ndate 2022-11-09 is what it said.\n"
    article = load(tmp_path, "a.txt", text)
    assert article.date is None
    assert "date 2022-11-09 is what it said." in article.body


def test_crlf_line_endings_keep_offsets_into_the_raw_text(tmp_path):
    text = "Storm hits\r\ndate 2021-01-02 Winds blew.\r\nTrees fell.\r\n"
    article = load(tmp_path, "a.txt", text)
    assert article.text == text  # no newline translation
    assert article.title == "Storm hits"
    assert article.date == "2021-01-02"
    assert article.body == "Winds blew.\r\nTrees fell."


def test_spans_are_offsets_into_the_text(tmp_path):
    text = "  Headline here  \n\ndate 2020-05-06   Body one.\n\n  Body two.  \n\n"
    article = load(tmp_path, "a.txt", text)
    assert article.title == "Headline here"
    for start, end in article.body_spans:
        part = text[start:end]
        assert part == part.strip() and part
    assert article.body == "Body one.\n\n  Body two."


# -- encodings -------------------------------------------------------------------------------
def test_utf8_bom_is_utf8(tmp_path):
    article = load(tmp_path, "a.txt", "\ufeffHeadline\nCafé society.\n".encode())
    assert article.encoding == "utf-8"
    assert article.title == "Headline"
    assert article.warnings == ()


def test_latin1_file_is_decoded_with_a_warning(tmp_path):
    data = "Chelsea sack Mutu\n\nThe Romanian striker's café in Ploieşti... £10m fee.\n"
    article = load(tmp_path, "latin.txt", data.replace("ş", "s").encode("latin-1"))
    assert article.encoding in ("cp1252", "latin-1")
    assert "café" in article.body and "£10m" in article.body
    assert len(article.warnings) == 1 and "UTF-8" in article.warnings[0]


def test_cp1252_quotes_are_decoded(tmp_path):
    article = load(tmp_path, "a.txt", "Headline\n\x93Quoted\x94 \x96 dash.\n".encode("latin-1"))
    assert article.encoding == "cp1252"
    assert article.body == "“Quoted” – dash."


def test_bytes_undefined_in_cp1252_fall_back_to_latin1():
    text, encoding = decode(b"Headline\nA \x81 byte.\n")
    assert encoding == "latin-1"
    assert text == "Headline\nA \x81 byte.\n"


def test_read_source_text_decodes_like_indexing(tmp_path):
    article = load(tmp_path, "sub/a.txt", "Héadline\nBody.\n".encode("cp1252"))
    assert read_source_text(tmp_path, "sub/a.txt") == article.text
    assert read_source_text(tmp_path, "missing.txt") is None


# -- files that are skipped --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\n\t \r\n", "empty file"),
        (b"Headline\x00\x01\x02binary", "binary file (contains NUL bytes)"),
        (b"Headline only\n\n", "no article text after the headline"),
    ],
)
def test_files_that_cannot_be_indexed(tmp_path, content, reason):
    with pytest.raises(ArticleFileError) as caught:
        load(tmp_path, "bad.txt", content)
    assert caught.value.source == "bad.txt"
    assert caught.value.reason == reason


def test_unreadable_file_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(ArticleFileError) as caught:
        load_article(tmp_path, tmp_path / "broken.txt")
    assert caught.value.reason.startswith("unreadable")
    assert "No such file" in caught.value.reason


# -- discovery -------------------------------------------------------------------------------
def test_list_article_files_is_recursive_and_sorted(tmp_path):
    for name in ("b.txt", "a/z.txt", "a/b/c.txt", "notes.md", "a/readme", "c.TXT.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("Headline\nBody.\n")
    (tmp_path / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "folder.txt").mkdir()  # a directory is not an article
    files = list_article_files(tmp_path)
    sources = [p.relative_to(tmp_path).as_posix() for p in files]
    assert sources == ["a/b/c.txt", "a/z.txt", "b.txt", "broken.txt"]
    assert load_article(tmp_path, tmp_path / "a/b/c.txt").source == "a/b/c.txt"


def test_content_hash_depends_only_on_bytes():
    assert content_hash(b"abc") == content_hash(b"abc")
    assert content_hash(b"abc") != content_hash(b"abd")


def test_upper_case_suffixes_are_articles_too(tmp_path):
    """`*.TXT` is what some tools write; on macOS and Windows it already matched `*.txt`."""
    for name in ("A.TXT", "b.Txt", "c.txt", "d.TXT.bak", "e.text"):
        (tmp_path / name).write_text("Headline\nBody.\n")
    sources = [p.name for p in list_article_files(tmp_path)]
    assert sources == ["A.TXT", "b.Txt", "c.txt"]
    assert load_article(tmp_path, tmp_path / "A.TXT").source == "A.TXT"


# -- what stays out: links out of the folder, non-files, unreadable folders ----------------------
SECRET = "TELEGRAM_BOT_TOKEN=123456:SECRET-token\nNEWSBOT_LLM_API_KEY=sk-secret\n"


@pytest.fixture
def linked_corpus(tmp_path) -> Path:
    """A corpus with links of every kind, next to a folder holding a secret."""
    outside = tmp_path / "home"
    (outside / "notes").mkdir(parents=True)
    (outside / ".env").write_text(SECRET)
    (outside / "notes" / "n.txt").write_text("Private notes\nNot for the bot.\n")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Headline\nBody.\n")
    (corpus / "sub" / "b.txt").write_text("Other\nMore body.\n")
    (corpus / "leak.txt").symlink_to(outside / ".env")  # absolute link out
    (corpus / "sub" / "leak2.txt").symlink_to("../../home/.env")  # relative link out
    (corpus / "notes").symlink_to(outside / "notes")  # a folder out
    (corpus / "alias.txt").symlink_to("a.txt")  # a link inside is an article
    (corpus / "again").symlink_to("sub")  # a folder inside: its files are indexed as sub/
    (corpus / "loop").symlink_to(".")
    (corpus / "gone.txt").symlink_to("nowhere.txt")  # broken, inside: reading says why
    (corpus / "gone-out.txt").symlink_to(outside / "nowhere.txt")
    os.mkfifo(corpus / "pipe.txt")
    return corpus


def test_only_files_inside_the_corpus_folder_are_listed_and_the_rest_is_skipped(linked_corpus):
    listing = scan_corpus(linked_corpus)
    assert [p.relative_to(linked_corpus).as_posix() for p in listing.files] == [
        "a.txt",
        "alias.txt",
        "gone.txt",
        "sub/b.txt",
    ]
    assert listing.skipped == [
        ("gone-out.txt", OUTSIDE),
        ("leak.txt", OUTSIDE),
        ("notes/", FOLDER_OUTSIDE),
        ("pipe.txt", NOT_REGULAR),
        ("sub/leak2.txt", OUTSIDE),
    ]
    assert list_article_files(linked_corpus) == listing.files


def test_names_that_are_not_utf8_are_skipped_not_indexed(tmp_path):
    """A source is stored (SQLite, Chroma) and shown as text: a name with a byte that is not
    UTF-8 made `newsbot index` crash with UnicodeEncodeError."""
    (tmp_path / "good.txt").write_text("Headline\nBody.\n")
    os.mkdir(os.fsencode(tmp_path) + b"/bad\xffdir")
    for name in (b"bad\xffname.txt", b"bad\xffdir/inner.txt"):
        Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + name)).write_text("Headline\nBody.\n")
    listing = scan_corpus(tmp_path)
    assert [p.name for p in listing.files] == ["good.txt"]
    assert listing.skipped == [
        ("bad\ufffddir/", NOT_UTF8_NAME),
        ("bad\ufffdname.txt", NOT_UTF8_NAME),
    ]
    for source, _ in listing.skipped:
        source.encode("utf-8")


def test_a_corpus_folder_reached_through_a_link_is_fine(linked_corpus, tmp_path):
    (tmp_path / "link-to-corpus").symlink_to(linked_corpus)
    listing = scan_corpus(tmp_path / "link-to-corpus")
    assert len(listing.files) == 4 and len(listing.skipped) == 5
    assert read_article_bytes(tmp_path / "link-to-corpus", listing.files[0]) == b"Headline\nBody.\n"


def test_reading_checks_the_file_actually_opened(linked_corpus):
    """A file swapped for a link after the scan, or a source from the index, is not trusted."""
    (linked_corpus / "a.txt").unlink()
    (linked_corpus / "a.txt").symlink_to(linked_corpus.parent / "home" / ".env")
    with pytest.raises(ArticleFileError) as caught:
        read_article_bytes(linked_corpus, linked_corpus / "a.txt")
    assert caught.value.reason == OUTSIDE
    with pytest.raises(ArticleFileError, match=OUTSIDE):
        load_article(linked_corpus, linked_corpus / "leak.txt")
    for source in ("a.txt", "leak.txt", "../home/.env", str(linked_corpus.parent / "home/.env")):
        assert read_source_text(linked_corpus, source) is None, source
    assert read_source_text(linked_corpus, "sub/b.txt") == "Other\nMore body.\n"


def test_a_fifo_named_like_an_article_is_skipped_without_blocking(linked_corpus):
    with pytest.raises(ArticleFileError) as caught:
        read_article_bytes(linked_corpus, linked_corpus / "pipe.txt")  # would hang if opened
    assert caught.value.reason == NOT_REGULAR


LIST_AS_NOBODY = """
import json, sys
from pathlib import Path
from index.articles import scan_corpus
from index.errors import NewsbotError
try:
    listing = scan_corpus(Path(sys.argv[1]))
except NewsbotError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    files = [p.relative_to(sys.argv[1]).as_posix() for p in listing.files]
    print(json.dumps({"files": files, "skipped": listing.skipped}))
"""


def scan_as_unprivileged(corpus: Path) -> dict:
    """scan_corpus in a process that file permissions apply to (root reads any folder)."""
    command = [sys.executable, "-c", LIST_AS_NOBODY, str(corpus)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: folder permissions cannot apply")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def open_tmp():
    """A folder every user may enter (pytest's tmp_path is root's own when run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="newsbot-perm-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_an_unreadable_sub_folder_is_listed_as_skipped(open_tmp):
    corpus = open_tmp / "corpus"
    (corpus / "locked").mkdir(parents=True)
    (corpus / "a.txt").write_text("Headline\nBody.\n")
    (corpus / "locked" / "b.txt").write_text("Hidden\nBody.\n")
    corpus.chmod(0o755)
    (corpus / "a.txt").chmod(0o644)
    (corpus / "locked").chmod(0o000)
    assert scan_as_unprivileged(corpus) == {
        "files": ["a.txt"],
        "skipped": [["locked/", "unreadable folder (Permission denied)"]],
    }
    corpus.chmod(0o000)
    error = scan_as_unprivileged(corpus)["error"]
    assert error.startswith(f"Cannot read the corpus folder {corpus}: unreadable folder")
    assert "NEWSBOT_CORPUS_DIR" in error


def test_scan_of_an_unreadable_corpus_folder_is_a_newsbot_error(tmp_path):
    with pytest.raises(NewsbotError, match="Cannot read the corpus folder"):
        scan_corpus(tmp_path / "missing")
