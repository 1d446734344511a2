"""The data's columns a model uses: the data frame checked, the columns looked up, the per-row arguments
(``offset=``, ``weights=``, ``trials=``) read, and the columns on the rows used (:class:`FitFrame`)."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError

ArrayLike = Sequence[float] | np.ndarray | pd.Series
# the arguments given as a column name or one value per row
PER_ROW_ARGUMENTS = ("offset", "weights", "trials")


def check_frame(data: Any, what: str = "data") -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError(f"{what} is empty: it has no rows to fit or predict")
    return data


def require_columns(data: pd.DataFrame, names: set[str], what: str = "data") -> None:
    missing = sorted(name for name in names if name not in data.columns)
    if missing:
        listed = ", ".join(map(repr, missing))
        raise DataError(
            f"column {listed} named in the formula is not in {what} (columns: {', '.join(map(str, data.columns))})"
        )


def model_columns(data: pd.DataFrame, used: set[str]) -> dict[str, pd.Series]:
    """The columns the model uses, by name (no copy: pandas copies on write)."""
    columns = {}
    for name in sorted(used):
        column = data[name]
        if not isinstance(column, pd.Series):
            raise DataError(f"the data has several columns named {name!r}; rename them so the formula names one")
        columns[name] = column
    return columns


def numeric_vector(data: pd.DataFrame | dict[str, pd.Series], spec: ArrayLike | str | None, what: str, n: int,
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


def per_row_values(name: str, spec: Any, n: int) -> np.ndarray:
    """``offset=``, ``weights=`` or ``trials=`` given as values rather than a column name: one number per row
    (NaN for a missing one) as floats. Anything else, such as a dict, a set, text or a number alone, is a
    :class:`~glmmteach.exceptions.DataError` naming the argument and what it got."""
    expected = f"{name}= must be a column name or one number per row ({n}: an array, list or Series)"
    try:
        values = np.asarray(spec, dtype=float)
    except (TypeError, ValueError) as err:
        raise DataError(f"{expected}, got {type(spec).__name__} {reprlib.repr(spec)}") from err
    if values.ndim == 0:
        raise DataError(f"{expected}, got {type(spec).__name__} {reprlib.repr(spec)}")
    if values.shape != (n,):
        raise DataError(f"{name}= must have one value per row ({n}), got shape {values.shape}")
    return values


def factor_columns_as_r(columns: dict[str, pd.Series]) -> frozenset[str]:
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


class FitFrame:
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

