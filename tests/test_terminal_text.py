"""bot.cli.terminal_text: what is printed cannot drive the terminal; JSON keeps the exact text."""

from __future__ import annotations

import json
import re
import time

import pytest

from bot.cli.terminal_text import decoded, json_text, one_line, printable

# Anything a terminal acts on: C0 controls but newline and tab, DEL, C1, bidi controls.
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("copy \x1b]52;c;c2VjcmV0\x07 me", "copy  me"),  # OSC 52 clipboard write, BEL-ended
        ("copy \x1b]52;c;c2VjcmV0\x1b\\ me", "copy  me"),  # ... ST-ended
        ("title \x1b]0;owned\x07 here", "title  here"),
        ("clear \x1b[2J\x1b[H screen", "clear  screen"),
        ("colour \x1b[1;31mred\x1b[0m", "colour red"),
        ("8-bit \x9b2J csi and \x9d0;t\x9c osc", "8-bit  csi and  osc"),
        ("reset \x1bc and charset \x1b(B", "reset  and charset "),
        ("bell\x07 backspace\x08 del\x7f nul\x00", "bell backspace del nul"),
        ("evil\u202etxt.exe and \u2066isolate\u2069", "eviltxt.exe and isolate"),
        ("a\r\nb\rc", "a\nb\nc"),  # a lone CR would overwrite the line
        ("keeps\ttabs\nand newlines", "keeps\ttabs\nand newlines"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),  # printing it would raise
        ("“Curly” – and مرحبا \u200f with its mark", "“Curly” – and مرحبا \u200f with its mark"),
    ],
)
def test_printable_removes_every_terminal_control(text, shown):
    assert printable(text) == shown
    assert not CONTROLS.search(printable(text))


def test_an_unterminated_string_command_loses_only_its_introducer():
    assert printable("a \x1b]0;no end, the rest is text") == "a 0;no end, the rest is text"


@pytest.mark.parametrize("text", ["\x9d" * 30_000, "\x1b]" + "\x90" * 30_000, "\x98x" * 15_000])
def test_many_unterminated_string_commands_take_linear_time(text):
    # Each 8-bit introducer used to start a scan to the end of the text: 30,000 of them in an
    # article or a chat line took ten seconds, a megabyte hours.
    started = time.perf_counter()
    assert not CONTROLS.search(printable(text))
    assert time.perf_counter() - started < 1.0


def test_one_line_keeps_spacing_but_not_line_breaks():
    assert one_line("a  b\nc\td\x1b[2J") == "a  b c d"


def test_json_text_escapes_controls_and_round_trips():
    value = {"text": "\x1b]52;c;eA==\x07 \x9b2J \u202e \x7f مرحبا “q”"}
    line = json_text(value)
    assert not CONTROLS.search(line)
    assert "\n" not in line
    assert json.loads(line) == value
    assert "مرحبا “q”" in line  # ordinary text stays readable


def test_decoded_turns_bad_utf8_into_replacement_characters():
    assert decoded("a \udcff b") == "a \ufffd b"  # how Python keeps a bad byte from argv
    assert decoded("x\ud800y") == "x\ufffdy"  # a surrogate that stands for no byte
    assert decoded("café “ok”") == "café “ok”"
    decoded("a \udcff b").encode("utf-8")  # nothing left that cannot be encoded


def test_json_text_can_always_be_written_as_utf8():
    value = {"question": "drones \ud800?"}  # what json.loads makes of "\\ud800"
    line = json_text(value)
    line.encode("utf-8")
    assert json.loads(line) == value
