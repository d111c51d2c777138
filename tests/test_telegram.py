"""The Telegram front end.

Handler tests drive the real Application with `Update.de_json` + `process_update` (the approach
of python-telegram-bot's own tests) and a fake answerer; its replies go to the fake Bot API
server of `fake_bot_api.py`, which records them and, like Telegram, refuses HTML that does not
parse and messages over 4,096 characters; on demand it fails sends the ways a real server can
(5xx, an HTML page, bad JSON, a dropped connection, a hang). Button presses and inline
queries are updates like messages (`press`, `type_inline`); the fake answers a reply to a
deleted message as Telegram does. The end-to-end tests run the real Application polling that
server through TELEGRAM_BASE_URL (or serving its webhook), with the real Answerer and the
bundled model. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from fake_bot_api import ALICE, TAG, TOKEN, FakeBotApi, html_error, press, type_inline
from telegram import Update

from bot.answering.answer import Answerer, QuestionError
from bot.answering.types import Answer, IndexStats, Passage, Quote
from bot.answering.wording import format_answer
from bot.settings import WEBHOOK_SECRET, BotSettings
from bot.telegram import app as tg
from bot.telegram import buttons
from bot.telegram import formatting as fmt
from index.build import BuildReport, build_index
from index.errors import IndexBusyError
from index.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
SECRET = TOKEN.split(":")[1]
BOB = {"id": 102, "is_bot": False, "first_name": "Bob", "username": "Bob_R"}
ADMIN = {"id": 900, "is_bot": False, "first_name": "Ada", "username": "ada"}
STRANGER = {"id": 666, "is_bot": False, "first_name": "Eve", "username": "eve"}
GROUP = -100123
STICKER = {
    "file_id": "CAAD",
    "file_unique_id": "AQAD",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "type": "regular",
}
PHOTO = [{"file_id": "AgAD", "file_unique_id": "AQAE", "width": 90, "height": 90}]
VOICE = {"file_id": "AwAD", "file_unique_id": "AQAF", "duration": 3}
DOCUMENT = {"file_id": "BQAD", "file_unique_id": "AQAG", "file_name": "notes.pdf"}


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture
def api():
    with FakeBotApi() as server:
        yield server


def bot_settings(api: FakeBotApi, **values) -> BotSettings:
    values = {
        "telegram_bot_token": TOKEN,
        "telegram_base_url": api.base_url,
        "embed_model": "hashing",
        **values,
    }
    return load_settings(BotSettings, _env_file=None, **values)


class FakeAnswerer:
    """Quotes the question back from 001_fake.txt (and 002_other.txt when it says "two";
    many times when it says "long"); "slow" questions take a while, "boom" ones crash;
    "nothing" is refused with no passages, "unquoted" with some."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.asked: list[tuple[str, int]] = []  # (question, turns of history given)
        self.without_llm: list[str] = []  # questions asked for their passages only

    def answer(self, question, history=(), asked_on=None, with_llm=True):
        self.asked.append((question, len(history)))
        if not with_llm:
            self.without_llm.append(question)
        if "slow" in question:
            time.sleep(self.delay)
        if "boom" in question:
            raise RuntimeError(f"boom at https://api.telegram.org/bot{TOKEN}/sendMessage")
        if len(question) > 200:
            raise QuestionError(f"That question is too long ({len(question)} characters).")
        quote = Quote(f"Said: {question}", "001_fake.txt", 0, 9, "A <fake> title", "2022-11-09")
        passage = Passage(f"The passage behind {question}", "001_fake.txt", 0, 30, None, None)
        if "nothing" in question:
            return Answer(question, "I could not find this in the articles.", refused=True)
        if "unquoted" in question:
            return Answer(question, "None of them says.", refused=True, passages=[passage])
        quotes = [quote]
        if "two" in question:
            quotes.insert(0, replace(quote, source="002_other.txt", title="Other news"))
        if "long" in question:
            quotes = [replace(quote, text=f"{k}: " + "word " * 700) for k in range(4)] + quotes
        return Answer(
            question=question,
            text=format_answer(quotes),
            quotes=quotes,
            passages=[passage],
            standalone_question=question,
        )

    def stats(self):
        return IndexStats(2, 5, "2022-11-09", "2022-11-10", time.time() - 90)

    def refresh(self):
        return False


@contextlib.asynccontextmanager
async def initialized(api: FakeBotApi, answerer, **values):
    """The Application, initialized against the fake server, for `process_update`."""
    application = tg.build_application(bot_settings(api, **values), answerer)
    async with application:
        yield application


@contextlib.asynccontextmanager
async def running(api: FakeBotApi, answerer, **values):
    """The bot serving as `newsbot telegram` does (`tg.serve`), in this event loop."""
    settings = bot_settings(api, **values)
    application = tg.build_application(settings, answerer)
    stop = asyncio.Event()
    task = asyncio.create_task(tg.serve(application, settings, stop))
    try:
        await until(lambda: application.running or task.done(), 15, "the bot to start")
        if task.done():
            task.result()
        yield application
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


_update_ids = itertools.count(1)


async def process(application, api: FakeBotApi, chat_id: int, text=None, kind="message", **kw):
    """Hand one update to the application directly; returns the message it carried."""
    message = api.message(chat_id, text, **kw)
    data = {"update_id": next(_update_ids), kind: message}
    await application.process_update(Update.de_json(data, application.bot))
    return message


async def until(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s")


def visible(part: str) -> str:
    return html.unescape(TAG.sub("", part))


def group_kw(user=ALICE, **kw):
    return {"user": user, "chat_type": "supergroup", **kw}


# -- handlers ------------------------------------------------------------------------------
async def test_private_question_is_answered_in_escaped_html(api):
    answerer = FakeAnswerer()
    async with initialized(api, answerer) as app:
        await process(app, api, 101, "Who wrote <b> & *this* [x] `y`?", user=ALICE)
    [sent] = api.sent_to(101)
    assert sent["parse_mode"] == "HTML" and html_error(sent["text"]) is None
    text = visible(sent["text"])
    assert "Said: Who wrote <b> & *this* [x] `y`?" in text
    assert "001_fake.txt · A <fake> title · 2022-11-09" in text
    assert "reply_parameters" not in sent  # a private chat needs no threading
    assert sent["link_preview_options"] == {"is_disabled": True}
    assert not api.rejected


async def test_question_error_gives_its_polite_message(api):
    async with initialized(api, FakeAnswerer()) as app:
        await process(app, api, 101, "why " * 60, user=ALICE)
    assert api.texts_to(101) == ["That question is too long (240 characters)."]


async def test_commands_start_help_stats_and_unknown(api):
    async with initialized(api, FakeAnswerer()) as app:
        for command in ("/start", "/help", "/stats", "/frobnicate"):
            await process(app, api, 101, command, user=ALICE)
    start, help_, stats, unknown = api.texts_to(101)
    assert start == fmt.START and help_ == fmt.HELP and unknown == fmt.UNKNOWN_COMMAND
    assert "<b>2</b> articles" in stats and "2022-11-09 to 2022-11-10" in stats
    assert "(1 minute ago)" in stats
    assert all(html_error(t) is None for t in api.texts_to(101))


async def test_non_text_in_private_gets_one_line_and_in_groups_silence(api):
    answerer = FakeAnswerer()
    async with initialized(api, answerer) as app:
        for media in ({"sticker": STICKER}, {"photo": PHOTO}, {"voice": VOICE}):
            await process(app, api, 101, None, user=ALICE, **media)
            await process(app, api, GROUP, None, **group_kw(), **media)
        await process(app, api, 101, None, user=ALICE, document=DOCUMENT, caption="see this")
        edited = {"edit_date": int(time.time())}
        await process(app, api, 101, "fixed typo?", "edited_message", user=ALICE, **edited)
        await process(app, api, GROUP, "@newsbot_test_bot hi", "edited_message", **group_kw())
    assert api.texts_to(101) == [fmt.NOT_TEXT] * 4 + [fmt.EDITED]
    assert api.sent_to(GROUP) == [] and answerer.asked == []


async def test_groups_answer_only_when_addressed(api):
    answerer = FakeAnswerer()
    async with initialized(api, answerer) as app:
        await process(app, api, GROUP, "anyone seen the news about Iran?", **group_kw())
        await process(app, api, GROUP, "/ask@some_other_bot what?", **group_kw())
        mention = await process(
            app, api, GROUP, "@NewsBot_Test_Bot what did he say?", **group_kw(user=BOB)
        )
        bot_said = api.bot_message(GROUP, "an earlier answer", "supergroup")
        reply = await process(
            app, api, GROUP, "and about drones?", **group_kw(reply_to_message=bot_said)
        )
        ask = await process(app, api, GROUP, "/ask about Kherson", **group_kw())
        await process(app, api, GROUP, "/ask", **group_kw())
        await process(app, api, GROUP, "/start@newsbot_test_bot", **group_kw())
    assert [q for q, _ in answerer.asked] == [
        "what did he say?",
        "and about drones?",
        "about Kherson",
    ]
    sent = api.sent_to(GROUP)
    assert [visible(m["text"]).split("\n")[-1] for m in sent[:3]] == [
        "Said: what did he say?",
        "Said: and about drones?",
        "Said: about Kherson",
    ]
    replied_to = [m["reply_parameters"]["message_id"] for m in sent[:3]]
    assert replied_to == [mention["message_id"], reply["message_id"], ask["message_id"]]
    assert all(m["reply_parameters"]["allow_sending_without_reply"] for m in sent[:3])
    assert [m["text"] for m in sent[3:]] == [fmt.ASK_USAGE, fmt.START]
    # Memory is the group's: the second question saw the first.
    assert [turns for _, turns in answerer.asked] == [0, 1, 2]


async def test_strangers_get_one_polite_refusal_in_private_and_silence_in_groups(api):
    answerer = FakeAnswerer()
    allowed = {"telegram_allowed_users": "101, @bob_r", "telegram_admin_users": "900"}
    async with initialized(api, answerer, **allowed) as app:
        await process(app, api, 666, "What did Stoltenberg say?", user=STRANGER)
        await process(app, api, 666, "/sources", user=STRANGER)
        await process(app, api, 666, "hello??", user=STRANGER)
        # In a group, a stranger who addresses the bot in every way gets no word from it.
        other = {**STRANGER, "id": 667}
        bot_said = api.bot_message(GROUP, "an earlier answer", "supergroup")
        for text, extra in [
            ("chatter", {}),
            ("@newsbot_test_bot hi", {}),
            ("/ask@newsbot_test_bot what?", {}),
            ("/start", {}),
            ("and about drones?", {"reply_to_message": bot_said}),
        ]:
            await process(app, api, GROUP, text, **group_kw(user=other, **extra))
        await process(app, api, 101, "by id", user=ALICE)
        await process(app, api, 102, "by username", user=BOB)
        await process(app, api, 900, "an admin", user=ADMIN)
        await process(app, api, GROUP, "@newsbot_test_bot from a member?", **group_kw())
    assert api.texts_to(666) == [fmt.NOT_ALLOWED]
    assert [q for q, _ in answerer.asked] == ["by id", "by username", "an admin", "from a member?"]
    [member_answer] = api.sent_to(GROUP)  # a member of the allow list is answered there
    assert "Said: from a member?" in visible(member_answer["text"])


async def test_reindex_is_for_admins_and_busy_is_a_polite_line(api, monkeypatch):
    report = BuildReport(added=["new.txt"], unchanged=["a.txt"], articles=2, chunks=4)
    outcomes = [report, IndexBusyError("Another indexer (pid 1) is updating ...")]

    def fake_reindex(bot_data):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(tg, "reindex", fake_reindex)
    async with initialized(api, FakeAnswerer(), telegram_admin_users="@Ada") as app:
        await process(app, api, 101, "/reindex", user=ALICE)
        await process(app, api, 900, "/reindex", user=ADMIN)
        await process(app, api, 900, "/reindex", user=ADMIN)
    assert api.texts_to(101) == [fmt.ADMINS_ONLY]
    assert api.texts_to(900) == [
        fmt.REINDEX_STARTED,
        fmt.render_report(report),
        fmt.REINDEX_STARTED,
        fmt.INDEX_BUSY,
    ]


async def test_memory_follow_ups_sources_reset_and_bounds(api, monkeypatch):
    monkeypatch.setattr(tg, "MAX_CHATS", 2)
    monkeypatch.setattr(tg, "SOURCES_KEPT", 2)
    answerer = FakeAnswerer()
    async with initialized(api, answerer, history_turns=2) as app:
        for question in ("first?", "second?", "third?"):
            await process(app, api, 101, question, user=ALICE)
        await process(app, api, 101, "/sources", user=ALICE)
        history = app.chat_data[101][tg.HISTORY]
        assert [a.question for a in history] == ["second?", "third?"]  # bounded
        assert all(not a.passages for a in history)  # only the last few keep their passages
        kept = app.chat_data[101][tg.ANSWERS].values()
        assert [a.question for a in kept if a.passages] == ["second?", "third?"]
        await process(app, api, 101, "/reset", user=ALICE)
        assert tg.ANSWERS not in app.chat_data[101]
        await process(app, api, 101, "/sources", user=ALICE)
        await process(app, api, 101, "fresh?", user=ALICE)
        # Only the most recently active chats are remembered at all.
        await process(app, api, 102, "bob?", user=BOB)
        await process(app, api, 103, "carol?", user={**BOB, "id": 103, "username": "c"})
        assert tg.HISTORY not in app.chat_data.get(101, {})
        assert set(app.bot_data[tg.CHATS]) == {102, 103}
    assert [turns for _, turns in answerer.asked] == [0, 1, 2, 0, 0, 0]
    texts = api.texts_to(101)
    assert "The passage behind third?" in visible(texts[3])
    assert texts[4:6] == [fmt.RESET, fmt.NO_SOURCES]


async def test_errors_get_an_apology_and_a_traceback_without_the_token(api, caplog):
    async with initialized(api, FakeAnswerer()) as app:
        with caplog.at_level(logging.DEBUG):
            await process(app, api, 101, "boom?", user=ALICE)
    assert api.texts_to(101) == [fmt.APOLOGY]
    assert "RuntimeError: boom" in caplog.text and "Traceback" in caplog.text
    assert SECRET not in caplog.text  # nor in any URL python-telegram-bot logged at DEBUG
    assert "bot123456789:[token]" in caplog.text


@pytest.mark.slow
async def test_typing_is_shown_and_renewed_while_answering(api, monkeypatch):
    monkeypatch.setattr(tg, "TYPING_EVERY", 0.1)
    async with initialized(api, FakeAnswerer(delay=0.6)) as app:
        await process(app, api, 101, "a slow one?", user=ALICE)
        await process(app, api, GROUP, "@newsbot_test_bot slow too?", **group_kw())
    private = [a for a in api.actions if int(a["chat_id"]) == 101]
    assert len(private) >= 3 and all(a["action"] == "typing" for a in private)
    assert private[-1]["at"] <= api.sent_to(101)[0]["at"]  # it stops before the reply
    assert any(int(a["chat_id"]) == GROUP for a in api.actions)


@pytest.mark.slow
async def test_flood_control_waits_as_asked_then_sends(api):
    api.retry_after(1)
    async with initialized(api, FakeAnswerer()) as app:
        await process(app, api, 101, "flooded?", user=ALICE)
    [refused] = api.rejected
    [sent] = api.sent_to(101)
    assert refused["error"] == 429 and refused["text"] == sent["text"]
    assert sent["at"] - refused["at"] >= 1.0
    assert "Said: flooded?" in visible(sent["text"])


# -- buttons under answers -----------------------------------------------------------------
FAKE_ARTICLE = (
    "A <fake> title\ndate 2022-11-09 Said: it all & more <b>here</b>.\nSecond paragraph.\n"
)


@pytest.fixture
def news(tmp_path) -> dict:
    """Settings values with a corpus folder holding the FakeAnswerer's articles."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "001_fake.txt").write_text(FAKE_ARTICLE, encoding="utf-8")
    (corpus / "002_other.txt").write_text("Other news\nThe other article.\n", encoding="utf-8")
    return {"corpus_dir": corpus}


def button_data(api: FakeBotApi, sent: dict) -> dict[str, str]:
    return dict(api.buttons(sent))


async def test_an_answer_has_sources_and_whole_article_buttons_that_work(api, news):
    answerer = FakeAnswerer()
    async with initialized(api, answerer, **news) as app:
        await process(app, api, 101, "What did <he> say?", user=ALICE)
        [answer] = api.sent_to(101)
        data = button_data(api, answer)
        assert list(data) == ["Sources", "Whole article"]
        assert data["Sources"].endswith(":What did <he> say?")
        sources = await press(app, api, answer, data["Sources"])
        article = await press(app, api, answer, data["Whole article"])
        remembered = app.chat_data[101][tg.LAST]
    assert api.answered(sources)["callback_query_id"] == sources
    assert "text" not in api.answered(sources) and "text" not in api.answered(article)
    assert len(api.button_answers) == 2  # each press answered once
    _, shown_sources, shown_article = api.texts_to(101)
    assert [shown_sources] == fmt.render_sources(remembered)
    assert "The passage behind What did <he> say?" in visible(shown_sources)
    assert shown_article.startswith("<code>001_fake.txt</code> · <b>A &lt;fake&gt; title</b>")
    assert visible(shown_article).endswith("Said: it all & more <b>here</b>.\n\nSecond paragraph.")
    assert [q for q, _ in answerer.asked] == ["What did <he> say?"]  # nothing asked again
    assert not api.rejected and fmt.APOLOGY not in api.texts_to(101)


async def test_buttons_sit_under_the_last_part_and_one_per_cited_article(api, news):
    async with initialized(api, FakeAnswerer(), **news) as app:
        await process(app, api, 101, "two long ones?", user=ALICE)
        *first, last = api.sent_to(101)
        assert first and all("reply_markup" not in m for m in first)
        labels = [text for text, _ in api.buttons(last)]
        assert labels == ["Sources", "Whole article: A <fake> title", "Whole article: Other news"]
        other = dict(api.buttons(last))["Whole article: Other news"]
        await press(app, api, last, other)
    assert visible(api.texts_to(101)[-1]).endswith("The other article.")


async def test_no_buttons_under_refusals_without_passages_nor_errors(api, news):
    async with initialized(api, FakeAnswerer(), **news) as app:
        await process(app, api, 101, "nothing at all?", user=ALICE)
        await process(app, api, 101, "why " * 60, user=ALICE)
        await process(app, api, 101, "boom?", user=ALICE)
        await process(app, api, 101, "unquoted?", user=ALICE)
    nothing, too_long, apology, unquoted = api.sent_to(101)
    assert apology["text"] == fmt.APOLOGY
    assert all("reply_markup" not in m for m in (nothing, too_long, apology))
    assert [text for text, _ in api.buttons(unquoted)] == ["Sources"]  # what it read


async def test_buttons_keep_working_after_a_restart_or_say_the_answer_is_too_old(api, news):
    answerer = FakeAnswerer()
    long_question = "What did the officials in Kyiv say about the drones and power cuts?"
    again = long_question.replace("Kyiv", "Kherson long")  # "long": an answer in parts
    async with initialized(api, answerer, **news) as app:
        await process(app, api, 101, "Short one?", user=ALICE)
        await process(app, api, 101, long_question, user=ALICE)
        asked = await process(app, api, GROUP, f"@newsbot_test_bot {again}", **group_kw())
    short, long = api.sent_to(101)
    *_, in_group = api.sent_to(GROUP)  # the buttons are under the last part ...
    assert len(api.sent_to(GROUP)) >= 2
    assert in_group["reply_parameters"]["message_id"] == asked["message_id"]  # ... a reply too
    assert button_data(api, long)["Sources"].count(":") == 1  # the question did not fit
    answerer.asked.clear()
    async with initialized(api, answerer, **news) as restarted:  # memory gone
        await press(restarted, api, short)
        await press(restarted, api, in_group)
        too_old = await press(restarted, api, long)
        await press(restarted, api, long, button_data(api, long)["Whole article"])
    # Sources retrieved again: for the question the button carries, or the one it replies to,
    # and with no LLM call (an LLM's prose is not what Sources shows).
    assert [q for q, _ in answerer.asked] == ["Short one?", again] == answerer.without_llm
    assert "The passage behind Short one?" in visible(api.texts_to(101)[2])
    sources = api.sent_to(GROUP)[-1]
    assert f"Passages retrieved for: {again}" in visible(sources["text"])
    assert sources["reply_parameters"]["message_id"] == in_group["message_id"]
    assert api.answered(too_old)["text"] == fmt.TOO_OLD
    [edit] = api.markup_edits  # the Sources button that cannot work goes; the article stays
    assert int(edit["message_id"]) == long["message_id"]
    assert list(button_data(api, long)) == ["Whole article"]
    assert visible(api.texts_to(101)[-1]).endswith("Second paragraph.")
    assert len(api.texts_to(101)) == 4 and fmt.APOLOGY not in api.texts_to(101)


async def test_forged_or_garbled_buttons_get_a_polite_answer_and_never_a_file(
    api, news, tmp_path, caplog
):
    secret = tmp_path / "secret.txt"
    secret.write_text("TELEGRAM_BOT_TOKEN=not-for-you\n", encoding="utf-8")
    os.symlink(secret, news["corpus_dir"] / "leak.txt")
    forged = {
        None: fmt.BUTTON_BROKEN,  # a game button: no data
        "": fmt.BUTTON_BROKEN,
        "a:../secret.txt": fmt.BUTTON_BROKEN,
        "s:" + "x" * 70: fmt.BUTTON_BROKEN,
        "\x00\xff garbage": fmt.BUTTON_BROKEN,
        buttons.article_data("leak.txt"): fmt.ARTICLE_GONE,
        buttons.article_data("../secret.txt"): fmt.ARTICLE_GONE,
        buttons.article_data(str(secret)): fmt.ARTICLE_GONE,
        buttons.article_data("999_deleted.txt"): fmt.ARTICLE_GONE,
        "s:AAAAAAAA": fmt.TOO_OLD,  # well formed, of no answer known
    }
    with caplog.at_level(logging.WARNING):
        async with initialized(api, FakeAnswerer(), **news) as app:
            await process(app, api, 101, "nothing here?", user=ALICE)
            [refusal] = api.sent_to(101)
            ids = {}
            for data in forged:
                query = api.callback_query(refusal, data or "", ALICE)
                if data is None:
                    del query["data"]
                    query["game_short_name"] = "chess"
                update = {"update_id": next(_update_ids), "callback_query": query}
                await app.process_update(Update.de_json(update, app.bot))
                ids[data] = query["id"]
    assert {data: api.answered(i)["text"] for data, i in ids.items()} == forged
    assert len(api.texts_to(101)) == 1 and not api.documents  # nothing sent for any of them
    assert not api.markup_edits  # the message had no Sources button to take away
    assert "not-for-you" not in json.dumps(api.calls)
    assert "Traceback" not in caplog.text and "error while handling" not in caplog.text


async def test_strangers_buttons_are_answered_and_do_nothing(api, news):
    answerer = FakeAnswerer()
    async with initialized(api, answerer, telegram_allowed_users="101", **news) as app:
        await process(app, api, GROUP, "@newsbot_test_bot what?", **group_kw())
        [answer] = api.sent_to(GROUP)
        ids = [await press(app, api, answer, data, STRANGER) for _, data in api.buttons(answer)]
    assert [api.answered(i)["text"] for i in ids] == [fmt.NOT_ALLOWED] * 2
    assert len(api.sent_to(GROUP)) == 1 and len(answerer.asked) == 1


async def test_a_long_article_comes_as_one_txt_document(api, news):
    body = "\n".join(f"Paragraph {i}: " + "the <long> & winding road. " * 60 for i in range(20))
    text = f"A <fake> title\ndate 2022-11-09 {body}\n"
    (news["corpus_dir"] / "001_fake.txt").write_text(text, encoding="utf-8")
    async with initialized(api, FakeAnswerer(), **news) as app:
        await process(app, api, GROUP, "/ask what?", **group_kw())
        [answer] = api.sent_to(GROUP)
        await press(app, api, answer, button_data(api, answer)["Whole article"])
    [document] = api.documents
    assert document["file"].decode("utf-8") == text and document["filename"] == "001_fake.txt"
    assert document["caption"].startswith("<code>001_fake.txt</code> · <b>A &lt;fake&gt; title")
    assert document["reply_parameters"]["message_id"] == answer["message_id"]  # threaded
    assert len(api.sent_to(GROUP)) == 1  # the document instead of many messages


# -- inline mode ---------------------------------------------------------------------------
async def test_inline_mode_offers_the_answer_to_allowed_users_only(api, monkeypatch):
    monkeypatch.setattr(tg, "INLINE_PAUSE", 0.01)
    answerer = FakeAnswerer()
    async with initialized(api, answerer, telegram_allowed_users="@alice") as app:
        asked = await type_inline(app, api, "What did <he> say?")
        stranger = await type_inline(app, api, "What did he say?", user=STRANGER)
        short = await type_inline(app, api, "Wh")
        empty = await type_inline(app, api, "   ")
        too_long = await type_inline(app, api, "why " * 60)
    [result] = api.answered(asked)["results"]
    assert result["type"] == "article" and result["title"] == "Said: What did <he> say?"
    content = result["input_message_content"]
    assert content["parse_mode"] == "HTML" and html_error(content["message_text"]) is None
    assert visible(content["message_text"]).startswith("What did <he> say?\n\n001_fake.txt")
    assert api.answered(asked)["is_personal"] in (True, "true")  # never cached for others
    for query in (stranger, short, empty, too_long):
        assert api.answered(query)["results"] == []
    assert [q for q, _ in answerer.asked] == ["What did <he> say?", " ".join(["why"] * 60)]
    assert not api.sent  # inline mode sends nothing itself


async def test_inline_typing_is_answered_for_the_last_query_only(api, monkeypatch):
    monkeypatch.setattr(tg, "INLINE_PAUSE", 0.3)
    answerer = FakeAnswerer()
    async with initialized(api, answerer) as app:
        typed = ["What did", "What did he", "What did he say?"]
        ids = await asyncio.gather(*(type_inline(app, api, q) for q in typed))
    assert [q for q, _ in answerer.asked] == ["What did he say?"]
    assert [api.answered(i) is not None for i in ids] == [False, False, True]


@pytest.mark.slow
async def test_a_slow_inline_answer_does_not_hold_up_the_bot(api, monkeypatch):
    monkeypatch.setattr(tg, "INLINE_PAUSE", 0.01)
    answerer = FakeAnswerer(delay=3.0)
    async with running(api, answerer):
        slow = api.inline_query(ALICE, "a slow question?")
        await until(lambda: answerer.asked, 10, "slow inline question asked")
        api.send_text(102, "a quick one?", user=BOB)
        await until(lambda: api.sent_to(102), 10, "quick answer")
        assert api.answered(slow) is None  # still thinking
        await until(lambda: api.answered(slow), 15, "slow inline answer")


async def test_a_polling_bot_asks_telegram_for_button_presses_and_inline_queries(api, news):
    # Telegram sends only the kinds of update a bot asks for (allowed_updates).
    async with running(api, FakeAnswerer(), **news):
        api.send_text(101, "what did he say?", user=ALICE)
        await until(lambda: api.sent_to(101), 10, "the answer")
        pressed = api.press(api.sent_to(101)[0], user=ALICE)
        inline = api.inline_query(ALICE, "what did she say?")
        await until(lambda: api.answered(pressed) and api.answered(inline), 10, "both answered")
        await until(lambda: len(api.sent_to(101)) == 2, 10, "the sources")
    assert "The passage behind what did he say?" in visible(api.texts_to(101)[1])


# -- threads in groups ---------------------------------------------------------------------
async def test_in_groups_replies_thread_to_the_question_even_once_it_is_deleted(api, news):
    async with initialized(api, FakeAnswerer(), **news) as app:
        kept = await process(app, api, GROUP, "@newsbot_test_bot first?", **group_kw())
        for text in ("@newsbot_test_bot deleted?", "@newsbot_test_bot boom?"):
            message = api.message(GROUP, text, **group_kw())
            api.delete_message(GROUP, message["message_id"])
            update = {"update_id": next(_update_ids), "message": message}
            await app.process_update(Update.de_json(update, app.bot))
        answer = api.sent_to(GROUP)[0]
        await press(app, api, answer)
    first, deleted, apology, sources = api.sent_to(GROUP)
    assert first["reply_parameters"]["message_id"] == kept["message_id"]
    assert "Said: deleted?" in visible(deleted["text"])  # sent anyway, without the thread
    assert apology["text"] == fmt.APOLOGY  # so is the apology
    assert sources["reply_parameters"]["message_id"] == answer["message_id"]
    assert not api.rejected
    # In a private chat nothing is threaded: the conversation is one thread already.
    async with initialized(api, FakeAnswerer(), **news) as app:
        await process(app, api, 101, "boom?", user=ALICE)
        await process(app, api, 101, "private?", user=ALICE)
        await press(app, api, api.sent_to(101)[1])
    assert all("reply_parameters" not in m for m in api.sent_to(101))


@pytest.fixture
def quick_retries(monkeypatch, api):
    """Retries without the real backoff, and a "hang" that outlasts a shorter read timeout."""
    monkeypatch.setattr(tg, "SEND_BACKOFF", 0.01)
    monkeypatch.setattr(tg, "SEND_TIMEOUT", 0.5)
    api.hang_seconds = 1.5


def said(api: FakeBotApi, chat_id: int) -> list[str]:
    """The last line of each message to the chat: "Said: <question>" for an answer."""
    return [visible(t).split("\n")[-1] for t in api.texts_to(chat_id)]


@pytest.mark.parametrize("failure", ["500", "502", "503", "html", "drop", "hang"])
async def test_a_send_that_failed_on_the_way_is_tried_again_and_arrives_once(
    api, quick_retries, failure
):
    answerer = FakeAnswerer()
    api.fail_sends(failure)
    async with initialized(api, answerer) as app:
        await process(app, api, 101, "first?", user=ALICE)
        await process(app, api, 101, "a follow-up?", user=ALICE)
        history = app.chat_data[101][tg.HISTORY]
    assert [f["failure"] for f in api.failed] == [failure]
    assert said(api, 101) == ["Said: first?", "Said: a follow-up?"]  # once each, no apology
    assert [turns for _, turns in answerer.asked] == [0, 1]  # the delivered answer is history
    assert [a.question for a in history] == ["first?", "a follow-up?"]


async def test_a_reply_that_does_not_parse_counts_as_delivered(api, quick_retries):
    # Telegram answered 200: it stored the message, so sending it again would show it twice.
    api.fail_sends("bad-json")
    async with initialized(api, FakeAnswerer()) as app:
        await process(app, api, 101, "garbled?", user=ALICE)
        assert [a.question for a in app.chat_data[101][tg.HISTORY]] == ["garbled?"]
    assert said(api, 101) == ["Said: garbled?"]
    assert [f["stored"] for f in api.failed] == [True]


async def test_a_timeout_after_telegram_stored_the_message_delivers_it_at_least_once(
    api, quick_retries
):
    # The bot cannot know the message arrived: it sends again, and the user sees it twice
    # (documented: at least once, never lost).
    api.fail_sends("hang-after-store")
    async with initialized(api, FakeAnswerer()) as app:
        await process(app, api, 101, "twice?", user=ALICE)
    assert said(api, 101) == ["Said: twice?", "Said: twice?"]
    assert fmt.APOLOGY not in api.texts_to(101)


async def test_an_answer_that_cannot_be_delivered_gets_the_apology_and_is_not_remembered(
    api, quick_retries
):
    answerer = FakeAnswerer()
    api.fail_sends(*["503"] * tg.SEND_ATTEMPTS)  # every try of the answer; the apology gets by
    async with initialized(api, answerer) as app:
        await process(app, api, 101, "lost?", user=ALICE)
        assert tg.HISTORY not in app.chat_data[101] and tg.LAST not in app.chat_data[101]
        await process(app, api, 101, "/sources", user=ALICE)
        await process(app, api, 101, "next?", user=ALICE)
    assert len(api.failed) == tg.SEND_ATTEMPTS  # bounded
    assert api.texts_to(101)[:2] == [fmt.APOLOGY, fmt.NO_SOURCES]
    assert said(api, 101)[2:] == ["Said: next?"]
    assert [turns for _, turns in answerer.asked] == [0, 0]  # "lost?" is no history


@pytest.mark.slow
async def test_with_sends_failing_at_random_every_answer_arrives_once_and_in_order(
    api, quick_retries
):
    kinds = ("500", "502", "503", "html", "drop")
    api.fail_sends_at_random(0.3, kinds, seed=7)
    questions = {chat: [f"chat {chat} question {k}?" for k in range(4)] for chat in range(1, 7)}
    async with running(api, FakeAnswerer()):
        for chat, asked in questions.items():
            user = {"id": chat, "is_bot": False, "first_name": f"Reader {chat}"}
            for question in asked:
                api.send_text(chat, question, user=user)
        total = sum(len(asked) for asked in questions.values())
        await until(lambda: len(api.sent) >= total, 30, "every answer")
    # The bot has stopped, every update handled: a duplicate would be in `sent` by now.
    assert len(api.failed) >= 5  # the failures did happen
    for chat, asked in questions.items():
        assert said(api, chat) == [f"Said: {q}" for q in asked]


@pytest.mark.slow
async def test_slow_answer_never_holds_up_other_chats(api):
    answerer = FakeAnswerer(delay=3.0)
    async with running(api, answerer):
        api.send_text(101, "a slow question?", user=ALICE)
        await until(lambda: answerer.asked, 10, "slow question asked")
        api.send_text(102, "a quick one?", user=BOB)
        await until(lambda: api.sent_to(102), 10, "quick answer")
        assert not api.sent_to(101)  # still thinking about the slow one
        await until(lambda: api.sent_to(101), 15, "slow answer")


@pytest.mark.slow
async def test_questions_in_one_chat_are_answered_in_order(api):
    answerer = FakeAnswerer(delay=0.5)
    async with running(api, answerer):
        for question in ("slow one?", "two?", "slow three?", "four?"):
            api.send_text(101, question, user=ALICE)
        await until(lambda: len(api.sent_to(101)) == 4, 20, "four answers")
    said = [visible(t).split("\n")[-1] for t in api.texts_to(101)]
    assert said == ["Said: slow one?", "Said: two?", "Said: slow three?", "Said: four?"]
    assert [turns for _, turns in answerer.asked] == [0, 1, 2, 3]


@pytest.mark.slow
async def test_polling_survives_network_errors(api, caplog):
    api.fail_polls(2)
    with caplog.at_level(logging.WARNING):
        async with running(api, FakeAnswerer()):
            api.send_text(101, "still there?", user=ALICE)
            await until(lambda: api.sent_to(101), 20, "answer after the network errors")
    assert "Telegram unreachable" in caplog.text and "Bad Gateway" in caplog.text


async def test_webhook_mode_sets_the_webhook_and_checks_the_secret(api):
    port = _free_port()
    webhook = {
        "telegram_webhook_url": "https://bot.example.org/telegram/hook",
        "telegram_webhook_listen": "127.0.0.1",
        "telegram_webhook_port": port,
        "telegram_webhook_secret": "s3cret-Token_1",
    }
    async with running(api, FakeAnswerer(), **webhook):
        assert "getUpdates" not in api.methods()
        [(_, params)] = [call for call in api.calls if call[0] == "setWebhook"]
        assert params["url"] == "https://bot.example.org/telegram/hook"
        assert params["secret_token"] == "s3cret-Token_1"
        assert params["allowed_updates"] == tg.UPDATES
        update = {"update_id": 1, "message": api.message(101, "via webhook?", user=ALICE)}
        url = f"http://127.0.0.1:{port}/telegram/hook"
        assert await _post(url, update, "wrong") == 403
        assert await _post(url, update, None) == 403
        assert await _post(url, {"not": "an update"}, "s3cret-Token_1") == 400
        assert await _post(url, update, "s3cret-Token_1") == 200
        await until(lambda: api.sent_to(101), 10, "answer to the webhook update")
    assert "Said: via webhook?" in visible(api.texts_to(101)[0])


async def test_webhook_without_a_secret_makes_one_and_forged_updates_reach_no_handler(
    api, monkeypatch, caplog
):
    reindexed = []
    monkeypatch.setattr(tg, "reindex", lambda bot_data: reindexed.append(1) or BuildReport())
    port = _free_port()
    webhook = {
        "telegram_webhook_url": "https://bot.example.org/telegram/hook",
        "telegram_webhook_listen": "127.0.0.1",
        "telegram_webhook_port": port,
        "telegram_admin_users": "900",
    }
    url = f"http://127.0.0.1:{port}/telegram/hook"
    forged = {"update_id": 7, "message": api.message(900, "/reindex", user=ADMIN)}
    with caplog.at_level(logging.DEBUG):
        async with running(api, FakeAnswerer(), **webhook):
            assert await _post(url, forged, None) == 403
            assert await _post(url, forged, "guessed") == 403
            [(_, params)] = [call for call in api.calls if call[0] == "setWebhook"]
            secret = params["secret_token"]
            assert WEBHOOK_SECRET.fullmatch(secret) and len(secret) >= 32
            assert await _post(url, forged, secret[:-1]) == 403
            # A genuine update after the forged ones is handled; the forged ones never were.
            genuine = {"update_id": 8, "message": api.message(101, "/help", user=ALICE)}
            assert await _post(url, genuine, secret) == 200
            await until(lambda: api.sent_to(101), 10, "the answer to the genuine update")
            assert not reindexed and not api.sent_to(900)
            admin = {"update_id": 9, "message": api.message(900, "/reindex", user=ADMIN)}
            assert await _post(url, admin, secret) == 200
            await until(lambda: len(api.sent_to(900)) == 2, 10, "the genuine /reindex")
    assert reindexed == [1]
    assert secret not in caplog.text  # setWebhook's parameters are logged at DEBUG
    assert "[webhook secret]" in caplog.text


async def test_webhook_secret_differs_from_run_to_run(api):
    webhook = {
        "telegram_webhook_url": "https://bot.example.org/hook",
        "telegram_webhook_listen": "127.0.0.1",
    }
    for _ in range(2):
        async with running(api, FakeAnswerer(), telegram_webhook_port=_free_port(), **webhook):
            pass
    first, second = [params["secret_token"] for m, params in api.calls if m == "setWebhook"]
    assert first != second


async def test_webhook_on_a_busy_port_is_one_sentence(api):
    import socket

    from index.errors import NewsbotError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        webhook = {
            "telegram_webhook_url": "https://bot.example.org/hook",
            "telegram_webhook_listen": "127.0.0.1",
            "telegram_webhook_port": busy.getsockname()[1],
        }
        with pytest.raises(NewsbotError, match="Cannot listen for the webhook on 127.0.0.1:"):
            async with running(api, FakeAnswerer(), **webhook):
                pass


def test_a_malformed_webhook_secret_is_one_sentence_before_the_model_loads(
    workdir, monkeypatch, capsys
):
    from bot.cli.main import main

    for name, value in {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.org/hook",
        "TELEGRAM_WEBHOOK_SECRET": "not a valid secret!",
        "NEWSBOT_STORE_DIR": str(workdir / "no-index-here"),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["telegram"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("newsbot: Invalid setting TELEGRAM_WEBHOOK_SECRET") and err.count("\n") == 1
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _post(url: str, payload: dict, secret: str | None) -> int:
    def post() -> int:
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[tg.SECRET_HEADER] = secret
        request = urllib.request.Request(url, json.dumps(payload).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    return await asyncio.to_thread(post)


# -- the command ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "expected"),
    [("", "No Telegram bot token"), ("12:nope", "does not look like a bot token")],
)
def test_newsbot_telegram_without_a_good_token_says_one_sentence(
    workdir, monkeypatch, capsys, token, expected
):
    from bot.cli.main import main

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    assert main(["telegram"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("newsbot: ") and expected in err and err.count("\n") == 1
    assert "Traceback" not in err and (not token or token not in err)


@pytest.mark.parametrize(
    ("where", "expected"),
    [("fake", "Telegram rejected TELEGRAM_BOT_TOKEN"), ("nowhere", "Cannot reach the Telegram")],
)
def test_a_rejected_token_or_an_unreachable_server_is_one_sentence(
    api, make_settings, monkeypatch, capsys, where, expected
):
    from bot.cli.main import main

    settings = make_settings(BotSettings)
    build_index(settings)
    revoked = "123456789:AARevokedButWellFormedToken_0123456789"
    base_url = api.base_url if where == "fake" else f"http://127.0.0.1:{_free_port()}/bot"
    for name, value in {
        "NEWSBOT_CORPUS_DIR": settings.corpus_dir,
        "NEWSBOT_STORE_DIR": settings.store_dir,
        "NEWSBOT_EMBED_MODEL": "hashing",
        "TELEGRAM_BOT_TOKEN": revoked,
        "TELEGRAM_BASE_URL": base_url,
    }.items():
        monkeypatch.setenv(name, str(value))
    assert main(["telegram"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"newsbot: {expected}") and err.count("\n") == 1, err
    assert revoked.split(":")[1] not in err


@pytest.mark.slow
def test_newsbot_telegram_runs_until_interrupted(api, make_settings, cli_env, tmp_path):
    settings = make_settings(BotSettings)
    build_index(settings)
    env = cli_env(corpus_dir=settings.corpus_dir, store_dir=settings.store_dir)
    env.update(
        NEWSBOT_EMBED_MODEL="hashing",
        NEWSBOT_LOG_LEVEL="DEBUG",  # even then, no token in the log
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=api.base_url,
    )
    newsbot = Path(sys.executable).with_name("newsbot")
    process = subprocess.Popen(
        [str(newsbot), "telegram"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api.wait_for(lambda: "getUpdates" in api.methods(), timeout=90)
        api.send_text(101, "/start", user=ALICE)
        api.send_text(101, "What did officials in Kyiv say about the drones?", user=ALICE)
        api.wait_for(lambda: len(api.sent_to(101)) >= 2, timeout=60)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    start, answer = api.texts_to(101)[:2]
    assert start == fmt.START
    assert "drones.txt" in answer and "power stations" in answer
    assert "answering on Telegram as @newsbot_test_bot (long polling)" in err
    assert SECRET not in err and "[token]" in err  # DEBUG logs the API URL, redacted


# -- end to end, with the real Answerer and the bundled model -------------------------------
MARKUP_FILE = "002_markup_torture.txt"
MARKUP_ARTICLE = (
    "Parser_bug: <b>&</b> *stars* and [chat] bots choke on `markup`\n"
    "date 2022-11-10 Software engineer Maria Lopez said the parser fails when a message "
    "contains \"a < b && c > d\" or a stray <script>alert('x')</script> tag.\n"
    "“Every _underscore_, *asterisk*, [bracket](link) and `backtick` must be escaped, or "
    "Telegram answers with Can't parse entities,” Lopez said.\n"
    "She added that &amp; and &lt;tag&gt; written literally in an article are just text, and "
    "that <i>unclosed tags are the worst offenders.\n"
)
CNN = "000_00196775ba7d3aee.txt"
SKY = "001_5644935dc87ec3b5.txt"


def news_corpus(folder: Path) -> Path:
    """The repository's two example articles, plus one full of markup."""
    shutil.copytree(REPO / "corpus", folder)
    (folder / MARKUP_FILE).write_text(MARKUP_ARTICLE, encoding="utf-8")
    return folder


def clean_environment(monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith(("NEWSBOT_", "TELEGRAM_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def news_index(tmp_path_factory, bundled_embedder) -> dict:
    """Settings values of an index of `news_corpus`, built once for the module."""
    root = tmp_path_factory.mktemp("telegram-news")
    values = {
        "corpus_dir": news_corpus(root / "corpus"),
        "store_dir": root / "store",
        "embed_model": "bundled",
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_environment(monkeypatch)
        build_index(load_settings(BotSettings, _env_file=None, **values), embedder=bundled_embedder)
    return values


class Chat:
    """One user talking to the bot through the fake server."""

    def __init__(self, api: FakeBotApi, chat_id: int, user: dict, chat_type: str = "private"):
        self.api, self.chat_id, self.user, self.chat_type = api, chat_id, user, chat_type

    async def say(self, text: str | None, replies: int = 1, timeout: float = 60, **kw):
        """Send; return the texts of the next `replies` messages the bot sends to this chat."""
        before = len(self.api.sent_to(self.chat_id))
        self.api.send_text(self.chat_id, text, user=self.user, chat_type=self.chat_type, **kw)
        await until(
            lambda: len(self.api.sent_to(self.chat_id)) >= before + replies,
            timeout,
            f"{replies} replies to {text!r}",
        )
        return self.api.texts_to(self.chat_id)[before:]


@pytest.mark.integration
async def test_end_to_end_over_the_example_articles(api, news_index, bundled_embedder):
    access = {"telegram_allowed_users": "101, 102, @Groupie", "telegram_admin_users": "900"}
    settings = bot_settings(api, **news_index, **access)
    answerer = Answerer(settings, embedder=bundled_embedder)
    alice, bob = Chat(api, 101, ALICE), Chat(api, 102, BOB)
    groupie = {"id": 103, "is_bot": False, "first_name": "G", "username": "groupie"}
    group = Chat(api, GROUP, groupie, "supergroup")
    async with running(api, answerer, **news_index, **access) as app:
        # A question in a private chat: quotes, and the file each comes from.
        [reply] = await alice.say("What did Stoltenberg say about Iran?")
        assert f"<code>{SKY}</code> · <b>Russia’s Kherson retreat" in reply
        assert "Iran is supporting Russia" in visible(reply)
        assert "<blockquote>" in reply

        # Under it, buttons: the passages behind it, and the article it quotes, read whole.
        first = api.sent_to(101)[-1]
        data = dict(api.buttons(first))
        assert list(data)[0] == "Sources" and buttons.article_data(SKY) in data.values()
        remembered = await until(lambda: app.chat_data[101].get(tg.LAST), 10, "remembered")
        expected = fmt.render_sources(remembered)
        before = len(api.sent_to(101))
        api.press(first, data["Sources"], user=ALICE)
        await until(lambda: len(api.sent_to(101)) == before + len(expected), 30, "sources")
        assert api.texts_to(101)[before:] == expected
        api.press(first, buttons.article_data(SKY), user=ALICE)
        await until(lambda: len(api.sent_to(101)) == before + len(expected) + 1, 30, "article")
        whole = api.texts_to(101)[-1]
        assert whole.startswith(f"<code>{SKY}</code> · <b>Russia’s Kherson retreat")
        assert "Iran is supporting Russia" in visible(whole)

        # A follow-up leans on the conversation ...
        [follow_up] = await alice.say("What did he tell Sky News?")
        assert SKY in follow_up and "Stoltenberg" in visible(follow_up)

        # ... /sources shows the passages behind it, in full, split into ordered parts ...
        # (an answer is remembered once delivered: a moment after the server has it)
        last = await until(
            lambda: (a := app.chat_data[101].get(tg.LAST)) and "tell Sky" in a.question and a,
            10,
            "the follow-up remembered",
        )
        expected = fmt.render_sources(last)
        assert len(expected) >= 2  # longer than one Telegram message
        sources = await alice.say("/sources", replies=len(expected))
        assert sources == expected
        joined = "".join(visible(part) for part in sources)
        for passage in app.chat_data[101][tg.LAST].passages:
            assert " ".join(passage.text.split()) in " ".join(joined.split())

        # ... and after /reset the same follow-up has nothing to lean on.
        assert await alice.say("/reset") == [fmt.RESET]
        assert await alice.say("/sources") == [fmt.NO_SOURCES]
        [alone] = await alice.say("What did he tell Sky News?")
        assert alone.startswith("I could not find this in the indexed articles")

        # Stickers get one line asking for text; an essay gets the length limit, politely.
        assert await alice.say(None, sticker=STICKER) == [fmt.NOT_TEXT]
        [limit] = await alice.say("Why " * 400 + "?")
        assert limit.startswith("That question is too long") and "1000" in limit

        # Corpus text full of HTML and Markdown specials arrives intact and escaped.
        [markup] = await alice.say("What did Maria Lopez say about the parser?")
        assert html_error(markup) is None
        assert f"<code>{MARKUP_FILE}</code>" in markup
        assert "&lt;script&gt;alert('x')&lt;/script&gt;" in markup
        shown = visible(markup)
        assert "Parser_bug: <b>&</b> *stars* and [chat] bots choke on `markup`" in shown
        assert '"a < b && c > d"' in shown

        # A user not on the allow list: one polite refusal, nothing from the corpus.
        stranger = Chat(api, 666, STRANGER)
        assert await stranger.say("What did Stoltenberg say about Iran?") == [fmt.NOT_ALLOWED]

        # Inline mode: the answer, offered to send to any chat; strangers are offered nothing.
        asked = api.inline_query(ALICE, "What did Stoltenberg say about Iran?")
        refused = api.inline_query(STRANGER, "What did Stoltenberg say about Iran?")
        await until(lambda: api.answered(asked) and api.answered(refused), 30, "inline answers")
        [result] = api.answered(asked)["results"]
        offered = result["input_message_content"]["message_text"]
        assert SKY in offered and "Iran is supporting Russia" in visible(offered)
        assert api.answered(refused)["results"] == []

        # Groups: chatter is ignored; a mention is answered, as a reply.
        chatter = api.send_text(GROUP, "Stoltenberg said what about Iran?", user=groupie,
                                chat_type="supergroup")  # fmt: skip
        await until(lambda: api.fetched(chatter), 10, "chatter fetched")
        [answer] = await group.say("@newsbot_test_bot what did Stoltenberg say about Kherson?")
        mention_id = api.last_message["message_id"]
        assert CNN in answer
        [sent] = api.sent_to(GROUP)
        assert sent["reply_parameters"]["message_id"] == mention_id

        # Flood control: Telegram says "retry after 1"; the bot waits, then sends.
        api.retry_after(1)
        [flooded] = await bob.say("What did Stoltenberg say about Kherson?")
        [refused] = api.rejected
        assert refused["error"] == 429 and refused["text"] == flooded
        assert api.sent_to(102)[0]["at"] - refused["at"] >= 1.0
        assert CNN in flooded

    assert api.texts_to(666) == [fmt.NOT_ALLOWED]  # and nothing more
    every = [m["text"] for m in api.sent]
    assert fmt.APOLOGY not in every
    assert all(html_error(t) is None and len(visible(t)) <= 4096 for t in every)


ARTICLE_NEW = (
    "Barley harvest best in a decade, brewers say\n"
    "date 2022-11-12 Finnish brewer Aino Virtanen said the barley harvest was the best in a "
    "decade. “We have never seen grain this clean,” Virtanen said.\n"
)
ARTICLE_OTHER = (
    "Lighthouse keeper retires after forty years\n"
    "date 2022-11-13 Lighthouse keeper Tomas Berg said he would miss the storms most. “The "
    "sea was my only colleague,” Berg said as he handed over the keys.\n"
)


@pytest.mark.integration
async def test_index_updates_reach_the_running_bot_and_no_question_fails(
    api, tmp_path, monkeypatch, bundled_embedder
):
    clean_environment(monkeypatch)
    values = {
        "corpus_dir": news_corpus(tmp_path / "corpus"),
        "store_dir": tmp_path / "store",
        "embed_model": "bundled",
        "telegram_admin_users": "@ada",
    }
    settings = bot_settings(api, **values)
    build_index(settings, embedder=bundled_embedder)
    answerer = Answerer(settings, embedder=bundled_embedder)
    alice, admin = Chat(api, 101, ALICE), Chat(api, 900, ADMIN)
    async with running(api, answerer, **values):
        [before] = await alice.say("What did Aino Virtanen say about the barley harvest?")
        assert before == "None of the 3 articles indexed mentions “Aino Virtanen”."

        # /reindex while questions keep coming: every question gets a real answer.
        (settings.corpus_dir / "003_barley.txt").write_text(ARTICLE_NEW, encoding="utf-8")
        api.send_text(900, "/reindex", user=ADMIN)
        questions = ["What did Stoltenberg say about Iran?"] * 4
        for question in questions:
            api.send_text(101, question, user=ALICE)
        await until(lambda: len(api.sent_to(900)) >= 2, 60, "the reindex report")
        await until(lambda: len(api.sent_to(101)) >= 1 + len(questions), 60, "answers")
        started, report = api.texts_to(900)
        assert started == fmt.REINDEX_STARTED
        assert "Index updated." in report and "added 1: <code>003_barley.txt</code>" in report
        assert all(SKY in t for t in api.texts_to(101)[1:])
        [after] = await alice.say("What did Aino Virtanen say about the barley harvest?")
        assert "<code>003_barley.txt</code>" in after and "best in a decade" in after

        # Another indexer (here: build_index on its own store, in a thread) changes the
        # index: the next question sees it, without a restart.
        (settings.corpus_dir / "004_lighthouse.txt").write_text(ARTICLE_OTHER, encoding="utf-8")
        await asyncio.to_thread(build_index, settings, embedder=bundled_embedder)
        [other] = await alice.say("What did Tomas Berg say about the storms?")
        assert "<code>004_lighthouse.txt</code>" in other

        # A second /reindex with nothing to do says so.
        [_, unchanged] = await admin.say("/reindex", replies=2)
        assert "already up to date" in unchanged
    assert fmt.APOLOGY not in [m["text"] for m in api.sent]
