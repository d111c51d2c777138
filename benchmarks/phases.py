"""One benchmark phase per child process: `python -m benchmarks.phases NAME 'PARAMS JSON'`.

Each phase prints one JSON object (its last line of output). The driver (`benchmarks.__main__`)
times the whole child and reads its peak memory; a phase times its own inner loop where the
figure is about that loop alone (the raw encode ceiling, per-question latency).

newsbot's side runs newsbot's own code: `index.build` / `newsbot index` (run by the driver),
`bot.answering.answer.Answerer`, and `bot.cli.evaluate.grade` for the quality figures, so they
are the figures `newsbot eval` prints. The contenders are what a user would otherwise write:
the LlamaIndex starter pipeline, and BM25 alone (bm25s) over newsbot's own 256-wordpiece chunks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

STARTER_COLLECTION = "starter"
BM25_CANDIDATES = 50


def _quiet() -> None:
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("chromadb", "httpx", "sentence_transformers", "llama_index"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _settings(**values):
    from bot.settings import BotSettings
    from index.settings import load_settings

    return load_settings(BotSettings, **values)


def newsbot_chunks(corpus: Path, settings) -> list:
    """The chunks newsbot makes of a corpus (its own chunker and settings)."""
    from index.articles import ArticleFileError, list_article_files, load_article
    from index.chunking import Chunker
    from index.embeddings import make_embedder

    embedder = make_embedder(settings)
    chunker = Chunker(
        embedder.tokenize, min(settings.chunk_size, embedder.max_tokens), settings.chunk_overlap
    )
    chunks = []
    for path in list_article_files(corpus):
        try:
            article = load_article(corpus, path)
        except ArticleFileError:
            continue
        chunks += chunker.chunk(article)
    return chunks


def embed_texts(corpus: Path, settings) -> tuple[list[str], int]:
    """The texts newsbot embeds for a corpus and their wordpieces in the model's window
    (special tokens included, cut at the window as the model cuts them)."""
    from index.embeddings import make_embedder

    texts = [chunk.embed_text for chunk in newsbot_chunks(corpus, settings)]
    return texts, window_tokens(texts, make_embedder(settings))


def window_tokens(texts: list[str], embedder) -> int:
    counts = embedder.tokenize(texts)
    return sum(min(len(c) + 2, embedder.max_tokens) for c in counts)


# -- phases --------------------------------------------------------------------------------
def phase_model(params: dict) -> dict:
    """Load newsbot's embedder as configured; exports the ONNX file the first time."""
    from index.embeddings import make_embedder

    started = time.perf_counter()
    embedder = make_embedder(_settings(embed_runtime=params.get("runtime", "auto")))
    embedder.embed_query("warm up")
    from index.embeddings import BULK_TEXTS

    return {
        "runtime": f"{embedder.documents_runtime(BULK_TEXTS)} for bulk documents, "
        f"{embedder.runtime} for queries",
        "seconds": round(time.perf_counter() - started, 3),
    }


def phase_ceiling(params: dict) -> dict:
    """Raw `SentenceTransformer.encode` over the texts newsbot embeds, same batch size: the
    ceiling. newsbot's own embedder (`Embedder.embed_documents`, the runtime it picks) runs over
    the same texts in the same process, slice by slice in turns with it, so that both see the
    same machine even when its load changes (other processes on a shared machine)."""
    from index.embeddings import bundled_model_dir, make_embedder

    settings = _settings(embed_runtime=params.get("runtime", "auto"))
    texts, tokens = embed_texts(Path(params["corpus"]), settings)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    embedder = make_embedder(settings)
    batch = settings.embed_batch_size
    model.encode(texts[:64], batch_size=batch, show_progress_bar=False)
    embedder.embed_documents(texts[:64])
    raw = ours = 0.0
    slices = max(1, min(params.get("slices", 4), len(texts)))
    for k in range(slices):
        part = texts[k::slices]  # every slice has the corpus's mix of lengths
        started = time.perf_counter()
        model.encode(part, batch_size=batch, show_progress_bar=False)
        raw += time.perf_counter() - started
        started = time.perf_counter()
        embedder.embed_documents(part)
        ours += time.perf_counter() - started
    return {
        "chunks": len(texts),
        "tokens": tokens,
        "seconds": round(raw, 3),
        "embedder_seconds": round(ours, 3),
        "embedder_runtime": embedder.documents_runtime(len(texts) // slices),
        "batch_size": batch,
        "torch_threads": _torch_threads(),
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def phase_newsbot_tokens(params: dict) -> dict:
    """Chunks and embedded wordpieces of newsbot's index of a corpus (for per-token rates)."""
    texts, tokens = embed_texts(Path(params["corpus"]), _settings())
    return {"chunks": len(texts), "tokens": tokens}


def _starter_parts(persist: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Settings, StorageContext
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from index.embeddings import bundled_model_dir

    Settings.llm = None
    embed_model = HuggingFaceEmbedding(model_name=str(bundled_model_dir()), device="cpu")
    client = chromadb.PersistentClient(
        path=str(persist), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection(STARTER_COLLECTION, embedding_function=None)
    vector_store = ChromaVectorStore(chroma_collection=collection)
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return embed_model, collection, vector_store, storage


def phase_starter_build(params: dict) -> dict:
    """The LlamaIndex starter: SimpleDirectoryReader -> VectorStoreIndex (default splitter)
    into Chroma, the bundled model through HuggingFaceEmbedding. The driver times the child."""
    import io
    from contextlib import redirect_stdout

    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex

    with redirect_stdout(io.StringIO()):  # "LLM is explicitly disabled. Using MockLLM."
        embed_model, collection, _, storage = _starter_parts(Path(params["persist"]))
    started = time.perf_counter()
    documents = SimpleDirectoryReader(
        params["corpus"], recursive=True, required_exts=[".txt"]
    ).load_data()
    VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    seconds = time.perf_counter() - started

    # What it embedded, for a per-token rate: the same splitter again, outside the clock.
    from llama_index.core.schema import MetadataMode

    from index.embeddings import Embedder

    nodes = Settings.node_parser.get_nodes_from_documents(documents)
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    return {
        "articles": len(documents),
        "chunks": collection.count(),
        "tokens": window_tokens(texts, Embedder("bundled")),
        "seconds": round(seconds, 3),
        "chunk_size": Settings.chunk_size,
    }


def _grade_table(items: list[dict], rows: list[dict], prepare: str | None) -> dict:
    from bot.cli.evaluate import grade, grade_sets, load_normalize

    normalize = load_normalize(prepare)
    table = grade_sets(items, rows, normalize)
    table.setdefault("all", grade(items, rows, normalize))
    return table


def _asked_on(item: dict) -> dt.date | None:
    return dt.date.fromisoformat(item["date"]) if item.get("date") else None


def phase_answer_latency(params: dict) -> dict:
    """A serving process: load the Answerer, then answer the questions one after another.
    Also each stage's share of the time (understand, retrieve, read) and the RSS once ready."""
    from bot.answering.answer import Answerer

    started = time.perf_counter()
    answerer = Answerer(_settings(corpus_dir=params["corpus"], store_dir=params["store"]))
    answerer.warm_up()
    ready = time.perf_counter() - started
    ready_rss = _rss_mb()
    seconds, refused, direct = [], 0, 0
    stages: dict[str, list[float]] = {"understand": [], "retrieve": [], "read": []}
    for question in params["questions"]:
        t = time.perf_counter()
        answer = answerer.answer(question, [])
        seconds.append(time.perf_counter() - t)
        refused += answer.refused
        direct += answer.kind == "direct"
        for stage, values in stages.items():
            values.append(answer.timings.get(stage, 0.0))
    from benchmarks.common import percentile

    total = sum(seconds) or 1.0
    return {
        "questions": len(seconds),
        "ready_seconds": round(ready, 3),
        "ready_rss_mb": ready_rss,
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "refused": refused,
        "direct": direct,
        "stages": {
            stage: {
                "median_ms": round(statistics.median(values) * 1000, 1),
                "share": round(sum(values) / total, 3),
            }
            for stage, values in stages.items()
        },
        "runtime": answerer.embedder.runtime,
    }


def phase_reading_on_off(params: dict) -> dict:
    """The same questions with the reading stage's reranker on and off, in turns, in one
    process: what the cross-encoder costs per answer on this machine."""
    from benchmarks.common import percentile
    from bot.answering.answer import Answerer

    settings = _settings(corpus_dir=params["corpus"], store_dir=params["store"])
    on = Answerer(settings)
    off = Answerer(settings.model_copy(update={"rerank": False}), embedder=on.embedder)
    on.warm_up()
    off.warm_up()
    times: dict[str, list[float]] = {"on": [], "off": []}
    for question in params["questions"]:
        for name, answerer in (("on", on), ("off", off)):
            t = time.perf_counter()
            answerer.answer(question, [])
            times[name].append(time.perf_counter() - t)
    result = {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        }
        for name, values in times.items()
    }
    result["questions"] = len(params["questions"])
    result["ratio"] = round(result["on"]["median_ms"] / max(result["off"]["median_ms"], 0.1), 2)
    return result


def phase_speakers(params: dict) -> dict:
    """Who speaks, two ways, on the polnear "what did X say about Y" questions: the patterns
    newsbot ranks with (`bot.answering.speakers.regex_speaker_score`) against the dependency
    parse (subjects of verbs of saying, `bot.answering.speakers.attributions`). Each ranks the
    same candidate sentences by topic coverage x (1 + speaker score) x chunk score^3; reported:
    how often the annotated sentence is first / in the top three, and the time each takes per
    question."""
    from bot.answering import nlp
    from bot.answering.answer import POLICY, Answerer
    from bot.answering.followup import condense
    from bot.answering.read import candidates, idf_weights, score_lexically
    from bot.answering.speakers import speaker_words
    from bot.cli.evaluate import load_normalize, load_questions
    from index.lexical import words

    normalize = load_normalize(params.get("prepare"))
    items = [i for i in load_questions(params["questions"]) if i["id"].startswith("polnear")]
    answerer = Answerer(_settings(corpus_dir=params["corpus"], store_dir=params["store"]))
    answerer.warm_up()
    ranks: dict[str, list[int]] = {"patterns": [], "parse": []}
    seconds: dict[str, float] = {"patterns": 0.0, "parse": 0.0}
    for item in items:
        parsed = condense(item["question"], ())
        query_words = words(parsed.standalone)
        hits = answerer.retriever.retrieve(parsed.standalone, POLICY.passages, None, query_words)
        sentences = candidates(hits[: POLICY.passages], POLICY.max_quote_chars)
        speaker = speaker_words(parsed.speaker)
        weights = idf_weights(answerer.retriever.bm25, query_words, parsed.topic, speaker)
        t = time.perf_counter()
        score_lexically(sentences, weights, speaker, POLICY.chunk_power)
        seconds["patterns"] += time.perf_counter() - t
        patterns = {id(s): s.lexical for s in sentences}
        t = time.perf_counter()
        by_parse = _parse_scores(sentences, speaker, nlp.parse_all([s.text for s in sentences]))
        seconds["parse"] += time.perf_counter() - t
        expected = [normalize(e) for e in item.get("expected_answers") or []]
        holds = [any(e in normalize(s.text) for e in expected) for s in sentences]
        for name, scores in (("patterns", patterns), ("parse", by_parse)):
            order = sorted(range(len(sentences)), key=lambda i: -scores[id(sentences[i])])
            ranks[name].append(next((r for r, i in enumerate(order) if holds[i]), 99))
    return {
        name: {
            "questions": len(values),
            "first": round(sum(r < 1 for r in values) / max(len(values), 1), 3),
            "top3": round(sum(r < 3 for r in values) / max(len(values), 1), 3),
            "ms_per_question": round(seconds[name] * 1000 / max(len(values), 1), 1),
        }
        for name, values in ranks.items()
    }


def _parse_scores(sentences, speaker, docs) -> dict[int, float]:
    """The lexical score with the speaker score read off the parse instead of the patterns."""
    from bot.answering.speakers import (
        MENTIONED,
        NAMED,
        NOBODY,
        REFERRED,
        SOMEONE_ELSE,
        attributions,
    )
    from index.lexical import words

    top = max((s.hit.score for s in sentences), default=1.0) or 1.0
    scores = {}
    for i, (s, doc) in enumerate(zip(sentences, docs, strict=True)):
        said = attributions(doc)
        before = [o.text for o in sentences[max(0, i - 2) : i] if o.hit is s.hit]
        before.append(s.hit.meta.get("title") or "")
        if not speaker:
            score = NOBODY
        elif any(a.words & speaker for a in said):
            score = NAMED
        elif any(a.kind != "name" for a in said) and any(
            speaker & set(words(text)) for text in before
        ):
            score = REFERRED
        elif speaker & set(words(s.text)):
            score = MENTIONED
        elif any(a.kind == "name" for a in said):
            score = SOMEONE_ELSE
        else:
            score = NOBODY
        scores[id(s)] = s.coverage * (1.0 + score) * (max(s.hit.score, 0.0) / top) ** 3.0
    return scores


def _rss_mb() -> float:
    """This process's resident memory now (not its peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def phase_quality_newsbot(params: dict) -> dict:
    from bot.answering.answer import Answerer
    from bot.cli.evaluate import load_questions

    items = load_questions(params["questions"])
    answerer = Answerer(_settings(corpus_dir=params["corpus"], store_dir=params["store"]))
    answerer.warm_up()
    rows = []
    for item in items:
        t = time.perf_counter()
        answer = answerer.answer(item["question"], [], asked_on=_asked_on(item))
        rows.append(
            {
                "cited": answer.sources,
                "retrieved": answer.retrieved,
                "answer": answer.text,
                "refused": answer.refused,
                "direct": [d.text for d in answer.direct],  # graded as `newsbot eval` does
                "seconds": time.perf_counter() - t,
            }
        )
    return {"table": _grade_table(items, rows, params.get("prepare"))}


def phase_quality_starter(params: dict) -> dict:
    """Retriever top 10 over the starter's index; its files in order. It has no answer text:
    the top chunk's text stands in for one (as for BM25), and it never refuses."""
    import io
    from contextlib import redirect_stdout

    from llama_index.core import VectorStoreIndex

    from bot.cli.evaluate import load_questions

    items = load_questions(params["questions"])
    corpus = Path(params["corpus"]).resolve()
    with redirect_stdout(io.StringIO()):
        embed_model, _, vector_store, _ = _starter_parts(Path(params["persist"]))
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=10)
    retriever.retrieve("warm up")
    rows = []
    for item in items:
        t = time.perf_counter()
        nodes = retriever.retrieve(item["question"])
        files = [_relative(n.node.metadata.get("file_path", ""), corpus) for n in nodes]
        rows.append(
            {
                "cited": [],
                "retrieved": list(dict.fromkeys(files)),
                "answer": nodes[0].node.get_content() if nodes else "",
                "refused": False,
                "seconds": time.perf_counter() - t,
            }
        )
    return {"table": _grade_table(items, rows, params.get("prepare"))}


def _relative(path: str, corpus: Path) -> str:
    try:
        return Path(path).resolve().relative_to(corpus).as_posix()
    except ValueError:
        return path


def phase_quality_bm25(params: dict) -> dict:
    """BM25 alone (bm25s, English stop words) over newsbot's chunks (headline + text), made
    here with newsbot's chunker: no index needed."""
    import bm25s

    from bot.cli.evaluate import load_questions

    items = load_questions(params["questions"])
    chunks = newsbot_chunks(Path(params["corpus"]), _settings())
    texts = [f"{c.title or ''}\n{c.text}" for c in chunks]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    rows = []
    for item in items:
        t = time.perf_counter()
        tokens = bm25s.tokenize(
            item["question"], stopwords="en", return_ids=False, show_progress=False
        )
        try:
            found, scores = retriever.retrieve(
                tokens, k=min(BM25_CANDIDATES, len(texts)), show_progress=False
            )
            ranked = [int(i) for i, s in zip(found[0], scores[0], strict=True) if s > 0]
        except (ValueError, KeyError):  # no query word is in the vocabulary
            ranked = []
        files = [chunks[i].source for i in ranked]
        rows.append(
            {
                "cited": [],
                "retrieved": list(dict.fromkeys(files)),
                "answer": chunks[ranked[0]].text if ranked else "",
                "refused": False,
                "seconds": time.perf_counter() - t,
            }
        )
    return {"table": _grade_table(items, rows, params.get("prepare")), "chunks": len(texts)}


PHASES = {
    "model": phase_model,
    "ceiling": phase_ceiling,
    "newsbot_tokens": phase_newsbot_tokens,
    "starter_build": phase_starter_build,
    "answer_latency": phase_answer_latency,
    "reading_on_off": phase_reading_on_off,
    "speakers": phase_speakers,
    "quality_newsbot": phase_quality_newsbot,
    "quality_starter": phase_quality_starter,
    "quality_bm25": phase_quality_bm25,
}


def main(argv: list[str]) -> int:
    _quiet()
    name, params = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = PHASES[name](params)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
