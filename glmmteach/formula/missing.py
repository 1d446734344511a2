"""R's ``subset=`` and ``na.action``: which rows of the data a model uses.

``subset`` selects rows (a boolean mask or an expression on the columns); then a row with a missing value in
any variable the model uses, or in ``offset=``/``weights=``/``trials=`` given as values, is dropped
(``"omit"``, R's ``na.omit``, saying how many), dropped with the per-row results padded back
(``"exclude"``, ``na.exclude``) or refused (``"fail"``, ``na.fail``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, MissingDataWarning
from .columns import per_row_values

NA_ACTIONS = ("omit", "exclude", "fail")


def check_na_action(na_action: Any) -> None:
    if na_action not in NA_ACTIONS:
        raise DataError(f"na_action must be one of {', '.join(map(repr, NA_ACTIONS))} (R's na.omit, na.exclude, "
                        f"na.fail), got {na_action!r}")


def subset_rows(data: pd.DataFrame, subset: Any, *specs: Any) -> tuple[Any, ...]:
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


def complete_rows(columns: dict[str, pd.Series], n: int) -> np.ndarray:
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


def rows_used(data: pd.DataFrame, columns: dict[str, pd.Series], per_row: dict[str, Any],
              na_action: str) -> tuple[dict[str, pd.Series], np.ndarray, pd.Index, int]:
    """The model's ``columns`` on the rows it uses, which rows those are (a mask over ``data``'s rows), their
    index and how many were dropped: the rows with a value in every column and in every argument of ``per_row``
    given as values (offset=, weights=, trials=; a column name among them is one of ``columns``)."""
    complete = complete_rows(columns, len(data))
    for name, spec in per_row.items():
        if spec is not None and not isinstance(spec, str):
            complete &= ~np.isnan(per_row_values(name, spec, len(data)))
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
            stacklevel=4,  # (the caller of build_design)
        )
        columns = {name: values[complete] for name, values in columns.items()}
        row_index = row_index[complete]
    return columns, complete, row_index, dropped
