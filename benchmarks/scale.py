"""`python -m benchmarks.scale --data ../shared/eval-data --sizes 50000,150000,500000 --out DIR`:
how newsbot's costs grow with the index, on a synthetic index grown from a real one (issue 11).

The synthetic index is a real newsbot store -- manifest, Chroma collection, BM25 state -- that
`newsbot ask`, the Answerer and a no-op `newsbot index` take as it is. Embedding 500,000 chunks
would take hours here, so it is grown from an index that exists (`--base-store`, built by
`newsbot index` over `--base-corpus`; by default the `eval` corpus in /tmp/ev, else prepared
with `prepare.py corpus eval` and indexed once, about 45 minutes):

- articles: copy 0 of every base article is its text unchanged; copy c > 0 replaces, in every
  article, about 30% of the distinct lower-case words of 5+ letters by one of 8 made-up words of
  the same length (which word and which variant depend on c), so BM25 meets new terms and
  documents, the vocabulary grows sublinearly (as a real one does), and every character offset
  stays where it was. Files go to `<out>/corpus/cNNN/<base source>`: fresh sources, fresh ids.
- chunks: the base chunks' offsets, their text cut from the copy's text at those offsets, the
  title and date parsed from it (`index.articles.parse_layout`): what grounding checks holds.
- vectors: the base chunk's stored vector (copy 0), or that vector plus Gaussian noise of norm
  `--noise` (0.33: cosine about 0.95 to the original), renormalised (copies).
- written through newsbot's own code: `ChunkStore.add`, `Manifest.mark_ok`, the collection's
  metadata as `index.build` writes it, under the indexer's lock; BM25 by `update_cache`.

The index grows in place from one size to the next; at each size, each in a fresh process:

    bm25 sync     `update_cache` with no saved state: every chunk read from Chroma and tokenized
    bm25 load     `BM25Index.load` of the saved state
    serve         from spawn until an Answerer is ready (models, BM25, and one vector query, so
                  the vector index is loaded); one warm-up answer; then the warm answers of
                  `--questions` questions (median, p95, stages); RSS once ready, after, and peak
    turns         the grown index and the base index answering the same questions in turns,
                  in one process sharing the models: the ratio holds up under a changing load
    no-op index   a real `newsbot index --json` over the synthetic corpus folder
    store size    on disk: Chroma, the BM25 state, the manifest

It prints a table, the log-log slope of each measure between sizes and its projection to
`--project` chunks, and writes `<out>/scale.json`. Heavy work runs in children
(`python -m benchmarks.scale --phase NAME PARAMS`) so that the driver stays small and each
child's peak memory is its own (`benchmarks.common.run_child`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from benchmarks.common import child_env, percentile, run_child

_SCRIPT = Path(sys.executable).with_name("newsbot")
NEWSBOT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli.main"]
DEFAULT_BASE = Path("/tmp/ev")
SHARE, VARIANTS = 0.30, 8  # of the distinct words a copy changes; made-up words per word
PERTURBED = re.compile(r"\b[a-z]{5,}\b")  # never "date" (the date prefix), names or numbers
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WRITE_CHUNKS = 4000  # chunks per Chroma upsert and manifest commit while growing
MEASURES = (  # (key, label, unit)
    ("answer_median_ms", "warm answer median", "ms"),
    ("answer_p95_ms", "warm answer p95", "ms"),
    ("retrieve_median_ms", "retrieve stage median", "ms"),
    ("turns_ratio", "answer median / base index's, in turns", "x"),
    ("bm25_sync_s", "BM25 sync from Chroma, fresh process", "s"),
    ("bm25_load_s", "BM25 load of the saved state", "s"),
    ("ready_s", "serving process ready (from spawn)", "s"),
    ("rss_ready_mb", "serving RSS once ready", "MB"),
    ("rss_after_mb", "serving RSS after the answers", "MB"),
    ("rss_peak_mb", "serving peak RSS", "MB"),
    ("store_mb", "store on disk", "MB"),
    ("noop_first_index_s", "no-op `newsbot index`, first (reads every file)", "s"),
    ("noop_index_s", "no-op `newsbot index`, again (reads none)", "s"),
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the synthetic text ---------------------------------------------------------------------
def perturb(text: str, copy: int) -> str:
    """Copy `copy` of an article's text: the same length, the same layout, other words."""
    if copy == 0:
        return text
    return PERTURBED.sub(lambda match: _swap(match.group(0), copy), text)


@lru_cache(maxsize=1 << 20)
def _swap(word: str, copy: int) -> str:
    digest = hashlib.blake2b(f"{copy}:{word}".encode(), digest_size=8).digest()
    draw = int.from_bytes(digest, "little")
    if draw % 1000 >= SHARE * 1000:
        return word
    return made_up_word(word, (draw >> 10) % VARIANTS)


def made_up_word(word: str, variant: int) -> str:
    """A word of the same length and first two letters, its other letters drawn from a hash."""
    size = min(len(word), 64)
    digest = hashlib.blake2b(f"{word}/{variant}".encode(), digest_size=size).digest()
    return word[:2] + "".join(LETTERS[b % 26] for b in digest[2:]) + word[size:]


def noisy(vectors, copy: int, noise: float):
    """The copy's vectors: each plus Gaussian noise of norm about `noise`, renormalised."""
    import numpy as np

    if copy == 0:
        return vectors
    rng = np.random.default_rng(copy)
    out = vectors + rng.normal(0.0, noise / math.sqrt(vectors.shape[1]), vectors.shape)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


# -- phases (children) -----------------------------------------------------------------------
def phase_grow(params: dict) -> dict:
    """Add copies of the base articles to the synthetic corpus and store until they hold
    `target` chunks (whole articles: it may end a little past it)."""
    import numpy as np

    from benchmarks.phases import _settings
    from index.articles import content_hash, decode, parse_layout
    from index.build import VERSION_CHARS, index_lock, new_generation
    from index.chunking import Chunk
    from index.manifest import Manifest
    from index.store import ChunkStore, now

    started = time.perf_counter()
    base_corpus, corpus = Path(params["base_corpus"]), Path(params["corpus"])
    base = ChunkStore(_settings(corpus_dir=base_corpus, store_dir=params["base_store"]))
    info = base.info()
    records: dict[str, list[dict]] = {}
    ids = base.all_ids()
    for i in range(0, len(ids), 2000):
        for record in base.get_records(ids[i : i + 2000], embeddings=True):
            records.setdefault(record["meta"]["source"], []).append(record)
    sources = sorted(records)
    for chunks in records.values():
        chunks.sort(key=lambda r: r["meta"]["ordinal"])
    texts = {s: decode((base_corpus / s).read_bytes())[0] for s in sources}
    stale = [
        s
        for s in sources
        if any(texts[s][r["meta"]["start"] : r["meta"]["end"]] != r["text"] for r in records[s])
    ]
    sources = [s for s in sources if s not in stale]  # the base corpus changed since its index

    settings = _settings(corpus_dir=corpus, store_dir=params["store"])
    store, written = ChunkStore(settings), 0
    with index_lock(settings.store_dir):
        store.open(create=True)
        manifest = Manifest(settings.manifest_path)
        done, chunks_now, _, _ = manifest.totals()
        pending: list[tuple] = []
        position = done
        while chunks_now < params["target"]:
            copy, source = divmod(position, len(sources))
            source = sources[source]
            text = perturb(texts[source], copy)
            name = f"c{copy:03d}/{source}"
            path = corpus / name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode("utf-8")
            path.write_bytes(data)
            title, date, _ = parse_layout(text)
            chunks = [
                Chunk(name, r["meta"]["ordinal"], s, e, text[s:e], title, date)
                for r in records[source]
                for s, e in [(r["meta"]["start"], r["meta"]["end"])]
            ]
            vectors = noisy(
                np.asarray([r["vector"] for r in records[source]], dtype=np.float32),
                copy,
                params["noise"],
            )
            pending.append((name, content_hash(data), date, chunks, vectors))
            chunks_now += len(chunks)
            position += 1
            if sum(len(p[3]) for p in pending) >= WRITE_CHUNKS:
                written += _write(store, manifest, pending, VERSION_CHARS)
                pending = []
        written += _write(store, manifest, pending, VERSION_CHARS)
        articles, chunks_now, date_min, date_max = manifest.totals()
        store.update_meta(
            generation=new_generation(),
            model=info.model,
            chunking=info.chunking,
            articles=articles,
            chunks=chunks_now,
            date_min=date_min,
            date_max=date_max,
            built_at=now(),
        )
        manifest.set_meta(
            model=info.model,
            chunking=info.chunking,
            collection=store.id,
            collection_name=store.name,
        )
        manifest.close()
    return {
        "articles": articles,
        "chunks": chunks_now,
        "chunks_written": written,
        "copies": math.ceil(position / len(sources)),
        "base_articles": len(sources),
        "base_stale": len(stale),
        "grow_seconds": round(time.perf_counter() - started, 1),
    }


def _write(store, manifest, pending: list[tuple], version_chars: int) -> int:
    """Store the chunks of these articles, then mark them whole in the manifest (the order a
    build keeps: a file is `ok` only once all its chunks are in Chroma)."""
    import numpy as np

    if not pending:
        return 0
    versions = {name: digest[:version_chars] for name, digest, *_ in pending}
    chunks = [c for *_, piece, _ in pending for c in piece]
    store.add(chunks, np.concatenate([v for *_, v in pending]), versions)
    manifest.mark_ok([(name, digest, len(piece), date) for name, digest, date, piece, _ in pending])
    return len(chunks)


def phase_bm25_sync(params: dict) -> dict:
    """BM25 made from Chroma by `update_cache`, with no saved state: the whole tokenization."""
    from benchmarks.phases import _settings
    from index.lexical import cache_path, update_cache
    from index.store import ChunkStore

    settings = _settings(corpus_dir=params["corpus"], store_dir=params["store"])
    cache_path(settings.store_dir).unlink(missing_ok=True)
    started = time.perf_counter()
    index = update_cache(ChunkStore(settings), settings.store_dir)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "chunks": len(index),
        "vocab": len(index.vocab),
        "postings": int(len(index._docs)),
    }


def phase_bm25_load(params: dict) -> dict:
    from index.lexical import BM25Index, cache_path

    started = time.perf_counter()
    index = BM25Index.load(cache_path(Path(params["store"])))
    return {"seconds": round(time.perf_counter() - started, 3), "chunks": len(index)}


def phase_serve(params: dict) -> dict:
    """A serving process from spawn: ready (models, BM25, vectors), one warm-up answer, then
    the timed answers, with the retrieve stage's share and the memory at each point."""
    from benchmarks.phases import _rss_mb, _settings

    imported = time.time()
    from bot.answering.answer import Answerer
    from bot.answering.retrieve import HybridRetriever

    settings = _settings(corpus_dir=params["corpus"], store_dir=params["store"])
    started = time.perf_counter()
    retriever = HybridRetriever.open(settings)
    opened = time.perf_counter()
    answerer = Answerer(settings, retriever=retriever)
    answerer.warm_up()
    retriever.store.query(retriever.embedder.embed_query("warm up"), 1)  # load the vectors
    ready = time.time() - params["spawned_at"]
    rss_ready = _rss_mb()
    questions = params["questions"]
    t = time.perf_counter()
    answerer.answer(questions[0], [])
    first = time.perf_counter() - t
    seconds, retrieve, refused = [], [], 0
    for question in questions[1:]:
        t = time.perf_counter()
        answer = answerer.answer(question, [])
        seconds.append(time.perf_counter() - t)
        retrieve.append(answer.timings.get("retrieve", 0.0))
        refused += answer.refused
    return {
        "import_s": round(imported - params["spawned_at"], 2),
        "open_s": round(opened - started, 2),
        "ready_s": round(ready, 2),
        "rss_ready_mb": rss_ready,
        "first_answer_ms": round(first * 1000, 1),
        "answers": len(seconds),
        "answer_median_ms": round(_median(seconds) * 1000, 1),
        "answer_p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        "answer_max_ms": round(max(seconds) * 1000, 1),
        "retrieve_median_ms": round(_median(retrieve) * 1000, 1),
        "refused": refused,
        "rss_after_mb": _rss_mb(),
        "rss_peak_mb": _peak_mb(),
    }


def phase_turns(params: dict) -> dict:
    """The grown index and the base index answering the same questions in turns, in one
    process sharing the models: the ratio of their medians holds up on a machine whose load
    changes, where the absolute figures do not."""
    from benchmarks.phases import _settings
    from bot.answering.answer import Answerer

    big = Answerer(_settings(corpus_dir=params["corpus"], store_dir=params["store"]))
    base = Answerer(
        _settings(corpus_dir=params["base_corpus"], store_dir=params["base_store"]),
        embedder=big.embedder,
        reranker=big.reader.reranker,
    )
    times: dict[str, list[float]] = {"grown": [], "base": []}
    for answerer in (big, base):
        answerer.warm_up()
        answerer.answer(params["questions"][0], [])
    for i, question in enumerate(params["questions"][1:]):
        pair = (("grown", big), ("base", base))
        for name, answerer in pair if i % 2 == 0 else pair[::-1]:
            t = time.perf_counter()
            answerer.answer(question, [])
            times[name].append(time.perf_counter() - t)
    result = {f"{name}_median_ms": round(_median(v) * 1000, 1) for name, v in times.items()}
    result |= {f"{name}_p95_ms": round(percentile(v, 0.95) * 1000, 1) for name, v in times.items()}
    result["ratio"] = round(result["grown_median_ms"] / result["base_median_ms"], 2)
    return result


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


PHASES = {
    "grow": phase_grow,
    "bm25_sync": phase_bm25_sync,
    "bm25_load": phase_bm25_load,
    "serve": phase_serve,
    "turns": phase_turns,
}


# -- the driver ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.phase:
        from benchmarks.phases import _quiet

        _quiet()
        print(json.dumps(PHASES[args.phase](json.loads(args.params))), flush=True)
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    base_corpus, base_store = base_index(args, out)
    corpus, store, work = out / "corpus", out / "store", out / "work"
    if not args.keep:
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    from benchmarks.__main__ import latency_questions, machine

    questions = latency_questions(base_corpus, args.questions + 1)
    results = {
        "machine": machine(started),
        "commit": _commit(),
        "synthetic": {
            "base_corpus": str(base_corpus),
            "base_store": str(base_store),
            "text": f"copy 0 as is; copy c: ~{SHARE:.0%} of distinct lower-case 5+ letter words "
            f"-> one of {VARIANTS} same-length made-up words",
            "vectors": f"base vectors from Chroma; copies: + Gaussian noise of norm {args.noise}, "
            "renormalised (not embedded)",
        },
        "questions": questions,
        "sizes": [],
    }
    env = child_env(corpus_dir=corpus, store_dir=store, **_model(args))
    for size in sorted(int(s) for s in args.sizes.split(",")):
        row = measure(size, args, base_corpus, base_store, corpus, store, work, env, questions)
        results["sizes"].append(row)
        results["fit"] = fit(results["sizes"], args.project)
        results["machine"]["load_end"] = os.getloadavg()[0]
        results["machine"]["seconds"] = round(time.time() - started, 1)
        (out / "scale.json").write_text(json.dumps(results, indent=2))
        print(table(results), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--data", help="the eval-data folder (for a base index made anew)")
    parser.add_argument("--prepare", help="prepare.py (default: DATA/../eval/prepare.py)")
    parser.add_argument("--sizes", default="50000,150000,500000", help="chunks, comma-separated")
    parser.add_argument("--out", default="benchmarks/results/scale")
    parser.add_argument("--base-corpus", default=str(DEFAULT_BASE / "corpus"))
    parser.add_argument("--base-store", default=str(DEFAULT_BASE / "store"))
    parser.add_argument("--embed-model", help="as NEWSBOT_EMBED_MODEL (tests: hashing)")
    parser.add_argument(
        "--no-rerank", action="store_true", help="read without the cross-encoder (tests)"
    )
    parser.add_argument("--questions", type=int, default=30, help="timed warm answers")
    parser.add_argument("--noise", type=float, default=0.33, help="norm of a copy's vector noise")
    parser.add_argument("--project", type=int, default=8_000_000, help="chunks to project to")
    parser.add_argument("--keep", action="store_true", help="grow the synthetic index in --out")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("params", nargs="?", default="{}", help=argparse.SUPPRESS)
    return parser


def _model(args) -> dict[str, str]:
    """Settings the children get besides the folders (the base index's model must match)."""
    values = {"embed_model": args.embed_model} if args.embed_model else {}
    return values | ({"rerank": "false"} if args.no_rerank else {})


def base_index(args, out: Path) -> tuple[Path, Path]:
    """The index to grow from, copied into `out` (its owner may be using it): the one given,
    else the `eval` corpus prepared and indexed by `newsbot index` (real vectors, slow)."""
    corpus, store = Path(args.base_corpus).resolve(), Path(args.base_store).resolve()
    copy = out / "base-store"
    if not (store / "manifest.sqlite3").is_file():
        if not args.data:
            raise SystemExit(f"scale: no index at {store}; give --data to make one")
        data = Path(args.data).resolve()
        prepare = Path(args.prepare) if args.prepare else data.parent / "eval" / "prepare.py"
        corpus = out / "base-corpus"
        if not corpus.is_dir():
            say(f"preparing the eval corpus in {corpus}")
            subprocess.run(
                [sys.executable, str(prepare), "--data", str(data), "corpus", "eval", str(corpus)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        say("indexing it with `newsbot index` (real vectors; about 45 minutes here)")
        env = child_env(corpus_dir=corpus, store_dir=copy, **_model(args))
        run = run_child([*NEWSBOT, "index"], env, out / "work")
        if run.returncode:
            raise SystemExit(f"scale: newsbot index failed:\n{run.stderr[-2000:]}")
        return corpus, copy
    if not (copy / "manifest.sqlite3").is_file():
        say(f"copying the base index {store}")
        shutil.copytree(store, copy, ignore=shutil.ignore_patterns("index.lock"))
    return corpus, copy


def run_phase(name: str, params: dict, work: Path, env: dict[str, str]) -> dict:
    argv = [sys.executable, "-m", "benchmarks.scale", "--phase", name, json.dumps(params)]
    run = run_child(argv, env, work)
    if run.returncode:
        raise RuntimeError(f"scale phase {name} failed:\n{run.stderr[-4000:]}")
    return run.json() | {"wall_s": round(run.seconds, 2), "peak_mb": round(run.peak_mb, 1)}


def measure(size, args, base_corpus, base_store, corpus, store, work, env, questions) -> dict:
    """Grow the index to `size` chunks, then measure it (each in a fresh process)."""
    paths = {"corpus": str(corpus), "store": str(store)}
    say(f"growing to {size:,} chunks")
    grow = run_phase(
        "grow",
        paths
        | {"base_corpus": str(base_corpus), "base_store": str(base_store)}
        | {"target": size, "noise": args.noise},
        work,
        env,
    )
    say(f"{grow['chunks']:,} chunks, {grow['articles']:,} articles: BM25 sync from Chroma")
    sync = run_phase("bm25_sync", paths, work, env)
    say("BM25 load")
    load = run_phase("bm25_load", paths, work, env)
    say(f"serving: ready, then {len(questions) - 1} warm answers")
    serve = run_phase(
        "serve", paths | {"questions": questions, "spawned_at": time.time()}, work, env
    )
    say("the grown and the base index answering in turns")
    turns = run_phase(
        "turns",
        paths
        | {"base_corpus": str(base_corpus), "base_store": str(base_store)}
        | {"questions": questions},
        work,
        env,
    )
    # Twice: the first run reads every file (the grown store's manifest has seen none of them,
    # as after an upgrade); the second is the usual no-op, which reads only what changed.
    runs = []
    for which in ("first", "again"):
        say(f"no-op newsbot index ({which})")
        runs.append(run_child([*NEWSBOT, "index", "--json"], env, work))
        if runs[-1].returncode:
            raise RuntimeError(f"newsbot index failed:\n{runs[-1].stderr[-4000:]}")
    first, noop = runs
    report = noop.json()
    disk = {part: _size_mb(store / part) for part in ("chroma", "bm25.npz", "manifest.sqlite3")}
    return {
        "target": size,
        "load_average": os.getloadavg()[0],
        "grow": grow,
        "bm25": {"sync": sync, "load": load},
        "serve": serve,
        "turns": turns,
        "noop_index": {
            "first_seconds": round(first.seconds, 2),
            "seconds": round(noop.seconds, 2),
            "peak_mb": round(noop.peak_mb, 1),
            "chunks_written": report["chunks_written"],
            "changed": len(report["added"]) + len(report["updated"]) + len(report["removed"]),
        },
        "disk_mb": disk,
        "chunks": grow["chunks"],
        "articles": grow["articles"],
        "answer_median_ms": serve["answer_median_ms"],
        "answer_p95_ms": serve["answer_p95_ms"],
        "retrieve_median_ms": serve["retrieve_median_ms"],
        "turns_ratio": turns["ratio"],
        "bm25_sync_s": sync["seconds"],
        "bm25_load_s": load["seconds"],
        "ready_s": serve["ready_s"],
        "rss_ready_mb": serve["rss_ready_mb"],
        "rss_after_mb": serve["rss_after_mb"],
        "rss_peak_mb": serve["rss_peak_mb"],
        "store_mb": round(sum(disk.values()), 1),
        "noop_first_index_s": round(first.seconds, 2),
        "noop_index_s": round(noop.seconds, 2),
    }


def _size_mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    files = (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else ()
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def _commit() -> str:
    run = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    )
    return run.stdout.strip() or "unknown"


def fit(rows: list[dict], project: int) -> dict:
    """Per measure: the least-squares slope of log(value) on log(chunks) (1: linear; 0: flat),
    and the value projected from the largest size to `project` chunks along that slope."""
    fits = {}
    for key, _, _ in MEASURES:
        points = [(math.log(r["chunks"]), math.log(r[key])) for r in rows if r.get(key, 0) > 0]
        if len(points) < 2:
            continue
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        sxx = sum((x - mx) ** 2 for x, _ in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
        last = rows[-1]
        projected = last[key] * (project / last["chunks"]) ** slope
        fits[key] = {"slope": round(slope, 2), "projected": round(projected, 1)}
    return fits


def table(results: dict) -> str:
    rows, fits = results["sizes"], results.get("fit", {})
    head = ["measure", *(f"{r['chunks']:,} chunks" for r in rows), "slope", "projected"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| articles | " + " | ".join(f"{r['articles']:,}" for r in rows) + " | | |")
    for key, label, unit in MEASURES:
        cells = [f"{r[key]:,.3g}" if r[key] < 100 else f"{r[key]:,.0f}" for r in rows]
        slope = fits.get(key, {}).get("slope", "")
        projected = fits.get(key, {}).get("projected")
        shown = "" if projected is None else f"{projected:,.0f}"
        lines.append(f"| {label} ({unit}) | " + " | ".join(cells) + f" | {slope} | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
