"""Open Chroma: embedded `PersistentClient` by default, `HttpClient` when a host is set.

The collection holds one record per chunk: id `<source>#<ordinal>`, the chunk text as the
document, and metadata `source`, `ordinal`, `start`, `end`, `title`, `date`, `day` (the date as
an integer YYYYMMDD so Chroma can filter ranges). Vectors come from our embedder
(`embedding_function=None`: Chroma never embeds), distances are cosine.

The collection's own metadata describes the index, so that any process reading it -- a bot on
another machine that shares a Chroma server included -- knows what it is looking at:

    newsbot_model      embedding model id that built it
    newsbot_chunking   "size/overlap" in wordpieces
    newsbot_generation bumped before and after every build that changes anything; readers
                       that see it change refresh what they derived (the BM25 side)
    newsbot_articles, newsbot_chunks, newsbot_date_min, newsbot_date_max, newsbot_built_at

We talk to chromadb directly rather than through llama-index's `ChromaVectorStore`: we need
our own ids and where-filters, and that class stores a JSON copy of every node beside the text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.chunking import Chunk
from index.errors import IndexMismatchError, IndexMissingError, StoreError
from index.settings import IndexSettings

log = logging.getLogger(__name__)

META_PREFIX = "newsbot_"
PAGE = 2000


@dataclass(frozen=True)
class IndexInfo:
    model: str
    chunking: str
    generation: int
    articles: int
    chunks: int
    date_min: str | None
    date_max: str | None
    built_at: float | None

    @classmethod
    def from_metadata(cls, meta: dict[str, Any] | None) -> IndexInfo:
        meta = meta or {}

        def get(key, default=None):
            value = meta.get(META_PREFIX + key, default)
            return None if value == "" else value

        return cls(
            model=get("model", ""),
            chunking=get("chunking", ""),
            generation=int(get("generation", 0)),
            articles=int(get("articles", 0)),
            chunks=int(get("chunks", 0)),
            date_min=get("date_min"),
            date_max=get("date_max"),
            built_at=get("built_at"),
        )


def chunking_id(settings: IndexSettings) -> str:
    return f"{settings.chunk_size}/{settings.chunk_overlap}"


def make_client(settings: IndexSettings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if settings.chroma_host:
            return chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
    except Exception as exc:
        where = (
            f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
            if settings.chroma_host
            else f"the index in {settings.chroma_dir}"
        )
        raise StoreError(
            f"Cannot open {where} ({type(exc).__name__}: {exc}). "
            "Check NEWSBOT_CHROMA_HOST/NEWSBOT_CHROMA_PORT, or NEWSBOT_STORE_DIR."
        ) from exc


class ChunkStore:
    """The Chroma collection of one index."""

    def __init__(self, settings: IndexSettings, client=None):
        self.settings = settings
        self.client = client or make_client(settings)
        self._collection = None

    # -- opening ---------------------------------------------------------------------------
    def open(self, create: bool = False):
        if self._collection is not None:
            return self._collection
        name = self.settings.collection
        try:
            if create:
                self._collection = self.client.get_or_create_collection(
                    name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
            else:
                self._collection = self.client.get_collection(name, embedding_function=None)
        except Exception as exc:
            if not create and _is_not_found(exc):
                raise IndexMissingError(
                    f"No index yet in {self._where()} — run `newsbot index` first."
                ) from None
            raise StoreError(f"Cannot open the index in {self._where()}: {exc}") from exc
        return self._collection

    def reopen(self) -> None:
        """See writes made by other processes since this store was opened.

        An embedded Chroma client keeps the vector index of a folder in memory and shares it
        per process (one `System` per path), so it never sees what another process (a
        `newsbot index` run) wrote. Dropping the shared system for our path makes the next
        client load the index from disk again; clients already holding the old one keep it.
        A Chroma server needs none of this.
        """
        if self.settings.chroma_host:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(str(self.settings.chroma_dir), None)
        self.client = make_client(self.settings)
        self._collection = None

    def _where(self) -> str:
        if self.settings.chroma_host:
            return f"Chroma at {self.settings.chroma_host}:{self.settings.chroma_port}"
        return str(self.settings.store_dir)

    def info(self) -> IndexInfo:
        """Fresh index metadata (re-read from Chroma, so other writers are seen)."""
        try:
            collection = self.client.get_collection(self.settings.collection)
        except Exception as exc:
            if _is_not_found(exc):
                raise IndexMissingError(
                    f"No index yet in {self._where()} — run `newsbot index` first."
                ) from None
            raise StoreError(f"Cannot read the index in {self._where()}: {exc}") from exc
        return IndexInfo.from_metadata(collection.metadata)

    def check_compatible(self, model_id: str, chunking: str) -> IndexInfo:
        info = self.info()
        if info.model and (info.model != model_id or info.chunking != chunking):
            raise IndexMismatchError(
                f"The index was built with model {info.model!r} and chunking {info.chunking}, "
                f"but the settings ask for {model_id!r} and {chunking}. "
                "Run `newsbot index --rebuild` to rebuild it."
            )
        return info

    def update_meta(self, **values: Any) -> None:
        collection = self.open(create=True)
        meta = dict(self.client.get_collection(self.settings.collection).metadata or {})
        meta.update({META_PREFIX + k: ("" if v is None else v) for k, v in values.items()})
        collection.modify(metadata=meta)

    def reset(self) -> None:
        """Drop the collection and start an empty one."""
        try:
            self.client.delete_collection(self.settings.collection)
        except Exception as exc:
            if not _is_not_found(exc):
                raise
        self._collection = None
        self.open(create=True)

    # -- writing ---------------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        collection = self.open(create=True)
        step = min(PAGE, self.client.get_max_batch_size())
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            collection.upsert(
                ids=[c.chunk_id for c in part],
                embeddings=vectors[i : i + step],
                documents=[c.text for c in part],
                metadatas=[chunk_metadata(c) for c in part],
            )

    def delete_sources(self, sources: Sequence[str]) -> None:
        collection = self.open(create=True)
        for i in range(0, len(sources), 100):
            part = list(sources[i : i + 100])
            where = {"source": part[0]} if len(part) == 1 else {"source": {"$in": part}}
            collection.delete(where=where)

    # -- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        return self.open().count()

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[dict]:
        collection = self.open()
        result = collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            {"id": i, "text": d, "meta": m, "distance": dist}
            for i, d, m, dist in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    def get_records(self, ids: Sequence[str], embeddings: bool = False) -> list[dict]:
        """The chunk records of `ids`, in that order (missing ids are left out)."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        page = self.open().get(ids=list(ids), include=include)
        vectors = page["embeddings"] if embeddings else [None] * len(page["ids"])
        found = {
            i: {"id": i, "text": d, "meta": m, "vector": v}
            for i, d, m, v in zip(
                page["ids"], page["documents"], page["metadatas"], vectors, strict=True
            )
        }
        return [found[i] for i in ids if i in found]

    def iter_all(self, include_documents: bool = True) -> Iterator[dict]:
        """Every chunk record, page by page."""
        collection = self.open()
        include = ["metadatas", "documents"] if include_documents else ["metadatas"]
        offset = 0
        while True:
            page = collection.get(include=include, limit=PAGE, offset=offset)
            ids = page["ids"]
            if not ids:
                return
            docs = page["documents"] if include_documents else [None] * len(ids)
            for i, d, m in zip(ids, docs, page["metadatas"], strict=True):
                yield {"id": i, "text": d, "meta": m}
            offset += len(ids)


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    return {
        "source": chunk.source,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "title": chunk.title or "",
        "date": chunk.date or "",
        "day": int(chunk.date.replace("-", "")) if chunk.date else 0,
    }


def _is_not_found(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "notfound" in text or "does not exist" in text or "not found" in text


def now() -> float:
    return round(time.time(), 3)
