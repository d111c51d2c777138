"""Load run of the Telegram bot: many chats asking at once, through a fake Bot API server.

    python -m benchmarks.telegram_load                 # 50 chats x 5 questions
    python -m benchmarks.telegram_load --chats 10 --questions 3 --burst

The real bot (`bot.telegram.serve`, the code `newsbot telegram` runs) polls the fake Bot API
server of `tests/fake_bot_api.py` on 127.0.0.1, with the real Answerer and the bundled model
over a small corpus (the repository's corpus/ by default), indexed into a temporary folder.

Each chat is one simulated person: they ask a question, wait for the reply, ask the next one
(follow-ups included), all chats at the same time. With --burst every question of every chat is
queued at once instead. The time of a question is measured on the server's clock, from the
moment its update is queued to the moment the bot's reply arrives (sendMessage). Prints the
figures; it asserts nothing (the tests do that) but exits 1 if a question went unanswered.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telegram_load", description=__doc__)
    parser.add_argument("--chats", type=int, default=50, help="simultaneous chats (default 50)")
    parser.add_argument("--questions", type=int, default=5, help="questions per chat (default 5)")
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus", help="article folder")
    parser.add_argument("--burst", action="store_true", help="queue every question at once")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many s")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO))  # for tests.fake_bot_api
    return asyncio.run(run(args))


async def run(args) -> int:
    from bot import telegram as tg
    from bot import telegram_format as fmt
    from bot.answer import Answerer
    from bot.settings import BotSettings
    from index.build import build_index
    from index.embeddings import Embedder
    from index.settings import load_settings
    from tests.fake_bot_api import TOKEN, FakeBotApi

    with tempfile.TemporaryDirectory(prefix="newsbot-load-") as tmp, FakeBotApi() as api:
        settings = load_settings(
            BotSettings,
            _env_file=None,
            corpus_dir=args.corpus,
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
        timings = Timings(answerer)
        application = tg.build_application(settings, timings)
        stop = asyncio.Event()
        bot = asyncio.create_task(tg.serve(application, settings, stop))
        try:
            while not application.running:
                if bot.done():
                    bot.result()
                await asyncio.sleep(0.05)
            started = time.monotonic()
            asked = await asyncio.wait_for(ask_all(api, args), args.timeout)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            await asyncio.wait_for(bot, 30)
        return summarize(api, asked, args, elapsed, timings, fmt.APOLOGY)


class Timings:
    """The answerer, timing each answer (in its worker thread)."""

    def __init__(self, answerer):
        self.answerer = answerer
        self.seconds: list[float] = []

    def answer(self, question, history=(), asked_on=None):
        started = time.perf_counter()
        try:
            return self.answerer.answer(question, history, asked_on)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def __getattr__(self, name):
        return getattr(self.answerer, name)


async def ask_all(api, args) -> dict[int, list[int]]:
    """Every chat asks its questions; returns chat id -> update ids of its questions."""
    asked: dict[int, list[int]] = {}

    async def person(number: int) -> None:
        chat_id = 10_000 + number
        user = {"id": chat_id, "is_bot": False, "first_name": f"Reader {number}"}
        asked[chat_id] = []
        for turn in range(args.questions):
            question = QUESTIONS[(number + turn) % len(QUESTIONS)]
            asked[chat_id].append(api.send_text(chat_id, question, user=user))
            if not args.burst:
                while len(api.sent_to(chat_id)) <= turn:
                    await asyncio.sleep(0.01)

    await asyncio.gather(*(person(n) for n in range(args.chats)))
    want = args.chats * args.questions
    while sum(len(api.sent_to(c)) for c in asked) < want:
        await asyncio.sleep(0.01)
    return asked


def summarize(api, asked, args, elapsed, timings, apology) -> int:
    latencies, lost, apologies = [], 0, 0
    for chat_id, update_ids in asked.items():
        replies = api.sent_to(chat_id)
        # Answers to these questions fit one message, and a chat's replies come in order.
        for k, update_id in enumerate(update_ids):
            if k >= len(replies):
                lost += 1
                continue
            apologies += replies[k]["text"] == apology
            latencies.append(replies[k]["at"] - api.queued_at[update_id])
        extra = len(replies) - len(update_ids)
        if extra > 0:
            print(f"chat {chat_id}: {extra} more messages than questions (split answers?)")
    total = args.chats * args.questions
    answered = len(latencies) - apologies
    mode = "all queued at once" if args.burst else "each waits for its reply"
    print(
        f"load: {args.chats} chats x {args.questions} questions = {total} questions ({mode}), "
        "through a fake Bot API server on 127.0.0.1"
    )
    print(
        f"answered {answered}/{total}, lost {lost}, apologies {apologies}, "
        f"rejected by the server {len(api.rejected)}"
    )
    if latencies:
        print(f"update -> reply: {spread(latencies)}, max {max(latencies):.3f} s")
    if timings.seconds:
        print(f"answerer alone (in its thread): {spread(timings.seconds)}")
    print(f"throughput: {total / elapsed:.1f} questions/s ({elapsed:.1f} s in all)")
    return 0 if answered == total and not lost else 1


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, p95 {percentile(values, 95):.3f} s"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


if __name__ == "__main__":
    sys.exit(main())
