"""`newsbot chat`: the conversation and its commands, then the command with questions piped in
(run in this process by `run_main`, as the script runs it) and the real command in a
pseudo-terminal (a subprocess, marked `slow`).

Fast tests use the `hashing` embedding (no torch) with the refusal margin lowered
(NEWSBOT_MIN_RELEVANCE=-1), so that its rough similarities still give answers. The tests marked
`integration` run the real bundled model over the repository's two example articles.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pexpect
import pytest

from bot.answering.answer import QuestionError
from bot.answering.types import Answer, Passage, Quote
from bot.answering.wording import format_answer
from bot.cli.chat import HELP, PROMPT, Conversation, Reply, _index_current, _loop

REPO = Path(__file__).resolve().parent.parent
NEWSBOT = Path(sys.executable).with_name("newsbot")
EXAMPLE = "001_5644935dc87ec3b5.txt"
QUESTION = "what did Stoltenberg say about Iran?"
FOLLOW_UP = "and what did he say about drones?"
IRAN_QUOTE = "“What I can say is that what we see is that Iran is supporting Russia,” he said."
FAST = {"embed_model": "hashing", "min_relevance": "-1"}
TIMEOUT = 120  # seconds any one subprocess may take, model loading included


# -- helpers and fixtures (this file's own) ------------------------------------------------
def chat_env(tmp_path: Path, **values: str | os.PathLike) -> dict[str, str]:
    """Environment for `newsbot chat`: none of the developer's settings, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_"))}
    env.pop("NO_COLOR", None)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(
        NEWSBOT_CORPUS_DIR=str(tmp_path / "corpus"), NEWSBOT_STORE_DIR=str(tmp_path / "store")
    )
    env.update({f"NEWSBOT_{k.upper()}": str(v) for k, v in values.items()})
    return env


@pytest.fixture
def run_chat(run_main, tmp_path):
    """run_chat(lines, *args, **settings) -> `newsbot chat ARGS` with `lines` piped in (bytes
    as they are), run in tmp_path so no `.env` is read."""

    def run(lines: list[str] | list[bytes], *args: str, **values):
        piped = b"".join(
            (line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines
        )
        return run_main("chat", *args, env=chat_env(tmp_path, **values), stdin=piped)

    return run


def replies(stdout: str) -> list[str]:
    """Piped output is one paragraph per reply."""
    return [part for part in stdout.split("\n\n") if part.strip()]


@pytest.fixture
def corpus(tmp_path) -> Path:
    """The repository's two example articles, copied."""
    folder = tmp_path / "corpus"
    shutil.copytree(REPO / "corpus", folder)
    return folder


def answer(question: str, *quotes: str, source: str = "a.txt") -> Answer:
    found = [Quote(text, source, 10 * i, 10 * i + len(text)) for i, text in enumerate(quotes)]
    return Answer(
        question=question,
        text=format_answer(found) if found else "I could not find this.",
        quotes=found,
        sources=[source] if found else [],
        refused=not found,
        passages=[Passage("The passage text.", source, 0, 17, "A title", "2022-11-09", 0.5)],
    )


class FakeAnswerer:
    """Records what the conversation asks; answers with the question in a quote."""

    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, question, history):
        self.calls.append((question, [a.question for a in history]))
        if len(question) > 50:
            raise QuestionError("That question is too long; please keep it under 50.")
        return answer(question, f"Quoted about {question}.")


@pytest.fixture
def fake() -> FakeAnswerer:
    return FakeAnswerer()


@pytest.fixture
def conversation(fake) -> Conversation:
    return Conversation(fake, stats=lambda: "2 articles; index up to date.")


# -- the conversation --------------------------------------------------------------------
def test_questions_get_rendered_answers_and_follow_ups_see_the_conversation(conversation, fake):
    first = conversation.respond("  who?  \n")
    assert first == Reply("a.txt\n  > Quoted about who?.")
    conversation.respond("and then?")
    assert fake.calls == [("who?", []), ("and then?", ["who?"])]


def test_blank_lines_are_ignored(conversation, fake):
    assert conversation.respond("") is None
    assert conversation.respond("   \t \n") is None
    assert fake.calls == []


def test_a_question_error_is_shown_politely_and_not_remembered(conversation, fake):
    reply = conversation.respond("x" * 60)
    assert reply == Reply("That question is too long; please keep it under 50.")
    conversation.respond("next?")
    assert fake.calls[-1] == ("next?", [])


def test_reset_forgets_the_conversation(conversation, fake):
    conversation.respond("first?")
    assert "forgotten" in conversation.respond("/reset").text
    conversation.respond("second?")
    assert fake.calls[-1] == ("second?", [])
    assert "ask a question first" in Conversation(fake, stats=str).respond("/sources").text


def test_sources_shows_the_passages_of_the_last_answer(conversation):
    assert "ask a question first" in conversation.respond("/sources").text
    conversation.respond("first?")
    text = conversation.respond("/sources").text
    assert text.startswith("1 passage retrieved for “first?”:")
    assert "[1] a.txt · A title · 2022-11-09" in text
    assert "characters 0–17 · score 0.5000" in text
    assert "The passage text." in text


def test_commands(conversation):
    assert conversation.respond("/help") == Reply(HELP)
    assert conversation.respond("/HELP ") == Reply(HELP)
    assert conversation.respond("/stats") == Reply("2 articles; index up to date.")
    assert conversation.respond("/quit") == Reply("", quit=True)
    assert conversation.respond("/exit") == Reply("", quit=True)
    assert conversation.respond("/frobnicate") == Reply(
        "Unknown command /frobnicate; /help lists the commands."
    )


def test_lines_lose_their_terminal_controls_and_bad_bytes(fake):
    def ask(question, history):
        if question.startswith("long"):
            raise QuestionError("Too long: \x1b]0;t\x07keep it short.")
        return fake(question, history)

    conversation = Conversation(ask, stats=lambda: "2 articles in \x1b[2Jcorpus/")
    conversation.respond("who \x1b]52;c;eA==\x07said\x1b[2J it \udcff?\n")
    assert fake.calls == [("who said it \ufffd?", [])]
    assert conversation.respond("/nonsense\x1b[2J\x07") == Reply(
        "Unknown command /nonsense; /help lists the commands."
    )
    assert conversation.respond("/stats") == Reply("2 articles in corpus/")
    assert conversation.respond("long question") == Reply("Too long: keep it short.")


def test_an_interrupted_answer_leaves_no_trace(fake):
    def interrupted(question, history):
        if question == "slow?":
            raise KeyboardInterrupt
        return fake(question, history)

    conversation = Conversation(interrupted, stats=str)
    conversation.respond("first?")
    with pytest.raises(KeyboardInterrupt):
        conversation.respond("slow?")
    conversation.respond("and?")
    assert fake.calls[-1] == ("and?", ["first?"])


# -- the loop ------------------------------------------------------------------------------
def scripted(*events):
    """read_line that returns lines and raises exceptions (Ctrl-C, Ctrl-D) in order."""
    queue = list(events)

    def read_line() -> str:
        event = queue.pop(0)
        if isinstance(event, BaseException) or (
            isinstance(event, type) and issubclass(event, BaseException)
        ):
            raise event
        return event

    return read_line


def test_loop_on_a_terminal_survives_ctrl_c_and_leaves_on_ctrl_d(conversation, fake, capsys):
    def ask(question, history):
        if question == "slow?":
            raise KeyboardInterrupt
        return fake(question, history)

    conversation.ask = ask
    read_line = scripted("half typ", KeyboardInterrupt, "slow?", "first?", "", EOFError)
    assert _loop(conversation, read_line, interactive=True) == 0
    out = capsys.readouterr().out
    assert "(answer abandoned)" in out
    assert "Quoted about first?." in out
    assert [q for q, _ in fake.calls] == ["half typ", "first?"]


def test_loop_leaves_on_quit_with_status_0(conversation, capsys):
    read_line = scripted("/quit", "never read")
    assert _loop(conversation, read_line, interactive=True) == 0
    assert capsys.readouterr().out == ""


def test_loop_without_a_terminal_stops_on_ctrl_c(conversation):
    with pytest.raises(KeyboardInterrupt):
        _loop(conversation, scripted(KeyboardInterrupt), interactive=False)


# -- whether the index is current ----------------------------------------------------------
def test_index_current_compares_the_corpus_with_the_manifest(tmp_path, corpus, monkeypatch):
    from bot.settings import BotSettings
    from index.build import build_index
    from index.settings import load_settings

    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        BotSettings, corpus_dir=corpus, store_dir=tmp_path / "store", embed_model="hashing"
    )
    assert _index_current(settings) is None  # nothing built yet
    build_index(settings)
    assert _index_current(settings) is True
    (corpus / "empty.txt").write_text("  \n")  # the indexer skips it: still current
    assert _index_current(settings) is True
    (corpus / "new.txt").write_text("Headline\nA new article about drones.\n")
    assert _index_current(settings) is False
    build_index(settings)
    assert _index_current(settings) is True
    (corpus / "new.txt").unlink()
    assert _index_current(settings) is False


# -- the command, piped (run in this process) ----------------------------------------------
def test_piped_session_bad_input_and_commands(run_chat, corpus):
    long_question = "why " * 30
    result = run_chat(
        ["", "   ", long_question, "/help", "/nonsense", "/sources", "/stats"],
        max_question_chars="40",
        **FAST,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "newsbot: 2 articles, dated 2022-11-09; index up to date (2 added)."
    ]
    out = replies(result.stdout)
    assert len(out) == 5, result.stdout  # the blank lines got no reply at all
    assert "too long" in out[0] and "40" in out[0]
    assert out[1] == HELP
    assert out[2] == "Unknown command /nonsense; /help lists the commands."
    assert out[3].startswith("No answer yet")
    assert out[4].startswith("2 articles, dated 2022-11-09; index up to date.\n")
    assert "\x1b[" not in result.stdout  # no colour, and no prompt either
    assert PROMPT.strip() not in result.stdout


def test_a_piped_line_that_is_not_utf8_is_answered_and_the_session_goes_on(run_chat, corpus):
    lines = [b"what did \xff\xfe say?", b"/nonsense", b"/stats", QUESTION.encode()]
    done = run_chat(lines, **FAST)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = replies(done.stdout)  # written as UTF-8: stdout takes no lone surrogate
    assert len(out) == 4, out  # every line after the bad one was answered too
    assert out[1] == "Unknown command /nonsense; /help lists the commands."
    assert out[2].startswith("2 articles, dated 2022-11-09")
    assert out[3].startswith(EXAMPLE) or out[3].startswith("I could not find")


def test_a_new_article_is_indexed_before_the_chat_starts(run_chat, corpus):
    assert run_chat([], **FAST).returncode == 0
    (corpus / "late.txt").write_text(
        "Zelensky thanks allies\n"
        "date 2022-11-12 Volodymyr Zelensky thanked the allies for the air defence systems.\n",
        encoding="utf-8",
    )
    stale = run_chat(["/stats"], "--no-update", **FAST)
    assert "index out of date" in stale.stderr
    assert "Run `newsbot index`" in stale.stdout

    result = run_chat(["what did Zelensky thank the allies for?"], **FAST)
    assert result.returncode == 0, result.stderr
    assert "3 articles, dated 2022-11-09 to 2022-11-12; index up to date (1 added)" in result.stderr
    assert result.stdout.startswith("late.txt · Zelensky thanks allies · 2022-11-12\n")
    assert "  > Volodymyr Zelensky thanked the allies for the air defence systems." in result.stdout


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "The corpus folder"),
        ("empty", "There are no article .txt files in"),
        ("unreadable", "None of the 2 .txt files in"),
    ],
)
def test_no_articles_gives_one_clear_sentence(run_chat, tmp_path, setup, expected):
    corpus = tmp_path / "corpus"
    if setup != "missing":
        corpus.mkdir()
    if setup == "unreadable":
        (corpus / "blank.txt").write_text("\n\n")
        (corpus / "binary.txt").write_bytes(b"\x00\x01\x02")
    result = run_chat([QUESTION], **FAST)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"newsbot: {expected}"), result.stderr
    assert "NEWSBOT_CORPUS_DIR" in lines[0]


def test_no_index_and_no_update_says_to_run_the_indexer(run_chat, tmp_path, corpus):
    result = run_chat([QUESTION], "--no-update", **FAST)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"newsbot: No index yet in {tmp_path / 'store'} — run `newsbot index` first."
    ]


@pytest.mark.integration
def test_piped_session_with_the_real_model(run_chat, corpus):
    result = run_chat([QUESTION, FOLLOW_UP, "/sources", "/reset", "/quit", QUESTION])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "newsbot: 2 articles, dated 2022-11-09; index up to date (2 added)."
    ]
    iran, drones, sources, reset = replies(result.stdout)  # nothing after /quit

    assert iran.startswith(f"{EXAMPLE} · ")
    assert f"  > {IRAN_QUOTE}" in iran.splitlines()

    assert sources.splitlines()[0].endswith(f"passages retrieved for “{FOLLOW_UP}”:")
    files = re.findall(r"^\[\d+\] (\S+\.txt)", sources, re.M)
    positions = re.findall(r"^    characters \d+–\d+ · score \d+\.\d{4}", sources, re.M)
    assert EXAMPLE in files
    assert len(positions) == len(files) >= 2
    assert IRAN_QUOTE in sources  # full passage text

    assert reset == "Conversation forgotten: the next question starts afresh."

    if drones.startswith("I could not find this"):
        pytest.xfail("the Answerer refuses the drones follow-up (best chunk below MIN_SIMILARITY)")
    quotes = [line for line in drones.splitlines() if line.startswith("  > ")]
    assert any("drone" in q for q in quotes), drones
    assert EXAMPLE in drones or "000_00196775ba7d3aee.txt" in drones


# -- the real command, in a pseudo-terminal ------------------------------------------------
def spawn_chat(tmp_path: Path, **values) -> pexpect.spawn:
    env = chat_env(tmp_path, **values)
    env["TERM"] = "xterm"
    return pexpect.spawn(
        str(NEWSBOT),
        ["chat"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 100),
    )


def expect_prompt(child: pexpect.spawn, timeout: float = 30) -> str:
    child.expect_exact(f"\n{PROMPT}", timeout=timeout)
    return child.before


def leave_with_ctrl_d(child: pexpect.spawn) -> int:
    child.sendeof()
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    return child.exitstatus


@pytest.mark.slow
def test_terminal_session_prompt_ctrl_c_and_ctrl_d(tmp_path, corpus):
    child = spawn_chat(tmp_path, **FAST)
    try:
        banner = expect_prompt(child)
        assert "2 articles, dated 2022-11-09; index up to date" in banner
        assert "/help" in banner

        child.send("a half-typed quest")
        time.sleep(0.3)
        child.sendintr()  # Ctrl-C: the line is abandoned, the chat goes on
        assert "a half-typed quest" in expect_prompt(child)
        assert child.isalive()

        child.sendline(QUESTION)
        shown = expect_prompt(child)
        assert "\x1b[1;36m" + EXAMPLE in shown  # coloured source label
        assert IRAN_QUOTE in shown.replace("\r\n\x1b[2m  │ \x1b[0m", " ")

        child.send("/sou\t")  # tab completes the command
        child.sendline("")
        assert "passages retrieved for" in expect_prompt(child)
        assert leave_with_ctrl_d(child) == 0
    finally:
        child.close(force=True)
    assert QUESTION in (tmp_path / "store" / "chat_history").read_text()

    # The history is kept between sessions: up-arrow brings the question back.
    child = spawn_chat(tmp_path, **FAST)
    try:
        expect_prompt(child)
        child.send("\x1b[A")  # up: /sources
        child.send("\x1b[A")  # up: the question
        child.send("\r")
        assert "\x1b[1;36m" + EXAMPLE in expect_prompt(child)
        child.sendline("/quit")
        child.expect(pexpect.EOF, timeout=30)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


@pytest.mark.integration
def test_terminal_ctrl_c_abandons_an_answer_with_the_real_model(tmp_path, corpus):
    child = spawn_chat(tmp_path)
    try:
        expect_prompt(child, timeout=TIMEOUT)
        # The model is still loading in the background: the first answer has to wait for it.
        child.sendline(QUESTION)
        child.expect_exact("(loading the language models", timeout=30)
        child.sendintr()
        child.expect_exact("(answer abandoned)", timeout=30)
        expect_prompt(child)
        assert child.isalive()

        child.sendline(QUESTION)
        shown = expect_prompt(child, timeout=TIMEOUT)
        assert EXAMPLE in shown
        assert IRAN_QUOTE in shown.replace("\r\n\x1b[2m  │ \x1b[0m", " ")
        assert leave_with_ctrl_d(child) == 0
    finally:
        child.close(force=True)
