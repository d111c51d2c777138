"""`python -m benchmarks.cold_start`: a cold `newsbot ask` with and without its forked retrieval
child (`bot.cli.prefetch`), interleaved in one run so that machine load falls on both.

    python -m benchmarks.cold_start --corpus DIR --store DIR [--runs 7] [--question Q]

Each run is a fresh process from start to printed answer over an index `newsbot index` built
before; "without" is the same command with `bot.cli.prefetch.prefetch` patched to return None, so
everything is retrieved in the one process, as before the child existed. Printed: each side's
runs, medians and ranges, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUESTION = "What did the Bank of England say about interest rates?"
WITHOUT_CHILD = (
    "import sys, bot.cli.prefetch as p\n"
    "p.prefetch = lambda *args: None\n"
    "from bot.cli.main import main\n"
    "sys.exit(main(['ask', sys.argv[1]]))\n"
)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.strip()[-500:]}")
    return seconds


def run(corpus: Path, store: Path, runs: int, question: str) -> dict[str, list[float]]:
    env = {**os.environ, "NEWSBOT_CORPUS_DIR": str(corpus), "NEWSBOT_STORE_DIR": str(store)}
    newsbot = str(Path(sys.executable).with_name("newsbot"))
    commands = {
        "with the child": [newsbot, "ask", question],
        "without": [sys.executable, "-c", WITHOUT_CHILD, question],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            seconds[name].append(timed(command, env))
    return seconds


def report(seconds: dict[str, list[float]]) -> str:
    lines = ["| run | median s | range s | each s |", "|---|---|---|---|"]
    for name, values in seconds.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | "
            f"{min(values):.2f}–{max(values):.2f} | {each} |"
        )
    with_child, without = (statistics.median(v) for v in seconds.values())
    lines.append(f"\nRatio of the medians, with the child over without: {with_child / without:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True, help="an index of --corpus")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    seconds = run(args.corpus, args.store, args.runs, args.question)
    print(
        f"cold `newsbot ask`, {args.runs} runs each, interleaved; load average {load:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end\n"
    )
    print(report(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
