"""The reading stage on hand-made sentences: who decides what, with a scripted reranker.

The real spaCy pipeline runs (entities, parses); the reranker is a stand-in that scores by
table, so each decision of `Reader.read` and each rule of `bot.answering.findings` is tested on its
own.
The real reranker is tested in test_rerank.py, all of it together in test_quality.py.
"""

import datetime as dt

import pytest

from bot.answering import findings
from bot.answering.policy import Policy
from bot.answering.question import analyze
from bot.answering.read import Reader, Sentence, candidates, cut_marks, pieces
from bot.answering.retrieve import Hit
from bot.answering.types import Quote

ASKED = dt.date(2022, 7, 28)


def sentence(text, source="a.txt", date="2022-07-26", relevance=0.0, speaker=0.0, rank=0):
    day = int(date.replace("-", "")) if date else 0
    meta = {"source": source, "start": 0, "end": len(text), "date": date, "day": day}
    hit = Hit(f"{source}#0", text, meta, score=1.0)
    s = Sentence(text, 0, len(text), hit, rank, coverage=0.5, speaker=speaker, lexical=0.5)
    s.relevance = relevance  # what the scripted reranker will give it
    return s


class Scripted:
    """Scores each sentence with the relevance its test gave it."""

    def __init__(self, sentences):
        self.table = {s.text: s.relevance for s in sentences}

    def score(self, question, texts):
        import numpy as np

        return np.array([self.table[t] for t in texts], dtype=np.float32)


def read(question, sentences, topic=None, speaker=frozenset(), asked_on=ASKED):
    reader = Reader(Policy(), Scripted(sentences))
    for s in sentences:
        s.relevance = None  # the reader scores them
    return reader.read(analyze(question, asked_on), sentences, topic, speaker)


def test_the_best_sentence_and_its_entity_answer():
    reading = read(
        "Which airline agreed to buy Spirit Airlines?",
        [
            sentence(
                "Frontier Airlines agreed to buy Spirit Airlines for $2.9 billion.", relevance=8
            ),
            sentence("Spirit Airlines flies to Florida.", "b.txt", relevance=3),
            sentence("Spirit Airlines has a new logo.", "c.txt", relevance=1),  # too far below
        ],
    )
    assert not reading.refused
    [answer] = reading.answers
    assert answer.text == "Frontier Airlines" and answer.sources == ("a.txt",)
    assert [s.source for s in reading.chosen] == ["a.txt", "b.txt"]


def test_an_article_from_before_this_week_cannot_say_what_happened_this_week():
    reading = read(
        "Which airline announced a deal this week to buy Spirit Airlines?",
        [
            sentence(
                "Frontier Airlines agreed to buy Spirit Airlines.", date="2022-02-07", relevance=9
            )
        ],
        topic="Spirit Airlines",
    )
    assert reading.refused
    assert reading.reason == (
        "The articles cover Spirit Airlines, but none published since 2022-07-21 says which "
        "airline announced a deal this week to buy Spirit Airlines."
    )


def test_undated_articles_are_not_ruled_out_by_a_period():
    reading = read(
        "Which airline announced a deal this week to buy Spirit Airlines?",
        [sentence("Frontier Airlines agreed to buy Spirit Airlines.", date=None, relevance=9)],
    )
    assert not reading.refused and reading.answers[0].text == "Frontier Airlines"


def test_nothing_that_reads_as_an_answer_is_refused():
    reading = read(
        "Why did the airline merger fail?",
        [sentence("Spirit Airlines flies to Florida.", relevance=-6)],
        topic="Spirit Airlines",
    )
    assert reading.refused
    assert reading.reason.startswith("The articles mention Spirit Airlines, but none of them")


def test_a_typed_question_without_anything_of_its_kind_is_a_near_miss():
    reading = read(
        "How many drones has Iran delivered to Russia?",
        [sentence("Iran has delivered drones to Russia, officials said.", relevance=6)],
        topic="Iran and Russia",
    )
    assert reading.refused
    assert reading.reason == (
        "The articles cover Iran and Russia, but none answers “How many drones has Iran "
        "delivered to Russia?”."
    )


def test_the_questions_own_names_are_not_its_answer():
    reading = read(
        "Who will replace Stoltenberg as NATO chief?",
        [sentence("Jens Stoltenberg will stay on as NATO chief.", relevance=2)],
    )
    assert reading.refused  # the only person there is the one asked about


def test_the_asked_relation_picks_the_entity():
    reading = read(
        "Who ordered the withdrawal from Kherson?",
        [
            sentence(
                "Jens Stoltenberg spoke after Defense Minister Sergey Shoigu ordered a "
                "withdrawal from Kherson.",
                relevance=7,
            )
        ],
    )
    assert reading.answers[0].text == "Sergey Shoigu"


@pytest.mark.parametrize(
    ("question", "text", "expected"),
    [
        # a day is when, not how much
        (
            "US household debt passed which massive figure this week?",
            "US household debt surpassed $16 trillion on Tuesday, the New York Fed said.",
            "$16 trillion",  # and the currency sign is the answer's
        ),
        (
            "How old is the pilot?",
            "The pilot, who flew on Wednesday, is 17 years old.",
            "17 years old",
        ),
        # a common word of the question does not name an entity: "cities" is not "Mexico City"
        (
            "People are fleeing their expensive cities. Where are many Americans moving?",
            "A growing number of Americans are crossing the border to make Mexico City home.",
            "Mexico City",
        ),
        # nor is a capitalised word too common to weigh only the question's ("New")
        (
            "Which additional city did the governor designate as a drop-off location?",
            "His office said New York is now a designated drop-off location.",
            "New York",
        ),
        # initials the question gives name the entity: "the US" is the United States
        (
            "NASA launched from a spaceport outside the US. Where did the launch occur?",
            "NASA launched a rocket from Australia, its first launch outside the United States.",
            "Australia",
        ),
        # a modifier of a name the question gives is part of that name
        (
            "House Speaker Nancy Pelosi made a visit to which area?",
            "US House Speaker Nancy Pelosi landed in Taiwan on Tuesday.",
            "Taiwan",
        ),
        # the asked relation runs through the same nouns: the sale *of* the team, not *from*
        # its owner; and a place the small model tags alone is read with its team's name
        (
            "NFL owners this week unanimously approved the sale of which football team?",
            "NFL owners unanimously approved the sale of the Denver Broncos Tuesday from the Pat "
            "Bowlen Trust to the Walton-Penner family.",
            "Denver Broncos",
        ),
        # the one met is not where they met
        (
            "Which UK prime minister did Stoltenberg meet? Where did they meet?",
            "Mr Stoltenberg said in an interview on Wednesday during a trip to London, where he "
            "met with Prime Minister Rishi Sunak.",
            "London",
        ),
    ],
)
def test_the_answer_is_of_the_asked_kind_and_not_the_questions_own(question, text, expected):
    reading = read(question, [sentence(text, relevance=6)])
    assert [a.text for a in reading.answers][:1] == [expected]


def test_an_office_is_answered_by_who_is_named_as_holding_it():
    articles = [
        sentence(
            "His comments come after Russian Defense Minister Sergey Shoigu ordered a withdrawal.",
            relevance=5,
        ),
        sentence(
            "NATO Secretary General Jens Stoltenberg told CNN on Wednesday that the support "
            "provided to Ukraine is successful.",
            "b.txt",
            relevance=4.5,
        ),
        sentence("Stoltenberg met Prime Minister Rishi Sunak in London.", "c.txt", relevance=4),
    ]
    secretary = read("Who is the NATO Secretary General?", articles)
    assert [a.text for a in secretary.answers][:1] == ["Jens Stoltenberg"]
    # a country's adjective is the country ("Russia's" for "Russian"); spellings are one
    minister = read("Who is Russia's defence minister?", articles)
    assert [a.text for a in minister.answers][:1] == ["Sergey Shoigu"]
    # the Russian minister is not the Ukrainian one, nor the foreign minister; no one here is
    # named a reporter
    for question in (
        "Who is the Ukrainian defence minister?",
        "Who is the foreign minister of Russia?",
        "Who is NATO's deputy secretary general?",
        "Who is the Sky News reporter?",
    ):
        reading = read(question, articles)
        assert reading.answers == [], question


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did Colin Kahl make his casualty remarks?", "Tuesday"),
        ("When did the war start according to the Pentagon official?", "February"),
    ],
)
def test_when_is_the_date_of_the_clause_about_whom_the_question_asks(question, expected):
    kahl = (
        "On Tuesday, the Pentagon's Under Secretary of Defense for Policy Colin Kahl said that "
        "Russia has suffered tens of thousands of casualties since the war began in February."
    )
    assert read(question, [sentence(kahl, relevance=6)]).answers[0].text == expected


def test_in_what_year_is_not_answered_by_a_day():
    reading = read(
        "In what year did Jens Stoltenberg become NATO secretary general?",
        [sentence("NATO Secretary General Jens Stoltenberg spoke on Wednesday.", relevance=2)],
    )
    assert reading.answers == []


def test_in_which_month_is_answered_by_a_month():
    reading = read(
        "In what month did the war in Ukraine start, per the CNN report?",
        [
            sentence(
                "NATO Secretary General Jens Stoltenberg told CNN on Wednesday that the support "
                "provided to Ukraine is successful.",
                relevance=-1.6,
            ),
            sentence(
                "On Tuesday, Colin Kahl said that Russia has suffered tens of thousands of "
                "casualties since the war began in February.",
                "b.txt",
                relevance=-1.9,
            ),
        ],
    )
    assert [a.text for a in reading.answers] == ["February"]


@pytest.mark.parametrize(
    ("question", "text"),
    [
        # a share is no count
        (
            "How many Russian soldiers have been killed in Ukraine?",
            "Russia has dedicated around 80% of their land forces to Ukraine.",
        ),
        # and a number of directions is no number of troops, nor casualties soldiers killed
        (
            "How many Russian troops are stationed in Kherson?",
            "Ukrainian forces have made advances toward Kherson city from two directions.",
        ),
        (
            "Exactly how many Russian soldiers have been killed in the war?",
            "Colin Kahl said that Russia has suffered tens of thousands of casualties.",
        ),
    ],
)
def test_how_many_asks_for_a_count_of_the_asked_thing(question, text):
    assert read(question, [sentence(text, relevance=4)]).answers == []


def test_a_place_the_model_takes_for_a_person_is_not_who_is_asked_for():
    reading = read(
        "Who said the support provided to Ukraine is successful?",
        [
            # en_core_web_sm tags Kherson a PERSON here ...
            sentence(
                "NATO Secretary General Jens Stoltenberg told CNN on Wednesday that a partial "
                "Russian withdrawal from Kherson shows that support provided by the military "
                "alliance to Ukraine is successful.",
                relevance=6,
            ),
            # ... and a place where the other articles name it
            sentence(
                "Ukrainian forces advanced toward the city of Kherson.", "b.txt", relevance=-4
            ),
            sentence(
                "Moscow ordered its troops to withdraw from the key southern city of Kherson.",
                "c.txt",
                relevance=-5,
            ),
        ],
    )
    assert [a.text for a in reading.answers] == ["Jens Stoltenberg"]


def test_who_said_is_answered_by_the_speaker_from_a_quoted_sentence():
    reading = read(
        "Who said the war is not over?",
        [
            # the speaker is not named here ...
            sentence("“Therefore, the war is not over,” he said in London.", relevance=7),
            # ... and a name below the quotes is not given as the answer
            sentence("Colin Kahl spoke on Tuesday about the war.", "b.txt", relevance=0.5),
        ],
    )
    assert not reading.refused and reading.answers == []
    told = read(
        "Who said the support provided to Ukraine is successful?",
        [
            sentence(
                "President Vladimir Putin was absent as NATO Secretary General Jens Stoltenberg "
                "told CNN that the support provided to Ukraine is successful.",
                relevance=6,
            )
        ],
    )
    assert [a.text for a in told.answers] == ["Jens Stoltenberg"]  # told, not near the words
    # but "who told Sky News" is not answered by someone who said something else
    source = read(
        "Who told Sky News there was a concern about the weapons?",
        [
            sentence("A security source told Sky News there was a concern about the weapons."),
            sentence("“We are concerned,” Mr Stoltenberg said about the weapons.", "b.txt"),
        ],
    )
    assert source.answers == []


def test_a_person_is_never_the_team_asked_for():
    reading = read(
        "Which team won the 2022 NHL Stanley Cup Finals?",
        [
            sentence(
                "Sidney Crosby, Evgeni Malkin and Kris Letang won the Stanley Cup in 2009, 2016 "
                "and 2017.",
                relevance=6,
            ),
            sentence(
                "The Colorado Avalanche defeated the Tampa Bay Lightning 2-1 in Game 6 to win the "
                "team's first Stanley Cup since 2001 on Sunday night.",
                "b.txt",
                relevance=5,
            ),
        ],
    )
    assert reading.answers[0].text == "Colorado Avalanche"


def test_articles_that_disagree_each_get_their_answer():
    reading = read(
        "Which company bought the stadium?",
        [
            sentence("Amazon bought the stadium on Monday.", "a.txt", relevance=7),
            sentence("Microsoft bought the stadium, its rival reported.", "b.txt", relevance=6.5),
            sentence("Microsoft owns other stadiums.", "c.txt", relevance=6.5),
        ],
    )
    assert [(a.text, a.sources) for a in reading.answers] == [
        ("Amazon", ("a.txt",)),
        ("Microsoft", ("b.txt", "c.txt")),
    ]


def test_a_role_is_the_title_before_the_name_or_the_apposition_after_it():
    title = read(
        "Who is Sergey Shoigu?",
        [sentence("Russian Defense Minister Sergey Shoigu ordered a withdrawal.", relevance=1)],
    )
    assert title.answers[0].text == "Russian Defense Minister"
    apposition = read(
        "Who is Jens Stoltenberg?",
        [sentence("Jens Stoltenberg, the head of the NATO alliance, spoke to Sky News.")],
    )
    assert apposition.answers[0].text == "the head of the NATO alliance"
    nothing = read("Who is Rishi Sunak?", [sentence("Rishi Sunak met him.", relevance=1)])
    assert nothing.refused


def test_an_answer_phrase_is_cut_from_its_sentence_at_file_offsets():
    text = "Officials said Iran has supplied hundreds of drones to Russia."
    s = sentence(text, relevance=5)
    s.start, s.end = 100, 100 + len(text)
    reading = read("How many drones has Iran supplied to Russia?", [s])
    [answer] = reading.answers
    assert answer.text == "hundreds"
    assert answer.start == 100 + text.index("hundreds") and answer.end == answer.start + 8


def test_say_questions_quote_the_speaker_and_not_someone_else():
    sunak = sentence(
        "“We have to wait and see,” Mr Stoltenberg said during a trip to London, where he "
        "met with Prime Minister Rishi Sunak.",
        speaker=1.0,  # the patterns credit it to Sunak: named, and a verb of saying
    )
    reading = read(
        "What did Rishi Sunak say about the war?", [sunak], "Rishi Sunak", frozenset({"sunak"})
    )
    assert reading.refused
    assert reading.reason == (
        "The articles mention Rishi Sunak, but none of them quotes Rishi Sunak about the war."
    )
    own = sentence("“The war must end,” Sunak told reporters.", "b.txt", speaker=1.0)
    reading = read(
        "What did Rishi Sunak say about the war?", [sunak, own], None, frozenset({"sunak"})
    )
    assert [s.text for s in reading.chosen] == [own.text]


def test_without_the_reranker_the_lexical_score_decides():
    reader = Reader(Policy(), None)
    weak = sentence("Spirit Airlines flies to Florida.", relevance=None)
    weak.coverage = 0.1
    assert reader.read(analyze("Why did the merger fail?"), [weak], None).refused
    strong = sentence("The merger failed because regulators objected.", relevance=None)
    strong.coverage = 0.9
    reading = reader.read(analyze("Why did the merger fail?"), [strong], None)
    assert reading.chosen == [strong]


def test_quotations_run_on_to_their_attribution():
    text = "“We are concerned. That highlights the danger,” he said. Then he left."
    hit = Hit("x#0", text, {"source": "x.txt", "start": 10, "end": 10 + len(text)})
    first = candidates([hit], max_chars=600)[0]
    assert first.text == "“We are concerned. That highlights the danger,” he said."
    assert (first.start, first.end) == (10, 10 + len(first.text))


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("Iran", "The articles cover Iran, but none says who ordered it."),
        (None, "None of the articles I found says who ordered it."),
    ],
)
def test_near_miss_wording(topic, expected):
    assert findings.near_miss(analyze("Who ordered it?"), topic, None) == expected


def test_a_sentence_longer_than_a_quote_is_quoted_in_pieces_cut_at_word_boundaries():
    text = " ".join(f"word{n}" for n in range(1200))  # ~8,000 characters, no full stop
    base = 7
    hit = Hit("x#0", text, {"source": "x.txt", "start": base, "end": base + len(text)})
    found = candidates([hit], max_chars=600)

    assert len(found) > 10
    for s in found:
        quote = Quote(
            s.text, s.source, s.start, s.end, cut_before=s.cut_before, cut_after=s.cut_after
        )
        assert len(quote.shown) <= 600
        assert text[s.start - base : s.end - base] == s.text  # verbatim at its offsets
        assert s.cut_before == (s is not found[0]) and s.cut_after == (s is not found[-1])
        assert quote.shown.startswith("…" * s.cut_before + "word")
        assert quote.shown.endswith(s.text.split()[-1] + "…" * s.cut_after)
    # Each piece starts within the first half of the one before, so every word is near the
    # start of a piece, where the cross-encoder reads it.
    for before, after in zip(found, found[1:], strict=False):
        assert before.start < after.start <= before.start + (before.end - before.start) // 2 + 1
        assert text[after.start - base - 1] == " "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fits well", ["fits well"]),
        ("aaaa bbbb cccc dddd", ["aaaa bbbb", "cccc dddd"]),
        ("aaaa   bbbb cccc", ["aaaa", "bbbb cccc"]),  # no spaces kept at a cut
        ("x" * 25, ["x" * 9, "x" * 8, "x" * 8]),  # one word longer than a quote: cut in it
    ],
)
def test_pieces_fit_with_their_ellipses(text, expected):
    found = pieces(text, 0, len(text), max_chars=10, overlap=False)
    assert [text[p.start : p.end] for p in found] == expected
    for p in found:
        assert p.end - p.start + p.cut_before + p.cut_after <= 10
    overlapping = pieces(text, 0, len(text), max_chars=10)
    assert overlapping[0] == found[0] and overlapping[-1].end == len(text)


@pytest.mark.parametrize(
    ("text", "quoted", "expected"),
    [
        ("One sentence. Another one.\n", "Another one.", (False, False)),
        ("Title\ndate 2022-11-09 First sentence. Next.", "First sentence.", (False, False)),
        ("words cut by a chunk boundary and more words.", "cut by a chunk", (True, True)),
        (
            "A paragraph without an end\nNext paragraph.",
            "A paragraph without an end",
            (False, False),
        ),
    ],
)
def test_cut_marks_say_where_a_quote_begins_or_ends_inside_a_sentence(text, quoted, expected):
    start = text.index(quoted)
    assert cut_marks(text, start, start + len(quoted)) == expected


@pytest.mark.parametrize(
    ("question", "texts", "expected"),
    [
        (  # Putin stands near "NATO", in a clause of his own
            "Who leads NATO?",
            [
                "Russia has lost the momentum in Ukraine but President Vladimir Putin must not "
                "be underestimated, the head of the NATO military alliance has told Sky News.",
                "NATO Secretary General Jens Stoltenberg told CNN on Wednesday that support "
                "for Ukraine is working.",
            ],
            "Jens Stoltenberg",
        ),
        (  # Ukraine is where the drones are used, not who supplies them
            "Which country is accused of supplying drones to Russia?",
            [
                "Asked about a report that Russia has allegedly given Iran captured weapons and "
                "cash in return for deadly drones to be used against Ukraine, Mr Stoltenberg "
                "said that he could not confirm the allegations."
            ],
            "Iran",
        ),
        (  # the question's verb in another form holds the clause: "met" for "meet"
            "Who did Stoltenberg meet in London?",
            [
                "“We have to wait and see,” Mr Stoltenberg said in an interview during a trip to "
                "London, where he met with Prime Minister Rishi Sunak."
            ],
            "Rishi Sunak",
        ),
    ],
)
def test_an_answer_near_the_questions_words_shares_a_clause_with_them(question, texts, expected):
    sentences = [sentence(t, f"{i}.txt", relevance=5 - i) for i, t in enumerate(texts)]
    assert [a.text for a in read(question, sentences).answers][:1] == [expected]


def test_the_articles_that_agree_are_those_shown():
    texts = [
        ("a.txt", 5, "Tamika Hollis scored 31 points for the Riverton Hawks on Saturday."),
        ("b.txt", 4, "The Riverton Hawks won as Tamika Hollis scored 31 points."),
        ("c.txt", -2, "Tamika Hollis, who scored 31 points, signed with the Hawks in May."),
    ]
    sentences = [sentence(text, source, relevance=r) for source, r, text in texts]
    reading = read("Who scored 31 points for the Riverton Hawks?", sentences)
    assert [s.source for s in reading.chosen] == ["a.txt", "b.txt"]  # c reads too far below
    assert [(a.text, a.sources) for a in reading.answers] == [("Tamika Hollis", ("a.txt", "b.txt"))]
