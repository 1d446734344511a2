r"""The arrays of a GLMM with one grouping factor, and the per-group block algebra on them.

:class:`GroupedData` holds the fixed-effects design ``X``, the random-effects covariates ``Z``,
the group codes, the response and the family's likelihood kernel. Every per-group quantity the
engine needs (sums over a group's rows, the stacked :math:`r\times r` systems of the conditional
modes) is a ``np.bincount`` or a batched closed form here, so no stage loops over groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..families import KernelValues, LikelihoodKernel


@dataclass(frozen=True, eq=False)
class PriorWeightedKernel:
    r"""A :class:`~glmmteach.families.LikelihoodKernel` whose rows carry prior weights :math:`w_j`
    (lme4's ``weights=``).

    Row :math:`j` contributes :math:`w_j \log f(y_j \mid \eta_j)` to the log-likelihood, so the score,
    both informations, their derivative and the data-only constant are all multiplied by :math:`w_j`;
    the mean and variance functions are the base kernel's. (A binomial proportion with weights
    :math:`n` is not a prior weight in this sense: :func:`glmmteach.glmer` turns it into trials.)
    """

    base: LikelihoodKernel
    weights: np.ndarray

    @property
    def family(self) -> str:
        return self.base.family

    @property
    def link(self) -> str:
        return self.base.link

    @property
    def canonical(self) -> bool:
        return self.base.canonical

    def mean(self, eta: np.ndarray) -> np.ndarray:
        return self.base.mean(eta)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return self.base.variance(mu)

    def log_constant(self, y: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        return self.weights * self.base.log_constant(y, trials)

    def loglik(self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        return self.weights * self.base.loglik(eta, y, trials)

    def evaluate(
        self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None, with_fisher_deriv: bool = False
    ) -> KernelValues:
        kv = self.base.evaluate(eta, y, trials, with_fisher_deriv)
        w = self.weights
        deriv = None if kv.fisher_deriv is None else w * kv.fisher_deriv
        fisher = w * kv.fisher
        neg_h = fisher if kv.neg_hessian is kv.fisher else w * kv.neg_hessian
        return KernelValues(w * kv.loglik, w * kv.score, neg_h, fisher, deriv, kv.mean)

    def fisher_deriv(
        self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None, values: KernelValues | None = None
    ) -> np.ndarray:
        # values (if given) are already weighted, and the base kernel's shortcut is linear in them
        if values is not None and values.mean is not None:
            return self.base.fisher_deriv(eta, y, trials, values)
        return self.weights * self.base.fisher_deriv(eta, y, trials)


@dataclass
class GroupedData:
    r"""Arrays of a GLMM with one grouping factor.

    ``X`` (n×p) fixed-effects design, ``Z`` (n×r) random-effects design, ``y`` responses
    (successes for binomial), ``trials`` binomial totals (``None``: binary or Poisson),
    ``offset``, ``groups`` integer codes 0..G-1, ``kernel`` the family's
    :class:`LikelihoodKernel`, ``weights`` prior weights (``None``: all 1), which wrap the kernel
    in a :class:`PriorWeightedKernel`.
    """

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    n_groups: int
    kernel: LikelihoodKernel | PriorWeightedKernel
    trials: np.ndarray | None = None
    offset: np.ndarray | None = None
    weights: np.ndarray | None = None
    log_constant: float = field(init=False)
    z_is_ones: bool = field(init=False)

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=float)
        self.Z = np.ascontiguousarray(np.asarray(self.Z, dtype=float).reshape(len(self.y), -1))
        self.y = np.ascontiguousarray(self.y, dtype=float)
        self.groups = np.ascontiguousarray(self.groups, dtype=np.intp)
        if self.trials is not None:
            self.trials = np.ascontiguousarray(self.trials, dtype=float)
        if self.offset is not None:
            self.offset = np.ascontiguousarray(self.offset, dtype=float)
        if self.weights is not None:
            # prior weights scale each row's log-likelihood: the kernel carries them into every sum
            self.weights = np.ascontiguousarray(self.weights, dtype=float)
            base = self.kernel.base if isinstance(self.kernel, PriorWeightedKernel) else self.kernel
            self.kernel = PriorWeightedKernel(base, self.weights)
        self.log_constant = float(self.kernel.log_constant(self.y, self.trials).sum())
        self.z_is_ones = self.n_re == 1 and bool(np.all(self.Z[:, 0] == 1.0))

    @classmethod
    def from_arrays(
        cls,
        X: np.ndarray,
        Z: np.ndarray | None,
        y: np.ndarray,
        groups: np.ndarray,
        family: Any = "binomial",
        link: str | None = None,
        trials: np.ndarray | None = None,
        offset: np.ndarray | None = None,
    ) -> GroupedData:
        """Build from arrays; ``groups`` may hold any labels (they are coded 0..G-1)."""
        codes, uniques = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
        y = np.asarray(y, dtype=float)
        Z = np.ones((len(y), 1)) if Z is None else Z
        return cls(np.asarray(X, dtype=float), Z, y, codes, len(uniques), LikelihoodKernel.from_spec(family, link),
                   trials, offset)

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
        return np.bincount(self.groups, weights=values, minlength=self.n_groups)


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
    out = ZT[:, 0] * u[:, 0][data.groups]
    for a in range(1, ZT.shape[1]):
        out += ZT[:, a] * u[:, a][data.groups]
    return out


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
    g = data.groups
    if ZT.shape[1] == 1:
        return ZT[:, 0] ** 2 * M[:, 0, 0][g]
    if ZT.shape[1] == 2:
        return (ZT[:, 0] ** 2 * M[:, 0, 0][g] + 2.0 * ZT[:, 0] * ZT[:, 1] * M[:, 0, 1][g]
                + ZT[:, 1] ** 2 * M[:, 1, 1][g])
    return np.einsum("na,nab,nb->n", ZT, M[g], ZT)

