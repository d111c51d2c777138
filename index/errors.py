"""The errors newsbot shows to people.

Every error a user can cause or fix derives from ``NewsbotError``; its message is safe to show
as it is (no paths to secrets, no tracebacks) and says what to do next. The CLI prints it as
one line and exits non-zero; the Telegram bot logs it and sends a short apology instead.

    NewsbotError
    ├── SettingsError        a setting has an invalid value (names the variable)
    ├── IndexMissingError    no index yet: run `newsbot index`
    ├── IndexMismatchError   index built with another model or chunking: `newsbot index --rebuild`
    ├── IndexBusyError       another indexer holds the lock
    ├── EmbeddingModelError  the embedding model cannot be loaded
    └── StoreError           Chroma cannot be reached, opened, read or written (damaged,
        │                    read-only, disk full); the message says what to do
        └── IndexChangedError  rows, or the collection, went while being read (an indexer
                             at work); readers look again (a user sees it only if that
                             keeps happening)

The answerer adds its own, defined where they are raised (bot imports index, never the other way):

    NewsbotError
    ├── bot.answer.QuestionError     the question cannot be asked as it is (empty, too long):
    │                                front ends show its message as a polite reply
    ├── bot.nlp.LanguageModelError   spaCy or its English pipeline cannot be loaded
    └── bot.rerank.RerankerError     the cross-encoder's files are missing or altered
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
