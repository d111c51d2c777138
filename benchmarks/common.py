"""What the benchmark driver and its phases share: corpus fingerprints, cache keys, child runs.

Every measured phase runs in a child process of its own (`python -m benchmarks.phases NAME`),
so that its peak memory (`os.wait4`'s `ru_maxrss` of that one child) and its imports are its
own, not left over from an earlier phase.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUR_PREFIXES = ("NEWSBOT_", "TELEGRAM_")
# The code that decides what a cached index holds: the chunks (articles, chunking), the
# settings' defaults and the int8 recipe of the default model. The embedding runtime is not in
# the key: ONNX and torch give the same vectors (checked at export, cosine >= 0.9999).
INDEX_CODE = ("index/articles.py", "index/chunking.py", "index/settings.py", "index/quantize.py")


def file_digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def corpus_fingerprint(corpus: Path) -> str:
    """A digest of every article's path and bytes: equal only for the same corpus."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(corpus.rglob("*.txt")):
        digest.update(path.relative_to(corpus).as_posix().encode() + b"\0")
        digest.update(file_digest(path).encode() + b"\n")
    return digest.hexdigest()


def cache_key(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


def code_version(files: tuple[str, ...] = INDEX_CODE) -> str:
    return cache_key(*(file_digest(REPO / f) for f in files))


def child_env(**newsbot: str | os.PathLike) -> dict[str, str]:
    """The environment of a child: none of the user's NEWSBOT_/TELEGRAM_ variables, ours set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update({f"NEWSBOT_{k.upper()}": str(v) for k, v in newsbot.items()})
    return env


@dataclass
class ChildRun:
    returncode: int
    seconds: float  # wall time from spawn to exit
    peak_mb: float  # peak resident memory of that child alone
    stdout: str
    stderr: str

    def json(self) -> dict:
        """The last line of stdout that is a JSON object."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError(f"no JSON in the output:\n{self.stdout[-2000:]}\n{self.stderr[-2000:]}")


def run_child(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float | None = None
) -> ChildRun:
    """Run a process; wall time, and its own peak RSS from `wait4` (not other children's).

    A forked child starts with its parent's resident pages counted in its peak, so the caller
    must be a small process (the benchmark's driver imports nothing heavy) for the figure to
    be the child's own.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / ".child.out", cwd / ".child.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    # ru_maxrss is in kilobytes on Linux.
    return ChildRun(process.returncode, seconds, usage.ru_maxrss / 1024, stdout, stderr)


def run_phase(name: str, params: dict, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run `benchmarks.phases NAME` in a child; its JSON result plus wall time and peak memory."""
    argv = [sys.executable, "-m", "benchmarks.phases", name, json.dumps(params)]
    run = run_child(argv, env or child_env(), cwd)
    if run.returncode != 0:
        raise RuntimeError(f"phase {name} failed ({run.returncode}):\n{run.stderr[-4000:]}")
    result = run.json()
    result.setdefault("wall_seconds", round(run.seconds, 3))
    result["peak_mb"] = round(run.peak_mb, 1)
    return result


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-int(share * 1000) * len(ordered) // 1000))  # ceil(share * n)
    return ordered[min(rank, len(ordered)) - 1]
