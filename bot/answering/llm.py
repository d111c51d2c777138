"""Optional LLM answers: the model writes from numbered passages, code keeps it honest.

    make_llm(settings)                                     -> llama-index LLM (openai-like, ollama)
    answer_with_llm(llm, extractive, hits, history, settings[, checker]) -> Answer

1. Condense: with history, the LLM rewrites the follow-up as a standalone question from the
   last few questions of the conversation (on an unusable reply, the extractive answerer's
   own standalone question is used).
2. Write: the top passages -- retrieval's chunks as the llama-index nodes a llama-index
   application gets from `llamaindex`, in retrieval's order (reordering chunks by the
   cross-encoder measured worse) -- each re-read from its file (`index.articles.ArticleTexts`)
   and numbered [n] with its source, go to the LLM, which must cite [n] after each claim or
   reply exactly `REFUSAL`.
3. Check the citations: citations of passages that were not given are removed, and so is every
   line that cites nothing (it would be a claim without a source), and any list of sources the
   model wrote itself.
4. Check the claims (`support`): the passages were written by others, and one may tell the
   model what to say. Each sentence is checked against the passages it cites (clause by
   clause when it cites more than once; a sentence without a citation against the next one's
   in its line, or the one before): the cross-encoder must read it in them, and its names and
   numbers must stand in them. A sentence they do not support is left out (the answer's
   `notice` says how many were); a citation of a passage that supports nothing it follows is
   dropped; a line where all is supported stays as the model wrote it. When nothing supported
   is left, the extractive answer is shown instead (step 5).
   Sources and quotes are built by code from the passages still cited, never from what the
   model says they are: each quote is the sentence (or two) of the passage that supported a
   claim, verbatim at its offsets in the file -- evidence, not the whole passage.
5. Fall back: if the LLM cannot be reached, is too slow, refuses, or writes nothing usable or
   supported, the extractive answer is returned unchanged but for a one-line `notice`.

Provider packages are optional extras, imported only inside their branch of `make_llm`. The
LLM is always built here from settings, so llama-index never falls back to its global
`Settings.llm` (OpenAI with an environment key).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from llama_index.core.llms import ChatMessage
from llama_index.core.schema import NodeWithScore, TextNode

from bot.answering.llamaindex import passage_node
from bot.answering.read import cut_marks
from bot.answering.rerank import SharedReranker
from bot.answering.retrieve import Hit
from bot.answering.support import Evidence, SupportCheck
from bot.answering.types import Answer, Quote
from bot.answering.wording import short_title
from bot.settings import BotSettings
from index.articles import ArticleTexts
from index.chunking import split_sentences
from index.errors import NewsbotError, SettingsError

log = logging.getLogger(__name__)

LLM_PASSAGES = 6  # passages numbered for the LLM
CONDENSE_TURNS = 3  # earlier questions shown when condensing a follow-up
CONTEXT_WINDOW = 8192  # tokens; 6 passages of 256 wordpieces and the prompt fit easily
MAX_ANSWER_TOKENS = 600
TEMPERATURE = 0.1

REFUSAL = "NOT IN THE PASSAGES"

ANSWER_SYSTEM = f"""\
You answer questions about news articles using only the numbered passages you are given,
never what you know from elsewhere.
After every sentence that states a fact, cite the passage it comes from as [n], for example
[2]; cite only the numbers of the passages given. Prefer the articles' own words. Be brief:
a few sentences, no introduction, no list of sources at the end.
If the passages do not contain the answer, reply exactly: {REFUSAL}"""

CONDENSE_SYSTEM = """\
Rewrite the user's follow-up question as one standalone question that can be understood
without the conversation: replace pronouns and vague references with the people, places and
topics they refer to. If it is already standalone, repeat it unchanged.
Reply with the question only, on one line."""

NOTICE_TIMEOUT = (
    "The language model did not answer in time; showing quotes from the articles instead."
)
NOTICE_UNREACHABLE = (
    "The language model could not be reached; showing quotes from the articles instead."
)
NOTICE_REFUSED = (
    "The language model found no answer in the passages; showing quotes from the articles instead."
)
NOTICE_UNUSABLE = (
    "The language model gave no usable answer; showing quotes from the articles instead."
)
NOTICE_UNSUPPORTED = (
    "The passages the language model cited do not support its answer; showing quotes from the "
    "articles instead."
)


def notice_left_out(sentences: int) -> str:
    """The notice of an LLM answer some of whose sentences were dropped as unsupported."""
    return (
        f"Left out {sentences} sentence{'s' * (sentences != 1)} of the language model's answer "
        "that the passages it cited do not support."
    )


# "[2]", "[1, 3]", "[1][3]", "[Passage 2]", "[passages 1 and 3]"; any number of digits, as
# every "[n]" left in the text is taken for a citation of a passage given
CITATION = re.compile(
    r"(?P<space>[ \t]*)\[(?:(?:passages?|source)\s*)?"
    r"(?P<numbers>\d+(?:\s*(?:,|;|and|&)\s*\d+)*)\]",
    re.I,
)
# A run of citations as `_cited_answer` writes them ("[1]", " [1][3]"), with the punctuation
# the model put after it ("... Russia [1].").
CITATION_RUN = re.compile(r"(?P<cites>(?:[ \t]*\[\d+\])+)(?P<after>[.,;:!?]*)")
CITATION_AFTER_STOP = re.compile(r"(?P<stop>[.!?]+)(?P<cites>(?:\[\d+\])+)(?=\s|$)")
SENTENCE_STOP = re.compile(r"[.!?…]*[\"'”’)\]]*$")
WORD = re.compile(r"[^\W\d_]")
LIST_MARKER = re.compile(r"^\s*(?:[-*•]\s+|\d{1,2}[.)]\s+)?")
THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
SOURCES_HEADING = re.compile(r"^\W*(sources|references|citations)\W*$", re.I)


class LLMUnusable(Exception):
    """The reply cannot be used; the message is the notice the user sees."""


# -- the factory ------------------------------------------------------------------------------
def make_llm(settings: BotSettings):
    """The LLM settings choose, configured to fail fast: one attempt, `llm_timeout` seconds."""
    # The URL and the model were checked when the settings were read (bot.settings).
    if settings.llm == "none":
        raise SettingsError("No LLM is configured: set NEWSBOT_LLM to openai-like or ollama.")
    base_url, model = settings.llm_base_url, settings.llm_model
    api_key = settings.llm_api_key.get_secret_value()

    if settings.llm == "openai-like":
        try:
            from llama_index.llms.openai_like import OpenAILike
        except ImportError:
            raise _missing("openai-like", "llama-index-llms-openai-like") from None
        if not urlsplit(base_url).path:
            base_url += "/v1"  # every OpenAI-compatible server serves /v1/chat/completions
        return OpenAILike(
            model=model,
            api_base=base_url,
            # The OpenAI client refuses to start without a key; local servers ignore it.
            api_key=api_key or "none",
            is_chat_model=True,
            is_function_calling_model=False,
            context_window=CONTEXT_WINDOW,
            max_tokens=MAX_ANSWER_TOKENS,
            temperature=TEMPERATURE,
            timeout=settings.llm_timeout,
            max_retries=0,  # retries would multiply the wait before the fallback
            reuse_client=True,
        )

    try:
        from llama_index.llms.ollama import Ollama
    except ImportError:
        raise _missing("ollama", "llama-index-llms-ollama") from None
    return Ollama(
        model=model,
        base_url=base_url,
        request_timeout=settings.llm_timeout,
        # Given, so that no extra /api/show request asks the server for it.
        context_window=CONTEXT_WINDOW,
        temperature=TEMPERATURE,
        additional_kwargs={"num_predict": MAX_ANSWER_TOKENS},
        is_function_calling_model=False,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
    )


def _missing(extra: str, package: str) -> NewsbotError:
    return NewsbotError(
        f'NEWSBOT_LLM={extra} needs the {package} package: pip install -e ".[{extra}]"'
    )


# -- answering --------------------------------------------------------------------------------
def answer_with_llm(
    llm,
    extractive: Answer,
    hits: list[Hit],
    history: Sequence[Answer],
    settings: BotSettings,
    checker: SupportCheck | None = None,
) -> Answer:
    """The LLM's cited answer, or `extractive` with a notice when the LLM cannot give one.

    `checker` judges whether a cited passage supports a sentence; by default the shared
    cross-encoder's (`NEWSBOT_RERANK=off`: the stricter word check)."""
    started = time.perf_counter()
    if checker is None:
        checker = SupportCheck(SharedReranker() if settings.rerank else None)
    try:
        question = extractive.question
        if history:
            question = _condense(llm, extractive, history, settings)
        texts = ArticleTexts(settings.corpus_dir)
        passages = _numbered_passages([passage_node(hit) for hit in hits], texts)
        if not passages:
            raise LLMUnusable(NOTICE_UNUSABLE)
        reply = _chat(llm, ANSWER_SYSTEM, _answer_prompt(question, passages))
        answer = _cited_answer(reply, passages, extractive, question, checker, texts)
    except Exception as exc:  # noqa: BLE001 - whatever the provider raises, the user gets quotes
        notice = str(exc) if isinstance(exc, LLMUnusable) else _notice_for(exc)
        log.warning("LLM answer not used (%s): %s", type(exc).__name__, exc)
        answer = dataclasses.replace(extractive, notice=notice, timings=dict(extractive.timings))
    answer.timings["llm"] = round(time.perf_counter() - started, 4)
    return answer


def _chat(llm, system: str, user: str) -> str:
    response = llm.chat(
        [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]
    )
    return THINKING.sub("", response.message.content or "").strip()


def _condense(llm, extractive: Answer, history: Sequence[Answer], settings: BotSettings) -> str:
    """A standalone question; a failed call is not retried (the answer call would wait again)."""
    fallback = extractive.standalone_question or extractive.question
    earlier = "\n".join(
        f"- {turn.standalone_question or turn.question}" for turn in history[-CONDENSE_TURNS:]
    )
    reply = _chat(
        llm,
        CONDENSE_SYSTEM,
        f"Earlier questions, oldest first:\n{earlier}\n\nFollow-up: {extractive.question}",
    )
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    if not lines:
        return fallback
    condensed = re.sub(r"^(standalone question|question)\s*:\s*", "", lines[0], flags=re.I)
    condensed = condensed.strip().strip("\"'“”").strip()
    if not condensed or len(condensed) > settings.max_question_chars or REFUSAL in condensed:
        return fallback
    return condensed


@dataclasses.dataclass(frozen=True)
class Numbered:
    """Passage [number] of the prompt: a retrieved chunk as llama-index's node of it
    (`llamaindex.passage_node`), plus the number it is cited by -- nothing else."""

    number: int
    node: TextNode

    @property
    def text(self) -> str:
        return self.node.text

    @property
    def quote(self) -> Quote:
        meta = self.node.metadata
        return Quote(
            self.node.text,
            meta["source"],
            self.node.start_char_idx,
            self.node.end_char_idx,
            meta.get("title"),
            meta.get("date"),
        )


def _numbered_passages(nodes: list[NodeWithScore], texts: ArticleTexts) -> list[Numbered]:
    """The top passages that their files still say (the grounding check), numbered from 1."""
    kept: list[TextNode] = []
    for node in (n.node for n in nodes):
        if len(kept) == LLM_PASSAGES:
            break
        source = node.metadata["source"]
        if not texts.says(source, node.start_char_idx, node.end_char_idx, node.text):
            log.warning("left out a passage of %s: the file no longer says it", source)
            continue
        kept.append(node)
    return [Numbered(n, node) for n, node in enumerate(kept, start=1)]


def _answer_prompt(question: str, passages: list[Numbered]) -> str:
    blocks = [f"[{p.number}] {_label(p.quote)}\n{p.text.strip()}" for p in passages]
    return "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def _label(quote: Quote) -> str:
    details = [d for d in (short_title(quote.title), quote.date) if d]
    return f"{quote.source} ({', '.join(details)})" if details else quote.source


def _cited_answer(
    reply: str,
    passages: list[Numbered],
    extractive: Answer,
    question: str,
    checker: SupportCheck,
    texts: ArticleTexts,
) -> Answer:
    given = {p.number: p for p in passages}
    if not reply:
        raise LLMUnusable(NOTICE_UNUSABLE)

    def keep_given(match: re.Match) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match["numbers"])]
        valid = [n for n in dict.fromkeys(numbers) if n in given]
        if not valid:
            return ""
        return match["space"] + "".join(f"[{n}]" for n in valid)

    text = CITATION.sub(keep_given, reply)
    lines = _cited_lines(text)
    if not _citations("\n".join(lines)):
        normalized = " ".join(re.sub(r"[^\w\s]", " ", reply).upper().split())
        raise LLMUnusable(NOTICE_REFUSED if REFUSAL in normalized else NOTICE_UNUSABLE)

    started = time.perf_counter()
    checked = [_supported(line, given, checker) for line in lines]
    timings = {**extractive.timings, "check": round(time.perf_counter() - started, 4)}
    lines = _cited_lines("\n".join(c.line for c in checked if c.line is not None))
    cited = _citations("\n".join(lines))
    if not cited:
        raise LLMUnusable(NOTICE_UNSUPPORTED)
    left_out = sum(c.left_out for c in checked)
    if left_out:
        log.info("left out %d unsupported sentence(s) of the LLM's answer", left_out)

    order = list(dict.fromkeys(cited))
    evidence = [e for c in checked for e in c.evidence]
    quotes = [q for n in order for q in _evidence_quotes(given[n], evidence, texts)]
    sources = list(dict.fromkeys(q.source for q in quotes))
    listing = "\n".join(f"[{n}] {_label(given[n].quote)}" for n in order)
    body = "\n".join(lines).strip()
    return Answer(
        question=extractive.question,
        text=f"{body}\n\nSources:\n{listing}",
        quotes=quotes,
        sources=sources,
        refused=False,
        kind="llm",
        passages=extractive.passages,
        retrieved=list(dict.fromkeys(sources + extractive.retrieved)),
        notice=notice_left_out(left_out) if left_out else None,
        standalone_question=question,
        timings=timings,
    )


def _citations(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


@dataclasses.dataclass
class CheckedLine:
    """A line of the answer after the support check: None when nothing in it was supported;
    how many sentences were left out; (passage number, evidence) for each citation kept."""

    line: str | None
    left_out: int = 0
    evidence: list[tuple[int, Evidence]] = dataclasses.field(default_factory=list)


def _supported(line: str, given: dict[int, Numbered], checker: SupportCheck) -> CheckedLine:
    """Check each sentence of `line` against the passages it cites. A sentence with several
    citations ("X [1], and Y [2].") is checked clause by clause, each against its own; one
    without any is checked against those of the next sentence of the line that has some (else
    of the one before). A sentence not supported in every part goes, and so does a citation of
    a passage that supports nothing it follows; a line where all is supported stays as the
    model wrote it."""
    marker = LIST_MARKER.match(line).group()
    # "Russia.[1] Officials ...": the citation belongs to the sentence before the full stop.
    body = CITATION_AFTER_STOP.sub(r" \g<cites>\g<stop>", line[len(marker) :].strip())
    sentences = [body[a:b] for a, b in split_sentences(body)]
    runs = [list(CITATION_RUN.finditer(s)) for s in sentences]
    cited = [i for i, found in enumerate(runs) if found]
    if not cited:
        return CheckedLine(line)  # a blank line or a list intro ("According to them:")

    checked = CheckedLine(None)
    changed = False
    kept: dict[int, str] = {}
    borrowers: dict[int, list[int]] = {}  # a cited sentence -> the uncited ones checked by it
    for i, sentence in enumerate(sentences):
        if runs[i]:
            clauses = _clauses(sentence, runs[i])
        else:
            carrier = next((j for j in cited if j > i), cited[-1])
            borrowers.setdefault(carrier, []).append(i)
            clauses = [(sentence, _citations(" ".join(m[0] for m in runs[carrier])))]
        if not any(WORD.search(CITATION_RUN.sub("", clause)) for clause, _ in clauses):
            changed = True  # a citation with nothing before it ("[1]."): not a sentence
            continue
        keep = []
        for clause, numbers in clauses:
            claim = " ".join(CITATION_RUN.sub(lambda m: m["after"], clause).split())
            if not WORD.search(CITATION_RUN.sub("", claim)):
                keep.append([])  # "[1] Iran sent drones [2].": the first run cites nothing
                continue
            support = checker.check(claim, [given[n].text for n in numbers])
            if not support.supported:
                break
            keep.append([n for k, n in enumerate(numbers) if k in support.supporting])
            checked.evidence += [(numbers[e.index], e) for e in support.evidence]
        if len(keep) < len(clauses):
            checked.left_out += 1
            changed = True
            continue
        if runs[i]:
            text = _recited(sentence, keep)
            changed |= text != sentence
            kept[i] = text.strip()
        else:
            kept[i] = sentence
    if not changed:
        checked.line = line
        return checked
    for carrier, uncited in borrowers.items():
        still = [i for i in uncited if i in kept]
        if carrier not in kept and still:  # its citation went with it: move it to the last kept
            numbers = _citations(" ".join(m[0] for m in runs[carrier]))
            last = kept[still[-1]]
            stop = SENTENCE_STOP.search(last)
            cites = "".join(f"[{n}]" for n in numbers)
            kept[still[-1]] = f"{last[: stop.start()]} {cites}{last[stop.start() :]}"
    if kept:
        checked.line = marker + " ".join(kept[i] for i in sorted(kept))
    return checked


def _clauses(sentence: str, runs: list[re.Match]) -> list[tuple[str, list[int]]]:
    """The parts of a sentence each citation run closes, with the numbers it cites; text after
    the last run belongs to the last part."""
    clauses = []
    at = 0
    for k, run in enumerate(runs):
        end = len(sentence) if k == len(runs) - 1 else run.end()
        clauses.append((sentence[at:end], list(dict.fromkeys(_citations(run["cites"])))))
        at = end
    return clauses


def _recited(sentence: str, numbers: list[list[int]]) -> str:
    """The sentence with each citation run citing only its `numbers` (those that support what
    it follows)."""
    each = iter(numbers)

    def cite(run: re.Match) -> str:
        space = run["cites"][: len(run["cites"]) - len(run["cites"].lstrip())]
        return space + "".join(f"[{n}]" for n in next(each)) + run["after"]

    return CITATION_RUN.sub(cite, sentence)


def _evidence_quotes(
    passage: Numbered, evidence: list[tuple[int, Evidence]], texts: ArticleTexts
) -> list[Quote]:
    """What passage [n] is quoted by: the units of it that supported a sentence citing it (each
    no longer than a quote, `support`), in the order of the passage, verbatim at their
    offsets in its file (`texts`, which checked the passage)."""
    units = {(e.start, e.end): e for number, e in evidence if number == passage.number}
    base = passage.quote
    article = texts.text(base.source)
    quotes = []
    for (start, end), e in sorted(units.items()):
        if any(a <= start and end <= b and (a, b) != (start, end) for a, b in units):
            continue  # a sentence of a pair of sentences also quoted
        inside_before, inside_after = cut_marks(article, base.start + start, base.start + end)
        quotes.append(
            dataclasses.replace(
                base,
                text=passage.text[start:end],
                start=base.start + start,
                end=base.start + end,
                cut_before=e.cut_before or inside_before,
                cut_after=e.cut_after or inside_after,
            )
        )
    return quotes


def _cited_lines(text: str) -> list[str]:
    """Lines that cite a passage, and the blank lines and list intros ("...:") between them.

    A line that cites nothing would be a claim without a source, so it goes; so does any list
    of sources the model wrote itself, since code writes the real one.
    """
    lines = text.strip().splitlines()
    for i, line in enumerate(lines):
        if SOURCES_HEADING.match(line.strip()):
            lines = lines[:i]
            break
    kept: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if re.search(r"\[\d+\]", stripped):
            kept.append(line.rstrip())
        elif not stripped:
            if kept and kept[-1]:
                kept.append("")
        elif stripped.endswith(":") and any(re.search(r"\[\d+\]", o) for o in lines[i + 1 :]):
            kept.append(line.rstrip())
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def _notice_for(exc: Exception) -> str:
    """Sort a provider's exception by its class names, without importing each provider."""
    names = " ".join(cls.__name__ for cls in type(exc).__mro__).lower()
    if "timeout" in names:
        return NOTICE_TIMEOUT
    if "connect" in names or isinstance(exc, ConnectionError):
        return NOTICE_UNREACHABLE
    return NOTICE_UNUSABLE
