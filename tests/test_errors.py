"""The hierarchy drawn in index/errors.py is the one in the code, and holds every error."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import index.errors

REPO = Path(__file__).resolve().parent.parent
BRANCH = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>[\w.]+)")


def drawn() -> dict[str, str]:
    """class name (dotted, as drawn) -> the name of the class it is drawn under."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (index.errors.__doc__ or "").splitlines():
        line = line[4:]  # the drawing's indentation in the docstring
        if line == "NewsbotError":
            stack = [(-1, "NewsbotError")]
        elif (match := BRANCH.match(line)) and stack:
            depth = len(match["indent"])
            while stack[-1][0] >= depth:
                stack.pop()
            parents[match["name"]] = stack[-1][1]
            stack.append((depth, match["name"]))
    return parents


def resolve(name: str) -> type:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module or "index.errors"), attribute)


def test_each_drawn_error_derives_from_the_one_it_is_drawn_under():
    parents = drawn()
    assert {"SettingsError", "ArticleFileError", "bot.answering.answer.QuestionError"} <= set(
        parents
    )
    for child, parent in parents.items():
        assert issubclass(resolve(child), resolve(parent)), f"{child} is not a {parent}"


def test_every_error_of_ours_is_drawn():
    drawn_names = {name.rpartition(".")[2] for name in drawn()} | {"NewsbotError"}
    defined = set()
    for path in [*REPO.glob("bot/**/*.py"), *REPO.glob("index/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                if bases & drawn_names:
                    defined.add(node.name)
    assert defined <= drawn_names, f"not drawn in index/errors.py: {defined - drawn_names}"
