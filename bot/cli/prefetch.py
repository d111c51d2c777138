"""A one-shot question retrieves in a forked process while this one loads the reading models.

    retriever = prefetch(settings, question, asked_on)   # None where fork is not available
    make_answerer(settings, retriever=retriever).answer(question, [], asked_on)
    retriever.close()

`newsbot ask` answers one question and exits, so nearly all of its time is start-up, and it
falls in two parts that need nothing from each other: importing chromadb, opening the index
and embedding the question (~1.3 s of CPU), and importing spaCy, loading its pipeline and the
reranker (~1.7 s). Both are mostly Python, so threads take turns on the GIL and one core does
all of it; a forked child does the first part on the other core while this process does the
second (`preload`), which took a cold `newsbot ask` from ~3.7 s to ~2.6 s on 2 cores (see
BENCHMARKS.md).

The answer is the same as without the child. The child retrieves what the answer would ask
for (`bot.answering.answer.retrieval_request`) with the period read from the question's words
alone (`bot.answering.dates.find_period`), since it has no parse; `retrieve` hands its hits over
only when the answer, after the parse, asks for exactly that request, and otherwise retrieves
here, as it would have without the child. The same goes for a child that failed (an index that does
not exist, a model mismatch: the error is then raised here, where the front end reports it)
or died. BM25's counts, which the reading stage weighs words with, are loaded here from the
state the child brought up to date, and only if it is of the generation the child retrieved
from.

Fork is used only while this process is still plain Python: before it starts a thread and
before it loads a library that runs native threads of its own (chromadb's Rust core, ONNX
Runtime, tokenizers, torch), whose locks a child would inherit held and whose threads it would
not inherit at all -- a child forked after chromadb was opened hangs in it. `newsbot ask`
calls `prefetch` first thing; anywhere else it declines and the question is retrieved here.
The child leaves with `os._exit` (multiprocessing does that), running none of this process's
clean-up. It never outlives this process: the kernel kills it when its parent dies
(PR_SET_PDEATHSIG, on Linux), however the parent ends -- SIGTERM, SIGKILL, a closed terminal --
and it ignores Ctrl-C, which this process answers (SIGINT is blocked while it forks, so a
Ctrl-C at that moment is raised here, after the fork, and not inside a fork hook).

Chat and Telegram keep one process that loads everything once and answers many questions;
this is for one-shot questions only.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)
NATIVE_THREADS = {"chromadb", "chromadb_rust_bindings", "onnxruntime", "tokenizers", "torch"}


def prefetch(settings, question: str, asked_on: dt.date) -> PrefetchedRetriever | None:
    """Start retrieving `question` in a child process; None where processes cannot fork or
    the question will be refused unread (empty, too long)."""
    question = " ".join(question.split())
    if not question or len(question) > settings.max_question_chars:
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if threading.active_count() > 1 or NATIVE_THREADS & sys.modules.keys():
        return None  # a forked child could inherit a lock some thread holds, and hang
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_retrieve,
        args=(settings, question, asked_on, sender, receiver, os.getpid()),
        name="newsbot-retrieve",
    )
    child.daemon = True
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child.start()
    finally:
        sender.close()  # so that a child that dies without a word reads as EOF here
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C meanwhile is raised now
    return PrefetchedRetriever(settings, question, asked_on, child, receiver)


def _retrieve(settings, question: str, asked_on: dt.date, sender, receiver, parent: int) -> None:
    """In the child: retrieve as `Answerer.answer` will ask, and send the hits back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards one pending from the fork, too
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    receiver.close()  # the parent's end: with it closed here, only the parent reads the pipe
    _die_with(parent)
    try:
        from bot.answering.answer import retrieval_request
        from bot.answering.dates import find_period
        from bot.answering.retrieve import HybridRetriever

        request = retrieval_request(
            question, (), find_period(question, asked_on), asked_on, settings
        )
        retriever = HybridRetriever.open(settings)
        hits = retriever.retrieve(
            request.question,
            request.k,
            request.days,
            list(request.query_words),
            recent=request.recent,
        )
        sender.send(
            _Result(request, hits, retriever.info(), retriever.model_id, retriever.generation)
        )
    except BaseException as exc:  # said again by the parent, which then retrieves itself
        log.debug("retrieving in a child process failed: %r", exc)
        sender.send(None)
    finally:
        sender.close()


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when `parent` ends (Linux); leave if it has already."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent closes it when it can
        log.debug("cannot tie the retrieval child to its parent", exc_info=True)
    if os.getppid() != parent:  # it died before the tie was made
        os._exit(0)


@dataclass
class _Result:
    request: Any  # bot.answering.answer.Retrieval
    hits: list  # [bot.answering.retrieve.Hit]
    info: Any  # index.store.IndexInfo
    model_id: str
    generation: int | None


class PrefetchedRetriever:
    """HybridRetriever's interface over what the child retrieved, or over a retriever opened
    here when the child's hits do not fit the question as parsed."""

    def __init__(self, settings, question: str, asked_on: dt.date, child, receiver):
        self.settings = settings
        self.question = question
        self.asked_on = asked_on
        self._child = child
        self._receiver = receiver
        self._result_lock = threading.Lock()
        self._received = False
        self._result: _Result | None = None

    # -- what the Answerer uses ----------------------------------------------------------------
    def retrieve(self, question, k, days=None, query_words=None, recent=None):
        from bot.answering.answer import Retrieval
        from index.lexical import words

        result = self._usable()
        wanted = Retrieval(
            question,
            k,
            days,
            tuple(query_words if query_words is not None else words(question)),
            recent,
        )
        if result is not None and wanted == result.request:
            return result.hits
        if result is not None:
            log.debug("the parse asks another retrieval than the child's; retrieving here")
        return self.local.retrieve(question, k, days, query_words, recent)

    @property
    def bm25(self):
        return self._bm25 if self._usable() is not None else self.local.bm25

    def info(self):
        result = self._usable()
        return result.info if result is not None else self.local.info()

    @property
    def model_id(self) -> str:
        result = self._usable()
        return result.model_id if result is not None else self.local.model_id

    @property
    def generation(self) -> int | None:
        """The index generation the hits come from."""
        result = self._usable()
        return result.generation if result is not None else self.local.generation

    def sync(self) -> bool:
        return self.local.sync()

    @property
    def embedder(self):
        return self.local.embedder

    @property
    def store(self):
        return self.local.store

    def close(self) -> None:
        """End the child: it has sent its result by now, or its result is not wanted."""
        if not self._received:  # a Ctrl-C or an error before retrieval: stop it now
            self._child.kill()
        self._receiver.close()
        self._child.join(timeout=5)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()

    # -- inside ----------------------------------------------------------------------------------
    @cached_property
    def local(self):
        """Retrieval in this process, as without the child."""
        from bot.answering.retrieve import HybridRetriever

        return HybridRetriever.open(self.settings)

    @cached_property
    def _bm25(self):
        from index.lexical import BM25Index, cache_path

        return BM25Index.load(cache_path(self.settings.store_dir))

    def _usable(self) -> _Result | None:
        """The child's result, once it is in, if BM25's saved counts match what it read."""
        with self._result_lock:
            if not self._received:
                self._received = True
                try:
                    result = self._receiver.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None and self._bm25.generation != result.generation:
                    log.debug("BM25's saved state is not the child's; retrieving here")
                    result = None
                self._result = result
            return self._result
