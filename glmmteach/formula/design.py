"""The design of a model: a formula on a data frame read into everything a fitter needs (:class:`Design`).

:func:`build_design` runs the stages in order: the formula parsed (:mod:`~glmmteach.formula.parse`), the rows
chosen (:mod:`~glmmteach.formula.missing`), the response read (:mod:`~glmmteach.formula.response`), the
fixed-effects model matrix built (:mod:`~glmmteach.formula.direct` for simple formulas, else formulae,
:mod:`~glmmteach.formula.backend`, with R's contrasts and names) and the random-effects terms
(:mod:`~glmmteach.formula.random`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, FormulaError
from ..families import Family, get_family
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
from .columns import (
    PER_ROW_ARGUMENTS,
    ArrayLike,
    FitFrame,
    check_frame,
    factor_columns_as_r,
    model_columns,
    numeric_vector,
    require_columns,
)
from .contrasts import contrast_spec
from .missing import check_na_action, rows_used, subset_rows
from .naming import call_names, r_name
from .parse import ParsedFormula, parse_formula
from .random import RandomTerm, grouping_columns, random_terms
from .response import failure_columns, read_response


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
        newdata = check_frame(newdata, "newdata")
        frame = newdata.copy()
        for placeholder in self._logical_bars:
            frame[placeholder] = 1.0
        require_columns(frame, _fixed_variables(self.parsed, self._logical_bars), "newdata")
        try:
            common = evaluate_new_data(self._common, frame)
            order = self._common.column_order if isinstance(self._common, DeferredModel) else self._column_order
        except Exception as err:  # formulae raises many types; name the cause
            raise DataError(f"cannot build the model matrix for newdata: {err}") from err
        matrix, _, formula_offset = split_offsets(common)
        X = matrix[:, order]
        extra = self._offset_spec if offset is None else offset
        if isinstance(extra, np.ndarray | list | pd.Series) and offset is None:
            raise DataError("the model was fitted with offset= given as an array; pass offset= for the new rows too")
        return X, formula_offset + numeric_vector(frame, extra, "offset", len(frame), default=0.0)


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
    :data:`~glmmteach.formula.contrasts.CONTRASTS` or ``("contr.treatment", base_level)``.

    ``random="random"`` builds the random-effects terms (for :func:`glmmteach.glmer`);
    ``random="logical"`` reproduces what R's ``glm`` does with a bar term: it evaluates ``1 | g`` as a
    logical covariate (always TRUE, named ``1 | gTRUE``), which is aliased with the intercept.
    When ``family`` is given the response is checked against it.

    Simple formulas (columns, ``factor()``, ``offset()`` and their interactions) get their model matrices
    from :func:`~glmmteach.formula.direct.direct_matrix`, the same matrices formulae builds in a fraction of the
    time; formulae builds the others, and, when new rows are predicted, the model that codes them.
    """
    data = check_frame(data)
    check_na_action(na_action)
    parsed = parse_formula(formula)
    fam = None if family is None else get_family(family)
    if subset is not None:
        data, offset, weights, trials = subset_rows(data, subset, offset, weights, trials)
    logical_bars = _bar_placeholders(parsed, random)
    fixed_terms = [*parsed.fixed_terms, *logical_bars]
    fixed_rhs = " + ".join(fixed_terms) if fixed_terms else "1"
    per_row = dict(zip(PER_ROW_ARGUMENTS, (offset, weights, trials), strict=True))
    used = _used_columns(data, parsed, fixed_rhs, logical_bars, per_row)
    columns, complete, row_index, dropped = rows_used(data, model_columns(data, used), per_row, na_action)
    ordered = factor_columns_as_r(columns)
    fit_frame = FitFrame(columns, row_index, logical_bars, ordered)
    n = len(row_index)

    def on_rows_used(spec: ArrayLike | str | None) -> ArrayLike | str | None:
        return spec if spec is None or isinstance(spec, str) else np.asarray(spec, dtype=float)[complete]

    y, trials_arr, weights_arr = read_response(parsed, columns, fam, on_rows_used(trials), on_rows_used(weights))
    common, X, column_names, formula_offset, order = _fixed_effects(formula, fixed_rhs, fit_frame, contrasts)
    total_offset = formula_offset + numeric_vector(columns, on_rows_used(offset), "offset", n, 0.0)
    return Design(
        parsed=parsed,
        y=y,
        X=X,
        column_names=column_names,
        offset=total_offset,
        trials=np.ones(n) if trials_arr is None else trials_arr,
        weights=weights_arr,
        random=[] if random == "logical" else random_terms(parsed.bars, fit_frame),
        row_index=row_index,
        dropped_rows=dropped,
        has_trials=trials_arr is not None,
        _common=common,
        _column_order=order,
        _offset_spec=offset,
        _logical_bars=logical_bars,
        excluded_index=data.index if na_action == "exclude" and dropped else None,
    )


def _bar_placeholders(parsed: ParsedFormula, random: str) -> dict[str, str]:
    """``random="logical"``: a placeholder column for each bar (R's ``glm`` reads ``1 | g`` as a logical
    covariate), by placeholder name; none for ``random="random"``."""
    if random == "logical":
        return {f"glmmteach_bar_{k}": str(bar) for k, bar in enumerate(parsed.bars)}
    if random != "random":
        raise ValueError(f"random must be 'random' or 'logical', got {random!r}")
    return {}


def _used_columns(data: pd.DataFrame, parsed: ParsedFormula, fixed_rhs: str, logical_bars: dict[str, str],
                  per_row: dict[str, Any]) -> set[str]:
    """The columns of ``data`` the model uses (response, fixed and random terms, the per-row arguments given as
    column names); a missing one is a DataError naming it."""
    used = {parsed.response} | (variables(fixed_rhs) - set(logical_bars)) | set(failure_columns(parsed))
    if parsed.failures is not None and per_row["trials"] is not None:
        raise DataError(f"the response {parsed.lhs} gives the binomial trials (successes + failures); do not pass "
                        "trials= as well")
    for bar in parsed.bars:
        used |= set(grouping_columns(bar)) | variables(bar.expr)
    for name, spec in per_row.items():
        if isinstance(spec, str):
            if spec not in data.columns:
                raise DataError(f"{name}={spec!r} is not a column of the data")
            used.add(spec)
    require_columns(data, used)
    return used


def _fixed_effects(formula: str, fixed_rhs: str, fit_frame: FitFrame, contrasts: dict[str, Any] | None,
                   ) -> tuple[Any, np.ndarray, list[str], np.ndarray, list[int]]:
    """The fixed-effects model of ``fixed_rhs``: the model that codes new rows, X, R's column names, the formula's
    offset and formulae's column order; built directly when the formula is simple, else by formulae (terms
    ordered as R does)."""
    columns, logical_bars = fit_frame.columns, fit_frame.logical_bars
    coding = contrast_spec(contrasts, columns, variables(fixed_rhs) - set(logical_bars))
    built = None if logical_bars or coding else direct.direct_matrix(fixed_rhs, columns, len(fit_frame), r_order=True,
                                                                      ordered=fit_frame.ordered)
    if built is None:
        return _formulae_fixed(formula, fixed_rhs, fit_frame, coding)
    X, column_names, formula_offset = built
    return DeferredModel(fixed_rhs, fit_frame), X, column_names, formula_offset, []


def _fixed_variables(parsed: ParsedFormula, logical_bars: dict[str, str]) -> set[str]:
    rhs = " + ".join(t if t not in logical_bars.values() else "1" for t in parsed.fixed_terms) or "1"
    return variables(rhs) - set(logical_bars)


def _formulae_fixed(formula: str, fixed_rhs: str, fit_frame: FitFrame,
                    coding: tuple[tuple[str, str, int], ...] = ()) -> tuple[Any, np.ndarray, list[str],
                                                                             np.ndarray, list[int]]:
    """formulae's fixed-effects model: its model object, X in R's term order with R's names, the formula's
    offset and the column order (formulae's columns -> R's)."""
    logical_bars = fit_frame.logical_bars
    factor_vars = set(re.findall(r"\bfactor\(\s*([^(),]+?)\s*\)", fixed_rhs))
    try:
        matrices = formulae_matrices(to_formulae(fixed_rhs, fit_frame.ordered, coding), fit_frame.frame)
        matrix, names, formula_offset = split_offsets(matrices.common)  # (formulae's own frame can fail too)
    except Exception as err:
        raise FormulaError(f"cannot build the model matrix of {formula!r}: {err}") from err
    order = r_column_order(matrices.common)
    calls = call_names(fixed_rhs, fit_frame.ordered)
    column_names = []
    for j in order:
        nm = names[j]
        column_names.append(
            f"{logical_bars[nm].strip('()').replace('||', '|')}TRUE" if nm in logical_bars
            else r_name(nm, factor_vars, calls)
        )
    return matrices.common, np.ascontiguousarray(matrix[:, order]), column_names, formula_offset, order

