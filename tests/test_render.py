"""bot.cli.render: answers and their passages as terminal text, with and without colour."""

from __future__ import annotations

import re

import pytest

from bot.answering.types import Answer, DirectAnswer, Passage, Quote
from bot.answering.wording import format_answer
from bot.cli.render import render_passages, render_text, use_color

ANSI = re.compile(r"\x1b\[[0-9;]*m")

IRAN = "“What I can say is that what we see is that Iran is supporting Russia,” he said."
DRONES = (
    "“They have delivered these drones and that’s actually Iran supporting an illegal war by "
    "Russia, a war of aggression against Ukraine.”"
)
TITLE = "Russia’s Kherson retreat is ‘encouraging’ but too soon for conclusions, says NATO chief"


def quote(text: str, source: str = "001.txt", start: int = 0, **kw) -> Quote:
    return Quote(text, source, start, start + len(text), **kw)


def answer_of(*quotes: Quote, **kw) -> Answer:
    values = {
        "question": "what did Stoltenberg say about Iran?",
        "text": format_answer(list(quotes)),
    }
    values.update(kw)
    return Answer(
        quotes=list(quotes), sources=list(dict.fromkeys(q.source for q in quotes)), **values
    )


@pytest.fixture
def two_sources() -> Answer:
    return answer_of(
        quote(IRAN, "001.txt", 100, title=TITLE, date="2022-11-10"),
        quote(DRONES, "001.txt", 200, title=TITLE, date="2022-11-10"),
        quote("NATO has the same analysis.", "000.txt", 50),
    )


def test_plain_text_puts_each_label_at_the_margin_and_its_quotes_under_it(two_sources):
    text = render_text(two_sources, color=False)
    assert "\x1b[" not in text
    lines = text.split("\n")
    assert lines[0].startswith("001.txt · Russia’s Kherson retreat")
    assert lines[0].endswith("· 2022-11-10")
    assert lines[1:] == [
        f"  > {IRAN}",
        f"  > {DRONES}",
        "000.txt",
        "  > NATO has the same analysis.",
    ]


def test_plain_text_is_one_paragraph_per_answer(two_sources):
    """A script reading piped answers can split them at blank lines."""
    assert "\n\n" not in render_text(two_sources)
    assert render_text(two_sources) == two_sources.text.replace("\n\n", "\n")


def test_colour_marks_labels_and_quotes_differently(two_sources):
    text = render_text(two_sources, color=True)
    lines = text.split("\n")
    assert lines[0].startswith("\x1b[1;36m001.txt") and lines[0].endswith("\x1b[0m")
    assert lines[1].startswith("\x1b[2m  │ \x1b[0m") and lines[1].endswith(IRAN)
    assert lines[3] == "" and lines[4] == "\x1b[1;36m000.txt\x1b[0m"  # sources apart
    # Without its escape codes, every quote is still there verbatim.
    assert IRAN in ANSI.sub("", text) and DRONES in ANSI.sub("", text)


def test_wrapping_moves_line_breaks_only(two_sources):
    text = render_text(two_sources, color=False, width=40)
    quote_lines = [line for line in text.split("\n") if line.startswith("  > ")]
    assert all(len(line) <= 40 for line in quote_lines)
    assert len(quote_lines) > 3
    joined = " ".join(line[4:] for line in quote_lines)
    assert IRAN in joined and DRONES in joined


def test_a_quote_spanning_lines_keeps_its_marker_on_every_line():
    text = render_text(answer_of(quote("First paragraph.\n“Second paragraph.”")))
    assert text.split("\n")[1:] == ["  > First paragraph.", "  > “Second paragraph.”"]


def test_a_refusal_is_a_plain_sentence():
    refusal = Answer(
        question="q", text="I could not find this in the indexed articles.", refused=True
    )
    assert render_text(refusal, color=True) == "I could not find this in the indexed articles."


def test_a_direct_answer_leads_and_disagreeing_articles_each_get_a_line():
    a = quote("Frontier Airlines agreed to buy Spirit.", "a.txt")
    b = quote("JetBlue made a rival offer for Spirit.", "b.txt")
    direct = [
        DirectAnswer(Quote("Frontier Airlines", "a.txt", 0, 17), ("a.txt", "c.txt")),
        DirectAnswer(Quote("JetBlue", "b.txt", 0, 7), ("b.txt",)),
    ]
    answer = answer_of(a, b, text=format_answer([a, b], direct), direct=direct)
    lines = render_text(answer).splitlines()
    assert lines[:2] == ["Frontier Airlines — 2 articles", "JetBlue — 1 article"]
    assert lines[2] == "a.txt" and lines[3] == f"  > {a.text}"
    assert render_text(answer, color=True).startswith("\x1b[1mFrontier Airlines — 2 articles")


def test_llm_prose_comes_before_the_quotes_it_rests_on():
    base = answer_of(quote(IRAN, "001.txt"))
    llm = answer_of(
        quote(IRAN, "001.txt"), text="Stoltenberg said Iran supports Russia [1].", kind="llm"
    )
    assert render_text(llm) == f"Stoltenberg said Iran supports Russia [1].\n{base.text}"
    assert render_text(llm, color=True).startswith("Stoltenberg said Iran supports Russia [1].\n\n")


def test_notice_comes_last_and_stands_out():
    answer = answer_of(quote(IRAN), notice="The LLM did not answer; showing quotes instead.")
    assert render_text(answer).endswith(f"{IRAN}\nThe LLM did not answer; showing quotes instead.")
    assert "\x1b[33mThe LLM did not answer" in render_text(answer, color=True)


def test_passages_show_file_position_score_and_full_text():
    passages = [
        Passage("Line one.\nLine two.", "001.txt", 962, 2102, TITLE, "2022-11-10", 0.03279),
        Passage("Other text.", "000.txt", 17, 1168, None, None, 0.0318),
    ]
    answer = answer_of(quote("Line two.", "001.txt", 972), passages=passages)
    text = render_passages(answer)
    assert text.startswith("2 passages retrieved for “what did Stoltenberg say about Iran?”:")
    assert "[1] 001.txt · Russia’s Kherson retreat" in text
    assert "    characters 962–2102 · score 0.0328 · quoted" in text
    assert "    Line one.\n    Line two.\n[2] 000.txt\n" in text
    assert text.endswith("[2] 000.txt\n    characters 17–1168 · score 0.0318\n    Other text.")
    assert "\n\n[2] " in render_passages(answer, color=True).replace("\x1b[1;36m", "")


def test_passages_without_an_answer_or_without_passages():
    assert "ask a question first" in render_passages(None)
    assert render_passages(Answer(question="q", text="t")) == "No passages were retrieved for “q”."


class FakeStream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_color(FakeStream(True))
    assert not use_color(FakeStream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(FakeStream(True))
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color(FakeStream(True))


# -- text from files, users and LLMs cannot drive the terminal -------------------------------
HOSTILE = "Officials \x1b]52;c;c2VjcmV0\x07said \x1b[2Jthe \x1b]0;owned\x07drones \x9b2J\u202ehit."
OURS = re.compile(r"\x1b\[(?:0|1|2|33|1;36)m")  # the codes render itself adds for colour
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_answer(**kw) -> Answer:
    evil = quote(HOSTILE, "evil\x1b[2J.txt", title="Title \x1b]0;t\x07here", date="2022-11-10")
    passage = Passage(HOSTILE, evil.source, 0, len(HOSTILE), evil.title, evil.date, 0.5)
    values = {"question": "who \x1b[2Jsaid?", "passages": [passage]} | kw
    return answer_of(evil, **values)


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize(
    "answer",
    [
        hostile_answer(),
        hostile_answer(kind="llm", text=f"The LLM says: {HOSTILE}", notice=f"Note {HOSTILE}"),
        hostile_answer(
            direct=[DirectAnswer(Quote("\x1b]0;x\x07Iran", "evil.txt", 0, 4), ("evil.txt",))]
        ),
        Answer(question="q", text=f"I could not find {HOSTILE}", refused=True),
    ],
)
def test_no_terminal_control_from_an_answer_reaches_the_screen(answer, color):
    for shown in (render_text(answer, color, width=60), render_passages(answer, color)):
        assert not CONTROLS.search(OURS.sub("", shown)), repr(shown)
        assert "c2VjcmV0" not in shown and "owned" not in shown  # whole sequences go


def test_quotes_keep_their_words_when_their_controls_go():
    text = render_text(hostile_answer())
    assert "  > Officials said the drones hit." in text
    assert text.startswith("evil.txt · Title here · 2022-11-10")
