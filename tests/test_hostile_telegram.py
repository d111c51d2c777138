"""Hostile use of the Telegram answer buttons and inline mode (issues 9 and 12).

What a hostile or merely unlucky user can do to "Sources" / "Whole article" buttons and inline
queries, run against the real Application and the loopback fake Bot API (`fake_bot_api.py`).
Tests of what held are plain; each defect found is `xfail(strict=True)` with its reason, so
the suite stays green until it is fixed and then insists the mark be removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest
from fake_bot_api import ALICE, TAG, TOKEN, FakeBotApi, html_error, press, type_inline
from telegram import Update

from bot.answering.answer import QuestionError
from bot.answering.types import Answer, Passage, Quote
from bot.answering.wording import format_answer
from bot.settings import BotSettings
from bot.telegram import app as tg
from bot.telegram import buttons
from bot.telegram import formatting as fmt
from index.settings import load_settings

STRANGER = {"id": 666, "is_bot": False, "first_name": "Eve", "username": "eve"}
GROUP = -100777
SOURCE = "001_target.txt"
ARTICLE = "Target headline\ndate 2022-11-09 The minister said the bridge would reopen.\n"


class QuotingAnswerer:
    """Quotes the question back from SOURCE, as the real Answerer would cite it."""

    def __init__(self):
        self.asked: list[str] = []

    def answer(self, question, history=(), asked_on=None, with_llm=True):
        self.asked.append(question)
        if len(question) > 200:
            raise QuestionError(f"That question is too long ({len(question)} characters).")
        quote = Quote(f"Said: {question}", SOURCE, 0, 9, "Target headline", "2022-11-09")
        passage = Passage(f"Passage for {question}", SOURCE, 0, 30, None, None)
        return Answer(
            question=question,
            text=format_answer([quote]),
            quotes=[quote],
            passages=[passage],
            standalone_question=question,
        )

    def refresh(self):
        return False


@pytest.fixture
def api():
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / SOURCE).write_text(ARTICLE, encoding="utf-8")
    return folder


@contextlib.asynccontextmanager
async def initialized(api: FakeBotApi, corpus: Path, **values):
    settings = load_settings(
        BotSettings,
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_base_url=api.base_url,
        embed_model="hashing",
        corpus_dir=corpus,
        **values,
    )
    application = tg.build_application(settings, QuotingAnswerer())
    async with application:
        yield application


_update_ids = itertools.count(1)


async def ask(app, api: FakeBotApi, text: str, chat_id: int = 101, **kw) -> dict:
    """Alice asks in a private chat (or `chat_type=` a group); returns the answer's last part."""
    message = api.message(chat_id, text, user=ALICE, **kw)
    update = {"update_id": next(_update_ids), "message": message}
    await app.process_update(Update.de_json(update, app.bot))
    return api.sent_to(chat_id)[-1]


def whole_article(api: FakeBotApi, sent: dict) -> str:
    return dict(api.buttons(sent))["Whole article"]


def visible(part: str) -> str:
    return html.unescape(TAG.sub("", part))


# -- Whole article: the file changed under the button ---------------------------------------
def _delete(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()


def _rename(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).rename(corpus / "002_renamed.txt")


def _symlink_out(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()
    os.symlink(outside, corpus / SOURCE)


def _symlink_to_folder_out(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()
    os.symlink(outside.parent, corpus / SOURCE)


def _binary(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).write_bytes(b"Target headline\n\x00\x01\x02binary\xff")


def _empty(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).write_bytes(b"")


def _fifo(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()
    os.mkfifo(corpus / SOURCE)


def _folder(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()
    (corpus / SOURCE).mkdir()
    (corpus / SOURCE / "inner.txt").write_text(ARTICLE, encoding="utf-8")


def _corpus_gone(corpus: Path, outside: Path) -> None:
    (corpus / SOURCE).unlink()
    corpus.rmdir()


@pytest.mark.parametrize(
    "change",
    [_delete, _rename, _symlink_out, _symlink_to_folder_out, _binary, _empty, _fifo, _folder,
     _corpus_gone],
)  # fmt: skip
async def test_whole_article_of_a_file_changed_under_the_button_says_it_is_gone(
    api, corpus, tmp_path, change
):
    outside = tmp_path / "secret.txt"
    outside.write_text("Secret\ndate 2022-11-09 TELEGRAM_BOT_TOKEN=not-for-you\n", "utf-8")
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        data = whole_article(api, answer)
        change(corpus, outside)
        pressed = await press(app, api, answer, data)
    assert api.answered(pressed)["text"] == fmt.ARTICLE_GONE
    assert len(api.sent_to(101)) == 1 and not api.documents
    assert "not-for-you" not in repr(api.calls)


async def test_whole_article_follows_a_replaced_file_and_a_link_inside_the_corpus(api, corpus):
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        data = whole_article(api, answer)
        (corpus / SOURCE).write_text("New headline\nThe bridge stays shut.\n", encoding="utf-8")
        await press(app, api, answer, data)
        (corpus / "003_real.txt").write_text("Real one\nLinked text here.\n", encoding="utf-8")
        (corpus / SOURCE).unlink()
        os.symlink(corpus / "003_real.txt", corpus / SOURCE)
        await press(app, api, answer, data)
    _, replaced, linked = api.texts_to(101)
    assert visible(replaced).endswith("The bridge stays shut.")
    assert visible(linked).endswith("Linked text here.")


# -- Whole article: hostile content ----------------------------------------------------------
MARKUP = (
    "<b>Bold</b> & <a href='tg://user?id=1'>link</a> &amp; </pre><pre> <tg-spoiler>x"
    "</tg-spoiler> @admin /start #tag $USD https://t.me/joinchat/abc *bold* _it_ `code`"
)
INVISIBLE = "zero\u200bwidth\u200c\u200d\ufeff bidi \u202eevil\u202c \u2066iso\u2069 \u061c"


async def test_whole_article_with_markup_entities_zero_width_and_bidi_is_shown_as_text(api, corpus):
    text = f"Title <i>{INVISIBLE}</i>\ndate 2022-11-09 {MARKUP}\n{INVISIBLE}\n\u2028{MARKUP}\n"
    (corpus / SOURCE).write_text(text, encoding="utf-8")
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        await press(app, api, answer, whole_article(api, answer))
    assert not api.rejected and fmt.APOLOGY not in api.texts_to(101)
    shown = api.sent_to(101)[-1]
    assert html_error(shown["text"]) is None and "entities" not in shown
    assert MARKUP in visible(shown["text"]) and INVISIBLE in visible(shown["text"])


@pytest.mark.parametrize("line", ["😀" * 9000, "&" * 9000, "x" * 20000, "\u200b" * 9000])
async def test_whole_article_of_long_unbreakable_lines_never_exceeds_telegram_limits(
    api, corpus, line
):
    (corpus / SOURCE).write_text(f"Title\n{line}\n", encoding="utf-8")
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        await press(app, api, answer, whole_article(api, answer))
    assert not api.rejected and fmt.APOLOGY not in api.texts_to(101)
    shown = "".join(visible(m["text"]).split("\n\n", 1)[1] for m in api.sent_to(101)[1:])
    sent = shown or b"".join(d["file"] for d in api.documents).decode()
    assert line in sent


@pytest.mark.parametrize("name", ['say "hi".txt', "tab\there.txt", "new\nline.txt", "ü € 😀.txt"])
async def test_a_long_article_with_an_odd_file_name_comes_as_a_document_of_that_name(
    api, corpus, name
):
    body = "\n".join(f"Paragraph {i}: " + "a long winding road. " * 60 for i in range(20))
    (corpus / SOURCE).unlink()
    (corpus / name).write_text(f"Title\n{body}\n", encoding="utf-8")
    answerer_source = name
    async with initialized(api, corpus) as app:
        app.bot_data[tg.ANSWERER].answer = _citing(app.bot_data[tg.ANSWERER].answer, name)
        answer = await ask(app, api, "What did the minister say?")
        pressed = await press(app, api, answer, whole_article(api, answer))
    assert "text" not in api.answered(pressed)
    [document] = api.documents
    assert document["file"].decode("utf-8").endswith(body + "\n")
    # httpx writes '"', tabs and newlines in a multipart file name percent-encoded (as
    # browsers do): the name cannot break out of its header, and reads back whole.
    assert unquote(document["filename"]) == answerer_source
    assert html_error(document["caption"]) is None


async def test_whole_article_of_a_10_mb_file_comes_as_one_document(api, corpus):
    body = "\n".join(f"Paragraph {i}: " + "the <long> & winding road. " * 60 for i in range(6000))
    text = f"Huge headline\ndate 2022-11-09 {body}\n"
    (corpus / SOURCE).write_text(text, encoding="utf-8")
    assert (corpus / SOURCE).stat().st_size > 9_500_000
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        await press(app, api, answer, whole_article(api, answer))
    [document] = api.documents
    assert document["file"].decode("utf-8") == text and len(api.sent_to(101)) == 1


def _citing(answer, source: str):
    def cite(question, history=(), asked_on=None):
        given = answer(question, history, asked_on)
        quotes = [replace(q, source=source) for q in given.quotes]
        return replace(given, quotes=quotes)

    return cite


async def test_rendering_a_whole_article_never_runs_on_the_event_loop(api, corpus, monkeypatch):
    # One unbreakable 300 KB line. Its cutting is linear now (test_telegram_format), but a
    # 10 MB article still takes a second or more: the loop must stay free for other chats.
    (corpus / SOURCE).write_text("Title\n" + "x" * 300_000 + "\n", encoding="utf-8")
    on_loop: list[bool] = []
    render = fmt.render_article

    def recording(article, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return render(article, *args, **kwargs)

    monkeypatch.setattr(fmt, "render_article", recording)
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        await press(app, api, answer, whole_article(api, answer))
    assert len(api.documents) == 1  # it did arrive ...
    assert on_loop == [False]  # ... but every other chat waited for it


# -- forged, replayed and other users' presses ----------------------------------------------
async def test_callback_data_with_a_lone_surrogate_reads_as_a_broken_button(api, corpus):
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        pressed = await press(app, api, answer, "s:AAAAAAAA:\ud800")
    assert api.answered(pressed)["text"] == fmt.BUTTON_BROKEN
    assert fmt.APOLOGY not in api.texts_to(101)


async def test_replayed_and_foreign_presses(api, corpus):
    async with initialized(api, corpus, telegram_allowed_users="@alice") as app:
        answer = await ask(app, api, "What did the minister say?")
        data = dict(api.buttons(answer))
        first = await press(app, api, answer, data["Sources"])
        again = await press(app, api, answer, data["Sources"])
        stranger = await press(app, api, answer, data["Whole article"], STRANGER)
        forged = await press(app, api, answer, "a:" + buttons.source_hash("../" + SOURCE))
        oversized = await press(app, api, answer, data["Sources"] + "x" * 100)
    assert "text" not in api.answered(first) and "text" not in api.answered(again)
    assert api.answered(stranger)["text"] == fmt.NOT_ALLOWED
    assert api.answered(forged)["text"] == fmt.ARTICLE_GONE
    assert api.answered(oversized)["text"] == fmt.BUTTON_BROKEN
    assert len(api.sent_to(101)) == 3  # the answer and the sources twice, nothing else


async def test_a_forged_sources_question_is_just_a_question(api, corpus):
    """Data anyone can forge carries a question: it is only retrieved for, like any asked one,
    and markup in it comes back as text."""
    async with initialized(api, corpus) as app:
        answer = await ask(app, api, "What did the minister say?")
        await press(app, api, answer, "s:ZZZZZZZZ:<b>x</b> & </blockquote><pre>")
        answerer = app.bot_data[tg.ANSWERER]
    assert answerer.asked[-1] == "<b>x</b> & </blockquote><pre>"
    assert not api.rejected and fmt.APOLOGY not in api.texts_to(101)
    assert "Passage for <b>x</b> & </blockquote><pre>" in visible(api.texts_to(101)[-1])


# -- inline mode -----------------------------------------------------------------------------
async def test_hostile_inline_queries(api, corpus, monkeypatch):
    monkeypatch.setattr(tg, "INLINE_PAUSE", 0.01)
    async with initialized(api, corpus, telegram_allowed_users="@alice") as app:
        stranger = await type_inline(app, api, "What did the minister say?", STRANGER)
        markup = await type_inline(app, api, "</b><pre>What & <a href='x'>said</a>? " + INVISIBLE)
        huge = await type_inline(app, api, "why " * 2500)
        controls = await type_inline(app, api, "\x00\x1b[31m\x07 what\u2028said\x7f?")
        answerer = app.bot_data[tg.ANSWERER]
    assert api.answered(stranger)["results"] == []
    assert api.answered(huge)["results"] == []
    for query in (markup, controls):
        [result] = api.answered(query)["results"]
        assert html_error(result["input_message_content"]["message_text"]) is None
    assert len(answerer.asked) == 3  # markup, controls, and the too-long one it refused
    assert not api.sent


async def test_rapid_fire_inline_queries_compute_one_answer_per_user(api, corpus, monkeypatch):
    monkeypatch.setattr(tg, "INLINE_PAUSE", 0.2)
    async with initialized(api, corpus) as app:
        typed = [f"What did the minister say {'?' * n}" for n in range(1, 41)]
        ids = await asyncio.gather(*(type_inline(app, api, q) for q in typed))
        answerer = app.bot_data[tg.ANSWERER]
    assert answerer.asked == [typed[-1]]
    assert [api.answered(i) is not None for i in ids].count(True) == 1


async def test_sources_press_in_a_group_threads_to_the_answer(api, corpus):
    async with initialized(api, corpus) as app:
        answer = await ask(
            app, api, "@newsbot_test_bot what did he say?", GROUP, chat_type="supergroup"
        )
        await press(app, api, answer, dict(api.buttons(answer))["Sources"])
        api.delete_message(GROUP, answer["message_id"])
        await press(app, api, answer, dict(api.buttons(answer))["Whole article"])
    _, sources, article = api.sent_to(GROUP)
    assert sources["reply_parameters"]["message_id"] == answer["message_id"]
    assert article["reply_parameters"]["message_id"] == answer["message_id"]  # deleted: sent
    assert not api.rejected
