r"""Conditional modes of the random effects (lme4's PIRLS step), for every group at once.

For given :math:`(\theta, \beta)` the spherical random effects :math:`\tilde u_i` maximise the
penalised log-likelihood :math:`\sum_j \ell(y_{ij}\mid\eta_{ij}) - \frac12\|u_i\|^2`. With one
grouping factor the Hessian is block diagonal, so Newton's method is a batch of tiny
:math:`r\times r` solves (:func:`glmmteach.glmm.model.batch_solve`) with per-group step-halving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..families import EtaValues
from .model import GroupedData, batch_solve, group_vector_sum, random_part, weighted_crossprod

# Inner Newton iterations stop when the largest step (spherical scale u) is below _STEP_EXACT, or
# right after a full step below _STEP_QUADRATIC (quadratic convergence makes the new point exact to
# roughly its square). Mode errors enter the Laplace log-determinant and the gradient to first order,
# so the decrement alone (second order) is not a sufficient test.
_STEP_EXACT = 1e-9
_STEP_QUADRATIC = 1e-6
# Step halvings per Newton step before the last trial point is taken anyway.
MAX_HALVINGS = 60


@dataclass
class ModeState:
    r"""Conditional modes :math:`\tilde u` for all groups and what was computed there.

    ``u`` (G×r) modes in the spherical scale, ``eta`` linear predictor, ``values`` kernel
    quantities, ``penalised`` per-group :math:`\sum_j\ell_{ij} - \frac12\|u_i\|^2` (without
    constants), ``hessian_obs`` / ``hessian_fisher`` the per-group matrices
    :math:`I + T^\top Z_i^\top W Z_i T` with observed / expected weights, ``iterations`` Newton
    iterations, ``passes`` full data passes.
    """

    u: np.ndarray
    eta: np.ndarray
    values: EtaValues
    penalised: np.ndarray
    hessian_obs: np.ndarray
    hessian_fisher: np.ndarray
    ZT: np.ndarray
    iterations: int
    passes: int
    converged: bool



def first_evaluation(evaluate: Callable[[np.ndarray], tuple[np.ndarray, EtaValues, Any]], u: np.ndarray,
                     warm: bool) -> tuple[np.ndarray, np.ndarray, EtaValues, Any, int]:
    """The start of the Newton iteration: ``evaluate`` at ``u``, or at u = 0 when ``u`` is a warm start (the
    modes of another (theta, beta)) where the penalised log-likelihood is not finite. Returns the start,
    what ``evaluate`` gave there and the number of data passes (1 or 2)."""
    eta, kv, h = evaluate(u)
    if not warm or np.isfinite(h).all():
        return u, eta, kv, h, 1
    u = np.zeros_like(u)
    eta, kv, h = evaluate(u)
    return u, eta, kv, h, 2


@dataclass(frozen=True)
class NewtonModes:
    """What :func:`newton_modes` found: the modes ``u``, the linear predictor, the family's values and the
    penalised log-likelihood there, the curvature (observed information) the last step was taken with (at
    the modes themselves when the iteration stopped on a small full step), iterations and data passes."""

    u: np.ndarray
    eta: np.ndarray
    values: EtaValues
    penalised: Any  # per block (one grouping factor) or one float (several terms)
    curvature: Any  # the representation's observed information: stacked r×r blocks or a factorisation
    iterations: int
    passes: int
    converged: bool


def newton_modes(
    evaluate: Callable[[np.ndarray], tuple[np.ndarray, EtaValues, Any]],
    newton_step: Callable[[np.ndarray, EtaValues], tuple[Any, np.ndarray, float]],
    curvature: Callable[[EtaValues], Any],
    u: np.ndarray,
    warm: bool,
    tol: float,
    max_iter: int,
    min_iter: int,
) -> NewtonModes:
    r"""The conditional modes by Newton's method with step halving: the one inner loop of the engine, for
    both representations (one grouping factor here, several terms in :mod:`glmmteach.glmm.sparse`).

    The representation supplies ``evaluate(u) -> (eta, values, h)`` (``h`` the penalised log-likelihood: per
    independent block, an array, whose blocks are step-halved separately; or one float),
    ``curvature(values)`` (the observed information :math:`I + A^\top W A` in its own form) and
    ``newton_step(u, values) -> (curvature, step, decrement)`` (one call per iteration: on small data the
    number of Python calls, not arithmetic, is most of an evaluation's cost).

    Iteration stops when the Newton decrement :math:`g^\top H^{-1} g` (about twice the distance to the
    maximum in log-likelihood units) is below ``tol`` × ``(1 + |Σ h|)`` and every step is below 1e-9, or
    right after a full Newton step below 1e-6; and only after at least ``min_iter`` Newton steps: a warm
    start from the modes of a nearby (θ, β) can already pass the test while the modes have not yet
    responded to the change, which would make the gradient inconsistent with the value.
    """
    u, eta, kv, h, passes = first_evaluation(evaluate, u, warm)
    per_block = np.ndim(h) > 0  # one penalised log-likelihood per independent block, or one for all
    converged = False
    iterations = 0
    H = None
    for iterations in range(1, max_iter + 1):
        H, step, decrement = newton_step(u, kv)
        # the ufuncs' reductions directly (the same sums and maxima as .max()/.sum(), without their Python
        # wrappers: on small data the inner loop's cost is its number of Python calls)
        largest_step = float(np.maximum.reduce(np.abs(step), axis=None)) if step.size else 0.0
        total = float(np.add.reduce(h, axis=None)) if per_block else h
        if iterations > min_iter and decrement <= tol * (1.0 + abs(total)) and largest_step <= _STEP_EXACT:
            converged = True
            break
        u, eta, kv, h, tries, full_step = _halved_step(evaluate, u, h, step, per_block)
        passes += tries
        # Newton converges quadratically: after a full step this small, the new point is exact to
        # about the square of it, so stop there (saving the pass that would only confirm it).
        if iterations >= min_iter and largest_step <= _STEP_QUADRATIC and full_step:
            H = curvature(kv)
            converged = True
            break
    return NewtonModes(u, eta, kv, h, H, iterations, passes, converged)


def _halved_step(evaluate: Callable[[np.ndarray], tuple[np.ndarray, EtaValues, Any]], u: np.ndarray, h: Any,
                 step: np.ndarray, per_block: bool) -> tuple[np.ndarray, np.ndarray, EtaValues, Any, int, bool]:
    """The Newton step from ``u``, halved (block by block when ``per_block``: ``h`` has one entry per block)
    until the penalised log-likelihood does not decrease; returns the new point, what ``evaluate`` gave there,
    the number of evaluations and whether every block took the full step."""
    fraction: Any = None  # None: the full step
    tries = 0
    while tries < MAX_HALVINGS:
        tries += 1
        if fraction is None:
            u_new = u + step
        else:
            u_new = u + (fraction[:, None] if per_block and step.ndim > 1 else fraction) * step
        eta_new, kv_new, h_new = evaluate(u_new)
        if per_block:
            worse = ~(h_new >= h - 1e-12 * (1.0 + np.abs(h)))
            if not worse.any():
                break
            fraction = np.ones(len(h)) if fraction is None else fraction
            fraction[worse] *= 0.5
        else:
            if h_new >= h - 1e-12 * (1.0 + abs(h)):
                break
            fraction = 0.5 if fraction is None else 0.5 * fraction
    return u_new, eta_new, kv_new, h_new, tries, fraction is None


def conditional_modes(
    data: GroupedData,
    T: np.ndarray,
    beta: np.ndarray,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
    eta_fixed: np.ndarray | None = None,
    min_iter: int = 1,
) -> ModeState:
    r"""Conditional modes of the spherical random effects for all groups at once.

    For each group maximise the penalised log-likelihood

    .. math::

        h_i(u) = \sum_{j \in i} \ell(y_{ij} \mid \eta_{ij}) - \tfrac12\|u\|^2, \qquad
        \eta_{ij} = x_{ij}^\top\beta + o_{ij} + z_{ij}^\top T u,

    by Newton's method. Gradient and Hessian of group :math:`i` are

    .. math::

        \nabla h_i = T^\top \sum_j z_{ij}\,\ell'_{ij} - u, \qquad
        -\nabla^2 h_i = I + T^\top\Bigl(\sum_j (-\ell''_{ij})\, z_{ij} z_{ij}^\top\Bigr) T,

    built with one ``np.bincount`` per vector/matrix entry and solved as a stack of r×r
    systems. Groups whose :math:`h_i` would decrease get their step halved (other groups are
    not held back). Iteration stops when the summed Newton decrement
    :math:`\sum_i \nabla h_i^\top (-\nabla^2 h_i)^{-1} \nabla h_i` (about twice the distance
    to the maximum in log-likelihood units) is below ``tol`` × ``(1 + |Σ h_i|)`` and every step is
    below 1e-9, or right after a full Newton step below 1e-6; and only after at least
    ``min_iter`` Newton steps: a warm start from the modes of a nearby (θ, β) can already pass
    the test while the modes have not yet responded to the change, which would make the
    gradient inconsistent with the value.
    """
    r = data.n_re
    eta0 = data.eta_fixed(beta) if eta_fixed is None else eta_fixed
    if r == 1:
        return _scalar_modes(data, float(T[0, 0]), eta0, u_start, tol, max_iter, min_iter)
    ZT = data.Z @ T
    u = np.zeros((data.n_groups, r)) if u_start is None else np.array(u_start, dtype=float).reshape(data.n_groups, r)
    eye = np.eye(r)

    def evaluate(u_try: np.ndarray) -> tuple[np.ndarray, EtaValues, np.ndarray]:
        eta = eta0 + random_part(data, ZT, u_try)
        kv = data.family.eta_values(eta, data.response, data.family_weights)
        h = data.group_sum(kv.loglik) - 0.5 * np.einsum("gr,gr->g", u_try, u_try)
        return eta, kv, h

    def curvature(kv: EtaValues) -> np.ndarray:
        return eye + weighted_crossprod(data, kv.neg_hessian, ZT)

    def newton_step(u_now: np.ndarray, kv: EtaValues) -> tuple[np.ndarray, np.ndarray, float]:
        g = group_vector_sum(data, kv.score, ZT) - u_now
        H = eye + weighted_crossprod(data, kv.neg_hessian, ZT)
        step = batch_solve(H, g)
        return H, step, float(np.einsum("gr,gr->", g, step))

    found = newton_modes(evaluate, newton_step, curvature, u, u_start is not None, tol, max_iter, min_iter)
    kv = found.values
    H_fisher = found.curvature if data.family.canonical else eye + weighted_crossprod(data, kv.fisher, ZT)
    return ModeState(found.u, found.eta, kv, found.penalised, found.curvature, H_fisher, ZT, found.iterations,
                     found.passes, found.converged)



def _scalar_modes(
    data: GroupedData, tau: float, eta0: np.ndarray, u_start: np.ndarray | None, tol: float, max_iter: int,
    min_iter: int,
) -> ModeState:
    """:func:`conditional_modes` for one random effect per group (r = 1): the same Newton iteration and
    stopping rules on length-G vectors, with no r×r bookkeeping (most of an evaluation's cost on
    small data is the number of NumPy calls, not arithmetic)."""
    z = None if data.z_is_ones else data.Z[:, 0]
    zt = tau * z if z is not None else None
    zt2 = zt * zt if zt is not None else None
    family, response, family_weights = data.family, data.response, data.family_weights
    u = np.zeros(data.n_groups) if u_start is None else np.array(u_start, dtype=float).reshape(data.n_groups)

    def evaluate(u_try: np.ndarray) -> tuple[np.ndarray, EtaValues, np.ndarray]:
        b = data.gather(u_try)
        eta = eta0 + (tau * b if zt is None else zt * b)
        kv = family.eta_values(eta, response, family_weights)
        return eta, kv, data.group_sum(kv.loglik) - 0.5 * u_try * u_try

    def information(values: np.ndarray) -> np.ndarray:  # 1 + sum_j w_j (tau z_j)^2 per group
        return 1.0 + (tau * tau * data.group_sum(values) if zt2 is None else data.group_sum(values * zt2))

    def newton_step(u_now: np.ndarray, kv: EtaValues) -> tuple[np.ndarray, np.ndarray, float]:
        g = (tau * data.group_sum(kv.score) if zt is None else data.group_sum(kv.score * zt)) - u_now
        H = information(kv.neg_hessian)
        step = g / H
        return H, step, float(g @ step)

    found = newton_modes(evaluate, newton_step, lambda kv: information(kv.neg_hessian), u, u_start is not None,
                         tol, max_iter, min_iter)
    H_obs, kv = found.curvature, found.values
    H_fisher = H_obs if family.canonical else information(kv.fisher)
    ZT = np.full((data.nobs, 1), tau) if zt is None else zt[:, None]
    return ModeState(found.u[:, None], found.eta, kv, found.penalised, H_obs[:, None, None], H_fisher[:, None, None],
                     ZT, found.iterations, found.passes, found.converged)
