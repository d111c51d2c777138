"""bot.answering.llamaindex: newsbot's retriever and reranker as llama-index pieces, over real
Chroma.

Unit tests index the small corpus with the deterministic `hashing` embedder and rerank with
the real cross-encoder; the integration test runs the README's lines -- a llama-index
`RetrieverQueryEngine` with llama-index's `MockLLM` -- over an index built with the bundled
model, and `newsbot ask` is run once to show it never imports the adapters.
"""

from __future__ import annotations

import datetime as dt

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from bot.answering.dates import recent_days
from bot.answering.llamaindex import NewsbotReranker, NewsbotRetriever
from bot.answering.rerank import CrossEncoder
from bot.answering.retrieve import HybridRetriever
from bot.settings import BotSettings
from index.articles import read_source_text
from index.build import build_index
from index.embeddings import make_embedder
from index.errors import NewsbotError
from index.store import ChunkStore

DRONES = "Who supplied drones to Russia?"


@pytest.fixture
def indexed(make_settings) -> BotSettings:
    """The small corpus, indexed with the hashing embedder."""
    settings = make_settings(BotSettings)
    build_index(settings, embedder=make_embedder(settings))
    return settings


def test_nodes_are_the_indexed_chunks_with_offsets_and_fused_scores(indexed):
    retriever = NewsbotRetriever.from_settings(indexed)
    nodes = retriever.retrieve(DRONES)

    chunk_ids = {record["id"] for record in ChunkStore(indexed).iter_all()}
    assert nodes[0].node.metadata["source"] == "drones.txt"
    assert len(nodes) == len(chunk_ids) <= indexed.top_k
    for found in nodes:
        node, meta = found.node, found.node.metadata
        assert node.node_id in chunk_ids and node.ref_doc_id == meta["source"]
        text = read_source_text(indexed.corpus_dir, meta["source"])
        assert text[meta["start"] : meta["end"]] == node.text
        assert (node.start_char_idx, node.end_char_idx) == (meta["start"], meta["end"])
    assert nodes[0].node.metadata["title"] == "Iran sends drones to Russia"
    assert nodes[0].node.metadata["date"] == "2022-11-01"
    economy = next(n.node for n in nodes if n.node.metadata["source"] == "world/economy.txt")
    assert "date" not in economy.metadata  # an article without a date has none to show

    store = ChunkStore(indexed)
    store.open()
    hybrid = HybridRetriever(store, make_embedder(indexed))
    fused = hybrid.retrieve(DRONES, indexed.top_k, recent=recent_days(dt.date.today()))
    assert [(n.node_id, n.score) for n in nodes] == [(h.id, h.score) for h in fused]


def test_what_a_model_reads_of_a_node_is_its_text_title_and_date(indexed):
    [node] = [
        n.node for n in NewsbotRetriever.from_settings(indexed, similarity_top_k=1).retrieve(DRONES)
    ]
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert shown.startswith("source: drones.txt\ntitle: Iran sends drones to Russia\n")
    assert shown.endswith(node.text) and "start:" not in shown and "end:" not in shown


def test_a_date_in_the_question_prefers_articles_of_that_day(make_settings, workdir, write_article):
    corpus = workdir / "dated"
    body = "Drones hit power stations in Kyiv."
    write_article(corpus, "october.txt", f"{body} {body} Power went out.", date="2022-10-01")
    write_article(corpus, "november.txt", body, date="2022-11-02")
    settings = make_settings(BotSettings, corpus_dir=corpus)
    build_index(settings, embedder=make_embedder(settings))
    retriever = NewsbotRetriever.from_settings(settings)

    def sources(question: str) -> list[str]:
        return [n.node.metadata["source"] for n in retriever.retrieve(question)]

    assert sources("Drones hit power stations") == ["october.txt", "november.txt"]
    assert sources("Drones hit power stations on 2 November 2022") == [
        "november.txt",
        "october.txt",
    ]


def test_an_index_never_built_is_a_clear_error(make_settings):
    with pytest.raises(NewsbotError, match="newsbot index"):
        NewsbotRetriever.from_settings(make_settings(BotSettings))


# -- the reranker -----------------------------------------------------------------------------
def test_the_reranker_orders_by_the_cross_encoder_and_keeps_top_n(indexed):
    question = "Who won the derby?"
    retrieved = NewsbotRetriever.from_settings(indexed).retrieve(question)
    retrieval_scores = {n.node_id: n.score for n in retrieved}
    logits = CrossEncoder.shared().score(question, [n.node.text for n in retrieved])
    expected = sorted(
        zip(logits, (n.node_id for n in retrieved), strict=True), key=lambda p: -p[0]
    )[:2]

    reranked = NewsbotReranker(top_n=2).postprocess_nodes(retrieved, query_str=question)

    assert [(n.score, n.node_id) for n in reranked] == [(float(s), i) for s, i in expected]
    assert reranked[0].node.metadata["source"] == "football.txt"
    for node in reranked:
        assert node.node.metadata["retrieval_score"] == retrieval_scores[node.node_id]
        assert "retrieval_score" not in node.node.get_content(metadata_mode=MetadataMode.LLM)


def test_the_reranker_takes_nodes_of_any_retriever_and_needs_the_question():
    nodes = [
        NodeWithScore(node=TextNode(text="Inflation slowed in October."), score=0.9),
        NodeWithScore(node=TextNode(text="The striker scored twice in the derby."), score=0.2),
    ]
    reranker = NewsbotReranker(top_n=5)
    reranked = reranker.postprocess_nodes(nodes, QueryBundle("Who scored in the derby?"))

    assert [n.text for n in reranked] == [
        "The striker scored twice in the derby.",
        "Inflation slowed in October.",
    ]
    assert "retrieval_score" not in reranked[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert reranker.postprocess_nodes([], query_str="anything") == []
    with pytest.raises(ValueError, match="needs the question"):
        reranker.postprocess_nodes(nodes)


# -- a llama-index application ----------------------------------------------------------------
@pytest.mark.integration
def test_a_llama_index_query_engine_over_a_newsbot_index(
    workdir, make_settings, write_article, bundled_embedder, monkeypatch
):
    """The README's lines, over an index of three articles: retrieval puts the quiz that only
    repeats the question's words first, the cross-encoder the article that answers it."""
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    corpus = workdir / "news"
    write_article(
        corpus,
        "derby.txt",
        "A late goal from the striker won the derby for United on Saturday. "
        "Fans celebrated in the streets until midnight.",
        title="Late goal wins the derby",
        date="2022-10-15",
    )
    write_article(
        corpus,
        "quiz.txt",
        "Who won the derby in 1990, and who won the derby in 1991? "
        "Fans who won the derby quiz last year won tickets for the derby.",
        title="Who won the derby? A quiz",
        date="2022-10-14",
    )
    write_article(
        corpus,
        "drones.txt",
        "Iran has supplied hundreds of drones to Russia.",
        title="Iran sends drones to Russia",
        date="2022-11-01",
    )
    settings = make_settings(BotSettings, corpus_dir=corpus, embed_model="bundled")
    build_index(settings, embedder=bundled_embedder)
    for name, value in (("CORPUS_DIR", corpus), ("STORE_DIR", settings.store_dir)):
        monkeypatch.setenv(f"NEWSBOT_{name}", str(value))
    monkeypatch.setenv("NEWSBOT_EMBED_MODEL", "bundled")
    question = "Who won the derby?"

    retriever = NewsbotRetriever.from_settings()
    engine = RetrieverQueryEngine.from_args(
        retriever, node_postprocessors=[NewsbotReranker(top_n=2)], llm=MockLLM()
    )
    response = engine.query(question)

    retrieved = retriever.retrieve(question)
    assert [n.node.metadata["source"] for n in retrieved] == ["quiz.txt", "derby.txt", "drones.txt"]
    logits = CrossEncoder.shared().score(question, [n.node.text for n in retrieved])
    by_logit = sorted(zip(logits, retrieved, strict=True), key=lambda p: -p[0])[:2]
    assert [(n.node_id, n.score) for n in response.source_nodes] == [
        (n.node_id, float(logit)) for logit, n in by_logit
    ]
    assert [n.node.metadata["source"] for n in response.source_nodes] == ["derby.txt", "quiz.txt"]
    # MockLLM answers with the prompt it was given: the reranked passages, best first.
    prompt = str(response)
    assert prompt.index("A late goal from the striker") < prompt.index("Who won the derby in 1990")
    assert "Iran" not in prompt and "start:" not in prompt


@pytest.mark.slow
def test_newsbot_ask_never_imports_the_adapters(indexed, cli_env, run_newsbot):
    env = cli_env(corpus_dir=indexed.corpus_dir, store_dir=indexed.store_dir, embed_model="hashing")
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # every module imported, on stderr
    done = run_newsbot("ask", DRONES, env=env)

    assert done.returncode == 0 and "drones.txt" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "bot.answering.answer" in imported
    assert (
        "bot.answering.llamaindex" not in imported and "llama_index.core.retrievers" not in imported
    )
