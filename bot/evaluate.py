"""`newsbot eval QUESTIONS.jsonl`: answer a question set and grade it.

The format and the metrics are those of the evaluation README that comes with the question
sets (`eval/README.md` of the shared evaluation data):

- file hit@1, hit@5, MRR@10 over the ranked, de-duplicated list of cited then retrieved files,
  for items with `expected_files`;
- answer accuracy: the normalized answer contains a normalized expected answer within its
  first 800 characters, over items with `expected_answers`;
- refusal accuracy over `expect_refusal` items; false-refusal rate over the answerable ones;
- median seconds per answer (warm: the model is loaded before the clock starts).

Items are grouped into sets by their id prefix (`rtqa-`, `polnear-`, `seeds-`, `off-`), and an
item's `date` is the day the question is asked. `normalize` is imported from the README's
`prepare.py` when it can be found (`--prepare`, or `../shared/eval/prepare.py`); otherwise the
same documented steps are applied here.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import statistics
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from index.articles import read_source_text
from index.errors import NewsbotError

ANSWER_WINDOW = 800
QUOTES = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "`": "'",
        "´": "'",
    }
)


def _builtin_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(QUOTES)
    return " ".join(text.split())


def load_normalize(prepare_path: str | None = None) -> Callable[[str], str]:
    candidates = (
        [Path(prepare_path)]
        if prepare_path
        else [
            Path.cwd().parent / "shared" / "eval" / "prepare.py",
            Path(__file__).resolve().parents[2] / "shared" / "eval" / "prepare.py",
        ]
    )
    for path in candidates:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("newsbot_eval_prepare", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.normalize
    return _builtin_normalize


def load_questions(path: str) -> list[dict]:
    items = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise NewsbotError(f"Cannot read the question set {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise NewsbotError(f"{path}, line {number}: not a JSON object") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise NewsbotError(f'{path}, line {number}: needs a "question" string')
        item.setdefault("id", f"q{number}")
        items.append(item)
    return items


def set_name(item_id: str) -> str:
    return item_id.split("-")[0]


def grade(items: list[dict], rows: list[dict], normalize: Callable[[str], str]) -> dict:
    """Metrics for one set of items and their result rows (same order)."""
    hit1 = hit5 = rr = 0.0
    with_files = answerable = correct = refusals_expected = refused_right = 0
    false_refusals = 0
    for item, row in zip(items, rows, strict=True):
        ranking = list(dict.fromkeys(row["cited"] + row["retrieved"]))
        expected_files = set(item.get("expected_files") or [])
        if expected_files:
            with_files += 1
            rank = next((i for i, f in enumerate(ranking[:10], 1) if f in expected_files), None)
            hit1 += rank == 1
            hit5 += rank is not None and rank <= 5
            rr += 1.0 / rank if rank else 0.0
        if item.get("expect_refusal"):
            refusals_expected += 1
            refused_right += row["refused"]
        else:
            false_refusals += row["refused"]
        if item.get("expected_answers"):
            answerable += 1
            shown = normalize(row["answer"])[:ANSWER_WINDOW]
            correct += any(normalize(e) in shown for e in item["expected_answers"])
    answerable_items = len(items) - refusals_expected

    def share(count, total):
        return round(count / total, 3) if total else None

    return {
        "items": len(items),
        "hit@1": share(hit1, with_files),
        "hit@5": share(hit5, with_files),
        "mrr@10": share(rr, with_files),
        "answer_accuracy": share(correct, answerable),
        "refusal_accuracy": share(refused_right, refusals_expected),
        "false_refusal_rate": share(false_refusals, answerable_items),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 4) if rows else None,
    }


def grade_sets(items: list[dict], rows: list[dict], normalize: Callable[[str], str]) -> dict:
    """Metrics per question set (by id prefix), plus "all" when there is more than one set."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(set_name(item["id"]), []).append(i)
    table = {
        name: grade([items[i] for i in idx], [rows[i] for i in idx], normalize)
        for name, idx in groups.items()
    }
    if len(groups) > 1:
        table["all"] = grade(items, rows, normalize)
    return table


def run_eval(
    settings,
    questions: str,
    out: str | None = None,
    limit: int | None = None,
    as_json: bool = False,
    prepare: str | None = None,
) -> int:
    from bot.answer import make_answerer

    items = load_questions(questions)[:limit]
    normalize = load_normalize(prepare)
    answerer = make_answerer(settings)
    answerer.warm_up()
    rows = []
    bad_quotes = total_quotes = 0
    for item in items:
        asked_on = dt.date.fromisoformat(item["date"]) if item.get("date") else None
        started = time.perf_counter()
        answer = answerer.answer(item["question"], [], asked_on=asked_on)
        seconds = time.perf_counter() - started
        total_quotes += len(answer.quotes)
        bad_quotes += sum(not quote_holds(settings.corpus_dir, q) for q in answer.quotes)
        rows.append(
            {
                "id": item["id"],
                "question": item["question"],
                "answer": answer.text,
                "cited": answer.sources,
                "retrieved": answer.retrieved,
                "refused": answer.refused,
                "seconds": round(seconds, 4),
            }
        )
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    table = grade_sets(items, rows, normalize)
    if as_json:
        print(json.dumps({"sets": table, "quotes": total_quotes, "bad_quotes": bad_quotes}))
    else:
        print(format_table(table))
        print(
            f"quotes shown: {total_quotes}; not the exact text of their file at their "
            f"offsets: {bad_quotes}"
        )
    return 0


def quote_holds(corpus_dir: Path, quote) -> bool:
    """Re-check a quote independently of the answerer: the file says exactly this, there."""
    text = read_source_text(corpus_dir, quote.source)
    return text is not None and text[quote.start : quote.end] == quote.text


def format_table(table: dict[str, dict]) -> str:
    columns = [
        "items",
        "hit@1",
        "hit@5",
        "mrr@10",
        "answer_accuracy",
        "refusal_accuracy",
        "false_refusal_rate",
        "median_seconds",
    ]
    headers = [
        "set",
        "items",
        "hit@1",
        "hit@5",
        "MRR@10",
        "answer acc",
        "refusal acc",
        "false refusals",
        "median s",
    ]
    rows = [
        [name] + ["–" if m[c] is None else str(m[c]) for c in columns] for name, m in table.items()
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
