"""What an answer is: `Answer`, `Quote`, `Passage`, `DirectAnswer`, and the index facts front
ends show.

Both front ends receive an `Answer` from `Answerer.answer(question, history)` and render it
their own way (`bot.cli.render` for terminals, `bot.telegram.formatting` for Telegram HTML,
both with the labels and counts of `wording`), branching on its `kind`:

- `quotes`: sentences quoted from the articles ("what did X say about Y", "why ...");
- `direct`: the same, led by the answer itself -- a short phrase cut from one of the quotes --
  and how many articles give it (`direct`; more than one entry when the articles disagree);
- `llm`: an LLM's cited prose, every sentence checked against what it cites (`support`),
  with the sentences of the passages that support it as `quotes`;
- `refusal`: no answer; `text` says why, plainly, and `passages` still holds what was read.

Every quote is at most `policy.Policy.max_quote_chars` long as shown (`Quote.shown`, which
marks a cut with "…"); its `text` is always verbatim at its offsets.

`history` is the list of earlier `Answer`s of the conversation, oldest first; each remembers
its question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Quote:
    """Verbatim text of `source` at [start, end) of its decoded text; checked before shown.

    A sentence too long to quote whole is quoted in a piece cut at word boundaries: `text` is
    still verbatim, and `shown` -- what front ends print -- marks the cut with "…"."""

    text: str
    source: str
    start: int
    end: int
    title: str | None = None
    date: str | None = None
    # Keyword-only, so that `Passage`'s positional `score` stays where it was.
    cut_before: bool = field(default=False, kw_only=True)
    cut_after: bool = field(default=False, kw_only=True)

    @property
    def shown(self) -> str:
        return f"{'…' * self.cut_before}{self.text}{'…' * self.cut_after}"


@dataclass(frozen=True)
class Passage(Quote):
    """A retrieved chunk as an answer keeps it (`retrieve.Hit.passage`: same fields as a
    quote, plus its retrieval score): what `/sources` shows behind an answer."""

    score: float = 0.0


@dataclass(frozen=True)
class DirectAnswer:
    """The answer phrase, verbatim at its offsets in `phrase.source` like every quote, and
    every article that gives the same answer (`phrase.source` first)."""

    phrase: Quote
    sources: tuple[str, ...]

    @property
    def text(self) -> str:
        return self.phrase.text


ANSWER_KINDS = ("quotes", "direct", "llm", "refusal")


@dataclass
class Answer:
    question: str
    text: str
    quotes: list[Quote] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    refused: bool = False
    kind: str = ""  # one of ANSWER_KINDS; left empty, it follows from `refused` and `direct`
    direct: list[DirectAnswer] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    notice: str | None = None
    standalone_question: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = "refusal" if self.refused else "direct" if self.direct else "quotes"
        if self.kind not in ANSWER_KINDS:
            raise ValueError(f"unknown answer kind {self.kind!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IndexStats:
    articles: int
    chunks: int
    date_min: str | None
    date_max: str | None
    built_at: float | None
    current: bool | None = None  # None: not checked (e.g. a shared Chroma server)

    def describe(self) -> str:
        dates = ""
        if self.date_min and self.date_max:
            same = self.date_min == self.date_max
            dates = f", dated {self.date_min}" + ("" if same else f" to {self.date_max}")
        state = {True: "index up to date", False: "index out of date", None: ""}[self.current]
        return f"{self.articles} articles{dates}" + (f"; {state}" if state else "")
