"""`python -m benchmarks --data ../shared/eval-data`: newsbot's speed, memory and answer quality,
side by side with the LlamaIndex starter pipeline and BM25 alone, in one run.

1. Indexing the `bbc` corpus (`--scale`: `all`): `newsbot index` from scratch; the LlamaIndex
   starter (SimpleDirectoryReader -> VectorStoreIndex, default splitter, Chroma); and raw
   `SentenceTransformer.encode` over the very texts newsbot embeds, same batch size: the ceiling.
2. Incremental `newsbot index` on that index: no changes; 10 articles added; the 10 removed.
3. Answering over that index: warm full answers (median, p95) in one serving process, its peak
   memory, and cold `newsbot ask` from process start to printed answer (median of 5).
4. Quality on the `eval` corpus with the `dev` questions, graded by `bot.cli.evaluate.grade` (the
   figures `newsbot eval` prints): newsbot, the starter's retriever (top 10), BM25 alone.

Corpora and questions are made with the evaluation's `prepare.py` on every run. The `eval`
indexes are cached under `<out>/cache/`, keyed by the corpus's bytes, the model and the code that
decides the chunks (or llama-index's version), and reused when nothing changed: the output says
so. Everything is written to `<out>/` (default `benchmarks/results/`, git-ignored): the JSON of
this run, and `latest.md` with the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    REPO,
    cache_key,
    child_env,
    code_version,
    corpus_fingerprint,
    run_child,
    run_phase,
)
from benchmarks.report import markdown, targets
from index.lexical import cache_path

_SCRIPT = Path(sys.executable).with_name("newsbot")
NEWSBOT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli.main"]
ADDED_FOLDER = "zz-benchmark-added"
# The models of the cached `eval` indexes: newsbot's default (children get no NEWSBOT_ settings
# of the user's) and the starter's fp32 HuggingFaceEmbedding.
NEWSBOT_MODEL_ID = "all-MiniLM-L6-v2 int8 (bundled)"
STARTER_MODEL_ID = "all-MiniLM-L6-v2 (bundled)"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data = Path(args.data).resolve()
    prepare = Path(args.prepare).resolve() if args.prepare else data.parent / "eval" / "prepare.py"
    if not prepare.is_file():
        print(f"benchmarks: no prepare.py at {prepare} (use --prepare)", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    work = out / "work"
    out.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(args, data, prepare, out, work)
    results = bench.run()
    text = markdown(results)
    print(text)
    stamp = results["machine"]["started"].replace(":", "").replace("-", "")
    (out / f"benchmark-{stamp}.json").write_text(json.dumps(results, indent=2))
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    (out / "latest.md").write_text(header(results) + "\n" + text)
    say(f"written {out / 'latest.md'} and {out / 'latest.json'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", required=True, help="the eval-data folder (../shared/eval-data)")
    parser.add_argument("--prepare", help="prepare.py (default: DATA/../eval/prepare.py)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--scale", action="store_true", help="index `all` (~7,000) instead of bbc")
    parser.add_argument("--questions", type=int, default=200, help="warm answers to time")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--embed-runtime", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to leave out: indexing, starter, ceiling, answering, quality",
    )
    parser.add_argument("--limit", type=int, help="only the first N articles of each corpus")
    return parser


def folder_bytes(folder: Path) -> int:
    """Bytes on disk of every file under `folder` (what `du` counts, hard links once)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def header(results: dict) -> str:
    m = results["machine"]
    return (
        f"Benchmark of {m['started'][:10]} ({m['seconds'] / 60:.0f} min): {m['cpus']} CPUs "
        f"({m['cpu_model']}), {m['memory_gb']:.0f} GB, Python {m['python']}, load average "
        f"{m['load_start']:.1f} at the start and {m['load_end']:.1f} at the end.\n\n"
        f"Command: `{m['command']}`\n"
    )


class Benchmark:
    def __init__(self, args, data: Path, prepare: Path, out: Path, work: Path):
        self.args, self.data, self.prepare, self.out, self.work = args, data, prepare, out, work
        self.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
        self.runtime = args.embed_runtime

    # -- corpora ----------------------------------------------------------------------------
    def corpus(self, name: str) -> Path:
        """`prepare.py corpus NAME`; an existing copy with the same bytes is kept as it is."""
        target = self.out / "corpora" / name
        fresh = self.out / "corpora" / f"{name}.new"
        shutil.rmtree(fresh, ignore_errors=True)
        self._prepare("corpus", name, fresh)
        if self.args.limit:
            _keep_first(fresh, self.args.limit)
        if target.is_dir() and corpus_fingerprint(target) == corpus_fingerprint(fresh):
            shutil.rmtree(fresh)
        else:
            shutil.rmtree(target, ignore_errors=True)
            fresh.rename(target)
        return target

    def questions(self, name: str) -> Path:
        target = self.out / "corpora" / f"{name}.jsonl"
        target.unlink(missing_ok=True)
        self._prepare("questions", name, target)
        return target

    def _prepare(self, kind: str, name: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(self.prepare), "--data", str(self.data), kind, name, str(target)],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    # -- newsbot as a user runs it ----------------------------------------------------------
    def env(self, corpus: Path, store: Path) -> dict[str, str]:
        return child_env(corpus_dir=corpus, store_dir=store, embed_runtime=self.runtime)

    def newsbot(self, *args: str, corpus: Path, store: Path):
        run = run_child([*NEWSBOT, *args], self.env(corpus, store), self.work)
        if run.returncode != 0:
            raise RuntimeError(f"newsbot {' '.join(args)} failed:\n{run.stderr[-4000:]}")
        return run

    def index(self, corpus: Path, store: Path) -> dict:
        run = self.newsbot("index", "--json", corpus=corpus, store=store)
        report = run.json()
        return {
            "articles": report["articles"],
            "chunks": report["chunks"],
            "chunks_written": report["chunks_written"],
            "added": len(report["added"]),
            "removed": len(report["removed"]),
            "seconds": round(run.seconds, 3),
            "peak_mb": round(run.peak_mb, 1),
            "report_seconds": report["seconds"],
        }

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.time()
        results: dict = {"machine": machine(started), "settings": {"embed_runtime": self.runtime}}
        name = "all" if self.args.scale else "bbc"
        say(f"preparing the {name} corpus")
        corpus = self.corpus(name)
        store = self.work / f"newsbot-{name}"
        if "indexing" not in self.skip:
            results["indexing"] = self.indexing(name, corpus, store)
            self.save(results, started)
            results["incremental"] = self.incremental(corpus, store)
            self.save(results, started)
        if "answering" not in self.skip:
            if not (store / "chroma").is_dir():
                self.index(corpus, store)
            results["answering"] = self.answering(corpus, store)
            self.save(results, started)
        if "quality" not in self.skip:
            results["quality"] = self.quality()
        self.save(results, started)
        return results

    def save(self, results: dict, started: float) -> None:
        """Write what has been measured so far (a long run that is stopped keeps its figures)."""
        results["targets"] = targets(results)
        results["machine"].update(
            seconds=round(time.time() - started, 1), load_end=os.getloadavg()[0]
        )
        (self.out / "latest.json").write_text(json.dumps(results, indent=2))
        (self.out / "latest.md").write_text(header(results) + "\n" + markdown(results))

    def indexing(self, name: str, corpus: Path, store: Path) -> dict:
        say("loading newsbot's embedder (the first time: export to ONNX)")
        model = run_phase("model", {"runtime": self.runtime}, self.work)
        shutil.rmtree(store, ignore_errors=True)
        say(f"newsbot index: {name} from scratch")
        newsbot = self.index(corpus, store)
        newsbot["store_mb"] = round(folder_bytes(store) / 2**20, 1)
        result = {
            "corpus": name,
            "runtime": model["runtime"],
            "model_seconds": model["wall_seconds"],
            "model_note": "includes the one-time ONNX export"
            if model["seconds"] > 20
            else "ONNX file already exported",
            "newsbot": newsbot,
        }
        if "ceiling" not in self.skip:
            say("raw SentenceTransformer.encode over the same texts")
            ceiling = run_phase(
                "ceiling", {"corpus": str(corpus), "runtime": self.runtime}, self.work
            )
            result["ceiling"] = ceiling
            newsbot["tokens"] = ceiling["tokens"]
            if ceiling["chunks"] != newsbot["chunks"]:
                say(f"warning: ceiling has {ceiling['chunks']} chunks, newsbot {newsbot['chunks']}")
            result["ceiling_ratio"] = round(
                (newsbot["chunks"] / newsbot["seconds"]) / (ceiling["chunks"] / ceiling["seconds"]),
                3,
            )
            result["embedder_ratio"] = round(ceiling["seconds"] / ceiling["embedder_seconds"], 3)
        else:
            newsbot.update(run_phase("newsbot_tokens", {"corpus": str(corpus)}, self.work))
        if "starter" not in self.skip:
            say(f"LlamaIndex starter: {name}")
            persist = self.work / f"starter-{name}"
            shutil.rmtree(persist, ignore_errors=True)
            starter = run_phase(
                "starter_build", {"corpus": str(corpus), "persist": str(persist)}, self.work
            )
            # Whole process, like newsbot's figure; the in-process build time is kept too.
            starter["build_seconds"], starter["seconds"] = (
                starter["seconds"],
                starter.pop("wall_seconds"),
            )
            result["starter"] = starter
        return result

    def incremental(self, corpus: Path, store: Path) -> dict:
        say("incremental: no changes")
        before = self.index(corpus, store)
        result = {"no_change": before | {"articles": before["added"] + before["removed"]}}
        added_dir = corpus / ADDED_FOLDER
        shutil.rmtree(added_dir, ignore_errors=True)
        files = sorted(corpus.rglob("*.txt"))
        step = max(1, len(files) // 10)
        sources = files[step // 2 :: step][:10]
        added_dir.mkdir()
        for i, path in enumerate(sources):
            text = path.read_text(encoding="utf-8", errors="replace").rstrip("\n")
            (added_dir / f"{i:03d}.txt").write_text(
                f"{text}\nA benchmark copy, number {i}.\n", encoding="utf-8"
            )
        say("incremental: 10 articles added")
        added = self.index(corpus, store)
        added["articles"] = added["added"]
        added["only_theirs"] = (
            added["added"] == len(sources)
            and added["chunks_written"] == added["chunks"] - before["chunks"]
        )
        result["add"] = added
        shutil.rmtree(added_dir)
        say("incremental: the 10 removed")
        removed = self.index(corpus, store)
        removed["articles"] = removed["removed"]
        removed["clean"] = removed["chunks"] == before["chunks"]
        result["remove"] = removed
        return result

    def answering(self, corpus: Path, store: Path) -> dict:
        questions = latency_questions(corpus, self.args.questions + self.args.cold_runs)
        warm_questions = questions[: self.args.questions]
        say(f"warm answers: {len(warm_questions)} questions")
        warm = run_phase(
            "answer_latency",
            {"corpus": str(corpus), "store": str(store), "questions": warm_questions},
            self.work,
            self.env(corpus, store),
        )
        say("reading stage on and off, in turns")
        on_off = run_phase(
            "reading_on_off",
            {"corpus": str(corpus), "store": str(store), "questions": warm_questions},
            self.work,
            self.env(corpus, store),
        )
        say("cold newsbot ask")
        runs, peaks = [], []
        for question in questions[self.args.questions :]:
            run = self.newsbot("ask", question, corpus=corpus, store=store)
            runs.append(round(run.seconds, 3))
            peaks.append(run.peak_mb)
        import statistics

        cold = {
            "runs": runs,
            "median_seconds": round(statistics.median(runs), 3) if runs else None,
            "peak_mb": round(max(peaks), 1) if peaks else None,
            "questions": questions[self.args.questions :],
        }
        return {"warm": warm, "cold": cold, "reading": on_off}

    def quality(self) -> dict:
        say("preparing the eval corpus and the dev questions")
        corpus = self.corpus("eval")
        questions = self.questions("dev")
        fingerprint = corpus_fingerprint(corpus)
        notes = []

        common = {"corpus": str(corpus), "questions": str(questions), "prepare": str(self.prepare)}
        say("quality: BM25 alone")
        bm25 = run_phase("quality_bm25", common, self.work)

        key = cache_key(fingerprint, NEWSBOT_MODEL_ID, code_version())
        newsbot_dir = self.out / "cache" / f"newsbot-eval-{key}"
        store = newsbot_dir / "store"
        existed = (store / "manifest.sqlite3").exists()
        _wait_for_lock(store)
        # The saved BM25 state is made again by the current code (index.lexical may have changed).
        cache_path(store).unlink(missing_ok=True)
        say(f"newsbot index of eval ({'cached' if existed else 'new'}: {newsbot_dir.name})")
        build = self.index(corpus, store)
        reused = existed and build["chunks_written"] == 0
        notes.append(f"newsbot index {'reused' if reused else 'built'}")

        say("quality: newsbot")
        result = {
            "newsbot": run_phase(
                "quality_newsbot",
                common | {"store": str(store)},
                self.work,
                self.env(corpus, store),
            )
            | {"index": build, "index_reused": reused}
        }
        result["bm25"] = bm25

        say("who speaks: patterns against the parse, on polnear")
        result["speakers"] = run_phase(
            "speakers", common | {"store": str(store)}, self.work, self.env(corpus, store)
        )

        say("preparing the nearmiss corpus and its dev questions")
        near = self.corpus("nearmiss")
        near_questions = self.questions("nearmiss-dev")
        near_key = cache_key(corpus_fingerprint(near), NEWSBOT_MODEL_ID, code_version())
        near_store = self.out / "cache" / f"newsbot-nearmiss-{near_key}" / "store"
        near_existed = (near_store / "manifest.sqlite3").exists()
        _wait_for_lock(near_store)
        cache_path(near_store).unlink(missing_ok=True)
        near_build = self.index(near, near_store)
        notes.append(
            "nearmiss index "
            + ("reused" if near_existed and near_build["chunks_written"] == 0 else "built")
        )
        say("quality: newsbot on nearmiss")
        result["nearmiss"] = run_phase(
            "quality_newsbot",
            {
                "corpus": str(near),
                "questions": str(near_questions),
                "prepare": str(self.prepare),
                "store": str(near_store),
            },
            self.work,
            self.env(near, near_store),
        )

        if "starter" not in self.skip:
            # Its version from the metadata: importing it would swell this small driver, whose
            # size a forked child's peak memory starts from.
            from importlib.metadata import version

            key = cache_key(fingerprint, STARTER_MODEL_ID, version("llama-index-core"), "starter-1")
            starter_dir = self.out / "cache" / f"starter-eval-{key}"
            done = starter_dir / "done.json"
            if done.is_file():
                build = json.loads(done.read_text())
                notes.append("LlamaIndex starter index reused")
            else:
                say(f"LlamaIndex starter index of eval ({starter_dir.name})")
                shutil.rmtree(starter_dir, ignore_errors=True)
                build = run_phase(
                    "starter_build",
                    {"corpus": str(corpus), "persist": str(starter_dir / "chroma")},
                    self.work,
                )
                done.write_text(json.dumps(build))
                notes.append("LlamaIndex starter index built")
            say("quality: LlamaIndex starter")
            result["starter"] = run_phase(
                "quality_starter",
                common | {"persist": str(starter_dir / "chroma")},
                self.work,
            ) | {"index": build}
        result["note"] = "; ".join(notes)
        return result


def _wait_for_lock(store: Path, timeout: float = 6 * 3600) -> None:
    """An indexer may still be filling the cached index (a run started by hand): wait for it."""
    import fcntl

    lock = store / "index.lock"
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout
    with open(lock, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                say("waiting for another indexer on the cached eval index")
                time.sleep(60)


def _keep_first(corpus: Path, limit: int) -> None:
    for path in sorted(corpus.rglob("*.txt"))[limit:]:
        path.unlink()


SAID = re.compile(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)?),? (?:said|says|told)\b")
STOP = {"the", "a", "an", "of", "to", "in", "on", "for", "and", "as", "at", "by", "with", "is"}


def latency_questions(corpus: Path, count: int) -> list[str]:
    """Questions about the corpus's own articles, alternating two kinds a user asks: about a
    headline's subject, and "what did X say about Y?" with X someone quoted in the article."""
    from index.articles import ArticleFileError, list_article_files, load_article

    files = list_article_files(corpus)
    step = max(1, len(files) // max(count, 1))
    questions: list[str] = []
    for i, path in enumerate(files[::step]):
        if len(questions) >= count:
            break
        try:
            article = load_article(corpus, path)
        except ArticleFileError:
            continue
        title = article.title or article.body.split(".")[0][:80]
        topic = [w for w in re.findall(r"[A-Za-z][\w'-]+", title) if w.lower() not in STOP]
        speaker = SAID.search(article.body)
        if i % 2 and speaker and topic:
            subject = " ".join(sorted(topic, key=len, reverse=True)[:2])
            questions.append(f"What did {speaker.group(1)} say about {subject}?")
        else:
            questions.append(f"What is the news about {title.rstrip('?.!')}?")
    return questions


def machine(started: float) -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    versions = {}
    for package in ("torch", "onnxruntime", "sentence_transformers", "chromadb"):
        try:
            from importlib.metadata import version

            versions[package] = version(package.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a missing package is just not reported
            pass
    return {
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": mem_kb / 1024 / 1024,
        "python": platform.python_version(),
        "versions": versions,
        "load_start": os.getloadavg()[0],
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
    }


if __name__ == "__main__":
    sys.exit(main())
