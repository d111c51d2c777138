"""Many bots, one index: `newsbot telegram` processes sharing one Chroma server with an indexer.

Run as a user would (docs/SCALE-OUT.md): one `chroma run` on 127.0.0.1, one `newsbot index`
and two `newsbot telegram` processes, every one a real process started from its own
environment. Each bot polls a fake Bot API of its own (`FakeBotApi` serves one token, and two
bots on one token would take each other's updates, as on Telegram). All of them read the same
corpus folder (a bot re-reads every quote from its file) and the same Chroma server, and each has
its own store folder: the indexer's holds its manifest and lock, a bot's the BM25 state it keeps
in step with the server -- so the test also shows a bot needs nothing the indexer writes
locally, as a bot on another machine would not have it.

What it checks, in the order a user would see it: both bots answer from the first articles;
while they run, `newsbot index` adds an article and rewrites another (questions sent while it
runs are answered too); on their next question both answer from the new and the rewritten text,
never from the old version, and the BM25 state each saved holds exactly the chunks now on the
server; a third bot started afterwards answers, and the time from its start to its first answer
is printed and bounded loosely (60 s: the machine is shared, the target is 30 s). No process
logs an error, a warning or a traceback (a bot that cannot save its BM25 state warns). The real
bundled model is used throughout: a run took 55 to 100 s on two cores shared with other work.
It does not aim at the few milliseconds in which a build moves the generation; retrieval under
a moving index is tested in-process (test_live_update.py). Every wait is bounded, and every
process is stopped in teardown, failed test or not.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_bot_api import ALICE, FakeBotApi
from test_store_server import chroma_server  # noqa: F401 (a fixture: `chroma run` on loopback)

from index.lexical import BM25Index, cache_path
from index.settings import load_settings
from index.store import ChunkStore

pytestmark = pytest.mark.slow

NEWSBOT = Path(sys.executable).with_name("newsbot")
READY_BOUND = 60.0  # seconds from a bot's start to its first answer (target: 30 s)
ANSWER_WAIT = 120.0  # a question, answered by a bot on a loaded machine
START_WAIT = 180.0  # a bot's start (model loads) while others run

FIRST = {
    "lighthouse.txt": (
        "Velmora lighthouse shines again",
        "2024-03-02",
        "The lighthouse of Velmora was repainted in cobalt blue by its keeper Ansel Drury. "
        "Drury said the new lamp can be seen forty kilometres out at sea. "
        "Fishermen in the harbour welcomed the change.",
    ),
    "festival.txt": (
        "Quillmoor cheese festival",
        "2024-03-03",
        "The Quillmoor cheese festival drew 4,200 visitors on Sunday, organiser Petra "
        "Lindqvist said. Lindqvist said the goat cheese stalls sold out before noon. "
        "The town plans a second festival in autumn.",
    ),
    "railway.txt": (
        "Brask railway bridge opens",
        "2024-03-04",
        "A new railway bridge over the river Brask opened on Monday. Engineers said the steel "
        "arch took three years to build. Trains will cross it every twenty minutes.",
    ),
}
REWRITTEN = (
    "Quillmoor cheese festival called off",
    "2024-03-05",
    "The Quillmoor cheese festival was called off after the river flooded the market square, "
    "organiser Petra Lindqvist said. Lindqvist said the stalls would be moved to the old "
    "tannery next spring.",
)
ADDED = (
    "glacier.txt",
    (
        "Tarnholt glacier retreats",
        "2024-03-06",
        "The Tarnholt glacier retreated thirty-seven metres in one summer, glaciologist Ines "
        "Okafor said. Okafor said her team measured the ice front with drones every week.",
    ),
)
FESTIVAL_QUESTION = "What did organiser Petra Lindqvist say about the Quillmoor cheese festival?"
GLACIER_QUESTION = "How far did the Tarnholt glacier retreat?"
LIGHTHOUSE_QUESTION = "What colour was the Velmora lighthouse painted?"


def write_article(folder: Path, name: str, article: tuple[str, str, str]) -> None:
    title, date, body = article
    (folder / name).write_text(f"{title}\ndate {date} {body}\n", encoding="utf-8")


class Bot:
    """One `newsbot telegram` process and the fake Bot API it polls."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, api: FakeBotApi):
        self.name, self.api, self.store_dir = name, api, folder / name
        self.log_path = folder / f"{name}.log"
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(NEWSBOT), "telegram"],
                env={
                    **env,
                    "NEWSBOT_STORE_DIR": str(self.store_dir),
                    "TELEGRAM_BOT_TOKEN": api.token,
                    "TELEGRAM_BASE_URL": api.base_url,
                },
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def ask(self, question: str) -> Callable[[], str]:
        """Send `question` from Alice; returns a wait for its answer (the text of the reply)."""
        before = len(self.api.sent_to(ALICE["id"]))
        self.api.send_text(ALICE["id"], question, user=ALICE)

        def answer() -> str:
            def replied():
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.log()}")
                return self.api.texts_to(ALICE["id"])[before:]

            return self.api.wait_for(replied, timeout=ANSWER_WAIT)[0]

        return answer

    def wait_polling(self) -> None:
        deadline = time.monotonic() + START_WAIT
        while "getUpdates" not in self.api.methods():
            assert self.process.poll() is None, f"{self.name} exited: {self.log()}"
            assert time.monotonic() < deadline, f"{self.name} did not start: {self.log()}"
            time.sleep(0.1)

    def rss_mb(self) -> float:
        """The process's resident memory (Linux: /proc), in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        kilobytes = next(line.split()[1] for line in status.splitlines() if line[:6] == "VmRSS:")
        return int(kilobytes) / 1024

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int | None:
        """SIGINT (a clean stop), then SIGKILL if it does not go; the exit status of SIGINT."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                return None
        return self.process.returncode


@pytest.fixture
def bots(tmp_path) -> Iterator[Callable[[str, dict[str, str]], Bot]]:
    """start(name, env) -> a running Bot; every bot and fake API is stopped at the end."""
    started: list[Bot] = []

    def start(name: str, env: dict[str, str]) -> Bot:
        bot = Bot(name, env, tmp_path, FakeBotApi().start())
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()
        bot.api.stop()


@contextlib.contextmanager
def indexing(env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    """A `newsbot index --json` process, killed on the way out if it is still running."""
    index = subprocess.Popen(
        [str(NEWSBOT), "index", "--json"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield index
    finally:
        if index.poll() is None:
            index.kill()
            index.communicate()


def finished(index: subprocess.Popen) -> dict:
    """The report of an index run, once it ended well and logged nothing bad."""
    out, err = index.communicate(timeout=300)
    assert index.returncode == 0, err
    assert_clean("newsbot index", err)
    return json.loads(out)


def assert_clean(name: str, log: str) -> None:
    """No error, no traceback, no warning (a warning here would mean a state not saved, say)."""
    bad = [
        line
        for line in log.splitlines()
        if line.startswith(("ERROR", "CRITICAL", "WARNING")) or "Traceback" in line
    ]
    assert not bad, f"{name} logged:\n{log}"


def saved_chunks(bot: Bot) -> tuple[int | None, set[str]]:
    """(generation, chunk ids) of the BM25 state the bot saved in its own store folder."""
    state = BM25Index.load(cache_path(bot.store_dir))
    return state.generation, set(state.ids)


def test_two_bots_and_an_indexer_share_one_chroma_server(
    chroma_server,  # noqa: F811 (the fixture imported above)
    cli_env,
    bots,
    tmp_path,
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, article in FIRST.items():
        write_article(corpus, name, article)
    shared = cli_env(
        corpus_dir=corpus,
        embed_model="bundled",
        chroma_host="127.0.0.1",
        chroma_port=chroma_server,
        log_level="INFO",
    )
    indexer = {**shared, "NEWSBOT_STORE_DIR": str(tmp_path / "indexer")}
    with indexing(indexer, tmp_path) as index:
        first = finished(index)
    assert sorted(first["added"]) == sorted(FIRST)

    one, two = bots("bot1", shared), bots("bot2", shared)
    for bot in (one, two):
        bot.wait_polling()
    for bot, answer in [(bot, bot.ask(FESTIVAL_QUESTION)) for bot in (one, two)]:
        text = answer()
        assert "festival.txt" in text and "4,200 visitors" in text, (bot.name, text)
        print(f"\n{bot.name} holds {bot.rss_mb():.0f} MB (RSS) after its first answer")

    # The indexer adds one article and rewrites another while both bots run and are asked.
    write_article(corpus, "festival.txt", REWRITTEN)
    write_article(corpus, *ADDED)
    with indexing(indexer, tmp_path) as index:
        during = [bot.ask(LIGHTHOUSE_QUESTION) for bot in (one, two)]
        for answer in during:  # the index as it was or as it will be: either has this article
            assert "cobalt blue" in answer()
        second = finished(index)
    assert (second["added"], second["updated"]) == (["glacier.txt"], ["festival.txt"])

    on_server = ChunkStore(
        load_settings(_env_file=None, chroma_host="127.0.0.1", chroma_port=chroma_server)
    )
    generation, chunk_ids = on_server.info().generation, set(on_server.all_ids())
    for bot in (one, two):
        glacier, festival = bot.ask(GLACIER_QUESTION)(), bot.ask(FESTIVAL_QUESTION)()
        assert "glacier.txt" in glacier and "thirty-seven metres" in glacier, (bot.name, glacier)
        assert "flooded the market square" in festival, (bot.name, festival)
        assert "4,200" not in festival and "goat cheese" not in festival, (bot.name, festival)
        assert saved_chunks(bot) == (generation, chunk_ids), bot.name

    three = bots("bot3", shared)
    three.wait_polling()
    text = three.ask(GLACIER_QUESTION)()
    ready = time.monotonic() - three.started
    print(f"\na third bot answered {ready:.1f} s after its start (bound {READY_BOUND:.0f} s)")
    assert "thirty-seven metres" in text
    assert ready < READY_BOUND
    assert saved_chunks(three) == (generation, chunk_ids)

    for bot in (one, two, three):
        assert bot.stop() == 0, bot.log()
        assert_clean(bot.name, bot.log())
