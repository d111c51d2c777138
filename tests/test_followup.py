"""Follow-ups read as standalone questions (`bot.answering.followup.condense`), rule by rule."""

from __future__ import annotations

import pytest

from bot.answering.followup import Turn, condense, role_subject
from bot.answering.types import Answer


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
    assert role_subject("Who is Stoltenberg?") == "Stoltenberg"
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
