"""Planning a build decides, from the corpus and what the index says of itself, what to add,
update, remove and skip, and whether it is an update or a rebuild: no model, no Chroma."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.articles import content_hash
from index.errors import IndexMismatchError
from index.plan import SETTLED_NS, CorpusFile, CorpusScan, IndexState, plan_build, scan_files

CORPUS = Path("corpus")
MODEL, CHUNKING = "hashing", "256/48"
COLLECTION = "c0ffee"


def scan(*files: tuple[str, str | bytes], skipped=()) -> CorpusScan:
    """A corpus read into memory: (source, text) pairs, nothing on disk."""
    read = []
    for source, text in files:
        data = text.encode() if isinstance(text, str) else text
        read.append(CorpusFile(source, CORPUS / source, data, content_hash(data)))
    return CorpusScan(CORPUS, read, list(skipped))


def article(title: str) -> str:
    return f"{title}\nThe minister said the talks would go on.\n"


def indexed(*files: tuple[str, str], state: str = "ok") -> dict[str, tuple[str, str]]:
    """Manifest rows of files indexed as they are in `files`."""
    return {source: (content_hash(text.encode()), state) for source, text in files}


def index_state(files=None, *, collection=COLLECTION, manifest_collection=COLLECTION, **kw):
    meta = {"model": MODEL, "chunking": CHUNKING, "collection": manifest_collection}
    return IndexState(
        manifest_meta=meta if files is not None else {},
        manifest_files=files or {},
        collection=collection,
        **kw,
    )


def plan(corpus: CorpusScan, state: IndexState, rebuild: bool = False):
    return plan_build(corpus, state, model=MODEL, chunking=CHUNKING, rebuild=rebuild)


A, B, C = ("a.txt", article("Alpha")), ("b.txt", article("Beta")), ("c.txt", article("Gamma"))


def test_a_first_build_adds_every_file():
    made = plan(scan(A, B), index_state(collection=None))
    assert (made.how, made.added, made.to_delete, made.untrusted) == (
        "update",
        ["a.txt", "b.txt"],
        [],
        [],
    )
    assert [a.source for a in made.to_index] == ["a.txt", "b.txt"]
    assert made.to_index[0].article.title == "Alpha"
    assert not any(a.known for a in made.to_index)


def test_nothing_changed_is_nothing_to_do():
    made = plan(scan(A, B), index_state(indexed(A, B)))
    assert made.unchanged == ["a.txt", "b.txt"]
    assert not made.has_work and made.to_index == []


def test_added_updated_removed_and_unchanged_in_one_plan():
    changed_b = ("b.txt", article("Beta, revised"))
    made = plan(scan(A, changed_b, C), index_state(indexed(A, B, ("gone.txt", "x"))))
    assert made.unchanged == ["a.txt"]
    assert made.updated == ["b.txt"] and made.added == ["c.txt"]
    assert made.removed == made.to_delete == ["gone.txt"]
    assert [(a.source, a.known) for a in made.to_index] == [("b.txt", True), ("c.txt", False)]
    assert made.has_work and made.why == "an update of what changed"


def test_pending_files_are_indexed_again_and_pending_leftovers_deleted():
    """What a killed build left: pending rows, even with the current hash, are not trusted."""
    state = index_state(
        {**indexed(A, state="pending"), **indexed(("half.txt", "x"), state="pending")}
    )
    made = plan(scan(A), state)
    assert made.added == ["a.txt"] and made.to_index[0].known
    assert made.to_delete == ["half.txt"]
    assert made.removed == []  # it never was in the index whole


def test_an_indexed_file_that_cannot_be_read_any_more_is_skipped_and_removed():
    empty, binary = ("a.txt", ""), ("new.txt", b"\x89PNG\x00")
    made = plan(scan(empty, B, binary, skipped=[("dir/", "a folder")]), index_state(indexed(A, B)))
    assert made.skipped == [
        ("dir/", "a folder"),
        ("a.txt", "empty file"),
        ("new.txt", "binary file (contains NUL bytes)"),
    ]
    assert made.removed == made.to_delete == ["a.txt"]
    assert made.added == made.updated == [] and made.unchanged == ["b.txt"]


def test_decoding_warnings_are_carried_to_the_report():
    latin = ("latin.txt", "Caf\xe9 opens\nThe caf\xe9 opened.\n".encode("latin-1"))
    made = plan(scan(latin), index_state({}))
    assert made.warnings == [("latin.txt", "not valid UTF-8; decoded as cp1252")]


def test_a_rebuild_over_an_index_builds_everything_aside():
    made = plan(scan(A, B), index_state(indexed(A, ("gone.txt", "x"))), rebuild=True)
    assert made.how == "rebuild aside" and made.aside
    assert made.added == ["a.txt", "b.txt"] and made.unchanged == []
    # The old collection answers until the swap: the manifest, which describes it, stays.
    assert made.to_delete == made.removed == made.forget == made.untrusted == []


def test_a_rebuild_with_no_index_to_keep_builds_in_place_and_forgets_the_manifest():
    made = plan(scan(A), index_state(indexed(A, B), collection=None), rebuild=True)
    assert made.how == "rebuild in place" and not made.aside
    assert made.forget == ["a.txt", "b.txt"]
    assert made.added == ["a.txt"] and made.to_delete == []


def test_a_rebuild_of_an_empty_corpus_still_has_work():
    assert plan(scan(), index_state(indexed(A)), rebuild=True).has_work


def test_a_manifest_of_another_collection_is_not_trusted():
    """Neither side is: what the collection holds and what the manifest lists are indexed
    again if present, deleted if not -- and first marked pending, to survive a crash."""
    state = index_state(
        indexed(A, B),
        manifest_collection="another",
        stored_sources=frozenset({"a.txt", "foreign.txt"}),
    )
    made = plan(scan(A, C), state)
    assert made.untrusted == ["a.txt", "b.txt", "foreign.txt"]
    assert made.why.startswith("the manifest does not describe this collection")
    assert made.added == ["a.txt", "c.txt"] and made.unchanged == made.updated == []
    assert made.to_delete == ["b.txt", "foreign.txt"] and made.removed == []


def test_a_manifest_without_its_collection_is_not_trusted():
    made = plan(scan(A), index_state(indexed(A, B), collection=None))
    assert made.untrusted == ["a.txt", "b.txt"]
    assert made.added == ["a.txt"] and made.to_delete == ["b.txt"]


@pytest.mark.parametrize(
    "where, model, chunking",
    [
        ("manifest", "other-model", CHUNKING),
        ("manifest", MODEL, "128/48"),
        ("collection", "other-model", CHUNKING),
        ("collection", MODEL, "128/48"),
    ],
)
def test_an_update_with_another_model_or_chunking_needs_a_rebuild(where, model, chunking):
    if where == "manifest":
        state = IndexState({"model": model, "chunking": chunking}, {}, COLLECTION)
    else:  # the manifest is gone: the collection's metadata still says
        state = IndexState({}, {}, COLLECTION, stored_model=model, stored_chunking=chunking)
    with pytest.raises(
        IndexMismatchError, match=f"model '{model}' and chunking {chunking}.*--rebuild"
    ):
        plan(scan(A), state)
    assert plan(scan(A), state, rebuild=True).added == ["a.txt"]


def test_scan_files_reads_bytes_and_skips_what_cannot_be_read(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "world").mkdir(parents=True)
    (corpus / "world" / "a.txt").write_text(article("Alpha"))
    (corpus / "broken.txt").symlink_to(corpus / "nowhere.txt")
    read = scan_files(corpus)
    assert [(f.source, f.data) for f in read.files] == [("world/a.txt", article("Alpha").encode())]
    assert read.files[0].digest == content_hash(article("Alpha").encode())
    assert read.skipped == [("broken.txt", "unreadable (No such file or directory)")]


def test_a_status_vouches_only_once_settled_and_only_for_a_regular_file(tmp_path):
    """The manifest's `seen` row is trusted when the file's status is the same and was older
    than the clock's tick when it was read; otherwise, or for a link, the file is read."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(article("Alpha"))
    (corpus / "link.txt").symlink_to(corpus / "a.txt")
    first = {f.source: f.seen for f in scan_files(corpus).files}
    written = max(first["a.txt"].mtime_ns, first["a.txt"].ctime_ns)
    settled = {s: seen._replace(read_ns=written + SETTLED_NS + 1) for s, seen in first.items()}
    in_the_tick = {s: seen._replace(read_ns=written + SETTLED_NS) for s, seen in first.items()}
    again = {f.source: f for f in scan_files(corpus, settled).files}
    assert again["a.txt"].data is None and again["a.txt"].digest == first["a.txt"].hash
    assert again["link.txt"].data == article("Alpha").encode()  # links are always read
    assert scan_files(corpus, in_the_tick).files[0].data == article("Alpha").encode()
