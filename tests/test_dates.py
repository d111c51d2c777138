import datetime as dt

import pytest

from bot.answering.dates import question_days

ASKED = dt.date(2022, 6, 17)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What happened on 9 November 2022?", (20221109, 20221109)),
        ("What happened on November 9, 2022?", (20221109, 20221109)),
        ("news of 2022-11-09 please", (20221109, 20221109)),
        ("What did Biden say in June 2022?", (20220601, 20220630)),
        ("Who won in Sept 2016?", (20160901, 20160930)),
        ("What happened in 2016 in Ohio?", (20160101, 20161231)),
        ("Which show was renewed this week?", (20220610, 20220617)),
        ("What happened yesterday?", (20220616, 20220617)),
    ],
)
def test_periods_named_in_questions(question, expected):
    assert question_days(question, ASKED) == expected


def test_no_period():
    assert question_days("What did Stoltenberg say about Iran?", ASKED) is None
    assert question_days("Which show was renewed this week?", None) is None


def test_impossible_dates_are_ignored():
    assert question_days("What happened on 31 February 2022?", ASKED) == (20220201, 20220228)
