"""newsbot's retrieval and reranking as llama-index pieces, for llama-index applications.

    NewsbotRetriever.from_settings()  -> BaseRetriever: hybrid retrieval over a newsbot index
    NewsbotReranker(top_n=...)        -> BaseNodePostprocessor: the ONNX cross-encoder
    passage_node(hit)                 -> NodeWithScore: one retrieved chunk as llama-index sees it

A llama-index application queries an index `newsbot index` built in a few lines:

    retriever = NewsbotRetriever.from_settings()
    engine = RetrieverQueryEngine.from_args(
        retriever, node_postprocessors=[NewsbotReranker()], llm=llm
    )
    engine.query("What did Stoltenberg say about Iran?")

A node is one chunk: its id is the chunk's id in Chroma, its text the chunk's exact text,
`start_char_idx`/`end_char_idx` (and `start`/`end` in its metadata) where that text stands in
the decoded article, `metadata` its `source` (the file, relative to the corpus folder; also the
node's `ref_doc_id`) and the article's `title` and `date` when it has them. The retriever's
score is newsbot's fused score; the reranker's, the cross-encoder's logit (the retrieval score
is kept in `metadata["retrieval_score"]`). `llm` numbers these same nodes for its prompt,
so there is one conversion of a retrieved chunk into LLM context.

Why these and not llama-index's own pieces (BENCHMARKS.md, the `eval` dev questions):
- Retrieval: a llama-index starter pipeline (`VectorStoreIndex` over Chroma, the same embedding
  model) put the expected article first for 0.271 of the questions and BM25 alone for 0.890;
  newsbot's chunks (sentence-packed to the model's 256-wordpiece window, where the starter's
  1024-token chunks are cut before embedding) and its fusion of vectors with BM25 scored by the
  union of both candidate lists (`retrieve`), reached 0.962. It also keeps BM25 in step
  with an index another process is changing, and prefers articles of a period the question
  names ("on 9 November 2022", "this week": `dates`), or else of the last weeks.
- Reranking: `SentenceTransformerRerank` needs torch and downloads its model on first use;
  this one is the int8 ONNX file installed with newsbot (`rerank`, ~11-17 ms a pair on two
  cores, no torch in the process). It reads the question with as much of a node as fits in
  128 wordpieces -- about the first half of a full chunk. newsbot's own answerer does not
  reorder chunks by it: ordering articles by the cross-encoder's score of their chunk put the
  expected article first for 0.79 of rtqa against 0.89 for retrieval's order, so the reading
  stage reranks *sentences* instead (`read`), and `llm` gives the LLM the passages in
  retrieval's order. The reranker is for applications that want fewer, answering nodes in a
  prompt.

Only this module imports llama-index's retrieval classes; nothing `newsbot ask` runs without
an LLM imports it (with one, `llm` does, after llama-index's core is loaded anyway).
"""

from __future__ import annotations

import datetime as dt
import operator

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from bot.answering.dates import question_days, recent_days
from bot.answering.retrieve import Hit, HybridRetriever
from bot.settings import BotSettings
from index.settings import load_settings

RERANK_TOP_N = 6  # as many passages as `llm` writes an answer from
# Offsets and scores mean nothing to a model reading (or embedding) the passage.
NOT_FOR_MODELS = ("start", "end", "retrieval_score")


def passage_node(hit: Hit) -> NodeWithScore:
    """A retrieved chunk as a llama-index node, scored by retrieval's fused score."""
    start, end = int(hit.meta["start"]), int(hit.meta["end"])
    metadata = {"source": hit.source}
    metadata.update({key: hit.meta[key] for key in ("title", "date") if hit.meta.get(key)})
    metadata.update(start=start, end=end)
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        start_char_idx=start,
        end_char_idx=end,
        excluded_llm_metadata_keys=list(NOT_FOR_MODELS),
        excluded_embed_metadata_keys=list(NOT_FOR_MODELS),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.source)},
    )
    return NodeWithScore(node=node, score=hit.score)


class NewsbotRetriever(BaseRetriever):
    """newsbot's hybrid retrieval (`retrieve`) over an index `newsbot index` built: the
    `similarity_top_k` best chunks by fused score, preferring articles of a date or period the
    question names (else of the last 30 days), and following the index as it is updated.

    `similarity_top_k` is a whole number, 1 or more; anything else is a ValueError here, at
    construction (a negative one would otherwise slice the ranking: every chunk but the last).
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        similarity_top_k: int = 8,
        callback_manager: CallbackManager | None = None,
    ):
        top_k = checked_top_k(similarity_top_k)
        super().__init__(callback_manager=callback_manager)
        self.retriever = retriever
        self.similarity_top_k = top_k

    @classmethod
    def from_settings(
        cls,
        settings: BotSettings | None = None,
        embedder=None,
        similarity_top_k: int | None = None,
    ) -> NewsbotRetriever:
        """Open the index the settings name (by default newsbot's own: environment and
        `.env`), checked to be one the embedder can query. Raises `NewsbotError`s that say
        what to do, e.g. to run `newsbot index` first."""
        settings = settings or load_settings(BotSettings)
        top_k = checked_top_k(settings.top_k if similarity_top_k is None else similarity_top_k)
        return cls(HybridRetriever.open(settings, embedder), top_k)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = query_bundle.query_str
        today = dt.date.today()
        days = question_days(question, today)
        hits = self.retriever.retrieve(
            question,
            self.similarity_top_k,
            days,
            recent=None if days else recent_days(today),
        )
        return [passage_node(hit) for hit in hits]


def checked_top_k(value: object) -> int:
    """`value` as a number of chunks to retrieve: a whole number, 1 or more (numpy's integers
    too), else a ValueError that says so."""
    try:
        top_k = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        top_k = None
    if top_k is None or top_k < 1:
        raise ValueError(f"similarity_top_k must be a whole number, 1 or more, not {value!r}")
    return top_k


class NewsbotReranker(BaseNodePostprocessor):
    """Orders nodes by the cross-encoder's logit (higher: answers the question better) and
    keeps the best `top_n`; each node's score becomes that logit."""

    top_n: int = Field(default=RERANK_TOP_N, ge=1, description="nodes kept, best first")
    _scorer = PrivateAttr()

    def __init__(self, top_n: int = RERANK_TOP_N, scorer=None, **kwargs):
        """`scorer.score(question, texts)` gives one score per text: by default the process's
        shared cross-encoder, loaded on first use."""
        super().__init__(top_n=top_n, **kwargs)
        if scorer is None:
            from bot.answering.rerank import SharedReranker

            scorer = SharedReranker()
        self._scorer = scorer

    @classmethod
    def class_name(cls) -> str:
        return "NewsbotReranker"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("NewsbotReranker needs the question: pass query_bundle or query_str")
        if not nodes:
            return []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
            scores = self._scorer.score(query_bundle.query_str, texts)
            reranked = [
                _rescored(node, float(score))
                for node, score in sorted(zip(nodes, scores, strict=True), key=lambda p: -p[1])
            ][: self.top_n]
            event.on_end(payload={EventPayload.NODES: reranked})
        return reranked


def _rescored(node: NodeWithScore, score: float) -> NodeWithScore:
    node.node.metadata["retrieval_score"] = node.score
    for excluded in (node.node.excluded_llm_metadata_keys, node.node.excluded_embed_metadata_keys):
        if "retrieval_score" not in excluded:  # a node from another retriever
            excluded.append("retrieval_score")
    node.score = score
    return node
