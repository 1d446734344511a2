r"""blme's ``bglmer``: the GLMM fitted by *maximum a posteriori* with blme's priors.

Where the likelihood has no interior maximum — a random-effect SD estimated at 0 (a singular fit), an SD that
runs away (the crossover's :math:`\hat\tau = 23` under Laplace, infinite in 31 of lesson 14's 200 simulated
trials), fixed effects that separate the outcomes — a weak prior gives a finite, interior estimate: the mode
of the posterior density. :func:`bglmer` maximises the log-likelihood (Laplace or adaptive Gauss–Hermite, the
same engine as :func:`glmmteach.glmer`) plus the log prior of :mod:`glmmteach.glmm.priors`, as blme does, with
blme's default: a Wishart prior on every covariance (a gamma(2.5, 0) on a scalar SD, Chung et al. 2013) and
flat fixed effects.

The result is a :class:`~glmmteach.glmm.results.GLMMResults` whose ``llf`` is the log-likelihood at the posterior
mode (blme's ``logLik``), ``log_prior`` the log prior density there and ``prior`` the priors; its summary says
that the estimates are posterior modes. Standard errors come from the curvature of the log posterior (as blme's
``vcov``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from ..exceptions import GlmmteachError
from ..families import Family
from ..formula import Design
from .api import fit_design, glmm_design
from .model import GroupedData
from .priors import ResolvedFixef, resolve_priors
from .results import GLMMResults


def bglmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    nAGQ: int = 1,
    cov_prior: Any = "wishart",
    fixef_prior: Any = None,
    offset: Any = None,
    trials: Any = None,
    weights: Any = None,
    theta: float | None = None,
    subset: Any = None,
    na_action: str = "omit",
    contrasts: dict[str, Any] | None = None,
    start: Any = None,
) -> GLMMResults:
    r"""Fit a GLMM by maximum a posteriori with blme's priors, as blme's ``bglmer``.

    Parameters
    ----------
    formula, data, family, link, nAGQ, offset, trials, weights, theta, subset, na_action, contrasts, start
        As :func:`glmmteach.glmer` (``nAGQ = 0`` and an estimated negative binomial shape are not offered:
        give ``theta=`` for a known shape).
    cov_prior
        blme's ``cov.prior``: ``"wishart"`` (the default: ``priors.wishart()``, df = dimension + 2.5,
        scale = inf), ``"invwishart"``, ``"gamma"``, ``"invgamma"``, a prior from :mod:`glmmteach.priors`
        with its arguments (``priors.gamma(shape=2, rate=0.5)``), ``None`` for flat, or a dict from grouping
        factor to any of these (terms not named are flat).
    fixef_prior
        blme's ``fixef.prior``: ``None`` (flat, the default), ``"normal"`` (``priors.normal()``: SD 10 for
        the first coefficient, 2.5 for the others), ``"t"`` (``priors.t()``) or a prior with its arguments.

    Returns
    -------
    GLMMResults
        Posterior modes (not maximum-likelihood estimates); ``llf`` is the log-likelihood there.

    Examples
    --------
    >>> from glmmteach import bglmer, priors, load_crossover
    >>> fit = bglmer("outcome ~ trt * period + (1 | ID)", load_crossover())     # doctest: +SKIP
    >>> fit = bglmer("y ~ x + (1 | g)", data, fixef_prior=priors.t())           # doctest: +SKIP
    """
    if isinstance(nAGQ, int) and not isinstance(nAGQ, bool) and nAGQ == 0:
        raise GlmmteachError("bglmer needs nAGQ >= 1 (Laplace or adaptive Gauss-Hermite); nAGQ = 0 is not offered")
    spec, design, theta_start, beta_start = glmm_design(formula, data, family, link, nAGQ, offset, trials, weights,
                                                        theta, subset, na_action, contrasts, start)
    if spec.family.is_negative_binomial and spec.family.theta is None:
        raise GlmmteachError("bglmer does not estimate a negative binomial shape; give a known shape with theta=")
    priors = resolve_priors(cov_prior, fixef_prior, design.random, design.column_names)
    if priors.fixef is not None and beta_start is None:
        beta_start = map_glm_start(design, spec.family, priors.fixef)
    return fit_design(replace(spec, prior=priors), design, data, theta_start, beta_start, stacklevel=3)


def map_glm_start(design: Design, family: Family, prior: ResolvedFixef) -> np.ndarray:
    """The fixed effects' start of a fit with a fixed-effect prior: the GLM's posterior mode (no random effects).

    The plain GLM start has no finite maximum on separated data (its Newton steps run off to 1e15 and the
    whitening computed there is useless), which is where a fixed-effect prior is used."""
    term = design.random[0]
    data = GroupedData(design.X, term.Z, design.y, term.group_codes, term.n_groups, family,
                       trials=design.trials if design.has_trials else None,
                       offset=design.offset if np.any(design.offset != 0) else None,
                       prior_weights=design.weights if np.any(design.weights != 1) else None)

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        kv = family.eta_values(data.eta_fixed(beta), data.response, data.family_weights)
        penalty, slope = prior.penalty(beta)
        return -float(kv.loglik.sum()) + 0.5 * penalty, -(data.X.T @ kv.score) + 0.5 * slope

    start = np.where(np.isfinite(prior.mean), prior.mean, 0.0)
    return optimize.minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-8}).x


__all__ = ["bglmer", "map_glm_start"]
