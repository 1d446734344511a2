r"""R's response convention: what the left of ``~`` (and ``trials=``, ``weights=``) means, and the response and
weights a family is fitted to.

As R and lme4 read a binomial response: 0/1 values; a factor, character or logical column (its first level
is failure, every other level success); successes out of ``trials=``; ``cbind(successes, failures)`` (the
trials are their sum; ``cbind(s, n - s)`` too); a proportion with its trials as ``weights=`` (read by
``glmer``). A row with 0 trials has weight 0: it counts in no likelihood and no degrees of freedom.

The family is fitted, as R's ``glm`` and lme4 do, to the proportion :math:`y_i / n_i` with prior weight
:math:`w_i n_i` (:func:`proportions`, :func:`family_weights`); other families to the response itself with
the prior weights :math:`w_i`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..families import Family
from .columns import ArrayLike, numeric_vector
from .parse import ParsedFormula


def proportions(y: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Successes / trials, the response a binomial family is fitted to (0 in a row with 0 trials, whose weight
    is 0, as R's ``binomial()$initialize`` sets it: such a row carries no information, and no 0/0)."""
    return np.divide(y, trials, out=np.zeros_like(y), where=trials > 0)


def family_weights(trials: np.ndarray | None, prior_weights: np.ndarray | None) -> np.ndarray | None:
    """The weights a family multiplies every row's log-likelihood, score and information by: the trials times the
    prior weights (as R's ``glm`` multiplies them), either alone when the other is None, None when both are."""
    if trials is None:
        return prior_weights
    return trials if prior_weights is None else trials * prior_weights


def binomial_start_weights(trials: np.ndarray | None, prior_weights: np.ndarray) -> np.ndarray:
    """The ``n`` of R's binomial starting means :math:`(n y + 0.5) / (n + 1)` (``binomial()$initialize``): the
    trials of a response with trials (R's two-column response, whatever the prior weights), else the prior
    weights (R's ``weights=`` on a 0/1 or proportion response)."""
    return prior_weights if trials is None else trials


def binomial_density_weights(trials: np.ndarray, prior_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R's reading of the weights in a binomial log-likelihood (``binomial()$aic``): each row's log-density is that
    of ``m`` trials, times a multiplier. When some row has more than one trial, ``m`` is the trials and the
    multiplier the prior weight (a weight w counts the row w times, as in lme4's log-likelihood); else (0/1
    responses) the prior weights are the trials (``w y`` successes out of ``w``) and the multiplier is 1."""
    if np.any(trials > 1):
        return trials, prior_weights
    return family_weights(trials, prior_weights), np.ones_like(prior_weights)


def read_response(parsed: ParsedFormula, columns: dict[str, pd.Series], family: Family | None,
                  trials: ArrayLike | str | None, weights: ArrayLike | str | None,
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The response ``y`` (0/1, successes or the values), the binomial trials (None without them) and the prior
    weights of the rows in ``columns`` (``trials`` and ``weights``: column names or arrays on those rows),
    checked against ``family`` when it is given. A row with 0 trials gets weight 0, as in R and lme4."""
    n = len(next(iter(columns.values())))
    y = _response_values(columns[parsed.response], parsed.response, family)
    if parsed.failures is not None:
        trials_arr = y + _failures(parsed, columns, family)
    else:
        trials_arr = None if trials is None else numeric_vector(columns, trials, "trials", n, 1.0)
    if family is not None:
        check_response(family, y, trials_arr, parsed.lhs if parsed.failures else parsed.response)
    weights_arr = numeric_vector(columns, weights, "weights", n, 1.0)
    if np.any(weights_arr < 0):
        raise DataError("weights must be non-negative")
    if trials_arr is not None and np.any(trials_arr == 0):
        # as R and lme4: a binomial row with no trials has weight 0 (no likelihood, no residual df in glm)
        weights_arr = np.where(trials_arr == 0, 0.0, weights_arr)
    return y, trials_arr, weights_arr


def failure_columns(parsed: ParsedFormula) -> list[str]:
    """The columns of the failures of ``cbind(successes, failures)`` (``n`` of ``n - successes`` too)."""
    return [] if parsed.failures is None else [c.strip() for c in parsed.failures.split(" - ")]


def _failures(parsed: ParsedFormula, columns: dict[str, pd.Series], family: Family | None) -> np.ndarray:
    """The failures of ``cbind(successes, failures)``: whole numbers >= 0 (a column, or trials - successes)."""
    if family is not None and not family.is_binomial:
        raise DataError(f"the response {parsed.lhs} is a binomial response (successes, failures); the family is "
                        f"{family.name}")
    parts = [numeric_vector(columns, name, "cbind()", len(next(iter(columns.values()))), 0.0)
             for name in failure_columns(parsed)]
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

