"""BM25 over the index's chunks, kept in step with Chroma incrementally.

Words: lower-cased alphanumeric runs, English stop words dropped, Snowball (Porter 2)
stemming ("negotiations" ~ "negotiating", "drones" ~ "drone"). The same `words()` feeds the
answerer's sentence scoring, so both sides agree on what a word is.

The index keeps its postings (chunk, count) grouped by term in flat numpy arrays, with a little
metadata per chunk (id, source, day); BM25 weights are precomputed per posting, so a query adds
a few slices of an array. There is no Python object per chunk's terms: a state that kept a
pair of arrays per chunk, and sorted its postings by term again on every load, made a fresh
process's start grow with Python work per chunk (issue 11, BENCHMARKS.md "Scale").

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
every build that changed something, so a reader usually finds it current. With the index on a
Chroma server the store folder holds only such local state, and a bot may start without one:
saving makes the folder, so that the bot's next start loads its state rather than tokenizing
every chunk on the server again. The state is data only -- numpy arrays and one JSON header,
read with `allow_pickle=False` -- because anyone who can write the store folder could otherwise
run code as the bot. A state that cannot be read, or of another format or words() version,
counts as missing and is made again from Chroma. Reading it is bounded by what `save` writes: a
regular file (a FIFO in its place would hang the open), only the members its format names, each
stored uncompressed (a deflated member could inflate to gigabytes: a zip bomb) as a 1-D array
of the dtype `save` gives it (a cast of wider counts could wrap them negative). The postings are
saved grouped by term, so loading is reading arrays and weighing them, with no sort; a state of
the first layout (each chunk's terms in turn) is still read and grouped once. An old `bm25.pkl`
is never read: the next save removes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

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
STATE_FORMAT = 2  # bump when the saved state's layout changes
BY_CHUNK_FORMAT = 1  # postings saved chunk by chunk: still read, grouped by term on loading
WEIGH_BLOCK = 1 << 22  # postings weighed at a time: bounds the temporaries of a big index
LEGACY_CACHE = "bm25.pkl"  # the pickled state of old versions: removed, never read
LAYOUTS = {  # the arrays of each format, with the dtypes `save` wrote them in
    STATE_FORMAT: {"days": np.int64, "ptr": np.int64, "docs": np.int32, "tfs": np.int32},
    BY_CHUNK_FORMAT: {"days": np.int64, "sizes": np.int64, "terms": np.int32, "tfs": np.int32},
}


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
    """BM25 over the chunks, its postings in flat arrays grouped by term (CSR-like):

        _ptr    term t's postings are [_ptr[t], _ptr[t + 1])   int64, one per term, plus one
        _docs   the chunk of each posting (a term names a chunk at most once)   int32
        _tfs    how often the term is in that chunk                             int32
        _w      the posting's BM25 weight (from the above, the chunk count and lengths)

    No per-chunk Python objects: what a process loads is a few arrays, and weighing them is a
    handful of vectorized passes with no sort (the postings are saved already grouped by term),
    so loading grows with the postings' bytes, not with Python work per chunk. Only a sync that
    adds chunks sorts (the new postings merged in, once per sync).
    """

    def __init__(self) -> None:
        self.generation: int | None = None
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.days: list[int] = []
        self.vocab: dict[str, int] = {}
        self._ptr = np.zeros(1, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int32)
        self._tfs = np.zeros(0, dtype=np.int32)
        self._w = np.zeros(0)
        self._idf = np.zeros(0)
        self._positions: dict[str, int] = {}

    def copy(self) -> BM25Index:
        """A copy to update aside while this one keeps answering (the arrays are shared: a
        sync replaces them, it never changes them in place)."""
        other = BM25Index()
        other.__dict__.update(self.__dict__)
        other.ids, other.sources, other.days = list(self.ids), list(self.sources), list(self.days)
        other.vocab = dict(self.vocab)
        other._positions = {}
        return other

    def __len__(self) -> int:
        return len(self.ids)

    # -- building -----------------------------------------------------------------------------
    def _term_id(self, term: str) -> int:
        term_id = self.vocab.get(term)
        if term_id is None:
            term_id = self.vocab[term] = len(self.vocab)
        return term_id

    def _add(self, records: Iterable[dict]) -> tuple[list, list, list]:
        """Tokenize new chunks and append them; their postings (terms, chunks, counts) are
        returned for `_merge`, which sorts once for all the pages of a sync."""
        terms, docs, tfs = [], [], []
        for record in records:
            meta = record["meta"]
            text = f"{meta.get('title') or ''}\n{record['text']}"
            counts = Counter(self._term_id(w) for w in words(text))
            terms.append(np.fromiter(counts.keys(), dtype=np.int32, count=len(counts)))
            tfs.append(np.fromiter(counts.values(), dtype=np.int32, count=len(counts)))
            docs.append(np.full(len(counts), len(self.ids), dtype=np.int32))
            self.ids.append(record["id"])
            self.sources.append(meta.get("source", ""))
            self.days.append(int(meta.get("day") or 0))
        return terms, docs, tfs

    def _merge(self, terms: list, docs: list, tfs: list) -> None:
        """Merge postings into the arrays, grouped by term; within a term, chunks in order."""
        old_terms = np.repeat(np.arange(len(self._ptr) - 1, dtype=np.int32), np.diff(self._ptr))
        all_terms = np.concatenate([old_terms, *terms])
        order = np.argsort(all_terms, kind="stable")
        self._docs = np.concatenate([self._docs, *docs])[order]
        self._tfs = np.concatenate([self._tfs, *tfs])[order]
        self._ptr = _offsets(np.bincount(all_terms, minlength=len(self.vocab)))

    def _drop(self, keep: np.ndarray) -> None:
        """Keep only the chunks where `keep` is True (their postings renumbered)."""
        term_of = np.repeat(np.arange(len(self._ptr) - 1), np.diff(self._ptr))
        kept = keep[self._docs]
        renumber = (np.cumsum(keep) - 1).astype(np.int32)
        self._docs = renumber[self._docs[kept]]
        self._tfs = self._tfs[kept]
        self._ptr = _offsets(np.bincount(term_of[kept], minlength=len(self._ptr) - 1))
        rows = np.flatnonzero(keep)
        self.ids = [self.ids[i] for i in rows]
        self.sources = [self.sources[i] for i in rows]
        self.days = [self.days[i] for i in rows]

    def sync(self, store, generation: int) -> bool:
        """Match the chunks in `store`; returns True if anything changed."""
        if generation == self.generation:
            return False
        in_store = store.all_ids()
        current = set(in_store)
        keep = np.fromiter((i in current for i in self.ids), dtype=bool, count=len(self.ids))
        changed = not keep.all()
        if changed:
            self._drop(keep)
        known = set(self.ids)
        new_ids = [chunk_id for chunk_id in in_store if chunk_id not in known]
        if new_ids:
            changed = True
            terms, docs, tfs = [], [], []
            for start in range(0, len(new_ids), 2000):
                page = self._add(store.get_records(new_ids[start : start + 2000]))
                terms += page[0]
                docs += page[1]
                tfs += page[2]
            self._merge(terms, docs, tfs)
        self.generation = generation
        if changed or len(self._ptr) != len(self.vocab) + 1:
            self._positions = {}
            self._reweigh()
        log.info("BM25 in step with generation %s: %d chunks", generation, len(self.ids))
        return changed

    def _reweigh(self) -> None:
        """Every posting's BM25 weight, in blocks (bounded temporaries); no sort."""
        n = len(self.ids)
        df = np.diff(self._ptr)
        self._idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)) if n else np.zeros(len(df))
        self._w = np.zeros(len(self._docs))
        if n == 0:
            return
        lengths = np.bincount(self._docs, weights=self._tfs, minlength=n)
        norm = K1 * (1 - B + B * lengths / max(lengths.mean(), 1.0))
        first = 0  # the terms of about WEIGH_BLOCK postings at a time
        while first < len(df):
            last = int(np.searchsorted(self._ptr, self._ptr[first] + WEIGH_BLOCK, side="right"))
            last = min(max(last - 1, first + 1), len(df))
            lo, hi = self._ptr[first], self._ptr[last]
            idf = np.repeat(self._idf[first:last], df[first:last])
            tfs = self._tfs[lo:hi].astype(np.float64)
            self._w[lo:hi] = idf * tfs * (K1 + 1) / (tfs + norm[self._docs[lo:hi]])
            first = last

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
            scores[self._docs[lo:hi]] += self._w[lo:hi]  # a term names each chunk once
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
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
        path.parent.mkdir(parents=True, exist_ok=True)  # a bot on a Chroma server may have none
        try:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                    days=np.asarray(self.days, dtype=np.int64),
                    ptr=self._ptr.astype(np.int64),
                    docs=self._docs.astype(np.int32),
                    tfs=self._tfs.astype(np.int32),
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
        with _open_regular(path) as handle, np.load(handle, allow_pickle=False) as data:
            header = json.loads(_member(data, "header", np.uint8).tobytes().decode("utf-8"))
            if not isinstance(header, dict):
                raise ValueError("no header")
            layout = LAYOUTS.get(header.get("format"))
            if layout is None:
                raise ValueError(f"format {header.get('format')!r}, not {STATE_FORMAT}")
            if header.get("words_version") != WORDS_VERSION:
                raise ValueError("made with other words()")
            arrays = {name: _member(data, name, dtype) for name, dtype in layout.items()}
        ids, sources, vocab = header["ids"], header["sources"], header["vocab"]
        generation = header["generation"]
        if not (
            all(isinstance(x, str) for x in (*ids, *sources, *vocab))
            and (generation is None or isinstance(generation, int))
            and len(sources) == len(arrays["days"]) == len(ids) == len(set(ids))
            and len(set(vocab)) == len(vocab)
        ):
            raise ValueError("inconsistent header")
        index = cls()
        index.generation = generation
        index.ids, index.sources = list(ids), list(sources)
        index.days = arrays["days"].tolist()
        index.vocab = {term: i for i, term in enumerate(vocab)}
        if header["format"] == BY_CHUNK_FORMAT:  # postings saved chunk by chunk: group them
            _check_by_chunk(arrays, len(ids), len(vocab))
            sizes = arrays["sizes"]
            docs = np.repeat(np.arange(len(ids), dtype=np.int32), sizes)
            index._merge([arrays["terms"]], [docs], [arrays["tfs"]])
        else:  # used as read: `_member` checked every array's dtype
            _check_by_term(arrays, len(ids), len(vocab))
            index._ptr, index._docs, index._tfs = arrays["ptr"], arrays["docs"], arrays["tfs"]
        index._reweigh()
        return index


@contextlib.contextmanager
def _open_regular(path: Path) -> Iterator[BinaryIO]:
    """The state file, opened without blocking and refused unless it is a regular file."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        yield handle


def _member(data, name: str, dtype) -> np.ndarray:
    """One array of a state, refused unread when its zip member is compressed (`np.savez`
    stores them as they are), and refused when it is not 1-D of `dtype`."""
    if data.zip.getinfo(f"{name}.npy").compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{name} is compressed")
    array = data[name]
    if array.ndim != 1 or array.dtype != dtype:
        raise ValueError(f"{name} is not a 1-D array of {np.dtype(dtype)}")
    return array


def _offsets(counts: np.ndarray) -> np.ndarray:
    """[0, c0, c0 + c1, ...]: where each group starts, and the end."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _check_by_term(arrays: dict, chunks: int, terms: int) -> None:
    ptr, docs, tfs = arrays["ptr"], arrays["docs"], arrays["tfs"]
    if not (
        len(ptr) == terms + 1
        and ptr[0] == 0
        and (np.diff(ptr) >= 0).all()
        and ptr[-1] == len(docs) == len(tfs)
        and (len(docs) == 0 or (docs.min() >= 0 and docs.max() < chunks))
        and (tfs > 0).all()
    ):
        raise ValueError("inconsistent arrays")


def _check_by_chunk(arrays: dict, chunks: int, vocab: int) -> None:
    sizes, terms, tfs = arrays["sizes"], arrays["terms"], arrays["tfs"]
    if not (
        len(sizes) == chunks
        and (sizes >= 0).all()
        and int(sizes.sum()) == len(terms) == len(tfs)
        and (len(terms) == 0 or (terms.min() >= 0 and terms.max() < vocab))
        and (tfs > 0).all()
    ):
        raise ValueError("inconsistent arrays")


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
