"""Hybrid retrieval: Chroma vectors and BM25 over the same chunks, their scores fused.

    question --embed--> Chroma top N ----\\
            --words---> BM25 top N -------+--> union, both scores each --> fused (+ date) --> hits

Both candidate lists are merged and every chunk of the union is scored on both sides (a chunk
BM25 found gets its real cosine similarity, one the vectors found its real BM25 score). Each
score is divided by the best of its side, and the two are summed with the weight `ALPHA` of
BM25 (set on the dev sets, `newsbot eval`). When the question names a date or a period, chunks
of articles from that period get a bonus, and a second, date-filtered vector query makes sure
they are among the candidates at all; a question that names none prefers articles of the weeks
before it was asked.

A `Hit` is one retrieved chunk -- the one type a chunk has in the answerer: its text and where
it stands in its article (`source`, `start`, `end`), the article's `title` and `date`, and its
scores. What an `Answer` keeps of it is `Hit.passage()` (`types.Passage`); what an LLM
prompt numbers is its llama-index node (`llamaindex.passage_node`).

The retriever watches the collection's generation (one cheap metadata read per question): when
an indexer has changed the index, Chroma is reopened (an embedded client does not see another
process's vectors otherwise), BM25 re-syncs incrementally (see `index.lexical`) and the chunks
are counted, before the question is answered. Counting is done then and not per question:
Chroma counts a collection row by row (150 ms a question at 500,000 chunks, most of retrieval;
BENCHMARKS.md "Scale"). Answers never see a half-updated BM25: the new one is built aside and
swapped in.

Questions asked while an indexer runs: the indexer writes a file's new chunks before it deletes
the old ones, and moves the generation in between (see `index.build`), so a row that vanished
under a question -- a vector hit without metadata, a BM25 hit Chroma no longer has, or the
whole collection dropped by a finished `--rebuild` -- means the generation has moved. Retrieval
then syncs and runs again (a bounded number of times), so the question is answered from the
index as it was or as it is now, never from the hole in between.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from bot.answering.dates import DayRange
from bot.answering.types import Passage
from index.errors import IndexChangedError
from index.lexical import BM25Index, cache_path, words
from index.store import ChunkStore, chunking_id

log = logging.getLogger(__name__)

CANDIDATES = 40
ALPHA = 0.6  # weight of BM25 against vectors
DATE_BONUS = 0.5  # chunks of a period the question names
RECENT_BONUS = 0.2  # chunks published in the weeks before the question, when it names none
# Retrievals of one question while an indexer keeps changing the index under it: the pause
# before looking again doubles from RETRY_PAUSE up to a second, so a question waits out a
# swap of several seconds on a loaded machine (4 quick tries were too few under CI load).
ATTEMPTS = 8
RETRY_PAUSE = 0.05


@dataclass
class Hit:
    id: str
    text: str
    meta: dict
    score: float = 0.0
    similarity: float = 0.0  # cosine similarity to the question (0 if not a vector hit)
    bm25: float = 0.0
    in_period: bool = False

    @property
    def source(self) -> str:
        return self.meta["source"]

    @property
    def start(self) -> int:
        """Where the chunk's text starts in its article's decoded text."""
        return int(self.meta["start"])

    @property
    def end(self) -> int:
        return int(self.meta["end"])

    @property
    def title(self) -> str | None:
        return self.meta.get("title") or None

    @property
    def date(self) -> str | None:
        return self.meta.get("date") or None

    @property
    def day(self) -> int:
        """The article's date as YYYYMMDD; 0 when it has none."""
        return int(self.meta.get("day") or 0)

    def passage(self) -> Passage:
        """The chunk as an answer keeps it (what `/sources` shows)."""
        return Passage(
            self.text,
            self.source,
            self.start,
            self.end,
            self.title,
            self.date,
            round(self.score, 5),
        )


class HybridRetriever:
    @classmethod
    def open(cls, settings, embedder=None, store: ChunkStore | None = None) -> HybridRetriever:
        """Retrieval over the index `settings` name, checked to have been built with the
        embedding model and chunking the settings ask for (else `IndexMismatchError`)."""
        from index.embeddings import make_embedder

        embedder = embedder or make_embedder(settings)
        store = store or ChunkStore(settings)
        store.open()
        store.check_compatible(embedder.model_id, chunking_id(settings))
        return cls(store, embedder, cache_path(settings.store_dir))

    def __init__(self, store: ChunkStore, embedder, cache_path=None):
        self.store = store
        self.embedder = embedder
        self.cache_path = cache_path
        self.bm25 = BM25Index.load(cache_path) if cache_path else BM25Index()
        self._lock = threading.Lock()
        self.generation: int | None = None
        self.count = 0  # chunks in the collection at `generation`

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def info(self):
        """The index's metadata (`index.store.IndexInfo`), read afresh."""
        return self.store.info()

    def sync(self) -> bool:
        """Bring BM25 in step with the index; True if the index changed since last time."""
        generation = self.store.info().generation
        if generation == self.generation:
            return False
        with self._lock:
            if generation == self.generation:
                return False
            if self.generation is not None:
                self.store.reopen()  # the vectors may come from another process
            fresh = self.bm25.copy()
            changed = fresh.sync(self.store, generation)
            self.count = self.store.count()
            self.bm25 = fresh
            self.generation = generation
            if changed and self.cache_path:
                try:
                    fresh.save(self.cache_path)
                except OSError as exc:
                    log.warning("cannot save the BM25 cache %s: %s", self.cache_path, exc)
            return True

    def retrieve(
        self,
        question: str,
        k: int,
        days: DayRange | None = None,
        query_words: list[str] | None = None,
        recent: DayRange | None = None,
    ) -> list[Hit]:
        query_words = query_words if query_words is not None else words(question)
        vector = self.embedder.embed_query(question)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.sync()
                hits, vanished = self._retrieve(vector, query_words, k, days, recent)
            except IndexChangedError:  # rows or the collection went under it: look again
                if attempt == ATTEMPTS:
                    raise
                time.sleep(min(1.0, RETRY_PAUSE * 2 ** (attempt - 1)))  # let the indexer finish
                continue
            if not vanished or attempt == ATTEMPTS or not self._moved():
                return hits
            log.info(
                "%d rows vanished under a question: the index moved, retrieving again", vanished
            )
        return hits

    def _moved(self) -> bool:
        return self.store.info().generation != self.generation

    def _retrieve(self, vector, query_words, k, days, recent) -> tuple[list[Hit], int]:
        """(ranked hits, rows that vanished while reading)"""
        bm25 = self.bm25
        where = {"$and": [{"day": {"$gte": days[0]}}, {"day": {"$lte": days[1]}}]} if days else None

        hits: dict[str, Hit] = {}
        vanished = 0

        def add_vector(rows) -> None:
            nonlocal vanished
            vanished += rows.vanished
            for row in rows:
                hit = hits.setdefault(row["id"], Hit(row["id"], row["text"], row["meta"]))
                hit.similarity = max(hit.similarity, 1.0 - row["distance"])

        count = self.count  # counted once per generation: Chroma counts row by row
        if count == 0:
            return [], 0
        add_vector(self.store.query(vector, min(CANDIDATES, count)))
        if where:
            try:
                add_vector(self.store.query(vector, min(CANDIDATES // 2, count), where=where))
            except IndexChangedError:
                raise
            except Exception as exc:  # an empty filter result is not an error
                log.debug("the date-filtered query failed: %s", exc)

        # Score the union of both candidate lists on both sides: a chunk BM25 found gets its
        # real cosine similarity, a chunk the vectors found gets its real BM25 score.
        scores = bm25.scores(query_words)
        for chunk_id, hit in hits.items():
            position = bm25.position(chunk_id)
            hit.bm25 = float(scores[position]) if position is not None else 0.0
        lexical = bm25.top(query_words, CANDIDATES, scores)
        missing = [bm25.ids[i] for i, _ in lexical if bm25.ids[i] not in hits]
        records = self.store.get_records(missing, embeddings=True)
        vanished += len(missing) - len(records)
        for record in records:
            hit = Hit(record["id"], record["text"], record["meta"])
            hit.similarity = float(np.dot(vector, np.asarray(record["vector"], dtype=np.float32)))
            hits[record["id"]] = hit
        for i, score in lexical:
            if bm25.ids[i] in hits:  # not removed since BM25 last synced
                hits[bm25.ids[i]].bm25 = score

        top_similarity = max((h.similarity for h in hits.values()), default=0.0) or 1.0
        top_bm25 = max((h.bm25 for h in hits.values()), default=0.0) or 1.0
        for hit in hits.values():
            day = hit.day
            hit.in_period = bool(days and days[0] <= day <= days[1])
            hit.score = (
                ALPHA * hit.bm25 / top_bm25
                + (1 - ALPHA) * max(hit.similarity, 0.0) / top_similarity
            )
            hit.score += DATE_BONUS if hit.in_period else 0.0
            if recent and recent[0] <= day <= recent[1]:
                hit.score += RECENT_BONUS
        ranked = sorted(hits.values(), key=lambda h: -h.score)
        return ranked[:k], vanished
