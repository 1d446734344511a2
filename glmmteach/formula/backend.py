"""formulae, the builder of the model matrices of formulas the direct builder declines.

`formulae <https://bambinos.github.io/formulae/>`_ (bambi's parser) evaluates the terms glmmteach does not
build itself (calls such as ``log(x + 5)``, ``poly(x, 2)``, ``scale(x)``, ordered factors through formulae,
``C(f, sum)``) and codes new rows for predictions. This module speaks its language: R's spelling translated
(:func:`to_formulae`), the functions a formula may call (:data:`NAMESPACE`), the variables of a right-hand
side, formulae's offsets split off, and its columns put in R's order (:func:`r_column_order`).
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import FormulaError
from .contrasts import CONTRASTS, contrast_box, ordered_box
from .syntax import CALL, split_top_level

if TYPE_CHECKING:
    from .columns import FitFrame


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
# (see to_formulae)
ORDERED = "glmmteach_ordered"
ORDERED_FACTOR = "glmmteach_ordered_factor"
_SCALE = "glmmteach_scale"
# a factor coded by R's contrasts: glmmteach_contr_sum(f) for contrasts={"f": "contr.sum"}, glmmteach_C_sum(f) for
# C(f, sum) written in the formula (named as R names it, "C(f, sum)1"); see to_formulae
_CONTRAST_FUNCTIONS = {f"glmmteach_{how}_{kind.removeprefix('contr.')}": contrast_box(kind)
                       for kind in CONTRASTS for how in ("contr", "C")}
NAMESPACE = {"log": _r_log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "exp": np.exp, "expm1": np.expm1,
             "sqrt": np.sqrt, "abs": np.abs, ORDERED: ordered_box, ORDERED_FACTOR: ordered_box, _SCALE: _RScale,
             **_CONTRAST_FUNCTIONS}
# the functions a formula may call (those formulae knows besides: C(), center(), bs(), ... and np.<function>)
SUPPORTED_CALLS = ("factor(), offset(), I(), log() (and log(x, base)), log2(), log10(), log1p(), exp(), expm1(), "
                   "sqrt(), abs(), scale(), poly(x, degree)")


_C_CALL = re.compile(r"\bC\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*,\s*(?:contr\.)?((?i:sum|helmert|treatment|poly))\s*\)")


def to_formulae(rhs: str, ordered: frozenset[str] = frozenset(),
                contrasts: tuple[tuple[str, str, int], ...] = ()) -> str:
    """formulae's spelling of ``rhs``: R's ``factor(x)`` is formulae's ``C(x)`` (treatment coding, first level as
    reference); an ordered factor ``x`` (a column in ``ordered``) gets R's polynomial contrasts through
    :data:`ORDERED`; a factor with other contrasts (``contrasts``: column, R's contrast, base level position; or
    ``C(x, sum)`` written in the formula) gets them through :data:`_CONTRAST_FUNCTIONS`; R's power ``^`` is
    Python's ``**`` (in ``I(x^2)``, and ``(a + b)^2``, crossing, in both); R's ``scale()`` is :class:`_RScale`;
    R's ``TRUE``/``FALSE`` are Python's."""
    rhs = _C_CALL.sub(lambda m: f"glmmteach_C_{m.group(2).lower()}({m.group(1)})", rhs)
    for name, kind, base in contrasts:
        call = f"glmmteach_contr_{kind.removeprefix('contr.')}({name}{f', {base}' if base else ''})"
        rhs = re.sub(rf"(?<![\w.(]){re.escape(name)}(?![\w.(])", call, rhs)
    for name in ordered - {c[0] for c in contrasts}:
        rhs = re.sub(rf"\bfactor\(\s*{re.escape(name)}\s*\)", f"{ORDERED_FACTOR}({name})", rhs)
        rhs = re.sub(rf"(?<![\w.(]){re.escape(name)}(?![\w.(])", f"{ORDERED}({name})", rhs)
    rhs = re.sub(r"(?<![\w.])scale\(", f"{_SCALE}(", rhs.replace("^", "**"))
    rhs = re.sub(r"(?<![\w.])(TRUE|FALSE)(?![\w.])", lambda m: m.group(1).title(), rhs)  # poly(x, 2, raw = TRUE)
    return re.sub(r"\bfactor\(", "C(", rhs)


@lru_cache(maxsize=256)
def variables(rhs: str) -> frozenset[str]:
    # parsed once per right-hand side: formulae's parser costs about half a millisecond a call
    from formulae import model_description  # (formulae is imported when a formula is first read)

    _check_calls(rhs)
    try:
        names = model_description(to_formulae(rhs)).var_names
    except Exception as err:
        raise FormulaError(f"cannot parse the formula terms {rhs!r}: {err} (inside a function call a formula may "
                           f"use columns, numbers and + - * / ^; the functions it may call: {SUPPORTED_CALLS})"
                           ) from err
    return frozenset(names) - {""}  # (formulae lists a number in a call, as in log(x + 5), as the name '')


def _known_function(name: str) -> bool:
    if name.startswith("np."):
        return callable(getattr(np, name[3:], None))
    from formulae.transforms import TRANSFORMS

    return name in NAMESPACE or name in TRANSFORMS or name == "factor"


def _check_calls(rhs: str) -> None:
    """A clear error for a function a formula cannot call (R's pmax(), ns(), ...), naming the term."""
    for term in split_top_level(rhs):
        for function in CALL.findall(term):  # (nested calls too)
            if not _known_function(function):
                raise FormulaError(
                    f"the formula term {term!r} calls {function}(), which glmmteach cannot evaluate; the "
                    f"functions a formula may call: {SUPPORTED_CALLS}, with columns, numbers and + - * / ^ "
                    "inside, e.g. log(x + 5) or I(x^2)")


def formulae_matrices(formulae_rhs: str, frame: pd.DataFrame) -> Any:
    """formulae's model matrices of ``formulae_rhs`` (already in formulae's spelling, :func:`to_formulae`) on
    ``frame``, with glmmteach's functions and no row dropped (missing values were handled before)."""
    from formulae import design_matrices

    return design_matrices(formulae_rhs, frame, na_action="error", extra_namespace=NAMESPACE)


def split_offsets(matrix_obj: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Separate formulae's offset(...) columns (summed) from the coefficient columns."""
    frame = matrix_obj.as_dataframe()
    is_offset = np.array([c.startswith("offset(") for c in frame.columns])
    values = frame.to_numpy(dtype=float)
    offset = values[:, is_offset].sum(axis=1) if is_offset.any() else np.zeros(len(frame))
    names = [c for c, o in zip(frame.columns, is_offset, strict=True) if not o]
    return values[:, ~is_offset], names, offset


def evaluate_new_data(model: Any, frame: pd.DataFrame) -> Any:
    """formulae's model matrices of new rows, without pandas 3's deprecation warning about formulae's code.

    formulae codes a factor of new rows with ``pd.Categorical(x, categories=levels)``, which pandas 3 warns
    about; it is formulae's internals, not the user's data (levels the fit did not see raise, and are named).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Constructing a Categorical with a dtype and values")
        return model.evaluate_new_data(frame)


def _r_term_order(names: list[str]) -> list[int]:
    """R's order of formulae's columns: main effects before interactions (stable: written order within degree)."""
    degree = [0 if nm == "Intercept" else nm.count(":") + 1 for nm in names]
    return sorted(range(len(names)), key=lambda j: degree[j])


def r_column_order(common: Any, by_degree: bool = True) -> list[int]:
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


class DeferredModel:
    """formulae's model of a right-hand side on the fitted rows, built when new rows are first coded with it
    (predictions): a fit whose matrices :func:`~glmmteach.formula.direct.direct_matrix` built does not pay for it."""

    def __init__(self, rhs: str, fit_frame: FitFrame):
        self.rhs = rhs
        self.fit_frame = fit_frame
        self._common: Any = None

    @property
    def common(self) -> Any:
        if self._common is None:
            self._common = formulae_matrices(to_formulae(self.rhs, self.fit_frame.ordered), self.fit_frame.frame).common
        return self._common

    @property
    def column_order(self) -> list[int]:
        return r_column_order(self.common)

    def evaluate_new_data(self, newdata: pd.DataFrame) -> Any:
        return self.common.evaluate_new_data(newdata)
