"""Sentence-aware chunks that fit the embedding model's window.

An article's body is split into sentences (with character offsets into the article text); the
sentences are packed in order into chunks whose embedded text -- the headline, a newline and the
chunk -- fits `chunk_size` wordpieces including the model's two special tokens. Each new chunk
starts with the trailing sentences of the previous one, up to `chunk_overlap` wordpieces, so a
statement that straddles a boundary is whole in at least one chunk. A sentence longer than a
whole chunk is cut at word boundaries, and a headline longer than half the window is cut for
embedding (the chunk keeps the whole headline for display).

Counting is exact: every sentence is run through the model's own tokenizer (one batch call per
article), so no chunk is silently truncated by the model.

`split_sentences` is also what the answerer uses to cut retrieved chunks into quotable
sentences, so the indexer and the answerer agree on what a sentence is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.articles import Article

# Sequences of token counts and token start offsets for a batch of texts.
Tokenize = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

SPECIAL_TOKENS = 2  # [CLS] and [SEP]

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sen rep gov gen col lt sgt capt cmdr adm maj st jr sr inc corp co ltd
    vs etc no nos jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n e.g i.e a.m p.m
    rev fr hon pres supt det insp messrs mt ft""".split()
)
_BOUNDARY = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])""")


@dataclass(frozen=True)
class Chunk:
    source: str
    ordinal: int
    start: int
    end: int
    text: str
    title: str | None
    date: str | None
    # The headline as embedded: cut when it would leave less than half the window for text.
    embed_title: str | None = None

    @property
    def embed_text(self) -> str:
        title = self.title if self.embed_title is None else self.embed_title
        return f"{title}\n{self.text}" if title else self.text

    @property
    def chunk_id(self) -> str:
        return f"{self.source}#{self.ordinal}"


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (start, end) within text[start:end]; paragraphs never share a sentence."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for para_start, para_end in _paragraphs(text, start, end):
        sent_start = para_start
        for match in _BOUNDARY.finditer(text, para_start, para_end):
            if _is_abbreviation(text, sent_start, match):
                continue
            spans.append((sent_start, match.end()))
            sent_start = _skip_space(text, match.end(), para_end)
        if sent_start < para_end:
            spans.append((sent_start, para_end))
    return spans


def _paragraphs(text: str, start: int, end: int):
    for match in re.finditer(r"[^\r\n]+", text[start:end]):
        s, e = start + match.start(), start + match.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            yield s, e


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _last_word(text: str, start: int, end: int) -> str:
    """The run of non-space characters ending at `end`, not reaching back before `start`.

    Read backwards: a regex search from `start` would rescan the whole sentence so far at each
    skipped abbreviation, quadratic in a line of initials ("A. A. A. ...").
    """
    begin = end
    while begin > start and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:end]


def _is_abbreviation(text: str, sent_start: int, match: re.Match) -> bool:
    if text[match.start()] != ".":
        return False
    token = _last_word(text, sent_start, match.start()).lstrip("\"'“‘(").lower()
    # Initials ("J. K. Rowling") and known abbreviations ("Mr.", "U.S.") do not end sentences.
    return (len(token) == 1 and token.isalpha()) or token in ABBREVIATIONS


class Chunker:
    """Packs an article's sentences into chunks of at most `chunk_size` wordpieces."""

    def __init__(self, tokenize: Tokenize, chunk_size: int, chunk_overlap: int):
        self.tokenize = tokenize
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def chunk(self, article: Article) -> list[Chunk]:
        text = article.text
        sentences = [s for a, b in article.body_spans for s in split_sentences(text, a, b)]
        if not sentences:
            return []
        embed_title, title_tokens = self._embed_title(article.title)
        budget = self.chunk_size - SPECIAL_TOKENS - title_tokens
        offsets = self.tokenize([text[a:b] for a, b in sentences])
        pieces: list[tuple[int, int, int]] = []  # (start, end, tokens)
        for (a, b), token_offsets in zip(sentences, offsets, strict=True):
            pieces.extend(_fit(a, b, token_offsets, budget))
        return self._pack(article, pieces, budget, embed_title)

    def _embed_title(self, title: str | None) -> tuple[str | None, int]:
        """The headline to embed (cut to half the window at most) and its tokens + newline."""
        if not title:
            return None, 0
        offsets = self.tokenize([title])[0]
        most = (self.chunk_size - SPECIAL_TOKENS) // 2 - 1
        if len(offsets) <= most:
            return title, len(offsets) + 1
        return title[: offsets[most - 1][1]].rstrip(), most + 1

    def _pack(
        self,
        article: Article,
        pieces: list[tuple[int, int, int]],
        budget: int,
        embed_title: str | None,
    ) -> list[Chunk]:
        chunks: list[Chunk] = []
        current: list[tuple[int, int, int]] = []
        used = 0
        for piece in pieces:
            if current and used + piece[2] > budget:
                chunks.append(self._make(article, len(chunks), current, embed_title))
                current = self._overlap(current, budget - piece[2])
                used = sum(p[2] for p in current)
            current.append(piece)
            used += piece[2]
        if current:
            chunks.append(self._make(article, len(chunks), current, embed_title))
        return chunks

    def _overlap(self, previous: list[tuple[int, int, int]], room: int):
        kept: list[tuple[int, int, int]] = []
        total = 0
        for piece in reversed(previous):
            total += piece[2]
            if total > min(self.chunk_overlap, room):
                break
            kept.append(piece)
        # Never repeat the whole previous chunk: that would not move forward.
        if len(kept) == len(previous):
            kept = kept[:-1]
        return kept[::-1]

    @staticmethod
    def _make(
        article: Article,
        ordinal: int,
        pieces: list[tuple[int, int, int]],
        embed_title: str | None,
    ) -> Chunk:
        start, end = pieces[0][0], pieces[-1][1]
        return Chunk(
            article.source,
            ordinal,
            start,
            end,
            article.text[start:end],
            article.title,
            article.date,
            embed_title if embed_title != article.title else None,
        )


def _fit(start: int, end: int, token_offsets: list[tuple[int, int]], budget: int):
    """Yield (start, end, tokens) for one sentence, cut before a word start when over budget."""
    n = len(token_offsets)
    if n <= budget:
        yield start, end, n
        return
    i = 0
    while i < n:
        j = min(i + budget, n)
        if j < n:
            # Back off while token j continues the word of token j-1 (no gap between them).
            k = j
            while k > i + 1 and token_offsets[k][0] == token_offsets[k - 1][1]:
                k -= 1
            j = k if k > i + 1 else j
        piece_start = start + token_offsets[i][0] if i else start
        piece_end = start + token_offsets[j - 1][1] if j < n else end
        yield piece_start, piece_end, j - i
        i = j


def make_tokenize(tokenizer) -> Tokenize:
    """Adapt a Hugging Face fast tokenizer (`tokenizers.Tokenizer`) to `Tokenize`."""
    # tokenizer.json files often carry the model's padding and truncation: we want real counts.
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def tokenize(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    return tokenize
