"""Step 6 of an answer: every quote and answer phrase re-read from its file before it is shown.

    Grounding(corpus_dir).quotes(sentences) -> [Quote]        those their files still say
    Grounding(corpus_dir).direct(finding)   -> DirectAnswer | None
    Grounding(corpus_dir).unreadable(sources) -> str | None   why some were left out

A quote must be the exact text of its file at its offsets (`index.articles.ArticleTexts`, the
one grounding check), or it is dropped: a citation can never point to a file that does not say
it. A quote that begins or ends inside a sentence (a piece of an over-long one, or a sentence a
chunk boundary cut) is marked so that front ends show "…" there (`Quote.shown`). When quotes
are dropped because their files are gone, `unreadable` says so in one line: "The corpus folder
X is missing; run `newsbot index` after restoring it", or which files are no longer there.

One `Grounding` per answer: each file is read once, and an edit counts from the next answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bot.answering.findings import Finding
from bot.answering.read import Sentence, cut_marks
from bot.answering.retrieve import Hit
from bot.answering.types import DirectAnswer, Quote
from bot.answering.wording import listed
from index.articles import ArticleTexts

log = logging.getLogger(__name__)

MISSING_FOLDER = "The corpus folder {folder} is missing; run `newsbot index` after restoring it."


class Grounding:
    def __init__(self, corpus_dir: Path):
        self.corpus_dir = corpus_dir
        self.texts = ArticleTexts(corpus_dir)

    def quotes(self, chosen: list[Sentence]) -> list[Quote]:
        """The chosen sentences as quotes, less those their files no longer say."""
        quotes = [
            self.quote(s.text, s.hit, s.start, s.end, s.cut_before, s.cut_after) for s in chosen
        ]
        return [q for q in quotes if q is not None]

    def direct(self, finding: Finding) -> DirectAnswer | None:
        phrase = self.quote(finding.text, finding.sentence.hit, finding.start, finding.end)
        return DirectAnswer(phrase, finding.sources) if phrase is not None else None

    def quote(
        self,
        text: str,
        hit: Hit,
        start: int,
        end: int,
        cut_before: bool = False,
        cut_after: bool = False,
    ) -> Quote | None:
        """`text` as a quote of `hit`'s file, if the file holds exactly it at [start, end)."""
        if not self.texts.says(hit.source, start, end, text):
            log.warning("dropped a quote from %s: the file no longer says it", hit.source)
            return None
        inside_before, inside_after = cut_marks(self.texts.text(hit.source), start, end)
        return Quote(
            text,
            hit.source,
            start,
            end,
            hit.title,
            hit.date,
            cut_before=cut_before or inside_before,
            cut_after=cut_after or inside_after,
        )

    def unreadable(self, sources: list[str]) -> str | None:
        """Why quotes of `sources` could not be checked, in one line, when their files are
        gone (or the whole corpus folder is): None when every file could be read."""
        gone = sorted(s for s in set(sources) if self.texts.text(s) is None)
        if not gone:
            return None
        folder = self.corpus_dir
        if not folder.is_dir():
            return missing_folder(folder)
        missing = [s for s in gone if not (folder / s).exists()]
        if missing:
            one = len(missing) == 1
            return (
                f"{listed(missing)} {'is' if one else 'are'} no longer in {folder}, so quotes of "
                f"{'it' if one else 'them'} were left out; run `newsbot index` to bring the "
                "index up to date."
            )
        one = len(gone) == 1
        return (
            f"{listed(gone)} in {folder} cannot be read, so quotes of {'it' if one else 'them'} "
            f"were left out; check {'its' if one else 'their'} permissions."
        )


def missing_folder(folder: Path) -> str:
    return MISSING_FOLDER.format(folder=folder)
