"""`newsbot index` as users run it: its report, its errors, its settings.

The command runs in this process (`run_main`: `bot.cli.main.main`, what the script runs) except
where only a real process shows it -- Ctrl-C to a `--watch`, a reader that goes away, the
modules a fresh process imports -- and those are marked `slow`."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from index.errors import NewsbotError

NEWSBOT = Path(sys.executable).with_name("newsbot")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
REPORT_LISTS = ("added", "updated", "removed", "unchanged", "skipped", "warnings")


@pytest.fixture
def env(cli_env, corpus, tmp_path):
    return cli_env(corpus_dir=corpus, store_dir=tmp_path / "store", embed_model="hashing")


def test_index_prints_the_report(run_main, env, corpus):
    done = run_main("index", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Index of {corpus}/ — 3 articles, 3 chunks"
    assert lines[1] == "  added 3 (drones.txt, football.txt, world/economy.txt)"
    assert "  removed 0" in lines and "  unchanged 0" in lines and "  skipped 0" in lines
    assert lines[-1].startswith("  chunks written 3 in ")
    assert "Traceback" not in done.stderr

    done = run_main("index", env=env)
    assert "  unchanged 3" in done.stdout.splitlines()
    assert "  chunks written 0 in " in done.stdout


def test_index_json(run_main, env, corpus):
    (corpus / "empty.txt").write_bytes(b"")
    done = run_main("index", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert all(isinstance(report[key], list) for key in REPORT_LISTS)
    assert report["added"] == ["drones.txt", "football.txt", "world/economy.txt"]
    assert report["skipped"] == [{"source": "empty.txt", "reason": "empty file"}]
    assert (report["articles"], report["chunks"], report["chunks_written"]) == (3, 3, 3)
    assert report["rebuilt"] is False

    (corpus / "drones.txt").unlink()
    report = json.loads(run_main("index", "--json", env=env).stdout)
    assert report["removed"] == ["drones.txt"]
    assert report["unchanged"] == ["football.txt", "world/economy.txt"]

    report = json.loads(run_main("index", "--json", "--rebuild", env=env).stdout)
    assert report["rebuilt"] is True and len(report["added"]) == 2


def test_index_reads_dotenv_from_the_working_folder(run_main, cli_env, corpus, tmp_path):
    (tmp_path / ".env").write_text(
        f"NEWSBOT_CORPUS_DIR={corpus}\nNEWSBOT_STORE_DIR=dotenv-store\nNEWSBOT_EMBED_MODEL=hashing\n"
    )
    done = run_main("index", "--json", env=cli_env())
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["added"]) == 3
    assert (tmp_path / "dotenv-store" / "manifest.sqlite3").is_file()


def one_line_error(done) -> str:
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("newsbot: ")
    return lines[0]


def test_bad_setting_is_one_line(run_main, env):
    env["NEWSBOT_CHUNK_SIZE"] = "abc"
    line = one_line_error(run_main("index", env=env))
    assert "NEWSBOT_CHUNK_SIZE='abc'" in line


def test_bad_setting_in_dotenv_is_one_line(run_main, env, tmp_path):
    (tmp_path / ".env").write_text("NEWSBOT_LOG_LEVEL=LOUD\n")
    line = one_line_error(run_main("index", env=env))
    assert "NEWSBOT_LOG_LEVEL='LOUD'" in line


def test_missing_corpus_folder_is_one_line(run_main, env, tmp_path):
    env["NEWSBOT_CORPUS_DIR"] = str(tmp_path / "no-such-folder")
    line = one_line_error(run_main("index", env=env))
    assert "no-such-folder does not exist" in line and "NEWSBOT_CORPUS_DIR" in line
    assert not (tmp_path / "store").exists()


def test_mismatch_is_one_line(run_main, env):
    assert run_main("index", env=env).returncode == 0
    env["NEWSBOT_CHUNK_SIZE"] = "128"
    line = one_line_error(run_main("index", env=env))
    assert "newsbot index --rebuild" in line
    assert run_main("index", "--rebuild", env=env).returncode == 0


def test_debug_variable_shows_the_traceback(run_main, env, tmp_path):
    """With NEWSBOT_DEBUG the error leaves `main` unhandled: Python prints its traceback."""
    env["NEWSBOT_CORPUS_DIR"] = str(tmp_path / "no-such-folder")
    env["NEWSBOT_DEBUG"] = "1"
    with pytest.raises(NewsbotError, match="no-such-folder does not exist"):
        run_main("index", env=env)


@pytest.mark.slow
def test_long_update_shows_progress_when_not_on_a_terminal(run_main, env, corpus):
    for i in range(250):
        body = " ".join(f"Sentence {j} of article {i} is here." for j in range(60))
        (corpus / f"bulk/{i:03d}.txt").parent.mkdir(exist_ok=True)
        (corpus / f"bulk/{i:03d}.txt").write_text(f"Bulk {i}\n{body}\n")
    done = run_main("index", env=env)
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("embedding: ")]
    assert progress and progress[-1].endswith(" chunks")
    assert "Traceback" not in done.stderr
    quiet = run_main("index", "--json", "--rebuild", env=env)
    assert quiet.stderr == ""


@pytest.mark.slow
def test_watch_prints_a_report_per_change_and_stops_on_ctrl_c(env, corpus, tmp_path):
    process = subprocess.Popen(
        [str(NEWSBOT), "index", "--watch", "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(read_line(process, timeout=60))
        assert len(first["added"]) == 3
        (corpus / "late.txt").write_text("Late\nBreaking news arrived late.\n")
        second = json.loads(read_line(process, timeout=60))
        assert second["added"] == ["late.txt"] and len(second["unchanged"]) == 3
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
        stderr = process.stderr.read()
        assert status == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output in {timeout} s"
    return process.stdout.readline()


@pytest.mark.slow
def test_indexing_never_imports_the_reading_stages_models(env, tmp_path):
    code = (
        "import sys\n"
        "from bot.cli.main import main\n"
        "assert main(['index', '--json']) == 0\n"
        "heavy = ('spacy', 'thinc', 'bot.answering.nlp', 'bot.answering.rerank')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# -- hostile corpora, settings and pipes ---------------------------------------------------------
SECRET = "TELEGRAM_BOT_TOKEN=123456:SECRET-token"


def test_a_link_out_of_the_corpus_is_skipped_and_never_quoted(run_main, env, corpus, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env").write_text(f"Bot settings\nThe token of the bot: {SECRET} for drones.\n")
    (corpus / "leak.txt").write_text("Harmless\nA note about drones, for now.\n")
    assert run_main("index", env=env).returncode == 0
    (corpus / "leak.txt").unlink()  # indexed as a file, now a link to the secret
    (corpus / "leak.txt").symlink_to(home / ".env")
    (corpus / "private").symlink_to(home)
    (corpus / "evil\x1b]0;owned\x07\x1b[2J.txt").write_text("")  # empty: listed by its name
    env["NEWSBOT_MIN_RELEVANCE"] = "-1"  # show whatever is retrieved

    done = run_main("index", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  removed 1 (leak.txt)" in lines
    assert "  skipped 3" in lines
    assert lines[lines.index("  skipped 3") + 1 :][:3] == [
        "    evil.txt: empty file",
        "    leak.txt: links outside the corpus folder",
        "    private/: links to a folder outside the corpus folder",
    ]
    assert not CONTROLS.search(done.stdout) and not CONTROLS.search(done.stderr)
    assert "evil.txt: empty file" in done.stderr  # the log line, printable too

    shown = run_main("ask", "What is the token of the bot for drones?", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "SECRET" not in shown.stdout and "leak.txt" not in shown.stdout


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_command_quietly(env, tmp_path):
    """`newsbot index | head -1`: the report's reader is gone before it is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(NEWSBOT), "index"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


@pytest.mark.parametrize("variable", ["NEWSBOT_CORPUS_DIR", "NEWSBOT_STORE_DIR"])
def test_an_empty_folder_setting_is_refused_not_the_working_folder(
    variable, workdir, corpus, monkeypatch, capsys
):
    monkeypatch.setenv("NEWSBOT_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("NEWSBOT_EMBED_MODEL", "hashing")
    monkeypatch.setenv(variable, "")
    before = sorted(workdir.iterdir())
    assert main(["index"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"newsbot: Invalid setting {variable}='': is empty")
    assert sorted(workdir.iterdir()) == before  # no index written into the working folder


def test_a_settings_file_that_is_not_utf8_is_one_line(workdir, monkeypatch, capsys):
    (workdir / ".env").write_bytes(b"NEWSBOT_EMBED_MODEL=hashing\n# caf\xe9 settings\n")
    assert main(["index"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"newsbot: The settings file {workdir / '.env'} is not UTF-8 text, line 2: "
        "save it as UTF-8 (or remove the line)."
    )
