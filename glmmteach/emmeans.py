r"""Estimated marginal means and their contrasts, with R emmeans' semantics.

:func:`emmeans` builds the *reference grid* of a fitted GLM or GLMM: every combination of the levels of
the model's factors, with each numeric covariate at its mean over the rows used in the fit (or at the
values given in ``at=``). The model matrix of the grid, :math:`X_g`, comes from the fit's own design (its
factor coding), so a marginal mean of the factors in ``specs`` is the equally weighted average of grid rows
over the other factors: :math:`\hat\eta = L\hat\beta + o` with :math:`L` the averaged rows, and

.. math:: \mathrm{SE}(\hat\eta) = \sqrt{\operatorname{diag}(L\,\hat V L^\top)}

by the delta method from the fit's fixed-effects covariance :math:`\hat V`. Intervals are asymptotic
(normal quantiles, df = Inf, as emmeans uses for glm and glmer fits; *t* on the residual degrees of freedom
for a gaussian glm, as emmeans). ``type="response"`` back-transforms: :math:`g^{-1}(\hat\eta)` with
:math:`\mathrm{SE} = |d\mu/d\eta|\,\mathrm{SE}(\hat\eta)` and the interval the back-transformed link
interval.

An offset is part of the grid as emmeans treats it: a variable inside ``offset()`` is a covariate at its
mean, so the default offset of a rate model with ``offset(logpop)`` is the mean log population;
``offset=`` (emmeans' argument) replaces it by a number, e.g. ``offset=0`` for rates per unit of exposure,
``offset=np.log(1e5)`` for rates per 100,000.

:func:`contrast` compares the means on the link scale (pairwise, revpairwise, treatment vs control) with
Tukey (studentized range, df = Inf), Holm, Bonferroni, Šidák or no adjustment; on the response scale of a
log or logit link the contrasts are ratios (rate ratios, odds ratios) as emmeans prints them, their tests
the link-scale tests.

``population_average=True`` (GLMMs) integrates the random effects out: the mean over the population of
groups :math:`E_b[g^{-1}(\hat\eta + z^\top b)]`, :math:`z^\top b \sim N(0, v)`, computed by adaptive
quadrature (for the log link exactly :math:`e^{\hat\eta + v/2}`). emmeans' ``bias.adjust = TRUE, sigma =
sqrt(v)`` approximates the same integral by a second-order Taylor expansion,
:math:`g^{-1}(\eta) + \tfrac{v}{2}\,(g^{-1})''(\eta)` (for the log link :math:`e^\eta(1 + v/2)`): close
for small :math:`v`, not exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import DataError, GlmmteachError, check_level
from .predict import population_average_mean, population_average_slope

CONTRAST_METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl")
ADJUSTMENTS = ("tukey", "holm", "bonferroni", "sidak", "none")
# links whose response-scale contrasts are ratios (exp of a log-scale difference), with emmeans' column label
RATIO_LINKS = {"log": "ratio", "logit": "odds.ratio"}
_FACTOR_CALL = re.compile(r"\b(?:as\.factor|factor|ordered|as\.ordered)\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*\)")
_NAME = re.compile(r"(?<![A-Za-z0-9_.])([A-Za-z_.][A-Za-z0-9_.]*)(?![A-Za-z0-9_.]*\s*\()")


@dataclass(frozen=True)
class MarginalMeans:
    """Estimated marginal means (the result of :func:`emmeans`): ``table`` holds one row per mean (the
    ``specs`` and ``by`` columns, then ``estimate``, ``SE``, ``lower``, ``upper``); the rest is what
    :func:`contrast` needs. ``linfct`` is emmeans' linear function :math:`L` (one row per mean, one column
    per coefficient), ``offset`` the offset of each mean on the link scale."""

    table: pd.DataFrame
    specs: tuple[str, ...]
    by: tuple[str, ...]
    linfct: np.ndarray
    offset: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    link: Any
    type: str
    df: float
    level: float
    labels: tuple[str, ...]
    population_average: bool = False

    def __repr__(self) -> str:
        scale = "response" if self.type == "response" else f"{self.link.name} (link)"
        pa = ", averaged over the random effects" if self.population_average else ""
        return f"Estimated marginal means on the {scale} scale{pa}:\n{self.table.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


@dataclass(frozen=True)
class _Grid:
    frame: pd.DataFrame  # the reference grid, one row per combination
    keys: list[str]  # the specs and by variables (the first varies fastest)
    key_levels: dict[str, list]


def emmeans(fit: Any, specs: str | list[str], by: str | list[str] | None = None, at: dict | None = None,
            type: str = "link", population_average: bool = False, offset: float | None = None,  # noqa: A002
            level: float = 0.95, data: pd.DataFrame | None = None) -> MarginalMeans:
    """Estimated marginal means of ``specs`` (R's ``emmeans(fit, specs, by, at, type, offset)``).

    ``specs`` and ``by``: factor names (as in the data: ``"trt"`` for a term ``factor(trt)``), or numeric
    covariates whose values ``at`` gives; ``specs`` may also be emmeans' one-sided formula,
    ``"~ trt * period"`` or ``"~ trt | period"``. ``at``: values of covariates (and levels of factors) for the
    reference grid. ``type``: ``"link"`` or ``"response"``. ``offset``: a number replacing the grid's offset
    (emmeans' ``offset=``). ``data``: the fitted data frame, for a fit that does not keep it (``fit.frame``).
    Works for :class:`~glmmteach.GLMResults` and :class:`~glmmteach.GLMMResults`; see the module docstring.
    """
    if type not in ("link", "response"):
        raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
    if population_average and type != "response":
        raise GlmmteachError("population_average=True averages means on the response scale: use type='response'")
    check_level("level", level)
    if isinstance(specs, str) and specs.strip().startswith("~"):
        specs, by = _one_sided(specs, by)
    specs_t, by_t = _as_names(specs, "specs"), _as_names(by, "by")
    if set(specs_t) & set(by_t):
        raise GlmmteachError(f"{sorted(set(specs_t) & set(by_t))} is in both specs and by")
    grid = _reference_grid(fit, _fit_frame(fit, data), [*specs_t, *by_t], at or {})
    weights, key_frame = _averaging(grid)
    if offset is None:
        X, grid_offset = fit.design.new_fixed(grid.frame)
        off = weights @ grid_offset
    else:  # emmeans' offset= replaces every offset (so a fit's offset given as an array needs none for the grid)
        X, _ = fit.design.new_fixed(grid.frame, np.zeros(len(grid.frame)))
        off = np.full(weights.shape[0], float(offset))
    L = weights @ X
    beta, vcov = _coefficients(fit, L)
    eta = L @ beta + off
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, vcov, L))
    df = _df(fit)
    q = _quantile(1 - (1 - level) / 2, df)
    link = fit.family.link
    if type == "link":
        est, se_out, lower, upper = eta, se, eta - q * se, eta + q * se
    elif population_average:
        est, se_out, lower, upper = _population_scale(eta, se, q, link, _re_variance(fit, grid, weights))
    else:
        est, se_out, lower, upper = _response_scale(eta, se, q, link)
    table = key_frame.assign(estimate=est, SE=se_out, lower=lower, upper=upper)
    labels = tuple(_labels(key_frame, specs_t))
    return MarginalMeans(table, specs_t, by_t, L, off, beta, vcov, link, type, df, level, labels, population_average)


def _response_scale(eta: np.ndarray, se: np.ndarray, q: float, link: Any) -> tuple[np.ndarray, ...]:
    """Back-transformed estimate, delta-method SE, back-transformed link interval (ends sorted)."""
    ends = np.sort(np.column_stack([link.linkinv(eta - q * se), link.linkinv(eta + q * se)]), axis=1)
    return link.linkinv(eta), np.abs(link.mu_eta(eta)) * se, ends[:, 0], ends[:, 1]


def _population_scale(eta: np.ndarray, se: np.ndarray, q: float, link: Any,
                      variance: np.ndarray) -> tuple[np.ndarray, ...]:
    """The population-averaged mean, its delta-method SE (the covariance held at its estimate) and the link
    interval's ends mapped through it (the averaged mean increases with eta)."""
    est, slope = _population_mean(eta, variance, link)
    lower = _population_mean(eta - q * se, variance, link)[0]
    upper = _population_mean(eta + q * se, variance, link)[0]
    return est, slope * se, lower, upper


def contrast(means: MarginalMeans, method: str = "pairwise", adjust: str = "tukey",
             level: float | None = None) -> pd.DataFrame:
    """Contrasts of marginal means (R's ``contrast(emm, method, adjust)`` with ``infer = c(TRUE, TRUE)``).

    Within each ``by`` group: ``"pairwise"`` (1 − 2, 1 − 3, …, 2 − 3, …), ``"revpairwise"`` (2 − 1, 3 − 1,
    3 − 2, …) or ``"trt.vs.ctrl"`` (each level against the first). ``adjust``: ``"tukey"`` (studentized
    range over the group's means; pairwise families only), ``"holm"``, ``"bonferroni"``, ``"sidak"`` or
    ``"none"``, within each ``by`` group. Holm adjusts p-values only: its intervals are Bonferroni's, as
    emmeans does. Columns ``contrast``, the ``by`` columns, ``estimate``, ``SE``, ``lower``, ``upper``, ``z``
    (``t`` for a gaussian glm, on its residual df), ``p``. For means on the response scale of a log or logit
    link the estimate is a ratio (labelled ``a / b``) with SE by the delta method and the back-transformed
    interval; ``z`` and ``p`` are those of the log-scale difference (the null ratio is 1). Other links
    compare on the link scale.
    """
    if not isinstance(means, MarginalMeans):
        raise GlmmteachError(f"contrast needs the result of glmmteach.emmeans, got {type(means).__name__}")
    if method not in CONTRAST_METHODS:
        raise GlmmteachError(f"method must be one of {', '.join(map(repr, CONTRAST_METHODS))}, got {method!r}")
    if adjust not in ADJUSTMENTS:
        raise GlmmteachError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, got {adjust!r}")
    if adjust == "tukey" and method == "trt.vs.ctrl":
        raise GlmmteachError("adjust='tukey' is for a family of all pairwise comparisons, not 'trt.vs.ctrl' "
                             "(emmeans switches to 'sidak'); choose 'holm', 'bonferroni', 'sidak' or 'none'")
    if means.population_average:
        raise GlmmteachError("contrasts of population-averaged means are not ratios of conditional means; "
                             "contrast the means of emmeans(..., population_average=False)")
    level = means.level if level is None else level
    ratio = means.type == "response" and means.link.name in RATIO_LINKS
    frames = []
    for rows, by_values in _by_groups(means):
        frames.append(_group_contrasts(means, rows, by_values, method, adjust, level, ratio))
    return pd.concat(frames, ignore_index=True)


# ---- the reference grid ---------------------------------------------------------------------------------
def _as_names(names: str | list[str] | None, what: str) -> tuple[str, ...]:
    if names is None:
        return ()
    out = (names,) if isinstance(names, str) else tuple(names)
    if not all(isinstance(n, str) for n in out) or (what == "specs" and not out):
        raise GlmmteachError(f"{what} must be a column name or a list of column names, got {names!r}")
    return out


def _one_sided(formula: str, by: Any) -> tuple[list[str], Any]:
    """emmeans' ``~ a * b | c`` (or ``~ a + b``): the specs before ``|``, the by variables after it."""
    left, _, right = formula.strip()[1:].partition("|")
    specs = [n.strip() for n in re.split(r"[*+:]", left) if n.strip()]
    after = [n.strip() for n in re.split(r"[*+:]", right) if n.strip()]
    if after and by is not None:
        raise GlmmteachError(f"specs {formula!r} has a '|' part: give the by variables there or in by=, not both")
    return specs, (after or by)


def _fit_frame(fit: Any, data: pd.DataFrame | None) -> pd.DataFrame:
    """The rows the model was fitted to (emmeans takes covariate means over them)."""
    frame = data if data is not None else getattr(fit, "frame", None)
    if frame is None:
        raise GlmmteachError("this fit does not keep its data frame: pass the fitted data as data=")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(frame).__name__}")
    rows = fit.design.row_index
    if len(rows) == len(frame) and rows.equals(frame.index):
        return frame
    if not frame.index.is_unique or not rows.isin(frame.index).all():
        raise DataError("data does not hold the rows the model was fitted to (its index differs or repeats)")
    return frame.loc[rows]


def _model_variables(fit: Any, frame: pd.DataFrame) -> tuple[list[str], set[str]]:
    """The data columns the fixed-effects formula uses (in formula order) and those it treats as factors."""
    terms = " + ".join(fit.design.parsed.fixed_terms)
    factor_calls = set(_FACTOR_CALL.findall(terms))
    names = [n for n in dict.fromkeys(_NAME.findall(terms)) if n in frame.columns]
    factors = {n for n in names if n in factor_calls or not _is_numeric(frame[n])}
    return names, factors


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _levels(column: pd.Series) -> list:
    """A factor's levels as R orders them: categories in their order, else the sorted distinct values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        return [c for c in column.cat.categories if c in present]
    return sorted(column.dropna().unique().tolist())


def _reference_grid(fit: Any, frame: pd.DataFrame, keys: list[str], at: dict) -> _Grid:
    names, factors = _model_variables(fit, frame)
    for name in [*keys, *at]:
        if name not in names:
            raise GlmmteachError(f"{name!r} is not a variable of the model's fixed effects "
                                 f"({', '.join(map(repr, names)) or 'none'})")
    values: dict[str, list] = {}
    for name in names:
        column = frame[name]
        if name in factors:
            levels = _levels(column)
            if name in at:
                chosen = np.atleast_1d(at[name]).tolist()
                unknown = [v for v in chosen if v not in levels]
                if unknown:
                    raise GlmmteachError(f"at={{{name!r}: ...}} gives level(s) {unknown} not in the data "
                                         f"(levels {levels})")
                levels = chosen
            values[name] = levels
        elif name in at:
            values[name] = [float(v) for v in np.atleast_1d(at[name])]
        elif name in keys:
            raise GlmmteachError(f"{name!r} is a numeric covariate: give its values with at={{{name!r}: [...]}}, "
                                 f"or write factor({name}) in the formula to treat it as a factor")
        else:
            values[name] = [float(column.mean())]
    # numeric columns the formula does not name (an offset= column) at their means, as emmeans does
    extras = {c: float(frame[c].mean()) for c in frame.columns if c not in values and _is_numeric(frame[c])}
    order = [*keys, *[n for n in values if n not in keys]]
    # first variable fastest (emmeans' order): the product varies its last factor fastest, so reverse
    index = pd.MultiIndex.from_product([values[n] for n in reversed(order)], names=list(reversed(order)))
    grid = index.to_frame(index=False)[order]
    for name in order:  # the fitted column's dtype, so that the design codes the grid as it coded the data
        if name in factors and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            grid[name] = grid[name].astype(frame[name].dtype)
        elif name in factors:
            grid[name] = pd.Categorical(grid[name], categories=frame[name].cat.categories)
    grid = grid.assign(**extras)
    return _Grid(grid, keys, {k: values[k] for k in keys})


def _averaging(grid: _Grid) -> tuple[np.ndarray, pd.DataFrame]:
    """Equal-weight averaging of grid rows into one mean per combination of the keys: the weight matrix
    (means × grid rows) and the keys' values of each mean."""
    sizes = [len(grid.key_levels[k]) for k in grid.keys]
    n_means = int(np.prod(sizes))
    # with the keys first in the product (first fastest), grid row i belongs to mean i mod n_means
    member = np.arange(len(grid.frame)) % n_means
    weights = np.zeros((n_means, len(grid.frame)))
    weights[member, np.arange(len(grid.frame))] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    keys = grid.frame.iloc[:n_means][grid.keys].reset_index(drop=True)
    return weights, keys


def _coefficients(fit: Any, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """β and its covariance; a mean that needs a non-estimable (NaN) coefficient is refused."""
    beta = fit.params.to_numpy(dtype=float)
    vcov = fit.cov_params().to_numpy(dtype=float)
    aliased = np.isnan(beta)
    if aliased.any():
        if np.any(np.abs(L[:, aliased]) > 1e-10):
            names = ", ".join(fit.params.index[aliased])
            raise GlmmteachError(f"the marginal means need the non-estimable coefficient(s) {names}: they are not "
                                 "estimable (emmeans reports them as nonEst)")
        beta, vcov = np.nan_to_num(beta), np.nan_to_num(vcov)
    return beta, vcov


def _df(fit: Any) -> float:
    """emmeans' degrees of freedom: Inf for glmer and glm fits, the residual df of a gaussian glm."""
    if fit.family.name == "gaussian":  # (a glm: glmer fits no gaussian family)
        return float(fit.df_resid)
    return np.inf


def _quantile(p: np.ndarray | float, df: float) -> np.ndarray | float:
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    return stats.norm.ppf(p) if np.isinf(df) else stats.t.ppf(p, df)


def _tail(z: np.ndarray, df: float) -> np.ndarray:
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    return 2 * (stats.norm.sf(np.abs(z)) if np.isinf(df) else stats.t.sf(np.abs(z), df))


def _labels(keys: pd.DataFrame, specs: tuple[str, ...]) -> list[str]:
    """emmeans' level labels: the spec values joined by spaces, a number prefixed by its variable name."""
    def label(name: str, value: Any) -> str:
        text = str(value)
        return f"{name}{text}" if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", text) else text

    columns = [[label(n, v) for v in keys[n].tolist()] for n in specs]  # (by column: iterrows upcasts a row)
    return [" ".join(parts) for parts in zip(*columns, strict=True)]


# ---- population-averaged means ----------------------------------------------------------------------------
def _re_variance(fit: Any, grid: _Grid, weights: np.ndarray) -> np.ndarray:
    r"""Variance :math:`v = \sum_t \bar z_t^\top\Sigma_t\bar z_t` of the random part of each mean's linear
    predictor, :math:`\bar z_t` the term's covariates averaged over the mean's grid rows (1 for an intercept)."""
    terms = getattr(fit, "terms", None)
    if terms is None:
        raise GlmmteachError("population_average=True needs a GLMM (a fit with random effects)")
    total = np.zeros(weights.shape[0])
    for term, T in zip(terms, fit.Ts, strict=True):
        z = weights @ term.new_covariates(grid.frame)
        total += np.einsum("na,ab,nb->n", z, T @ T.T, z)
    return total


def _population_mean(eta: np.ndarray, variance: np.ndarray, link: Any) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`E[g^{-1}(\eta + s)]` and its derivative in :math:`\eta`, :math:`E[(g^{-1})'(\eta + s)]`,
    :math:`s \sim N(0, v)`: the one population-average integral of the package
    (:func:`glmmteach.predict.population_average_mean`, to 1e-12 for every variance)."""
    return population_average_mean(eta, variance, link), population_average_slope(eta, variance, link)


# ---- contrasts -----------------------------------------------------------------------------------------
def _by_groups(means: MarginalMeans) -> list[tuple[np.ndarray, dict]]:
    if not means.by:
        return [(np.arange(len(means.table)), {})]
    keys = means.table[list(means.by)]
    groups = keys.groupby(list(means.by), sort=False).indices
    return [(np.asarray(rows), dict(zip(means.by, np.atleast_1d(value), strict=True)))
            for value, rows in groups.items()]


def _contrast_matrix(k: int, method: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows of +1/−1 over k means, in emmeans' order, and the (plus, minus) pair of each."""
    if method == "pairwise":
        pairs = [(i, j) for i in range(k - 1) for j in range(i + 1, k)]
    elif method == "revpairwise":
        pairs = [(i, j) for i in range(1, k) for j in range(i)]
    else:
        pairs = [(i, 0) for i in range(1, k)]
    C = np.zeros((len(pairs), k))
    for row, (i, j) in enumerate(pairs):
        C[row, i], C[row, j] = 1.0, -1.0
    return C, pairs


def _group_contrasts(means: MarginalMeans, rows: np.ndarray, by_values: dict, method: str, adjust: str,
                     level: float, ratio: bool) -> pd.DataFrame:
    k = len(rows)
    if k < 2:
        raise GlmmteachError("a contrast needs at least two means in each by group")
    C, pairs = _contrast_matrix(k, method)
    L = C @ means.linfct[rows]
    est = C @ (means.linfct[rows] @ means.beta + means.offset[rows])
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, means.vcov, L))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    p, q = _adjusted(z, len(pairs), k, means.df, adjust, level)
    labels = [means.labels[rows[i]] + (" / " if ratio else " - ") + means.labels[rows[j]] for i, j in pairs]
    frame = pd.DataFrame({"contrast": labels, **{name: [value] * len(pairs) for name, value in by_values.items()}})
    if ratio:
        estimate = np.exp(est)
        frame = frame.assign(estimate=estimate, SE=estimate * se, lower=np.exp(est - q * se),
                             upper=np.exp(est + q * se))
    else:
        frame = frame.assign(estimate=est, SE=se, lower=est - q * se, upper=est + q * se)
    return frame.assign(**{"z" if np.isinf(means.df) else "t": z, "p": p})


def _adjusted(z: np.ndarray, m: int, k: int, df: float, adjust: str, level: float) -> tuple[np.ndarray, float]:
    """Adjusted p-values of m contrasts among k means, and the interval's critical value."""
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    raw = _tail(z, df)
    alpha = 1 - level
    if adjust == "tukey":
        # emmeans: the studentized range of k means, |z| sqrt(2) its statistic
        p = stats.studentized_range.sf(np.abs(z) * np.sqrt(2), k, df)
        return p, float(stats.studentized_range.ppf(level, k, df) / np.sqrt(2))
    if adjust == "none":
        return raw, float(_quantile(1 - alpha / 2, df))
    if adjust == "sidak":
        return 1 - (1 - raw) ** m, float(_quantile(1 - (1 - level ** (1 / m)) / 2, df))
    q = float(_quantile(1 - alpha / (2 * m), df))  # Bonferroni's intervals (Holm's too, as emmeans)
    if adjust == "bonferroni":
        return np.minimum(1.0, m * raw), q
    order = np.argsort(raw)
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * raw[order]))
    p = np.empty(m)
    p[order] = stepped
    return p, q
