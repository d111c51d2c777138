"""Follow-ups: a question read in the light of the conversation, as one that stands alone.

    condense(question, history) -> Turn

The first step of an answer (`answer`). Rules, tried in this order, each against the last
question of `history` (its standalone form, if it had one):

- not a follow-up -- no history, or no word that leans on one ("and", "also", "what about",
  a pronoun, "that", ...): the question as asked;
- "what did he say (about Y)?" after a question that names a speaker -- "what did X say ...",
  or "who is X?" (`role_subject`) -- or whose answer named one ("Who is NATO's secretary
  general?" answered "Jens Stoltenberg": `answered_person`) is "What did X say (about Y)?";
  "what did Z say about him?" after an answered "who" is "What did Z say about X?";
- another question with "he"/"she"/"him"/"his" in it: the first of them names X (X named by an
  answer: the question then goes on as the last rule's, "On what day did Colin Kahl say
  that?" needs the earlier question for "that");
- "and about Z?" after "what did X say about Y?" is "What did X say about Z?";
- any other follow-up ("and in Kherson?", "when was that?", a bare "why?"): the earlier
  question (its last `CONTEXT_CHARS`, whole sentences), then this one ("Who ordered the
  withdrawal? When was that?"), and the earlier one's words
  (`Turn.extra_words`) added to what retrieval looks for. The follow-up comes last because
  the last sentence with a wh-word says what is asked (`question.analyze`): "when" here, and
  "how many" still for "How many drones did Iran send? And in Kherson?".

A "what did he say" with no one named before keeps its pronoun as the speaker; the answerer
refuses it (who is "he"?).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.answering import nlp
from bot.answering.question import Question, analyze
from index.chunking import split_sentences
from index.lexical import words

if TYPE_CHECKING:
    from bot.answering.types import Answer, Quote

SAY_QUESTION = re.compile(
    r"^\s*(?:and\s+|so\s+|but\s+)?what\s+(?:did|does|do|has|have|had|was|is)\s+(?P<speaker>.+?)\s+"
    r"(?:say|said|saying|tell|told|think|thought|write|wrote|claim|claimed|argue|argued|"
    r"announce|announced|mean|reply|respond)\b(?:\s+(?:(?:about|on|regarding|of|to|concerning)\s+)?"
    r"(?P<topic>.+?))?\s*[?.!]*\s*$",
    re.I,
)
FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|but|so|then)\b|\b(he|she|they|him|her|his|their|it|"
    r"that|this|those|these)\b"
    r"|^\s*(why|when|where|who|how|what)(\s+(many|much|long|so))?\s*[?!.]*\s*$",  # "why?"
    re.I,
)
CONTEXT_CHARS = 300  # of the earlier question kept in front of a follow-up (whole sentences)
ABOUT_FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|but|so)?\s*(?:what|how)?\s*(?:about|on|regarding)\s+"
    r"(?!(?:what|which|who|whom|whose|when|where|why|how)\b)"  # "On what day did he ...?"
    r"(?P<topic>.+?)\s*[?.!]*\s*$",
    re.I,
)
PRONOUNS = {"he", "she", "they", "him", "her", "them", "it"}


@dataclass
class Turn:
    """A question as it stands alone: its text, the speaker and topic of a "what did X say
    about Y", and words of an earlier question that retrieval should look for too."""

    standalone: str
    speaker: str | None
    topic: str | None
    extra_words: list[str] = field(default_factory=list)

    @property
    def unresolved(self) -> bool:
        """A "what did he say" whose "he" no earlier question names."""
        return bool(self.speaker) and self.speaker.lower() in PRONOUNS


def condense(question: str, history: Sequence[Answer]) -> Turn:
    """`question` as a standalone question, after the earlier `history` (oldest first)."""
    match = SAY_QUESTION.match(question)
    speaker = match["speaker"] if match else None
    topic = match["topic"] if match else None
    if not history or not FOLLOW_UP.search(question):
        return Turn(question, speaker, topic)
    previous = history[-1].standalone_question or history[-1].question
    prev_match = SAY_QUESTION.match(previous)
    answered = None
    prev_speaker = prev_match["speaker"] if prev_match else None
    if not prev_match:
        prev_asked = analyze(previous)
        if not _both_genders(question):  # "When will he meet her?": which one is the answer?
            answered = answered_person(prev_asked, history[-1])
        prev_speaker = role_subject(prev_asked) or answered
    about_them = match and answered and topic and topic.lower() in {"him", "her"}
    if about_them and not set(words(answered)) & set(words(speaker)):  # not on himself
        return Turn(f"What did {speaker} say about {answered}?", speaker, answered)
    if speaker and speaker.lower() in PRONOUNS and prev_speaker:
        standalone = f"What did {prev_speaker} say" + (f" about {topic}?" if topic else "?")
        return Turn(standalone, prev_speaker, topic)
    if not match and prev_speaker and re.search(r"\b(he|she|him|her|his)\b", question, re.I):
        replaced = _named(question, prev_speaker)
        if prev_speaker != answered:
            return Turn(replaced, prev_speaker, None)
        question = replaced  # "did Colin Kahl say *that*": the earlier question stays in play
    new_topic = ABOUT_FOLLOW_UP.match(question)
    if new_topic and prev_speaker:  # "and about Kherson?" after "what did X say about Y?"
        new = new_topic["topic"]
        return Turn(f"What did {prev_speaker} say about {new}?", prev_speaker, new)
    # Any other follow-up ("and in Kherson?"): the earlier question's words stay in play.
    extra = [w for w in words(previous) if w not in set(words(question))]
    earlier = _last_sentences(previous.strip(), CONTEXT_CHARS)
    if not earlier.endswith(("?", ".", "!")):
        earlier += "?"
    now = question.strip()
    if topic and topic.lower() in PRONOUNS:  # "say about him": whom the earlier words name
        topic = None
    return Turn(f"{earlier} {now[:1].upper()}{now[1:]}", speaker or prev_speaker, topic, extra)


def _named(question: str, person: str) -> str:
    """`question` with its first "he", "she", "him" or "his" naming `person` ("What is his
    job?" -> "What is Sergey Shoigu's job?"); "her" may be either "him" or "his", so it stays."""

    def name(match: re.Match) -> str:
        return f"{person}'s" if match[0].lower() == "his" else person

    return re.sub(r"\b(he|she|him|his)\b", name, question, count=1, flags=re.I)


def _last_sentences(text: str, limit: int) -> str:
    """The last sentences of `text` that fit in `limit` characters (the last one whole, however
    long): a chain of follow-ups does not grow its standalone question without end."""
    spans = split_sentences(text) or [(0, len(text))]
    start = spans[-1][0]
    for a, _ in reversed(spans[:-1]):
        if len(text) - a > limit:
            break
        start = a
    return text[start:]


def answered_person(asked: Question, answer: Answer) -> str | None:
    """Jens Stoltenberg, when the answer to "Who is NATO's secretary general?" (`asked`) led
    with him: whom a "he" or "him" in the next question means. Only a single answer, to a
    question that asked for a person and named none itself: after "Who interviewed
    Stoltenberg?", "he" may as well be Stoltenberg (and in "who is X?" X is meant:
    `role_subject`)."""
    if asked.kind != "person" or asked.people or answer.refused or len(answer.direct) != 1:
        return None
    phrase = answer.direct[0].phrase
    return phrase.text if _tagged_a_person(phrase, answer.quotes) else None


def _both_genders(question: str) -> bool:
    found = {w.lower() for w in re.findall(r"\b(?:he|him|his|she|her|hers)\b", question, re.I)}
    return bool(found & {"he", "him", "his"}) and bool(found & {"she", "her", "hers"})


def _tagged_a_person(phrase: Quote, quotes: Sequence[Quote]) -> bool:
    """Is the answer phrase a person in the quote it was cut from, as the reader parsed it
    ("CNN" answers "Who did Stoltenberg tell?" too, and is no "he")?"""
    for quote in quotes:
        if quote.source == phrase.source and quote.start <= phrase.start < quote.end:
            at = phrase.start - quote.start
            doc = nlp.parse(quote.text)
            return any(e.label_ == "PERSON" for e in doc.ents if e.start_char <= at < e.end_char)
    return False


def role_subject(asked: Question) -> str | None:
    """Stoltenberg in "Who is Stoltenberg?": whom a "he" in the next question means."""
    return asked.subject if asked.kind == "role" else None
