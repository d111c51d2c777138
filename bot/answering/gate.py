"""The evidence gate: did retrieval find enough to read at all? (Step 4 of an answer.)

    Gate(policy, bm25, model_id, margin).closed(asked, turn, top, query_words, speaker, lexical)
        -> Closed | None

Cheap signals, calibrated on the dev sets (`policy`; README "Answer quality"), in order:

1. A name of the question that no indexed article has a word of ("Zorblax"): refused, and the
   refusal names it (`Closed.name`). A country's other names count as its own
   (`question.aliases`: "Britain" is known to articles that say "UK" or "British").
2. With `lexical` (no reranker, or a "what did X say" question the reranker does not read):
   the share of the question's idf weight the best retrieved chunk covers, and the best cosine
   similarity, must reach their bars; and a "what did X say" needs X named in a chunk.
3. The share of the question's idf weight in words no indexed chunk has at all ("the time
   complexity of quicksort") must stay below `max_unknown` -- judged only over a vocabulary of
   some size (`min_vocabulary`).
4. "what did he say?" with no one named before: who is "he"?

`margin` (`NEWSBOT_MIN_RELEVANCE`) raises every bar at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.answering.followup import Turn
from bot.answering.policy import Policy
from bot.answering.question import Question, aliases
from bot.answering.retrieve import Hit
from index.lexical import BM25Index, words


@dataclass(frozen=True)
class Closed:
    """The gate's refusal; `name` is the question's name no article has, if that is why."""

    name: str | None = None


class Gate:
    def __init__(self, policy: Policy, bm25: BM25Index, model_id: str, margin: float = 0.0):
        self.policy = policy
        self.bm25 = bm25
        self.model_id = model_id
        self.margin = margin

    def closed(
        self,
        asked: Question,
        turn: Turn,
        top: list[Hit],
        query_words: list[str],
        speaker: set[str],
        lexical: bool,
    ) -> Closed | None:
        """Why the question is refused before reading; None when the evidence may answer it."""
        name = self.unknown_name(asked)
        if name:
            return Closed(name)
        if lexical and not self.covered(query_words, top, speaker):
            return Closed()
        if self.unknown_share(query_words) >= self.policy.max_unknown - self.margin:
            return Closed()
        if turn.unresolved:
            return Closed()
        return None

    def unknown_name(self, asked: Question) -> str | None:
        """A name of the question that no indexed article has a word of ("Zorblax")."""
        vocab = self.bm25.vocab
        for name in asked.names:
            # Its capitalised words name it: "the Iraq war" is not known for "war" alone.
            capitalised = [w for part in name.split() if part[:1].isupper() for w in words(part)]
            name_words = capitalised or words(name)
            if not name_words or any(w in vocab for w in name_words):
                continue
            if not any(w in vocab for alias in aliases(name) for w in words(alias)):
                return name
        return None

    def covered(self, query_words: list[str], hits: list[Hit], speaker: set[str]) -> bool:
        """Do the `hits` hold evidence enough to answer? The share of the question's idf weight
        in unknown words, the share the best chunk covers, the best cosine similarity; and for
        a "what did X say", X named in a chunk."""
        policy = self.policy
        unknown = self.unknown_share(query_words)
        weights = {w: self.bm25.idf(w) for w in set(query_words)}
        total = sum(weights.values()) or 1.0
        coverage = max(
            sum(v for w, v in weights.items() if w in chunk_words(h)) / total for h in hits
        )
        similarity = max(h.similarity for h in hits)
        if speaker and not any(speaker & chunk_words(h) for h in hits):
            return False
        return (
            unknown < policy.max_unknown - self.margin
            and coverage >= policy.min_coverage + self.margin
            and similarity >= policy.similarity_bar(self.model_id) + self.margin
        )

    def unknown_share(self, query_words: list[str]) -> float:
        """The share of the question's idf weight in words no indexed chunk has."""
        if len(self.bm25.vocab) < self.policy.min_vocabulary:
            return 0.0
        weights = {w: self.bm25.idf(w) for w in set(query_words)}
        total = sum(weights.values()) or 1.0
        return sum(v for w, v in weights.items() if self.bm25.vocab.get(w) is None) / total


def chunk_words(hit: Hit) -> set[str]:
    """The words of a chunk and of its article's headline."""
    return set(words(f"{hit.title or ''}\n{hit.text}"))
