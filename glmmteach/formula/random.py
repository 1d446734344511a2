"""The random-effects terms of a formula's bars, as lme4's ``mkReTrms`` builds them.

Each bar ``(expr | g)`` gives the per-observation covariates :math:`Z_i` of ``expr`` and the index of every
row's level of ``g`` (:class:`RandomTerm`); ``(e | a/b)`` is ``(e | b:a) + (e | a)``; scalar terms of one
factor are one uncorrelated term; ``||`` with a factor is read as lme4 reads it; the terms in lme4's order.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, FormulaError, GlmmteachWarning
from . import direct
from .backend import (
    DeferredModel,
    evaluate_new_data,
    formulae_matrices,
    r_column_order,
    split_offsets,
    to_formulae,
    variables,
)
from .columns import ArrayLike, FitFrame, require_columns
from .naming import call_names, expand_terms, r_name
from .syntax import BarTerm, split_top_level


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
        require_columns(frame, set(parts), "newdata")
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
        require_columns(newdata, variables(self.expr), "newdata")
        try:
            Z, _, _ = split_offsets(evaluate_new_data(self._common, newdata))
            fitted = self._common.common if isinstance(self._common, DeferredModel) else self._common
            order = r_column_order(fitted, by_degree=False)
        except Exception as err:  # formulae raises many types; name the cause
            raise DataError(
                f"cannot build the random-effects covariates of ({self.expr} | ...) for newdata: {err}"
            ) from err
        return Z[:, order]


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
            return direct.sorted_codes(column.to_numpy())
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


def random_terms(bars: Sequence[BarTerm], fit_frame: FitFrame) -> list[RandomTerm]:
    """The random-effects terms of a formula's ``bars`` on the rows of ``fit_frame``, in lme4's order."""
    return _lme4_order(_by_grouping_factor([t for bar in expand_bars(bars) for t in _bar_terms(bar, fit_frame)]))


def _bar_terms(bar: BarTerm, fit_frame: FitFrame) -> list[RandomTerm]:
    """The random-effects terms of one bar. lme4 reads ``(1 + x + f || g)`` as ``(1 | g) + (0 + x | g) +
    (0 + f | g)``: for numeric ``x`` that is one uncorrelated term (what :func:`_random_term` builds), but a factor
    ``f`` is a vector term of its own, indicators of all its levels with their correlations (lme4's documentation:
    ``||`` does not remove them). That reading is lme4's, not glmmTMB's, and is warned about."""
    term = _random_term(bar, fit_frame)
    written = split_top_level(bar.expr)
    expanded = expand_terms(bar.expr)  # (lme4 splits the expression's terms: x*z is x, z and x:z)
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
        "the levels as numeric indicator columns", GlmmteachWarning, stacklevel=5)  # (the caller of build_design)
    return built


def _random_term(bar: BarTerm, fit_frame: FitFrame) -> RandomTerm:
    """Random-effects covariates and group codes of one bar term."""
    n = len(fit_frame)
    if bar.expr.strip() == "1":  # a random intercept: no model matrix to build
        codes, levels = _grouping_codes(fit_frame.columns, bar.group)
        return RandomTerm(expr=bar.expr, group_name=bar.group, correlated=bar.correlated,
                          names=[r_name("Intercept", set())], Z=np.ones((n, 1)), group_codes=codes,
                          group_levels=levels)
    built = direct.direct_matrix(bar.expr, fit_frame.columns, n, r_order=False, ordered=fit_frame.ordered)
    if built is not None:
        Z, names, _ = built
        common: Any = DeferredModel(bar.expr, fit_frame)
    else:
        factor_vars = set(re.findall(r"\bfactor\(\s*([^(),]+?)\s*\)", bar.expr))
        try:
            matrices = formulae_matrices(to_formulae(bar.expr, fit_frame.ordered), fit_frame.frame)
            Z, formulae_names, _ = split_offsets(matrices.common)
        except Exception as err:
            raise FormulaError(f"cannot build the random-effects covariates of {bar}: {err}") from err
        order = r_column_order(matrices.common, by_degree=False)
        Z = Z[:, order]
        calls = call_names(bar.expr, fit_frame.ordered)
        names = [r_name(formulae_names[j], factor_vars, calls) for j in order]
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
