"""Load the reading stage's models in a thread while the rest of a front end starts.

    preload_models(settings) -> Thread

spaCy (~1.5 s to import, ~0.8 s to load) and the reranker (~0.4 s) load in the order an answer
needs them, while the main thread imports chromadb, opens the index and embeds the question;
their first use waits for them (each loader holds a lock while it works). This module imports
nothing heavy itself, so a front end can start the thread before its own imports. Measured on
a cold `newsbot ask` over corpus/: 3.7 s without, see BENCHMARKS.md for the figure with.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def preload_models(settings) -> threading.Thread:
    # One thread, spaCy first (the question is parsed first): measured faster than a thread
    # per model, which fight over the GIL (3.0 s against 3.5 s for a cold `newsbot ask`).
    def load() -> None:
        from bot.answering import nlp
        from index.errors import NewsbotError

        try:
            nlp.load()
            if settings.rerank:
                from bot.answering.rerank import CrossEncoder

                CrossEncoder.shared()
        except NewsbotError:
            log.debug("preloading the models failed", exc_info=True)  # their first use says why

    thread = threading.Thread(target=load, name="models-preload", daemon=True)
    thread.start()
    return thread
