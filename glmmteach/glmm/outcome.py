"""The outcome of a GLMM fit: an immutable record passed from the optimiser (:mod:`glmmteach.glmm.optimize`,
:mod:`glmmteach.glmm.nagq0`, :mod:`glmmteach.glmm.nb_shape`) to the diagnosis (:mod:`glmmteach.glmm.diagnosis`)
and the results (:mod:`glmmteach.glmm.results`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FitOutcome:
    """What the optimiser found: estimates, log-likelihood, modes, Hessian and diagnostics."""

    theta: np.ndarray
    beta: np.ndarray
    llf: float
    state: Any  # the conditional modes there (glmm.pirls.ModeState or glmm.sparse.SparseModeState)
    hessian: np.ndarray  # of the log-likelihood in (theta, beta)
    gradient: np.ndarray  # of the log-likelihood in (theta, beta)
    evaluations: int
    passes: int
    converged: bool
    message: str
    newton_decrement: float
    n_nodes: int = 1  # 1: Laplace; more: adaptive Gauss-Hermite nodes
    boundary_verified: bool = True  # every variance parameter at 0 was checked to be a maximum there
    restarts: int = 0  # optimiser restarts (from the interior of a boundary, or after an early stop)
    quadrature_change: float = 0.0  # log-likelihood at the optimum with twice the nodes minus llf (AGQ only)
    log_prior: float = 0.0  # log prior density at the estimates (a MAP fit: the objective was llf + log_prior)
    method: str = "L-BFGS-B"  # the optimiser (OPTIMISERS)
