"""tests/conftest.py's speed-ups keep every test on its own and the code under test unchanged:
`built_index` gives each test its own store, equal to a fresh build; `tmp_path` is in memory
where there is memory to put it in; httpx loads a CA bundle of one certificate."""

from __future__ import annotations

import os

import pytest

from index.build import build_index
from index.manifest import Manifest
from index.store import ChunkStore


def contents(settings) -> list[tuple[str, str, dict]]:
    """Every chunk of the store: id, text and metadata, in id order."""
    records = ChunkStore(settings).iter_all()
    return sorted((r["id"], r["text"], r["meta"]) for r in records)


def collection_id(settings) -> str:
    """The Chroma collection the store's manifest describes: new at every first build."""
    manifest = Manifest(settings.manifest_path)
    try:
        return manifest.meta()["collection"]
    finally:
        manifest.close()


def test_a_built_index_is_a_copy_each_test_owns_and_equals_a_fresh_build(
    make_settings, built_index, write_article, tmp_path
):
    first = make_settings()
    assert built_index(first) == first.store_dir
    second = make_settings(store_dir=tmp_path / "second")
    built_index(second)  # the same corpus and settings: the kept store, copied
    fresh = make_settings(store_dir=tmp_path / "fresh")
    build_index(fresh)

    assert collection_id(second) == collection_id(first) != collection_id(fresh)
    assert contents(second) == contents(fresh) == contents(first)
    assert len(contents(fresh)) == 3
    report = build_index(second)
    assert (report.added, report.updated, report.removed) == ([], [], [])
    assert report.unchanged == ["drones.txt", "football.txt", "world/economy.txt"]

    write_article(first.corpus_dir, "new.txt", "A new article about drones.", title="New")
    assert build_index(second).added == ["new.txt"]  # a write to one copy ...
    assert len(contents(second)) == 4
    assert len(contents(first)) == 3  # ... is not seen by the other
    third = make_settings(store_dir=tmp_path / "third")
    built_index(third)  # the corpus changed: a new build, not the old copy
    assert contents(third) == contents(second)


def test_a_built_index_needs_an_empty_folder(make_settings, built_index):
    settings = make_settings()
    settings.store_dir.mkdir()
    (settings.store_dir / "left-over").write_text("x")
    with pytest.raises(AssertionError, match="is not empty"):
        built_index(settings)


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no /dev/shm here")
def test_tmp_path_is_in_memory(tmp_path, tmp_path_factory):
    assert tmp_path.is_relative_to("/dev/shm")
    assert tmp_path_factory.getbasetemp().is_relative_to("/dev/shm")


def test_httpx_loads_a_bundle_of_one_certificate():
    import httpx

    context = httpx.create_ssl_context()
    assert context.cert_store_stats()["x509_ca"] == 1
