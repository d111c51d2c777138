"""The answer itself, cut from the sentences that answer; and what to say when there is none.

    find(question, pool, ranked) -> [Finding]          the direct answer(s), best first
    near_miss(question, topic, period) -> str          "The articles cover X, but none ... says ..."
    not_answered(question, topic) -> str
    refusal_topic(question, hits) -> str | None        what the retrieved articles cover

A `Finding` is a short phrase of a quoted sentence -- its exact characters, at offsets in its
file -- and the articles that give the same answer. How it is found depends on what the
question asks (`question`):

- typed kinds (who, which company, where, when, how many, how much, what percentage): the
  entities spaCy finds in the best sentences (`pool`), of the labels that kind can be, that the
  question does not already name. The best sentence's entities come first; within a sentence
  an entity of the exact label beats a near one (an airline tagged GPE), and one close to the
  question's own words beats one far from them ("found embattled comedian Bill Cosby liable in
  a case brought by Judy Huth": Cosby). The question names an entity when the entity's head
  is one of its capitalised words, its initials one of its acronyms ("the US"), or it
  modifies such a word ("US" in "US House Speaker Pelosi"); a common word of the question does
  not ("cities" is not "Mexico City"). How many / how much is a count, not a day ("Tuesday");
  how many is not a share or a sum, nor a number of something else ("two directions" for how
  many troops); a person is never the company or team asked for. "In the asked relation"
  means an argument of the question's verb in the same slot (subject, object), reached
  through the same nouns and prepositions as the wh-phrase ("approved the sale of which
  team": the sale *of* the Broncos, not *from* the trust); "who said" asks for the subject of
  a verb of speech, never for a name near the words; for "when", a date of the clause whose
  subject is the question's ("On Tuesday, ... Kahl said ... since the war began in February":
  Tuesday for Kahl's remarks, February for the war). "Who is the X?" states only a person
  named as holding the office X, of the nationality asked ("Russian Defense Minister Sergey
  Shoigu" is not the Ukrainian one). A place the small model tags alone in a longer name is
  read with it ("Denver" Broncos), and a one-word PERSON that other retrieved sentences tag
  as a place is a place ("Kherson"). The reading stage keeps only phrases of quoted sentences.
  For the refusal check (`read`) labels count in coarse classes -- names, numbers, dates --
  because the small model often mistakes one name label for another ("Sri Lanka" as a
  PERSON); the answer prefers the exact label.
- `role` ("Who is Christiane Amanpour?", "What is Sergey Shoigu's job?"): the title in front of
  the name ("Russian Defense Minister Sergey Shoigu") or the apposition after it ("Jens
  Stoltenberg, the head of the NATO military alliance,"), from the parse of the sentences that
  name the subject.
- work, event, product, law: an entity of that exact label in the best sentence, when it is
  plainly the answer (in the asked relation, or naming the asked-about noun: "the Tony
  Awards" for "which awards show"); otherwise no direct answer, only the quotes.

When articles disagree, each answer is given with its articles: a second answer counts when it
is the best candidate of another article's sentence that reads nearly as well (`AGREE_LOGITS`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.answering import nlp
from bot.answering.dates import Period
from bot.answering.question import (
    LABELS,
    Question,
    is_place_word,
    same_place,
    slot_of,
    step_up,
)
from index.lexical import stem, words

if TYPE_CHECKING:
    from bot.answering.read import Sentence
    from bot.answering.retrieve import Hit

NAMES = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW"}
)
NUMBERS = frozenset({"CARDINAL", "MONEY", "PERCENT", "QUANTITY"})
TIMES = frozenset({"DATE", "TIME"})
COARSE: dict[str, frozenset[str]] = {
    "person": NAMES,
    "organization": NAMES,
    "place": NAMES,
    "date": TIMES,
    "number": NUMBERS | TIMES,
    "money": frozenset({"MONEY"}),  # the small model tags sums and shares reliably
    "percent": frozenset({"PERCENT"}),
}
ARGUMENTS = frozenset({"nsubj", "nsubjpass", "dobj", "pobj", "agent", "attr", "prep", "appos"})
# What counts as evidence of the asked kind, where it is narrower than what may be an answer:
# a question about a person needs a person (or a name in the asked relation), not any name.
EVIDENCE: dict[str, frozenset[str]] = {"person": frozenset({"PERSON"})}
AGREE_LOGITS = 1.0  # another article's answer is shown when its sentence reads this close
UNLINKED_LOGITS = 3.0  # an answer only near the question's words: its sentence this close
MAX_ANSWERS = 3
ROLE_SENTENCES = 4  # sentences naming the subject that are parsed for a title
TITLE_TAGS = frozenset({"NNP", "NNPS", "NN", "JJ", "POS", "HYPH"})
HONORIFICS = frozenset({"mr", "mrs", "ms", "dr", "sir", "dame", "mr.", "mrs.", "ms.", "dr."})
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][a-z]+)?")
CALENDAR = frozenset(
    """monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december jan feb mar apr jun jul aug sep
    sept oct nov dec spring summer autumn fall winter quarter today yesterday tomorrow tonight
    morning afternoon evening night noon midnight""".split()
)
MONTHS = frozenset(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
ORDINALS = frozenset(
    """first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth""".split()
)
PLACES = frozenset({"GPE", "LOC", "FAC"})
# Verbs that introduce someone's words ("announce a deal" does not).
SPEECH = frozenset(
    "say tell claim argue warn state tweet insist suggest add reply respond write".split()
)
LABEL_VOTES = 3  # other sentences parsed to check a one-word PERSON is not a place
MODIFIERS = frozenset({"compound", "nmod", "amod", "poss"})
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
YEAR = re.compile(r"\b(1[89]|20)\d\d\b")
TOPIC_NAMES = 3  # names of the question a refusal says the articles cover


@dataclass(frozen=True)
class Finding:
    """`text` is the file's text at [start, end) of `sentence.source`."""

    text: str
    sentence: Sentence
    start: int
    end: int
    sources: tuple[str, ...]
    linked: bool = False  # stands in the asked relation, or names the asked-about noun


@dataclass(frozen=True)
class _Candidate:
    text: str
    sentence: Sentence
    position: int  # of its sentence in the pool
    label: str
    exact: bool
    distance: int  # characters to the nearest word of the question; -1: argument of its verb
    a: int  # offsets in the sentence
    b: int

    @property
    def rank(self) -> int:
        """0: the asked label in the asked relation; 1: a near label in it ("Moscow ordered
        ..." for "Who ordered ...?"); 2: the asked label elsewhere; 3: a near label elsewhere."""
        linked = self.distance < 0
        return {(True, True): 0, (False, True): 1, (True, False): 2}.get((self.exact, linked), 3)


@dataclass(frozen=True)
class Found:
    answers: list[Finding]  # best first; [] when no phrase can be given as the answer
    evidence: bool  # the pool holds something of the asked kind (a near label counts)


def find(question: Question, pool: Sequence[Sentence], ranked: Sequence[Sentence]) -> Found:
    """The answer phrases for a factual question, and whether the pool has anything of the
    kind asked for at all (a typed question without it is a near miss)."""
    if question.kind == "role":
        answers = _roles(question, ranked)
        return Found(answers, bool(answers))
    if question.kind in COARSE:
        candidates = _entities(question, pool, LABELS[question.kind], COARSE[question.kind])
        candidates = _places_as_people(candidates, ranked, LABELS[question.kind])
        evidence = EVIDENCE.get(question.kind, COARSE[question.kind])
        return Found(
            _agreeing(candidates, pool),
            any(c.label in evidence or c.distance < 0 for c in candidates),
        )
    if question.kind in LABELS:  # work, event, product, law: only when plainly the answer
        candidates = _entities(question, pool[:1], LABELS[question.kind], LABELS[question.kind])
        answers = [f for f in _agreeing(candidates, pool) if f.linked]
        return Found(answers, bool(answers))
    return Found([], False)


# -- entities ----------------------------------------------------------------------------------
def _entities(question, pool, exact: frozenset[str], accepted: frozenset[str]) -> list:
    asked = set(words(question.text))
    proper = _proper_words(question.text)
    candidates = []
    docs = nlp.parse_all([s.text for s in pool])
    for position, (sentence, doc) in enumerate(zip(pool, docs, strict=True)):
        anchors = _anchors(sentence.text, asked)
        verbs = [t.idx for t in doc if question.verb and t.lemma_.lower() == question.verb]
        for ent in doc.ents:
            if ent.label_ not in accepted:
                continue
            if question.kind == "number" and ent.label_ in TIMES and not _a_count(ent):
                continue  # "Tuesday" is when, not how much
            if question.counts and ent.label_ in ("PERCENT", "MONEY"):
                continue  # "how many" is a count, not a share or a sum
            if not _of_the_asked_unit(ent, question.focus):
                continue  # "in what year" or "in which month" is not answered by "Wednesday"
            label = ent.label_
            ent = _whole_name(ent)
            span = _trimmed(ent, asked)
            if span is None or _named_in(ent, question, proper):
                continue  # the question's own words are not its answer
            distance = min((abs(ent.start_char - p) for p in anchors), default=len(doc.text))
            if label == "PERSON" and (question.kind == "organization" or question.wh == "where"):
                distance = len(doc.text)  # a person is never the team, or where, asked for
            elif question.verb and _argument_of(ent.root, question):
                distance = -1  # "Sergey Shoigu ... ordered" for "Who ordered ...?"
            elif question.kind == "date" and _in_clause_of(ent.root, set(question.doer)):
                distance = -1  # "On Tuesday, ... Colin Kahl said" for "When did Kahl speak?"
            if question.focus and question.focus in {t.lemma_.lower() for t in ent}:
                distance = -1  # "the Dnipro River" for "Which river ...?"
            stated = label in exact and not _counts_another(ent, question)
            if _asks_who_said(question) and distance >= 0:
                stated = False  # "who said ...?": the one saying it, not anyone near the words
            if distance >= 0 and not _clause_holds(ent.root, anchors + verbs):
                stated = False  # near the question's words, but in a clause of its own
            if question.role:
                # "Who is the Ukrainian defence minister?": a person named as holding the
                # office, or in the asked relation -- not one who merely stands near by
                holds = _holds_role(ent, question)
                if holds is not None:
                    distance = -1 if holds else len(doc.text)
                stated = stated and distance < 0
            candidates.append(
                _Candidate(
                    doc.text[span.start_char : span.end_char],
                    sentence,
                    position,
                    label,
                    stated,
                    distance,
                    span.start_char,
                    span.end_char,
                )
            )
    return candidates


def _places_as_people(candidates: list, ranked: Sequence[Sentence], exact) -> list:
    """One-word PERSON candidates that the model tags a place where else the retrieved
    sentences name them, relabelled as places: "a partial Russian withdrawal from Kherson"
    gave a PERSON, "the key southern city of Kherson" a GPE. At most `LABEL_VOTES` other
    sentences are parsed to ask."""
    single = {c.text for c in candidates if c.label == "PERSON" and _WORD.fullmatch(c.text)}
    if not single:
        return candidates
    own = {id(c.sentence) for c in candidates}
    naming = (s for s in ranked if id(s) not in own and any(_names(s.text, w) for w in single))
    others = list(itertools.islice(naming, LABEL_VOTES))
    votes: dict[str, list[str]] = {w: [] for w in single}
    for doc in nlp.parse_all([s.text for s in others]):
        for ent in doc.ents:
            if ent.text in votes:
                votes[ent.text].append(ent.label_)
    places = {
        w
        for w, labels in votes.items()
        if sum(label in PLACES for label in labels) > labels.count("PERSON")
    }
    if not places:
        return candidates
    relabelled = []
    for c in candidates:
        if c.text in places and c.label == "PERSON":
            c = replace(c, label="GPE", exact="GPE" in exact)
        relabelled.append(c)
    return relabelled


def _names(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text) is not None


def _trimmed(ent, asked: set[str]):
    """The entity without the question's own words in front ("Under Secretary of Defense for
    Policy Colin Kahl", asked about the Under Secretary: "Colin Kahl"; "the Dnipro River" keeps
    its "River"); None when it is only the question's words."""
    tokens = list(ent)

    def given(token) -> bool:
        own = words(token.text)
        if own:
            return set(own) <= asked
        # A word too common to weigh ("the", a quote mark) goes; a symbol or a number word
        # ("$16 trillion", "one million") and a name's ("New York") are the answer's.
        return not (token.is_currency or token.like_num or token.pos_ == "PROPN")

    if all(given(t) for t in tokens):
        return None
    while given(tokens[0]):
        tokens.pop(0)
    return ent.doc[tokens[0].i : tokens[-1].i + 1]


def _named_in(ent, question: Question, proper: set[str]) -> bool:
    """The entity is one the question names ("Jens Stoltenberg" for "Who will replace
    Stoltenberg?"): its head word is a capitalised word of the question -- unless that is the
    noun asked about ("the Dnipro River" for "Which river ...?"); or its initials are one
    ("the United States" for "outside the US"). A common word does not name it: "Mexico City"
    answers "people are fleeing their expensive cities. Where to?"."""
    head = stem(ent.root.lower_)
    if head in proper and head != stem(question.focus or ""):
        return True
    if ent.root.dep_ in MODIFIERS and stem(ent.root.head.lower_) in proper:
        return True  # part of a name the question gives: "US" in "US House Speaker Pelosi"
    initials = "".join(t.text[0] for t in ent if t.text[:1].isupper())
    return len(initials) > 1 and initials in _ACRONYM.findall(question.text)


def _proper_words(text: str) -> set[str]:
    """Stems of the capitalised words of a question (its names, and its first word)."""
    return {stem(m[0].lower()) for m in _WORD.finditer(text) if m[0][:1].isupper()}


def _a_count(ent) -> bool:
    """Can a date or time entity answer "how many / how much / how old": a count of units
    ("155 days", "six months", "15"), not a point in time ("Tuesday", "March 23", "2021",
    "the second quarter")?"""
    if any(t.lower_ in CALENDAR for t in ent):
        return False
    counts = [t for t in ent if t.like_num and t.lower_ not in ORDINALS]
    return bool(counts) and not (len(ent) == 1 and YEAR.fullmatch(ent.text))


def _argument_of(token, question: Question) -> bool:
    """Does `token` stand where the question's wh-phrase stands: an argument of its verb,
    directly or through a preposition ("ordered by Shoigu"), in the same slot (the subject of
    "Which journalist met him?" is not the one met), by way of the same nouns (`via`): "approved
    the sale of the Denver Broncos ... from the Pat Bowlen Trust" answers "approved the sale of
    which team" with the Broncos, not the trust?"""
    path: list[str] = []
    for _ in range(3):
        if token.dep_ not in ARGUMENTS:
            return False
        path += step_up(token)
        below, token = token, token.head
        if _same_verb(token.lemma_.lower(), question.verb):
            # The wh-phrase as subject or object: the entity must be that too ("said in
            # London" does not say who said it)
            same_slot = question.slot is None or slot_of(below) == question.slot
            return tuple(path) == question.via and same_slot
    return False


def _asks_who_said(question: Question) -> bool:
    """ "Who said the war is not over?": the speaker is asked for."""
    return question.verb in SPEECH and question.slot == "subject"


def _same_verb(lemma: str, verb: str | None) -> bool:
    """The question's verb; for "say", any verb of speech ("told CNN" for "who said"), but
    "who told Sky News" asks for who told it, not for anyone who said something."""
    return lemma == verb or (verb == "say" and lemma in SPEECH)


def _counts_another(ent, question: Question) -> bool:
    """ "two directions" for "how many troops", "tens of thousands of casualties" for how many
    soldiers were killed: a number that counts some other thing."""
    if not (question.counts and question.focus):
        return False
    doc = ent.doc
    if ent.root.dep_ == "nummod":
        counted = ent.root.head
    elif ent.end < len(doc) and doc[ent.end].lower_ == "of":
        objects = [c for c in doc[ent.end].children if c.dep_ == "pobj"]
        if not objects:
            return False
        counted = objects[0]
    else:
        return False
    return counted.pos_ == "NOUN" and counted.lemma_.lower() != question.focus


def _clause_holds(token, anchors: list[int]) -> bool:
    """Does the smallest clause holding `token` (the subtree of its nearest verb) hold one of
    the question's words (`anchors`, offsets; its verb in any form, "met" for "meet")?
    "... but President Vladimir Putin must not be underestimated, the head of the NATO
    military alliance has told Sky News" names Putin in a clause of its own, not as the one
    who leads NATO. (The parse can misplace a phrase after a dash: "... the largest leak yet
    -- certainly in terms of the impact in China" lost "China" for where a leak occurred,
    one phrase of 56 on the rtqa dev set.)"""
    head = token
    while head.pos_ not in ("VERB", "AUX") and head.head.i != head.i:
        head = head.head
    start = head.left_edge.idx
    end = head.right_edge.idx + len(head.right_edge)
    return any(start <= at < end for at in anchors)


def _in_clause_of(token, doer: set[str]) -> bool:
    """Does `token` hang from a verb whose subject is the question's (`doer`)? ("On Tuesday,
    the Pentagon's ... Colin Kahl said that ... since the war began in February": Tuesday is
    when Kahl spoke, February when the war began.)"""
    if not doer:
        return False
    for _ in range(4):
        if token.head.i == token.i:
            return False
        token = token.head
        if token.pos_ in ("VERB", "AUX"):
            subjects = [c for c in token.children if c.dep_ in ("nsubj", "nsubjpass")]
            return any(set(words(t.text)) & doer for s in subjects for t in s.subtree)
    return False


def _holds_role(ent, question: Question) -> bool | None:
    """Is the entity named as holding `question.role` ("NATO Secretary General Jens
    Stoltenberg", "Colin Kahl, the Under Secretary ...")? True, and when the question says
    whose office (`role_of`, "Ukrainian") the title must say so too; False when its title is
    of another nationality or place ("Russian Defense Minister" for the Ukrainian one); None
    when its sentence does not say ("Prime Minister Rishi Sunak" for the Ukrainian defence
    minister: no more than a minister)."""
    doc = ent.doc
    spans = [
        span
        for span in (_title_before(doc, ent[0], ent[-1]), _apposition(ent[-1]))
        if span is not None
    ]
    title = [t for t in doc if any(a <= t.idx < b for a, b in spans)]
    places = {t.lower_ for t in title if is_place_word(t)}
    asked = question.role_of
    if asked and places and not any(same_place(a, p) for a in asked for p in places):
        return False
    if question.role_of and not places:
        return None
    office = [t for t in title if t.lemma_.lower() == question.role]
    if not office:
        return None
    # Every other word qualifying the office is in the title too: a "Defense Minister" is not
    # the foreign minister asked about, nor a "Secretary General" the deputy one.
    named = {_spelling(t.lower_) for t in title}
    return all(_spelling(w) in named for w in question.role_kind)


def _of_the_asked_unit(ent, focus: str | None) -> bool:
    """A date of the unit a "what year / which month" question asks for: a year for a year
    ("2022", "last year"), a month's name or "month" for a month."""
    text = ent.text.lower()
    if focus == "year":
        return bool(YEAR.search(text)) or "year" in text
    if focus == "month":
        return any(t.lower_ in MONTHS for t in ent) or "month" in text
    return True


def _spelling(word: str) -> str:
    """British and American spellings as one: "defence" and "defense"."""
    return word.removesuffix("ence") + "ense" if word.endswith("ence") else word


def _whole_name(ent):
    """The entity with the proper noun it is the first part of: the small model often tags
    "Denver" in "the Denver Broncos" as the place alone."""
    head = ent.root.head
    if (
        ent.root.dep_ == "compound"
        and head.i == ent.end
        and head.pos_ == "PROPN"
        and head.ent_iob_ == "O"
    ):
        return ent.doc[ent.start : head.i + 1]
    return ent


def _anchors(text: str, asked: set[str]) -> list[int]:
    """Where the question's words stand in `text` (character offsets)."""
    return [m.start() for m in _WORD.finditer(text) if stem(m[0].lower()) in asked]


def _agreeing(candidates: list[_Candidate], pool) -> list[Finding]:
    """The best candidate and the answers of other articles that read nearly as well, each
    with every article of the pool that gives it. A near label (a person for "which country")
    is stated as the answer only when it stands in the asked relation ("Stoltenberg told
    CNN's Amanpour" for "Who did Stoltenberg tell ...?": CNN). One that stands only near the
    question's words is stated from a sentence that reads nearly as well as the best one
    (`UNLINKED_LOGITS`): far below it, the nearest name is a guess ("Which TV journalist
    interviewed Stoltenberg for CNN?" was given Rishi Sunak from a sentence 5 logits below the
    best). Within them it still may be: asked "Who interviewed Stoltenberg for CNN?", Sunak's
    sentence reads 2.9 logits below, and he is given."""
    top = max((_relevance(s) for s in pool), default=0.0)
    ordered = sorted(
        (
            c
            for c in candidates
            if c.rank < 2 or (c.rank == 2 and _relevance(c.sentence) >= top - UNLINKED_LOGITS)
        ),
        key=lambda c: (c.position, c.rank, c.distance),
    )
    if not ordered:
        return []
    best = ordered[0]
    chosen = [best]
    for candidate in ordered[1:]:
        if len(chosen) == MAX_ANSWERS:
            break
        # Another answer only where another article says the same thing of someone else:
        # an entity of the asked label, in the asked relation ("X ordered ...").
        if candidate.position == best.position or candidate.rank != 0:
            continue
        if any(_key(candidate.text) == _key(c.text) for c in chosen):
            continue
        if any(candidate.sentence.source == c.sentence.source for c in chosen):
            continue
        if _relevance(candidate.sentence) < _relevance(best.sentence) - AGREE_LOGITS:
            continue
        if candidate is not _first_in_sentence(ordered, candidate):
            continue
        chosen.append(candidate)
    return [_finding(c, pool) for c in chosen]


def _first_in_sentence(ordered: list[_Candidate], candidate: _Candidate) -> _Candidate:
    return next(c for c in ordered if c.position == candidate.position)


def _relevance(sentence) -> float:
    return sentence.relevance if sentence.relevance is not None else 0.0


def _key(text: str) -> str:
    text = text.casefold().replace("’", "'").removesuffix("'s")
    return " ".join(text.removeprefix("the ").split())


def _finding(candidate: _Candidate, pool) -> Finding:
    key = _key(candidate.text)
    sources = [candidate.sentence.source] + [
        s.source for s in pool if key in " ".join(s.text.casefold().replace("’", "'").split())
    ]
    start = candidate.sentence.start + candidate.a
    return Finding(
        candidate.text,
        candidate.sentence,
        start,
        start + (candidate.b - candidate.a),
        tuple(dict.fromkeys(sources)),
        candidate.distance < 0,
    )


# -- roles -------------------------------------------------------------------------------------
def _roles(question: Question, ranked: Sequence[Sentence]) -> list[Finding]:
    """The title or description of `question.subject` in the sentences that name it."""
    name = [
        w.casefold().removesuffix("'s").removesuffix("’s")
        for w in (question.subject or "").split()
        if w.lower() not in HONORIFICS
    ]
    if not name:
        return []
    naming = [s for s in ranked if name[-1] in s.text.casefold()][:ROLE_SENTENCES]
    candidates = []
    for position, sentence in enumerate(naming):
        span = _title_of(nlp.parse(sentence.text), set(name))
        if span is not None:
            a, b = span
            candidates.append(
                _Candidate(sentence.text[a:b], sentence, position, "TITLE", True, 0, a, b)
            )
    return _agreeing(candidates, naming)[:1]


def _title_of(doc, name: set[str]) -> tuple[int, int] | None:
    """Character span of the title before the name, or of the apposition after it."""
    i = 0
    while i < len(doc):
        if doc[i].text.casefold() not in name:
            i += 1
            continue
        first = last = doc[i]
        while last.i + 1 < len(doc) and doc[last.i + 1].text.casefold() in name:
            last = doc[last.i + 1]
        # "Stoltenberg" asked, "Jens Stoltenberg" written: the title stands before the whole
        # name (whatever the small model labels it: "Christiane Amanpour" is an ORG to it)
        named = next((e for e in doc.ents if e.start <= first.i < e.end), None)
        if named is not None and all(t.pos_ == "PROPN" for t in named):
            first, last = doc[min(first.i, named.start)], doc[max(last.i, named.end - 1)]
        i = last.i + 1
        title = _title_before(doc, first, last)
        if title is not None:
            return title
        apposition = _apposition(last)
        if apposition is not None:
            return apposition
    return None


def _title_before(doc, first, last) -> tuple[int, int] | None:
    """ "Russian Defense Minister" in "Russian Defense Minister Sergey Shoigu"; "CNN's
    Christiane Amanpour" when the title is only a possessive."""
    i = first.i - 1
    start = None
    while i >= 0:
        token = doc[i]
        if token.tag_ in TITLE_TAGS or (token.is_title and not token.is_punct and i > 0):
            start = i  # "Under" in "Under Secretary" is tagged a preposition
        elif token.lower_ in ("of", "for", "and") and start is not None:
            pass  # "Under Secretary of Defense for Policy"
        else:
            break
        i -= 1
    if start is None:
        return None
    while doc[start].lower_ in ("of", "for", "and"):
        start += 1
    before = [t for t in doc[start : first.i] if t.tag_ != "POS"]
    if not before or all(t.lower_.strip(".") in HONORIFICS for t in before):
        return None
    end = doc[first.i - 1]
    if end.tag_ == "POS":  # "CNN's": the title is the employer; keep the name with it
        end = last
    return doc[start].idx, end.idx + len(end.text)


def _apposition(name) -> tuple[int, int] | None:
    """ "the head of the NATO military alliance" in "Jens Stoltenberg, the head of ... ,"."""
    for child in name.children:
        if child.dep_ == "appos":
            tokens = [t for t in child.subtree if not t.is_punct]
            if tokens:
                return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
    return None


# -- refusals ----------------------------------------------------------------------------------
def near_miss(question: Question, topic: str | None, period: Period | None) -> str:
    """Related articles were found, but none holds what is asked (or none from the period)."""
    when = f" published since {period.since()}" if period is not None else ""
    asks = f"says {question.asks}" if question.asks else f"answers “{question.text}”"
    if topic:
        return f"The articles cover {topic}, but none{when} {asks}."
    return f"None of the articles{when or ' I found'} {asks}."


def not_answered(question: Question, topic: str | None) -> str | None:
    """Related articles were found, but no sentence in them reads as an answer."""
    if not topic:
        return None
    return f"The articles mention {topic}, but none of them answers “{question.text}”."


def not_quoted(question: Question, topic: str | None) -> str:
    """ "What did X say" where the articles name X but never give X's words."""
    who = question.subject or "them"
    about = f" about {question.topic}" if question.topic else ""
    return f"The articles mention {who}, but none of them quotes {who}{about}."


def refusal_topic(question: Question, hits: Sequence[Hit]) -> str | None:
    """What the retrieved articles are about, for a refusal: the question's names they
    mention ("Spirit Airlines"); None when they mention none."""
    text = " ".join(f"{h.title or ''} {h.text}" for h in hits).casefold()
    names = [n for n in question.names if n.casefold() in text][:TOPIC_NAMES]
    if len(names) <= 1:
        return names[0] if names else None
    return ", ".join(names[:-1]) + " and " + names[-1]
