"""The benchmark's results as Markdown tables (printed as they are: they read fine in a terminal)
and the targets (indexing: issue 6; answering and quality: issue 9), each met or not."""

from __future__ import annotations

QUALITY_COLUMNS = (
    ("items", "items"),
    ("hit@1", "hit@1"),
    ("hit@5", "hit@5"),
    ("mrr@10", "MRR@10"),
    ("answer_accuracy", "answer acc"),
    ("direct_accuracy", "direct acc"),
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
        "warm full answer median <= 300 ms (reading stage on)",
        _fmt(warm.get("median_ms"), "{:.0f} ms"),
        _le(warm.get("median_ms"), 300),
    )
    add(
        "warm full answer p95 <= 800 ms",
        _fmt(warm.get("p95_ms"), "{:.0f} ms"),
        _le(warm.get("p95_ms"), 800),
    )
    cold = ans.get("cold", {})
    add(
        "cold `newsbot ask` median of 5 <= 3 s",
        _fmt(cold.get("median_seconds"), "{:.2f} s"),
        _le(cold.get("median_seconds"), 3),
    )
    add(
        "serving process peak memory <= 800 MB",
        _fmt(warm.get("peak_mb"), "{:.0f} MB"),
        _le(warm.get("peak_mb"), 800),
    )
    quality = results.get("quality", {})
    dev = quality.get("newsbot", {}).get("table", {})
    near = quality.get("nearmiss", {}).get("table", {}).get("nearmiss", {})
    for name, figure, bound, above in (
        ("nearmiss refusal accuracy >= 0.80", near.get("refusal_accuracy"), 0.80, True),
        ("nearmiss false refusals <= 0.10", near.get("false_refusal_rate"), 0.10, False),
        ("nearmiss answer accuracy >= 0.85", near.get("answer_accuracy"), 0.85, True),
        ("rtqa hit@1 >= 0.88", dev.get("rtqa", {}).get("hit@1"), 0.88, True),
        ("rtqa answer accuracy >= 0.88", dev.get("rtqa", {}).get("answer_accuracy"), 0.88, True),
        ("polnear hit@1 >= 0.96", dev.get("polnear", {}).get("hit@1"), 0.96, True),
        (
            "polnear answer accuracy >= 0.92",
            dev.get("polnear", {}).get("answer_accuracy"),
            0.92,
            True,
        ),
        ("off-corpus refusal >= 0.95", dev.get("off", {}).get("refusal_accuracy"), 0.95, True),
        (
            "false refusals, all dev answerable <= 0.05",
            dev.get("all", {}).get("false_refusal_rate"),
            0.05,
            False,
        ),
    ):
        add(name, _fmt(figure, "{:.3f}"), _ge(figure, bound) if above else _le(figure, bound))
    return out


def _fmt(value, pattern: str) -> str | None:
    return None if value is None else pattern.format(value)


def _ge(value, bound):
    return None if value is None else value >= bound


def _lt(value, bound):
    return None if value is None else value < bound


def _le(value, bound):
    return None if value is None else value <= bound


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
        if ix["newsbot"].get("store_mb") is not None:
            parts.append(
                f"The store newsbot built takes {ix['newsbot']['store_mb']:,.1f} MB on disk."
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
                    ["serving process RSS once ready", _fmt(warm.get("ready_rss_mb"), "{:.0f} MB")],
                    [
                        "serving process ready (models, BM25)",
                        _fmt(warm.get("ready_seconds"), "{:.2f} s"),
                    ],
                    ["`newsbot ask` peak memory", _fmt(cold.get("peak_mb"), "{:.0f} MB")],
                    [
                        "answers with a direct answer / refused",
                        f"{warm.get('direct')} / {warm.get('refused')} of {warm.get('questions')}",
                    ],
                ],
            )
        )
        stages = warm.get("stages")
        if stages:
            parts.append("Each stage of a warm answer (medians, and share of all answering time):")
            parts.append(
                table(
                    ["stage", "median ms", "share"],
                    [[name, v["median_ms"], v["share"]] for name, v in stages.items()],
                )
            )
        reading = ans.get("reading")
        if reading:
            parts.append(
                f"The reranker on and off, the same {reading['questions']} questions in turns "
                f"in one process: median {reading['on']['median_ms']:.0f} ms against "
                f"{reading['off']['median_ms']:.0f} ms (p95 {reading['on']['p95_ms']:.0f} "
                f"against {reading['off']['p95_ms']:.0f} ms): **{reading['ratio']:.2f}x**."
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
        near = quality.get("nearmiss", {}).get("table", {})
        if near:
            parts.append("### Quality on `nearmiss` with the `nearmiss-dev` questions (newsbot)")
            parts.append(
                table(
                    ["set"] + [h for _, h in QUALITY_COLUMNS],
                    [[name] + [m.get(c) for c, _ in QUALITY_COLUMNS] for name, m in near.items()],
                )
            )
        speakers = quality.get("speakers")
        if speakers:
            parts.append(
                "### Who speaks: patterns against the parse (polnear dev, same candidates)"
            )
            parts.append(
                table(
                    ["method", "questions", "annotated sentence first", "in top 3", "ms/question"],
                    [
                        [name, v["questions"], v["first"], v["top3"], v["ms_per_question"]]
                        for name, v in speakers.items()
                        if isinstance(v, dict)  # not the phase's own wall time and memory
                    ],
                )
            )
    parts.append("### Targets")
    parts.append(
        table(
            ["target", "figure", "met"],
            [[t["target"], t["figure"], t["met"]] for t in targets(results)],
        )
    )
    return "\n\n".join(parts) + "\n"
