"""The benchmark's results as Markdown tables (printed as they are: they read fine in a terminal)
and the targets of issue 6, each met or not."""

from __future__ import annotations

QUALITY_COLUMNS = (
    ("items", "items"),
    ("hit@1", "hit@1"),
    ("hit@5", "hit@5"),
    ("mrr@10", "MRR@10"),
    ("answer_accuracy", "answer acc"),
    ("refusal_accuracy", "refusal acc"),
    ("false_refusal_rate", "false refusals"),
    ("median_seconds", "median s/question"),
)
CONTENDERS = (("newsbot", "newsbot"), ("starter", "LlamaIndex starter"), ("bm25", "BM25 alone"))


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rate(count: float | None, seconds: float | None) -> float | None:
    return count / seconds if count and seconds else None


def targets(results: dict) -> list[dict]:
    """Each target of the issue: its figure and whether it is met (None: not measured)."""
    ix, inc = results.get("indexing", {}), results.get("incremental", {})
    ans = results.get("answering", {})
    newsbot, starter = ix.get("newsbot", {}), ix.get("starter", {})
    out = []

    def add(name, figure, met):
        out.append({"target": name, "figure": figure, "met": met})

    ratio = ix.get("ceiling_ratio")
    add("indexing rate >= 0.85 of raw encode", _fmt(ratio, "{:.2f}"), _ge(ratio, 0.85))
    ours = rate(newsbot.get("tokens"), newsbot.get("seconds"))
    theirs = rate(starter.get("tokens"), starter.get("seconds"))
    add(
        "index time per chunk token <= LlamaIndex starter's",
        None if not (ours and theirs) else f"{ours:,.0f} vs {theirs:,.0f} tokens/s",
        None if not (ours and theirs) else ours >= theirs,
    )
    nochange = inc.get("no_change", {})
    add(
        "no-change run < 5 s, nothing embedded",
        None
        if not nochange
        else f"{nochange['seconds']:.2f} s, {nochange['chunks_written']} chunks embedded",
        None if not nochange else nochange["seconds"] < 5 and nochange["chunks_written"] == 0,
    )
    added = inc.get("add", {})
    add(
        "adding 10 articles embeds only their chunks",
        None if not added else f"{added['chunks_written']} chunks for {added['articles']} added",
        None if not added else added.get("only_theirs"),
    )
    removed = inc.get("remove", {})
    add(
        "removing 10 articles embeds nothing",
        None if not removed else f"{removed['chunks_written']} chunks, {removed['articles']} gone",
        None if not removed else removed.get("chunks_written") == 0 and removed.get("clean"),
    )
    warm = ans.get("warm", {})
    add(
        "warm answer median < 150 ms",
        _fmt(warm.get("median_ms"), "{:.0f} ms"),
        _lt(warm.get("median_ms"), 150),
    )
    add(
        "warm answer p95 < 400 ms",
        _fmt(warm.get("p95_ms"), "{:.0f} ms"),
        _lt(warm.get("p95_ms"), 400),
    )
    cold = ans.get("cold", {})
    add(
        "cold `newsbot ask` median of 5 < 4 s",
        _fmt(cold.get("median_seconds"), "{:.2f} s"),
        _lt(cold.get("median_seconds"), 4),
    )
    add(
        "serving process peak memory < 1.5 GB",
        _fmt(warm.get("peak_mb"), "{:.0f} MB"),
        _lt(warm.get("peak_mb"), 1536),
    )
    return out


def _fmt(value, pattern: str) -> str | None:
    return None if value is None else pattern.format(value)


def _ge(value, bound):
    return None if value is None else value >= bound


def _lt(value, bound):
    return None if value is None else value < bound


def markdown(results: dict) -> str:
    parts = []
    ix = results.get("indexing")
    if ix:
        corpus = ix["corpus"]
        rows = []
        for key, label in (
            ("newsbot", "newsbot (`newsbot index`, whole process)"),
            ("starter", "LlamaIndex starter (whole process)"),
            ("ceiling", "raw `SentenceTransformer.encode` (encode call only)"),
        ):
            r = ix.get(key)
            if not r:
                continue
            rows.append(
                [
                    label,
                    r.get("articles"),
                    r.get("chunks"),
                    r.get("tokens"),
                    r.get("seconds"),
                    rate(r.get("chunks"), r.get("seconds")),
                    rate(r.get("tokens"), r.get("seconds")),
                    r.get("peak_mb"),
                ]
            )
        parts.append(f"### Indexing `{corpus}` (newsbot's embedder: {ix.get('runtime', '?')})")
        parts.append(
            table(
                [
                    "",
                    "articles",
                    "chunks",
                    "tokens embedded",
                    "wall s",
                    "chunks/s",
                    "tokens/s",
                    "peak MB",
                ],
                rows,
            )
        )
        ratio = ix.get("ceiling_ratio")
        if ratio is not None:
            parts.append(
                f"newsbot's indexing rate is **{ratio:.2f}** of the raw encode ceiling "
                f"(chunks/s of the whole `newsbot index` run over chunks/s of the encode call "
                f"alone, batch size {ix['ceiling'].get('batch_size')})."
            )
        if ix.get("embedder_ratio") is not None:
            c = ix["ceiling"]
            parts.append(
                f"Measured in turns with the raw encode, in the same process over the same texts, "
                f"newsbot's embedder ({c['embedder_runtime']}) took {c['embedder_seconds']:.1f} s "
                f"against {c['seconds']:.1f} s: **{ix['embedder_ratio']:.2f}** of the ceiling's "
                f"rate."
            )
        if ix.get("model_seconds") is not None:
            parts.append(
                f"Loading newsbot's embedder before that took {ix['model_seconds']:.1f} s "
                f"({ix.get('model_note', '')})."
            )
    inc = results.get("incremental")
    if inc:
        rows = [
            [label, r.get("seconds"), r.get("articles"), r.get("chunks_written"), r.get("peak_mb")]
            for key, label in (
                ("no_change", "no changes"),
                ("add", "10 articles added"),
                ("remove", "10 articles removed"),
            )
            if (r := inc.get(key))
        ]
        parts.append("### Incremental `newsbot index` on that index")
        parts.append(
            table(["run", "wall s", "articles changed", "chunks embedded", "peak MB"], rows)
        )
    ans = results.get("answering")
    if ans:
        warm, cold = ans.get("warm", {}), ans.get("cold", {})
        parts.append("### Answering over that index")
        parts.append(
            table(
                ["", "figure"],
                [
                    [
                        f"warm full answer, median of {warm.get('questions')}",
                        _fmt(warm.get("median_ms"), "{:.0f} ms"),
                    ],
                    ["warm full answer, 95th percentile", _fmt(warm.get("p95_ms"), "{:.0f} ms")],
                    ["warm full answer, slowest", _fmt(warm.get("max_ms"), "{:.0f} ms")],
                    [
                        f"cold `newsbot ask`, median of {len(cold.get('runs', []))}",
                        _fmt(cold.get("median_seconds"), "{:.2f} s"),
                    ],
                    [
                        "cold `newsbot ask`, each run",
                        ", ".join(f"{s:.2f}" for s in cold.get("runs", [])) + " s",
                    ],
                    ["serving process peak memory", _fmt(warm.get("peak_mb"), "{:.0f} MB")],
                    ["`newsbot ask` peak memory", _fmt(cold.get("peak_mb"), "{:.0f} MB")],
                ],
            )
        )
    quality = results.get("quality")
    if quality:
        parts.append(f"### Quality on `eval` with the `dev` questions ({quality.get('note', '')})")
        rows = []
        sets = list(quality.get("newsbot", {}).get("table", {}))
        for name in sets:
            for key, label in CONTENDERS:
                metrics = quality.get(key, {}).get("table", {}).get(name)
                if metrics is None:
                    continue
                rows.append([name, label] + [metrics.get(c) for c, _ in QUALITY_COLUMNS])
        parts.append(table(["set", "contender"] + [h for _, h in QUALITY_COLUMNS], rows))
        parts.append(
            "The LlamaIndex starter and BM25 have no answer text: their top chunk stands in for "
            "one (first 800 characters, as graded), and they never refuse."
        )
    parts.append("### Targets")
    parts.append(
        table(
            ["target", "figure", "met"],
            [[t["target"], t["figure"], t["met"]] for t in targets(results)],
        )
    )
    return "\n\n".join(parts) + "\n"
