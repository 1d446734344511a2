r"""The GLMM with one grouping factor as an engine model, and the one place a model's representation is chosen.

:class:`GroupedModel` is :class:`~glmmteach.glmm.model.GroupedData` (the arrays) with its covariance term and
node count: it answers the questions of :class:`~glmmteach.glmm.model.MixedModel` with the batched per-group
stages (:mod:`~glmmteach.glmm.pirls`, :mod:`~glmmteach.glmm.devfun`). :class:`~glmmteach.glmm.sparse.SparseModel`
answers the same questions for several terms. :func:`as_model` is where a caller's arrays become one of the two;
everything downstream (optimiser, diagnosis, profiles, nAGQ = 0, the shape search) asks the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..exceptions import GlmmteachError
from ..families import Family
from . import devfun, hessian, start
from .model import GroupedData, MixedModel, batch_inverse, column_sd
from .pirls import ModeState, conditional_modes
from .simulate import simulate_glmm
from .terms import CovarianceTerm, quadrature_available


@dataclass(frozen=True)
class GroupedModel:
    """A GLMM with one grouping factor: its arrays, its covariance term (``correlated`` or not) and the number
    of quadrature nodes of its likelihood (1: Laplace)."""

    data: GroupedData
    covariance: CovarianceTerm
    n_nodes: int = 1

    one_grouping_factor = True  # the groups' integrals are independent

    @property
    def quadrature_available(self) -> bool:
        """Adaptive Gauss-Hermite quadrature is defined here: one scalar random effect per group."""
        return quadrature_available([self.data.n_re])

    @property
    def hessian_available(self) -> bool:
        """:meth:`loglik_hessian` is defined: Laplace, one scalar random effect, a canonical link."""
        return hessian.hessian_available(self.data, self.n_nodes)

    # ---- the data's vocabulary ------------------------------------------------------------------
    @property
    def X(self) -> np.ndarray:
        return self.data.X

    @property
    def nobs(self) -> int:
        return self.data.nobs

    @property
    def family(self) -> Family:
        return self.data.family

    @property
    def correlated(self) -> bool:
        return self.covariance.correlated

    @property
    def n_groups(self) -> int:
        """Levels of the (largest, here the only) grouping factor."""
        return self.data.n_groups

    @property
    def n_terms(self) -> int:
        return 1

    def eta_fixed(self, beta: np.ndarray) -> np.ndarray:
        return self.data.eta_fixed(beta)

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        return [self.covariance.T(theta)]

    # ---- variants -------------------------------------------------------------------------------
    def with_family(self, family: Family) -> GroupedModel:
        return replace(self, data=replace(self.data, family=family))

    def with_nodes(self, n_nodes: int) -> GroupedModel:
        return self if n_nodes == self.n_nodes else replace(self, n_nodes=n_nodes)

    def sorted_by_group(self) -> GroupedModel:
        """The same model with its rows in group order (see :meth:`GroupedData.sorted_by_group`)."""
        work = self.data.sorted_by_group()
        return self if work is self.data else replace(self, data=work)

    # ---- the stages -----------------------------------------------------------------------------
    def conditional_modes(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                          tol: float = 1e-10, max_iter: int = 200, min_iter: int = 1) -> ModeState:
        return conditional_modes(self.data, self.covariance.T(theta), beta, u_start=u_start, tol=tol,
                                 max_iter=max_iter, min_iter=min_iter)

    def loglik_and_gradient(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                            tol: float = 1e-10, min_iter: int = 1) -> tuple[float, np.ndarray, ModeState]:
        return devfun.loglik_and_gradient(self.data, theta, beta, self.correlated, self.n_nodes, u_start, tol,
                                          min_iter)

    def marginal_loglik(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                        tol: float = 1e-10) -> float:
        return devfun.marginal_loglik(self.data, theta, beta, self.correlated, self.n_nodes, u_start, tol)

    def laplace_loglik(self, state: ModeState) -> float:
        """The Laplace log-likelihood from the modes ``state`` (computed at the point of interest)."""
        return devfun.laplace_loglik(self.data, None, None, state=state)[0]

    def beta_information(self, state: ModeState) -> np.ndarray:
        r"""Information for :math:`\beta` with the random effects profiled out at fixed :math:`\theta`:
        :math:`X^\top W X - \sum_i B_i^\top H_i^{-1} B_i`, :math:`B_i = \sum_j w_j (T^\top z_j) x_j^\top`."""
        data = self.data
        w = state.values.fisher
        X = data.X
        info = X.T @ (w[:, None] * X)
        r, p = state.ZT.shape[1], X.shape[1]
        B = np.empty((data.n_groups, r, p))
        for a in range(r):  # loops over the few effects and columns, not over groups
            wa = w * state.ZT[:, a]
            for k in range(p):
                B[:, a, k] = data.group_sum(wa * X[:, k])
        HinvB = np.linalg.solve(state.hessian_fisher, B)
        return info - np.einsum("gak,gal->kl", B, HinvB)

    def loglik_hessian(self, theta: np.ndarray, state: ModeState) -> tuple[np.ndarray, np.ndarray]:
        r"""Hessian of the log-likelihood in :math:`(\theta, \beta)` at the modes ``state`` (computed at ``theta``
        and the fixed effects of interest), and the modes' derivatives in :math:`(\theta, \beta)`
        (:func:`glmmteach.glmm.hessian.scalar_laplace_hessian`)."""
        return hessian.scalar_laplace_hessian(self.data, state, float(np.asarray(theta, dtype=float)[0]))

    def warm_start(self, u: np.ndarray, theta_old: np.ndarray, theta_new: np.ndarray) -> np.ndarray:
        """A start for the modes at ``theta_new`` from those at ``theta_old``: the same ``u``."""
        return u

    def moment_start(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Moment start of :math:`\\theta` at the GLM fit ``beta`` (:func:`glmmteach.glmm.start.moment_theta`)."""
        return start.moment_theta(self.data, beta, self.covariance)

    def thetacolumn_sd(self) -> np.ndarray:
        """The SD of each theta entry's random-effect column (the ridge test's scale)."""
        return column_sd(self.data.Z)[self.covariance.positions[0]]

    # ---- what a fit reports -----------------------------------------------------------------------
    def term_effects(self, state: ModeState, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Conditional modes b (groups×r) and conditional covariances (groups×r×r) of the one term."""
        T = self.covariance.T(theta)
        b = state.u @ T.T
        return [(b, np.einsum("ab,gbc,dc->gad", T, batch_inverse(state.hessian_fisher), T))]

    def simulate(self, beta: np.ndarray, theta: np.ndarray, state: ModeState, nsim: int,
                 rng: np.random.Generator, use_u: bool) -> np.ndarray:
        """``nsim`` response vectors (:func:`glmmteach.glmm.simulate.simulate_glmm`)."""
        return simulate_glmm(self.data, beta, self.covariance.T(theta), state.u, nsim, rng, use_u)

    # ---- the penalised system in (beta, u), for intervals given the random effects --------------------------
    @property
    def q(self) -> int:
        """Number of random effects (groups × effects per group), in ``u``'s group-major order."""
        return self.data.n_groups * self.data.n_re

    effect_starts = np.zeros(1, dtype=int)  # one term: its effects start at 0

    def effects_crossprod(self, state: ModeState, values: np.ndarray) -> np.ndarray:
        r""":math:`A^\top V` (q×k) for row values ``V`` (n×k): per group the sum of :math:`(T^\top z_j) v_j^\top`."""
        ZT = state.ZT
        products = (ZT[:, :, None] * values[:, None, :]).reshape(len(ZT), -1)
        return self.data.group_sum_rows(products.T).T.reshape(self.q, -1)

    def fisher_solve(self, state: ModeState, M: np.ndarray) -> np.ndarray:
        """:math:`H^{-1}M` (q×k), :math:`H` block diagonal (one r×r block per group, expected information)."""
        G, r = state.hessian_fisher.shape[:2]
        blocks = M.reshape(G, r, -1)
        return np.linalg.solve(state.hessian_fisher, blocks).reshape(self.q, -1)



def as_model(model: Any, correlated: bool | None = None, n_nodes: int | None = None) -> MixedModel:
    """The engine model of ``model``: a :class:`GroupedData` becomes a :class:`GroupedModel` (its covariance term
    ``correlated``, default True; ``n_nodes`` default 1); a model (one grouping factor or several terms) is
    itself, with ``n_nodes`` nodes when given."""
    if isinstance(model, GroupedData):
        covariance = CovarianceTerm(model.n_re, True if correlated is None else bool(correlated))
        return GroupedModel(model, covariance, 1 if n_nodes is None else max(int(n_nodes), 1))
    if not hasattr(model, "loglik_and_gradient"):
        raise GlmmteachError(f"expected a GroupedData or an engine model, got {type(model).__name__}")
    # (an nAGQ = 0 fit's likelihood at its estimates is the Laplace approximation: glmmteach.glmm.nagq0)
    return model if n_nodes is None else model.with_nodes(max(int(n_nodes), 1))
