"""`newsbot eval` with bad question files, bad arguments and interruptions: it never loses work,
names every problem with its line, and runs no code it finds near the working folder.

The command runs in this process (`run_main`), but for Ctrl-C in the middle of a run, which
only a real process can be sent (marked `slow`)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest
from conftest import NEWSBOT

from bot.cli.evaluate import grade, load_normalize, read_question_file
from bot.cli.main import main

CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
GOOD = {
    "id": "rtqa-1",
    "question": "Who supplied drones to Russia?",
    "expected_files": ["drones.txt"],
    "expected_answers": ["Iran"],
}


@pytest.fixture
def indexed(corpus, workdir, cli_env, make_settings, built_index):
    env = cli_env(corpus_dir=corpus, store_dir=workdir / "store", embed_model="hashing")
    built_index(make_settings())  # the same corpus, folder and model
    return env


def write_lines(path, *lines: bytes | str | dict | list) -> str:
    """A question file of these lines: bytes and str as they are, anything else as JSON."""

    def encoded(line) -> bytes:
        if isinstance(line, bytes):
            return line
        return line.encode() if isinstance(line, str) else json.dumps(line).encode()

    path.write_bytes(b"".join(encoded(line) + b"\n" for line in lines))
    return str(path)


def test_bad_items_are_named_graded_as_errors_and_the_rest_answered(indexed, run_main, workdir):
    questions = write_lines(
        workdir / "q.jsonl",
        b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),  # a BOM before line 1
        {"id": "rtqa-2", "question": "What is a villanelle?", "expected_answers": "text"},
        "{not json",
        {"id": "off-1", "question": "What is a villanelle?", "date": "2022-13-01"},
        {"id": "rtqa-3", "question": "why " * 300},  # longer than the Answerer takes
        b'{"id": "rtqa-4", "question": "caf\xe9?"}',  # not UTF-8
        {"id": "rtqa-5", "question": "What did the manager praise?", "expected_answers": [""]},
        {"id": "off\x1b[2J-2", "question": "What is a villanelle?", "expect_refusal": "yes"},
        {"id": "rtqa-6", "question": "Who won the derby?", "expected_files": ["football.txt"]},
        '{"id": "rtqa-7", "question": "Who supplied drones \\ud800?"}',  # a lone surrogate
    )
    out = workdir / "rows.jsonl"
    done = run_main("eval", questions, "--out", str(out), env=indexed)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    problems = done.stderr.splitlines()
    assert problems[:6] == [
        f'newsbot: {questions}, line 2: "expected_answers" must be a list of strings, not "text"; '
        "graded as an error.",
        f"newsbot: {questions}, line 3: not a JSON object; graded as an error.",
        f"newsbot: {questions}, line 4: \"date\" must be a date as YYYY-MM-DD, not '2022-13-01'; "
        "graded as an error.",
        f"newsbot: {questions}, line 6: not UTF-8 text; graded as an error.",
        f'newsbot: {questions}, line 7: "expected_answers" holds an empty string, which any '
        "answer contains; graded as an error.",
        f'newsbot: {questions}, line 8: "expect_refusal" must be true or false; '
        "graded as an error.",
    ]  # all named before any answer; then the question the Answerer turns down
    assert any(
        p.startswith(f"newsbot: {questions}, line 5: That question is too long")
        for p in problems[6:]
    )
    assert problems[-1] == (
        "newsbot: 7 of 10 items were graded as errors (said above, and in their rows)."
    )

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [
        "rtqa-1",
        "rtqa-2",
        "line-3",
        "off-1",
        "rtqa-3",
        "line-6",  # its id could not be read
        "rtqa-5",
        "off\x1b[2J-2",
        "rtqa-6",
        "rtqa-7",
    ]
    assert [bool(r.get("error")) for r in rows] == [False] + [True] * 7 + [False, False]
    assert rows[0]["cited"][0] == "drones.txt" and rows[-2]["retrieved"]
    assert rows[-1]["cited"][0] == "drones.txt"
    assert rows[4]["error"].startswith("line 5: That question is too long")

    table = done.stdout.splitlines()
    assert table[0].split()[:3] == ["set", "items", "errors"]
    assert table[1].split()[:3] == ["rtqa", "6", "3"]
    assert table[-2].split()[:3] == ["all", "10", "7"]
    assert not CONTROLS.search(done.stdout)  # the id's escape is not printed


@pytest.mark.slow
def test_an_interrupted_run_keeps_the_rows_answered_so_far(indexed, workdir):
    questions = write_lines(
        workdir / "q.jsonl", *({**GOOD, "id": f"rtqa-{n}"} for n in range(2000))
    )
    out = workdir / "rows.jsonl"
    process = subprocess.Popen(
        [str(NEWSBOT), "eval", questions, "--out", str(out)],
        env=indexed,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_text().count("\n") >= 2):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no row written while answering"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 2 <= len(rows) < 2000
    assert [r["id"] for r in rows] == [f"rtqa-{n}" for n in range(len(rows))]


def test_out_into_a_missing_folder_fails_before_any_work(workdir, corpus, monkeypatch, capsys):
    monkeypatch.setenv("NEWSBOT_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("NEWSBOT_STORE_DIR", str(workdir / "no-index-here"))
    questions = write_lines(workdir / "q.jsonl", GOOD)
    assert main(["eval", questions, "--out", str(workdir / "missing" / "rows.jsonl")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"newsbot: Cannot write the rows to {workdir / 'missing' / 'rows.jsonl'}: the folder "
        f"{workdir / 'missing'} does not exist. Create it or choose another --out."
    ]  # not "No index yet": the rows' folder is checked before anything is loaded


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_limit_must_be_at_least_one(limit, workdir, capsys):
    questions = write_lines(workdir / "q.jsonl", GOOD, GOOD | {"id": "rtqa-2"})
    assert main(["eval", questions, "--limit", limit]) == 1
    assert capsys.readouterr().err == f"newsbot: --limit must be 1 or more, not {limit}.\n"


def test_no_code_is_run_from_next_to_the_working_folder(tmp_path, monkeypatch):
    """`../shared/eval/prepare.py` seen from the working folder is not ours to run."""
    marker = tmp_path / "ran"
    planted = tmp_path / "shared" / "eval" / "prepare.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(f"open({str(marker)!r}, 'w').close()\ndef normalize(text):\n    return ''\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    normalize = load_normalize()
    assert not marker.exists()
    assert normalize("  “Iran’s”  PLAN ") == '"iran\'s" plan'
    # Only a path given on purpose is run.
    assert load_normalize(str(planted))("anything") == ""
    assert marker.exists()


def test_normalize_follows_the_readme():
    normalize = load_normalize()
    # The same as prepare.py's: NFKC first, so a double prime becomes two primes.
    assert (
        normalize("«Guillemets» „low“ ‟rev” ″x″ 〝y〞") == '"guillemets" "low" "rev" \'\'x\'\' "y"'
    )
    assert normalize("‘a’ ‚b‛ ‹c› ′d′ `e ʼf") == "'a' 'b' 'c' 'd' 'e 'f"
    assert normalize("ＦＵＬＬ\u00a0width\n\tStraße") == "full width strasse"


def test_a_refusal_is_never_a_correct_answer():
    items = [{"id": "a", "question": "q", "expected_answers": ["Iran"]}]
    refusal = {
        "cited": [],
        "retrieved": ["x.txt"],
        "refused": True,
        "answer": "I could not find what Iran did in the indexed articles.",
        "seconds": 0.1,
    }
    figures = grade(items, [refusal], load_normalize())
    assert figures["answer_accuracy"] == 0.0 and figures["false_refusal_rate"] == 1.0
    assert grade(items, [refusal | {"refused": False}], load_normalize())["answer_accuracy"] == 1.0


def test_direct_answers_are_graded_by_their_first_phrase_alone():
    items = [
        {"id": f"q{i}", "question": "Which team?", "expected_answers": ["Denver Broncos"]}
        for i in range(3)
    ]
    row = {"cited": ["a.txt"], "retrieved": [], "refused": False, "seconds": 0.1}
    quotes = "\n  > The sale of the Denver Broncos was approved."
    rows = [
        row | {"answer": "Denver Broncos — 1 article" + quotes, "direct": ["Denver Broncos"]},
        # the quotes hold the answer, the phrase shown first does not
        row | {"answer": "Pat Bowlen Trust — 1 article" + quotes, "direct": ["Pat Bowlen Trust"]},
        row | {"answer": quotes.strip(), "direct": []},  # quotes only: no phrase to grade
    ]
    figures = grade(items, rows, load_normalize())
    assert figures["answer_accuracy"] == 1.0
    assert figures["direct"] == 2 and figures["direct_accuracy"] == 0.5


def test_error_rows_are_counted_and_left_out_of_the_figures():
    items = [{"id": "a", "question": "q", "expect_refusal": True}, {"id": "b", "question": "q"}]
    rows = [
        {"cited": [], "retrieved": [], "refused": True, "answer": "no", "seconds": 0.2},
        {"cited": [], "retrieved": [], "refused": False, "answer": "", "seconds": 0.0,
         "error": "line 2: failed"},
    ]  # fmt: skip
    figures = grade(items, rows, load_normalize())
    assert figures["errors"] == 1 and figures["items"] == 2
    assert figures["refusal_accuracy"] == 1.0 and figures["false_refusal_rate"] is None
    assert figures["median_seconds"] == 0.2


def test_a_string_of_expected_answers_is_a_problem_not_letters(tmp_path):
    path = write_lines(
        tmp_path / "q.jsonl",
        {"question": "q", "expected_answers": "Iran"},
        {"question": "q", "expected_files": [1]},
        {"question": 3},
        {"id": 7, "question": "q"},
        {"id": "x", "question": "q"},
        {"id": "x", "question": "q"},
        [1, 2],
    )
    entries = read_question_file(path)
    assert [(e.line, e.item["id"], e.problem) for e in entries] == [
        (1, "line-1", '"expected_answers" must be a list of strings, not "Iran"'),
        (2, "line-2", '"expected_files" must be a list of strings, not [1]'),
        (3, "line-3", 'needs a "question" string'),
        (4, "line-4", '"id" must be a non-empty string'),
        (5, "x", None),
        (6, "x", "\"id\" 'x' is already on line 5"),
        (7, "line-7", "not a JSON object"),
    ]


def test_json_that_python_refuses_to_build_is_a_problem_not_a_crash(tmp_path):
    """Nesting deeper than the recursion limit and integers of over 4,300 digits made
    json.loads raise RecursionError and ValueError, which the run did not catch."""
    path = write_lines(
        tmp_path / "q.jsonl",
        '{"question": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"question": "q", "n": ' + "9" * 5000 + "}",
        {"question": "q", "date": "2023-W01-1"},  # Python 3.11 reads ISO week dates too
        GOOD,
    )
    entries = read_question_file(path)
    assert [(e.line, e.problem) for e in entries] == [
        (1, "not a JSON object"),
        (2, "not a JSON object"),
        (3, "\"date\" must be a date as YYYY-MM-DD, not '2023-W01-1'"),
        (4, None),
    ]


def test_out_may_not_overwrite_the_question_file(workdir, corpus, monkeypatch, capsys):
    monkeypatch.setenv("NEWSBOT_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("NEWSBOT_STORE_DIR", str(workdir / "no-index-here"))
    questions = write_lines(workdir / "q.jsonl", GOOD)
    before = (workdir / "q.jsonl").read_bytes()
    (workdir / "same.jsonl").symlink_to("q.jsonl")
    for out in (questions, str(workdir / "same.jsonl")):
        assert main(["eval", questions, "--out", out]) == 1
        assert capsys.readouterr().err == (
            f"newsbot: --out {out} is the question file itself; choose another --out.\n"
        )
    assert (workdir / "q.jsonl").read_bytes() == before
