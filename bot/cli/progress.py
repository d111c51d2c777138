"""Progress for long index updates: a bar on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from index.build import Progress

PLAIN_MIN_TOTAL = 500  # short updates print nothing when not on a terminal


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True, stream=None) -> Iterator[Progress | None]:
    stream = stream or sys.stderr
    if not enabled:
        yield None
        return
    if stream.isatty():
        from tqdm import tqdm

        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None and total:
                bar = tqdm(total=total, desc=label, unit="chunk", file=stream, leave=False)
            if bar is not None:
                bar.update(done - bar.n)

        try:
            yield update
        finally:
            if bar is not None:
                bar.close()
        return

    last_tenth = -1

    def plain(done: int, total: int) -> None:
        nonlocal last_tenth
        if total < PLAIN_MIN_TOTAL:
            return
        tenth = done * 10 // total
        if tenth != last_tenth:
            last_tenth = tenth
            print(f"{label}: {done}/{total} chunks", file=stream, flush=True)

    yield plain
