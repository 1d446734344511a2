r"""Generalized linear mixed models by maximum likelihood: :func:`glmer`, as lme4's ``glmer``.

The model (one grouping factor, lme4's parametrisation):

.. math::

    g\bigl(E[y_{ij} \mid u_i]\bigr) = \eta_{ij} = x_{ij}^\top\beta + o_{ij} + z_{ij}^\top T_\theta u_i,
    \qquad u_i \sim N(0, I_r), \qquad \Sigma = T_\theta T_\theta^\top .

Data flow in lme4's shape: the formula gives the model matrices and the random-effects term
(:mod:`glmmteach.formula`, :mod:`glmmteach.glmm.terms`); :mod:`glmmteach.glmm.pirls` finds the
conditional modes, :mod:`glmmteach.glmm.devfun` the Laplace or adaptive Gauss–Hermite
log-likelihood and its gradient, :mod:`glmmteach.glmm.optimize` maximises it and diagnoses the
fit, and :class:`~glmmteach.glmm.results.GLMMResults` records the result.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, FormulaError, GlmmteachError, GlmmteachWarning
from ..families import Family, get_glmm_family
from ..formula import (
    Design,
    RandomTerm,
    build_design,
    check_response,
    grouping_columns,
    new_response_values,
    parse_formula,
)
from ..theta_ml import warn_bound
from .diagnosis import diagnose
from .grouped import GroupedModel
from .laplace_check import laplace_warning
from .model import GroupedData, MixedModel
from .nagq0 import fit_nagq0
from .nb_shape import fit_negative_binomial_glmm
from .optimize import fit_glmm
from .results import GLMMResults, ModelSpec
from .separation import separation_warning
from .sparse import SparseModel, StackedCovariance, TermLayout
from .terms import CovarianceTerm, quadrature_available


def _check_nagq(nAGQ: Any) -> int:
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, int | np.integer) or nAGQ < 0:
        raise GlmmteachError(
            f"nAGQ must be a whole number >= 0 (1 = Laplace, more = adaptive Gauss-Hermite nodes, 0 = lme4's fast "
            f"approximation), got {nAGQ!r}"
        )
    return int(nAGQ)


def _check_response_varies(design: Design, family: Family) -> None:
    y = design.y
    name = design.response_name
    if family.is_binomial:
        if np.all(y == 0):
            what = "0 (no successes)"
        elif np.all(y == design.trials):
            what = "all trials (successes)" if design.has_trials else "1"
        else:
            return
        raise DataError(
            f"the response {name!r} is {what} in every row: with identical outcomes the fixed effects "
            "have no finite maximum-likelihood estimate"
        )
    if np.all(y == y[0]):
        raise DataError(
            f"the response {name!r} has the same value ({y[0]:g}) in every row: there is no variation to model"
        )


def _check_bar_operators(bars: list) -> None:
    """Inside a bar lme4 reads a model formula (``1``, ``x``, ``0 + x``, ``1 + x``, ``factor(f)``) left of it
    and a grouping factor (``g``, ``a:b``, ``a/b``) right of it; name any other operator."""
    for bar in bars:
        bad = set(re.sub(r"[A-Za-z0-9_.()\s+*:^-]", "", bar.expr))
        if bad:
            raise FormulaError(
                f"the random-effects term {bar} uses {', '.join(map(repr, sorted(bad)))} left of the bar; it takes "
                "an expression such as 1, x, 0 + x or 1 + x")
        grouping_columns(bar)


def _check_finite(design: Design, terms: list[RandomTerm]) -> None:
    """Every value the fit uses is finite; name the column and the first offending row."""
    named = [(design.response_name, design.y), ("offset", design.offset), ("trials", design.trials)]
    named += list(zip(design.column_names, design.X.T, strict=True))
    for term in terms:
        named += [(f"{name} (random-effect column of {term.expr} | {term.group_name})", column)
                  for name, column in zip(term.names, np.asarray(term.Z).reshape(design.nobs, -1).T, strict=True)]
    for name, values in named:
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            kind = "infinite" if np.isinf(values[bad[0]]) else "not a number"
            raise DataError(
                f"column {name!r} is {kind} ({values[bad[0]]}) in row {design.row_index[bad[0]]!r} "
                f"({bad.size} row{'s' if bad.size > 1 else ''} in all): glmer needs finite values"
            )


# Double precision rounds each row's log-likelihood to about eps * m * (1 + log m) (m the count, or the
# binomial trials: its terms y log(mu) and log(y!) are that large and cancel). The convergence test
# (Newton decrement 1e-6) and likelihood-ratio comparisons need the sum to about 1e-4; beyond it a fit
# stops at its start values (counts near 1e9 with a few hundred rows already fail to converge).
LOGLIK_PRECISION = 1e-4


def _check_precision(design: Design, family: Family, trials_name: str) -> None:
    sizes = np.asarray(design.trials if family.is_binomial else design.y, dtype=float)
    rounding = np.finfo(float).eps * float(np.sum(sizes * (1.0 + np.abs(np.log(np.maximum(sizes, 1.0))))))
    if rounding <= LOGLIK_PRECISION:
        return
    worst = int(np.argmax(sizes))
    what = f"binomial trials {trials_name!r}" if family.is_binomial else f"counts in {design.response_name!r}"
    raise DataError(
        f"the {what} are too large for a {family.name} log-likelihood in double precision: the largest is "
        f"{sizes[worst]:.6g} (row {design.row_index[worst]!r}), and the log-likelihood of these data is rounded "
        f"to about +-{rounding:.2g}, more than the {LOGLIK_PRECISION:g} a fit and a likelihood-ratio test need. "
        "Counts this large carry almost no sampling noise (SD sqrt(n), relative 1/sqrt(n)): model the rates or "
        "log counts with a Gaussian model, or use smaller units"
    )


def _check_random_effects(term: RandomTerm, nobs: int) -> None:
    """lme4's checks on the random-effects term: > 1 level, more rows than random effects, no empty column."""
    label = f"({term.expr} | {term.group_name})"
    if term.n_groups < 2:
        raise DataError(
            f"grouping factors must have > 1 sampled level: {term.group_name!r} has only "
            f"{term.group_levels[0]!r}, so {label} has no between-group variance to estimate"
        )
    n_re = term.n_groups * len(term.names)
    if nobs < n_re:
        raise DataError(
            f"number of observations (={nobs}) < number of random effects (={n_re}) for term {label}; the "
            "random-effects parameters are unidentifiable (as lme4 refuses)"
        )
    Z = np.asarray(term.Z).reshape(nobs, -1)
    for name, column in zip(term.names, Z.T, strict=True):
        if not np.any(column != 0):
            raise DataError(
                f"the random-effect column {name!r} of {label} is zero in every row: its variance cannot be "
                "estimated; drop it from the term"
            )


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    nAGQ: int = 1,
    offset: Any = None,
    trials: Any = None,
    weights: Any = None,
    theta: float | None = None,
    subset: Any = None,
    na_action: str = "omit",
    contrasts: dict[str, Any] | None = None,
    start: Any = None,
) -> GLMMResults:
    r"""Fit a generalized linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        R-style formula with random-effects terms as lme4 reads them, e.g. ``"outcome ~ trt*period + (1|ID)"``,
        ``"y ~ x + (1 + x | g)"`` (correlated intercept and slope), ``"y ~ x + (1 + x || g)"``
        (uncorrelated), crossed ``(1 | a) + (1 | b)``, nested ``(1 | school/class)`` (=
        ``(1 | class:school) + (1 | school)``), an interaction of factors ``(1 | a:b)``, an
        observation-level effect ``(1 | obs)``. One term is fitted by the batched single-factor engine,
        several by the sparse engine (:mod:`glmmteach.glmm.sparse`); the terms are ordered as lme4 orders
        them (by decreasing number of levels). ``offset(z)`` terms are allowed. The fixed part reads as R's
        ``glm`` does (``a/b``, ``cbind(successes, failures)``, factor responses: see :func:`glmmteach.glm`);
        ``(1 + f || g)`` with a factor ``f`` is lme4's ``(1 | g) + (0 + f | g)``, the level effects correlated.
    data : DataFrame
        Rows with a missing value in a model variable are dropped (and counted).
    family, link
        ``"binomial"`` (logit, probit, cloglog), ``"poisson"`` (log) or ``"negative_binomial"`` (log;
        NB2, lme4's ``glmer.nb``: the shape :math:`\theta_{NB}` is estimated by maximum likelihood and
        reported as ``nb_theta``, with ``nb_theta_se``; any random-effects structure above). Where the
        profile likelihood rises all the way to the Poisson limit, ``nb_theta`` is ``inf``, the fit is the
        Poisson GLMM (a warning says so) and ``converged`` is that fit's; a shape that cannot be verified
        as the profile's maximum gives a warning and ``converged=False``.
    nAGQ : int
        1: Laplace approximation; 0: lme4's ``nAGQ = 0``, an approximation (the fixed effects estimated inside
        the penalised least squares, only theta optimised; :mod:`glmmteach.glmm.nagq0`; not with an estimated
        negative binomial shape): lme4's fast first stage, but here 4-5 times slower than the Laplace fit, which
        it does not replace; > 1: adaptive Gauss–Hermite quadrature with that many nodes
        per group (only for a single scalar random-effects term, as in lme4). Such a fit is called converged
        only if its log-likelihood at the optimum moves by at most 0.01 with twice the nodes: where the
        quadrature is not accurate (large SDs with few observations per group) the optimiser climbs the
        approximation's error, and glmer says so.
    offset : str or array, optional
        Extra known term of the linear predictor (column name or values).
    trials : str or array, optional
        Binomial totals: the response then counts successes out of ``trials``.
    weights : str or array, optional
        Prior weights (lme4's ``weights=``): row :math:`j` contributes :math:`w_j\log f(y_j)` to
        the log-likelihood. For a binomial response given as a *proportion* (no ``trials``), the
        weights are the numbers of trials, as in R: ``glmer("p ~ x + (1|g)", data, weights="n")`` is
        the same model as ``glmer("y ~ x + (1|g)", data, trials="n")`` with ``y = p n`` successes.
    theta : float, optional
        A known negative binomial shape (lme4's ``glmer(family = negative.binomial(theta))``).
    subset : array or str, optional
        The rows to fit (R's ``subset=``): a boolean mask, one value per row, or an expression on the columns
        such as ``"f != 'c'"``.
    na_action : str
        R's ``na.action``: ``"omit"`` (the default) drops the rows with a missing value in a model variable,
        ``"exclude"`` drops them too but pads fitted values and residuals with NaN in those rows, ``"fail"``
        refuses missing values.
    contrasts : dict, optional
        R's ``contrasts=`` for the fixed effects (as :func:`glmmteach.glm`), e.g. ``{"f": "contr.sum"}``.
    start : array or dict, optional
        lme4's ``start=``: where the optimiser starts, ``{"theta": [...], "fixef": [...]}`` (either may be left
        out) or an array of theta (lme4's order, :attr:`GLMMResults.theta`). The optimum is the same; a start
        near it saves iterations (e.g. the estimates of a fit to similar data).

    Returns
    -------
    GLMMResults
    """
    spec, design, theta_start, beta_start = glmm_design(formula, data, family, link, nAGQ, offset, trials, weights,
                                                        theta, subset, na_action, contrasts, start)
    return fit_design(spec, design, data, theta_start, beta_start, stacklevel=3)


def glmm_design(
    formula: str, data: pd.DataFrame, family: str | Family = "binomial", link: str | None = None, nAGQ: int = 1,
    offset: Any = None, trials: Any = None, weights: Any = None, theta: float | None = None, subset: Any = None,
    na_action: str = "omit", contrasts: dict[str, Any] | None = None, start: Any = None,
) -> tuple[ModelSpec, Design, np.ndarray | None, np.ndarray | None]:
    """:func:`glmer`'s arguments checked and read: the model's spec, its design and the start (theta, beta),
    for the functions that fit the same model another way (:func:`glmmteach.bglmer`)."""
    n_nodes = _check_nagq(nAGQ)
    fam = get_glmm_family(family, link, theta)
    if n_nodes == 0 and fam.is_negative_binomial and fam.theta is None:
        raise GlmmteachError("nAGQ=0 is not available when the negative binomial shape is estimated; use nAGQ=1, "
                             "or give a known shape with theta=")
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(
            f"the formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use glmmteach.glm"
        )
    _check_bar_operators(parsed.bars)
    for bar in parsed.bars:
        for column in grouping_columns(bar):
            if isinstance(data, pd.DataFrame) and column not in data.columns:
                raise DataError(
                    f"the grouping factor {column!r} of the random-effects term {bar} is not a column of the data"
                )
    proportion = fam.is_binomial and weights is not None and trials is None and parsed.failures is None
    design = build_design(formula, data, family=None if proportion else fam, offset=offset, trials=trials,
                          weights=weights, subset=subset, na_action=na_action, contrasts=contrasts)
    if proportion:
        design = _proportions_as_trials(design, weights)
    if design.X.shape[1] == 0:  # (lme4 allows it; this engine's start and diagnosis need a fixed effect)
        raise FormulaError(
            f"the formula {formula!r} has no fixed effect (no intercept and no other term); glmer needs at least "
            "one: drop the '0' (or '- 1') or add a term")
    terms = design.random
    if n_nodes > 1 and not quadrature_available([term.Z.shape[1] for term in terms]):
        _refuse_quadrature(terms, parsed.bars)
    _check_finite(design, terms)
    for term in terms:
        _check_random_effects(term, design.nobs)
    _warn_observation_level_binary(design, fam, terms)
    trials_source = weights if proportion else trials  # a proportion's weights are its trials
    _check_precision(design, fam, trials_source if isinstance(trials_source, str) else
                     ("weights" if proportion else "trials"))
    if np.linalg.matrix_rank(design.X) < design.X.shape[1]:
        raise DataError(
            "the fixed-effects model matrix is rank deficient (some columns of "
            f"{', '.join(design.column_names)} are linear combinations of others); drop the redundant terms"
        )
    theta_start, beta_start = _check_start(start, design, fam)
    return ModelSpec(formula, fam, n_nodes, proportion), design, theta_start, beta_start


def _check_start(start: Any, design: Design, family: Family) -> tuple[np.ndarray | None, np.ndarray | None]:
    """lme4's ``start=``: theta and fixed effects where the optimiser starts, checked against the model."""
    if start is None:
        return None, None
    if family.is_negative_binomial and family.theta is None:
        raise GlmmteachError("start= is not available when the negative binomial shape is estimated (its search "
                             "starts each fit of the shape); give theta= to fit a known shape from a start")
    if isinstance(start, dict):
        unknown = set(start) - {"theta", "fixef"}
        if unknown:
            raise GlmmteachError(f"start= takes the keys 'theta' and 'fixef' (as lme4), not {sorted(unknown)}")
        theta, beta = start.get("theta"), start.get("fixef")
    else:
        theta, beta = start, None
    covariance = StackedCovariance([CovarianceTerm(len(t.names), t.correlated) for t in design.random])
    expected = {"theta": covariance.n_theta, "fixef": design.X.shape[1]}
    out = []
    for name, values in (("theta", theta), ("fixef", beta)):
        if values is None:
            out.append(None)
            continue
        try:
            array = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError) as err:
            raise GlmmteachError(f"start={name}: {name} must be numbers ({err})") from err
        if array.size != expected[name] or not np.all(np.isfinite(array)):
            raise GlmmteachError(f"start={name}: the model has {expected[name]} {name} values "
                                 f"({'lme4 order' if name == 'theta' else ', '.join(design.column_names)}), "
                                 f"got {array.size} (all must be finite)")
        out.append(array)
    if out[0] is not None and np.any(out[0] < covariance.lower_bounds):
        raise GlmmteachError("start=theta: the relative standard deviations (diagonal entries of T) must be >= 0; "
                             f"got {out[0].tolist()}")
    return out[0], out[1]


def fit_design(spec: ModelSpec, design: Design, frame: pd.DataFrame | None = None,
               theta_start: np.ndarray | None = None, beta_start: np.ndarray | None = None,
               stacklevel: int = 2) -> GLMMResults:
    """Fit the GLMM of a built :class:`~glmmteach.formula.Design`: the last step of :func:`glmer`, and what
    :func:`refit_response` calls with a new response and the previous estimates as the start."""
    _check_response_varies(design, spec.family)
    term = design.random[0]
    estimate_shape = spec.family.is_negative_binomial and spec.family.theta is None
    grouped = GroupedData(
        design.X, term.Z, design.y, term.group_codes, term.n_groups,
        spec.family.with_theta(1.0) if estimate_shape else spec.family,
        trials=design.trials if design.has_trials else None,
        offset=design.offset if np.any(design.offset != 0) else None,
        prior_weights=design.weights if np.any(design.weights != 1) else None,
    )
    # the one choice of representation: one grouping factor (batched blocks) or several terms (sparse)
    model: MixedModel = (GroupedModel(grouped, CovarianceTerm(term.Z.shape[1], term.correlated), max(spec.n_nodes, 1))
                         if len(design.random) == 1 else general_model(grouped, design.random))
    shape = None
    if estimate_shape:  # lme4's glmer.nb (refit_response estimates the shape again)
        model, outcome, shape = fit_negative_binomial_glmm(model)
        warn_bound(shape, stacklevel=stacklevel)
    elif spec.n_nodes == 0:  # lme4's nAGQ = 0: an approximation, asked for by name
        outcome = fit_nagq0(model, theta_start=theta_start, beta_start=beta_start)
    else:
        log_prior = None if spec.prior is None else spec.prior.log_density(model, term.correlated)
        outcome = fit_glmm(model, theta_start=theta_start, beta_start=beta_start, log_prior=log_prior,
                           method=spec.optimizer)
    diagnosis = diagnose(outcome, model, column_names=design.column_names)
    separated = separation_warning(spec.family, design.X, design.y, design.trials,
                                   spec.family.linkinv(outcome.state.eta), design.column_names)
    if separated is not None and spec.prior is not None and spec.prior.bounds_fixef:
        separated = None  # a proper prior on every fixed effect: the posterior mode exists (bglmer's purpose)
    laplace = laplace_warning(model, outcome.theta, outcome.beta, outcome.llf, spec.n_nodes)
    problems = [found for found in (separated, laplace) if found is not None]
    if problems:  # no maximum exists, or the approximation's is not the likelihood's: not a converged fit
        diagnosis.warnings.extend(problems)
        outcome = replace(outcome, converged=False)
    diagnosis.emit(stacklevel=stacklevel)
    return GLMMResults(spec.formula, model.family, design, model, outcome, diagnosis, frame, spec,
                       nb_shape=shape, refit_with=refit_response)


def general_model(grouped: GroupedData, terms: list[RandomTerm]) -> SparseModel:
    """The general (sparse) engine's model of several random-effects terms (lme4's order)."""
    layouts = [TermLayout(t.group_name, np.asarray(t.group_codes), t.n_groups,
                          np.asarray(t.Z, dtype=float).reshape(grouped.nobs, -1),
                          CovarianceTerm(len(t.names), t.correlated)) for t in terms]
    return SparseModel(grouped, layouts)


def _warn_observation_level_binary(design: Design, family: Family, terms: list[RandomTerm]) -> None:
    """An observation-level random effect on a binary response is not identified (each 0/1 outcome says
    nothing about the variance of its own effect beyond the mean): warn, as the fit's variance is arbitrary."""
    binary = family.is_binomial and not (design.has_trials and np.any(design.trials > 1))
    for term in terms:
        if binary and term.n_groups == design.nobs:
            warnings.warn(
                f"the random-effects term ({term.expr} | {term.group_name}) has one level per observation on a binary "
                "response: an observation-level effect is not identifiable from 0/1 outcomes (its variance is "
                "confounded with the link function's); drop it, or use it only with counts or binomial trials",
                GlmmteachWarning, stacklevel=4)


def refit_response(result: GLMMResults, new_response: Any) -> GLMMResults:
    """The model of ``result`` fitted to ``new_response`` (lme4's ``refit(fit, newresp)``), starting from
    ``result``'s estimates; see :meth:`GLMMResults.refit`."""
    spec, design = result.spec, result.design
    y = new_response_values(new_response, design.nobs, design.response_name)
    if spec.proportion:
        new_design = _proportions_as_trials(replace(design, y=y, weights=design.trials, has_trials=False),
                                            "the trials")
    else:
        check_response(spec.family, y, design.trials if design.has_trials else None, design.response_name)
        new_design = replace(design, y=y)
    # the likelihood's gradient in a diagonal entry of theta is exactly 0 at 0: a start there cannot leave it
    diagonal = result.model.covariance.diagonal
    theta0 = np.where(diagonal & (np.abs(result.theta) < 0.1), 0.1, result.theta)
    return fit_design(spec, new_design, result.frame, theta0, result.params.to_numpy(), stacklevel=4)


def _refuse_quadrature(terms: list, bars: list) -> None:
    """glmer's refusal of nAGQ > 1 where quadrature is not defined (:func:`~glmmteach.glmm.terms.quadrature_available`),
    naming the terms or the effects, as lme4 refuses."""
    random_part = " + ".join(map(str, bars))
    if len(terms) > 1:
        raise GlmmteachError(
            f"nAGQ > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect; {random_part} has "
            f"{len(terms)} random-effects terms ({', '.join(t.group_name for t in terms)}), as lme4 refuses. "
            "Use nAGQ=1 (Laplace).")
    raise GlmmteachError(
        f"nAGQ > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect; {random_part} has "
        f"{terms[0].Z.shape[1]} effects per group ({', '.join(terms[0].names)}). Use nAGQ=1 (Laplace).")


def _proportions_as_trials(design: Design, weights: Any) -> Design:
    """A binomial proportion ``y`` with prior weights ``n`` is ``n y`` successes out of ``n`` trials (R's
    reading of ``glmer(p ~ ..., weights = n)``): the design gets trials and unit weights."""
    y, n = design.y, design.weights
    label = f"weights column {weights!r}" if isinstance(weights, str) else "weights="
    name = design.response_name
    if not np.all(np.isfinite(y)) or np.any((y < 0) | (y > 1)):
        bad = y[~(np.isfinite(y) & (y >= 0) & (y <= 1))][0]
        raise DataError(f"binomial response {name!r} with weights= must be a proportion between 0 and 1; it has "
                        f"value {bad!r} (for counts of successes pass trials= instead)")
    if np.any(n < 1) or np.any(n != np.round(n)):
        bad = n[(n < 1) | (n != np.round(n))][0]
        raise DataError(f"{label} gives the numbers of trials of the proportions in {name!r}: they must be whole "
                        f"numbers of at least 1, got {bad!r}")
    successes = y * n
    whole = np.round(successes)
    off = np.abs(successes - whole) > 1e-7 * np.maximum(n, 1.0)
    if off.any():
        j = int(np.argmax(off))
        raise DataError(f"binomial response {name!r} times {label} must be whole numbers of successes; row {j} has "
                        f"{y[j]!r} x {n[j]!r} = {successes[j]!r}")
    return replace(design, y=whole, trials=n.copy(), weights=np.ones_like(n), has_trials=True)
