"""Follow-ups read as standalone questions (`bot.answering.followup.condense`), rule by rule."""

from __future__ import annotations

import pytest

from bot.answering.followup import Turn, condense, role_subject
from bot.answering.question import analyze
from bot.answering.types import Answer, DirectAnswer, Quote


def asked(*questions: str) -> list[Answer]:
    """A conversation's history: an answer to each question, oldest first."""
    return [Answer(question=q, text="…", standalone_question=q) for q in questions]


def test_a_question_without_history_stands_as_asked():
    turn = condense("What did Stoltenberg say about Iran?", ())
    assert turn == Turn("What did Stoltenberg say about Iran?", "Stoltenberg", "Iran", [])


def test_a_question_that_leans_on_nothing_is_not_a_follow_up():
    turn = condense("Who is Colin Kahl?", asked("What did Stoltenberg say about Iran?"))
    assert turn == Turn("Who is Colin Kahl?", None, None, [])


def test_he_takes_the_earlier_speaker():
    turn = condense("What did he say about drones?", asked("What did Stoltenberg say about Iran?"))
    assert turn == Turn("What did Stoltenberg say about drones?", "Stoltenberg", "drones", [])


def test_he_after_who_is_means_that_person():
    assert role_subject(analyze("Who is Stoltenberg?")) == "Stoltenberg"
    turn = condense("What did he say?", asked("Who is Stoltenberg?"))
    assert turn.standalone == "What did Stoltenberg say?"
    assert turn.speaker == "Stoltenberg"


def test_he_in_another_question_is_replaced_by_the_speaker():
    turn = condense("Where did he meet Sunak?", asked("What did Stoltenberg say about Iran?"))
    assert turn == Turn("Where did Stoltenberg meet Sunak?", "Stoltenberg", None, [])


@pytest.mark.parametrize(
    "follow_up", ["and about Kherson?", "What about Kherson?", "also on Kherson"]
)
def test_about_a_new_topic_keeps_the_speaker(follow_up):
    turn = condense(follow_up, asked("What did Stoltenberg say about Iran?"))
    assert turn == Turn("What did Stoltenberg say about Kherson?", "Stoltenberg", "Kherson", [])


def test_any_other_follow_up_keeps_the_earlier_words_in_play():
    turn = condense("and in Kherson?", asked("How many drones did Iran send?"))
    assert turn.standalone == "How many drones did Iran send? And in Kherson?"
    assert "drone" in " ".join(turn.extra_words) and "iran" in turn.extra_words
    assert "kherson" not in turn.extra_words


def test_the_standalone_form_of_the_last_question_is_what_counts():
    earlier = Answer(
        question="and about drones?",
        text="…",
        standalone_question="What did Stoltenberg say about drones?",
    )
    turn = condense("What did he say about Kherson?", [earlier])
    assert turn.standalone == "What did Stoltenberg say about Kherson?"


def test_he_with_nobody_named_before_stays_unresolved():
    turn = condense("What did he say?", ())
    assert turn.speaker == "he" and turn.unresolved
    assert not condense("What did Smith say?", ()).unresolved


def test_a_bare_wh_word_follows_up():
    turn = condense("why?", asked("Who ordered the withdrawal from Kherson?"))
    assert turn.standalone == "Who ordered the withdrawal from Kherson? Why?"


def test_a_chain_of_follow_ups_keeps_only_the_latest_context():
    history = asked("Who ordered the withdrawal from Kherson?")
    for _ in range(40):
        turn = condense("And that?", history)
        history = [Answer(question="And that?", text="…", standalone_question=turn.standalone)]
    assert len(turn.standalone) <= 300 + len(" And that?")
    assert turn.standalone.endswith("And that? And that?")


def answered(
    question: str, *phrases: str, said: str = "On Tuesday, {} said the talks went well."
) -> list[Answer]:
    """A history of one question whose answer led with `phrases`, each cut from a quote."""
    quotes, direct = [], []
    for n, phrase in enumerate(phrases):
        text = said.format(phrase)
        source, at = f"{n}.txt", text.index(phrase)
        quotes.append(Quote(text, source, 0, len(text)))
        direct.append(DirectAnswer(Quote(phrase, source, at, at + len(phrase)), (source,)))
    kind = "direct" if direct else "quotes"
    return [Answer(question=question, text="…", kind=kind, quotes=quotes, direct=direct)]


def test_he_after_an_answered_who_means_the_one_the_answer_named():
    history = answered("Who is NATO's secretary general?", "Jens Stoltenberg")
    turn = condense("What did he say about Iran?", history)
    assert turn == Turn("What did Jens Stoltenberg say about Iran?", "Jens Stoltenberg", "Iran")


def test_about_him_after_an_answered_who_is_about_that_person():
    history = answered("Who ordered the withdrawal from Kherson?", "Sergey Shoigu")
    turn = condense("What did the Pentagon say about him?", history)
    assert turn.standalone == "What did the Pentagon say about Sergey Shoigu?"
    assert (turn.speaker, turn.topic) == ("the Pentagon", "Sergey Shoigu")


def test_a_question_about_what_that_person_did_keeps_the_earlier_question():
    question = "Which Pentagon official said Russia had suffered tens of thousands of casualties?"
    turn = condense("On what day of the week did he say that?", answered(question, "Colin Kahl"))
    assert turn.standalone == f"{question} On what day of the week did Colin Kahl say that?"
    assert "casualti" in turn.extra_words  # stemmed, as BM25 reads them


def test_his_names_the_person_too():
    history = answered("Who ordered the withdrawal from Kherson?", "Sergey Shoigu")
    assert condense("What is his job?", history).standalone.endswith("What is Sergey Shoigu's job?")
    turn = condense("What is his job?", asked("What did Stoltenberg say about Iran?"))
    assert turn.standalone == "What is Stoltenberg's job?"


def test_no_single_person_answered_names_no_one():
    # two answers (the articles disagree), a person not asked for, nothing answered
    for history in (
        answered("Who ordered the withdrawal?", "Sergey Shoigu", "Vladimir Putin"),
        answered("Which river did they cross?", "Dnipro River"),
        answered("Who ordered the withdrawal?"),
    ):
        turn = condense("What did he say?", history)
        assert turn.unresolved, history


def test_about_him_with_no_one_named_reads_the_earlier_question_instead():
    turn = condense("What did the NATO chief say about him?", answered("Who is Putin's envoy?"))
    assert turn.standalone == "Who is Putin's envoy? What did the NATO chief say about him?"
    assert (turn.speaker, turn.topic) == ("the NATO chief", None)


def test_on_what_is_a_question_not_a_new_topic():
    turn = condense("On what day did he say it?", asked("What did Stoltenberg say about Iran?"))
    assert turn.standalone == "On what day did Stoltenberg say it?"
    turn = condense("On what day was that?", asked("What did Stoltenberg say about Iran?"))
    assert turn.standalone == "What did Stoltenberg say about Iran? On what day was that?"


def test_he_after_a_who_that_names_someone_is_not_taken_for_the_answer():
    history = answered("Which journalist interviewed Jens Stoltenberg for CNN?", "Amanpour")
    turn = condense("Which TV channel did he talk to?", history)
    assert "Amanpour" not in turn.standalone


def test_he_is_never_an_organisation_nor_one_of_two():
    history = answered("Who did Stoltenberg tell?", "CNN", said="Mr Stoltenberg told {} that.")
    assert condense("What did he say?", history).unresolved  # CNN is no "he"
    history = answered("Who will the union leader meet?", "Maria Diaz")
    turn = condense("When will he meet her?", history)
    assert "Maria Diaz" not in turn.standalone  # "he" and "her": which is the answer?


def test_about_him_is_not_about_the_speaker_himself():
    history = answered("Who is NATO's secretary general?", "Jens Stoltenberg")
    turn = condense("What did Stoltenberg say about him?", history)
    assert turn.topic != "Jens Stoltenberg"
