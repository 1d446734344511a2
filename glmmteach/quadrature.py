"""The Gauss–Hermite rule, shared by the GLMM likelihood (adaptive quadrature), the one-cluster teaching functions
and the population-averaged means: one cached rule per node count."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def gauss_hermite(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss–Hermite nodes :math:`x_k` and weights :math:`w_k` for
    :math:`\int e^{-x^2} f(x)\,dx \approx \sum_k w_k f(x_k)` (read-only arrays, computed once per rule)."""
    if int(n_nodes) != n_nodes or n_nodes < 1:
        raise ValueError(f"the number of quadrature nodes must be a positive integer, got {n_nodes!r}")
    return _hermite_rule(int(n_nodes))


@lru_cache(maxsize=64)
def _hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    # numpy's hermgauss evaluates the Hermite polynomials afresh on every call: a third of an nAGQ = 25
    # fit of the crossover (134 rows) was spent there, once per likelihood evaluation
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights
