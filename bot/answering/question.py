"""What a question asks for: the kind of answer, and the constraints an answer must meet.

    analyze(question, asked_on) -> Question

The question is parsed with spaCy (`nlp`): the wh-word and the noun it asks about ("which
*airline*", "what *percentage*", "how *many* minutes") give the kind of answer, and from the
kind the entity labels that can be one (`LABELS`). When a question has a preamble ("Afghanistan
was rocked by an earthquake this week. What was the magnitude of the quake?") the sentence
holding the wh-word decides the kind; the whole question gives the constraints.

Kinds: `person`, `organization`, `place`, `date`, `number`, `money`, `percent` (typed: an
answer is an entity of one of their labels), `work`, `event`, `product`, `law` (typed, but
spaCy's small model finds these entities too rarely to insist on them), `role` ("Who is
Christiane Amanpour?", "What is Sergey Shoigu's job?": a title or description of `subject`),
`thing` ("which measure", "what special announcement": a specific thing, no entity type), `say`
("what did X say about Y": the speaker's words) and `open` ("why", "how", "what happened").

Constraints:
- `period`: a date phrase (spaCy's DATE entities, interpreted by `dates`), relative to the
  asking day ("this week", "on Tuesday") or absolute ("in June 2022");
- `names`: the people, organisations, places... the question names (an answer is not one of
  them: "Which airline agreed to buy Spirit Airlines?" is not answered by "Spirit Airlines");
- `role`: the office a "who is the X?" question asks about ("who is the Ukrainian defence
  *minister*"), the nationality or place it is of (`role_of`: "ukrainian") and its other
  qualifiers (`role_kind`: "defence"): an answer should be named as holding it, not merely
  stand near the question's words; a "Russian Defense Minister" does not answer for the
  Ukrainian one, nor for the foreign minister;
- `verb`, `via`, `slot`, `doer`: where the wh-phrase stands -- the verb it hangs from, the
  nouns on the way ("the sale *of* which team"), subject or object, and the verb's subject
  when that is not the wh-phrase ("When did *Colin Kahl* speak?");
- `counts`: "how many" asks for a count, not a sum or a share.

The wh-word is the one of the main clause: "Which city did he visit *when* he spoke ...?" asks
for a city, and "the reporter *who* interviewed him" qualifies the reporter asked about.

The focus-noun lexicon below and the other names of some countries (`ALIASES`) are the lists
of words here; everything else comes from the parse. The lexicon maps the nouns a wh-word most
often asks about to a kind, the way answer-type taxonomies of question answering do; a noun
it does not know makes a `thing` question, which is answered without an entity check rather
than refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bot.answering import nlp
from bot.answering.dates import Period, find_period
from index.lexical import words

# Names of one country that share no word: the articles say "UK", the reader asks about
# "Britain". (Forms that share a stem, "Ukraine" and "Ukraine's", need no entry.)
ALIASES: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split("|"))
    for group in (
        "britain|great britain|united kingdom|uk|u.k.|british|england|english",
        "united states|united states of america|usa|u.s.|us|america|american|americans",
        "russia|russian|russians|russian federation",
        "ukraine|ukrainian|ukrainians",
        "china|chinese|prc",
        "european union|eu|e.u.|europe|european",
        "united nations|un|u.n.",
        "netherlands|dutch|holland",
        "france|french",
        "germany|german|germans",
        "israel|israeli|israelis",
        "iran|iranian|iranians",
        "north korea|dprk|north korean",
        "south korea|south korean",
        "japan|japanese",
        "turkey|turkish|turkiye",
    )
)


def aliases(name: str) -> frozenset[str]:
    """The other names of a country: "Britain" -> "UK", "British", ...; none for other names."""
    key = " ".join(name.casefold().removeprefix("the ").split())
    return next((group for group in ALIASES if key in group), frozenset())


TYPED_KINDS = ("person", "organization", "place", "date", "number", "money", "percent")
LABELS: dict[str, frozenset[str]] = {
    "person": frozenset({"PERSON"}),
    "organization": frozenset({"ORG"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "date": frozenset({"DATE", "TIME"}),
    "number": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "TIME", "DATE"}),
    "money": frozenset({"MONEY"}),
    "percent": frozenset({"PERCENT"}),
    "work": frozenset({"WORK_OF_ART"}),
    "event": frozenset({"EVENT"}),
    "product": frozenset({"PRODUCT"}),
    "law": frozenset({"LAW"}),
}
NAME_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW"}
)

FOCUS_KINDS: dict[str, str] = {
    noun: kind
    for kind, nouns in {
        "person": """person people man woman star celebrity actor actress singer rapper musician
            player athlete quarterback coach president leader official politician senator
            lawmaker governor mayor minister member candidate nominee judge ceo executive founder
            billionaire comedian host author writer director journalist anchor reporter legend
            icon spokesperson spokesman spokeswoman secretary ambassador king queen prince
            princess pope general officer suspect victim winner champion pundit investor
            entrepreneur scientist astronaut doctor lawyer attorney prosecutor owner chairman
            chairwoman lady rival opponent successor predecessor""",
        "organization": """company firm airline carrier automaker carmaker manufacturer maker
            retailer chain brand bank network broadcaster channel newspaper outlet publication
            agency organization organisation party team club franchise school university
            college league union startup business studio charity court committee
            government administration department ministry army military""",
        "place": """country nation state city town village region province county continent
            island capital place location area territory park neighborhood neighbourhood
            district site venue stadium airport border river lake mountain volcano sea ocean""",
        "date": "year month day date decade century era",
        "number": """number amount figure magnitude total count age score size population height
            length distance weight speed temperature""",
        "money": "price cost sum fee salary fine value worth budget revenue profit debt fortune",
        "percent": "percentage percent proportion rate share",
        "work": """show series movie film book novel song album play musical documentary
            episode painting sitcom drama program programme""",
        "event": "event holiday festival award awards tournament championship ceremony summit",
        "product": "product vaccine drug car vehicle phone device weapon aircraft",
        "law": "law bill act legislation amendment treaty",
        "role": "job role title position post occupation profession",
    }.items()
    for noun in nouns.split()
}
# "how many minutes" is a number, "how long" a duration, "how much" an amount of anything.
HOW_KINDS = {"many": "number", "much": "number", "old": "number", "long": "date", "far": "number"}
SAY_LEMMAS = frozenset(
    """say tell think write claim argue announce mean reply respond warn add state tweet
    believe suggest insist""".split()
)
WH_TAGS = frozenset({"WDT", "WP", "WP$", "WRB"})


@dataclass(frozen=True)
class Question:
    text: str
    kind: str = "open"
    wh: str | None = None  # the wh-word, lower case
    focus: str | None = None  # the noun asked about: "airline"
    subject: str | None = None  # who a `role` question is about; who speaks in a `say` one
    topic: str | None = None  # what a `say` question is about
    names: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # the names that are persons
    period: Period | None = None
    asks: str | None = None  # the wh-clause as an indirect question: "which airline made..."
    clause: str | None = None  # the sentence with the wh-word, when there is a preamble
    verb: str | None = None  # the lemma of the verb the wh-phrase hangs from: "order", "say"
    # What stands between the wh-phrase and `verb` (`step_up`): ("of", "sale") in "approved the
    # sale of which team"
    via: tuple[str, ...] = ()
    slot: str | None = None  # the wh-phrase as `verb`'s "subject" or "object" (`slot_of`)
    doer: tuple[str, ...] = ()  # the words of `verb`'s subject: ("colin", "kahl"), ("war",)
    role: str | None = None  # the office a person question asks about: "minister"
    role_of: tuple[str, ...] = ()  # the nationality or place it is of: ("ukrainian",)
    role_kind: tuple[str, ...] = ()  # the other words qualifying it: ("defence",), ("foreign",)
    counts: bool = False  # "how many"
    labels: frozenset[str] = field(default_factory=frozenset)

    @property
    def typed(self) -> bool:
        """Answered by an entity of `labels` that spaCy finds reliably."""
        return self.kind in TYPED_KINDS

    @property
    def factual(self) -> bool:
        """Asks for a fact a short phrase can give (not "what did X say", not "why")."""
        return self.kind not in ("say", "open")


LOCATIVE = frozenset("from in at into near across".split())  # not "to": "spoke to Amanpour"


def _a_person(ent) -> bool:
    """A PERSON the small model did not make of a place: "the withdrawal from Kherson" tags
    Kherson a person, but one comes *from* a place."""
    root = ent.root
    return ent.label_ == "PERSON" and not (root.dep_ == "pobj" and root.head.lower_ in LOCATIVE)


def analyze(question: str, asked_on: dt.date | None = None) -> Question:
    doc = nlp.parse(question)
    names = tuple(
        dict.fromkeys(
            e.text.removesuffix("'s").removesuffix("’s")
            for e in doc.ents
            if e.label_ in NAME_LABELS
        )
    )
    people = tuple(dict.fromkeys(e.text for e in doc.ents if _a_person(e)))
    period = _period(doc, question, asked_on)
    wh = _wh_token(doc)
    base = Question(question, names=names, people=people, period=period)
    if wh is None:
        return base
    sentence = wh.sent
    kind, focus, subject = _kind(wh)
    topic = None
    verb_token, via, slot = _verb(wh)
    verb = verb_token.lemma_.lower() if verb_token is not None else None
    doer = _doer(verb_token, wh)
    if kind == "say":
        subject, topic = _say_parts(wh)
        verb = _say_verb(wh).lemma_.lower()
    labels = LABELS.get(kind, frozenset())
    role, role_of, role_kind = _role(wh, kind)
    return Question(
        question,
        kind=kind,
        wh=wh.lower_,
        focus=focus,
        subject=subject,
        topic=topic,
        names=names,
        people=people,
        period=period,
        asks=_indirect(sentence, wh),
        clause=sentence.text.strip() if len(list(doc.sents)) > 1 else None,
        verb=verb,
        via=via,
        slot=slot,
        doer=doer,
        role=role,
        role_of=role_of,
        role_kind=role_kind,
        counts=wh.lower_ == "how" and _following_word(wh) == "many",
        labels=labels,
    )


def _period(doc, question: str, asked_on: dt.date | None) -> Period | None:
    """The first date phrase that names a period; a relative one wins over an absolute one."""
    found = [find_period(e.text, asked_on) for e in doc.ents if e.label_ in ("DATE", "TIME")]
    found.append(find_period(question, asked_on))  # "recently" is no DATE entity
    periods = [p for p in found if p is not None]
    relative = [p for p in periods if p.relative]
    return (relative or periods or [None])[0]


def _wh_token(doc):
    """The wh-word the question turns on: in the last sentence that has one, the first of its
    main clause (not "when he spoke", not "the reporter who interviewed him")."""
    candidates = [t for t in doc if t.tag_ in WH_TAGS and t.lower_ != "that"]
    if not candidates:
        return None
    own = [t for t in candidates if t.sent == candidates[-1].sent]
    main = [t for t in own if not _subordinate(t)]
    return main[0] if main else own[-1]


def _subordinate(token) -> bool:
    """Does `token` stand in a relative or adverbial clause?"""
    while token.head.i != token.i:
        if token.dep_ in ("relcl", "advcl"):
            return True
        token = token.head
    return False


def _following_word(token) -> str | None:
    return token.doc[token.i + 1].lower_ if token.i + 1 < len(token.doc) else None


def _role(wh, kind: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """The office a "who is the X?" question asks about, the nationality or place qualifying
    it, and its other qualifiers: "who is the Ukrainian defence minister" -> ("minister",
    ("ukrainian",), ("defence",)). Only there: in "which popular singer will launch a
    residency" the verb says who is meant, and an article rarely calls Adele a singer in the
    sentence that says so."""
    if kind != "person":
        return None, (), ()
    token = _copular_noun(wh)
    if token is None:
        return None, (), ()
    # Anywhere in its phrase: "the Ukrainian defence minister", "America's defence secretary",
    # "the Ukrainian secretary general", "the under secretary of defense of Ukraine"
    places = [t.lower_ for t in token.subtree if t.i != token.i and is_place_word(t)]
    others = [
        t.lower_
        for t in token.children
        if t.i < token.i and t.dep_ in ("amod", "compound", "nmod") and not is_place_word(t)
    ]
    return token.lemma_.lower(), tuple(places), tuple(others)


def same_place(a: str, b: str) -> bool:
    """ "russian" and "russia", "america" and "us": one country."""
    return a.casefold() == b.casefold() or b.casefold() in aliases(a)


def is_place_word(token) -> bool:
    """A nationality or a place: "Ukrainian", "US", "British"."""
    return token.ent_type_ in ("NORP", "GPE") or (token.pos_ == "ADJ" and token.is_title)


def _copular_noun(wh):
    """ "minister" in "who is the Ukrainian defence minister?"."""
    if wh.head.lemma_ != "be":
        return None
    for child in wh.head.children:
        if child.i != wh.i and child.dep_ in ("nsubj", "attr") and child.pos_ in ("NOUN", "PROPN"):
            return _named_one(child)  # "what is the name of the reporter ...?"
    return None


def _kind(wh) -> tuple[str, str | None, str | None]:
    """(kind, focus noun, subject) from the wh-word and its neighbours in the parse."""
    word = wh.lower_
    following = wh.doc[wh.i + 1] if wh.i + 1 < len(wh.doc) else None
    if word == "when":
        return "date", None, None
    if word == "where":
        return "place", None, None
    if word == "why":
        return "open", None, None
    if word == "how":
        if following is not None and following.lower_ in HOW_KINDS:
            focus = _noun_after(following)
            kind = HOW_KINDS[following.lower_]
            if kind == "number" and FOCUS_KINDS.get(focus or "") in ("money", "percent"):
                kind = FOCUS_KINDS[focus]
            return kind, focus, None
        return "open", None, None
    if word in ("who", "whom", "whose"):
        subject = _copular_subject(wh)
        if (
            subject
            and word == "who"
            and (_is_person(wh.doc, subject) or _is_bare_name(wh, subject))
        ):
            return "role", None, subject  # "Who is Christiane Amanpour?"
        return "person", None, None  # "Who is the Pentagon's Under Secretary of Defense?"
    # which / what
    if word == "what" and _say_verb(wh) is not None:  # "what did X say (about Y)"
        return "say", None, None
    focus_token = _focus_token(wh)
    if focus_token is None:
        return "open", None, None
    focus = focus_token.lemma_.lower()
    kind = FOCUS_KINDS.get(focus, "thing")
    subject = None
    if kind == "role":
        owner = [c for c in focus_token.children if c.dep_ == "poss"]
        subject = _span_text(owner[0]) if owner else _copular_subject(wh)
        if not subject:
            kind = "thing"
    return kind, focus, subject


def _focus_token(wh):
    """The noun a which/what asks about: "which airline", "which of the cities", "what is the
    magnitude of", "what is X's job"."""
    if wh.dep_ == "det" and wh.head.pos_ in ("NOUN", "PROPN"):
        return wh.head
    of = [c for c in wh.children if c.dep_ == "prep" and c.lower_ == "of"]
    if of:
        objects = [c for c in of[0].children if c.dep_ == "pobj"]
        if objects:
            return objects[0]
    if wh.dep_ in ("attr", "nsubj") and wh.head.lemma_ == "be":
        subjects = [c for c in wh.head.children if c.dep_ in ("nsubj", "attr") and c.i != wh.i]
        if subjects and subjects[0].pos_ == "NOUN":
            return _named_one(subjects[0])
    noun = _noun_after(wh)
    if noun is not None:
        return next(t for t in reversed(wh.doc[wh.i + 1 :]) if t.lemma_.lower() == noun)
    return None


def _named_one(noun):
    """ "What is the name of the reporter ...": the reporter is asked about."""
    if noun.lemma_.lower() != "name":
        return noun
    of = [c for c in noun.children if c.dep_ == "prep" and c.lower_ == "of"]
    objects = [c for c in of[0].children if c.dep_ == "pobj"] if of else []
    return objects[0] if objects else noun


def _noun_after(token) -> str | None:
    """The last noun of the modifier-and-noun run right after `token`, as a lemma: "which
    embattled celebrity" -> celebrity, "which prestigious awards show?" -> show."""
    doc = token.doc
    nouns = []
    for t in doc[token.i + 1 :]:
        at_end = t.i + 1 == len(doc) or doc[t.i + 1].is_punct
        if t.pos_ in ("NOUN", "PROPN") or (t.tag_ == "VBP" and nouns and at_end):
            nouns.append(t)  # a final "show" is often taken for a verb
        elif t.pos_ == "AUX" or not (
            t.pos_ in ("ADJ", "ADV", "NUM") or t.tag_ in ("VBN", "VBG", "VBD") and not nouns
        ):
            break
    return nouns[-1].lemma_.lower() if nouns else None


def _is_person(doc, text: str) -> bool:
    return any(e.label_ == "PERSON" and e.text in text for e in doc.ents)


def _is_bare_name(wh, text: str) -> bool:
    """ "Stoltenberg" in "who is Stoltenberg": a name with no article, owner or "of" phrase.
    The small model often tags a lone surname as a place or an organization, yet "who is
    <name>" asks about that name, never for another person; "who is the Pentagon's Under
    Secretary of Defense" (a title) asks for a person."""
    token = _copular_token(wh)
    return (
        token is not None
        and _span_text(token) == text
        and not any(c.dep_ in ("det", "poss", "prep") for c in token.children)
    )


def _copular_subject(wh) -> str | None:
    """X in "who is X?" / "what is X's job?", when X is a name."""
    token = _copular_token(wh)
    return _span_text(token) if token is not None else None


def _copular_token(wh):
    verb = wh.head
    if verb.lemma_ != "be":
        return None
    for child in verb.children:
        if child.i == wh.i or child.dep_ not in ("nsubj", "attr"):
            continue
        if child.pos_ == "PROPN":
            return child
    return None


def _say_verb(wh):
    """The verb of saying in "what did/does/has X say/tell/think ...", or None."""
    for verb in wh.doc[wh.i + 1 :]:
        if verb.lemma_.lower() not in SAY_LEMMAS or verb.pos_ not in ("VERB", "AUX"):
            continue
        children = list(verb.children)
        if any(c.dep_ == "nsubj" for c in children) and any(
            c.dep_ == "aux" and c.lemma_ in ("do", "have") for c in children
        ):
            return verb
    return None


def _say_parts(wh) -> tuple[str | None, str | None]:
    """(speaker, topic) of "what did X say about Y"."""
    verb = _say_verb(wh)
    speaker = next((_span_text(c) for c in verb.children if c.dep_ == "nsubj"), None)
    topic = None
    for child in verb.children:
        if child.dep_ == "prep" and child.lower_ in ("about", "on", "regarding", "of"):
            topic = wh.doc[child.i + 1 : child.right_edge.i + 1].text or None
    return speaker, topic


def _verb(wh) -> tuple:
    """The nearest verb above the wh-phrase: "order" in "Who ordered ...", "announce" in
    "Which airline announced a deal ..."; the nouns on the way up ("sale" in "approved the
    sale of which team"); and whether the phrase is its subject or object."""
    token = _wh_phrase(wh)
    via: list[str] = []
    for _ in range(3):
        head = token.head
        if head.pos_ == "VERB" and head.lemma_.lower() not in ("be", "do", "have"):
            return head, tuple(via), slot_of(token)
        if head.i == token.i:
            break
        via += step_up(token)
        token = head
    return None, (), None


def _doer(verb, wh) -> tuple[str, ...]:
    """The words of the subject of `verb` when the wh-phrase is not it: "When did Colin Kahl
    make his remarks?" -> ("colin", "kahl")."""
    if verb is None:
        return ()
    subjects = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass") and c.i != wh.i]
    return tuple(w for s in subjects for w in words(_span_text(s)))


def slot_of(token) -> str | None:
    """`token` as the subject or the object of the verb it hangs from: "Shoigu ordered" and
    "ordered by Shoigu" are the subject; "ordered a withdrawal" and "a withdrawal was
    ordered" the object; None for anything else."""
    if token.dep_ in ("nsubj", "agent"):
        return "subject"
    if token.dep_ in ("dobj", "nsubjpass"):
        return "object"
    return None


def _wh_phrase(wh):
    """The head of the wh-phrase: "airline" in "which airline", "troops" in "how many
    troops"."""
    if wh.dep_ == "det":
        return wh.head
    quantity = wh.head
    if quantity.lower_ in ("many", "much") and quantity.head.pos_ in ("NOUN", "PROPN"):
        return quantity.head
    return wh


def step_up(token) -> list[str]:
    """What going from `token` up to its head passes on the way to a verb: a noun, and the
    preposition that hangs from it ("of", "sale" from "the sale of X"); nothing for a
    preposition of the verb itself ("ordered by X"), nor for an apposition, which names its
    head again ("the Pentagon's Under Secretary ... Colin Kahl said")."""
    head = token.head
    if head.pos_ not in ("NOUN", "PROPN") or token.dep_ == "appos":
        return []
    return ([token.lower_] if token.pos_ == "ADP" else []) + [head.lemma_.lower()]


def _span_text(token) -> str:
    """The noun phrase `token` heads, without a trailing possessive."""
    kept = [t for t in token.subtree if t.dep_ not in ("case", "punct", "det")]
    return " ".join(t.text for t in kept) if kept else token.text


def _indirect(sentence, wh) -> str | None:
    """The question as the object of "says": "which airline announced a deal ..." (only when
    the wh-word is the subject or part of it, where no inversion needs undoing)."""
    start = wh.i
    if wh.dep_ == "det" or (wh.i + 1 < len(wh.doc) and wh.doc[wh.i + 1].lower_ == "of"):
        subject = wh.head if wh.dep_ == "det" else wh
        if subject.dep_ not in ("nsubj", "nsubjpass"):
            return None
    elif wh.dep_ not in ("nsubj", "nsubjpass"):
        return None
    text = wh.doc.text[wh.doc[start].idx : sentence.end_char].strip().rstrip("?!.").strip()
    return text[0].lower() + text[1:] if text else None
