"""BM25 over the index's chunks, kept in step with Chroma incrementally.

Words: lower-cased alphanumeric runs, English stop words dropped, Snowball (Porter 2)
stemming ("negotiations" ~ "negotiating", "drones" ~ "drone"). The same `words()` feeds the
answerer's sentence scoring, so both sides agree on what a word is.

The index keeps, per chunk, its term counts and a little metadata (source, day); BM25 weights
are precomputed per posting, so a query is a handful of numpy `add.at` calls.

Stemming is safe from any thread: a Snowball stemmer keeps its working word in the object, so
each thread has its own (sharing one made concurrent chats raise IndexError in the stemmer and
cache wrong stems); the cache of stems is shared, as every entry in it is right.

Staying in step: the chunk set lives in Chroma. `BM25Index.sync(store)` compares the chunk ids
it has with Chroma's, tokenizes only the chunks that are new, drops the ones that are gone and
recomputes the weights (numpy, fast). It is called when the collection's generation changes, so
nothing is rebuilt per question and nothing goes stale after `newsbot index`. Rows that vanish
while it reads (an indexer deleting an old version) are simply not taken.

The state is saved next to the index (`bm25.npz`, tagged with the generation) so a new process
starts without tokenizing the whole corpus again; the indexer brings that file up to date after
every build that changed something, so a reader usually finds it current. It is data only --
numpy arrays and one JSON header, read with `allow_pickle=False` -- because anyone who can write
the store folder could otherwise run code as the bot. A state that cannot be read, or of another
format or words() version, counts as missing and is made again from Chroma. An old `bm25.pkl`
is never read: the next save removes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
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


_STEMS: dict[str, str] = {}  # the corpus vocabulary is bounded; stemming each word once
_LOCAL = threading.local()  # one stemmer per thread: a stemmer is not safe to share
WORDS_VERSION = 2  # bump when words() changes: saved BM25 states from before are rebuilt
STATE_FORMAT = 1  # bump when the saved state's layout changes
LEGACY_CACHE = "bm25.pkl"  # the pickled state of old versions: removed, never read


def _stemmer():
    stemmer = getattr(_LOCAL, "stemmer", None)
    if stemmer is None:
        stemmer = _LOCAL.stemmer = snowballstemmer.stemmer("english")
    return stemmer


def stem(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    stemmed = _STEMS.get(word)
    if stemmed is None:
        stemmed = _STEMS[word] = _stemmer().stemWord(word)
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
        in_store = store.all_ids()
        current = set(in_store)
        keep = [i for i, chunk_id in enumerate(self.ids) if chunk_id in current]
        changed = len(keep) != len(self.ids)
        if changed:
            self.ids = [self.ids[i] for i in keep]
            self.counts = [self.counts[i] for i in keep]
            self.sources = [self.sources[i] for i in keep]
            self.days = [self.days[i] for i in keep]
        known = set(self.ids)
        new_ids = [chunk_id for chunk_id in in_store if chunk_id not in known]
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
        """Write the state atomically as numpy arrays and a JSON header (no pickle)."""
        header = {
            "format": STATE_FORMAT,
            "words_version": WORDS_VERSION,
            "generation": self.generation,
            "ids": self.ids,
            "sources": self.sources,
            "vocab": list(self.vocab),  # in term id order
        }
        n = len(self.ids)
        sizes = np.fromiter((len(t) for t, _ in self.counts), dtype=np.int64, count=n)
        terms = np.concatenate([t for t, _ in self.counts]) if n else np.zeros(0, np.int32)
        tfs = np.concatenate([tf for _, tf in self.counts]) if n else np.zeros(0, np.int32)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                    days=np.asarray(self.days, dtype=np.int64),
                    sizes=sizes,
                    terms=terms.astype(np.int32),
                    tfs=tfs.astype(np.int32),
                )
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if path.name != LEGACY_CACHE:
            (path.parent / LEGACY_CACHE).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        """The saved state, or an empty index when it is missing, unreadable or outdated."""
        try:
            return cls._read(path)
        except FileNotFoundError:
            return cls()
        except Exception as exc:  # whatever is wrong with it, the state is made again
            log.warning("the BM25 state %s cannot be used (%s); making it again", path, exc)
            return cls()

    @classmethod
    def _read(cls, path: Path) -> BM25Index:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode("utf-8"))
            if not isinstance(header, dict):
                raise ValueError("no header")
            if header.get("format") != STATE_FORMAT:
                raise ValueError(f"format {header.get('format')!r}, not {STATE_FORMAT}")
            if header.get("words_version") != WORDS_VERSION:
                raise ValueError("made with other words()")
            days, sizes = data["days"], data["sizes"]
            terms, tfs = data["terms"], data["tfs"]
        ids, sources, vocab = header["ids"], header["sources"], header["vocab"]
        generation = header["generation"]
        n = len(ids)
        arrays = (days, sizes, terms, tfs)
        if not (
            all(isinstance(x, str) for x in (*ids, *sources, *vocab))
            and (generation is None or isinstance(generation, int))
            and all(a.ndim == 1 and a.dtype.kind in "iu" for a in arrays)
            and len(sources) == len(days) == len(sizes) == n == len(set(ids))
            and len(set(vocab)) == len(vocab)
            and (sizes >= 0).all()
            and int(sizes.sum()) == len(terms) == len(tfs)
            and (len(terms) == 0 or (terms.min() >= 0 and terms.max() < len(vocab)))
            and (tfs > 0).all()
        ):
            raise ValueError("inconsistent arrays")
        index = cls()
        index.generation = generation
        index.ids, index.sources = list(ids), list(sources)
        index.days = [int(d) for d in days]
        index.vocab = {term: i for i, term in enumerate(vocab)}
        bounds = np.cumsum(sizes)[:-1]
        per_chunk = zip(
            np.split(terms.astype(np.int32), bounds),
            np.split(tfs.astype(np.int32), bounds),
            strict=True,
        )
        index.counts = list(per_chunk) if n else []
        index._reweigh()
        return index


def cache_path(store_dir: Path) -> Path:
    return store_dir / "bm25.npz"


def update_cache(store, store_dir: Path) -> BM25Index:
    """Bring the saved BM25 state in step with the collection (incrementally) and save it."""
    path = cache_path(store_dir)
    index = BM25Index.load(path)
    if index.sync(store, store.info().generation) or not path.exists():
        index.save(path)
    (store_dir / LEGACY_CACHE).unlink(missing_ok=True)
    return index
