"""Every threshold of answering without an LLM, in one object, with how each was set.

    POLICY = Policy()   what `Answerer` uses unless given another

Calibrated on the dev sets of the evaluation kit (rtqa, polnear, nearmiss, off-corpus) with
`newsbot eval`; README "Answer quality" has the figures. The gate's thresholds (`gate`)
decide whether retrieval found evidence enough to read at all; the reading stage's (`read`)
whether what it read answers. `NEWSBOT_MIN_RELEVANCE` (settings) moves the gate's three bars
together, for an embedding model or a corpus they were not set on.

The LLM's support check has its own bars (`support.Policy`): they judge an LLM's sentence
against a passage, not a question against the articles.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    # -- the evidence gate (`gate`) ------------------------------------------------------
    min_coverage: float = 0.4  # share of the question's idf weight the best chunk must contain
    max_unknown: float = 0.4  # share of that weight in words no indexed chunk has
    # A word's absence says something only about a vocabulary of some size: in a corpus of two
    # articles most words of any question are absent (about 100 articles make 5,000 words).
    min_vocabulary: int = 5000
    # Cosine similarity the best chunk must reach, per embedding model; models not calibrated
    # here rely on the lexical signals alone.
    # The int8 model (the default) shares the fp32 one's bar: its vectors are the same model's
    # within ~0.001 cosine on average (BENCHMARKS.md "Embedding: past the fp32 ceiling").
    min_similarity: tuple[tuple[str, float], ...] = (
        ("all-MiniLM-L6-v2 (bundled)", 0.2),
        ("all-MiniLM-L6-v2 int8 (bundled)", 0.2),
    )

    # -- the reading stage (`read`) ------------------------------------------------------
    passages: int = 8  # chunks whose sentences are candidates
    rerank: int = 14  # sentences the cross-encoder reads (swept 12, 14, 16)
    max_quote_chars: int = 600  # a quote's length at most, with its ellipses (`pieces`)
    chunk_power: float = 3.0  # how much a sentence's lexical score follows its chunk's rank
    # Relevance (mean cross-encoder logit) the best eligible sentence must reach. Swept -3..0:
    # at -2.5 rtqa false refusals are 0.01 and 0.82 of the near misses are refused; -2 refuses
    # 0.88 of them but also 0.03 of answerable near-miss questions and costs rtqa 0.02 accuracy.
    answer_logit: float = -2.5
    # A typed question needs an entity of its kind in one of its `typed_sentences` best
    # sentences of at least this relevance. Swept -3..0: below the answer threshold (a sentence
    # may hold the answer and read less well than the best one), -3 cut rtqa false refusals
    # 0.031 -> 0.02 at no cost on the near misses.
    typed_logit: float = -3.0
    typed_sentences: int = 5
    margin: float = 6.0  # quotes within this many logits of the best one
    lexical_share: float = 0.5  # without the reranker: quotes above this share of the best
    # "what did X say": a further quote must hold this share of the best one's topic words.
    say_coverage: float = 0.25
    # ... and the best sentences naming X are parsed for who speaks in them (~13 ms each).
    naming: int = 6
    min_sentence_coverage: float = 0.3  # without the reranker: lexical coverage to answer

    def similarity_bar(self, model_id: str) -> float:
        """The cosine similarity the best chunk must reach with `model_id`'s vectors: none
        (-1) for a model not calibrated here."""
        return dict(self.min_similarity).get(model_id, -1.0)


POLICY = Policy()
