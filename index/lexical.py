"""BM25 over the index's chunks, kept in step with Chroma incrementally.

Words: lower-cased alphanumeric runs, English stop words dropped, Snowball (Porter 2)
stemming ("negotiations" ~ "negotiating", "drones" ~ "drone"). The same `words()` feeds the
answerer's sentence scoring, so both sides agree on what a word is.

The index keeps, per chunk, its term counts and a little metadata (source, day); BM25 weights
are precomputed per posting, so a query is a handful of numpy `add.at` calls.

Staying in step: the chunk set lives in Chroma. `BM25Index.sync(store)` compares the chunk ids
it has with Chroma's, tokenizes only the chunks that are new, drops the ones that are gone and
recomputes the weights (numpy, fast). It is called when the collection's generation changes, so
nothing is rebuilt per question and nothing goes stale after `newsbot index`. The state is
saved next to the index (`bm25.pkl`, tagged with the generation) so a new process starts
without tokenizing the whole corpus again; the indexer brings that file up to date after every
build that changed something, so a reader usually finds it current.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import snowballstemmer

log = logging.getLogger(__name__)

K1, B = 1.2, 0.75
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t don said says say told tell according would could may might must
    shall us mr mrs ms one two new also""".split()
)


_STEMMER = snowballstemmer.stemmer("english")
_STEMS: dict[str, str] = {}  # the corpus vocabulary is bounded; stemming each word once
WORDS_VERSION = 2  # bump when words() changes: saved BM25 states from before are rebuilt


def stem(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    stemmed = _STEMS.get(word)
    if stemmed is None:
        stemmed = _STEMS[word] = _STEMMER.stemWord(word)
    return stemmed


def words(text: str) -> list[str]:
    """Stemmed content words of a text."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25Index:
    def __init__(self) -> None:
        self.generation: int | None = None
        self.ids: list[str] = []
        self.counts: list[tuple[np.ndarray, np.ndarray]] = []  # per chunk: term ids, counts
        self.sources: list[str] = []
        self.days: list[int] = []
        self.vocab: dict[str, int] = {}
        self._ptr = np.zeros(1, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int32)
        self._w = np.zeros(0)
        self._idf = np.zeros(0)
        self._positions: dict[str, int] = {}

    def copy(self) -> BM25Index:
        """A copy to update aside while this one keeps answering (per-chunk data is shared)."""
        other = BM25Index()
        other.__dict__.update(self.__dict__)
        other.ids, other.counts = list(self.ids), list(self.counts)
        other.sources, other.days, other.vocab = (
            list(self.sources),
            list(self.days),
            dict(self.vocab),
        )
        return other

    def __len__(self) -> int:
        return len(self.ids)

    # -- building -----------------------------------------------------------------------------
    def _term_id(self, term: str) -> int:
        term_id = self.vocab.get(term)
        if term_id is None:
            term_id = self.vocab[term] = len(self.vocab)
        return term_id

    def _add(self, records: Iterable[dict]) -> None:
        for record in records:
            meta = record["meta"]
            text = f"{meta.get('title') or ''}\n{record['text']}"
            counts = Counter(self._term_id(w) for w in words(text))
            self.ids.append(record["id"])
            self.counts.append(
                (
                    np.fromiter(counts.keys(), dtype=np.int32, count=len(counts)),
                    np.fromiter(counts.values(), dtype=np.int32, count=len(counts)),
                )
            )
            self.sources.append(meta.get("source", ""))
            self.days.append(int(meta.get("day") or 0))

    def sync(self, store, generation: int) -> bool:
        """Match the chunks in `store`; returns True if anything changed."""
        if generation == self.generation:
            return False
        current = {r["id"]: r["meta"] for r in store.iter_all(include_documents=False)}
        keep = [i for i, chunk_id in enumerate(self.ids) if chunk_id in current]
        changed = len(keep) != len(self.ids)
        if changed:
            self.ids = [self.ids[i] for i in keep]
            self.counts = [self.counts[i] for i in keep]
            self.sources = [self.sources[i] for i in keep]
            self.days = [self.days[i] for i in keep]
        known = set(self.ids)
        new_ids = [chunk_id for chunk_id in current if chunk_id not in known]
        if new_ids:
            changed = True
            for start in range(0, len(new_ids), 2000):
                self._add(store.get_records(new_ids[start : start + 2000]))
        self.generation = generation
        if changed or len(self._ptr) != len(self.vocab) + 1:
            self._reweigh()
        log.info("BM25 in step with generation %s: %d chunks", generation, len(self.ids))
        return changed

    def _reweigh(self) -> None:
        """Precompute every posting's BM25 weight, postings grouped by term (CSR-like)."""
        n, vocab_size = len(self.ids), len(self.vocab)
        self._ptr = np.zeros(vocab_size + 1, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int32)
        self._w = np.zeros(0)
        self._idf = np.zeros(vocab_size)
        if n == 0:
            return
        lengths = np.fromiter((tf.sum() for _, tf in self.counts), dtype=np.float64, count=n)
        doc_of = np.repeat(np.arange(n, dtype=np.int32), [len(t) for t, _ in self.counts])
        terms = np.concatenate([t for t, _ in self.counts]) if n else np.zeros(0, np.int32)
        tfs = np.concatenate([tf for _, tf in self.counts]).astype(np.float64)
        order = np.argsort(terms, kind="stable")
        terms, doc_of, tfs = terms[order], doc_of[order], tfs[order]
        df = np.bincount(terms, minlength=vocab_size).astype(np.float64)
        self._ptr[1:] = np.cumsum(df)
        self._idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = K1 * (1 - B + B * lengths / max(lengths.mean(), 1.0))
        self._docs = doc_of
        self._w = self._idf[terms] * tfs * (K1 + 1) / (tfs + norm[doc_of])

    # -- querying -----------------------------------------------------------------------------
    def idf(self, term: str) -> float:
        term_id = self.vocab.get(term)
        if term_id is None or term_id >= len(self._idf):
            return float(np.log(1.0 + (len(self.ids) + 0.5) / 0.5)) if self.ids else 0.0
        return float(self._idf[term_id])

    def scores(self, query_words: Iterable[str]) -> np.ndarray:
        scores = np.zeros(len(self.ids))
        for term in set(query_words):
            term_id = self.vocab.get(term)
            if term_id is None or term_id + 1 >= len(self._ptr):
                continue
            lo, hi = self._ptr[term_id], self._ptr[term_id + 1]
            np.add.at(scores, self._docs[lo:hi], self._w[lo:hi])
        return scores

    def position(self, chunk_id: str) -> int | None:
        if len(self._positions) != len(self.ids):
            self._positions = {chunk_id: i for i, chunk_id in enumerate(self.ids)}
        return self._positions.get(chunk_id)

    def top(self, query_words: list[str], k: int, scores: np.ndarray | None = None):
        """[(chunk index, score)] of the k best chunks with a positive score."""
        scores = self.scores(query_words) if scores is None else scores
        if not len(scores):
            return []
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        state = {
            "words_version": WORDS_VERSION,
            "generation": self.generation,
            "ids": self.ids,
            "counts": self.counts,
            "sources": self.sources,
            "days": self.days,
            "vocab": self.vocab,
        }
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        index = cls()
        try:
            with open(path, "rb") as handle:
                state = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return index
        if not isinstance(state, dict) or state.pop("words_version", None) != WORDS_VERSION:
            return index  # made with other words(): start afresh
        for key, value in state.items():
            setattr(index, key, value)
        index._reweigh()
        return index


def cache_path(store_dir: Path) -> Path:
    return store_dir / "bm25.pkl"


def update_cache(store, store_dir: Path) -> BM25Index:
    """Bring the saved BM25 state in step with the collection (incrementally) and save it."""
    path = cache_path(store_dir)
    index = BM25Index.load(path) if path.exists() else BM25Index()
    if index.sync(store, store.info().generation) or not path.exists():
        index.save(path)
    return index
