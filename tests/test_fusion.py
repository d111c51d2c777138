"""Retrieval fuses normalised scores, as `bot.answering.retrieve`'s docstring says (not ranks)."""

from __future__ import annotations

import pytest

from bot.answering import retrieve
from bot.answering.retrieve import HybridRetriever
from index.build import build_index


def test_each_hit_scores_the_weighted_sum_of_its_normalised_bm25_and_similarity(make_settings):
    settings = make_settings()
    build_index(settings)
    retriever = HybridRetriever.open(settings)
    hits = retriever.retrieve("drones supplied to Russia", 100)
    assert len(hits) > 2
    top_bm25 = max(h.bm25 for h in hits)
    top_similarity = max(h.similarity for h in hits)
    for hit in hits:
        fused = (
            retrieve.ALPHA * hit.bm25 / top_bm25
            + (1 - retrieve.ALPHA) * max(hit.similarity, 0.0) / top_similarity
        )
        assert hit.score == pytest.approx(fused)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].source == "drones.txt"
