"""Roundups: an article that covers many stories is cited after the articles about one.

    Roundups().among(store, index, hits) -> the sources of `hits` that are roundups

A news archive keeps digests ("5 things to know for July 14", "news from around the states",
live-update pages, corrections columns, "in brief") beside the articles they sum up. A digest
often repeats the very sentence a question borrows its words from, so retrieval ranks it
first; but the reader is better served by the article about the story, which carries the rest
of it. So when both are quoted, the answer cites the article about one story first
(`Answerer._answered`); a roundup that answers alone is cited as any article is.

A roundup is told by its own vectors, not by its name or its source: the mean cosine between
an article's chunks (`focus`) is low when its parts are about unrelated things. Over the dev
corpora (`../shared/eval`; 2,756 articles of more than one chunk), the 45 CNN "5 things"
digests have a focus of 0.24-0.52 (44 of them below 0.45), while only 55 of the other 2,711
articles fall below 0.45 -- and by their titles nearly all of those are roundups too ("news
around the states", "in brief", "corrections and clarifications", "celebrities who died in
2021", debate transcripts). An article of one chunk is about one thing.

The floor is the bundled model's (all-MiniLM-L6-v2, fp32 or int8). Other models place
unrelated texts elsewhere on the cosine scale (bge's run high), so under them a roundup may go
unseen; the citations then keep retrieval's order, as they did before.

Measured with `newsbot eval` on the dev sets: rtqa hit@1 0.867 -> 0.888 (two questions whose
digest was cited before the article the quiz links to), polnear and nearmiss unchanged. Any
floor from 0.38 to 0.50 gives the same figures; at 0.55 single-story polnear articles start to
move (hit@1 0.987 -> 0.95), so `FOCUS_FLOOR` sits in the middle of the safe range.

The vectors are read from the index once per article version and index generation (one
Chroma `get` of the quoted articles' chunks, ~9 ms over 21,000 chunks, by its indexed `source`
field) and the focus is kept, under a lock, since answers run in threads. The generation is
part of the key because an indexer writes a long article's chunks in batches, moving the
generation after each: a focus read from half an article is not kept past the build. When
the index cannot be read just then, the answer keeps retrieval's order: this orders citations
and never decides what is said.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from index.errors import StoreError

log = logging.getLogger(__name__)

FOCUS_FLOOR = 0.45  # an article whose chunks agree less than this on average is a roundup
KEPT = 20_000  # article versions whose focus is remembered


def focus(vectors: np.ndarray) -> float:
    """The mean cosine between every two of an article's chunk vectors (1.0 for one chunk;
    NaN when a vector is not finite, or is all zeros)."""
    count = len(vectors)
    if count < 2:
        return 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or not np.all(norms > 0):
        return float("nan")
    unit = vectors / norms
    total = unit.sum(axis=0)
    # sum over all ordered pairs i != j of cos(i, j) = |sum of units|^2 - count
    return float((total @ total - count) / (count * (count - 1)))


class Roundups:
    def __init__(self, kept: int = KEPT):
        self._focus: OrderedDict[tuple, float] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def among(self, store, index: tuple, hits: Iterable) -> set[str]:
        """The sources of `hits` (retrieved chunks, whose metadata name their article's
        version) that are roundups; `index` names the index they came from (its model and
        generation). Empty when the index cannot be read just now."""
        versions = {hit.source: str(hit.meta.get("version")) for hit in hits}
        keys = {source: (*index, source, version) for source, version in versions.items()}
        with self._lock:
            known = {source: self._focus[key] for source, key in keys.items() if key in self._focus}
            for key in keys.values():
                if key in self._focus:
                    self._focus.move_to_end(key)
        unknown = [source for source in keys if source not in known]
        if unknown:
            try:
                vectors = store.article_vectors(unknown)
            except StoreError as exc:  # retrieval's order stands; the next answer tries again
                log.debug("cannot read the quoted articles' vectors: %s", exc)
                vectors = {}
            found = {
                source: focus(vectors[(source, versions[source])])
                for source in unknown
                if (source, versions[source]) in vectors
            }
            known.update(found)
            with self._lock:
                for source, value in found.items():
                    self._focus[keys[source]] = value
                while len(self._focus) > self._kept:
                    self._focus.popitem(last=False)
        return {source for source, value in known.items() if value < FOCUS_FLOOR}
