"""The text of a formula: splitting at top-level operators, random-effects bars, function calls.

Every other module of :mod:`glmmteach.formula` reads formula text through these, so that what counts as
"inside parentheses" or "a bar term" is decided in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..exceptions import FormulaError


@dataclass(frozen=True)
class BarTerm:
    """A random-effects term ``(expr | group)`` or, with ``correlated=False``, ``(expr || group)``."""

    expr: str
    group: str
    correlated: bool

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"


def split_top_level(text: str, sep: str = "+") -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside parentheses or brackets."""
    parts, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' in formula term {text!r}")
        elif char == sep and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in formula {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def as_bar(term: str) -> BarTerm | None:
    """Return the :class:`BarTerm` if ``term`` is ``( ... | ... )``, else None."""
    if not (term.startswith("(") and term.endswith(")")):
        return None
    inner = term[1:-1]
    # the parentheses must enclose the whole term, e.g. not "(a) + (b)"
    depth = 0
    for char in inner:
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            return None
    pieces = split_top_level(inner, "|")
    if len(pieces) == 2:
        expr, group = pieces
        correlated = True
    elif len(pieces) == 3 and pieces[1] == "":
        expr, _, group = pieces
        correlated = False
    else:
        return None
    if not expr or not group:
        raise FormulaError(f"random-effects term {term!r} needs an expression and a grouping factor")
    return BarTerm(expr=expr, group=group, correlated=correlated)


def encloses(text: str) -> bool:
    """True when the outer parentheses of ``text`` enclose all of it (``(a + b)``, not ``(a) + (b)``)."""
    depth = 0
    for char in text[1:-1]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return True


CALL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*\(")


def outer_calls(text: str) -> list[tuple[str, str]]:
    """The outermost function calls in ``text``: (function name, the call as written), e.g. ``("log", "log(x+5)")``
    for ``log(x+5):a``."""
    found, pos = [], 0
    while (match := CALL.search(text, pos)) is not None:
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        found.append((match.group(1), text[match.start():end + 1]))
        pos = end + 1
    return found

