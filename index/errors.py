"""The errors newsbot shows to people.

Every error a user can cause or fix derives from ``NewsbotError``; its message is safe to show
as it is (no paths to secrets, no tracebacks) and says what to do next. The CLI prints it as
one line and exits non-zero; the Telegram bot logs it and sends a short apology instead.

    NewsbotError
    ├── SettingsError        a setting has an invalid value (names the variable), or the
    │                        settings file cannot be read; raised when settings are read
    ├── IndexMissingError    no index yet: run `newsbot index`
    ├── IndexMismatchError   index built with another model or chunking: `newsbot index --rebuild`
    ├── IndexBusyError       another indexer holds the lock
    ├── EmbeddingModelError  the embedding model cannot be loaded
    ├── ArticleFileError     one file of the corpus folder cannot be indexed (empty, binary,
    │                        unreadable, a link out of the folder); `reason` says why. The
    │                        build catches it and reports the file as skipped, and goes on
    └── StoreError           Chroma cannot be reached, opened, read or written (damaged,
        │                    read-only, disk full); the message says what to do
        └── IndexChangedError  rows, or the collection, went while being read (an indexer
                             at work); readers look again (a user sees it only if that
                             keeps happening)

The answerer adds its own, defined where they are raised (bot imports index, never the other way):

    NewsbotError
    ├── bot.answering.answer.QuestionError    the question cannot be asked as it is (empty,
    │                                         too long): front ends show it as a polite reply
    ├── bot.answering.nlp.LanguageModelError  spaCy or its English pipeline cannot be loaded
    └── bot.answering.rerank.RerankerError    the cross-encoder's files are missing or altered

Not an error, and so outside the hierarchy: `bot.answering.llm.LLMUnusable` carries the notice
shown when an LLM's reply cannot be used; the answer falls back to the extractive one, a result.

Two errors a user can cause are not ours, and the CLI (`bot.cli.main.main`) says them in one line
too: a pydantic ``ValidationError`` that did not come through `load_settings` (named like a
`SettingsError`), and Ctrl-C (``KeyboardInterrupt``, status 130), which says what to do next.
"""


class NewsbotError(Exception):
    """An error whose message tells the user what went wrong and how to fix it."""


class SettingsError(NewsbotError):
    pass


class IndexMissingError(NewsbotError):
    pass


class IndexMismatchError(NewsbotError):
    pass


class IndexBusyError(NewsbotError):
    pass


class EmbeddingModelError(NewsbotError):
    pass


class StoreError(NewsbotError):
    pass


class IndexChangedError(StoreError):
    pass


class ArticleFileError(NewsbotError):
    """A file of the corpus folder that cannot be indexed; `reason` says why in a few words."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
