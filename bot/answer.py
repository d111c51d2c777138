"""The Answerer both front ends call: grounded answers that quote and cite, or a plain "no".

    Answerer.answer(question, history) -> Answer

A list of steps, each a unit of its own:

1. Condense: a follow-up ("and what did he say about drones?") borrows the speaker or topic of
   the conversation so far, giving a standalone question.
2. Understand (`bot.question`): the kind of answer asked for and its constraints, from spaCy's
   parse -- a person, a number, a date ...; "this week"; the names the question gives.
3. Retrieve (`bot.retrieve`): hybrid vectors + BM25, preferring articles of a period the
   question names.
4. Gate: when the question's words are unknown to the corpus, or no retrieved chunk holds
   enough of them, or a "what did X say" names an X no chunk names, refuse at once.
5. Read (`bot.read`): cut the top chunks into sentences, rank them by whether they *answer*
   (the cross-encoder, `bot.rerank`), rule out articles from outside the asked period, and
   decide: quotes and a direct answer (`bot.findings`), or a refusal that says what the
   articles do cover and what none of them says.
6. Check: every quote and answer phrase is re-read from its file and must be the exact text at
   its offsets, or it is dropped. A citation can never point to a file that does not say it.
   A quote that begins or ends inside a sentence (a piece of an over-long one, or a sentence
   a chunk boundary cut) is marked so that front ends show "…" there (`Quote.shown`).
   When quotes are dropped because their files are gone, the answer says so in one line
   instead of refusing: "The corpus folder X is missing; run `newsbot index` after restoring
   it", or which files are no longer there (as the `notice` when other quotes remain).

With an LLM configured (`bot.llm`), the LLM writes the answer from numbered passages instead,
and every sentence of it is checked against the passages it cites (`bot.support`); if it
fails, the extractive answer above is returned with a one-line notice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.dates import DayRange, recent_days
from bot.findings import Finding
from bot.question import Question, analyze
from bot.read import (
    Policy,
    Reader,
    Sentence,
    candidates,
    cut_marks,
    idf_weights,
    score_lexically,
)
from bot.retrieve import Hit, HybridRetriever
from bot.settings import BotSettings
from bot.speakers import speaker_words
from bot.types import Answer, DirectAnswer, IndexStats, Passage, Quote
from index.articles import read_source_text
from index.errors import NewsbotError
from index.lexical import stem, words
from index.store import ChunkStore

log = logging.getLogger(__name__)

POLICY = Policy()
# Evidence gate, calibrated on the dev sets (README, "Answer quality"):
MIN_COVERAGE = 0.4  # share of the question's idf weight the best chunk must contain
MAX_UNKNOWN = 0.4  # share of that weight in words no indexed chunk has
# A word's absence says something only about a vocabulary of some size: in a corpus of two
# articles most words of any question are absent (about 100 articles make 5,000 words).
MIN_VOCABULARY = 5000
# Cosine similarity the best chunk must reach, per embedding model; models not calibrated here
# rely on the lexical signals alone.
MIN_SIMILARITY = {"all-MiniLM-L6-v2 (bundled)": 0.2}
TITLE_CHARS = 70
MISSING_FOLDER = "The corpus folder {folder} is missing; run `newsbot index` after restoring it."
TOPIC_NAMES = 3  # names of the question a refusal says the articles cover

SAY_QUESTION = re.compile(
    r"^\s*(?:and\s+|so\s+|but\s+)?what\s+(?:did|does|do|has|have|had|was|is)\s+(?P<speaker>.+?)\s+"
    r"(?:say|said|saying|tell|told|think|thought|write|wrote|claim|claimed|argue|argued|"
    r"announce|announced|mean|reply|respond)\b(?:\s+(?:(?:about|on|regarding|of|to|concerning)\s+)?"
    r"(?P<topic>.+?))?\s*[?.!]*\s*$",
    re.I,
)
FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|but|so|then)\b|\b(he|she|they|him|her|his|their|it|"
    r"that|this|those|these)\b",
    re.I,
)
ABOUT_FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|but|so)?\s*(?:what|how)?\s*(?:about|on|regarding)\s+(?P<topic>.+?)\s*[?.!]*\s*$",
    re.I,
)
PRONOUNS = {"he", "she", "they", "him", "her", "them", "it"}


class QuestionError(NewsbotError):
    """The question itself cannot be answered as asked (empty, too long)."""


@dataclass
class Parsed:
    standalone: str
    speaker: str | None
    topic: str | None
    extra_words: list[str]


@dataclass(frozen=True)
class Retrieval:
    """What an answer asks retrieval for: equal requests over one index get the same hits."""

    question: str
    k: int
    days: DayRange | None
    query_words: tuple[str, ...]
    recent: DayRange | None


def retrieval_request(
    standalone: str, extra_words: Sequence[str], period, asked_on: dt.date, settings
) -> Retrieval:
    """The retrieval for a standalone question whose asked-for period is `period`."""
    days = period.days if period else None
    return Retrieval(
        standalone,
        max(settings.top_k, POLICY.passages),
        days,
        tuple(words(standalone)) + tuple(extra_words),
        None if days else recent_days(asked_on),
    )


class Answerer:
    def __init__(
        self,
        settings: BotSettings,
        embedder=None,
        store: ChunkStore | None = None,
        llm=None,
        reranker=None,
        retriever=None,
    ):
        """`retriever` is anything with HybridRetriever's interface (`bot.prefetch` gives one
        that retrieved in another process); by default the index of `settings` is opened."""
        self.settings = settings
        self.retriever = retriever or HybridRetriever.open(settings, embedder, store)
        self.llm = llm
        if reranker is None and settings.rerank:
            from bot.rerank import SharedReranker

            reranker = SharedReranker()
        self.reader = Reader(POLICY, reranker, settings.max_quotes)

    @property
    def embedder(self):
        return self.retriever.embedder

    @property
    def store(self) -> ChunkStore:
        return self.retriever.store

    # -- public -----------------------------------------------------------------------------
    def stats(self) -> IndexStats:
        info = self.retriever.info()
        return IndexStats(info.articles, info.chunks, info.date_min, info.date_max, info.built_at)

    def refresh(self) -> bool:
        return self.retriever.sync()

    def warm_up(self) -> None:
        """Load BM25 and the models now rather than on the first question."""
        self.retriever.sync()
        self.load_models()

    def load_models(self) -> None:
        """Load the query embedder, spaCy and the reranker (seconds; Chroma is not touched,
        so this may run in a thread while the front end starts)."""
        from bot import nlp

        self.embedder.embed_query("warm up")
        nlp.load()
        if self.reader.reranker is not None:
            self.reader.reranker.score("warm up", ["warm up"])

    def answer(
        self, question: str, history: Sequence[Answer] = (), asked_on: dt.date | None = None
    ) -> Answer:
        started = time.perf_counter()
        question = " ".join((question or "").split())
        if not question:
            raise QuestionError(
                "Please ask a question in words, e.g. “What did Stoltenberg say about Iran?”"
            )
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"That question is too long ({len(question)} characters); please keep it "
                f"under {limit}."
            )
        parsed = self._condense(
            question, history[-self.settings.history_turns :] if self.settings.history_turns else ()
        )
        asked_on = asked_on or dt.date.today()
        asked = analyze(parsed.standalone, asked_on)
        understood_at = time.perf_counter()
        request = retrieval_request(
            parsed.standalone, parsed.extra_words, asked.period, asked_on, self.settings
        )
        hits = self.retriever.retrieve(
            request.question,
            request.k,
            request.days,
            list(request.query_words),
            recent=request.recent,
        )
        retrieved_at = time.perf_counter()
        # "this week" says when, not what: a sentence need not contain its words to answer
        # (retrieval keeps them: articles of that week tend to say "this week").
        when = set(words(asked.period.phrase)) if asked.period else set()
        query_words = [w for w in request.query_words if w not in when]
        answer = self._read(question, parsed, asked, hits, query_words, when)
        answer.timings = {
            "understand": round(understood_at - started, 4),
            "retrieve": round(retrieved_at - understood_at, 4),
            "read": round(time.perf_counter() - retrieved_at, 4),
        }
        if self.llm is not None and not answer.refused:
            from bot.llm import answer_with_llm
            from bot.support import SupportCheck

            checker = SupportCheck(self.reader.reranker)
            answer = answer_with_llm(self.llm, answer, hits, history, self.settings, checker)
        answer.timings["total"] = round(time.perf_counter() - started, 4)
        return answer

    # -- follow-ups -------------------------------------------------------------------------
    def _condense(self, question: str, history: Sequence[Answer]) -> Parsed:
        match = SAY_QUESTION.match(question)
        speaker = match["speaker"] if match else None
        topic = match["topic"] if match else None
        if not history or not FOLLOW_UP.search(question):
            return Parsed(question, speaker, topic, [])
        previous = history[-1].standalone_question or history[-1].question
        prev_match = SAY_QUESTION.match(previous)
        prev_speaker = prev_match["speaker"] if prev_match else _role_subject(previous)
        if speaker and speaker.lower() in PRONOUNS and prev_speaker:
            standalone = f"What did {prev_speaker} say" + (f" about {topic}?" if topic else "?")
            return Parsed(standalone, prev_speaker, topic, [])
        if not match and prev_speaker and re.search(r"\b(he|she|him|her|his)\b", question, re.I):
            replaced = re.sub(r"\b(he|she)\b", prev_speaker, question, count=1, flags=re.I)
            return Parsed(replaced, prev_speaker, None, [])
        new_topic = ABOUT_FOLLOW_UP.match(question)
        if new_topic and prev_speaker:  # "and about Kherson?" after "what did X say about Y?"
            new = new_topic["topic"]
            return Parsed(f"What did {prev_speaker} say about {new}?", prev_speaker, new, [])
        # Any other follow-up ("and in Kherson?"): the earlier question's words stay in play.
        extra = [w for w in words(previous) if w not in set(words(question))]
        standalone = f"{question} ({previous})"
        return Parsed(standalone, speaker or prev_speaker, topic, extra)

    # -- reading ----------------------------------------------------------------------------
    def _read(
        self,
        question: str,
        parsed: Parsed,
        asked: Question,
        hits: list[Hit],
        query_words: list[str],
        when: set[str],
    ) -> Answer:
        passages = [
            Passage(
                h.text,
                h.source,
                int(h.meta["start"]),
                int(h.meta["end"]),
                h.meta.get("title") or None,
                h.meta.get("date") or None,
                round(h.score, 5),
            )
            for h in hits
        ]
        retrieved = list(dict.fromkeys(h.source for h in hits))

        def refusal(reason: str | None = None) -> Answer:
            folder = self.settings.corpus_dir
            return Answer(
                question=question,
                text=reason or refusal_text(self.stats().articles),
                refused=True,
                kind="refusal",
                passages=passages,
                retrieved=retrieved,
                standalone_question=parsed.standalone,
                # Refused without reading a file: the folder's absence must still be said.
                notice=None
                if folder.is_dir() or (reason and str(folder) in reason)
                else MISSING_FOLDER.format(folder=folder),
            )

        if not hits:
            return refusal()
        top = hits[: POLICY.passages]
        unknown = self._unknown_names(asked)
        if unknown:
            return refusal(
                f"None of the {articles(self.stats().articles)} indexed mentions {unknown}."
            )
        speaker = speaker_words(parsed.speaker or (asked.subject if asked.kind == "say" else None))
        # With the reranker, a question it reads is judged by what it reads, and by whether its
        # words exist in the corpus at all; the whole lexical gate is for "what did X say"
        # questions (which it does not read) and for working without the reranker.
        lexical_gate = self.reader.reranker is None or asked.kind == "say"
        if asked.kind == "say":  # "think" in "what does X think" is not what X's words hold
            query_words = [w for w in query_words if w != stem(asked.verb or "")]
        if lexical_gate and not self._covered(query_words, top, speaker):
            return refusal()
        if self._unknown_share(query_words) >= MAX_UNKNOWN - self.settings.min_relevance:
            return refusal()  # "the time complexity of quicksort": words no article has
        if parsed.speaker and parsed.speaker.lower() in PRONOUNS:
            return refusal()  # "what did he say?" with no one named before: who is "he"?

        sentences = candidates(top, POLICY.max_quote_chars)
        weights = idf_weights(self.retriever.bm25, query_words, parsed.topic, speaker | when)
        score_lexically(sentences, weights, speaker, POLICY.chunk_power)
        reading = self.reader.read(asked, sentences, _topic(asked, top), frozenset(speaker))
        if reading.refused:
            return refusal(reading.reason)

        texts: dict[str, str | None] = {}
        quotes = self._verified(reading.chosen, texts)
        unreadable = self._unreadable([s.source for s in reading.chosen], texts)
        if not quotes:
            return refusal(unreadable)
        direct = [d for d in (self._direct(f, texts) for f in reading.answers) if d is not None]
        # Articles in the order retrieval ranks them; in each, its best quotes first.
        order = {source: rank for rank, source in enumerate(retrieved)}
        quotes.sort(key=lambda q: order.get(q.source, len(order)))
        sources = list(dict.fromkeys(q.source for q in quotes))
        return Answer(
            question=question,
            text=format_answer(quotes, direct),
            quotes=quotes,
            sources=sources,
            refused=False,
            kind="direct" if direct else "quotes",
            direct=direct,
            passages=passages,
            retrieved=list(dict.fromkeys(sources + retrieved)),
            notice=unreadable,
            standalone_question=parsed.standalone,
        )

    def _unreadable(self, sources: list[str], texts: dict[str, str | None]) -> str | None:
        """Why quotes of `sources` could not be checked, in one line, when their files are
        gone (or the whole corpus folder is): None when every file could be read."""
        gone = sorted(s for s in set(sources) if texts.get(s) is None)
        if not gone:
            return None
        folder = self.settings.corpus_dir
        if not folder.is_dir():
            return MISSING_FOLDER.format(folder=folder)
        missing = [s for s in gone if not (folder / s).exists()]
        if missing:
            one = len(missing) == 1
            return (
                f"{listed(missing)} {'is' if one else 'are'} no longer in {folder}, so quotes of "
                f"{'it' if one else 'them'} were left out; run `newsbot index` to bring the "
                "index up to date."
            )
        one = len(gone) == 1
        return (
            f"{listed(gone)} in {folder} cannot be read, so quotes of {'it' if one else 'them'} "
            f"were left out; check {'its' if one else 'their'} permissions."
        )

    def _covered(self, query_words, hits: list[Hit], speaker: set[str]) -> bool:
        """Is there evidence enough to answer at all? (Otherwise: refuse.)

        Three signals, calibrated on the dev sets (see README): the share of the question's
        idf weight that no indexed chunk contains at all (unknown words: "tungsten",
        "Zorblax"), the share the best retrieved chunk covers, and the best cosine similarity.
        A "what did X say" question also needs X named in a retrieved chunk.
        """
        unknown = self._unknown_share(query_words)
        bm25 = self.retriever.bm25
        weights = {w: bm25.idf(w) for w in set(query_words)}
        total = sum(weights.values()) or 1.0
        coverage = max(
            sum(v for w, v in weights.items() if w in _chunk_words(h)) / total for h in hits
        )
        similarity = max(h.similarity for h in hits)
        margin = self.settings.min_relevance
        min_similarity = MIN_SIMILARITY.get(self.retriever.model_id, -1.0)
        if speaker and not any(speaker & _chunk_words(h) for h in hits):
            return False
        return (
            unknown < MAX_UNKNOWN - margin
            and coverage >= MIN_COVERAGE + margin
            and similarity >= min_similarity + margin
        )

    def _unknown_share(self, query_words) -> float:
        """The share of the question's idf weight in words no indexed chunk has."""
        bm25 = self.retriever.bm25
        if len(bm25.vocab) < MIN_VOCABULARY:
            return 0.0
        weights = {w: bm25.idf(w) for w in set(query_words)}
        total = sum(weights.values()) or 1.0
        return sum(v for w, v in weights.items() if bm25.vocab.get(w) is None) / total

    def _unknown_names(self, asked: Question) -> str | None:
        """A name of the question that no indexed article has a word of ("Zorblax")."""
        vocab = self.retriever.bm25.vocab
        for name in asked.names:
            name_words = words(name)
            if name_words and not any(w in vocab for w in name_words):
                return name
        return None

    def _verified(self, chosen: list[Sentence], texts: dict[str, str | None]) -> list[Quote]:
        quotes = [
            self._checked(s.text, s.hit, s.start, s.end, texts, s.cut_before, s.cut_after)
            for s in chosen
        ]
        return [q for q in quotes if q is not None]

    def _direct(self, finding: Finding, texts: dict[str, str | None]) -> DirectAnswer | None:
        hit = finding.sentence.hit
        phrase = self._checked(finding.text, hit, finding.start, finding.end, texts)
        return DirectAnswer(phrase, finding.sources) if phrase is not None else None

    def _checked(
        self,
        text: str,
        hit: Hit,
        start: int,
        end: int,
        texts,
        cut_before: bool = False,
        cut_after: bool = False,
    ) -> Quote | None:
        """`text` as a quote of `hit`'s file, if the file holds exactly it at [start, end)."""
        if not self._says(hit.source, start, end, text, texts):
            return None
        inside_before, inside_after = cut_marks(texts[hit.source], start, end)
        meta = hit.meta
        return Quote(
            text,
            hit.source,
            start,
            end,
            meta.get("title") or None,
            meta.get("date") or None,
            cut_before=cut_before or inside_before,
            cut_after=cut_after or inside_after,
        )

    def _says(self, source: str, start: int, end: int, text: str, texts) -> bool:
        """Does the file `source` hold exactly `text` at [start, end)? (Read once per answer.)"""
        if source not in texts:
            texts[source] = read_source_text(self.settings.corpus_dir, source)
        content = texts[source]
        if content is None or content[start:end] != text:
            log.warning("dropped a quote from %s: the file no longer says it", source)
            return False
        return True


def _role_subject(question: str) -> str | None:
    """Stoltenberg in "Who is Stoltenberg?": whom a "he" in the next question means."""
    asked = analyze(question)
    return asked.subject if asked.kind == "role" else None


def _chunk_words(hit: Hit) -> set[str]:
    return set(words(f"{hit.meta.get('title') or ''}\n{hit.text}"))


def _topic(asked: Question, hits: list[Hit]) -> str | None:
    """What the retrieved articles are about, for a refusal: the question's names they
    mention ("Spirit Airlines"); None when they mention none."""
    text = " ".join(f"{h.meta.get('title') or ''} {h.text}" for h in hits).casefold()
    names = [n for n in asked.names if n.casefold() in text][:TOPIC_NAMES]
    if len(names) <= 1:
        return names[0] if names else None
    return ", ".join(names[:-1]) + " and " + names[-1]


def refusal_text(articles: int) -> str:
    return (
        f"I could not find this in the indexed articles ({articles} in all), so I cannot "
        "answer it from them. Try naming a person, place or event the articles cover."
    )


def short_title(title: str | None) -> str | None:
    if not title:
        return None
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


def source_label(source: str, title: str | None, date: str | None) -> str:
    parts = [source]
    if title:
        parts.append(short_title(title))
    if date:
        parts.append(date)
    return " · ".join(parts)


def listed(names: list[str], most: int = TOPIC_NAMES) -> str:
    """ "a.txt, b.txt and c.txt"; past `most` names, "... and 2 more"."""
    if len(names) > most:
        return ", ".join(names[:most]) + f" and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def articles(count: int) -> str:
    return f"{count} article{'s' * (count != 1)}"


def direct_line(direct: DirectAnswer) -> str:
    """ "Russian Defense Minister — 1 article" """
    return f"{direct.text} — {articles(len(direct.sources))}"


def format_answer(quotes: list[Quote], direct: Sequence[DirectAnswer] = ()) -> str:
    """Plain text: the direct answer(s), then each source's label and its quotes, verbatim."""
    blocks = ["\n".join(direct_line(d) for d in direct)] if direct else []
    for source in dict.fromkeys(q.source for q in quotes):
        own = [q for q in quotes if q.source == source]
        lines = [source_label(source, own[0].title, own[0].date)]
        lines += [f"  > {q.shown}" for q in own]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def make_answerer(settings: BotSettings, retriever=None) -> Answerer:
    llm = None
    if settings.llm != "none":
        from bot.llm import make_llm

        llm = make_llm(settings)
    return Answerer(settings, llm=llm, retriever=retriever)
