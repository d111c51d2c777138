"""Sentence splitting and chunks that fit the bundled model's window, counted by its tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from index.articles import load_article
from index.chunking import SPECIAL_TOKENS, Chunker, split_sentences
from index.embeddings import HashingEmbedder

EXAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "corpus"
WORDS = (
    "the minister said on Tuesday that talks with unions over pay and pensions would resume "
    "next week after weeks of strikes that closed schools hospitals and railway lines across "
    "the country while prices rose faster than wages in most regions"
).split()


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def write(folder: Path, name: str, text: str):
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return load_article(folder, path)


def generated_text(seed: int, paragraphs: int = 12) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sents = []
        for _ in range(rng.randint(1, 6)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
            sents.append(" ".join(words).capitalize() + rng.choice([".", ".", "!", "?"]))
        out.append(" ".join(sents))
    return "\n".join(out)


def token_count(tokenize, text: str) -> int:
    return len(tokenize([text])[0]) + SPECIAL_TOKENS


def check_chunks(article, chunks, tokenize, chunk_size):
    assert chunks, "an article with a body has at least one chunk"
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == article.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.source == article.source
        assert chunk.title == article.title and chunk.date == article.date
        assert chunk.chunk_id == f"{article.source}#{chunk.ordinal}"
        size = token_count(tokenize, chunk.embed_text)
        assert size <= chunk_size, f"chunk {chunk.ordinal} has {size} > {chunk_size} wordpieces"
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start < after.start and before.end < after.end
    # Every body sentence is inside some chunk, whole or (when cut) in order.
    covered = "".join(article.text[c.start : c.end] for c in chunks)
    for start, end in article.body_spans:
        for a, b in split_sentences(article.text, start, end):
            for word in article.text[a:b].split():
                assert word in covered


# -- sentences -------------------------------------------------------------------------------
def test_sentences_and_abbreviations():
    text = (
        "Mr. Smith went to Washington. He met the U.S. president on Monday. "
        "J. K. Rowling was there, e.g. at the back. Dr. Jones spoke at 10 a.m. today! "
        "Was it worth $3.5 billion? “Yes,” said Mrs. Brown. Prof. X agreed."
    )
    assert sentences(text) == [
        "Mr. Smith went to Washington.",
        "He met the U.S. president on Monday.",
        "J. K. Rowling was there, e.g. at the back.",
        "Dr. Jones spoke at 10 a.m. today!",
        "Was it worth $3.5 billion?",
        "“Yes,” said Mrs. Brown.",
        "Prof. X agreed.",
    ]


def test_quotes_and_brackets_stay_with_their_sentence():
    text = '"We will win." He smiled. (It was late.) She left… Then rain.'
    assert sentences(text) == [
        '"We will win."',
        "He smiled.",
        "(It was late.)",
        "She left…",
        "Then rain.",
    ]


def test_paragraphs_never_share_a_sentence():
    text = "A headline without a stop\nThe body starts here. It goes on\n\nAnother paragraph"
    assert sentences(text) == [
        "A headline without a stop",
        "The body starts here.",
        "It goes on",
        "Another paragraph",
    ]


def test_sentence_offsets_are_into_the_text():
    text = "xxx First one. Second one.\r\nThird one.  yyy"
    spans = split_sentences(text, 4, len(text) - 5)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one.", "Third one."]


# -- chunks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [256, 128, 64])
def test_example_articles_fit_the_window(bundled_tokenize, chunk_size):
    chunker = Chunker(bundled_tokenize, chunk_size, chunk_size // 4)
    for path in sorted(EXAMPLE_CORPUS.glob("*.txt")):
        article = load_article(EXAMPLE_CORPUS, path)
        check_chunks(article, chunker.chunk(article), bundled_tokenize, chunk_size)


@pytest.mark.parametrize("seed", range(6))
def test_generated_articles_fit_the_window(tmp_path, bundled_tokenize, seed):
    title = " ".join(WORDS[seed : seed + 8]).capitalize()
    article = write(tmp_path, "a.txt", f"{title}\ndate 2021-03-04 {generated_text(seed)}\n")
    for chunk_size, overlap in [(256, 48), (100, 20), (48, 0)]:
        chunks = Chunker(bundled_tokenize, chunk_size, overlap).chunk(article)
        check_chunks(article, chunks, bundled_tokenize, chunk_size)


def test_short_article_is_one_chunk_with_its_title(tmp_path, bundled_tokenize):
    article = write(tmp_path, "a.txt", "Storm hits\nWinds blew. Trees fell.\n")
    [chunk] = Chunker(bundled_tokenize, 256, 48).chunk(article)
    assert chunk.text == "Winds blew. Trees fell."
    assert chunk.embed_text == "Storm hits\nWinds blew. Trees fell."


def test_overlap_repeats_trailing_sentences(tmp_path, bundled_tokenize):
    article = write(tmp_path, "a.txt", "Headline\n" + generated_text(1, paragraphs=20) + "\n")
    chunks = Chunker(bundled_tokenize, 96, 30).chunk(article)
    assert len(chunks) > 3
    overlapped = 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        if after.start < before.end:
            overlapped += 1
            shared = article.text[after.start : before.end]
            assert before.text.endswith(shared) and after.text.startswith(shared)
            assert len(bundled_tokenize([shared])[0]) <= 30
    assert overlapped >= len(chunks) // 2


def test_no_overlap_when_it_is_zero(tmp_path, bundled_tokenize):
    article = write(tmp_path, "a.txt", "Headline\n" + generated_text(2, paragraphs=20) + "\n")
    chunks = Chunker(bundled_tokenize, 96, 0).chunk(article)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start > before.end


def test_giant_sentence_without_punctuation_is_cut(tmp_path, bundled_tokenize):
    rng = random.Random(7)
    words = [rng.choice(WORDS) for _ in range(3000)]
    article = write(tmp_path, "a.txt", "Headline\n" + " ".join(words) + "\n")
    chunks = Chunker(bundled_tokenize, 128, 16).chunk(article)
    check_chunks(article, chunks, bundled_tokenize, 128)
    assert len(chunks) > 10
    # Cut at word boundaries: no chunk starts or ends inside a word.
    for chunk in chunks:
        assert chunk.start == 0 or article.text[chunk.start - 1].isspace()
        assert article.text[chunk.end].isspace()


def test_giant_word_is_cut_anyway(tmp_path, bundled_tokenize):
    article = write(tmp_path, "a.txt", "Headline\nStart " + "ab1cd2" * 400 + " end.\n")
    chunks = Chunker(bundled_tokenize, 64, 8).chunk(article)
    check_chunks(article, chunks, bundled_tokenize, 64)


@pytest.mark.parametrize(
    "title",
    [
        " ".join(["Extraordinary"] * 14 + ["developments"] * 4),  # 247 characters
        " ".join(["Xq7-Zr9/Kp2"] * 20),  # 239 characters but 220 wordpieces
        "北京上海广州深圳" * 30,  # one "word", a wordpiece per character
    ],
)
def test_long_headline_still_fits(tmp_path, bundled_tokenize, title):
    article = write(tmp_path, "a.txt", f"{title}\n{generated_text(3)}\n")
    assert article.title == title
    for chunk_size in (32, 64, 96, 256):
        chunks = Chunker(bundled_tokenize, chunk_size, 8).chunk(article)
        check_chunks(article, chunks, bundled_tokenize, chunk_size)
        # The headline is cut for embedding only; what users see keeps it whole.
        assert all(c.title == title for c in chunks)
        assert all(c.embed_text.startswith(title[:5]) for c in chunks)


def test_hashing_tokenizer_counts_words(tmp_path):
    article = write(tmp_path, "a.txt", "Headline\n" + generated_text(4, paragraphs=30) + "\n")
    tokenize = HashingEmbedder.tokenize
    chunks = Chunker(tokenize, 64, 10).chunk(article)
    check_chunks(article, chunks, tokenize, 64)
