"""The Chroma collection of one index: its chunks, its metadata, and which collection it is.

The client comes from `index.clients` (embedded `PersistentClient` by default, `HttpClient`
when a host is set); failures become one-line errors through `index.failures`.

The collection holds one record per chunk: id `<source>#<version>#<ordinal>`, the chunk text as
the document, and metadata `source`, `version`, `ordinal`, `start`, `end`, `title`, `date`,
`day` (the date as an integer YYYYMMDD so Chroma can filter ranges). `version` is a short hash
of the file's bytes, so the chunks of a file's new version never overwrite those of the old
one: an indexer writes the new chunks first and deletes the old version's after, and a
question asked in between finds one or the other, never neither. (Chunks written before ids
carried a version keep their `<source>#<ordinal>` id until their file changes; they are an old
version like any other.) Vectors come from our embedder (`embedding_function=None`: Chroma
never embeds), distances are cosine.

The collection's own metadata describes the index, so that any process reading it -- a bot on
another machine that shares a Chroma server included -- knows what it is looking at:

    newsbot_model      embedding model id that built it
    newsbot_chunking   "size/overlap" in wordpieces
    newsbot_generation changes whenever readers should look again: after new chunks are
                       written and before old ones are deleted, and at the end of a build;
                       readers that see it change reopen Chroma and refresh the BM25 side
    newsbot_articles, newsbot_chunks, newsbot_date_min, newsbot_date_max, newsbot_built_at

Which collection is the index: `NEWSBOT_COLLECTION` (say `newsbot`) names a family. The first
build makes the collection `newsbot` itself. `newsbot index --rebuild` builds a new one aside,
`newsbot.g<generation>`, while the old one keeps answering, then points the empty collection
`newsbot.active` at it (its metadata `newsbot_active` names the collection to read: one atomic
write) and drops the old one. Readers resolve that pointer whenever they look at the generation;
a reader whose collection vanished under it (`IndexChangedError`) resolves again and retries.

Every Chroma failure leaves this module as a `StoreError` of one line that says what is wrong
and what to do (`index.failures`): a damaged index (run `newsbot index --rebuild`), a read-only
one, a full disk, an unreachable server. Rows whose metadata or text is gone (deleted while a
query ran) are skipped, and `query` counts them in `Rows.vanished` so a reader can tell that it
should look again; a query that Chroma fails because a row went under it, or a collection
dropped under it, raises `IndexChangedError`, and the reader looks again.

We talk to chromadb directly rather than through llama-index's `ChromaVectorStore`: we need
our own ids and where-filters, and that class stores a JSON copy of every node beside the text.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.chunking import Chunk
from index.clients import make_client, reload_client
from index.embeddings import MODEL_IDS
from index.errors import (
    IndexChangedError,
    IndexMismatchError,
    IndexMissingError,
    StoreError,
)
from index.failures import store_failure
from index.settings import IndexSettings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "chroma.sqlite3"  # what an embedded Chroma folder holds once made

META_PREFIX = "newsbot_"
ACTIVE_KEY = META_PREFIX + "active"
POINTER_SUFFIX = ".active"
PAGE = 2000
RESOLVE_TRIES = 5  # a pointer that moves again while it is being followed
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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


class Rows(list):
    """Query rows; `vanished` counts rows deleted while the query ran (left out)."""

    vanished: int = 0


def mismatch(built_model, built_chunking, model: str, chunking: str) -> IndexMismatchError:
    """The error of an index built with another embedding model or chunking than asked for:
    rebuild, or -- for a model newsbot names, such as the fp32 `bundled` after the default
    became `bundled-int8` -- the setting that keeps the index as it is."""
    keep = ""
    setting = next((name for name, id_ in MODEL_IDS.items() if id_ == built_model), None)
    if built_model != model and built_chunking == chunking and setting:
        keep = f", or set NEWSBOT_EMBED_MODEL={setting} to keep it"
    return IndexMismatchError(
        f"The index was built with model {built_model!r} and chunking {built_chunking}, "
        f"but the settings ask for {model!r} and {chunking}. "
        f"Run `newsbot index --rebuild` to rebuild it{keep}."
    )


def chunking_id(settings: IndexSettings) -> str:
    return f"{settings.chunk_size}/{settings.chunk_overlap}"


def chunk_id(chunk: Chunk, version: str) -> str:
    return f"{chunk.source}#{version}#{chunk.ordinal}"


class ChunkStore:
    """The Chroma collection of one index (the active one, or one pinned by name)."""

    def __init__(self, settings: IndexSettings, client=None, name: str | None = None):
        self.settings = settings
        self._client = client  # made on first use: making an embedded one makes its folder
        self.pinned = name
        self.name: str | None = name
        self._collection = None

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    @client.setter
    def client(self, client) -> None:
        self._client = client

    # -- names -----------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.settings.collection

    @property
    def pointer_name(self) -> str:
        return self.family + POINTER_SUFFIX

    def is_ours(self, name: str) -> bool:
        """A data collection of this index's family (the first build's or a rebuild's)."""
        pattern = re.escape(self.family) + r"\.g\d+"
        return name == self.family or re.fullmatch(pattern, name) is not None

    def active_name(self) -> str:
        """The collection readers should read now: the pointer's target, else the family name."""
        if self.pinned:
            return self.pinned
        with self._calling("read"):
            try:
                pointer = self.client.get_collection(self.pointer_name)
            except Exception as exc:
                if _is_not_found(exc):
                    return self.family
                raise
        target = (pointer.metadata or {}).get(ACTIVE_KEY)
        return target if isinstance(target, str) and target else self.family

    # -- opening ---------------------------------------------------------------------------
    def open(self, create: bool = False):
        if self._collection is not None:
            return self._collection
        if not create and not self.settings.chroma_host and not self._embedded_store_exists():
            raise self._missing()  # and do not make one: the folder may be a typo
        for _ in range(RESOLVE_TRIES):
            name = self.active_name()
            try:
                with self._calling("open"):
                    if create:
                        collection = self.client.get_or_create_collection(
                            name,
                            embedding_function=None,
                            configuration={"hnsw": {"space": "cosine"}},
                        )
                    else:
                        collection = self.client.get_collection(name, embedding_function=None)
            except IndexChangedError:
                continue  # the pointer moved and its old target was dropped: follow it again
            self._collection, self.name = collection, name
            return collection
        raise self._missing()

    def exists(self) -> bool:
        """Is there an index to read (without creating one)?"""
        try:
            self.open()
        except IndexMissingError:
            return False
        return True

    def reopen(self) -> None:
        """See writes made by other processes since this store was opened, and follow the
        pointer again.

        An embedded Chroma client keeps the vector index of a folder in memory and shares it
        per process, so it never sees what another process (a `newsbot index` run) wrote: a
        new client that loads the folder from disk again takes its place (`index.clients`;
        other stores keep their clients). A Chroma server needs none of this.
        """
        self._collection = None
        self.name = self.pinned
        if not self.settings.chroma_host:
            self.client = reload_client(self.settings)

    def _where(self) -> str:
        if self.settings.chroma_host:
            return f"Chroma at {self.settings.chroma_host}:{self.settings.chroma_port}"
        return str(self.settings.store_dir)

    def _embedded_store_exists(self) -> bool:
        """Is anything where the embedded database would be? (Opening one creates it, which a
        mistyped NEWSBOT_STORE_DIR must not; a damaged one is opened, to say how it is.)"""
        store, chroma = self.settings.store_dir, self.settings.chroma_dir

        def absent(path) -> bool:
            return not path.exists() and not path.is_symlink()

        return not (absent(store) or (store.is_dir() and absent(chroma)))

    def _missing(self) -> IndexMissingError:
        return IndexMissingError(f"No index yet in {self._where()} — run `newsbot index` first.")

    def info(self) -> IndexInfo:
        """Fresh index metadata (re-read from Chroma, so other writers are seen)."""
        for _ in range(RESOLVE_TRIES):
            name = self.active_name()
            try:
                with self._calling("read"):
                    collection = self.client.get_collection(name)
            except IndexChangedError:
                continue
            return IndexInfo.from_metadata(collection.metadata)
        raise self._missing()

    def check_compatible(self, model_id: str, chunking: str) -> IndexInfo:
        info = self.info()
        if info.model and (info.model != model_id or info.chunking != chunking):
            raise mismatch(info.model, info.chunking, model_id, chunking)
        return info

    def update_meta(self, **values: Any) -> None:
        collection = self.open(create=True)
        with self._calling("write"):
            meta = dict(self.client.get_collection(self.name).metadata or {})
            meta.update({META_PREFIX + k: ("" if v is None else v) for k, v in values.items()})
            collection.modify(metadata=meta)

    @property
    def id(self) -> str:
        return str(self.open().id)

    # -- rebuilding aside ------------------------------------------------------------------
    def staging(self, generation: int) -> ChunkStore:
        """A new, empty collection of this family that readers do not see until `activate`."""
        name = f"{self.family}.g{generation}"
        staging = ChunkStore(self.settings, client=self.client, name=name)
        staging.open(create=True)
        return staging

    def activate(self, staging: ChunkStore) -> None:
        """Point readers at `staging` (one metadata write), then drop the collection they read
        before. Readers still on the old one find it gone, resolve the pointer and retry."""
        previous = self.active_name() if self.exists() else None
        with self._calling("write"):
            pointer = self.client.get_or_create_collection(
                self.pointer_name, embedding_function=None
            )
            pointer.modify(metadata={ACTIVE_KEY: staging.name})
        self._collection, self.name = None, None
        if previous and previous != staging.name:
            self.drop(previous)

    def drop(self, name: str) -> None:
        try:
            with self._calling("write"):
                self.client.delete_collection(name)
        except IndexChangedError:
            pass  # already gone
        except StoreError as exc:  # left for the next build to drop
            log.warning("could not drop the old collection %s: %s", name, exc)
        self._remove_orphan_segments()

    def _remove_orphan_segments(self) -> None:
        """Embedded Chroma leaves the vector files of a dropped collection on disk: remove the
        folders of segments its database no longer lists (only indexers, holding the lock,
        make or drop collections, so none is being made meanwhile)."""
        if self.settings.chroma_host:
            return
        folder = self.settings.chroma_dir
        try:
            uri = f"{(folder / EMBEDDED_DATABASE).resolve().as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
                live = {row[0] for row in db.execute("SELECT id FROM segments")}
        except sqlite3.Error as exc:
            log.debug("cannot list Chroma's segments: %s", exc)
            return
        for path in folder.iterdir():
            if path.is_dir() and UUID.fullmatch(path.name) and path.name not in live:
                log.info("removing the files of a dropped collection: %s", path)
                shutil.rmtree(path, ignore_errors=True)

    def drop_strays(self) -> list[str]:
        """Drop the collections of this family that are not the index: one a rebuild that died
        was building, an old one that could not be dropped. (Only an indexer, holding the lock,
        calls this: no rebuild of this store is under way meanwhile.)"""
        active = self.active_name()
        with self._calling("read"):
            names = [getattr(c, "name", c) for c in self.client.list_collections()]
        strays = [n for n in names if self.is_ours(n) and n != active]
        for name in strays:
            log.info("dropping the leftover collection %s", name)
            self.drop(name)
        return strays

    # -- writing ---------------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray, versions: Mapping[str, str]):
        """Upsert chunks, each under the version of its file given in `versions`."""
        collection = self.open(create=True)
        step = min(PAGE, self.client.get_max_batch_size())
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            with self._calling("write"):
                collection.upsert(
                    ids=[chunk_id(c, versions[c.source]) for c in part],
                    embeddings=vectors[i : i + step],
                    documents=[c.text for c in part],
                    metadatas=[chunk_metadata(c, versions[c.source]) for c in part],
                )

    def delete_sources(self, sources: Sequence[str]) -> None:
        """Delete every chunk of these files."""
        collection = self.open(create=True)
        for i in range(0, len(sources), 100):
            part = list(sources[i : i + 100])
            where = {"source": part[0]} if len(part) == 1 else {"source": {"$in": part}}
            with self._calling("write"):
                collection.delete(where=where)

    def delete_other_versions(self, current: Mapping[str, tuple[str, int]]) -> int:
        """Delete the chunks of each file that are not of its current (version, chunk count):
        older versions, chunks of the old id scheme, ordinals past the end. Returns how many."""
        collection = self.open(create=True)
        sources = list(current)
        deleted = 0
        for i in range(0, len(sources), 100):
            part = sources[i : i + 100]
            where = {"source": part[0]} if len(part) == 1 else {"source": {"$in": part}}
            with self._calling("write"):
                rows = collection.get(where=where, include=["metadatas"])
            stale = []
            for row_id, meta in zip(rows["ids"], rows["metadatas"], strict=True):
                if meta is None:
                    continue  # being deleted already
                version, count = current[meta.get("source")]
                ordinal = meta.get("ordinal")
                if meta.get("version") != version or not (
                    isinstance(ordinal, int) and 0 <= ordinal < count
                ):
                    stale.append(row_id)
            for j in range(0, len(stale), PAGE):
                with self._calling("write"):
                    collection.delete(ids=stale[j : j + PAGE])
            deleted += len(stale)
        return deleted

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored (whole: with their text and metadata)."""
        found: set[str] = set()
        collection = self.open()
        for i in range(0, len(ids), PAGE):
            with self._calling("read"):
                page = collection.get(ids=list(ids[i : i + PAGE]), include=["metadatas"])
            pairs = zip(page["ids"], page["metadatas"], strict=True)
            found.update(chunk for chunk, meta in pairs if meta)
        return found

    # -- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        collection = self.open()
        with self._calling("read"):
            return collection.count()

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> Rows:
        collection = self.open()
        with self._calling("read"):
            result = collection.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32)],
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        rows = Rows()
        for i, d, m, dist in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            if m is None or d is None:
                rows.vanished += 1
                continue
            rows.append({"id": i, "text": d, "meta": m, "distance": dist})
        return rows

    def get_records(self, ids: Sequence[str], embeddings: bool = False) -> list[dict]:
        """The chunk records of `ids`, in that order (missing or vanishing ids are left out)."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        collection = self.open()
        with self._calling("read"):
            page = collection.get(ids=list(ids), include=include)
        vectors = page["embeddings"] if embeddings else [None] * len(page["ids"])
        found = {
            i: {"id": i, "text": d, "meta": m, "vector": v}
            for i, d, m, v in zip(
                page["ids"], page["documents"], page["metadatas"], vectors, strict=True
            )
            if m is not None and d is not None
        }
        return [found[i] for i in ids if i in found]

    def article_vectors(self, sources: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
        """The chunk vectors of each article of `sources`, keyed by (source, version): while
        an indexer replaces an article, the chunks of both versions are in the index."""
        if not sources:
            return {}
        collection = self.open()
        with self._calling("read"):
            page = collection.get(
                where={"source": {"$in": list(dict.fromkeys(sources))}},
                include=["metadatas", "embeddings"],
            )
        grouped: dict[tuple[str, str], list] = {}
        for meta, vector in zip(page["metadatas"], page["embeddings"], strict=True):
            if meta is not None and vector is not None:
                key = (str(meta.get("source")), str(meta.get("version")))
                grouped.setdefault(key, []).append(vector)
        found = {}
        for key, rows in grouped.items():
            try:
                found[key] = np.asarray(rows, dtype=np.float32)
            except ValueError:  # vectors of different lengths: a damaged store, left out
                log.warning("the vectors of %s in %s are damaged", key[0], self._where())
        return found

    def all_ids(self) -> list[str]:
        """The ids of every chunk, read at once (pages would shift under a concurrent delete)."""
        collection = self.open()
        with self._calling("read"):
            return list(collection.get(include=[])["ids"])

    def iter_all(self, include_documents: bool = True) -> Iterator[dict]:
        """Every chunk record, page by page (rows deleted meanwhile are left out)."""
        collection = self.open()
        include = ["metadatas", "documents"] if include_documents else ["metadatas"]
        offset = 0
        while True:
            with self._calling("read"):
                page = collection.get(include=include, limit=PAGE, offset=offset)
            ids = page["ids"]
            if not ids:
                return
            docs = page["documents"] if include_documents else [""] * len(ids)
            for i, d, m in zip(ids, docs, page["metadatas"], strict=True):
                if m is not None and d is not None:
                    yield {"id": i, "text": d if include_documents else None, "meta": m}
            offset += len(ids)

    # -- failures --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _calling(self, doing: str) -> Iterator[None]:
        """Turn whatever Chroma raises into a StoreError of one line (a collection that is
        gone into IndexChangedError, which readers handle by looking again)."""
        try:
            yield
        except StoreError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            if _is_vanished_row(exc) or (_is_not_found(exc) and self._replaced()):
                self._collection = None
                raise IndexChangedError(
                    f"The index in {self._where()} changed while it was being read; ask again "
                    "(if this keeps happening, run `newsbot index --rebuild`)."
                ) from exc
            raise store_failure(exc, self.settings, doing) from exc

    def _replaced(self) -> bool:
        """Is the collection we had open no longer the index (dropped after a rebuild), rather
        than damaged? (Its files vanish with it: Chroma may then say "nothing found".)"""
        if self._collection is None:
            return True  # it was being looked up: it is missing, whatever the reason
        try:
            current = self.client.get_collection(self.active_name())
        except Exception:  # noqa: BLE001 (missing, or unreadable: either way not ours any more)
            return True
        return str(current.id) != str(self._collection.id)


def chunk_metadata(chunk: Chunk, version: str) -> dict[str, Any]:
    return {
        "source": chunk.source,
        "version": version,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "title": chunk.title or "",
        "date": chunk.date or "",
        "day": int(chunk.date.replace("-", "")) if chunk.date else 0,
    }


def _is_not_found(exc: BaseException) -> bool:
    from chromadb.errors import NotFoundError

    # The vector files of a collection dropped meanwhile are reported without a type of their own.
    return isinstance(exc, NotFoundError) or "nothing found on disk" in str(exc).lower()


def _is_vanished_row(exc: BaseException) -> bool:
    """A row deleted while a query was reading it (an indexer in this process deleting an old
    version): Chroma's vector index still named it, its record was gone."""
    return "error finding id" in str(exc).lower()


def now() -> float:
    return round(time.time(), 3)
