"""`newsbot eval QUESTIONS.jsonl`: answer a question set and grade it.

The format and the metrics are those of the evaluation README that comes with the question
sets (`eval/README.md` of the shared evaluation data):

- file hit@1, hit@5, MRR@10 over the ranked, de-duplicated list of cited then retrieved files,
  for items with `expected_files`;
- answer accuracy: the normalized answer contains a normalized expected answer within its
  first 800 characters, over items with `expected_answers` (a refusal is never a correct
  answer, whatever words its explanation shares with the expected one);
- refusal accuracy over `expect_refusal` items; false-refusal rate over the answerable ones;
- direct answers: over items with `expected_answers` that were answered with a direct answer
  phrase ("Denver Broncos — 2 articles"), how many (`direct`) and the share whose first phrase
  contains a normalized expected answer (`direct acc`) -- the phrase a reader sees first, which
  answer accuracy does not isolate (the quotes under it may hold the answer anyway);
- median seconds per answer (warm: the model is loaded before the clock starts).

Items are grouped into sets by their id prefix (`rtqa-`, `polnear-`, `seeds-`, `off-`; an item
without an id is `line-N`), and an item's `date` is the day the question is asked.

A run never stops at a bad item. The whole file is checked first, and each problem is named
with its line (not JSON, a field of the wrong type -- `"expected_answers": "text"` would be
read letter by letter --, a date that is no date); such items, and questions the Answerer turns
down, are graded as errors: an `error` row, an `errors` column, exit status 1. `--out` is opened
before the models load (a missing folder fails at once) and each row is written as soon as it
is answered, so an interrupted run keeps what it did.

`normalize` is the documented one (NFKC, casefold, straight quotes, one space), or the one of
the README's `prepare.py` when its path is given with `--prepare`. No code is ever looked for
next to the working folder: running `newsbot eval` in a folder must not run what lies there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import logging
import re
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot.cli.terminal_text import decoded, json_text, one_line, printable
from index.articles import ArticleTexts
from index.errors import NewsbotError

log = logging.getLogger(__name__)

ANSWER_WINDOW = 800
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
QUOTES = str.maketrans(dict.fromkeys("“”„‟«»″〝〞", '"') | dict.fromkeys("‘’‚‛‹›′`´ʼ", "'"))


def _builtin_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(QUOTES)
    return " ".join(text.split())


def load_normalize(prepare_path: str | None = None) -> Callable[[str], str]:
    """`normalize` of the `prepare.py` at `prepare_path` when one is given, else the built-in
    one. Only an explicit path is ever executed."""
    if not prepare_path:
        return _builtin_normalize
    path = Path(prepare_path)
    if not path.is_file():
        raise NewsbotError(f"--prepare {path}: no such file; give the path of prepare.py.")
    try:
        spec = importlib.util.spec_from_file_location("newsbot_eval_prepare", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.normalize
    except Exception as exc:  # noqa: BLE001 - whatever the file does, one line says so
        raise NewsbotError(
            f"--prepare {path}: cannot take normalize from it ({type(exc).__name__}: {exc})."
        ) from None


# -- the question file ---------------------------------------------------------------------
@dataclass
class QuestionLine:
    """One item of a question file: its line, the item (always with a str `id` and
    `question`), and what is wrong with it, if anything."""

    line: int
    item: dict
    problem: str | None = None


def read_question_file(path: str) -> list[QuestionLine]:
    """Every item of a JSONL question file, each checked; raises only if the file is unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise NewsbotError(f"Cannot read the question set {path}: {exc.strerror}.") from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is not part of line 1's JSON
    entries: list[QuestionLine] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        item, problems = _parse_item(raw)
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id:
            if item_id in first_line:
                problems.append(f'"id" {item_id!r} is already on line {first_line[item_id]}')
            first_line.setdefault(item_id, number)
        else:
            item["id"] = f"line-{number}"
        if not isinstance(item.get("question"), str):
            item["question"] = ""
        entries.append(QuestionLine(number, item, "; ".join(problems) or None))
    return entries


def _parse_item(raw: bytes) -> tuple[dict, list[str]]:
    """The item on one line and its problems."""
    try:
        item = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, ["not UTF-8 text"]
    except (ValueError, RecursionError):  # bad JSON, an integer of 5,000 digits, [[[[…]]]]
        return {}, ["not a JSON object"]
    if not isinstance(item, dict):
        return {}, ["not a JSON object"]
    problems = []
    question = item.get("question")
    if not isinstance(question, str):
        problems.append('needs a "question" string')
    elif not question.strip():
        problems.append('"question" is empty')
    if "id" in item and not (isinstance(item["id"], str) and item["id"]):
        problems.append('"id" must be a non-empty string')
    date = item.get("date")
    if date is not None and not _is_date(date):
        problems.append(f'"date" must be a date as YYYY-MM-DD, not {date!r}')
    for key in ("expected_files", "expected_answers"):
        value = item.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            shown = json.dumps(value, ensure_ascii=False)
            shown = shown if len(shown) <= 40 else shown[:39] + "…"
            problems.append(f'"{key}" must be a list of strings, not {shown}')
        elif key == "expected_answers" and value and not all(v.strip() for v in value):
            problems.append('"expected_answers" holds an empty string, which any answer contains')
    if item.get("expect_refusal") not in (None, True, False):
        problems.append('"expect_refusal" must be true or false')
    return item, problems


def _is_date(value) -> bool:
    # fromisoformat alone also takes "2023-W01-1" and "20230101"
    if not (isinstance(value, str) and ISO_DATE.fullmatch(value)):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def load_questions(path: str) -> list[dict]:
    """The items of a question file that has no problems; `NewsbotError` naming the first
    problems (with their lines) otherwise."""
    entries = read_question_file(path)
    bad = [e for e in entries if e.problem]
    if bad:
        shown = "; ".join(f"line {e.line}: {e.problem}" for e in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise NewsbotError(f"{path}: {shown}{more}.")
    return [e.item for e in entries]


# -- grading -------------------------------------------------------------------------------
def set_name(item_id: str) -> str:
    return item_id.split("-")[0]


def grade(items: list[dict], rows: list[dict], normalize: Callable[[str], str]) -> dict:
    """Metrics for one set of items and their result rows (same order). Rows with an `error`
    are counted as errors and left out of every other figure."""
    hit1 = hit5 = rr = 0.0
    with_files = answerable = correct = refusals_expected = refused_right = 0
    false_refusals = errors = graded = direct = direct_right = 0
    seconds = []
    for item, row in zip(items, rows, strict=True):
        if row.get("error"):
            errors += 1
            continue
        graded += 1
        seconds.append(row["seconds"])
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
            correct += not row["refused"] and any(
                normalize(e) in shown for e in item["expected_answers"]
            )
            if row.get("direct") and not row["refused"]:
                direct += 1
                phrase = normalize(row["direct"][0])
                direct_right += any(normalize(e) in phrase for e in item["expected_answers"])
    answerable_items = graded - refusals_expected

    def share(count, total):
        return round(count / total, 3) if total else None

    return {
        "items": len(items),
        "errors": errors,
        "hit@1": share(hit1, with_files),
        "hit@5": share(hit5, with_files),
        "mrr@10": share(rr, with_files),
        "answer_accuracy": share(correct, answerable),
        "direct": direct,
        "direct_accuracy": share(direct_right, direct),
        "refusal_accuracy": share(refused_right, refusals_expected),
        "false_refusal_rate": share(false_refusals, answerable_items),
        "median_seconds": round(statistics.median(seconds), 4) if seconds else None,
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


# -- the run -------------------------------------------------------------------------------
def run_eval(
    settings,
    questions: str,
    out: str | None = None,
    limit: int | None = None,
    as_json: bool = False,
    prepare: str | None = None,
) -> int:
    """Answer and grade; 0 when every item could be graded, 1 when some are errors."""
    if limit is not None and limit < 1:
        raise NewsbotError(f"--limit must be 1 or more, not {limit}.")
    entries = read_question_file(questions)[:limit]
    if not entries:
        raise NewsbotError(f"{questions} holds no questions: one JSON object per line.")
    normalize = load_normalize(prepare)
    rows_file = _rows_file(out, questions)  # before any work: a bad --out fails now
    for entry in entries:
        if entry.problem:
            _say(f"{questions}, line {entry.line}: {entry.problem}; graded as an error.")
    with rows_file as sink:
        rows, total_quotes, bad_quotes = _answer_all(settings, entries, sink, questions)

    items = [e.item for e in entries]
    table = grade_sets(items, rows, normalize)
    if as_json:
        print(json_text({"sets": table, "quotes": total_quotes, "bad_quotes": bad_quotes}))
    else:
        print(format_table(table))
        print(
            f"quotes shown: {total_quotes}; not the exact text of their file at their "
            f"offsets: {bad_quotes}"
        )
    errors = sum(1 for row in rows if row.get("error"))
    if errors:
        _say(
            f"{errors} of {len(rows)} items were graded as errors (said above"
            f"{', and in their rows' if out else ''})."
        )
        return 1
    return 0


def _answer_all(settings, entries: list[QuestionLine], sink: IO[str] | None, name: str):
    from bot.answering.answer import QuestionError, make_answerer

    answerer = make_answerer(settings)
    answerer.warm_up()
    rows = []
    bad_quotes = total_quotes = 0
    for entry in entries:
        item = entry.item
        row = {
            "id": item["id"],
            "question": item["question"],
            "answer": "",
            "cited": [],
            "retrieved": [],
            "refused": False,
            "direct": [],
            "seconds": 0.0,
        }
        if entry.problem:
            row["error"] = f"line {entry.line}: {entry.problem}"
        else:
            asked_on = dt.date.fromisoformat(item["date"]) if item.get("date") else None
            started = time.perf_counter()
            try:
                answer = answerer.answer(
                    printable(decoded(item["question"])), [], asked_on=asked_on
                )
            except QuestionError as exc:
                row["error"] = f"line {entry.line}: {str(exc).rstrip('.')}"
            except NewsbotError:
                raise  # the index or the store, not this item: every later one would fail too
            except Exception as exc:  # noqa: BLE001 - one item's failure is that item's grade
                log.debug("line %s failed", entry.line, exc_info=True)
                row["error"] = f"line {entry.line}: failed ({type(exc).__name__}: {exc})"
            else:
                total_quotes += len(answer.quotes)
                # Re-checked apart from the answerer, with the same grounding check.
                texts = ArticleTexts(settings.corpus_dir)
                bad_quotes += sum(
                    not texts.says(q.source, q.start, q.end, q.text) for q in answer.quotes
                )
                row |= {
                    "answer": answer.text,
                    "cited": answer.sources,
                    "retrieved": answer.retrieved,
                    "refused": answer.refused,
                    "direct": [d.text for d in answer.direct],
                    "seconds": round(time.perf_counter() - started, 4),
                }
            if "error" in row:
                _say(f"{name}, {row['error']}; graded as an error.")
        rows.append(row)
        if sink is not None:
            sink.write(json_text(row) + "\n")
            sink.flush()
    return rows, total_quotes, bad_quotes


def _rows_file(out: str | None, questions: str):
    """The `--out` file, open for writing before any work; nothing when there is none."""
    if not out:
        return contextlib.nullcontext()
    path = Path(out)
    with contextlib.suppress(OSError):
        if path.samefile(questions):  # opening it for writing would empty it
            raise NewsbotError(f"--out {out} is the question file itself; choose another --out.")
    if not path.parent.is_dir():
        raise NewsbotError(
            f"Cannot write the rows to {out}: the folder {path.parent} does not exist. "
            "Create it or choose another --out."
        )
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - the caller's `with` closes it
    except OSError as exc:
        raise NewsbotError(
            f"Cannot write the rows to {out}: {exc.strerror}. Choose another --out."
        ) from None


def _say(message: str) -> None:
    print(f"newsbot: {one_line(message)}", file=sys.stderr, flush=True)


def format_table(table: dict[str, dict]) -> str:
    columns = [
        "items",
        "errors",
        "hit@1",
        "hit@5",
        "mrr@10",
        "answer_accuracy",
        "direct",
        "direct_accuracy",
        "refusal_accuracy",
        "false_refusal_rate",
        "median_seconds",
    ]
    headers = [
        "set",
        "items",
        "errors",
        "hit@1",
        "hit@5",
        "MRR@10",
        "answer acc",
        "direct",
        "direct acc",
        "refusal acc",
        "false refusals",
        "median s",
    ]
    rows = [
        [one_line(name)] + ["–" if m[c] is None else str(m[c]) for c in columns]
        for name, m in table.items()
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
