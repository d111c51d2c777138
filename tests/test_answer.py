"""The Answerer: quotes verbatim and checked, speaker preference, follow-ups, dates, refusals.

Unit tests run on real Chroma in tmp_path with the deterministic hashing embedder; the
integration test at the end uses the bundled model on the two example articles.
"""

import datetime as dt
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.answering.answer import POLICY, Answerer, QuestionError
from bot.settings import BotSettings
from index.build import build_index

TARIFFS = (
    "Trade talks stall over tariffs",
    "2021-03-02",
    "Trade talks between the two countries stalled on Tuesday over steel tariffs.\n"
    "Senator Alice Smith arrived late to the hearing on trade.\n"
    "“Tariffs on steel are a tax on our own farmers,” she said.\n"
    "Bob Jones, a lobbyist for steel makers, disagreed with her.\n"
    "“Steel tariffs protect thousands of jobs,” Jones told reporters.\n"
    "Analysts expect more talks on tariffs next month.",
)
HARVEST = (
    "Harvest hit by drought",
    "2021-07-15",
    "The drought cut the wheat harvest by a third, farmers said.\n"
    "Smith visited the farms and said drones would help monitor the fields.",
)
TARIFFS_LATER = (
    "Tariff talks resume",
    "2021-05-20",
    "Trade talks on steel tariffs resumed in May with new proposals on quotas.",
)


@pytest.fixture
def news(tmp_path, write_article):
    folder = tmp_path / "news"
    for name, (title, date, body) in {
        "tariffs.txt": TARIFFS,
        "harvest.txt": HARVEST,
        "later/tariffs-may.txt": TARIFFS_LATER,
    }.items():
        write_article(folder, name, body, title=title, date=date)
    return folder


@pytest.fixture
def answerer(make_settings, news, built_index):
    settings = make_settings(BotSettings, corpus_dir=news)
    built_index(settings)
    return Answerer(settings)


def test_quotes_are_exact_text_of_their_files_at_their_offsets(answerer, news):
    answer = answerer.answer("What did Smith say about tariffs?")
    assert not answer.refused and answer.quotes
    for quote in answer.quotes:
        text = (news / quote.source).read_text(encoding="utf-8")
        assert text[quote.start : quote.end] == quote.text
        assert quote.text in answer.text
    assert answer.sources[0] == "tariffs.txt"
    assert "tariffs.txt" in answer.text


def test_prefers_sentences_where_the_person_is_the_speaker(answerer):
    answer = answerer.answer("What did Smith say about tariffs?")
    first = answer.quotes[0].text
    # "she said", right after Smith is named, beats sentences that merely mention tariffs.
    assert "Tariffs on steel are a tax on our own farmers" in first
    assert not any("protect thousands of jobs" in q.text for q in answer.quotes)
    jones = answerer.answer("What did Jones say about tariffs?")
    assert "protect thousands of jobs" in jones.quotes[0].text


def test_follow_up_keeps_the_speaker(answerer):
    first = answerer.answer("What did Smith say about tariffs?")
    follow = answerer.answer("and what did she say about drones?", [first])
    assert follow.standalone_question == "What did Smith say about drones?"
    assert "drones would help monitor the fields" in follow.text
    assert follow.sources[0] == "harvest.txt"


def test_pronoun_with_nobody_named_before_is_refused(answerer):
    assert answerer.answer("What did she say about tariffs?").refused


def test_topic_follow_up_keeps_the_speaker(answerer):
    first = answerer.answer("What did Smith say about tariffs?")
    follow = answerer.answer("and what about drones?", [first])
    assert follow.standalone_question == "What did Smith say about drones?"
    assert follow.sources[0] == "harvest.txt"


def test_date_named_in_question_prefers_that_period(answerer):
    may = answerer.answer("What happened in the steel tariff talks in May 2021?")
    assert may.retrieved[0] == "later/tariffs-may.txt"
    march = answerer.answer("What happened in the steel tariff talks on 2 March 2021?")
    assert march.retrieved[0] == "tariffs.txt"


def test_a_question_about_this_week_is_not_answered_from_older_articles(answerer):
    asked_on = dt.date(2021, 8, 20)  # no article from the week before
    answer = answerer.answer("What did Smith say about tariffs this week?", asked_on=asked_on)
    assert answer.refused and answer.kind == "refusal" and not answer.quotes
    assert "published since 2021-08-13" in answer.text
    # The same question asked in the week of the article is answered.
    answer = answerer.answer(
        "What did Smith say about tariffs this week?", asked_on=dt.date(2021, 3, 5)
    )
    assert not answer.refused and answer.sources[0] == "tariffs.txt"


def test_a_fact_is_answered_first_and_checked_like_a_quote(answerer, news):
    answer = answerer.answer("Who disagreed with Senator Alice Smith?")
    assert answer.kind == "direct"
    [direct] = answer.direct
    assert direct.text == "Bob Jones" and direct.sources == ("tariffs.txt",)
    text = (news / direct.phrase.source).read_text(encoding="utf-8")
    assert text[direct.phrase.start : direct.phrase.end] == "Bob Jones"
    assert answer.text.startswith("Bob Jones — 1 article\n\ntariffs.txt")


def test_without_the_reranker_answers_come_from_shared_words(make_settings, news, built_index):
    settings = make_settings(BotSettings, corpus_dir=news, rerank=False)
    built_index(settings)
    answerer = Answerer(settings)
    assert answerer.reader.reranker is None
    answer = answerer.answer("What did Smith say about tariffs?")
    assert "Tariffs on steel are a tax on our own farmers" in answer.quotes[0].text
    assert answerer.answer("How do I reverse a list in Python?").refused


@pytest.mark.slow
def test_answers_from_many_threads_are_those_of_one_at_a_time(answerer):
    questions = [
        "What did Smith say about tariffs?",
        "Who disagreed with Senator Alice Smith?",
        "What did Jones say about tariffs?",
        "How much did the drought cut the wheat harvest?",
        "How do I reverse a list in Python?",
        "When did the trade talks resume?",
    ]
    expected = [answerer.answer(q).text for q in questions]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: answerer.answer(q).text, questions * 4))
    assert answers == expected * 4


def test_off_corpus_question_is_refused_without_quotes(answerer):
    answer = answerer.answer("How do I reverse a list in Python?")
    assert answer.refused
    assert answer.quotes == [] and answer.sources == []
    assert answer.text == "None of the 3 articles indexed mentions “Python”."


def test_unknown_speaker_is_refused(answerer):
    answer = answerer.answer("What did Zorblax Quinterra say about tariffs?")
    assert answer.refused and not answer.quotes


def test_quote_no_longer_in_file_is_never_shown(answerer, news):
    path = news / "tariffs.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("farmers", "growers"), "utf-8")
    answer = answerer.answer("What did Smith say about tariffs?")
    for quote in answer.quotes:
        text = (news / quote.source).read_text(encoding="utf-8")
        assert text[quote.start : quote.end] == quote.text
    assert not any("tax on our own farmers" in q.text for q in answer.quotes)


def test_bad_questions_get_polite_errors(answerer):
    with pytest.raises(QuestionError, match="question"):
        answerer.answer("   ")
    with pytest.raises(QuestionError, match="under 1000"):
        answerer.answer("why " * 400)


def test_invisible_characters_in_a_question_change_nothing(answerer):
    plain = answerer.answer("What did Stoltenberg say about Iran?")
    hidden = answerer.answer("What\u200b did Stolten\u200bberg say\u2060 about\u200e Iran?")
    assert hidden.question == plain.question and hidden.text == plain.text
    with pytest.raises(QuestionError):
        answerer.answer("\u200b\u200d\u2060")


def test_answers_follow_index_updates_without_restart(answerer, news, write_article):
    assert answerer.answer("What did Smith say about volcanoes?").refused
    write_article(
        news, "volcano.txt", "Smith said the volcanoes in Iceland are calm.", title="Volcanoes"
    )
    build_index(answerer.settings)
    answer = answerer.answer("What did Smith say about volcanoes?")
    assert not answer.refused and answer.sources == ["volcano.txt"]
    assert answerer.stats().articles == 4


def test_answer_json_shape(answerer):
    data = answerer.answer("What did Smith say about tariffs?", asked_on=dt.date(2021, 3, 3))
    data = data.to_dict()
    assert {"text", "refused", "quotes", "sources"} <= set(data)
    assert set(data["quotes"][0]) >= {"text", "source", "start", "end", "title", "date"}


@pytest.mark.integration
def test_stoltenberg_on_iran_with_the_bundled_model(
    make_settings, example_corpus, bundled_embedder
):
    settings = make_settings(BotSettings, corpus_dir=example_corpus, embed_model="bundled")
    build_index(settings, embedder=bundled_embedder)
    answerer = Answerer(settings, embedder=bundled_embedder)
    answer = answerer.answer("what did Stoltenberg say about Iran?")
    assert answer.sources[0] == "001_5644935dc87ec3b5.txt"
    assert "Iran is supporting Russia" in answer.text
    follow = answerer.answer("and what did he say about drones?", [answer])
    assert not follow.refused
    assert "drone" in " ".join(q.text for q in follow.quotes).lower()
    assert answerer.answer("What is the melting point of tungsten?").refused


@pytest.mark.slow
def test_sees_an_index_update_made_by_another_process(
    answerer, news, write_article, cli_env, run_newsbot
):
    assert answerer.answer("What did Smith say about volcanoes?").refused
    write_article(
        news, "volcano.txt", "Smith said the volcanoes in Iceland are calm.", title="Volcanoes"
    )
    settings = answerer.settings
    env = cli_env(corpus_dir=news, store_dir=settings.store_dir, embed_model="hashing")
    assert run_newsbot("index", env=env).returncode == 0
    answer = answerer.answer("What did Smith say about volcanoes?")
    assert answer.sources == ["volcano.txt"]
    # The vector side, not only BM25, has the new chunk.
    vector = answerer.embedder.embed_query("volcanoes in Iceland")
    assert answerer.store.query(vector, 1)[0]["meta"]["source"] == "volcano.txt"


# -- quotes that cannot be checked, quotes too long to show whole -------------------------------
def test_a_deleted_corpus_folder_is_named_instead_of_a_refusal(answerer, news):
    assert answerer.answer("What did Smith say about tariffs?").quotes
    shutil.rmtree(news)
    answer = answerer.answer("What did Smith say about tariffs?")
    assert answer.text == (
        f"The corpus folder {news} is missing; run `newsbot index` after restoring it."
    )
    assert answer.refused and answer.quotes == [] and answer.sources == []


def test_a_refusal_names_a_deleted_corpus_folder_too(answerer, news):
    """A question refused before any file is read ("hi") said only "I could not find this"."""
    shutil.rmtree(news)
    answer = answerer.answer("What is the time complexity of quicksort?")
    assert answer.refused and answer.text.startswith("I could not find")
    assert answer.notice == (
        f"The corpus folder {news} is missing; run `newsbot index` after restoring it."
    )


def test_deleted_cited_files_are_named(answerer, news):
    before = answerer.answer("What did Smith say about tariffs?")
    assert {q.source for q in before.quotes} == {"tariffs.txt", "later/tariffs-may.txt"}
    (news / "tariffs.txt").unlink()
    (news / "later" / "tariffs-may.txt").unlink()
    answer = answerer.answer("What did Smith say about tariffs?")
    assert answer.refused and not answer.quotes
    assert answer.text == (
        f"later/tariffs-may.txt and tariffs.txt are no longer in {news}, so quotes of them were "
        "left out; run `newsbot index` to bring the index up to date."
    )


def test_quotes_of_the_files_still_there_are_shown_with_a_notice(answerer, news):
    before = answerer.answer("What did Smith say about farmers?")
    assert {q.source for q in before.quotes} == {"tariffs.txt", "harvest.txt"}
    (news / "harvest.txt").unlink()
    answer = answerer.answer("What did Smith say about farmers?")
    assert {q.source for q in answer.quotes} == {"tariffs.txt"}
    assert answer.notice.startswith("harvest.txt is no longer in ")


COUNCIL_FILLER = " ".join(
    f"the council reviewed budget line {n} for the {('north', 'south', 'east', 'west')[n % 4]} "
    "district and"
    for n in range(60)
)


def test_a_line_without_a_full_stop_is_quoted_in_pieces_no_longer_than_a_quote(
    make_settings, tmp_path, write_article
):
    folder = tmp_path / "council"
    body = (
        f"{COUNCIL_FILLER} Mayor Jane Doe said the harbour bridge will close for repairs in May "
        f"because its cables are worn and {COUNCIL_FILLER} so the meeting ended"
    )
    assert "." not in body and len(body) > 5000
    write_article(folder, "council.txt", body, title="Council meets on the budget")
    settings = make_settings(BotSettings, corpus_dir=folder)
    build_index(settings)
    answer = Answerer(settings).answer("Why will the harbour bridge close?")

    assert not answer.refused
    assert any("harbour bridge will close" in q.text for q in answer.quotes)
    text = (folder / "council.txt").read_text(encoding="utf-8")
    for quote in answer.quotes:
        assert len(quote.shown) <= POLICY.max_quote_chars
        assert text[quote.start : quote.end] == quote.text  # the cut is verbatim, and checked
        assert quote.cut_before and text[quote.start - 1] == " "
        assert quote.cut_after and text[quote.end] == " "
        assert f"  > {quote.shown}" in answer.text and quote.shown.startswith("…")
    # Both front ends show the cut.
    from bot.cli.render import render_text
    from bot.telegram.formatting import render_html

    shown = answer.quotes[0].shown
    assert f"  > {shown}" in render_text(answer)
    assert f"<blockquote>{shown}</blockquote>" in "".join(render_html(answer))


@pytest.mark.slow
def test_the_cli_names_a_deleted_corpus_folder(answerer, news, cli_env, run_newsbot):
    shutil.rmtree(news)
    env = cli_env(corpus_dir=news, store_dir=answerer.settings.store_dir, embed_model="hashing")
    done = run_newsbot("ask", "What did Smith say about tariffs?", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"The corpus folder {news} is missing; run `newsbot index` after restoring it."
    )
