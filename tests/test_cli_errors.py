"""Every error a user can cause ends as one line on stderr and a non-zero exit status: bad
settings (caught when they are read, before any model loads), a settings file that cannot be
read, a pydantic error that got past `load_settings`, and Ctrl-C in the middle of an index."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.cli.main import INDEX_INTERRUPTED, INTERRUPTED, main
from index.settings import IndexSettings


@pytest.mark.slow
def test_a_bad_value_is_one_line_naming_the_variable_before_any_model_loads(
    cli_env, run_newsbot, corpus, tmp_path
):
    env = cli_env(
        corpus_dir=corpus,
        store_dir=tmp_path / "store",
        llm="ollama",
        llm_base_url="127.0.0.1:11434",  # no scheme
        llm_model="m",
    )
    done = run_newsbot("ask", "Who sent drones?", env=env)
    assert done.returncode == 1
    assert done.stderr == (
        "newsbot: Invalid setting NEWSBOT_LLM_BASE_URL='127.0.0.1:11434': must start with "
        "http:// or https://, e.g. http://127.0.0.1:11434\n"
    )
    assert done.stdout == "" and not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TELEGRAM_ALLOWED_USERS", "101, bob smith!"),
        ("TELEGRAM_WEBHOOK_SECRET", "not a valid secret!"),
        ("TELEGRAM_BASE_URL", "127.0.0.1:8081/bot"),
        ("NEWSBOT_CHROMA_HOST", "chroma.local:8000"),
    ],
)
def test_telegram_stops_on_a_bad_value_before_any_model_loads(
    workdir, monkeypatch, capsys, variable, value
):
    for name, setting in {
        "TELEGRAM_BOT_TOKEN": "123456789:AAFakeTokenForTestsOnly_abcdefghijk",
        "NEWSBOT_STORE_DIR": str(workdir / "no-index-here"),
        variable: value,
    }.items():
        monkeypatch.setenv(name, setting)
    assert main(["telegram"]) == 1  # not "No index in ...": nothing was loaded
    err = capsys.readouterr().err
    assert err.startswith(f"newsbot: Invalid setting {variable}") and err.count("\n") == 1
    assert (value in err) == (variable != "TELEGRAM_WEBHOOK_SECRET")  # a secret is never shown


def test_an_unreadable_settings_file_is_one_line(workdir, capsys):
    os.symlink("/proc/self/mem", workdir / ".env")  # a file any reader gets EIO from
    assert main(["index"]) == 1
    assert capsys.readouterr().err == (
        f"newsbot: Cannot read the settings file {workdir / '.env'} (Input/output error): "
        "make it readable, or remove it.\n"
    )


def test_a_validation_error_past_load_settings_is_one_line(workdir, monkeypatch, capsys):
    def builds_settings_itself(args):  # as code that forgot load_settings would
        IndexSettings(chunk_size="big", _env_file=None)

    monkeypatch.setattr("bot.cli.main._run_index", builds_settings_itself)
    assert main(["index"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("newsbot: Invalid setting chunk_size: Input should be a valid integer")
    assert err.count("\n") == 1 and "big" not in err  # no model known: no value shown


INTERRUPT_ON_SECOND_BATCH = """
import os, signal, sys
from index.embeddings import HashingEmbedder
real, calls = HashingEmbedder.embed_documents, []
def embed(self, texts):
    calls.append(len(texts))
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, with the first group stored
    return real(self, texts)
HashingEmbedder.embed_documents = embed
from bot.cli.main import main
sys.exit(main(["index"]))
"""


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_an_index_is_one_line_and_the_next_run_finishes(
    cli_env, run_newsbot, tmp_path
):
    corpus = tmp_path / "many"
    corpus.mkdir()
    for n in range(700):  # more chunks than one embedding group (index.build.GROUP_CHUNKS)
        (corpus / f"{n:03d}.txt").write_text(f"Story {n}\nNews number {n} happened today.\n")
    env = cli_env(corpus_dir=corpus, store_dir=tmp_path / "store", embed_model="hashing")
    interrupted = subprocess.run(
        [sys.executable, "-c", INTERRUPT_ON_SECOND_BATCH],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert interrupted.returncode == 130
    progress = ("", "embedding: 0/700 chunks", "embedding: 512/700 chunks")
    said = [line for line in interrupted.stderr.splitlines() if line not in progress]
    assert said == [f"newsbot: {INDEX_INTERRUPTED}"], interrupted.stderr
    assert interrupted.stdout == ""
    finished = run_newsbot("index", "--json", env=env)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["articles"] == 700 and 0 < report["chunks_written"] < 700


def test_ctrl_c_elsewhere_says_interrupted(workdir, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("bot.cli.main._run_eval", interrupted)
    assert main(["eval", "questions.jsonl"]) == 130
    assert capsys.readouterr().err == f"\nnewsbot: {INTERRUPTED}\n"
