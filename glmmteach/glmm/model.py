r"""The arrays of a GLMM with one grouping factor, and the per-group block algebra on them.

:class:`GroupedData` holds the fixed-effects design ``X``, the random-effects covariates ``Z``,
the group codes, the response and the :class:`~glmmteach.families.Family`. Every per-group quantity the
engine needs (sums over a group's rows, the stacked :math:`r\times r` systems of the conditional
modes) is a ``np.bincount`` or a batched closed form here, so no stage loops over groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..families import Family, get_glmm_family
from ..formula.response import family_weights, proportions


@dataclass
class GroupedData:
    r"""Arrays of a GLMM with one grouping factor.

    ``X`` (n×p) fixed-effects design, ``Z`` (n×r) random-effects design, ``y`` responses as
    given (successes for binomial), ``trials`` binomial totals (``None``: binary or Poisson),
    ``offset``, ``groups`` integer codes 0..G-1, ``family`` the :class:`~glmmteach.families.Family`.

    ``prior_weights`` are lme4's ``weights=`` (``None``: all 1): row :math:`j` contributes
    :math:`w_j \log f(y_j)` to the log-likelihood.

    ``response`` and ``family_weights`` are the response in the family's (R's) convention: the proportion
    ``y / trials`` with ``family_weights = trials`` for the binomial family, the counts otherwise, and the
    prior weights multiplied into ``family_weights`` (as R's ``glm`` multiplies them into the trials). The
    engine passes those to the family, which multiplies every row's log-likelihood, score and
    informations by them.
    """

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    n_groups: int
    family: Family
    trials: np.ndarray | None = None
    offset: np.ndarray | None = None
    prior_weights: np.ndarray | None = None
    response: np.ndarray = field(init=False)
    family_weights: np.ndarray | None = field(init=False)
    log_constant: float = field(init=False)
    z_is_ones: bool = field(init=False)
    # rows sorted by group with every group present: group sums by np.add.reduceat over these
    # starts and gathers by np.repeat over these counts (3-10x cheaper than bincount / fancy indexing)
    _starts: np.ndarray | None = field(init=False, default=None, repr=False)
    _counts: np.ndarray | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        # column-major: X @ beta and X.T @ v on a few columns are several times faster (BLAS gemv)
        self.X = np.asfortranarray(self.X, dtype=float)
        self.Z = np.ascontiguousarray(np.asarray(self.Z, dtype=float).reshape(len(self.y), -1))
        self.y = np.ascontiguousarray(self.y, dtype=float)
        self.groups = np.ascontiguousarray(self.groups, dtype=np.intp)
        if self.trials is not None:
            self.trials = np.ascontiguousarray(self.trials, dtype=float)
        if self.offset is not None:
            self.offset = np.ascontiguousarray(self.offset, dtype=float)
        self.family = get_glmm_family(self.family)
        self.response = self.y if self.trials is None else proportions(self.y, self.trials)  # (R's convention)
        # the data-only constant is the trials' (binomial coefficients), times the prior weight
        constant = self.family.log_constant(self.response, self.trials)
        if self.prior_weights is not None:
            self.prior_weights = np.ascontiguousarray(self.prior_weights, dtype=float)
            constant = self.prior_weights * constant
        self.family_weights = family_weights(self.trials, self.prior_weights)
        self.log_constant = float(constant.sum())
        self.z_is_ones = self.n_re == 1 and bool(np.all(self.Z[:, 0] == 1.0))
        if self.groups.size and self.groups[0] == 0 and np.all(np.diff(self.groups) >= 0):
            counts = np.bincount(self.groups, minlength=self.n_groups)
            if counts.size == self.n_groups and np.all(counts > 0):
                self._counts = counts
                self._starts = np.concatenate([[0], np.cumsum(counts[:-1])])

    @classmethod
    def from_arrays(
        cls,
        X: np.ndarray,
        Z: np.ndarray | None,
        y: np.ndarray,
        groups: np.ndarray,
        family: str | Family = "binomial",
        link: str | None = None,
        trials: np.ndarray | None = None,
        offset: np.ndarray | None = None,
    ) -> GroupedData:
        """Build from arrays; ``groups`` may hold any labels (they are coded 0..G-1); ``y`` counts
        successes out of ``trials`` for the binomial family."""
        codes, uniques = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
        y = np.asarray(y, dtype=float)
        Z = np.ones((len(y), 1)) if Z is None else Z
        return cls(np.asarray(X, dtype=float), Z, y, codes, len(uniques), get_glmm_family(family, link),
                   trials, offset)

    def sorted_by_group(self) -> GroupedData:
        """The same model with its rows in group order (itself when they already are, or when a group has
        no rows): the engine's group sums and gathers are then contiguous (``np.add.reduceat``,
        ``np.repeat``). The group codes, and so the random effects, are unchanged."""
        if self._starts is not None or np.any(np.bincount(self.groups, minlength=self.n_groups) == 0):
            return self
        order = np.argsort(self.groups, kind="stable")

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[order]

        return GroupedData(self.X[order], self.Z[order], self.y[order], self.groups[order], self.n_groups,
                           self.family, rows(self.trials), rows(self.offset), rows(self.prior_weights))

    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def n_re(self) -> int:
        return self.Z.shape[1]

    def eta_fixed(self, beta: np.ndarray) -> np.ndarray:
        r""":math:`X\beta + \text{offset}`."""
        eta = self.X @ np.asarray(beta, dtype=float)
        return eta if self.offset is None else eta + self.offset

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (length n) within groups: length-G array."""
        if self._starts is not None:
            return np.add.reduceat(np.asarray(values, dtype=float), self._starts)
        return np.bincount(self.groups, weights=values, minlength=self.n_groups)

    def group_sum_rows(self, values: np.ndarray) -> np.ndarray:
        """:meth:`group_sum` of each row of ``values`` (K×n): K×G, each row summed as :meth:`group_sum` sums
        it (one reduction call for all K rows when the rows are in group order)."""
        if self._starts is not None:
            return np.add.reduceat(np.asarray(values, dtype=float), self._starts, axis=1)
        return np.stack([self.group_sum(row) for row in values]) if len(values) else np.empty((0, self.n_groups))

    def gather(self, per_group: np.ndarray) -> np.ndarray:
        """Each row's entry of ``per_group`` (length G): ``per_group[groups]``."""
        if self._counts is not None:  # (the method, not np.repeat: one Python call fewer in the inner loop)
            return per_group.repeat(self._counts)
        return per_group[self.groups]


def weighted_crossprod(data: GroupedData, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Per-group :math:`\\sum_j w_j a_j a_j^T` (G×r×r) for rows ``a_j`` of ``A`` (n×r)."""
    r = A.shape[1]
    out = np.empty((data.n_groups, r, r))
    for a in range(r):  # loops over the r(r+1)/2 matrix entries, not over groups
        wa = weights * A[:, a]
        for c in range(a, r):
            out[:, a, c] = out[:, c, a] = data.group_sum(wa * A[:, c])
    return out


def group_vector_sum(data: GroupedData, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Per-group :math:`\\sum_j w_j a_j` (G×r)."""
    return np.stack([data.group_sum(weights * A[:, a]) for a in range(A.shape[1])], axis=1)


def random_part(data: GroupedData, ZT: np.ndarray, u: np.ndarray) -> np.ndarray:
    r""":math:`z_j^\top T u_{g(j)}` for every row (one gather per random-effect term)."""
    out = ZT[:, 0] * data.gather(u[:, 0])
    for a in range(1, ZT.shape[1]):
        out += ZT[:, a] * data.gather(u[:, a])
    return out


def column_sd(A: np.ndarray) -> np.ndarray:
    """SD of each column, 1 for a constant column (the intercept is left on its own scale)."""
    sd = np.asarray(A, dtype=float).reshape(len(A), -1).std(axis=0)
    return np.where(sd > 0, sd, 1.0)


# Stacked symmetric r×r systems: closed forms for r = 1 and 2 (the usual cases), LAPACK otherwise.

def batch_solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve the stacked symmetric systems H_i x_i = g_i (G×r×r, G×r)."""
    if H.shape[1] == 1:
        return g / H[:, :, 0]
    if H.shape[1] == 2:
        a, b, d = H[:, 0, 0], H[:, 0, 1], H[:, 1, 1]
        det = a * d - b * b
        return np.stack([(d * g[:, 0] - b * g[:, 1]) / det, (a * g[:, 1] - b * g[:, 0]) / det], axis=1)
    return np.linalg.solve(H, g[:, :, None])[:, :, 0]


def batch_logdet(H: np.ndarray) -> np.ndarray:
    if H.shape[1] == 1:
        return np.log(H[:, 0, 0])
    if H.shape[1] == 2:
        return np.log(H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2)
    chol = np.linalg.cholesky(H)
    return 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)


def batch_inverse(H: np.ndarray) -> np.ndarray:
    if H.shape[1] == 1:
        return 1.0 / H
    if H.shape[1] == 2:
        a, b, d = H[:, 0, 0], H[:, 0, 1], H[:, 1, 1]
        det = a * d - b * b
        return np.stack([np.stack([d, -b], axis=1), np.stack([-b, a], axis=1)], axis=1) / det[:, None, None]
    return np.linalg.inv(H)


def leverage(data: GroupedData, ZT: np.ndarray, M: np.ndarray) -> np.ndarray:
    r""":math:`q_j = (T^\top z_j)^\top M_{g(j)} (T^\top z_j)` for every row."""
    if ZT.shape[1] == 1:
        return ZT[:, 0] ** 2 * data.gather(M[:, 0, 0])
    if ZT.shape[1] == 2:
        return (ZT[:, 0] ** 2 * data.gather(M[:, 0, 0]) + 2.0 * ZT[:, 0] * ZT[:, 1] * data.gather(M[:, 0, 1])
                + ZT[:, 1] ** 2 * data.gather(M[:, 1, 1]))
    return np.einsum("na,nab,nb->n", ZT, M[data.groups], ZT)



@runtime_checkable
class MixedModel(Protocol):
    r"""What the optimiser, the diagnosis, profiles, ``nAGQ = 0`` and the shape search ask of a GLMM, answered
    by both representations: one grouping factor (:class:`~glmmteach.glmm.grouped.GroupedModel`, batched
    per-group blocks) and several terms (:class:`~glmmteach.glmm.sparse.SparseModel`, a block factorisation).
    Chosen once, where the model is built (:func:`glmmteach.glmm.grouped.as_model`, :func:`glmmteach.glmer`).

    ``data`` holds ``X``, the response, family, offset and weights; ``covariance`` the map
    :math:`\theta \leftrightarrow T` (``lower_bounds``, ``diagonal``, ``n_theta``); ``n_nodes`` the quadrature
    nodes of the likelihood (1: Laplace). The stages: ``conditional_modes(theta, beta, u_start, tol, max_iter,
    min_iter)``, ``loglik_and_gradient(theta, beta, u_start, tol, min_iter)`` (gradient theta first),
    ``marginal_loglik``, ``laplace_loglik(state)``, ``beta_information(state)``, ``loglik_hessian(theta, state)``
    (the Hessian and the modes' derivatives, where ``hessian_available``); starts:
    ``moment_start(beta)``, ``warm_start(u, theta_old, theta_new)``; variants: ``with_family``,
    ``with_nodes``, ``sorted_by_group``; reports: ``term_effects(state, theta)``,
    ``simulate(beta, theta, state, nsim, rng, use_u)``, ``theta_column_sd()``, ``Ts(theta)``; the penalised system
    in :math:`(\beta, u)` (intervals given the random effects): ``q``, ``effect_starts``,
    ``effects_crossprod(state, values)`` (:math:`A^\top V`), ``fisher_solve(state, M)`` (:math:`H^{-1}M`).
    """

    data: GroupedData
    covariance: Any
    n_nodes: int
    one_grouping_factor: bool  # the groups' integrals are independent (one grouping factor)
    quadrature_available: bool  # nAGQ > 1 is defined (terms.quadrature_available)
    hessian_available: bool  # loglik_hessian is defined (glmm.hessian: Laplace, one scalar effect, canonical link)

    @property
    def X(self) -> np.ndarray: ...

    @property
    def nobs(self) -> int: ...

    @property
    def family(self) -> Family: ...

    @property
    def n_groups(self) -> int: ...

    @property
    def n_terms(self) -> int: ...

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]: ...

    def with_family(self, family: Family) -> MixedModel: ...

    def with_nodes(self, n_nodes: int) -> MixedModel: ...

    def sorted_by_group(self) -> MixedModel: ...

    def conditional_modes(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                          tol: float = 1e-10, max_iter: int = 200, min_iter: int = 1) -> Any: ...

    def loglik_and_gradient(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                            tol: float = 1e-10, min_iter: int = 1) -> tuple[float, np.ndarray, Any]: ...

    def marginal_loglik(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                        tol: float = 1e-10) -> float: ...

    def laplace_loglik(self, state: Any) -> float: ...

    def beta_information(self, state: Any) -> np.ndarray: ...

    def loglik_hessian(self, theta: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def warm_start(self, u: np.ndarray, theta_old: np.ndarray, theta_new: np.ndarray) -> np.ndarray: ...

    def moment_start(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]: ...

    def theta_column_sd(self) -> np.ndarray: ...

    def term_effects(self, state: Any, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def simulate(self, beta: np.ndarray, theta: np.ndarray, state: Any, nsim: int, rng: np.random.Generator,
                 use_u: bool) -> np.ndarray: ...
