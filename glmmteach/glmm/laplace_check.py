r"""How accurate is the Laplace log-likelihood at a fit's optimum? Importance sampling of the integral.

The Laplace approximation replaces each integral over the random effects by a Gaussian one around the
conditional mode. It is the model's objective by choice, but the optimiser maximises the *approximation*:
where the approximation is poor, and its error grows with a parameter, the optimiser climbs the error. For a
random slope on two binary observations per patient (the crossover's ``(1 + trt | ID)``) the Laplace
log-likelihood keeps rising as an SD runs away, while the true likelihood does not: the "optimum" is an
artefact. A scalar random effect has quadrature (``nAGQ > 1``), which a fit can be checked with; vector random
effects and several terms do not, so this module checks those by importance sampling (by default; any fit
when asked, :func:`laplace_accuracy`).

The true log-likelihood is :math:`\log\int p(y \mid u)\,\varphi(u)\,du` in the spherical random effects
:math:`u`. With the Laplace Gaussian's location :math:`\tilde u` (the conditional modes) and precision
:math:`H = I + \Lambda^\top Z^\top W Z \Lambda` (observed weights), draws :math:`u_s = \tilde u +
L^{-\top} x_s` (:math:`LL^\top = H`, :math:`x_s` multivariate *t* with ``DF`` degrees of freedom: heavier
tails than the integrand's, so the weights stay bounded) give

.. math::

    \hat L = \frac1S \sum_s \frac{p(y \mid u_s)\,\varphi(u_s)}{q(u_s)},

unbiased for the integral and exact as :math:`S \to \infty`; :math:`\log\hat L` has Monte-Carlo standard
error :math:`\mathrm{sd}(w)/(\sqrt S\,\bar w)` (delta method). With one grouping factor the integral is a
product over groups and each group is sampled on its own (``G`` integrals of dimension ``r``); with several
terms it is one integral of dimension ``q`` (all random effects), sampled jointly.

The check runs by default on small fits only (:data:`MAX_DRAWS_X_ROWS`: draws × rows, and
:data:`MAX_JOINT_DIMENSION` for several terms, where the joint draws lose efficiency with the dimension and the
dense :math:`H` costs :math:`q^3`): a screen of a few milliseconds there, and a longer measurement only when
the screen finds a difference. Larger fits are not checked unless asked
(:func:`laplace_accuracy` on any fit). The seed is fixed, so the check and its warning are reproducible.
A Laplace value above the sampled one by more than :data:`TOLERANCE` log-likelihood units (and more than its
Monte-Carlo error allows) makes the fit unconverged with a warning naming the cause and the remedies; an
understatement (Laplace's usual error on small binary clusters) does not (see the comment at :data:`MC_SIGMAS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from ..exceptions import ConvergenceWarning
from .diagnosis import FitWarning
from .model import MixedModel

if TYPE_CHECKING:  # only for the annotation: the model arrives built
    from .sparse import SparseModel

# Draws per integral and the t proposal's degrees of freedom. Every checked fit is first screened with
# SCREEN_DRAWS (a few milliseconds on a small fit: bootstraps refit hundreds of times); only a difference above
# SCREEN_TOLERANCE there is measured again with DRAWS, and that measurement decides.
SCREEN_DRAWS = 200
SCREEN_TOLERANCE = 0.5
DRAWS = 4000
DF = 4
SEED = 20261203
# The default check's size limit: the screen's draws x rows up to 5e5 evaluations of a row's log-likelihood
# (2,500 rows; the crossover's 134 rows take 7 ms, 17 ms on a 2-core machine at load 14), and joint sampling of
# several terms up to 100 random effects in all. Ohio's 7,392 rows are not checked by default (the screen
# would double the fit's time); laplace_accuracy checks any fit when asked.
MAX_DRAWS_X_ROWS = 500_000
MAX_JOINT_DIMENSION = 100
# Log-likelihood units: an error of 1 changes a likelihood-ratio statistic by 2 (its 95% threshold on 1 df is
# 3.84), which is where the approximation starts to decide tests and intervals. Laplace's ordinary error is
# far below it on the fits tested (4,000 draws: cbpp with its observation-level term +0.05 +- 0.04, Ohio's
# (1 + year | county) +0.06 +- 0.05); the runaway (1 + trt | ID) fit of the crossover is 32 units above the
# truth (and the scalar crossover's Laplace fit, not checked by default, 11).
TOLERANCE = 1.0
# Only an overstatement counts, by more than MC_SIGMAS Monte-Carlo standard errors too. A runaway is the
# approximation rising above the likelihood as an SD grows, so at its "optimum" Laplace is above the truth;
# Laplace's ordinary error on small binary clusters is the other way (1.1 and 1.7 units below the truth on
# lme4_extra's logit slope fits, whose estimates agree with lme4 and are the maximum of the approximation that
# was asked for, not an artefact of its error).
MC_SIGMAS = 4.0


@dataclass(frozen=True)
class LaplaceAccuracy:
    """The Laplace log-likelihood of a fit at its estimates (``laplace``), the importance-sampling estimate of
    the true one (``sampled``), its Monte-Carlo standard error (``mc_se``) and the draws per integral."""

    laplace: float
    sampled: float
    mc_se: float
    draws: int

    @property
    def error(self) -> float:
        """Laplace minus the sampled log-likelihood: positive when Laplace overstates the likelihood."""
        return self.laplace - self.sampled

    @property
    def overstated(self) -> bool:
        """Laplace above the true log-likelihood by more than :data:`TOLERANCE` and its Monte-Carlo error."""
        return self.error > TOLERANCE and self.error > MC_SIGMAS * self.mc_se


def laplace_accuracy(model: MixedModel, theta: np.ndarray, beta: np.ndarray, laplace: float, draws: int = DRAWS,
                     seed: int = SEED) -> LaplaceAccuracy:
    """The importance-sampling estimate of the log-likelihood at ``(theta, beta)`` next to the Laplace value
    ``laplace`` there (see the module docstring); for a fit of any size."""
    rng = np.random.default_rng(seed)
    # one grouping factor: its groups' integrals are independent
    sample = _grouped_sample if model.one_grouping_factor else _joint_sample
    logs, variances = sample(model, theta, beta, draws, rng)
    constant = model.data.log_constant
    return LaplaceAccuracy(float(laplace), float(logs.sum() + constant), float(np.sqrt(variances.sum())), draws)


def _t_draws(rng: np.random.Generator, shape: tuple[int, ...], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard multivariate t draws (``shape`` × ``dim``) and their log densities."""
    z = rng.standard_normal((*shape, dim))
    chi = rng.chisquare(DF, size=shape)
    x = z * np.sqrt(DF / chi)[..., None]
    log_density = (special.gammaln((DF + dim) / 2) - special.gammaln(DF / 2) - 0.5 * dim * np.log(DF * np.pi)
                   - 0.5 * (DF + dim) * np.log1p(np.einsum("...k,...k->...", x, x) / DF))
    return x, log_density


def _log_mean_and_variance(log_weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """log of the mean of exp(``log_weights``) along ``axis`` and the delta-method variance of that log."""
    top = np.max(log_weights, axis=axis, keepdims=True)
    w = np.exp(log_weights - top)
    mean = w.mean(axis=axis)
    n = log_weights.shape[axis]
    variance = w.var(axis=axis, ddof=1) / (n * mean**2)
    return np.log(mean) + np.squeeze(top, axis=axis), variance


def _grouped_sample(model: MixedModel, theta: np.ndarray, beta: np.ndarray, draws: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the sampled log integral and its Monte-Carlo variance (one grouping factor)."""
    ordered = model.sorted_by_group()
    state = ordered.conditional_modes(theta, beta, tol=1e-13, min_iter=2)
    work = ordered.data
    G, r = state.u.shape
    L = np.linalg.cholesky(state.hessian_obs)  # G x r x r
    x, log_q = _t_draws(rng, (draws, G), r)
    # u = mode + L^{-T} x per group; log q(u) = log t(x) + log det L
    offsets = np.einsum("glk,sgl->sgk", np.linalg.inv(L), x)  # L^{-T} x per group: draws x G x r
    u = state.u[None] + offsets
    log_det_L = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    eta = work.eta_fixed(beta)[None] + np.einsum("nk,snk->sn", state.ZT, u[:, work.groups])
    family_rows = None if work.family_weights is None else work.family_weights[None]
    loglik = work.group_sum_rows(work.family.loglik_eta(eta, work.response[None], family_rows))  # draws x G
    log_prior = -0.5 * np.einsum("sgk,sgk->sg", u, u) - 0.5 * r * np.log(2 * np.pi)
    return _log_mean_and_variance(loglik + log_prior - (log_q + log_det_L[None]), axis=0)


def _joint_sample(model: SparseModel, theta: np.ndarray, beta: np.ndarray, draws: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The sampled log integral over all random effects at once and its Monte-Carlo variance (several terms)."""
    state = model.conditional_modes(theta, beta, tol=1e-13, min_iter=2)
    n = model.nobs
    M = np.zeros((n, model.q))  # Z Lambda, dense: the check runs only while q is small
    rows = np.arange(n)
    for s, columns in enumerate(model.slot_columns):
        np.add.at(M, (rows, columns), state.A[:, s])
    H = np.eye(model.q) + M.T @ (state.values.neg_hessian[:, None] * M)
    L = np.linalg.cholesky(H)
    x, log_q = _t_draws(rng, (draws,), model.q)
    offsets = np.linalg.solve(L.T, x.T).T  # draws x q
    u = state.u[None] + offsets
    eta = state.eta[None] + offsets @ M.T
    data = model.data
    family_rows = None if data.family_weights is None else data.family_weights[None]
    loglik = data.family.loglik_eta(eta, data.response[None], family_rows).sum(axis=1)
    log_prior = -0.5 * np.einsum("sk,sk->s", u, u) - 0.5 * model.q * np.log(2 * np.pi)
    log_det_L = np.log(np.diag(L)).sum()
    value, variance = _log_mean_and_variance((loglik + log_prior - log_q - log_det_L)[:, None], axis=0)
    return value, variance


def checked_by_default(model: MixedModel, n_nodes: int) -> bool:
    """Whether a fit gets the check without being asked: a Laplace fit (``n_nodes == 1``) where quadrature is not
    available (a vector random effect or several terms), within the size limits. A single scalar term has
    quadrature: its Laplace fit is the approximation asked for, and ``nAGQ > 1`` fits are checked by
    :mod:`glmmteach.glmm.optimize` with twice the nodes."""
    if n_nodes != 1 or model.nobs * SCREEN_DRAWS > MAX_DRAWS_X_ROWS:
        return False
    if model.quadrature_available:
        return False
    if not model.one_grouping_factor:  # several terms: one joint sample of all random effects
        return model.q <= MAX_JOINT_DIMENSION
    return True


def laplace_warning(model: MixedModel, theta: np.ndarray, beta: np.ndarray, laplace: float,
                    n_nodes: int) -> FitWarning | None:
    """The warning for a Laplace fit whose log-likelihood at the estimates is off by more than
    :data:`TOLERANCE` (``None`` when it is accurate, or when the fit is not checked by default)."""
    if not checked_by_default(model, n_nodes):
        return None
    screen = laplace_accuracy(model, theta, beta, laplace, draws=SCREEN_DRAWS)
    if screen.error <= SCREEN_TOLERANCE:
        return None
    accuracy = laplace_accuracy(model, theta, beta, laplace)
    if not accuracy.overstated:
        return None
    remedy = ("quadrature, the accurate integral, is not available for vector random effects or several terms: "
              "fit a simpler random-effects structure (a single scalar term such as (1 | group), which nAGQ = 25 "
              "integrates accurately), or keep this one with a weak prior on the covariance (glmmteach.bglmer), "
              "which keeps the standard deviations finite")
    return FitWarning(
        f"the Laplace approximation is not accurate at the estimates: its log-likelihood {accuracy.laplace:.4g} "
        f"is {accuracy.error:.2g} above the importance-sampling estimate of the true one "
        f"({accuracy.sampled:.4g}, Monte-Carlo SE {accuracy.mc_se:.1g}; tolerance {TOLERANCE:g}). The optimiser "
        "has maximised the approximation's error (as when a random-effect SD runs away because the approximation, "
        "not the likelihood, keeps rising as it grows), so these are not the maximum-likelihood estimates; "
        f"{remedy}",
        ConvergenceWarning)


__all__ = ["LaplaceAccuracy", "checked_by_default", "laplace_accuracy", "laplace_warning"]
