"""A formula split as lme4 splits it: response, fixed-effects terms (in R's ``terms()`` form) and
random-effects bars."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..exceptions import FormulaError
from .naming import r_terms
from .syntax import BarTerm, as_bar, split_top_level


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
    for term in split_top_level(rhs):
        if not term:
            raise FormulaError(f"empty term in formula {formula!r} (a stray '+'?)")
        bar = as_bar(term)
        if bar is None:
            fixed.append(term)
        else:
            bars.append(_with_r_terms(bar))
    return ParsedFormula(formula, response, r_terms(fixed), tuple(bars), failures)


def _with_r_terms(bar: BarTerm) -> BarTerm:
    """The bar with its expression in R's terms() form (lme4 builds each bar's model matrix from it alone)."""
    if "%" in bar.expr:  # (left for glmer's check of the operators in a bar, which names it)
        return bar
    pieces = split_top_level(bar.expr)
    terms = r_terms(pieces)
    return bar if list(terms) == pieces else BarTerm(" + ".join(terms), bar.group, bar.correlated)


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

