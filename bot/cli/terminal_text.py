"""Text that is safe to print: what came from a file, a user or an LLM never drives the terminal.

    printable(text)    text without terminal controls; newlines and tabs stay
    one_line(text)     the same on one line (for a message or a file name in a list)
    json_text(value)   one line of JSON whose every control character is an escape (UTF-8 safe)
    decoded(text)      a command-line argument or input line, bad UTF-8 turned into U+FFFD

Article files, questions and LLM replies may hold escape sequences: an OSC 52 sequence writes
the clipboard, `ESC [2J` clears the screen, `ESC ]0;…BEL` retitles the window, and bidi
overrides make a line read differently from what it holds. `printable` removes whole escape
sequences (7-bit `ESC …` and their 8-bit C1 forms), then every other C0 and C1 control, DEL and
the bidi embeddings, overrides and isolates. A carriage return becomes a newline (it could
otherwise overwrite the line it is in). Ordinary text, including right-to-left scripts and
their marks, is left alone.

JSON keeps the data exact instead: `json.dumps` already escapes C0 controls, and `json_text`
escapes the rest too, so `json.loads` gives back the original text.
"""

from __future__ import annotations

import json
import re

# ESC or its C1 form, then a control sequence (CSI), a control string (OSC, DCS, SOS, PM,
# APC: terminated by BEL or ST), or a short escape such as ESC c (reset) or ESC ( B.
# A string's body stops at the next introducer too: otherwise each of thousands of
# unterminated 8-bit introducers would scan to the end of the text (quadratic time).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x90\x98\x9c-\x9f]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
_NEWLINE = re.compile(r"\r\n?")
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
_JSON_UNESCAPED = re.compile(f"[\x7f-\x9f{_BIDI_CONTROLS}\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ON_ONE_LINE = str.maketrans("\n\t", "  ")


def printable(text: str) -> str:
    """`text` with every terminal control removed; newline and tab kept. A lone surrogate,
    which no stream can encode, becomes U+FFFD."""
    text = _SEQUENCE.sub("", text)
    text = _NEWLINE.sub("\n", text)
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def one_line(text: str) -> str:
    """`printable(text)` on one line: each newline and tab becomes a space."""
    return printable(text).translate(_ON_ONE_LINE)


def json_text(value) -> str:
    """`value` as one line of JSON, every control character escaped (`\\u009b`, `\\u202e`),
    and so is a lone surrogate (from a question file's `"\\ud800"`), which UTF-8 cannot hold.

    `json.dumps` leaves these alone with `ensure_ascii=False`; they can only occur inside JSON
    strings, where an escape stands for the same character.
    """
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def decoded(text: str) -> str:
    """`text` as Python got it from the OS (argv, a stdin line: bad bytes kept as lone
    surrogates) with each byte that was not UTF-8 replaced by U+FFFD, so it can be encoded."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte, e.g. "\\ud800" in JSON
        return _SURROGATE.sub("\ufffd", text)
    return data.decode("utf-8", "replace")
