r"""Random-effects terms: the relative covariance factor and its parameters :math:`\theta`.

lme4 writes the random effects as :math:`b = \Lambda_\theta u`, :math:`u \sim N(0, I_q)`. A term
``(expr | g)`` with :math:`r` effects per level contributes one lower-triangular :math:`r\times r`
block :math:`T_\theta` repeated for every level of ``g``; :math:`\Lambda_\theta` is block diagonal.
:math:`\theta` lists each term's free entries of :math:`T_\theta` (the lower triangle column by
column, or only the diagonal for ``(expr || g)``); diagonal entries are bounded below by 0.

:class:`CovarianceTerm` holds that map for one term. Several terms (issue: crossed and nested
effects) concatenate their :math:`\theta` vectors in formula order, so every question asked here
(positions, bounds, start, which entries are diagonal) is answered per term and stacked.
The model's arrays themselves (``X``, ``Z``, groups, response) are in :mod:`glmmteach.glmm.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _positions(n_re: int, correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    # asked for at every evaluation (T, bounds, gradient): computed once per shape, read-only
    if correlated:
        rows, cols = np.tril_indices(n_re)
        order = np.lexsort((rows, cols))
        rows, cols = rows[order], cols[order]
    else:
        rows = cols = np.arange(n_re)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


@dataclass(frozen=True)
class CovarianceTerm:
    r"""The relative covariance factor :math:`T_\theta` of one random-effects term.

    ``n_re`` effects per level (1 for ``(1 | g)``, 2 for ``(1 + x | g)``); ``correlated`` is False
    for ``(expr || g)``, whose :math:`T_\theta` is diagonal.
    """

    n_re: int
    correlated: bool = True

    @property
    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of :math:`T_\\theta` for each element of :math:`\\theta` (column-major, as lme4)."""
        return _positions(self.n_re, self.correlated)

    @property
    def n_theta(self) -> int:
        return len(self.positions[0])

    @property
    def diagonal(self) -> np.ndarray:
        """Boolean mask over :math:`\\theta`: True for the diagonal entries of :math:`T_\\theta` (relative SDs)."""
        rows, cols = self.positions
        return rows == cols

    @property
    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal entries of :math:`T_\\theta`, :math:`-\\infty` for off-diagonal ones."""
        return np.where(self.diagonal, 0.0, -np.inf)

    @property
    def theta_start(self) -> np.ndarray:
        """lme4's start: :math:`T_\\theta = I` (diagonal 1, off-diagonal 0)."""
        return np.where(self.diagonal, 1.0, 0.0)

    def T(self, theta: np.ndarray) -> np.ndarray:
        r""":math:`T_\theta` (r×r lower triangular) from :math:`\theta`."""
        T = np.zeros((self.n_re, self.n_re))
        rows, cols = self.positions
        T[rows, cols] = theta
        return T

    def theta(self, T: np.ndarray) -> np.ndarray:
        r""":math:`\theta` from :math:`T_\theta` (the inverse of :meth:`T`)."""
        rows, cols = self.positions
        return np.asarray(T, dtype=float)[rows, cols]


def quadrature_available(effects_per_term: list[int]) -> bool:
    """The one statement of the rule: adaptive Gauss-Hermite quadrature (nAGQ > 1) is defined for a single
    random-effects term with a single (scalar) effect per group, as in lme4 (its integral over each group is
    one-dimensional). Models answer it as their ``quadrature_available``; glmer refuses nAGQ > 1 by it."""
    return len(effects_per_term) == 1 and effects_per_term[0] == 1


def theta_to_T(theta: np.ndarray, n_re: int, correlated: bool) -> np.ndarray:
    r"""lme4's relative covariance factor :math:`T_\theta` (r×r lower triangular).

    For correlated terms :math:`\theta` lists the lower triangle column by column
    (:math:`T_{11}, T_{21}, \dots, T_{r1}, T_{22}, \dots`); for uncorrelated terms
    (``(1 + x || g)``) only the diagonal. :math:`\Sigma = T T^\top` in :math:`\sigma`-free
    GLMMs, so for a random intercept :math:`\theta = \tau`, the SD.
    """
    return CovarianceTerm(n_re, correlated).T(theta)


def theta_positions(n_re: int, correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of T for each element of theta (see :func:`theta_to_T`)."""
    rows, cols = CovarianceTerm(n_re, correlated).positions
    return rows.copy(), cols.copy()  # the user's own arrays (the cached ones are read-only)


def theta_lower_bounds(n_re: int, correlated: bool) -> np.ndarray:
    """Lower bounds for theta: 0 for diagonal entries of T, -inf for off-diagonal ones."""
    return CovarianceTerm(n_re, correlated).lower_bounds
