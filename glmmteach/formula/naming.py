"""R's ``terms()`` and R's column names.

R reads ``a/b`` as ``a + a:b`` (``a/(b + c)`` as ``a + a:b + a:c``; ``(a + b)/c`` as ``a + b + a:b:c``) and
writes every interaction with its variables in their order of first appearance in the formula
(``y ~ x + f + f:x`` has the term ``x:f``): :func:`r_terms`. The fixed terms (and each bar's expression, a
formula of its own in lme4) are rewritten so before either model-matrix builder sees them; a term that needs
no rewriting is kept as written, so the matrices of formulas already in R's form do not change.

formulae names its columns its own way (``C(sex)[2]``, ``Intercept``, ``log(x + 5.0)``); :func:`r_name`
gives R's name of each (``factor(sex)2``, ``(Intercept)``, ``log(x + 5)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from ..exceptions import FormulaError
from ..rformat import format_r
from .backend import ORDERED, ORDERED_FACTOR, to_formulae
from .syntax import as_bar, encloses, outer_calls, split_top_level

_OPERATORS = "+*:/^"


def _split_operators(text: str) -> list[tuple[str, str]] | None:
    """``text`` split at its top-level ``+ * : / ^`` (``%in%`` read as ``:``, as R): (operator before the piece,
    piece); None when it has another top-level operator (``-``, ``**``, ...), which is left as written."""
    text = _top_level_in(text)
    pieces, depth, start, op = [], 0, 0, ""
    for pos, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0 and char in _OPERATORS:
            if text[pos:pos + 2] == "**" or text[pos - 1:pos + 1] == "**":
                return None
            pieces.append((op, text[start:pos].strip()))
            op, start = char, pos + 1
        elif depth == 0 and char in "-%~|":
            return None
    pieces.append((op, text[start:].strip()))
    return None if any(not piece for _, piece in pieces) else pieces


def _top_level_in(text: str) -> str:
    """``a %in% b`` (R: ``a`` within ``b``) as ``a:b``, where it is not inside a call or parentheses."""
    out, depth, pos = [], 0, 0
    while pos < len(text):
        char = text[pos]
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth == 0 and text.startswith("%in%", pos):
            out.append(":")
            pos += 4
            continue
        out.append(char)
        pos += 1
    return "".join(out)


def _without_intercept(piece: str) -> list[str]:
    """A nesting written with R's ``- 1`` (``f/x - 1``) as ``0`` and the nesting; other pieces as they are."""
    match = re.fullmatch(r"(.*\S)\s*-\s*1", piece)
    if match is None or not _has_nesting(match.group(1)) or expand_terms(match.group(1)) is None:
        return [piece]
    return ["0", match.group(1)]


def _has_nesting(text: str) -> bool:
    """Whether ``text`` has a '/' of the formula (not one inside a function call such as ``log(x/2)``)."""
    calls: list[bool] = []  # for each open parenthesis: whether it opened a call
    for pos, char in enumerate(text):
        if char == "(":
            calls.append(bool(re.search(r"[\w.]\s*$", text[:pos])))
        elif char == ")" and calls:
            calls.pop()
        elif char == "/" and not any(calls):
            return True
    return False


def expand_terms(text: str) -> list[tuple[str, ...]] | None:
    """R's expansion of a formula expression into its terms (tuples of variables, as written)."""
    pieces = _split_operators(text)
    if pieces is None:
        return None
    if any(op == "^" for op, _ in pieces):  # only (...)^k: the interactions of the terms up to order k
        if len(pieces) != 2 or not pieces[1][1].isdigit() or not pieces[0][1].startswith("("):
            return None
        base = expand_terms(pieces[0][1])
        if base is None:
            return None
        terms = list(base)
        for _ in range(int(pieces[1][1]) - 1):
            terms = _unique(terms + [a + b for a in terms for b in base])
        return terms
    if len(pieces) == 1:
        piece = pieces[0][1]
        if piece.startswith("(") and piece.endswith(")") and as_bar(piece) is None and encloses(piece):
            return expand_terms(piece[1:-1])
        return [(piece,)]
    sums: list[list[tuple[str, ...]]] = []  # the products between the '+'
    for op, piece in pieces:
        terms = expand_terms(piece) if piece.startswith("(") else [(piece,)]
        if terms is None:
            return None
        if op in ("", "+"):
            sums.append(terms)
            continue
        left = sums[-1]
        if op == "*":
            sums[-1] = _unique(left + terms + [a + b for b in terms for a in left])
        elif op == ":":
            sums[-1] = _unique([a + b for b in terms for a in left])
        else:  # '/': the right side's terms within every combination of the left side's variables
            within = tuple(dict.fromkeys(v for t in left for v in t))
            sums[-1] = _unique(left + [within + b for b in terms])
    return _unique([t for terms in sums for t in terms])


def _key(variable: str) -> str:
    return re.sub(r"\s+", "", variable)


def _unique(terms: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Terms without repeats (``a:a`` is ``a``; ``a:b`` and ``b:a`` are one term), in order."""
    seen, out = set(), []
    for term in terms:
        variables = tuple(dict.fromkeys(term))
        key = frozenset(_key(v) for v in variables)
        if key not in seen:
            seen.add(key)
            out.append(variables)
    return out


def r_terms(pieces: Sequence[str]) -> tuple[str, ...]:
    """The ``+``-separated terms ``pieces`` of a right-hand side as R's ``terms()`` writes them: nesting expanded,
    the variables of each interaction in their order of first appearance (``%in%`` is ``:``, ``(a + b)^2`` the
    interactions up to order 2, ``a/b - 1`` is ``0 + a/b``). A piece already in that form, or one with an
    operator this does not read (``-``, ``**``), is returned as written; a nesting it cannot read is a
    :class:`~glmmteach.exceptions.FormulaError`.

    >>> r_terms(["f/(x + z)"])
    ('f', 'f:x', 'f:z')
    >>> r_terms(["x", "f", "f:x"])
    ('x', 'f', 'x:f')
    """
    pieces = [part for piece in pieces for part in _without_intercept(piece)]
    expanded = [expand_terms(piece) for piece in pieces]
    for piece, terms in zip(pieces, expanded, strict=True):
        if terms is None and _has_nesting(piece):
            raise FormulaError(
                f"the formula term {piece!r} nests with '/' in a form glmmteach does not read; it reads '/' between "
                "columns, calls and parenthesised sums, products and powers of them (a/b = a + a:b, "
                "a/(b + c) = a + a:b + a:c); write the nesting out with '+' and ':'")
    rank: dict[str, int] = {}
    for terms in expanded:
        for variable in (v for t in terms or [] for v in t):
            rank.setdefault(_key(variable), len(rank))
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    for piece, terms in zip(pieces, expanded, strict=True):
        ordered = None if terms is None else [tuple(sorted(t, key=lambda v: rank[_key(v)])) for t in terms]
        if ordered is None or ("/" not in piece and "%in%" not in piece and ordered == terms):
            out.append(piece)
            seen.update(frozenset(_key(v) for v in t) for t in terms or [])
            continue
        for term in ordered:  # (a term the formula already has is not repeated, as R's terms())
            key = frozenset(_key(v) for v in term)
            if key not in seen:
                seen.add(key)
                out.append(":".join(term))
    return tuple(out)


_R_SPACED = {"+": " + ", "-": " - ", "*": " * ", "=": " = ", ",": ", ", "<": " < ", ">": " > ", "<=": " <= ",
             ">=": " >= ", "==": " == ", "!=": " != ", "**": "^"}
_TOKEN = re.compile(r"\s*(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[A-Za-z_.][A-Za-z0-9_.]*|\*\*|[<>=!]=|.)")


def r_deparse(call: str) -> str:
    """A call as R's ``deparse`` writes it, which is how R names its model-matrix column: spaces around ``+ - *``
    and comparisons, none around ``/ ^`` or after a unary minus, ``**`` as ``^``, numbers as R prints them
    (``5.0`` is ``5``); parentheses as written."""
    out, previous = [], None
    for token in _TOKEN.findall(call):
        if token in ("+", "-") and (previous is None or previous in _R_SPACED or previous in ("(", "/", "^")):
            text = token  # unary
        elif token in _R_SPACED:
            text = _R_SPACED[token]
        elif token[0].isdigit() or token[0] == "." and token[1:2].isdigit():
            text = format_r([float(token)], 15)[0]
        else:
            text = token
        out.append(text)
        previous = token if token != "**" else "^"
    return "".join(out)


@lru_cache(maxsize=256)
def call_names(rhs: str, ordered: frozenset[str] = frozenset()) -> dict[str, str]:
    """formulae's name of each function call in ``rhs`` (its columns' names begin with it) -> R's name of it."""
    from formulae import model_description  # (imported when a formula is first read)

    names = {}
    for term in split_top_level(rhs):
        for name, call in outer_calls(term):
            if name in ("factor", "offset", "C"):
                continue
            formulae_terms = model_description(to_formulae(call, ordered)).terms
            names[formulae_terms[-1].name] = r_deparse(call)
    return names


_LEVEL = re.compile(r"\[([^\[\]]*)\]")


def r_name(name: str, factor_vars: set[str], calls: dict[str, str] | None = None) -> str:
    """formulae column name -> R's: ``C(sex)[2]`` -> ``factor(sex)2``, ``Intercept`` -> ``(Intercept)``; a function
    call by ``calls`` (:func:`call_names`): ``log(x + 5.0)`` -> ``log(x + 5)``, ``poly(x, 2)[0]`` ->
    ``poly(x, 2)1`` (R numbers the columns of a call from 1)."""
    if name == "Intercept":
        return "(Intercept)"
    pieces = []
    for piece in name.split(":"):
        call = next((c for c in (calls or {}) if piece == c or piece.startswith(c + "[") and piece.endswith("]")), None)
        if call is not None:
            suffix = piece[len(call) + 1:-1]
            pieces.append(calls[call] + (str(int(suffix) + 1) if suffix.isdigit() else suffix))
            continue
        piece = _LEVEL.sub(r"\1", piece)
        coded = re.fullmatch(r"glmmteach_(contr|C)_([a-z]+)\(([^,()]+)(?:,[^()]*)?\)(.*)", piece)
        if coded:  # R's names: f1, f2 (contrasts=) or C(f, sum)1 (the call, as R deparses it)
            how, kind, column, suffix = coded.groups()
            pieces.append(f"{column.strip()}{suffix}" if how == "contr" else f"C({column.strip()}, {kind}){suffix}")
            continue
        match = re.fullmatch(rf"(C|{ORDERED}|{ORDERED_FACTOR})\(([^,()]+)\)(.*)", piece)
        if match and match.group(1) == ORDERED:
            piece = f"{match.group(2).strip()}{match.group(3)}"
        elif match and (match.group(1) == ORDERED_FACTOR or match.group(2).strip() in factor_vars):
            piece = f"factor({match.group(2).strip()}){match.group(3)}"
        pieces.append(piece)
    return ":".join(pieces)

