r"""R-style model formulas turned into design matrices.

A formula such as ``death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)``
has three parts, which lme4 separates the same way:

* the **response** (left of ``~``), a column of the data, or ``cbind(successes, failures)``;
* the **fixed-effects** terms, expanded into the model matrix :math:`X` (one column per
  coefficient; ``factor(x)`` makes treatment-coded dummies named as R names them, e.g.
  ``factor(sex)2``; an ordered pandas categorical is an R ordered factor, coded by R's polynomial
  contrasts ``contr.poly``, e.g. ``dose.L``, ``dose.Q``; ``a*b`` expands to ``a + b + a:b``;
  ``offset(z)`` adds a known term to :math:`\eta` without a coefficient; functions of columns, such as
  ``log(x + 5)``, ``I(x^2)``, ``scale(x)``, ``poly(x, 2)``, are evaluated and named as R does, the functions
  listed in :data:`SUPPORTED_CALLS`; interaction columns of factors have the first factor varying fastest;
  ``a/b`` is ``a + a:b`` and the variables of an interaction are in their order of first appearance, as R's
  ``terms()`` (:func:`r_terms`); ``contrasts=`` and ``C(f, sum)`` give R's other contrasts);
* the **random-effects** terms ``(expr | g)`` (correlated effects of ``expr`` within each level of
  ``g``) and ``(expr || g)`` (the same effects, uncorrelated). For each such term we build the
  per-observation random-effects covariates :math:`Z_i` (an :math:`n \times r` matrix) and the
  group index of every row, so that the contribution to the linear predictor is
  :math:`z_i^\top b_{g(i)}`.

Model matrices of simple formulas (columns, ``factor()``, ``offset()`` and their interactions) are
built here directly with NumPy; the others by `formulae <https://bambinos.github.io/formulae/>`_
(bambi's parser), which gives the same matrices for the simple ones (tests/test_formula_direct.py):
this module splits off the random-effect bars (formulae does not know ``||``), maps ``factor()``
to formulae's ``C()``, orders the terms as R does (main effects before interactions) and renames
columns the R way. Rows with a missing value in any variable the model
uses are dropped, and how many is reported, as R's ``na.omit`` does.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from formulae import design_matrices, model_description
from formulae.categorical import CategoricalBox, ContrastMatrix, Encoding
from formulae.transforms import TRANSFORMS

from .exceptions import DataError, FormulaError, GlmmteachWarning, MissingDataWarning
from .families import Family, get_family
from .rformat import format_r

ArrayLike = Sequence[float] | np.ndarray | pd.Series



def contr_poly(n_levels: int) -> np.ndarray:
    """R's ``contr.poly(n)``: orthonormal polynomial contrasts (linear, quadratic, ...) on the scores 1..n, the
    coding R gives an ordered factor. Computed as R's ``make.poly`` does: the QR decomposition of the powers of
    the centred scores, each column of Q scaled by R's diagonal entry and normalised (n x (n-1))."""
    scores = np.arange(1.0, n_levels + 1.0)
    powers = (scores - scores.mean())[:, None] ** np.arange(n_levels)[None, :]
    q, r = np.linalg.qr(powers)
    raw = q * np.diag(r)  # (sign-free: a column of Q and its diagonal entry of R change sign together)
    return (raw / np.sqrt(np.sum(raw**2, axis=0)))[:, 1:]


def contr_poly_names(n_levels: int) -> list[str]:
    """R's names of the polynomial contrasts: ``.L``, ``.Q``, ``.C``, ``^4``, ``^5``, ..."""
    return [".L", ".Q", ".C", *(f"^{k}" for k in range(4, n_levels))][: n_levels - 1]


class _PolyContrasts(Encoding):
    """formulae's encoding of an ordered factor as R codes it: polynomial contrasts (with indicators where the
    factor spans the intercept, as R's full coding)."""

    def code_with_intercept(self, levels: list) -> ContrastMatrix:
        return ContrastMatrix(np.eye(len(levels)), [str(level) for level in levels])

    def code_without_intercept(self, levels: list) -> ContrastMatrix:
        return ContrastMatrix(contr_poly(len(levels)), contr_poly_names(len(levels)))


def _ordered_box(values: Any) -> CategoricalBox:
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        # the levels in the categorical's order; only those present (new rows need not have every level:
        # formulae codes them with the levels of the fit)
        present = values.cat.remove_unused_categories()
        return CategoricalBox(present, _PolyContrasts(), list(present.cat.categories))
    return CategoricalBox(values, _PolyContrasts(), None)


def contr_sum(n_levels: int) -> np.ndarray:
    """R's ``contr.sum(n)``: the first n - 1 levels against the last (coded -1), columns named 1, 2, ..."""
    return np.vstack([np.eye(n_levels - 1), -np.ones((1, n_levels - 1))])


def contr_helmert(n_levels: int) -> np.ndarray:
    """R's ``contr.helmert(n)``: column j contrasts level j + 1 with the mean of the levels before it."""
    rows, cols = np.arange(n_levels)[:, None], np.arange(1, n_levels)[None, :]
    return np.where(rows < cols, -1.0, np.where(rows == cols, cols.astype(float), 0.0))


CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly")


class _RContrasts(Encoding):
    """formulae's encoding of a factor by one of R's contrasts (``contrasts=`` or ``C(f, sum)``): ``kind`` one of
    :data:`CONTRASTS`, ``base`` the reference level's position for ``contr.treatment``; indicators of every level
    where the factor spans the intercept, as R's full coding."""

    def __init__(self, kind: str, base: int = 0):
        self.kind, self.base = kind, base

    def code_with_intercept(self, levels: list) -> ContrastMatrix:
        return ContrastMatrix(np.eye(len(levels)), [str(level) for level in levels])

    def code_without_intercept(self, levels: list) -> ContrastMatrix:
        n = len(levels)
        if self.kind == "contr.treatment":
            keep = [k for k in range(n) if k != self.base]
            return ContrastMatrix(np.eye(n)[:, keep], [str(levels[k]) for k in keep])
        if self.kind == "contr.poly":
            return ContrastMatrix(contr_poly(n), contr_poly_names(n))
        matrix = contr_sum(n) if self.kind == "contr.sum" else contr_helmert(n)
        return ContrastMatrix(matrix, [str(k) for k in range(1, n)])


def _contrast_box(kind: str) -> Any:
    def box(values: Any, base: int = 0) -> CategoricalBox:
        levels = list(values.cat.remove_unused_categories().cat.categories) if isinstance(
            getattr(values, "dtype", None), pd.CategoricalDtype) else None
        return CategoricalBox(values, _RContrasts(kind, int(base)), levels)
    return box


def _r_log(x: Any, base: float | None = None) -> Any:
    """R's ``log(x)`` and ``log(x, base)``."""
    return np.log(x) if base is None else np.log(x) / np.log(base)


class _RScale:
    """R's ``scale(x)``: ``x`` centred by its mean and divided by its standard deviation (denominator n - 1;
    formulae's own ``scale`` divides by the n-denominator one). A stateful transform: new rows are scaled with the
    mean and standard deviation of the fitted rows, as R's ``predict`` does (``makepredictcall``)."""

    __stateful_transform__ = True  # (formulae keeps one instance per term, with its state)

    def __init__(self) -> None:
        self.params_set = False
        self.mean = 0.0
        self.sd = 1.0

    def __call__(self, x: Any) -> Any:
        if not self.params_set:
            self.mean, self.sd = np.mean(x), np.std(x, ddof=1)
            self.params_set = True
        return (x - self.mean) / self.sd


# the functions formulae sees for an ordered factor written as ``x`` and as ``factor(x)``, and for R's ``scale(x)``
# (see _to_formulae)
_ORDERED = "glmmteach_ordered"
_ORDERED_FACTOR = "glmmteach_ordered_factor"
_SCALE = "glmmteach_scale"
# a factor coded by R's contrasts: glmmteach_contr_sum(f) for contrasts={"f": "contr.sum"}, glmmteach_C_sum(f) for
# C(f, sum) written in the formula (named as R names it, "C(f, sum)1"); see _to_formulae
_CONTRAST_FUNCTIONS = {f"glmmteach_{how}_{kind.removeprefix('contr.')}": _contrast_box(kind)
                       for kind in CONTRASTS for how in ("contr", "C")}
_NAMESPACE = {"log": _r_log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "exp": np.exp, "expm1": np.expm1,
              "sqrt": np.sqrt, "abs": np.abs, _ORDERED: _ordered_box, _ORDERED_FACTOR: _ordered_box, _SCALE: _RScale,
              **_CONTRAST_FUNCTIONS}
# the functions a formula may call (those formulae knows besides: C(), center(), bs(), ... and np.<function>)
SUPPORTED_CALLS = ("factor(), offset(), I(), log() (and log(x, base)), log2(), log10(), log1p(), exp(), expm1(), "
                   "sqrt(), abs(), scale(), poly(x, degree)")


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class BarTerm:
    """A random-effects term ``(expr | group)`` or, with ``correlated=False``, ``(expr || group)``."""

    expr: str
    group: str
    correlated: bool

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split as lme4 splits it: response, fixed-effects terms and random-effects bars."""

    formula: str
    response: str
    fixed_terms: tuple[str, ...]
    bars: tuple[BarTerm, ...]
    failures: str | None = None  # ``cbind(successes, failures)``: the failures column, or ``n - successes``

    @property
    def lhs(self) -> str:
        """The left-hand side as R prints it."""
        return self.response if self.failures is None else f"cbind({self.response}, {self.failures})"

    @property
    def fixed_rhs(self) -> str:
        """Right-hand side without the random-effect bars (``1`` when nothing is left)."""
        return " + ".join(self.fixed_terms) if self.fixed_terms else "1"


def _split_top_level(text: str, sep: str = "+") -> list[str]:
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


def _as_bar(term: str) -> BarTerm | None:
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
    pieces = _split_top_level(inner, "|")
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


def parse_formula(formula: str) -> ParsedFormula:
    """Split an R-style formula into response, fixed-effects terms and random-effects bars.

    >>> parse_formula("outcome ~ trt*period + (1|ID)").bars
    (BarTerm(expr='1', group='ID', correlated=True),)
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string such as 'y ~ x', got {type(formula).__name__}")
    return _parse_formula(formula)


@lru_cache(maxsize=256)
def _parse_formula(formula: str) -> ParsedFormula:
    # parsed once per formula string (a ParsedFormula is immutable); errors are raised again each time
    if formula.count("~") != 1:
        raise FormulaError(f"the formula {formula!r} needs exactly one '~' (response ~ terms)")
    lhs, rhs = (side.strip() for side in formula.split("~"))
    if not lhs:
        raise FormulaError(f"the formula {formula!r} has no response left of '~'")
    response, failures = _response_spec(lhs)
    if not rhs:
        raise FormulaError(f"the formula {formula!r} has nothing right of '~' (use '1' for an intercept)")
    fixed, bars = [], []
    for term in _split_top_level(rhs):
        if not term:
            raise FormulaError(f"empty term in formula {formula!r} (a stray '+'?)")
        bar = _as_bar(term)
        if bar is None:
            fixed.append(term)
        else:
            bars.append(_with_r_terms(bar))
    return ParsedFormula(formula, response, r_terms(fixed), tuple(bars), failures)


_COLUMN = r"[A-Za-z_.][A-Za-z0-9_.]*"
_CBIND = re.compile(rf"cbind\(\s*({_COLUMN})\s*,\s*({_COLUMN}|{_COLUMN}\s*-\s*{_COLUMN})\s*\)")


def _response_spec(lhs: str) -> tuple[str, str | None]:
    """The response column and, for R's two-column binomial response ``cbind(successes, failures)``, the
    failures: a column or ``trials - successes`` (as R, the trials are their sum)."""
    if re.fullmatch(_COLUMN, lhs):
        return lhs, None
    match = _CBIND.fullmatch(lhs)
    if match is None:
        raise FormulaError(
            f"the response {lhs!r} must be a column name or cbind(successes, failures) (the failures a column or "
            "trials - successes); for successes out of n trials you may also pass trials='n'")
    return match.group(1), re.sub(r"\s*-\s*", " - ", match.group(2))


def _with_r_terms(bar: BarTerm) -> BarTerm:
    """The bar with its expression in R's terms() form (lme4 builds each bar's model matrix from it alone)."""
    if "%" in bar.expr:  # (left for glmer's check of the operators in a bar, which names it)
        return bar
    pieces = _split_top_level(bar.expr)
    terms = r_terms(pieces)
    return bar if list(terms) == pieces else BarTerm(" + ".join(terms), bar.group, bar.correlated)


# --------------------------------------------------------------------------------------------
# R's terms(): nesting and the order of the variables inside an interaction
#
# R reads ``a/b`` as ``a + a:b`` (``a/(b + c)`` as ``a + a:b + a:c``; ``(a + b)/c`` as ``a + b + a:b:c``) and
# writes every interaction with its variables in their order of first appearance in the formula
# (``y ~ x + f + f:x`` has the term ``x:f``). The fixed terms (and each bar's expression, a formula of its own
# in lme4) are rewritten so, before either model-matrix builder sees them; a term that needs no rewriting is
# kept as written, so the matrices of formulas already in R's form do not change.

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
    if match is None or not _has_nesting(match.group(1)) or _expand_terms(match.group(1)) is None:
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


def _expand_terms(text: str) -> list[tuple[str, ...]] | None:
    """R's expansion of a formula expression into its terms (tuples of variables, as written)."""
    pieces = _split_operators(text)
    if pieces is None:
        return None
    if any(op == "^" for op, _ in pieces):  # only (...)^k: the interactions of the terms up to order k
        if len(pieces) != 2 or not pieces[1][1].isdigit() or not pieces[0][1].startswith("("):
            return None
        base = _expand_terms(pieces[0][1])
        if base is None:
            return None
        terms = list(base)
        for _ in range(int(pieces[1][1]) - 1):
            terms = _unique(terms + [a + b for a in terms for b in base])
        return terms
    if len(pieces) == 1:
        piece = pieces[0][1]
        if piece.startswith("(") and piece.endswith(")") and _as_bar(piece) is None and _encloses(piece):
            return _expand_terms(piece[1:-1])
        return [(piece,)]
    sums: list[list[tuple[str, ...]]] = []  # the products between the '+'
    for op, piece in pieces:
        terms = _expand_terms(piece) if piece.startswith("(") else [(piece,)]
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


def _encloses(text: str) -> bool:
    """True when the outer parentheses of ``text`` enclose all of it (``(a + b)``, not ``(a) + (b)``)."""
    depth = 0
    for char in text[1:-1]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return True


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
    expanded = [_expand_terms(piece) for piece in pieces]
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


# --------------------------------------------------------------------------------------------
# Design matrices


@dataclass
class RandomTerm:
    r"""The random-effects covariates of one bar term.

    ``Z[i]`` holds the :math:`r` covariates of row ``i`` (e.g. ``[1, x_i]`` for ``(1 + x | g)``)
    and ``group_codes[i]`` the index (0 … G−1) of its group among ``group_levels``.
    ``correlated`` is False for ``(expr || g)``: the :math:`r` effects are independent. A design has
    one term per grouping factor: ``(1 | g) + (0 + x | g)`` is read, as lme4 reads it, as ``(1 + x || g)``.
    """

    expr: str
    group_name: str
    correlated: bool
    names: list[str]
    Z: np.ndarray
    group_codes: np.ndarray
    group_levels: np.ndarray
    _common: Any = field(default=None, repr=False)
    _parts: list[RandomTerm] = field(default_factory=list, repr=False)

    @property
    def n_groups(self) -> int:
        return len(self.group_levels)

    @classmethod
    def independent(cls, terms: list[RandomTerm]) -> RandomTerm:
        """Several scalar terms of one grouping factor as one uncorrelated term.

        lme4 reads ``(1 | g) + (0 + x | g)`` as ``(1 + x || g)``: two independent effects per group.
        """
        if len({t.group_name for t in terms}) > 1:
            raise FormulaError("only terms of one grouping factor can be combined")
        if any(t.Z.shape[1] > 1 for t in terms):
            raise FormulaError(
                "several random-effects terms of one grouping factor can be combined only when each has one "
                "effect, e.g. (1 | g) + (0 + x | g); write (1 + x | g) or (1 + x || g) instead"
            )
        names = [name for t in terms for name in t.names]
        if len(set(names)) < len(names):
            raise FormulaError(f"the random-effects terms repeat an effect: {', '.join(names)}")
        first = terms[0]
        return cls(
            expr=" + ".join(t.expr for t in terms),
            group_name=first.group_name,
            correlated=False,
            names=names,
            Z=np.column_stack([t.Z for t in terms]),
            group_codes=first.group_codes,
            group_levels=first.group_levels,
            _parts=list(terms),
        )

    def codes_for(self, values: ArrayLike) -> np.ndarray:
        """Group index of each value; −1 for a level not seen when fitting."""
        index = pd.Index(self.group_levels)
        return index.get_indexer(pd.Index(np.asarray(values))).astype(np.intp)

    def new_rows(self, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``Z`` and group codes (−1 for new groups) of new rows, with the coding of the fit."""
        return self._new_covariates(newdata), self.codes_for(self.group_values(newdata))

    def group_values(self, frame: pd.DataFrame) -> np.ndarray:
        """The grouping factor's value in each row of ``frame`` (``"a:b"`` labels for an interaction)."""
        parts = self.group_name.split(":")
        _require_columns(frame, set(parts), "newdata")
        if len(parts) == 1:
            return frame[parts[0]].to_numpy()
        columns = [frame[p].to_numpy() for p in parts]
        labels = [":".join(str(v) for v in row) for row in zip(*columns, strict=True)]
        missing = np.zeros(len(frame), dtype=bool)
        for c in columns:
            missing |= pd.isna(c)
        return np.where(missing, None, np.asarray(labels, dtype=object))

    def new_covariates(self, newdata: pd.DataFrame) -> np.ndarray:
        """The random-effects covariates ``Z`` of new rows (no grouping factor needed)."""
        return self._new_covariates(newdata)

    def _new_covariates(self, newdata: pd.DataFrame) -> np.ndarray:
        if self._parts:
            return np.column_stack([part._new_covariates(newdata) for part in self._parts])
        if self._common is None:  # a random intercept (see _random_term)
            return np.ones((len(newdata), 1))
        _require_columns(newdata, _variables(self.expr), "newdata")
        try:
            Z, _, _ = _split_offsets(_evaluate_new_data(self._common, newdata))
            fitted = self._common.common if isinstance(self._common, _DeferredModel) else self._common
            order = _r_column_order(fitted, by_degree=False)
        except Exception as err:  # formulae raises many types; name the cause
            raise DataError(
                f"cannot build the random-effects covariates of ({self.expr} | ...) for newdata: {err}"
            ) from err
        return Z[:, order]


@dataclass
class Design:
    """Everything a fitter needs, built from a formula and a data frame.

    ``y`` is the response as given (0/1, successes, counts); ``trials`` the number of binomial trials
    of each row (ones when there are none); ``weights`` prior weights; ``offset`` the known part of the
    linear predictor; ``X`` the fixed-effects model matrix with ``column_names`` in R's order and
    naming; ``random`` one :class:`RandomTerm` per bar; ``row_index`` the data-frame index of the rows
    used (rows with missing values removed, ``dropped_rows`` of them).
    """

    parsed: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    column_names: list[str]
    offset: np.ndarray
    trials: np.ndarray
    weights: np.ndarray
    random: list[RandomTerm]
    row_index: pd.Index
    dropped_rows: int
    has_trials: bool = False
    _common: Any = field(default=None, repr=False)
    _column_order: list[int] = field(default_factory=list, repr=False)
    _offset_spec: Any = field(default=None, repr=False)
    _logical_bars: dict[str, str] = field(default_factory=dict, repr=False)
    excluded_index: pd.Index | None = None  # na_action="exclude": every row of the (subset) data, in order

    @property
    def nobs(self) -> int:
        return len(self.y)

    def pad(self, values: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
        """Per-row values of the fit (indexed by ``row_index``) in every row of the data, NaN in the rows dropped for
        missing values, when the design was built with ``na_action="exclude"`` (R's ``naresid``); else as given."""
        return values if self.excluded_index is None else values.reindex(self.excluded_index)

    @property
    def response_name(self) -> str:
        return self.parsed.response

    def new_fixed(self, newdata: pd.DataFrame, offset: ArrayLike | str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Model matrix and offset for new rows, with the factor coding of the fit."""
        newdata = _check_frame(newdata, "newdata")
        frame = newdata.copy()
        for placeholder in self._logical_bars:
            frame[placeholder] = 1.0
        _require_columns(frame, _fixed_variables(self.parsed, self._logical_bars), "newdata")
        try:
            common = _evaluate_new_data(self._common, frame)
            order = self._common.column_order if isinstance(self._common, _DeferredModel) else self._column_order
        except Exception as err:  # formulae raises many types; name the cause
            raise DataError(f"cannot build the model matrix for newdata: {err}") from err
        matrix, _, formula_offset = _split_offsets(common)
        X = matrix[:, order]
        extra = self._offset_spec if offset is None else offset
        if isinstance(extra, np.ndarray | list | pd.Series) and offset is None:
            raise DataError("the model was fitted with offset= given as an array; pass offset= for the new rows too")
        return X, formula_offset + _numeric_vector(frame, extra, "offset", len(frame), default=0.0)


def _evaluate_new_data(model: Any, frame: pd.DataFrame) -> Any:
    """formulae's model matrices of new rows, without pandas 3's deprecation warning about formulae's code.

    formulae codes a factor of new rows with ``pd.Categorical(x, categories=levels)``, which pandas 3 warns
    about; it is formulae's internals, not the user's data (levels the fit did not see raise, and are named).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Constructing a Categorical with a dtype and values")
        return model.evaluate_new_data(frame)


def _check_frame(data: Any, what: str = "data") -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError(f"{what} is empty: it has no rows to fit or predict")
    return data


def _require_columns(data: pd.DataFrame, names: set[str], what: str = "data") -> None:
    missing = sorted(name for name in names if name not in data.columns)
    if missing:
        listed = ", ".join(map(repr, missing))
        raise DataError(
            f"column {listed} named in the formula is not in {what} (columns: {', '.join(map(str, data.columns))})"
        )


_C_CALL = re.compile(r"\bC\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*,\s*(?:contr\.)?((?i:sum|helmert|treatment|poly))\s*\)")


def _to_formulae(rhs: str, ordered: frozenset[str] = frozenset(),
                 contrasts: tuple[tuple[str, str, int], ...] = ()) -> str:
    """formulae's spelling of ``rhs``: R's ``factor(x)`` is formulae's ``C(x)`` (treatment coding, first level as
    reference); an ordered factor ``x`` (a column in ``ordered``) gets R's polynomial contrasts through
    :data:`_ORDERED`; a factor with other contrasts (``contrasts``: column, R's contrast, base level position; or
    ``C(x, sum)`` written in the formula) gets them through :data:`_CONTRAST_FUNCTIONS`; R's power ``^`` is
    Python's ``**`` (in ``I(x^2)``, and ``(a + b)^2``, crossing, in both); R's ``scale()`` is :class:`_RScale`;
    R's ``TRUE``/``FALSE`` are Python's."""
    rhs = _C_CALL.sub(lambda m: f"glmmteach_C_{m.group(2).lower()}({m.group(1)})", rhs)
    for name, kind, base in contrasts:
        call = f"glmmteach_contr_{kind.removeprefix('contr.')}({name}{f', {base}' if base else ''})"
        rhs = re.sub(rf"(?<![\w.(]){re.escape(name)}(?![\w.(])", call, rhs)
    for name in ordered - {c[0] for c in contrasts}:
        rhs = re.sub(rf"\bfactor\(\s*{re.escape(name)}\s*\)", f"{_ORDERED_FACTOR}({name})", rhs)
        rhs = re.sub(rf"(?<![\w.(]){re.escape(name)}(?![\w.(])", f"{_ORDERED}({name})", rhs)
    rhs = re.sub(r"(?<![\w.])scale\(", f"{_SCALE}(", rhs.replace("^", "**"))
    rhs = re.sub(r"(?<![\w.])(TRUE|FALSE)(?![\w.])", lambda m: m.group(1).title(), rhs)  # poly(x, 2, raw = TRUE)
    return re.sub(r"\bfactor\(", "C(", rhs)


@lru_cache(maxsize=256)
def _variables(rhs: str) -> frozenset[str]:
    # parsed once per right-hand side: formulae's parser costs about half a millisecond a call
    _check_calls(rhs)
    try:
        names = model_description(_to_formulae(rhs)).var_names
    except Exception as err:
        raise FormulaError(f"cannot parse the formula terms {rhs!r}: {err} (inside a function call a formula may "
                           f"use columns, numbers and + - * / ^; the functions it may call: {SUPPORTED_CALLS})"
                           ) from err
    return frozenset(names) - {""}  # (formulae lists a number in a call, as in log(x + 5), as the name '')


_CALL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*\(")


def _calls(text: str) -> list[tuple[str, str]]:
    """The outermost function calls in ``text``: (function name, the call as written), e.g. ``("log", "log(x+5)")``
    for ``log(x+5):a``."""
    found, pos = [], 0
    while (match := _CALL.search(text, pos)) is not None:
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        found.append((match.group(1), text[match.start():end + 1]))
        pos = end + 1
    return found


def _known_function(name: str) -> bool:
    if name.startswith("np."):
        return callable(getattr(np, name[3:], None))
    return name in _NAMESPACE or name in TRANSFORMS or name == "factor"


def _check_calls(rhs: str) -> None:
    """A clear error for a function a formula cannot call (R's pmax(), ns(), ...), naming the term."""
    for term in _split_top_level(rhs):
        for function in _CALL.findall(term):  # (nested calls too)
            if not _known_function(function):
                raise FormulaError(
                    f"the formula term {term!r} calls {function}(), which glmmteach cannot evaluate; the "
                    f"functions a formula may call: {SUPPORTED_CALLS}, with columns, numbers and + - * / ^ "
                    "inside, e.g. log(x + 5) or I(x^2)")


_R_SPACED = {"+": " + ", "-": " - ", "*": " * ", "=": " = ", ",": ", ", "<": " < ", ">": " > ", "<=": " <= ",
             ">=": " >= ", "==": " == ", "!=": " != ", "**": "^"}
_TOKEN = re.compile(r"\s*(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[A-Za-z_.][A-Za-z0-9_.]*|\*\*|[<>=!]=|.)")


def _r_deparse(call: str) -> str:
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
def _call_names(rhs: str, ordered: frozenset[str] = frozenset()) -> dict[str, str]:
    """formulae's name of each function call in ``rhs`` (its columns' names begin with it) -> R's name of it."""
    names = {}
    for term in _split_top_level(rhs):
        for name, call in _calls(term):
            if name in ("factor", "offset", "C"):
                continue
            formulae_terms = model_description(_to_formulae(call, ordered)).terms
            names[formulae_terms[-1].name] = _r_deparse(call)
    return names


def _fixed_variables(parsed: ParsedFormula, logical_bars: dict[str, str]) -> set[str]:
    rhs = " + ".join(t if t not in logical_bars.values() else "1" for t in parsed.fixed_terms) or "1"
    return _variables(rhs) - set(logical_bars)


_LEVEL = re.compile(r"\[([^\[\]]*)\]")


def _r_name(name: str, factor_vars: set[str], calls: dict[str, str] | None = None) -> str:
    """formulae column name -> R's: ``C(sex)[2]`` -> ``factor(sex)2``, ``Intercept`` -> ``(Intercept)``; a function
    call by ``calls`` (:func:`_call_names`): ``log(x + 5.0)`` -> ``log(x + 5)``, ``poly(x, 2)[0]`` ->
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
        match = re.fullmatch(rf"(C|{_ORDERED}|{_ORDERED_FACTOR})\(([^,()]+)\)(.*)", piece)
        if match and match.group(1) == _ORDERED:
            piece = f"{match.group(2).strip()}{match.group(3)}"
        elif match and (match.group(1) == _ORDERED_FACTOR or match.group(2).strip() in factor_vars):
            piece = f"factor({match.group(2).strip()}){match.group(3)}"
        pieces.append(piece)
    return ":".join(pieces)


def _factor_columns_as_r(columns: dict[str, pd.Series]) -> frozenset[str]:
    """A pandas categorical column is an R factor: its levels in the categorical's order (the first is the
    reference level), unused levels dropped (``model.frame``'s ``drop.unused.levels``). formulae sorts the
    levels of an unordered categorical, so the column is marked ordered to keep the order (formulae still
    codes it by treatment contrasts). Returns the names of the columns that were ordered categoricals, R's
    ordered factors (coded by polynomial contrasts)."""
    ordered = set()
    for name, column in columns.items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            if column.cat.ordered:
                ordered.add(name)
            columns[name] = column.cat.remove_unused_categories().cat.as_ordered()
    return frozenset(ordered)


def _split_offsets(matrix_obj: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Separate formulae's offset(...) columns (summed) from the coefficient columns."""
    frame = matrix_obj.as_dataframe()
    is_offset = np.array([c.startswith("offset(") for c in frame.columns])
    values = frame.to_numpy(dtype=float)
    offset = values[:, is_offset].sum(axis=1) if is_offset.any() else np.zeros(len(frame))
    names = [c for c, o in zip(frame.columns, is_offset, strict=True) if not o]
    return values[:, ~is_offset], names, offset


def _numeric_vector(data: pd.DataFrame | dict[str, pd.Series], spec: ArrayLike | str | None, what: str, n: int,
                    default: float) -> np.ndarray:
    """Resolve an argument given as a column name, an array, or None (the default value)."""
    if spec is None:
        return np.full(n, default)
    if isinstance(spec, str):
        if spec not in data:  # a data frame's columns, or a dict of them
            raise DataError(f"{what}={spec!r} is not a column of the data")
        values = data[spec]
        label = f"{what} column {spec!r}"
    else:
        values = np.asarray(spec)
        label = f"{what}="
        if values.shape != (n,):
            raise DataError(f"{what}= must have one value per row ({n}), got shape {values.shape}")
    try:
        out = np.array(values, dtype=float)  # (a copy, not a view of the caller's data)
    except (TypeError, ValueError) as err:
        raise DataError(f"{label} must be numeric: {err}") from err
    if not np.all(np.isfinite(out)):
        raise DataError(f"{label} has missing or infinite values")
    return out


def _failure_columns(parsed: ParsedFormula) -> list[str]:
    return [] if parsed.failures is None else [c.strip() for c in parsed.failures.split(" - ")]


def _failures(parsed: ParsedFormula, columns: dict[str, pd.Series], family: Family | None) -> np.ndarray:
    """The failures of ``cbind(successes, failures)``: whole numbers >= 0 (a column, or trials - successes)."""
    if family is not None and not family.is_binomial:
        raise DataError(f"the response {parsed.lhs} is a binomial response (successes, failures); the family is "
                        f"{family.name}")
    parts = [_numeric_vector(columns, name, "cbind()", len(next(iter(columns.values()))), 0.0)
             for name in _failure_columns(parsed)]
    failures = parts[0] if len(parts) == 1 else parts[0] - parts[1]
    bad = (failures < 0) | (failures != np.round(failures))
    if bad.any():
        raise DataError(f"the failures {parsed.failures!r} of {parsed.lhs} must be whole numbers of at least 0; "
                        f"one is {failures[np.argmax(bad)]!r}")
    return failures


def _binary_codes(series: pd.Series, name: str) -> np.ndarray:
    """R's reading of a factor response of a binomial model: its first level is failure (0), every other level
    success (1). A categorical's levels are in its order, other values sorted (R's ``factor()``)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        levels = list(series.cat.categories)
        codes = series.cat.codes.to_numpy()
    else:
        values = series.to_numpy()
        try:
            levels = sorted(set(values.tolist()))
        except TypeError as err:
            raise DataError(f"the response column {name!r} mixes values of different types; a binomial response "
                            "is 0/1, logical or a factor (first level = failure)") from err
        codes = np.searchsorted(np.asarray(levels, dtype=object), values) if levels else values
    if len(levels) < 2:
        raise DataError(f"the binomial response {name!r} has one level only ({levels[0]!r}); it needs two")
    return (np.asarray(codes) != 0).astype(float)


def _response_values(series: pd.Series, name: str, family: Family | None = None) -> np.ndarray:
    # a copy: the values must not follow later changes to the caller's data frame
    if series.dtype == bool or str(series.dtype) == "boolean":
        return series.to_numpy(dtype=float, copy=True)
    factor = isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.infer_dtype(series) == "string"
    if factor and (family is None or family.is_binomial):
        return _binary_codes(series, name)
    try:
        return series.to_numpy(dtype=float, copy=True)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"the response column {name!r} must be numeric (0/1 or counts), got values such as {series.iloc[0]!r}"
        ) from err


def check_response(family: Family, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
    """Check that the response values are possible for the family; raise a :class:`DataError` if not."""

    def first_bad(mask: np.ndarray) -> str:
        return repr(float(y[np.argmax(mask)]))

    if not np.all(np.isfinite(y)):
        raise DataError(f"the response column {name!r} has infinite values")
    if family.is_binomial:
        if trials is None:
            bad = (y != 0) & (y != 1)
            if bad.any():
                raise DataError(
                    f"binomial response {name!r} must be 0/1 but has value {first_bad(bad)}; "
                    "for counts of successes out of n trials pass trials= (a column name or array)"
                )
        else:
            if np.any(trials < 0) or np.any(trials != np.round(trials)):
                raise DataError("trials must be whole numbers of at least 0 (a row with 0 trials has weight 0)")
            bad = (y < 0) | (y > trials) | (y != np.round(y))
            if bad.any():
                raise DataError(
                    f"binomial response {name!r} must be whole numbers of successes between 0 and "
                    f"the trials; it has value {first_bad(bad)}"
                )
    elif family.positive_continuous:
        if np.any(y <= 0):
            raise DataError(f"{family.label} response {name!r} must be positive; it has value {first_bad(y <= 0)}")
    elif family.base in ("poisson", "negative_binomial"):
        if np.any(y < 0):
            raise DataError(f"{family.name} response {name!r} has a negative count {first_bad(y < 0)}")
        if family.name in ("poisson", "negative_binomial") and np.any(y != np.round(y)):
            raise DataError(
                f"{family.name} response {name!r} must be whole counts; it has value "
                f"{first_bad(y != np.round(y))} (for non-integer data use quasipoisson)"
            )


def new_response_values(new_response: Any, nobs: int, name: str) -> np.ndarray:
    """A new response vector for ``refit``: one finite number per fitted row (a one-column DataFrame too)."""
    values = new_response
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise DataError(f"refit needs one new response vector; got a DataFrame with {values.shape[1]} columns "
                            "(refit each simulated column separately)")
        values = values.iloc[:, 0]
    try:
        y = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise DataError(f"the new response for {name!r} must be numeric: {err}") from err
    if y.ndim != 1 or len(y) != nobs:
        raise DataError(f"the new response for {name!r} must have one value per observation of the fit ({nobs}), "
                        f"got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"the new response for {name!r} has missing or infinite values")
    return y


def build_design(
    formula: str,
    data: pd.DataFrame,
    *,
    family: str | Family | None = None,
    offset: ArrayLike | str | None = None,
    weights: ArrayLike | str | None = None,
    trials: ArrayLike | str | None = None,
    random: str = "random",
    subset: Any = None,
    na_action: str = "omit",
    contrasts: dict[str, Any] | None = None,
) -> Design:
    """Build the :class:`Design` of ``formula`` on ``data``.

    ``subset`` (R's ``subset=``): the rows to use, a boolean mask (one value per row) or an expression on the
    columns, such as ``"z > 0.5"`` (pandas' ``DataFrame.eval``). ``na_action`` (R's ``na.action``): ``"omit"``
    drops the rows with a missing value in a model variable (and says how many), ``"exclude"`` drops them too but
    per-row results are padded with NaN in those rows (:meth:`Design.pad`), ``"fail"`` refuses missing values.
    ``contrasts`` (R's ``contrasts=``): the coding of factors in the fixed effects, by column: one of
    :data:`CONTRASTS` or ``("contr.treatment", base_level)``.

    ``random="random"`` builds the random-effects terms (for :func:`glmmteach.glmer`);
    ``random="logical"`` reproduces what R's ``glm`` does with a bar term: it evaluates ``1 | g`` as a
    logical covariate (always TRUE, named ``1 | gTRUE``), which is aliased with the intercept.
    When ``family`` is given the response is checked against it.

    Simple formulas (columns, ``factor()``, ``offset()`` and their interactions) get their model matrices
    from :func:`_direct_matrix`, the same matrices formulae builds in a fraction of the time; formulae
    builds the others, and, when new rows are predicted, the model that codes them.
    """
    data = _check_frame(data)
    if na_action not in NA_ACTIONS:
        raise DataError(f"na_action must be one of {', '.join(map(repr, NA_ACTIONS))} (R's na.omit, na.exclude, "
                        f"na.fail), got {na_action!r}")
    parsed = parse_formula(formula)
    fam = None if family is None else get_family(family)
    if subset is not None:
        data, offset, weights, trials = _subset(data, subset, offset, weights, trials)
    logical_bars: dict[str, str] = {}
    fixed_terms = list(parsed.fixed_terms)
    if random == "logical":
        for k, bar in enumerate(parsed.bars):
            placeholder = f"glmmteach_bar_{k}"
            logical_bars[placeholder] = str(bar)
            fixed_terms.append(placeholder)
    elif random != "random":
        raise ValueError(f"random must be 'random' or 'logical', got {random!r}")

    # Which columns does the model use? Missing ones are an error; rows with NaN are dropped.
    fixed_rhs = " + ".join(fixed_terms) if fixed_terms else "1"
    used = {parsed.response} | (_variables(fixed_rhs) - set(logical_bars)) | set(_failure_columns(parsed))
    if parsed.failures is not None and trials is not None:
        raise DataError(f"the response {parsed.lhs} gives the binomial trials (successes + failures); do not pass "
                        "trials= as well")
    for bar in parsed.bars:
        used |= set(grouping_columns(bar)) | _variables(bar.expr)
    for name, spec in (("offset", offset), ("weights", weights), ("trials", trials)):
        if isinstance(spec, str):
            if spec not in data.columns:
                raise DataError(f"{name}={spec!r} is not a column of the data")
            used.add(spec)
    _require_columns(data, used)
    columns = _model_columns(data, used)
    complete = _complete_rows(columns, len(data))
    for name, spec in (("offset", offset), ("weights", weights), ("trials", trials)):
        if spec is not None and not isinstance(spec, str):
            values = np.asarray(spec, dtype=float)
            if values.shape != (len(data),):
                raise DataError(f"{name}= must have one value per row ({len(data)}), got shape {values.shape}")
            complete &= ~np.isnan(values)
    dropped = int((~complete).sum())
    row_index = data.index
    if dropped and na_action == "fail":
        missing = [name for name, column in columns.items() if column.isna().any()]
        raise DataError(f"na_action='fail': {dropped} row(s) have a missing value, in column "
                        f"{', '.join(map(repr, missing)) or 'offset=/weights=/trials='} (first row "
                        f"{row_index[int(np.argmin(complete))]!r})")
    if dropped:
        if dropped == len(data):
            raise DataError("every row has a missing value in a model variable: nothing to fit")
        warnings.warn(
            f"{dropped} row(s) with missing values in the model variables were dropped ({len(data) - dropped} used)",
            MissingDataWarning,
            stacklevel=3,
        )
        columns = {name: values[complete] for name, values in columns.items()}
        row_index = row_index[complete]
    ordered = _factor_columns_as_r(columns)
    fit_frame = _FitFrame(columns, row_index, logical_bars, ordered)
    n = len(row_index)

    def subset(spec: ArrayLike | str | None) -> ArrayLike | str | None:
        return spec if spec is None or isinstance(spec, str) else np.asarray(spec, dtype=float)[complete]

    y = _response_values(columns[parsed.response], parsed.response, fam)
    if parsed.failures is not None:
        trials_arr = y + _failures(parsed, columns, fam)
    else:
        trials_arr = None if trials is None else _numeric_vector(columns, subset(trials), "trials", n, 1.0)
    if fam is not None:
        check_response(fam, y, trials_arr, parsed.lhs if parsed.failures else parsed.response)
    weights_arr = _numeric_vector(columns, subset(weights), "weights", n, 1.0)
    if np.any(weights_arr < 0):
        raise DataError("weights must be non-negative")
    if trials_arr is not None and np.any(trials_arr == 0):
        # as R and lme4: a binomial row with no trials has weight 0 (no likelihood, no residual df in glm)
        weights_arr = np.where(trials_arr == 0, 0.0, weights_arr)

    # Fixed effects: built directly when the formula is simple, else by formulae (terms ordered as R does).
    coding = _contrast_spec(contrasts, columns, _variables(fixed_rhs) - set(logical_bars))
    direct = None if logical_bars or coding else _direct_matrix(fixed_rhs, columns, n, r_order=True, ordered=ordered)
    if direct is not None:
        X, column_names, formula_offset = direct
        common: Any = _DeferredModel(fixed_rhs, fit_frame)
        order: list[int] = []
    else:
        common, X, column_names, formula_offset, order = _formulae_fixed(formula, fixed_rhs, fit_frame, coding)
    total_offset = formula_offset + _numeric_vector(columns, subset(offset), "offset", n, 0.0)

    random_terms = [] if random == "logical" else _lme4_order(
        _by_grouping_factor([t for bar in expand_bars(parsed.bars) for t in _random_terms(bar, fit_frame)]))
    return Design(
        parsed=parsed,
        y=y,
        X=X,
        column_names=column_names,
        offset=total_offset,
        trials=np.ones(n) if trials_arr is None else trials_arr,
        weights=weights_arr,
        random=random_terms,
        row_index=row_index,
        dropped_rows=dropped,
        has_trials=trials_arr is not None,
        _common=common,
        _column_order=order,
        _offset_spec=offset,
        _logical_bars=logical_bars,
        excluded_index=data.index if na_action == "exclude" and dropped else None,
    )


NA_ACTIONS = ("omit", "exclude", "fail")


def _subset(data: pd.DataFrame, subset: Any, *specs: Any) -> tuple[Any, ...]:
    """``data`` and the per-row arrays among ``specs`` (offset, weights, trials given as arrays) on the rows
    ``subset`` selects (a boolean mask or an expression such as ``"z > 0.5"``); R's ``subset=``. A copy of the
    rows: the caller's data is not modified."""
    if isinstance(subset, str):
        try:
            mask = data.eval(subset)
        except Exception as err:  # pandas raises many types; name the expression
            raise DataError(f"cannot evaluate subset={subset!r} on the data: {err}") from err
    else:
        mask = subset
    mask = np.asarray(mask.reindex(data.index) if isinstance(mask, pd.Series) else mask)
    if mask.shape != (len(data),) or mask.dtype != bool:
        raise DataError(f"subset= must give one True/False per row of the data ({len(data)} rows), got "
                        f"{mask.dtype} values of shape {mask.shape}")
    if not mask.any():
        raise DataError(f"subset={subset if isinstance(subset, str) else 'the mask'!r} selects no row")
    picked = [spec if spec is None or isinstance(spec, str) else np.asarray(spec)[mask]
              if np.shape(spec) == (len(data),) else spec for spec in specs]
    return (data.loc[mask], *picked)


def _model_columns(data: pd.DataFrame, used: set[str]) -> dict[str, pd.Series]:
    """The columns the model uses, by name (no copy: pandas copies on write)."""
    columns = {}
    for name in sorted(used):
        column = data[name]
        if not isinstance(column, pd.Series):
            raise DataError(f"the data has several columns named {name!r}; rename them so the formula names one")
        columns[name] = column
    return columns


def _complete_rows(columns: dict[str, pd.Series], n: int) -> np.ndarray:
    """True for the rows with a value in every column (pandas' notna: NaN, None, NaT are missing)."""
    complete = np.ones(n, dtype=bool)
    for column in columns.values():
        dtype = column.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iub":
            continue  # integers and booleans cannot be missing
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            complete &= ~np.isnan(column.to_numpy())
        else:
            complete &= column.notna().to_numpy()
    return complete


class _FitFrame:
    """The model's columns on the rows used, and, built when first asked for, the same as a data frame (what
    formulae needs: for formulas the direct builder does not take, and for predictions on new rows)."""

    def __init__(self, columns: dict[str, pd.Series], index: pd.Index, logical_bars: dict[str, str],
                 ordered: frozenset[str] = frozenset()):
        self.columns = columns
        self.index = index
        self.logical_bars = logical_bars
        self.ordered = ordered  # the ordered factors (polynomial contrasts)
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            frame = pd.DataFrame({name: column.array for name, column in self.columns.items()}, index=self.index)
            for placeholder in self.logical_bars:
                frame[placeholder] = 1.0
            self._frame = frame
        return self._frame


def _contrast_spec(contrasts: dict[str, Any] | None, columns: dict[str, pd.Series],
                   variables: set[str]) -> tuple[tuple[str, str, int], ...]:
    """``contrasts=`` checked: (column, R's contrast, position of the base level) per factor named."""
    if contrasts is None:
        return ()
    if not isinstance(contrasts, dict):
        raise DataError(f"contrasts= must be a dict such as {{'f': 'contr.sum'}}, got {type(contrasts).__name__}")
    spec = []
    for name, how in contrasts.items():
        kind, base = (how if isinstance(how, tuple) and len(how) == 2 else (how, None))
        if kind not in CONTRASTS:
            raise DataError(f"contrasts= for {name!r}: {how!r} is not one of {', '.join(CONTRASTS)} (or "
                            "('contr.treatment', base level))")
        if name not in variables:
            raise DataError(f"contrasts= names {name!r}, which is not a variable of the fixed effects "
                            f"({', '.join(sorted(variables))})")
        column = columns[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            levels = list(column.cat.categories)
        elif pd.api.types.infer_dtype(column) in ("string", "boolean"):
            levels = sorted(pd.unique(column.to_numpy()).tolist())
        else:
            raise DataError(f"contrasts= for {name!r}: the column is numeric ({column.dtype}), not a factor; "
                            "contrasts apply to factor (string or categorical) columns")
        position = 0
        if base is not None:
            if kind != "contr.treatment":
                raise DataError(f"contrasts= for {name!r}: a base level applies to contr.treatment only, not {kind}")
            if base not in levels:
                raise DataError(f"contrasts= for {name!r}: the base level {base!r} is not a level of the column "
                                f"({', '.join(map(repr, levels))})")
            position = levels.index(base)
        spec.append((name, kind, position))
    return tuple(spec)


def _formulae_fixed(formula: str, fixed_rhs: str, fit_frame: _FitFrame,
                    coding: tuple[tuple[str, str, int], ...] = ()) -> tuple[Any, np.ndarray, list[str],
                                                                             np.ndarray, list[int]]:
    """formulae's fixed-effects model: its model object, X in R's term order with R's names, the formula's
    offset and the column order (formulae's columns -> R's)."""
    logical_bars = fit_frame.logical_bars
    factor_vars = set(re.findall(r"\bfactor\(\s*([^(),]+?)\s*\)", fixed_rhs))
    try:
        matrices = design_matrices(_to_formulae(fixed_rhs, fit_frame.ordered, coding), fit_frame.frame,
                                   na_action="error", extra_namespace=_NAMESPACE)
        matrix, names, formula_offset = _split_offsets(matrices.common)  # (formulae's own frame can fail too)
    except Exception as err:
        raise FormulaError(f"cannot build the model matrix of {formula!r}: {err}") from err
    order = _r_column_order(matrices.common)
    calls = _call_names(fixed_rhs, fit_frame.ordered)
    column_names = []
    for j in order:
        nm = names[j]
        column_names.append(
            f"{logical_bars[nm].strip('()').replace('||', '|')}TRUE" if nm in logical_bars
            else _r_name(nm, factor_vars, calls)
        )
    return matrices.common, np.ascontiguousarray(matrix[:, order]), column_names, formula_offset, order


def _r_term_order(names: list[str]) -> list[int]:
    """R's order of formulae's columns: main effects before interactions (stable: written order within degree)."""
    degree = [0 if nm == "Intercept" else nm.count(":") + 1 for nm in names]
    return sorted(range(len(names)), key=lambda j: degree[j])


def _r_column_order(common: Any, by_degree: bool = True) -> list[int]:
    """R's order of the coefficient columns of formulae's model ``common`` (offsets left out), as indices among
    them: inside an interaction term the FIRST factor varies fastest (R's ``model.matrix``: ``a2:b2, a3:b2,
    a2:b3, a3:b3``; formulae varies it slowest), and, with ``by_degree``, main effects before interactions."""
    columns = list(common.as_dataframe().columns)
    within: list[int] = []  # formulae's column indices, the columns of each term in R's order
    for name, term in common.terms.items():
        span = common.slices[name]
        index = np.arange(span.start, span.stop)
        sizes = [1 if np.ndim(c.value) == 1 else np.shape(c.value)[1] for c in getattr(term, "components", [])]
        if len(sizes) > 1 and int(np.prod(sizes)) == len(index):
            index = index.reshape(sizes).transpose(tuple(reversed(range(len(sizes))))).ravel()
        within.extend(index.tolist())
    if sorted(within) != list(range(len(columns))):
        raise FormulaError("cannot order the model-matrix columns as R does (formulae's terms do not cover them)")
    position = {j: k for k, j in enumerate(j for j, nm in enumerate(columns) if not nm.startswith("offset("))}
    order = [position[j] for j in within if j in position]
    if not by_degree:
        return order
    names = [columns[j] for j in within if j in position]
    return [order[k] for k in _r_term_order(names)]


class _DeferredModel:
    """formulae's model of a right-hand side on the fitted rows, built when new rows are first coded with it
    (predictions): a fit whose matrices :func:`_direct_matrix` built does not pay for it."""

    def __init__(self, rhs: str, fit_frame: _FitFrame):
        self.rhs = rhs
        self.fit_frame = fit_frame
        self._common: Any = None

    @property
    def common(self) -> Any:
        if self._common is None:
            self._common = design_matrices(_to_formulae(self.rhs, self.fit_frame.ordered), self.fit_frame.frame,
                                           na_action="error",
                                           extra_namespace=_NAMESPACE).common
        return self._common

    @property
    def column_order(self) -> list[int]:
        return _r_column_order(self.common)

    def evaluate_new_data(self, newdata: pd.DataFrame) -> Any:
        return self.common.evaluate_new_data(newdata)


# --------------------------------------------------------------------------------------------
# Model matrices of simple formulas, built directly
#
# formulae parses and evaluates a formula term by term in Python; for the formulas of most models
# (columns, factor(), offset() and interactions of those) that is most of a small fit's time. The
# builder below makes exactly formulae's matrices for them (tests/test_formula.py compares the two on
# many formulas and column types) and declines anything else, which formulae then builds.

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ATOM = re.compile(rf"(?:(factor|offset)\(\s*({_IDENT})\s*\)|({_IDENT}))")


@dataclass(frozen=True)
class _Atom:
    """A variable of a simple formula: a column as it is (``plain``: numeric, or a factor when it holds
    strings or is categorical), ``factor(column)`` or ``offset(column)``."""

    kind: str
    column: str


@dataclass(frozen=True)
class _SimpleTerms:
    """A simple right-hand side: intercept or not, its terms (tuples of atoms, in formulae's order: as
    written, ``a*b`` expanded to ``a``, ``b``, ``a:b``) and its offset columns."""

    intercept: bool
    terms: tuple[tuple[_Atom, ...], ...]
    offsets: tuple[str, ...]


def _atom(text: str) -> _Atom | None:
    match = _ATOM.fullmatch(text.strip())
    if match is None:
        return None
    return _Atom("plain", match.group(3)) if match.group(3) else _Atom(match.group(1), match.group(2))


@lru_cache(maxsize=256)
def _simple_terms(rhs: str) -> _SimpleTerms | None:
    """The terms of ``rhs`` when it is simple; None for anything else."""
    try:
        pieces = _split_top_level(rhs)
    except FormulaError:
        return None
    if "1" in pieces and "0" in pieces:
        return None
    terms: list[tuple[_Atom, ...]] = []
    offsets: list[str] = []
    for piece in pieces:
        if piece in ("0", "1"):
            continue
        if "*" in piece and ":" in piece:
            return None
        atoms = [_atom(part) for part in piece.split("*" if "*" in piece else ":")]
        if any(a is None for a in atoms) or len({a.column for a in atoms}) < len(atoms):
            return None
        if len(atoms) == 1 and atoms[0].kind == "offset":
            offsets.append(atoms[0].column)
        elif any(a.kind == "offset" for a in atoms) or len(atoms) > 2 and "*" in piece:
            return None  # offsets in interactions; formulae's expansion of a*b*c is not reproduced
        elif "*" in piece:
            terms += [(atoms[0],), (atoms[1],), tuple(atoms)]
        else:
            terms.append(tuple(atoms))
    keys = [frozenset(t) for t in terms]
    kinds = {}
    for atom in (a for t in terms for a in t):
        kinds.setdefault(atom.column, set()).add(atom.kind)
    if len(set(keys)) < len(keys) or len(set(offsets)) < len(offsets) or any(len(k) > 1 for k in kinds.values()):
        return None  # repeated terms, or a column both as itself and in factor()
    return _SimpleTerms("0" not in pieces, tuple(terms), tuple(offsets))


_BAD_LEVEL = re.compile(r"[:\[\]]")


def _factor_coding(atom: _Atom, column: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """Codes 0..k-1 and level labels of a factor, as formulae codes it (a categorical's levels in their
    order, others sorted); None when the column is no factor here or formulae would label it otherwise."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        levels = list(dtype.categories)
        if not all(isinstance(v, str) or isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
                   for v in levels):
            return None
        codes = column.cat.codes.to_numpy().astype(np.intp)
    elif atom.kind == "factor" and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        codes, values = _sorted_codes(column.to_numpy())
        levels = values.tolist()
    elif pd.api.types.is_string_dtype(dtype) and pd.api.types.infer_dtype(column, skipna=False) == "string":
        codes, uniques = pd.factorize(column.to_numpy())
        uniques = uniques.tolist()
        ranks = sorted(range(len(uniques)), key=uniques.__getitem__)  # Python's sort, as formulae's
        levels = [uniques[k] for k in ranks]
        codes = np.argsort(ranks)[codes]
    else:
        return None
    labels = [str(v) for v in levels]
    if len(labels) < 2 or any(_BAD_LEVEL.search(label) for label in labels):
        return None  # (':' and brackets in a level change formulae's names and term order)
    return codes, labels


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 of integers and their distinct values in increasing order, as ``pd.factorize(values,
    sort=True)`` gives them; by a table of the values' range when it is small (ten times faster than sorting)."""
    if values.size and (high := int(values.max())) - (low := int(values.min())) <= 4 * values.size + 1024:
        shifted = values - values.dtype.type(low)
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[shifted] = True
        table = np.cumsum(seen, dtype=np.intp) - 1
        return table[shifted], (np.flatnonzero(seen) + low).astype(values.dtype)
    codes, levels = pd.factorize(values, sort=True)
    return codes.astype(np.intp), np.asarray(levels)


def _direct_matrix(rhs: str, columns: dict[str, pd.Series], n: int, r_order: bool,
                   ordered: frozenset[str] = frozenset()) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """The model matrix (C order), R's column names and the summed offsets of a simple ``rhs`` on ``columns``,
    equal to formulae's with R's column order inside interaction terms (:func:`_r_column_order`), in formulae's
    term order, or R's, main effects first, with ``r_order``; None when the
    formula or a column is of a kind left to formulae. The columns in ``ordered`` are ordered factors:
    polynomial contrasts (:func:`contr_poly`) instead of treatment contrasts."""
    simple = _simple_terms(rhs)
    if simple is None:
        return None
    coded: dict[_Atom, tuple[list[np.ndarray], list[str]] | tuple[np.ndarray, list[str]]] = {}
    numeric: dict[_Atom, np.ndarray] = {}
    for atom in {a for t in simple.terms for a in t}:
        column = columns[atom.column]
        dtype = column.dtype
        if atom.kind == "plain" and isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            numeric[atom] = column.to_numpy()
            continue
        coding = _factor_coding(atom, column)
        if coding is None:
            return None
        coded[atom] = coding
    present = {frozenset(t) for t in simple.terms} | ({frozenset()} if simple.intercept else set())
    blocks = []
    for term in simple.terms:
        values: list[np.ndarray] = []
        names: list[str] = []
        for atom in term:
            if atom in numeric:
                part, part_names = [numeric[atom]], [atom.column]
            else:
                # contrasts (the first level left out) when the term without this factor is in the model
                if frozenset(term) - {atom} not in present:
                    return None  # full indicator coding is left to formulae
                codes, labels = coded[atom]
                prefix = atom.column if atom.kind == "plain" else f"factor({atom.column})"
                if atom.column in ordered:
                    contrasts = contr_poly(len(labels))
                    part = [contrasts[:, j][codes] for j in range(contrasts.shape[1])]
                    part_names = [prefix + label for label in contr_poly_names(len(labels))]
                else:
                    part = [(codes == k).astype(float) for k in range(1, len(labels))]
                    part_names = [prefix + label for label in labels[1:]]
            if not values:
                values, names = part, part_names
            else:  # R's interaction columns: the earlier factor varies fastest
                values = [a * b for b in part for a in values]
                names = [f"{a}:{b}" for b in part_names for a in names]
        blocks.append((len(term), values, names))
    if r_order:
        blocks.sort(key=lambda block: block[0])
    values = ([np.ones(n)] if simple.intercept else []) + [v for _, vs, _ in blocks for v in vs]
    names = (["(Intercept)"] if simple.intercept else []) + [nm for _, _, nms in blocks for nm in nms]
    X = np.empty((n, len(values)))
    for j, column in enumerate(values):
        X[:, j] = column
    offsets = [np.asarray(columns[name].to_numpy(), dtype=float) for name in simple.offsets]
    if not offsets:
        offset = np.zeros(n)
    elif len(offsets) == 1:
        offset = offsets[0]
    else:
        offset = np.column_stack(offsets).sum(axis=1)
    return X, names, offset


_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


def grouping_columns(bar: BarTerm) -> list[str]:
    """The data columns of a bar's grouping factor: ``g``, ``a:b`` (interaction) or ``a/b`` (nesting)."""
    parts = [p.strip() for p in re.split(r"[/:]", bar.group)]
    if not all(re.fullmatch(_NAME, p) for p in parts):
        raise FormulaError(
            f"the grouping factor of {bar} must be a column name, an interaction of columns (a:b) or a nesting "
            "(a/b); other operators are not allowed right of the bar")
    if len(set(parts)) < len(parts):
        raise FormulaError(f"the grouping factor of {bar} repeats a column")
    return parts


def expand_bars(bars: Sequence[BarTerm]) -> list[BarTerm]:
    """lme4's ``expandSlash``: ``(e | a/b)`` is ``(e | b:a) + (e | a)``; ``a/b/c`` gives ``c:b:a``, ``b:a``,
    ``a``. Other bars are kept as they are (with their grouping factor's spacing normalised)."""
    out = []
    for bar in bars:
        grouping_columns(bar)
        if "/" in bar.group:
            if ":" in bar.group:
                raise FormulaError(f"the grouping factor of {bar} mixes ':' and '/'; write the nesting with '/' only")
            parts = [p.strip() for p in bar.group.split("/")]
            for k in range(len(parts), 0, -1):
                out.append(BarTerm(bar.expr, ":".join(reversed(parts[:k])), bar.correlated))
        else:
            out.append(BarTerm(bar.expr, ":".join(p.strip() for p in bar.group.split(":")), bar.correlated))
    return out


def _by_grouping_factor(terms: list[RandomTerm]) -> list[RandomTerm]:
    """Scalar terms of the same factor become one uncorrelated term (``(1 | g) + (0 + x | g)`` is
    ``(1 + x || g)``); a vector term next to another term of its factor stays a term of its own."""
    groups = dict.fromkeys(t.group_name for t in terms)
    merged = []
    for group in groups:
        same = [t for t in terms if t.group_name == group]
        if len(same) == 1 or any(t.Z.shape[1] > 1 for t in same):
            merged.extend(same)
        else:
            merged.append(RandomTerm.independent(same))
    return merged


def _lme4_order(terms: list[RandomTerm]) -> list[RandomTerm]:
    """lme4's ``mkReTrms`` order: when the numbers of levels are not already non-increasing, the terms are
    sorted by decreasing number of levels (``rev(order(nl))``: ties in reverse formula order)."""
    levels = [t.n_groups for t in terms]
    if not any(b > a for a, b in zip(levels, levels[1:], strict=False)):
        return terms
    ascending = sorted(range(len(terms)), key=lambda i: levels[i])
    return [terms[i] for i in reversed(ascending)]


def grouping_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..G-1 and level labels of a grouping factor ``g`` or ``a:b`` (R's interaction: the first factor
    varies slowest; unused combinations dropped; labels ``"a_level:b_level"``)."""
    return _grouping_codes({p: frame[p] for p in group.split(":")}, group)


def _grouping_codes(columns: dict[str, pd.Series], group: str) -> tuple[np.ndarray, np.ndarray]:
    parts = group.split(":")
    if len(parts) == 1:
        column = columns[parts[0]]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":  # (as pd.Categorical, faster)
            return _sorted_codes(column.to_numpy())
    cats = [pd.Categorical(columns[p] if isinstance(columns[p].dtype, pd.CategoricalDtype) else columns[p].to_numpy())
            for p in parts]  # a categorical keeps its level order, as an R factor
    if len(cats) == 1:
        return cats[0].codes.astype(np.intp), np.asarray(cats[0].categories)
    codes = np.zeros(len(cats[0]), dtype=np.int64)
    for c in cats:
        codes = codes * len(c.categories) + c.codes
    used, inverse = np.unique(codes, return_inverse=True)
    labels = []
    for value in used:
        pieces = []
        for c in reversed(cats):
            value, k = divmod(int(value), len(c.categories))
            pieces.append(str(c.categories[k]))
        labels.append(":".join(reversed(pieces)))
    return inverse.astype(np.intp).ravel(), np.asarray(labels, dtype=object)


def _random_terms(bar: BarTerm, fit_frame: _FitFrame) -> list[RandomTerm]:
    """The random-effects terms of one bar. lme4 reads ``(1 + x + f || g)`` as ``(1 | g) + (0 + x | g) +
    (0 + f | g)``: for numeric ``x`` that is one uncorrelated term (what :func:`_random_term` builds), but a factor
    ``f`` is a vector term of its own, indicators of all its levels with their correlations (lme4's documentation:
    ``||`` does not remove them). That reading is lme4's, not glmmTMB's, and is warned about."""
    term = _random_term(bar, fit_frame)
    written = _split_top_level(bar.expr)
    expanded = _expand_terms(bar.expr)  # (lme4 splits the expression's terms: x*z is x, z and x:z)
    terms = [":".join(t) for t in expanded] if expanded is not None else written
    pieces = [p for p in terms if p not in ("0", "1", "-1", "+1")]
    intercept = not any(p in ("0", "-1") for p in written)
    if bar.correlated or term.Z.shape[1] == len(pieces) + intercept:
        return [term]
    parts = ([BarTerm("1", bar.group, True)] if intercept else []) + [BarTerm(f"0 + {p}", bar.group, True)
                                                                        for p in pieces]
    built = [_random_term(part, fit_frame) for part in parts]
    vectors = [p for p, t in zip(parts, built, strict=True) if t.Z.shape[1] > 1]
    warnings.warn(
        f"{bar}: as lme4, '||' is read as {' + '.join(map(str, parts))}; for the factor term"
        f"{'s' if len(vectors) > 1 else ''} {', '.join(str(v) for v in vectors)} '||' does not remove the "
        "correlations among its levels (one effect per level, correlated). For independent level effects write "
        "the levels as numeric indicator columns", GlmmteachWarning, stacklevel=4)
    return built


def _random_term(bar: BarTerm, fit_frame: _FitFrame) -> RandomTerm:
    """Random-effects covariates and group codes of one bar term."""
    n = len(fit_frame)
    if bar.expr.strip() == "1":  # a random intercept: no model matrix to build
        codes, levels = _grouping_codes(fit_frame.columns, bar.group)
        return RandomTerm(expr=bar.expr, group_name=bar.group, correlated=bar.correlated,
                          names=[_r_name("Intercept", set())], Z=np.ones((n, 1)), group_codes=codes,
                          group_levels=levels)
    direct = _direct_matrix(bar.expr, fit_frame.columns, n, r_order=False, ordered=fit_frame.ordered)
    if direct is not None:
        Z, names, _ = direct
        common: Any = _DeferredModel(bar.expr, fit_frame)
    else:
        factor_vars = set(re.findall(r"\bfactor\(\s*([^(),]+?)\s*\)", bar.expr))
        try:
            matrices = design_matrices(_to_formulae(bar.expr, fit_frame.ordered), fit_frame.frame, na_action="error",
                                       extra_namespace=_NAMESPACE)
            Z, formulae_names, _ = _split_offsets(matrices.common)
        except Exception as err:
            raise FormulaError(f"cannot build the random-effects covariates of {bar}: {err}") from err
        order = _r_column_order(matrices.common, by_degree=False)
        Z = Z[:, order]
        calls = _call_names(bar.expr, fit_frame.ordered)
        names = [_r_name(formulae_names[j], factor_vars, calls) for j in order]
        common = matrices.common
    if Z.shape[1] == 0:
        raise FormulaError(f"the random-effects term {bar} has no covariates")
    codes, levels = _grouping_codes(fit_frame.columns, bar.group)
    return RandomTerm(
        expr=bar.expr,
        group_name=bar.group,
        correlated=bar.correlated,
        names=names,
        Z=np.ascontiguousarray(Z),
        group_codes=codes,
        group_levels=levels,
        _common=common,
    )
