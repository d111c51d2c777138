"""`newsbot ask` and `newsbot eval`: their output, JSON and errors.

The commands run in this process (`run_main`: `bot.cli.main.main`, what the script runs); one
`newsbot ask` runs as a real subprocess (marked `slow`), so that the cold path users take --
retrieval in a forked child while the reading models load (bot.cli.prefetch) -- is tested too.
"""

import json
import os
import re

import pytest

from bot.cli.evaluate import grade, load_normalize


@pytest.fixture
def indexed(corpus, workdir, cli_env, make_settings, built_index):
    env = cli_env(corpus_dir=corpus, store_dir=workdir / "store", embed_model="hashing")
    built_index(make_settings())  # the same corpus, folder and model
    return env


@pytest.mark.slow
def test_ask_json_has_the_answer_fields(indexed, run_newsbot, corpus):
    """A real `newsbot ask`: the question is retrieved in a forked child (bot.cli.prefetch)."""
    result = run_newsbot(
        "ask", "--json", "What did officials in Kyiv say about drones?", env=indexed
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["refused"] is False
    assert answer["sources"][0] == "drones.txt"
    quote = answer["quotes"][0]
    assert set(quote) >= {"text", "source", "start", "end", "title", "date"}
    text = (corpus / quote["source"]).read_text(encoding="utf-8")
    assert text[quote["start"] : quote["end"]] == quote["text"]
    assert quote["text"] in answer["text"]


def test_ask_json_gives_the_direct_answer_with_its_offsets(indexed, run_main, corpus):
    result = run_main("ask", "--json", "How many drones has Iran supplied?", env=indexed)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["kind"] == "direct"
    [direct] = answer["direct"]
    phrase = direct["phrase"]
    assert phrase["text"] == "hundreds" and direct["sources"] == ["drones.txt"]
    text = (corpus / phrase["source"]).read_text(encoding="utf-8")
    assert text[phrase["start"] : phrase["end"]] == "hundreds"
    assert answer["text"].startswith("hundreds — 1 article\n\ndrones.txt")

    shown = run_main("ask", "How many drones has Iran supplied?", env=indexed)
    assert shown.stdout.startswith("hundreds — 1 article\ndrones.txt · Iran sends drones")


def test_ask_text_and_refusal(indexed, run_main):
    result = run_main("ask", "What is the time complexity of quicksort?", env=indexed)
    assert result.returncode == 0
    assert "could not find this in the indexed articles (3 in all)" in result.stdout


def test_ask_without_an_index_is_one_clear_line(workdir, corpus, cli_env, run_main):
    env = cli_env(corpus_dir=corpus, store_dir=workdir / "empty", embed_model="hashing")
    result = run_main("ask", "anything?", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"newsbot: No index yet in {workdir / 'empty'} — run `newsbot index` first."
    ]


def test_ask_too_long_question_is_refused_politely(indexed, run_main):
    result = run_main("ask", "why " * 600, env=indexed)
    assert result.returncode == 1
    assert "too long" in result.stderr and "Traceback" not in result.stderr


def test_eval_prints_the_table_and_writes_rows(indexed, run_main, workdir):
    questions = workdir / "q.jsonl"
    items = [
        {
            "id": "rtqa-1",
            "question": "Who supplied drones to Russia?",
            "date": "2022-11-03",
            "expected_files": ["drones.txt"],
            "expected_answers": ["Iran"],
        },
        {"id": "off-1", "question": "What is a villanelle?", "expect_refusal": True},
    ]
    questions.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    out = workdir / "rows.jsonl"
    result = run_main("eval", str(questions), "--out", str(out), env=indexed)
    assert result.returncode == 0, result.stderr
    assert "hit@1" in result.stdout and "refusal acc" in result.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["rtqa-1", "off-1"]
    assert set(rows[0]) == {
        "id", "question", "answer", "cited", "retrieved", "refused", "direct", "seconds"
    }  # fmt: skip
    assert rows[0]["cited"][0] == "drones.txt" and rows[1]["refused"] is True


def test_eval_rejects_a_broken_question_file(indexed, run_main, workdir):
    bad = workdir / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    result = run_main("eval", str(bad), env=indexed)
    assert result.returncode == 1
    assert "line 1: not a JSON object" in result.stderr


def test_grading_follows_the_evaluation_readme():
    normalize = load_normalize()
    items = [
        {"id": "a", "question": "q", "expected_files": ["x.txt"], "expected_answers": ["Iran’s"]},
        {"id": "b", "question": "q", "expected_files": ["y.txt"], "expected_answers": ["far"]},
        {"id": "c", "question": "q", "expect_refusal": True},
    ]
    rows = [
        {
            "cited": ["x.txt"],
            "retrieved": ["x.txt", "z.txt"],
            "refused": False,
            "answer": "It was  IRAN'S plan",
            "seconds": 0.1,
        },
        {
            "cited": [],
            "retrieved": ["z.txt", "w.txt", "y.txt"],
            "refused": True,
            "answer": "x" * 801 + "far",
            "seconds": 0.3,
        },
        {"cited": [], "retrieved": [], "refused": True, "answer": "no", "seconds": 0.2},
    ]
    figures = grade(items, rows, normalize)
    assert figures["hit@1"] == 0.5 and figures["hit@5"] == 1.0
    assert figures["mrr@10"] == round((1 + 1 / 3) / 2, 3)
    assert figures["answer_accuracy"] == 0.5  # "far" lies beyond the first 800 characters
    assert figures["refusal_accuracy"] == 1.0 and figures["false_refusal_rate"] == 0.5
    assert figures["median_seconds"] == 0.2


# -- hostile questions and articles ----------------------------------------------------------
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ESCAPES = "\x1b]52;c;c2VjcmV0\x07, \x1b[2J and \x1b]0;owned\x07"


def test_a_question_with_bytes_that_are_not_utf8_is_answered(indexed, run_main):
    """`newsbot ask $'drones \\xff hit'`: the bad byte becomes U+FFFD, the question is answered;
    a question of bad bytes only has no word to answer and is one polite line."""
    question = b"What did officials in Kyiv say about drones \xff?"
    # Python hands the script its arguments decoded so: bad bytes as lone surrogates.
    done = run_main("ask", os.fsdecode(question), env=indexed)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.encode("utf-8")  # what is printed is UTF-8 (stdout refuses surrogates)
    assert done.stdout.startswith("drones.txt")
    done = run_main("ask", os.fsdecode(b"\xff\xfe"), env=indexed)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("newsbot: Please ask a question in words")
    assert done.stderr.count("\n") == 1


@pytest.fixture
def hostile(corpus, workdir, cli_env, run_main):
    """The small corpus plus an article full of terminal escapes, indexed."""
    (corpus / "escapes.txt").write_text(
        f"Escapes \x1b]0;title\x07 in the headline\n"
        f"date 2022-11-02 The spokesman said {ESCAPES} were found in the power station.\n",
        encoding="utf-8",
    )
    env = cli_env(corpus_dir=corpus, store_dir=workdir / "store", embed_model="hashing")
    assert run_main("index", env=env).returncode == 0
    return env


def test_ask_prints_no_terminal_escape_from_an_article(hostile, run_main, corpus):
    question = "What did the spokesman say was found in the power station?"
    done = run_main("ask", question, env=hostile)
    assert done.returncode == 0, done.stderr
    assert "escapes.txt · Escapes  in the headline · 2022-11-02" in done.stdout
    assert "  > The spokesman said ,  and  were found in the power station." in done.stdout
    assert not CONTROLS.search(done.stdout)

    done = run_main("ask", "--json", question, env=hostile)
    assert not CONTROLS.search(done.stdout.rstrip("\n"))
    [quote] = [q for q in json.loads(done.stdout)["quotes"] if q["source"] == "escapes.txt"]
    assert ESCAPES in quote["text"]  # JSON keeps the exact text, escaped
    text = (corpus / "escapes.txt").read_text(encoding="utf-8")
    assert text[quote["start"] : quote["end"]] == quote["text"]


@pytest.mark.integration
def test_ask_the_example_question_with_the_bundled_model(
    example_corpus, workdir, cli_env, run_main
):
    env = cli_env(corpus_dir=example_corpus, store_dir=workdir / "store")
    assert run_main("index", env=env).returncode == 0
    result = run_main("ask", "--json", "what did Stoltenberg say about Iran?", env=env)
    answer = json.loads(result.stdout)
    assert answer["sources"][0] == "001_5644935dc87ec3b5.txt"
    assert any("Iran is supporting Russia" in q["text"] for q in answer["quotes"])


@pytest.mark.integration
def test_a_cold_answer_with_the_real_models_never_imports_torch(workdir, cli_env, run_main):
    """spaCy's thinc probes for torch on import (2 s here); `bot.answering.nlp` keeps it from
    doing so."""
    import shutil
    import subprocess
    import sys

    from conftest import EXAMPLE_CORPUS

    shutil.copytree(EXAMPLE_CORPUS, workdir / "corpus")
    env = cli_env(corpus_dir=workdir / "corpus", store_dir=workdir / "store")
    assert run_main("index", env=env).returncode == 0
    code = (
        "import sys\n"
        "from bot.cli.main import main\n"
        "assert main(['ask', \"What is Sergey Shoigu's job?\"]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'spacy' in sys.modules and 'bot.answering.rerank' in sys.modules\n"
        # The index was opened and the question retrieved in a forked child (bot.cli.prefetch).
        "assert 'chromadb' not in sys.modules, 'the index was opened here too'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=workdir, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Russian Defense Minister — 1 article")


def test_a_log_line_cannot_be_split_by_a_file_name():
    """File names and questions reach log messages: a name holding a newline could forge a
    second log line ("ERROR ..."); a traceback keeps its lines."""
    import logging

    from bot.cli.main import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord(
        "bot.answering.answer", logging.WARNING, __file__, 1, "dropped a quote from %s", None, None
    )
    record.args = ("evil\nERROR index.build: index deleted\r\x1b[2J.txt",)
    assert formatter.format(record) == (
        "WARNING bot.answering.answer: dropped a quote from evil "
        "ERROR index.build: index deleted .txt"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR x: failed" and lines[-1] == "ValueError: boom"
