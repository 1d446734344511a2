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

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, FormulaError, GlmmteachError
from ..families import Family, get_glmm_family
from ..formula import Design, build_design, parse_formula
from ..negbin import warn_bound
from .model import GroupedData
from .negbin import fit_negative_binomial_glmm
from .optimize import diagnose, fit_glmm
from .results import GLMMResults


def _check_nagq(nAGQ: Any) -> int:
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, int | np.integer) or nAGQ < 1:
        raise GlmmteachError(
            f"nAGQ must be a whole number >= 1 (1 = Laplace, more = adaptive Gauss-Hermite nodes), got {nAGQ!r}"
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


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    nAGQ: int = 1,
    offset: Any = None,
    trials: Any = None,
    theta: float | None = None,
) -> GLMMResults:
    r"""Fit a generalized linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        R-style formula with one random-effects term, e.g. ``"outcome ~ trt*period + (1|ID)"``,
        ``"y ~ x + (1 + x | g)"`` (correlated intercept and slope) or ``"y ~ x + (1 + x || g)"``
        (uncorrelated). ``offset(z)`` terms are allowed.
    data : DataFrame
        Rows with a missing value in a model variable are dropped (and counted).
    family, link
        ``"binomial"`` (logit, probit, cloglog), ``"poisson"`` (log) or ``"negative_binomial"`` (log;
        NB2, lme4's ``glmer.nb``: the shape :math:`\theta_{NB}` is estimated by maximum likelihood and
        reported as ``nb_theta``, with ``nb_theta_se``).
    nAGQ : int
        1: Laplace approximation; > 1: adaptive Gauss–Hermite quadrature with that many nodes
        per group (only for a single scalar random effect, as in lme4).
    offset : str or array, optional
        Extra known term of the linear predictor (column name or values).
    trials : str or array, optional
        Binomial totals: the response then counts successes out of ``trials``.
    theta : float, optional
        A known negative binomial shape (lme4's ``glmer(family = negative.binomial(theta))``).

    Returns
    -------
    GLMMResults
    """
    n_nodes = _check_nagq(nAGQ)
    fam = get_glmm_family(family, link, theta)
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(
            f"the formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use glmmteach.glm"
        )
    bar = parsed.bars[0]
    if isinstance(data, pd.DataFrame) and bar.group not in data.columns:
        raise DataError(
            f"the grouping factor {bar.group!r} of the random-effects term {bar} is not a column of the data"
        )
    design = build_design(formula, data, family=fam, offset=offset, trials=trials)
    if len(design.random) > 1:
        raise FormulaError(
            f"glmer fits one grouping factor; the formula has {len(design.random)}: "
            + ", ".join(t.group_name for t in design.random)
        )
    term = design.random[0]
    if n_nodes > 1 and term.Z.shape[1] != 1:
        raise GlmmteachError(
            f"nAGQ > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect; "
            f"{' + '.join(map(str, parsed.bars))} has "
            f"{term.Z.shape[1]} effects per group ({', '.join(term.names)}). Use nAGQ=1 (Laplace)."
        )
    _check_response_varies(design, fam)
    if np.linalg.matrix_rank(design.X) < design.X.shape[1]:
        raise DataError(
            "the fixed-effects model matrix is rank deficient (some columns of "
            f"{', '.join(design.column_names)} are linear combinations of others); drop the redundant terms"
        )
    estimate_shape = fam.is_negative_binomial and fam.theta is None
    grouped = GroupedData(
        design.X, term.Z, design.y, term.group_codes, term.n_groups, fam.with_theta(1.0) if estimate_shape else fam,
        trials=design.trials if design.has_trials else None,
        offset=design.offset if np.any(design.offset != 0) else None,
    )
    shape = None
    if estimate_shape:  # lme4's glmer.nb
        grouped, outcome, shape = fit_negative_binomial_glmm(grouped, term.correlated, n_nodes)
        fam = grouped.family
        warn_bound(shape, stacklevel=2)
    else:
        outcome = fit_glmm(grouped, term.correlated, n_nodes)
    diagnosis = diagnose(outcome, grouped, term.correlated, design.column_names)
    diagnosis.emit(stacklevel=2)
    return GLMMResults(formula, fam, design, grouped, outcome, diagnosis, n_nodes, data, nb_shape=shape)
