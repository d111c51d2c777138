"""The reading stage: from retrieved chunks to the sentences that answer, or a plain refusal.

    Reader(policy, reranker).read(question, sentences, topic, speaker) -> Reading

Retrieval (`retrieve`) finds chunks *about* the question; this stage decides whether they
*answer* it, and with what.

1. Sentences (`candidates`): the top chunks cut into sentences; a sentence that opens a
   quotation runs on to the sentence that closes it, so the attribution ("..., he said.")
   comes along (unless that makes it longer than a quote). A sentence longer than a quote
   (`Policy.max_quote_chars`: a 5,000-character line without a full stop) is cut at word
   boundaries into pieces that fit with their ellipses (`pieces`), each verbatim; they
   overlap by half, because the cross-encoder reads only the first ~100 words of each.
2. Lexical score (`score_lexically`): how much of the question's idf weight a sentence holds,
   whether the asked-about speaker is the one speaking (`speakers`), and the retrieval
   score of its chunk. Cheap, so every candidate gets it.
3. Eligibility: a question about a relative period ("this week", "on Tuesday") is answered
   only from articles published in it; undated articles are not ruled out.
4. Relevance: the cross-encoder (`rerank`) reads the question with each of the `rerank`
   sentences that score best lexically (for 96% of the dev questions a sentence that holds the
   answer is among the 14; each pair costs ~11 ms). A question with a preamble
   ("Afghanistan was rocked by an earthquake. What was its magnitude?") scores as the mean of
   the whole question and its wh-sentence: on such dev questions the answer's sentence ranked
   first for 0.65 of them against 0.47 with the whole question alone.
   "What did X say" questions are not read this way: ranking them by speaker and topic words
   put the annotated sentence first as often as the reranker did (polnear dev, measured while
   calibrating: 0.92 either way), for free. For
   them the parse checks who speaks instead: sentences naming X where only someone else speaks
   are set aside, and when that is every sentence naming X, the articles never give X's words.
5. Decide (`policy.Policy`: every threshold, calibrated on the dev sets, README "Answer
   quality"):
   - no eligible sentence -> near miss ("none published since 2022-07-21 says ...");
   - the best eligible sentence's relevance below `answer_logit` -> nothing answers;
   - a typed question (who, which country, how many, when ...) whose best eligible sentences
     hold no entity of its kind that the question does not already name -> near miss ("none
     says which airline ..."); a "who is X" whose sentences give X no title, likewise;
   - otherwise: the quotes, and for factual questions the answer phrase (`findings`), cut
     from one of the quoted sentences.

Without the reranker (`NEWSBOT_RERANK=off`) steps 4-5 fall back to the lexical score and its
coverage threshold, as before the reading stage existed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot.answering import findings, nlp
from bot.answering.policy import Policy
from bot.answering.question import Question
from bot.answering.retrieve import Hit
from bot.answering.speakers import MENTIONED, NAMED, regex_speaker_score, someone_else_speaks
from index.articles import DATE_PREFIX
from index.chunking import split_sentences
from index.lexical import words

_SPACE = re.compile(r"\s")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s*$")
OPEN_QUOTES = "“"
CLOSE_QUOTES = "”"


@dataclass
class Sentence:
    """A quotable sentence of a retrieved chunk; `start`/`end` are offsets in its file."""

    text: str
    start: int
    end: int
    hit: Hit
    rank: int  # of its chunk in the retrieval
    coverage: float = 0.0
    speaker: float = 0.0
    lexical: float = 0.0
    relevance: float | None = None
    eligible: bool = True
    cut_before: bool = False  # a piece of an over-long sentence (`pieces`): quoted with "…"
    cut_after: bool = False

    @property
    def source(self) -> str:
        return self.hit.source

    @property
    def day(self) -> int:
        return self.hit.day

    @property
    def score(self) -> float:
        return self.lexical if self.relevance is None else self.relevance


@dataclass
class Reading:
    """The quotes to show and the answer phrases; or a refusal, with the specific reason when
    related articles were found (`reason`; None: nothing related, say so generally)."""

    chosen: list[Sentence] = field(default_factory=list)
    answers: list[findings.Finding] = field(default_factory=list)
    refused: bool = False
    reason: str | None = None


def refusal(reason: str | None = None) -> Reading:
    return Reading(refused=True, reason=reason)


# -- 1. sentences ------------------------------------------------------------------------------
def candidates(hits: Sequence[Hit], max_chars: int) -> list[Sentence]:
    seen: set[tuple[str, int]] = set()
    found = []
    for rank, hit in enumerate(hits):
        base = hit.start
        spans = split_sentences(hit.text)
        for i, (a, b) in enumerate(spans):
            key = (hit.source, base + a)
            if key in seen:
                continue
            seen.add(key)
            a, b = _extend_quotation(hit.text, spans, i)
            if b - a > edge_room(hit.text, a, b, max_chars):
                b = spans[i][1]
            for piece in pieces(hit.text, a, b, edge_room(hit.text, a, b, max_chars)):
                if piece.start > a and (hit.source, base + piece.start) in seen:
                    continue
                seen.add((hit.source, base + piece.start))
                found.append(
                    Sentence(
                        hit.text[piece.start : piece.end],
                        base + piece.start,
                        base + piece.end,
                        hit,
                        rank,
                        cut_before=piece.cut_before,
                        cut_after=piece.cut_after,
                    )
                )
    return found


def edge_room(text: str, start: int, end: int, max_chars: int) -> int:
    """`max_chars` less room for a "…" at each edge of a chunk's `text` that [start, end)
    touches: the sentence may go on in the file there (`cut_marks`)."""
    return max_chars - (start == 0) - (end == len(text))


@dataclass(frozen=True)
class Piece:
    """[start, end) of a text, and whether a quote of it shows "…" before or after it."""

    start: int
    end: int
    cut_before: bool = False
    cut_after: bool = False


def pieces(text: str, start: int, end: int, max_chars: int, overlap: bool = True) -> list[Piece]:
    """[start, end) of `text` as quotable pieces: itself when it fits `max_chars`, else cut at
    word boundaries into pieces that fit with their ellipses ("a 5,000-character line with no
    full stop"). Each piece is verbatim `text[piece.start:piece.end]`.

    With `overlap`, each piece starts halfway into the one before: the cross-encoder reads only
    a piece's first ~100 words (`rerank.MAX_TOKENS`), so every word is then near the start
    of some piece, where it is read."""
    found: list[Piece] = []
    at = start
    while at < end:
        before = at > start
        if end - at + before <= max_chars:
            found.append(Piece(at, end, before, False))
            break
        room = max_chars - before - 1
        stop = _last_space(text, at + 1, at + room + 1) or at + room  # one long word: cut it
        while stop > at + 1 and text[stop - 1].isspace():
            stop -= 1
        found.append(Piece(at, stop, before, True))
        half = _last_space(text, at + 1, at + (stop - at) // 2 + 1) if overlap else None
        at = half or stop
        while at < end and text[at].isspace():
            at += 1
    return found


def cut_marks(text: str, start: int, end: int) -> tuple[bool, bool]:
    """Does [start, end) of an article's `text` begin, or end, inside a sentence of its
    paragraph? (A piece of an over-long sentence, or a sentence a chunk boundary cut: its quote
    shows "…" there.)"""
    line_start = text.rfind("\n", 0, start) + 1
    before = text[line_start:start]
    line_end = text.find("\n", end)
    after = text[end : len(text) if line_end < 0 else line_end]
    cut_before = (
        bool(before.strip())
        and not _SENTENCE_END.search(before)
        and not DATE_PREFIX.fullmatch(before)
    )
    cut_after = bool(after.strip()) and not _SENTENCE_END.search(text[start:end])
    return cut_before, cut_after


def _last_space(text: str, start: int, end: int) -> int | None:
    spaces = [m.start() for m in _SPACE.finditer(text, start, end)]
    return spaces[-1] if spaces else None


def _extend_quotation(text: str, spans: list[tuple[int, int]], i: int) -> tuple[int, int]:
    """Extend sentence i to the end of a quotation it opens, so the attribution comes along."""
    a, b = spans[i]
    sentence = text[a:b]
    opens = sentence.count(OPEN_QUOTES) - sentence.count(CLOSE_QUOTES)
    straight = sentence.count('"') % 2 == 1
    if opens <= 0 and not straight:
        return a, b
    for j in range(i + 1, min(i + 4, len(spans))):
        following = text[spans[j][0] : spans[j][1]]
        if CLOSE_QUOTES in following or (straight and '"' in following):
            return a, spans[j][1]
    return a, b


# -- 2. lexical score --------------------------------------------------------------------------
def score_lexically(
    sentences: list[Sentence], weights: dict[str, float], speaker: set[str], power: float
) -> None:
    """Coverage of the question's idf `weights`, speaker certainty, and the chunk's score."""
    total = sum(weights.values()) or 1.0
    top = max((s.hit.score for s in sentences), default=1.0) or 1.0
    for s in sentences:
        present = set(words(s.text))
        s.coverage = sum(v for w, v in weights.items() if w in present) / total
        s.speaker = regex_speaker_score(s, sentences, speaker) if speaker else 0.0
        s.lexical = s.coverage * (1.0 + s.speaker) * (max(s.hit.score, 0.0) / top) ** power


# -- 3.-5. reading -----------------------------------------------------------------------------
class Reader:
    def __init__(self, policy: Policy, reranker=None, max_quotes: int = 5):
        self.policy = policy
        self.reranker = reranker
        self.max_quotes = max_quotes

    def read(
        self,
        question: Question,
        sentences: list[Sentence],
        topic: str | None,
        speaker: frozenset[str] = frozenset(),
    ) -> Reading:
        """`sentences` scored lexically; `topic` names what the retrieved articles are about
        (for a refusal that says what was found); `speaker`: the words naming X in "what did X
        say"."""
        policy = self.policy
        if not sentences:
            return refusal()
        period = question.period if question.period and question.period.relative else None
        for s in sentences:
            s.eligible = period is None or s.day == 0 or period.holds(s.day)
        eligible = [s for s in sentences if s.eligible]
        if not eligible:
            return refusal(findings.near_miss(question, topic, period))

        if self.reranker is not None and question.kind != "say":
            self._rerank(question, eligible)
        ranked = sorted(eligible, key=lambda s: -s.score)
        best = ranked[0]
        if best.relevance is not None and best.relevance < policy.answer_logit:
            return refusal(findings.not_answered(question, topic))
        if best.relevance is None and (
            best.lexical <= 0 or best.coverage < policy.min_sentence_coverage
        ):
            return refusal()

        answers: list[findings.Finding] = []
        if question.factual:
            pool = [
                s
                for s in ranked[: policy.typed_sentences]
                if s.relevance is None or s.relevance >= policy.typed_logit
            ]
            found = findings.find(question, pool, ranked)
            answers = found.answers
            if (question.typed or question.kind == "role") and not found.evidence:
                return refusal(findings.near_miss(question, topic, None))
        if question.kind == "say" and speaker:
            naming = [s for s in ranked if s.speaker in (NAMED, MENTIONED)][: policy.naming]
            others = _others_speaking(naming, speaker)
            if naming and all(id(s) in others for s in naming):
                return refusal(findings.not_quoted(question, topic))
            ranked = [s for s in ranked if id(s) not in others]
        chosen = self._quotes(question, ranked)
        if not chosen:
            return refusal(findings.not_quoted(question, topic))
        # The answer phrase is cut from a sentence the reader is shown, never from one
        # below the quotes.
        # and the articles that agree with it are those the reader is shown
        shown = {s.source for s in chosen}
        answers = [
            replace(a, sources=tuple(source for source in a.sources if source in shown))
            for a in answers
            if any(a.sentence is s for s in chosen)
        ]
        return Reading(chosen=chosen, answers=answers)

    def _rerank(self, question: Question, sentences: list[Sentence]) -> None:
        by_lexical = sorted(sentences, key=lambda s: -s.lexical)[: self.policy.rerank]
        texts = [s.text for s in by_lexical]
        scores = self.reranker.score(question.text, texts)
        clause = question.clause
        if clause and clause != question.text:
            scores = (scores + self.reranker.score(clause, texts)) / 2.0
        for s, score in zip(by_lexical, scores, strict=True):
            s.relevance = float(score)
        floor = min((s.relevance for s in by_lexical), default=0.0) - 1.0
        for s in sentences:
            if s.relevance is None:
                s.relevance = floor  # not read: below everything that was

    def _quotes(self, question: Question, ranked: list[Sentence]) -> list[Sentence]:
        best = ranked[0]
        # Ranked by words alone, a quote needs a good share of the best one's score (as before
        # the reading stage). With the reranker on, "what did X say" quotes any sentence that
        # holds some of the topic: more of X's words within reach.
        floor = best.lexical * self.policy.lexical_share if self.reranker is None else 0.0
        chosen: list[Sentence] = []
        for s in ranked:
            if len(chosen) >= self.max_quotes:
                break
            if s.relevance is not None and s.relevance < best.relevance - self.policy.margin:
                break
            if s.relevance is None and s.lexical <= floor:
                break
            if question.kind == "say" and (
                s.speaker < 0  # someone else's words are not X's
                or chosen
                and s.coverage < self.policy.say_coverage * best.coverage
            ):
                continue
            if any(s.source == o.source and s.start < o.end and o.start < s.end for o in chosen):
                continue
            chosen.append(s)
        return chosen


def _others_speaking(sentences: list[Sentence], speaker: frozenset[str]) -> set[int]:
    """ids of the `sentences` (which name X) where the parse sees only someone else speaking:
    "Mr Stoltenberg said ..., where he met Prime Minister Rishi Sunak" is not Sunak's words.
    When every sentence naming X is such, the articles never give X's words."""
    docs = nlp.parse_all([s.text for s in sentences])
    return {
        id(s) for s, doc in zip(sentences, docs, strict=True) if someone_else_speaks(doc, speaker)
    }


def idf_weights(bm25, question_words: list[str], topic: str | None, leave_out: set[str]):
    """The words a sentence should hold, weighted by idf: the topic's when a "what did X say
    about Y" names one, else the question's; less `leave_out` (the speaker's own name, the
    words of "this week")."""
    focus = words(topic) if topic else list(question_words)
    focus = [w for w in focus if w not in leave_out] or focus
    return {w: bm25.idf(w) for w in set(focus)}
