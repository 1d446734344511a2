"""R's contrasts: the codings of a factor's levels in a model matrix, and the ``contrasts=`` argument.

``contr.treatment`` (the default: indicators of every level but the reference), ``contr.sum``,
``contr.helmert`` and ``contr.poly`` (an ordered factor's orthonormal polynomials), as matrices and as
formulae encodings (:func:`ordered_box`, :func:`contrast_box`), which code a factor that spans the
intercept by indicators of all its levels, as R's full coding does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError


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


@cache
def _encodings() -> tuple[type, type, type]:
    """formulae's encodings of R's codings, and its ``CategoricalBox``: built on first use, so that ``import
    glmmteach`` does not import formulae (and the scipy.interpolate it loads) before a formula is read."""
    from formulae.categorical import CategoricalBox, ContrastMatrix, Encoding

    class PolyContrasts(Encoding):
        """An ordered factor as R codes it: polynomial contrasts (with indicators where the factor spans the
        intercept, as R's full coding)."""

        def code_with_intercept(self, levels: list) -> ContrastMatrix:
            return ContrastMatrix(np.eye(len(levels)), [str(level) for level in levels])

        def code_without_intercept(self, levels: list) -> ContrastMatrix:
            return ContrastMatrix(contr_poly(len(levels)), contr_poly_names(len(levels)))

    class RContrasts(Encoding):
        """A factor coded by one of R's contrasts (``contrasts=`` or ``C(f, sum)``): ``kind`` one of
        :data:`CONTRASTS`, ``base`` the reference level's position for ``contr.treatment``; indicators of every
        level where the factor spans the intercept, as R's full coding."""

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

    return PolyContrasts, RContrasts, CategoricalBox


def ordered_box(values: Any) -> Any:
    """formulae's box of an ordered factor, coded as R codes it (polynomial contrasts)."""
    poly, _, box = _encodings()
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        # the levels in the categorical's order; only those present (new rows need not have every level:
        # formulae codes them with the levels of the fit)
        present = values.cat.remove_unused_categories()
        return box(present, poly(), list(present.cat.categories))
    return box(values, poly(), None)


def contr_sum(n_levels: int) -> np.ndarray:
    """R's ``contr.sum(n)``: the first n - 1 levels against the last (coded -1), columns named 1, 2, ..."""
    return np.vstack([np.eye(n_levels - 1), -np.ones((1, n_levels - 1))])


def contr_helmert(n_levels: int) -> np.ndarray:
    """R's ``contr.helmert(n)``: column j contrasts level j + 1 with the mean of the levels before it."""
    rows, cols = np.arange(n_levels)[:, None], np.arange(1, n_levels)[None, :]
    return np.where(rows < cols, -1.0, np.where(rows == cols, cols.astype(float), 0.0))


CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly")


def contrast_box(kind: str) -> Any:
    def box(values: Any, base: int = 0) -> Any:
        _, coding, categorical_box = _encodings()
        levels = list(values.cat.remove_unused_categories().cat.categories) if isinstance(
            getattr(values, "dtype", None), pd.CategoricalDtype) else None
        return categorical_box(values, coding(kind, int(base)), levels)
    return box


def contrast_spec(contrasts: dict[str, Any] | None, columns: dict[str, pd.Series],
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
