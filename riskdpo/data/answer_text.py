"""The text of a model's answer made ready for reading: reasoning apart, markdown seen through.

Three things stand between an answer as a model writes it and the words a
careful reader reads (`riskdpo.data.answers` reads those words):

- **Reasoning.** A reasoning model writes ``<think> ... </think> visible answer``
  (or a server returns the reasoning apart). `split_reasoning` separates the
  two; a ``<think>`` never closed means the answer was cut inside its reasoning.
- **Markdown.** Chat models dress their conclusion: ``**Option 2.**``,
  ``### ✅ **Final Answer:**``, ``> **Option 3**``, ``\\boxed{\\text{(a)}}``,
  table rows. `plain_lines` turns the text into lines of plain words — emphasis
  marks, heading marks, block quotes, pictographs and LaTeX wrappers removed,
  arrows read as colons, table cells as clauses — and says which lines were
  *headings* (a ``#`` line, or a line that ends in a colon: ``For option (1):``).
  A heading introduces an analysis; a label in it is not a choice by itself.
- **Loops.** A sampled answer can end in a degenerate loop (``9999…``,
  ``the the the``) when it hits the token limit; `ends_in_loop` says so when the
  finish reason is not known.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Emphasis by underscores (``__b__``, ``_b_``); ``*`` and `` ` `` marks are all removed.
_UNDERSCORES = re.compile(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
#: LaTeX wrappers around an answer: ``\boxed{…}``, ``\text{…}``, ``\textbf{…}``, math delimiters.
_LATEX_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_MATH_DELIMITERS = re.compile(r"\\[()\[\]]|\$(?=\\)|(?<=\})\$|\$\$")
#: Arrows that point to a conclusion read as a colon: ``Decision → Option B``.
_ARROWS = re.compile(r"[\u2192\u21d2\u27a1\u2794\u279c\u27f6]|-+>|=+>")
#: A table's rule row: ``|---|:---:|``.
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_TABLE_CELL_BREAK = re.compile(r"\s*\|\s*")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class PlainText:
    """An answer's text in plain words: ``text`` (lines joined by newlines) and,
    per line, whether it is a heading (`heading_lines`, line numbers from 0)."""

    text: str
    heading_lines: frozenset[int]

    def line_of(self, position: int) -> int:
        """The number of the line holding character `position` of `text`."""
        return self.text.count("\n", 0, position)


def split_reasoning(text: str) -> tuple[str, str | None, bool]:
    """(visible part, reasoning part or None, cut inside the reasoning) of an answer.

    The visible part follows the last ``</think>``; a ``</think>`` without an
    opening tag (chat templates that put ``<think>`` in the prompt) closes a
    reasoning part all the same; a ``<think>`` never closed was cut off.
    """
    close = text.rfind("</think>")
    if close >= 0:
        opening = text.find("<think>")
        start = opening + len("<think>") if 0 <= opening < close else 0
        return text[close + len("</think>") :], text[start:close], False
    opening = text.find("<think>")
    if opening >= 0:
        return text[:opening], text[opening + len("<think>") :], True
    return text, None, False


def plain_lines(text: str) -> PlainText:
    """`text` with its markdown seen through (see the module docstring), line by line."""
    text = unicodedata.normalize("NFKC", text)
    if "\\" in text or "$$" in text:  # the checks before each pass keep plain answers fast
        text = _LATEX_WRAPPER.sub(r" \1 ", _LATEX_WRAPPER.sub(r" \1 ", text))  # nested: \boxed{\text{(a)}}
        text = _MATH_DELIMITERS.sub(" ", text)
    if not text.isascii():
        text = _ARROWS.sub(":", text).translate(_PICTOGRAPHS_TO_SPACES)
    elif ">" in text:
        text = _ARROWS.sub(":", text)
    text = text.replace("*", "").replace("`", "")
    if "_" in text:
        text = _UNDERSCORES.sub("", text)
    lines, headings = [], set()
    for number, line in enumerate(_SPACES.sub(" ", text).split("\n")):
        line = line.lstrip(" >")
        is_heading = line.startswith("#")
        if is_heading:
            line = line.lstrip("#> ")
        if "|" in line:
            line = "" if _TABLE_RULE.match(line) else _TABLE_CELL_BREAK.sub("; ", line.strip().strip("|"))
        line = line.strip()
        if is_heading and line and line[-1].isalnum():
            line += ":"  # "## Recommendation" introduces what follows as "Recommendation:" does
        if is_heading or line.endswith(":"):
            headings.add(number)
        lines.append(line)
    return PlainText("\n".join(lines), frozenset(headings))


class _PictographTable(dict):
    """A `str.translate` table that maps each pictograph to a space, filled as characters are met."""

    def __missing__(self, code: int) -> int:
        self[code] = ord(" ") if _pictograph(chr(code)) else code
        return self[code]


_PICTOGRAPHS_TO_SPACES = _PictographTable()


def _pictograph(character: str) -> bool:
    """True for emoji and symbols drawn as pictures (✅, ✔, 👉, ★), never for letters, digits, ``$``
    or the replacement character of broken decoding (``\ufffd``, debris the reader must still see)."""
    return (unicodedata.category(character) == "So" and character != "\ufffd") or character in "\ufe0f\u200d"


def ends_in_loop(text: str, tail: int = 80, longest_unit: int = 20) -> bool:
    """True when the last `tail` characters repeat one unit of at most `longest_unit`
    characters (``9999…``, ``the the the …``): generation that ran until it was cut."""
    end = text.rstrip()[-tail:]
    if len(end) < tail:
        return False
    return any(end == (end[-unit:] * (tail // unit + 1))[-tail:] for unit in range(1, longest_unit + 1))
