"""What a question asks for, from spaCy's parse: kind, focus, subject, period, names."""

import datetime as dt

import pytest

from bot.answering.question import analyze

ASKED = dt.date(2022, 7, 28)  # a Thursday


@pytest.mark.parametrize(
    ("question", "kind", "focus"),
    [
        ("Who ordered the withdrawal from Kherson?", "person", None),
        (
            "Which airline announced a deal this week to buy Spirit Airlines?",
            "organization",
            "airline",
        ),
        (
            "Which embattled celebrity was found liable in a sexual battery case?",
            "person",
            "celebrity",
        ),
        ("Which of the following US cities saw the biggest increase?", "place", "city"),
        ("Where in the US is it illegal to pump your own gas?", "place", None),
        ("When will the new vaccine be available?", "date", None),
        ("How many minutes did the violence last?", "number", "minute"),
        ("How much did the bidder pay?", "number", None),
        ("What was the magnitude of the quake?", "number", "magnitude"),
        ("What percentage of Americans agree?", "percent", "percentage"),
        ("What was the record high price for a gallon of gas?", "money", "price"),
        ("Which film topped the box office?", "work", "film"),
        ("Which measure did lawmakers leave out?", "thing", "measure"),
        ("What did the images show?", "open", None),
        ("Why were some SUVs recalled?", "open", None),
        ("How did the market react?", "open", None),
        # the wh-word of the main clause, not of a clause inside it
        ("Which city did Stoltenberg visit when he spoke to Sky News?", "place", "city"),
        ("What is the name of the Sky News reporter who interviewed him?", "person", "reporter"),
    ],
)
def test_kind_and_focus(question, kind, focus):
    asked = analyze(question, ASKED)
    assert (asked.kind, asked.focus) == (kind, focus)


def test_who_is_a_person_asks_for_a_role_but_who_is_a_title_asks_for_a_person():
    role = analyze("Who is Christiane Amanpour?")
    assert (role.kind, role.subject) == ("role", "Christiane Amanpour")
    # the small model tags a lone surname as a place or an organization: still a name
    bare = analyze("who is Stoltenberg")
    assert (bare.kind, bare.subject) == ("role", "Stoltenberg")
    job = analyze("What is Sergey Shoigu's job?")
    assert (job.kind, job.subject) == ("role", "Sergey Shoigu")
    title = analyze("Who is the Pentagon's Under Secretary of Defense for Policy?")
    assert title.kind == "person"


@pytest.mark.parametrize(
    ("question", "role", "of"),
    [
        ("Who is the Ukrainian defence minister?", "minister", ("ukrainian",)),
        ("Who is the NATO Secretary General?", "general", ()),
        ("Who is the Sky News reporter?", "reporter", ()),
        ("What is the name of the Sky News reporter who interviewed him?", "reporter", ()),
        ("Who is America's defense secretary?", "secretary", ("america",)),
        ("Who is the foreign minister of Russia?", "minister", ("russia",)),
        # a which-question's verb says who is meant: "Adele will launch a residency"
        ("Which popular singer will launch a Las Vegas residency?", None, ()),
        ("Who ordered the withdrawal?", None, ()),
        ("Which airline announced a deal?", None, ()),
    ],
)
def test_the_office_a_person_question_asks_about(question, role, of):
    asked = analyze(question)
    assert (asked.role, asked.role_of) == (role, of)


def test_how_many_counts_and_its_noun_is_part_of_the_wh_phrase():
    asked = analyze("How many Russian troops are stationed in Kherson?")
    assert (asked.counts, asked.focus, asked.verb, asked.via) == (True, "troop", "station", ())
    assert not analyze("How much cash did Russia give Iran?").counts


def test_what_did_x_say_about_y():
    asked = analyze("What did Stoltenberg say about Iran?")
    assert (asked.kind, asked.subject, asked.topic, asked.verb) == (
        "say",
        "Stoltenberg",
        "Iran",
        "say",
    )
    thinks = analyze("What does NATO think about Iran and Russia working together?")
    assert (thinks.kind, thinks.subject, thinks.verb) == ("say", "NATO", "think")
    # A word list after "about" does not confuse it.
    assert analyze("What did Pat Caddell say about Worried and Heads?").kind == "say"


def test_relative_and_absolute_periods():
    week = analyze("What NFL star announced his retirement this week?", ASKED).period
    assert (week.first, week.last, week.relative) == (20220721, 20220728, True)
    tuesday = analyze("What NFL star announced his retirement on Tuesday?", ASKED).period
    assert (tuesday.first, tuesday.relative) == (20220726, True)
    event = analyze("What happened at the Capitol on January 6, 2021?", ASKED).period
    assert (event.first, event.last, event.relative) == (20210106, 20210106, False)
    assert analyze("What did Stoltenberg say about Iran?", ASKED).period is None


def test_names_verb_and_the_question_as_said_of_articles():
    asked = analyze("Which airline announced a deal this week to buy Spirit Airlines?", ASKED)
    assert asked.names == ("Spirit Airlines",)
    assert asked.verb == "announce"
    assert asked.asks == "which airline announced a deal this week to buy Spirit Airlines"


def test_a_preamble_keeps_the_wh_sentence_as_the_clause():
    asked = analyze(
        "Afghanistan was rocked by a powerful earthquake this week. "
        "What was the magnitude of the quake?",
        ASKED,
    )
    assert asked.kind == "number"
    assert asked.clause == "What was the magnitude of the quake?"
    assert asked.period is not None and asked.period.relative
    assert analyze("What was the magnitude of the quake?").clause is None


def test_not_a_question_at_all():
    asked = analyze("Stoltenberg Iran drones")
    assert asked.kind == "open" and not asked.factual


def test_people_are_the_persons_the_question_names_and_not_places_taken_for_them():
    assert analyze("Which journalist interviewed Jens Stoltenberg for CNN?").people == (
        "Jens Stoltenberg",
    )
    assert analyze("Who met Rishi Sunak in London?").people == ("Rishi Sunak",)
    assert analyze("Who ordered the withdrawal from Kherson?").people == ()
