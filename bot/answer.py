"""The Answerer both front ends call: grounded, extractive answers that quote and cite.

    Answerer.answer(question, history) -> Answer

1. Condense: a follow-up ("and what did he say about drones?") borrows the speaker or topic of
   the conversation so far, giving a standalone question.
2. Retrieve: hybrid vectors + BM25 (`bot.retrieve`), preferring articles of a period the
   question names ("in June 2022", "this week").
3. Pick sentences: the retrieved chunks are cut into sentences (`index.chunking`), and each
   sentence is scored by how much of the question's weight (BM25 idf) it covers, by the rank of
   its chunk, and -- for "what did X say (about Y)?" -- by whether X is the speaker: named with
   a speech verb, or referred to by a pronoun or a role ("the NATO chief") right after being
   named. A sentence that opens a quotation is extended to the sentence that closes it, so the
   attribution ("..., he said.") comes along.
4. Check: every quote is re-read from its file and must be the exact text at its offsets, or it
   is dropped. A citation can never point to a file that does not say it.
5. Refuse: when the best evidence is too weak (no retrieved sentence covers enough of the
   question, or the question's names are unknown to the corpus), say so plainly, quoting nothing.
   The thresholds were calibrated on the dev sets (see README, "Answer quality").

With an LLM configured (`bot.llm`), the LLM writes the answer from numbered passages instead;
if it fails, the extractive answer above is returned with a one-line notice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.dates import question_days, recent_days
from bot.retrieve import Hit, HybridRetriever
from bot.settings import BotSettings
from bot.types import Answer, IndexStats, Passage, Quote
from index.articles import read_source_text
from index.chunking import split_sentences
from index.embeddings import make_embedder
from index.errors import NewsbotError
from index.lexical import cache_path, words
from index.store import ChunkStore, chunking_id

log = logging.getLogger(__name__)

PASSAGES = 8  # chunks whose sentences are candidates
# Refusal thresholds, calibrated on the dev sets (README, "Answer quality"):
MIN_COVERAGE = 0.4  # share of the question's idf weight the best chunk must contain
MAX_UNKNOWN = 0.4  # share of that weight in words no indexed chunk has
MIN_SENTENCE_COVERAGE = 0.3  # share of the asked-about words the best sentence must contain
# Cosine similarity the best chunk must reach, per embedding model; models not calibrated here
# rely on the lexical signals alone.
MIN_SIMILARITY = {"all-MiniLM-L6-v2 (bundled)": 0.2}
MAX_QUOTE_CHARS = 600
CHUNK_POWER = 3.0  # how much a sentence's score follows its chunk's retrieval score
TITLE_CHARS = 70

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
GENERIC_SPEAKER_WORDS = {"the", "a", "an", "of", "for", "and", "mr", "mrs", "ms", "dr"}
OPEN_QUOTES = '“"'
CLOSE_QUOTES = '”"'


class QuestionError(NewsbotError):
    """The question itself cannot be answered as asked (empty, too long)."""


@dataclass
class Candidate:
    start: int
    end: int
    text: str
    hit: Hit
    rank: int
    score: float = 0.0
    coverage: float = 0.0
    speaker: float = 0.0


@dataclass
class Parsed:
    standalone: str
    speaker: str | None
    topic: str | None
    extra_words: list[str]


class Answerer:
    def __init__(
        self, settings: BotSettings, embedder=None, store: ChunkStore | None = None, llm=None
    ):
        self.settings = settings
        self.embedder = embedder or make_embedder(settings)
        self.store = store or ChunkStore(settings)
        self.store.open()
        self.store.check_compatible(self.embedder.model_id, chunking_id(settings))
        self.retriever = HybridRetriever(self.store, self.embedder, cache_path(settings.store_dir))
        self.llm = llm

    # -- public -----------------------------------------------------------------------------
    def stats(self) -> IndexStats:
        info = self.store.info()
        return IndexStats(info.articles, info.chunks, info.date_min, info.date_max, info.built_at)

    def refresh(self) -> bool:
        return self.retriever.sync()

    def warm_up(self) -> None:
        """Load the model and BM25 now rather than on the first question."""
        self.retriever.sync()
        self.embedder.embed_query("warm up")

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
        days = question_days(parsed.standalone, asked_on)
        query_words = words(parsed.standalone) + parsed.extra_words
        hits = self.retriever.retrieve(
            parsed.standalone,
            max(self.settings.top_k, PASSAGES),
            days,
            query_words,
            recent=None if days else recent_days(asked_on),
        )
        retrieved_at = time.perf_counter()
        answer = self._extract(question, parsed, hits, query_words)
        answer.timings = {
            "retrieve": round(retrieved_at - started, 4),
            "answer": round(time.perf_counter() - retrieved_at, 4),
        }
        if self.llm is not None and not answer.refused:
            from bot.llm import answer_with_llm

            answer = answer_with_llm(self.llm, answer, hits, history, self.settings)
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
        prev_speaker = prev_match["speaker"] if prev_match else None
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

    # -- extractive answer ------------------------------------------------------------------
    def _extract(self, question: str, parsed: Parsed, hits: list[Hit], query_words) -> Answer:
        stats = self.stats()
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
        refusal = Answer(
            question=question,
            text=refusal_text(stats.articles),
            refused=True,
            passages=passages,
            retrieved=retrieved,
            standalone_question=parsed.standalone,
        )
        if not hits:
            return refusal

        bm25 = self.retriever.bm25
        focus = words(parsed.topic) if parsed.topic else [w for w in query_words]
        speaker_words = _speaker_words(parsed.speaker)
        focus = [w for w in focus if w not in speaker_words] or focus
        weights = {w: bm25.idf(w) for w in set(focus)}
        total = sum(weights.values()) or 1.0

        if not self._covered(parsed, query_words, hits[:PASSAGES], speaker_words):
            return refusal
        if parsed.speaker and parsed.speaker.lower() in PRONOUNS:
            return refusal  # "what did he say?" with no one named before: who is "he"?

        candidates = self._candidates(hits[:PASSAGES])
        top_score = max(h.score for h in hits) or 1.0
        for c in candidates:
            sentence_words = set(words(c.text))
            coverage = sum(weights[w] for w in weights if w in sentence_words) / total
            speaker = _speaker_score(c, candidates, speaker_words) if speaker_words else 0.0
            c.coverage, c.speaker = coverage, speaker
            c.score = coverage * (1.0 + speaker) * (c.hit.score / top_score) ** CHUNK_POWER

        ranked = sorted(candidates, key=lambda c: -c.score)
        best = ranked[0] if ranked else None
        if best is None or best.score <= 0 or best.coverage < MIN_SENTENCE_COVERAGE:
            return refusal

        chosen: list[Candidate] = []
        for c in ranked:
            if len(chosen) >= self.settings.max_quotes or c.score <= best.score * 0.5:
                break
            if any(
                c.hit.source == o.hit.source and c.start < o.end and o.start < c.end for o in chosen
            ):
                continue
            chosen.append(c)
        quotes = self._verified(chosen)
        if not quotes:
            return refusal
        sources = list(dict.fromkeys(q.source for q in quotes))
        return Answer(
            question=question,
            text=format_answer(quotes),
            quotes=quotes,
            sources=sources,
            refused=False,
            passages=passages,
            retrieved=list(dict.fromkeys(sources + retrieved)),
            standalone_question=parsed.standalone,
        )

    def _covered(self, parsed: Parsed, query_words, hits: list[Hit], speaker_words) -> bool:
        """Is there evidence enough to answer at all? (Otherwise: refuse.)

        Three signals, calibrated on the dev sets (see README): the share of the question's
        idf weight that no indexed chunk contains at all (unknown words: "tungsten",
        "Zorblax"), the share the best retrieved chunk covers, and the best cosine similarity.
        A "what did X say" question also needs X named in a retrieved chunk.
        """
        bm25 = self.retriever.bm25
        weights = {w: bm25.idf(w) for w in set(query_words)}
        total = sum(weights.values()) or 1.0
        unknown = sum(v for w, v in weights.items() if bm25.vocab.get(w) is None) / total
        coverage = max(
            sum(v for w, v in weights.items() if w in _chunk_words(h)) / total for h in hits
        )
        similarity = max(h.similarity for h in hits)
        margin = self.settings.min_relevance
        min_similarity = MIN_SIMILARITY.get(self.embedder.model_id, -1.0)
        if speaker_words and not any(speaker_words & _chunk_words(h) for h in hits):
            return False
        return (
            unknown < MAX_UNKNOWN - margin
            and coverage >= MIN_COVERAGE + margin
            and similarity >= min_similarity + margin
        )

    def _candidates(self, hits: list[Hit]) -> list[Candidate]:
        seen: set[tuple[str, int]] = set()
        candidates = []
        for rank, hit in enumerate(hits):
            base = int(hit.meta["start"])
            spans = split_sentences(hit.text)
            for i, (a, b) in enumerate(spans):
                key = (hit.source, base + a)
                if key in seen:
                    continue
                seen.add(key)
                a, b = _extend_quotation(hit.text, spans, i)
                text = hit.text[a:b]
                if len(text) > MAX_QUOTE_CHARS:
                    b = a + (spans[i][1] - spans[i][0])
                    text = hit.text[a:b]
                candidates.append(Candidate(base + a, base + b, text, hit, rank))
        return candidates

    def _verified(self, chosen: list[Candidate]) -> list[Quote]:
        texts: dict[str, str | None] = {}
        quotes = []
        for c in chosen:
            source = c.hit.source
            if source not in texts:
                texts[source] = read_source_text(self.settings.corpus_dir, source)
            text = texts[source]
            if text is None or text[c.start : c.end] != c.text:
                log.warning("dropped a quote from %s: the file no longer says it", source)
                continue
            quotes.append(
                Quote(
                    c.text,
                    source,
                    c.start,
                    c.end,
                    c.hit.meta.get("title") or None,
                    c.hit.meta.get("date") or None,
                )
            )
        # Group by source, sources in order of their best quote; best quotes first.
        order = list(dict.fromkeys(q.source for q in quotes))
        return sorted(quotes, key=lambda q: order.index(q.source))


def _speaker_words(speaker: str | None) -> set[str]:
    if not speaker:
        return set()
    names = [
        w
        for w in re.findall(r"[A-Z][\w'’.-]*", speaker)
        if w.lower().strip(".") not in GENERIC_SPEAKER_WORDS
    ]
    chosen = names or speaker.split()
    return {w for word in chosen for w in words(word)}


def _chunk_words(hit: Hit) -> set[str]:
    return set(words(f"{hit.meta.get('title') or ''}\n{hit.text}"))


def _speaker_score(c: Candidate, candidates: list[Candidate], speaker_words: set[str]) -> float:
    sentence_words = set(words(c.text))
    named = bool(speaker_words & sentence_words)
    speech = bool(SPEECH_VERBS.search(c.text)) or any(q in c.text for q in OPEN_QUOTES)
    if named and speech:
        return 1.0
    if speech and (PRONOUN_SUBJECT.search(c.text) or ROLE.search(c.text)):
        # "he said" / "the NATO chief said": X must have been named before, in this chunk
        # or its headline.
        before = [o for o in candidates if o.hit is c.hit and o.end <= c.start]
        title = c.hit.meta.get("title") or ""
        if any(speaker_words & set(words(o.text)) for o in before) or (
            speaker_words & set(words(title))
        ):
            return 0.8
    if named:
        return 0.3
    # Someone else is quoted here ("..., Jones told reporters."): not what X said.
    for match in OTHER_SPEAKER.finditer(c.text):
        name = (match.group(1) or match.group(2) or "").lower()
        if name not in GENERIC_SPEAKER_WORDS and words(name):
            return -0.7
    return 0.0


def _extend_quotation(text: str, spans: list[tuple[int, int]], i: int) -> tuple[int, int]:
    """Extend sentence i to the end of a quotation it opens, so the attribution comes along."""
    a, b = spans[i]
    sentence = text[a:b]
    opens = sum(sentence.count(q) for q in "“") - sentence.count("”")
    straight = sentence.count('"') % 2 == 1
    if opens <= 0 and not straight:
        return a, b
    for j in range(i + 1, min(i + 4, len(spans))):
        following = text[spans[j][0] : spans[j][1]]
        if "”" in following or (straight and '"' in following):
            return a, spans[j][1]
    return a, b


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


def format_answer(quotes: list[Quote]) -> str:
    """Plain text: each source's label, then its quotes, verbatim."""
    blocks = []
    for source in dict.fromkeys(q.source for q in quotes):
        own = [q for q in quotes if q.source == source]
        lines = [source_label(source, own[0].title, own[0].date)]
        lines += [f"  > {q.text}" for q in own]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def make_answerer(settings: BotSettings) -> Answerer:
    llm = None
    if settings.llm != "none":
        from bot.llm import make_llm

        llm = make_llm(settings)
    return Answerer(settings, llm=llm)
