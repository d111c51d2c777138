"""Who speaks in a sentence: "What did X say about Y?" wants X's words.

    speaker_words(speaker) -> {stemmed words of the name}
    regex_speaker_score(sentence, sentences, words) -> float     ranks every candidate
    attributions(doc) -> [Attribution]                            from spaCy's parse

A sentence is X's when X speaks in it ("Mr Stoltenberg said ...", "..., Jones told reporters")
or a pronoun or a role speaks right after X was named in the same passage or its headline
("..., he said.", "the NATO chief cautioned ..."). Scores (a sentence's topic coverage is
multiplied by 1 + score): 1.0 X speaks, 0.8 a pronoun or role speaks after X was named, 0.3 X
is named but nobody is seen speaking, 0.0 no one is named, -0.7 someone else speaks.

Two ways to tell, measured side by side on the polnear dev questions (300 "what did X say about
Y", the same candidate sentences; `python -m benchmarks`, table in BENCHMARKS.md):

- patterns over the words (a speech verb near the name, a capitalised word before "said"):
  the annotated sentence ranks first for 0.887 of the questions, in the top three for 0.957;
  10 ms a question;
- the dependency parse (the subject of a verb of saying, shared by conjoined verbs and
  participles; the object of "according to"): first for 0.893, top three 0.957; 410 ms a
  question, for the ~60 sentences it has to parse.

As good where it counts (the top three are what an answer quotes) at a fortieth of the cost, so
the patterns rank the candidates. The parse has the better precision about *who* speaks -- it
knows that "Mr Stoltenberg said ..., where he met Prime Minister Rishi Sunak" is not Sunak
speaking, which the patterns score as his -- so it checks the few best sentences that name X
(`read`): one where the parse sees only someone else speaking is not quoted as X's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.lexical import words

SPEECH_LEMMAS = frozenset(
    """say tell add state write tweet argue warn note explain claim insist ask announce
    caution describe declare acknowledge admit suggest urge predict reiterate respond reply
    continue conclude believe think call accuse blame praise criticize criticise deny confirm
    vow promise pledge emphasize stress recall comment remark concede contend maintain assert
    allege testify""".split()
)
PRONOUNS = frozenset({"he", "she", "they", "i", "we"})
SUBJECTS = ("nsubj", "nsubjpass")

NAMED, REFERRED, MENTIONED, NOBODY, SOMEONE_ELSE = 1.0, 0.8, 0.3, 0.0, -0.7
ANTECEDENT_SENTENCES = 2  # "he" / "the NATO chief" refers to someone named this close before


@dataclass(frozen=True)
class Attribution:
    """The subject of a verb of saying: `text` as written, `kind` name, pronoun or role."""

    text: str
    kind: str

    @property
    def words(self) -> set[str]:
        return set(words(self.text))


def attributions(doc) -> list[Attribution]:
    """Everyone the sentence has saying something, in order."""
    found = []
    for token in doc:
        if token.lower_ == "according":
            for to in token.children:
                found += [_attribution(o) for o in to.children if o.dep_ == "pobj"]
            continue
        if token.pos_ != "VERB" or token.lemma_.lower() not in SPEECH_LEMMAS:
            continue
        subject = _subject(token)
        if subject is not None:
            found.append(_attribution(subject))
    return found


def _subject(verb):
    """The verb's subject. A conjoined verb ("reiterated ... but said") or a participle
    ("mocked the complaint, saying ...") shares the subject of the verb it hangs from."""
    for _ in range(3):
        subject = next((c for c in verb.children if c.dep_ in SUBJECTS), None)
        if subject is not None:
            return subject
        if verb.dep_ not in ("conj", "advcl", "xcomp") or verb.head.i == verb.i:
            return None
        verb = verb.head
    return None


def _attribution(token) -> Attribution:
    if token.lower_ in PRONOUNS:
        return Attribution(token.text, "pronoun")
    text = " ".join(t.text for t in token.subtree if not t.is_punct) or token.text
    kind = "name" if token.pos_ == "PROPN" or token.ent_type_ else "role"
    return Attribution(text, kind)


def someone_else_speaks(doc, speaker: set[str]) -> bool:
    """The parse sees people speaking in `doc`, and every one of them is named and not X."""
    said = attributions(doc)
    return bool(said) and all(a.kind == "name" and not a.words & speaker for a in said)


# -- patterns --------------------------------------------------------------------------------
SPEECH_VERBS = re.compile(
    r"\b(said|says|say|told|tells|added|adds|stated|wrote|writes|tweeted|argued|argues|warned|"
    r"noted|explained|claimed|claims|insisted|asked|announced|cautioned|described|declared|"
    r"acknowledged|admitted|suggested|urged|predicted|reiterated|responded|replied|continued|"
    r"concluded|according to|believes|thinks|called|accused|blamed|praised|criticized|"
    r"criticised|denied|confirmed|vowed|promised|pledged|emphasized|stressed|recalled|"
    r"commented|remarked|conceded|contended|maintained|asserted|alleged|testified)\b",
    re.I,
)
_VERB = (
    r"(?:said|says|told|added|stated|wrote|tweeted|argued|warned|noted|explained|claimed|"
    r"insisted|asked|announced|cautioned|replied|responded|continued)"
)
OTHER_SPEAKER = re.compile(
    rf"\b([A-Z][\w'’-]+)\s+{_VERB}\b|\b{_VERB}\s+(?:[A-Z][\w'’-]+\s+)*([A-Z][\w'’-]+)\b"
)
PRONOUN_SUBJECT = re.compile(r"\b(he|she|they|him|her)\b", re.I)
ROLE = re.compile(
    r"\bthe\s+(?:[A-Za-z.\-]+\s+){0,3}(chief|secretary|spokesman|spokeswoman|spokesperson|"
    r"president|minister|official|head|leader|candidate|governor|senator|nominee|director|"
    r"chairman|chairwoman|ceo|general|mayor|ambassador|premier|chancellor|commander)\b",
    re.I,
)
GENERIC_SPEAKER_WORDS = {"the", "a", "an", "of", "for", "and", "mr", "mrs", "ms", "dr"}
OPEN_QUOTES = '“"'


def speaker_words(speaker: str | None) -> set[str]:
    """The stemmed words that name `speaker`: its capitalised words, less titles."""
    if not speaker:
        return set()
    names = [
        w
        for w in re.findall(r"[A-Z][\w'’.-]*", speaker)
        if w.lower().strip(".") not in GENERIC_SPEAKER_WORDS
    ]
    chosen = names or speaker.split()
    return {w for word in chosen for w in words(word)}


def regex_speaker_score(sentence, sentences, speaker: set[str]) -> float:
    """The score above for `sentence` (a `read.Sentence`), from patterns over its words;
    `sentences` are the other candidates, to look for X named earlier in the same chunk."""
    text = sentence.text
    named = bool(speaker & set(words(text)))
    speech = bool(SPEECH_VERBS.search(text)) or any(q in text for q in OPEN_QUOTES)
    if named and speech:
        return NAMED
    if speech and (PRONOUN_SUBJECT.search(text) or ROLE.search(text)):
        # X must be named just before ("..." he said), not anywhere earlier in the passage.
        before = [o for o in sentences if o.hit is sentence.hit and o.end <= sentence.start]
        title = sentence.hit.title or ""
        near = before[-ANTECEDENT_SENTENCES:]
        if any(speaker & set(words(o.text)) for o in near) or speaker & set(words(title)):
            return REFERRED
    if named:
        return MENTIONED
    for match in OTHER_SPEAKER.finditer(text):
        name = (match.group(1) or match.group(2) or "").lower()
        if name not in GENERIC_SPEAKER_WORDS and words(name):
            return SOMEONE_ELSE
    return NOBODY
