"""Load run of the Telegram bot: many chats asking at once, through a fake Bot API server that
fails some sends, while the index is being updated.

    python -m benchmarks.telegram_load                 # 50 chats x 5 questions, 5% of sends fail
    python -m benchmarks.telegram_load --quick         # 5 chats x 2 questions: a smoke test
    python -m benchmarks.telegram_load --chats 10 --questions 3 --burst --fail-rate 0.2

The real bot (`bot.telegram.app.serve`, the code `newsbot telegram` runs) polls the fake Bot API
server of `tests/fake_bot_api.py` on 127.0.0.1, with the real Answerer and the bundled model
over a small corpus (a copy of the repository's corpus/ by default), indexed into a temporary
folder.

Each chat is one simulated person: they ask a question, wait for the reply, ask the next one
(follow-ups included), all chats at the same time. With --burst every question of every chat is
queued at once instead. Meanwhile:

- the server answers `--fail-rate` of the sendMessage calls with a 500, 502 or 503 before
  storing the message (so the bot must send again, and a second copy would be a duplicate);
- the index is updated incrementally, round after round, for as long as the questions last:
  each round adds an article to the corpus copy, removes the one added two rounds before, and
  runs `build_index` in a thread of the bot's process with the answerer's model (what
  `/reindex` does), or with `--update-in process` runs `newsbot index` in another process (what
  a scheduled `newsbot index` does).

What each chat should receive is known: the benchmark notes, per chat, the messages of every
answer the answerer gave (`fmt.render_html`). The server records every message it stored, so
the run counts, per chat, answers delivered exactly once and in order, duplicates, answers lost
and apologies. The time of a question is measured on the server's clock, from the moment its
update is queued to the moment the last message of its answer is stored. Prints the figures;
exits 1 unless every question was answered and delivered exactly once, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

QUESTIONS = [
    "What did Stoltenberg say about Iran?",
    "What did he tell Sky News?",
    "What did Stoltenberg say about Kherson?",
    "What did Stoltenberg say about the negotiating table?",
    "What did Colin Kahl say about casualties?",
    "Who ordered the withdrawal from Kherson?",
    "What did Stoltenberg tell CNN?",
    "What is the weather in Paris?",  # refused: the corpus does not say
]
UPDATE_ARTICLE = (
    "Harbour festival, round {k}, draws record crowds\n"
    "date 2022-11-{day:02d} Festival director Ines Laine said round {k} of the harbour festival "
    "drew {k}00 boats. “We counted sails until dark,” Laine said on the quay.\n"
)
FAILING_KINDS = ("500", "502", "503")  # answered before the message is stored

CHAT: contextvars.ContextVar[int | None] = contextvars.ContextVar("chat", default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telegram_load", description=__doc__)
    parser.add_argument("--chats", type=int, default=50, help="simultaneous chats (default 50)")
    parser.add_argument("--questions", type=int, default=5, help="questions per chat (default 5)")
    parser.add_argument("--quick", action="store_true", help="5 chats x 2 questions")
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus", help="article folder")
    parser.add_argument("--burst", action="store_true", help="queue every question at once")
    parser.add_argument(
        "--fail-rate", type=float, default=0.05, help="share of sends failing with 5xx (0.05)"
    )
    parser.add_argument(
        "--no-update", action="store_true", help="leave the index alone during the run"
    )
    parser.add_argument(
        "--update-in",
        choices=["thread", "process"],
        default="thread",
        help="update the index in a thread of the bot's process (as /reindex does; the "
        "default) or by running `newsbot index` in another process",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the failing sends")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many s")
    args = parser.parse_args(argv)
    if args.quick:
        args.chats, args.questions = 5, 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO))  # for tests.fake_bot_api
    return asyncio.run(run(args))


async def run(args) -> int:
    from telegram import Update
    from telegram.ext import TypeHandler

    from bot.answering.answer import Answerer
    from bot.settings import BotSettings
    from bot.telegram import app as tg
    from bot.telegram import formatting as fmt
    from index.build import build_index
    from index.embeddings import Embedder
    from index.settings import load_settings
    from tests.fake_bot_api import TOKEN, FakeBotApi

    with tempfile.TemporaryDirectory(prefix="newsbot-load-") as tmp, FakeBotApi() as api:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(args.corpus, corpus)
        settings = load_settings(
            BotSettings,
            _env_file=None,
            corpus_dir=corpus,
            store_dir=Path(tmp) / "store",
            embed_model="bundled",
            telegram_bot_token=TOKEN,
            telegram_base_url=api.base_url,
        )
        embedder = Embedder("bundled")
        started = time.perf_counter()
        report = build_index(settings, embedder=embedder)
        answerer = Answerer(settings, embedder=embedder)
        answerer.warm_up()
        print(
            f"index: {report.articles} articles, {report.chunks} chunks of {args.corpus} "
            f"(built and warmed up in {time.perf_counter() - started:.1f} s)"
        )
        noted = Noted(answerer, fmt.render_html)
        application = tg.build_application(settings, noted)

        async def note_chat(update: Update, context) -> None:
            # Runs first, in the task that handles the update; the answer's thread inherits it.
            if update.effective_chat:
                CHAT.set(update.effective_chat.id)

        application.add_handler(TypeHandler(Update, note_chat), group=-2)
        api.fail_sends_at_random(args.fail_rate, FAILING_KINDS, seed=args.seed)
        stop = asyncio.Event()
        bot = asyncio.create_task(tg.serve(application, settings, stop))
        updates = Updates(settings, embedder, build_index, args.update_in == "process")
        try:
            while not application.running:
                if bot.done():
                    bot.result()
                await asyncio.sleep(0.05)
            if not args.no_update:
                updates.start()
            started = time.monotonic()
            try:
                asked = await asyncio.wait_for(ask_all(api, args), args.timeout)
            except TimeoutError:
                print(f"gave up waiting after {args.timeout:.0f} s", file=sys.stderr)
                asked = dict(ASKED)
            elapsed = time.monotonic() - started
            updates.stop()
            await asyncio.to_thread(updates.join)
        finally:
            stop.set()  # the bot finishes every update it has before it stops
            await asyncio.wait_for(bot, 120)
        return summarize(api, asked, noted, updates, args, elapsed, fmt)


class Noted:
    """The answerer, noting per chat the messages each answer should become, and timing it."""

    def __init__(self, answerer, render):
        self.answerer, self.render = answerer, render
        self.seconds: list[float] = []
        self.expected: dict[int, list[str]] = {}  # chat id -> messages, in order
        self.lock = threading.Lock()

    def answer(self, question, history=(), asked_on=None):
        started = time.perf_counter()
        try:
            answer = self.answerer.answer(question, history, asked_on)
        finally:
            self.seconds.append(time.perf_counter() - started)
        with self.lock:
            self.expected.setdefault(CHAT.get(), []).append(self.render(answer))
        return answer

    def __getattr__(self, name):
        return getattr(self.answerer, name)


class Updates:
    """Incremental index updates, one round after another, until stopped: `build_index` in a
    thread of this process, or `newsbot index` in another process."""

    def __init__(self, settings, embedder, build_index, in_process: bool):
        self.settings, self.embedder, self.build_index = settings, embedder, build_index
        self.in_process = in_process
        self.rounds: list[tuple[float, int, int]] = []  # (seconds, added, removed)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-updates", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        corpus = self.settings.corpus_dir
        k = 0
        while not self._stop.is_set():
            k += 1
            text = UPDATE_ARTICLE.format(k=k, day=1 + k % 28)
            (corpus / f"zz_update_{k:04d}.txt").write_text(text, encoding="utf-8")
            old = corpus / f"zz_update_{k - 2:04d}.txt"
            removed = old.exists()
            old.unlink(missing_ok=True)
            started = time.perf_counter()
            try:
                if self.in_process:
                    self._newsbot_index()
                    added, removed = 1, int(removed)
                else:
                    added, removed = self._build()
            except Exception as exc:  # reported; the run goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.rounds.append((time.perf_counter() - started, added, removed))

    def _build(self) -> tuple[int, int]:
        report = self.build_index(self.settings, embedder=self.embedder, lock_wait=30)
        return len(report.added), len(report.removed)

    def _newsbot_index(self) -> None:
        script = Path(sys.executable).with_name("newsbot")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli.main"]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "TELEGRAM_"))},
            "NEWSBOT_CORPUS_DIR": str(self.settings.corpus_dir),
            "NEWSBOT_STORE_DIR": str(self.settings.store_dir),
            "NEWSBOT_EMBED_MODEL": "bundled",
        }
        done = subprocess.run(
            [*command, "index"],
            env=env,
            cwd=self.settings.store_dir.parent,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")


ASKED: dict[int, list[int]] = {}  # chat id -> update ids of its questions, so far


async def ask_all(api, args) -> dict[int, list[int]]:
    """Every chat asks its questions; returns chat id -> update ids of its questions."""
    ASKED.clear()

    async def person(number: int) -> None:
        chat_id = 10_000 + number
        user = {"id": chat_id, "is_bot": False, "first_name": f"Reader {number}"}
        ASKED[chat_id] = []
        for turn in range(args.questions):
            question = QUESTIONS[(number + turn) % len(QUESTIONS)]
            ASKED[chat_id].append(api.send_text(chat_id, question, user=user))
            if not args.burst:
                while len(api.sent_to(chat_id)) <= turn:
                    await asyncio.sleep(0.01)

    await asyncio.gather(*(person(n) for n in range(args.chats)))
    want = args.chats * args.questions
    while sum(len(api.sent_to(c)) for c in ASKED) < want:
        await asyncio.sleep(0.01)
    return dict(ASKED)


def summarize(api, asked, noted, updates, args, elapsed, fmt) -> int:
    total = args.chats * args.questions
    latencies: list[float] = []
    exact = duplicates = lost = misordered = apologies = 0
    for chat_id, update_ids in asked.items():  # a chat stuck on a lost answer asked no more
        answers = noted.expected.get(chat_id, [])  # each answer: its messages
        expected = [part for parts in answers for part in parts]
        messages = api.sent_to(chat_id)
        delivered = [m["text"] for m in messages]
        apologies += delivered.count(fmt.APOLOGY)
        unused, arrived = Counter(delivered), 0
        for parts in answers:  # an answer arrived when all of its messages did
            if all(unused[part] > 0 for part in parts):
                unused.subtract(parts)
                arrived += 1
        lost += args.questions - arrived  # never answered, never delivered, or never asked
        duplicates += sum(n for text, n in unused.items() if n > 0 and text in expected)
        if delivered == expected and len(answers) == len(update_ids):
            exact += len(update_ids)
            end = 0
            for update_id, parts in zip(update_ids, answers, strict=True):
                end += len(parts)
                latencies.append(messages[end - 1]["at"] - api.queued_at[update_id])
        elif Counter(delivered) == Counter(expected):
            misordered += 1
    failed = Counter(f["failure"] for f in api.failed)
    mode = "all queued at once" if args.burst else "each waits for its reply"
    print(
        f"load: {args.chats} chats x {args.questions} questions = {total} questions ({mode}), "
        "through a fake Bot API server on 127.0.0.1"
    )
    print(
        f"sends failed by the server: {sum(failed.values())} "
        f"({', '.join(f'{n} x {kind}' for kind, n in sorted(failed.items())) or 'none'}) "
        f"of {len(api.sent) + sum(failed.values())} sendMessage calls "
        f"(--fail-rate {args.fail_rate:g})"
    )
    if args.no_update:
        print("index updates during the run: none (--no-update)")
    else:
        added = sum(a for _, a, _ in updates.rounds)
        removed = sum(r for _, _, r in updates.rounds)
        seconds = [s for s, _, _ in updates.rounds]
        took = f", each {spread(seconds)}" if seconds else ""
        where = "`newsbot index` processes" if args.update_in == "process" else "builds in a thread"
        print(
            f"index updates during the run: {len(updates.rounds)} incremental {where} "
            f"(+{added} / -{removed} articles){took}; errors: {len(updates.errors)}"
        )
        for error in updates.errors[:3]:
            print(f"  update error: {error}")
    print(
        f"delivered exactly once and in order: {exact}/{total}; duplicate messages "
        f"{duplicates}, answers lost {lost}, chats out of order {misordered}, "
        f"apologies {apologies}, rejected by the server (4xx) {len(api.rejected)}"
    )
    if latencies:
        print(f"update -> reply: {spread(latencies)}, max {max(latencies):.3f} s")
    if noted.seconds:
        print(f"answerer alone (in its thread): {spread(noted.seconds)}")
    print(f"throughput: {total / elapsed:.2f} questions/s ({elapsed:.1f} s in all)")
    return 0 if exact == total and not duplicates and not lost and not apologies else 1


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, p95 {percentile(values, 95):.3f} s"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


if __name__ == "__main__":
    sys.exit(main())
