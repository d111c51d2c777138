"""The Answerer both front ends call: grounded answers that quote and cite, or a plain "no".

    Answerer.answer(question, history) -> Answer

A list of steps, each a unit of its own with its own tests:

1. Condense (`followup`): a follow-up ("and what did he say about drones?") borrows the
   speaker or topic of the conversation so far, giving a standalone question.
2. Understand (`question`): the kind of answer asked for and its constraints, from spaCy's
   parse -- a person, a number, a date ...; "this week"; the names the question gives.
3. Retrieve (`retrieve`): hybrid vectors + BM25, preferring articles of a period the
   question names (`retrieval_request`).
4. Gate (`gate`): when the question's words are unknown to the corpus, or no retrieved
   chunk holds enough of them, or a "what did X say" names an X no chunk names, refuse at once.
5. Read (`read`): cut the top chunks into sentences, rank them by whether they *answer*
   (the cross-encoder, `rerank`), rule out articles from outside the asked period, and
   decide: quotes and a direct answer (`findings`), or a refusal that says what the
   articles do cover and what none of them says.
6. Check (`grounding`): every quote and answer phrase is re-read from its file and must be
   the exact text at its offsets, or it is dropped; when files are gone, the answer says so in
   one line instead of refusing.
7. Refuse or answer: the `Answer`, worded by `wording`. It cites its articles in the order
   retrieval ranks them, except that a roundup of many stories comes after the articles
   about one (`roundups`).

Every threshold of steps 4 and 5 is in one object, `policy.Policy`, with its calibration.

With an LLM configured (`llm`), the LLM writes the answer from numbered passages instead,
and every sentence of it is checked against the passages it cites (`support`); if it
fails, the extractive answer above is returned with a one-line notice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from bot.answering.dates import DayRange, recent_days
from bot.answering.findings import refusal_topic
from bot.answering.followup import Turn, condense
from bot.answering.gate import Closed, Gate
from bot.answering.grounding import Grounding, missing_folder
from bot.answering.policy import POLICY, Policy
from bot.answering.question import Question, analyze
from bot.answering.read import Reader, Reading, candidates, idf_weights, score_lexically
from bot.answering.retrieve import Hit, HybridRetriever
from bot.answering.roundups import Roundups
from bot.answering.speakers import speaker_words
from bot.answering.types import Answer, DirectAnswer, IndexStats, Quote
from bot.answering.wording import articles, format_answer, refusal_text
from bot.settings import BotSettings
from index.errors import NewsbotError
from index.lexical import stem, words
from index.store import ChunkStore

log = logging.getLogger(__name__)

WORDY = re.compile(r"\w")  # a question has at least one letter or digit


class QuestionError(NewsbotError):
    """The question itself cannot be answered as asked (empty, too long)."""


@dataclass(frozen=True)
class Asks:
    """What the answer must be about: the question's words (less those of its period), the
    words naming the speaker of a "what did X say", and the words of its period."""

    query_words: list[str]
    speaker: set[str]
    when: set[str]


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
        policy: Policy = POLICY,
    ):
        """`retriever` is anything with HybridRetriever's interface (`bot.cli.prefetch` gives one
        that retrieved in another process); by default the index of `settings` is opened."""
        self.settings = settings
        self.policy = policy
        self.retriever = retriever or HybridRetriever.open(settings, embedder, store)
        self.llm = llm
        if reranker is None and settings.rerank:
            from bot.answering.rerank import SharedReranker

            reranker = SharedReranker()
        self.reader = Reader(policy, reranker, settings.max_quotes)
        self.roundups = Roundups()

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
        from bot.answering import nlp

        self.embedder.embed_query("warm up")
        nlp.load()
        if self.reader.reranker is not None:
            self.reader.reranker.score("warm up", ["warm up"])

    def answer(
        self,
        question: str,
        history: Sequence[Answer] = (),
        asked_on: dt.date | None = None,
        *,
        with_llm: bool = True,
    ) -> Answer:
        """The answer to `question`, following on `history`. `with_llm=False` skips the LLM
        (when one is configured) for callers that want only the passages an answer reads,
        such as a Sources button pressed after a restart: they are the same either way."""
        started = time.perf_counter()
        # Invisible format characters (zero-width spaces, joiners, direction marks) split or
        # hide words; they carry nothing to answer.
        question = "".join(c for c in question or "" if unicodedata.category(c) != "Cf")
        question = " ".join(question.split())
        if not WORDY.search(question):  # "", "???", or only invisible characters
            raise QuestionError(
                "Please ask a question in words, e.g. “What did Stoltenberg say about Iran?”"
            )
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"That question is too long ({len(question)} characters); please keep it "
                f"under {limit}."
            )
        history = history[-self.settings.history_turns :] if self.settings.history_turns else ()
        turn = condense(question, history)  # 1
        asked_on = asked_on or dt.date.today()
        asked = analyze(turn.standalone, asked_on)  # 2
        understood_at = time.perf_counter()
        hits = self._retrieve(turn, asked, asked_on)  # 3
        retrieved_at = time.perf_counter()
        answer = self._respond(question, turn, asked, hits)  # 4-7
        answer.timings = {
            "understand": round(understood_at - started, 4),
            "retrieve": round(retrieved_at - understood_at, 4),
            "read": round(time.perf_counter() - retrieved_at, 4),
        }
        if with_llm and self.llm is not None and not answer.refused:
            from bot.answering.llm import answer_with_llm
            from bot.answering.support import SupportCheck

            checker = SupportCheck(self.reader.reranker)
            answer = answer_with_llm(self.llm, answer, hits, history, self.settings, checker)
        answer.timings["total"] = round(time.perf_counter() - started, 4)
        return answer

    # -- the steps ---------------------------------------------------------------------------
    def _retrieve(self, turn: Turn, asked: Question, asked_on: dt.date) -> list[Hit]:
        request = retrieval_request(
            turn.standalone, turn.extra_words, asked.period, asked_on, self.settings
        )
        return self.retriever.retrieve(
            request.question,
            request.k,
            request.days,
            list(request.query_words),
            recent=request.recent,
        )

    def _respond(self, question: str, turn: Turn, asked: Question, hits: list[Hit]) -> Answer:
        """Steps 4-7: gate, read, check, then refuse or answer."""
        if not hits:
            return self._refusal(question, turn, hits)
        top = hits[: self.policy.passages]
        asks = self._asks(turn, asked)
        closed = self._gate(asked, turn, top, asks)  # 4
        if closed:
            reason = None
            if closed.name:
                count = articles(self.stats().articles)
                reason = f"None of the {count} indexed mentions “{closed.name}”."
            return self._refusal(question, turn, hits, reason)
        reading = self._read(asked, turn, top, asks)  # 5
        if reading.refused:
            return self._refusal(question, turn, hits, reading.reason)
        grounding = Grounding(self.settings.corpus_dir)  # 6
        quotes = grounding.quotes(reading.chosen)
        unreadable = grounding.unreadable([s.source for s in reading.chosen])
        if not quotes:
            return self._refusal(question, turn, hits, unreadable)
        direct = [d for d in map(grounding.direct, reading.answers) if d is not None]
        return self._answered(question, turn, hits, quotes, direct, unreadable)  # 7

    def _asks(self, turn: Turn, asked: Question) -> Asks:
        """The words an answer must hold, and those that only name the speaker or the period."""
        # "this week" says when, not what: a sentence need not contain its words to answer
        # (retrieval keeps them: articles of that week tend to say "this week").
        when = set(words(asked.period.phrase)) if asked.period else set()
        query_words = [w for w in words(turn.standalone) + turn.extra_words if w not in when]
        if asked.kind == "say":  # "think" in "what does X think" is not what X's words hold
            query_words = [w for w in query_words if w != stem(asked.verb or "")]
        speaker = speaker_words(turn.speaker or (asked.subject if asked.kind == "say" else None))
        return Asks(query_words, speaker, when)

    def _gate(self, asked: Question, turn: Turn, top: list[Hit], asks: Asks) -> Closed | None:
        """Step 4. With the reranker, a question it reads is judged by what it reads, and by
        whether its words exist in the corpus at all; the whole lexical gate is for "what did
        X say" questions (which it does not read) and for working without the reranker."""
        lexical = self.reader.reranker is None or asked.kind == "say"
        retriever = self.retriever
        gate = Gate(self.policy, retriever.bm25, retriever.model_id, self.settings.min_relevance)
        return gate.closed(asked, turn, top, asks.query_words, asks.speaker, lexical)

    def _read(self, asked: Question, turn: Turn, top: list[Hit], asks: Asks) -> Reading:
        """Step 5: the top chunks' sentences, scored by their words, read by `read`."""
        policy = self.policy
        sentences = candidates(top, policy.max_quote_chars)
        leave_out = asks.speaker | asks.when
        weights = idf_weights(self.retriever.bm25, asks.query_words, turn.topic, leave_out)
        score_lexically(sentences, weights, asks.speaker, policy.chunk_power)
        topic = refusal_topic(asked, top)
        return self.reader.read(asked, sentences, topic, frozenset(asks.speaker))

    def _answered(
        self,
        question: str,
        turn: Turn,
        hits: list[Hit],
        quotes: list[Quote],
        direct: list[DirectAnswer],
        notice: str | None,
    ) -> Answer:
        """Step 7, an answer: articles in the order retrieval ranks them, a roundup after the
        articles about one story (`roundups`); in each, its best quotes first."""
        retrieved = list(dict.fromkeys(h.source for h in hits))
        quoted = {q.source for q in quotes}
        roundups: set[str] = set()
        if len(quoted) > 1:  # one article is cited first whatever it is
            first_hits = {h.source: h for h in reversed(hits) if h.source in quoted}.values()
            index = (self.retriever.model_id, self.retriever.generation)
            roundups = self.roundups.among(self.store, index, first_hits)
        order = {source: (source in roundups, rank) for rank, source in enumerate(retrieved)}
        quotes.sort(key=lambda q: order.get(q.source, (True, len(order))))
        sources = list(dict.fromkeys(q.source for q in quotes))
        return Answer(
            question=question,
            text=format_answer(quotes, direct),
            quotes=quotes,
            sources=sources,
            refused=False,
            kind="direct" if direct else "quotes",
            direct=direct,
            passages=[hit.passage() for hit in hits],
            retrieved=list(dict.fromkeys(sources + retrieved)),
            notice=notice,
            standalone_question=turn.standalone,
        )

    def _refusal(
        self, question: str, turn: Turn, hits: list[Hit], reason: str | None = None
    ) -> Answer:
        """Step 7, a refusal: `reason`, or the general one when there is no specific reason."""
        folder = self.settings.corpus_dir
        return Answer(
            question=question,
            text=reason or refusal_text(self.stats().articles),
            refused=True,
            kind="refusal",
            passages=[hit.passage() for hit in hits],
            retrieved=list(dict.fromkeys(h.source for h in hits)),
            standalone_question=turn.standalone,
            # Refused without reading a file: the folder's absence must still be said.
            notice=None
            if folder.is_dir() or (reason and str(folder) in reason)
            else missing_folder(folder),
        )


def make_answerer(settings: BotSettings, retriever=None) -> Answerer:
    llm = None
    if settings.llm != "none":
        from bot.answering.llm import make_llm

        llm = make_llm(settings)
    return Answerer(settings, llm=llm, retriever=retriever)
