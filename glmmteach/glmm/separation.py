r"""Separation of a binomial GLMM's outcomes by its fixed effects: no finite maximum likelihood.

If some direction :math:`d` of the fixed effects gives every all-success row a linear predictor change
:math:`x_i^\top d \ge 0`, every all-failure row :math:`x_i^\top d \le 0` and every mixed row (binomial
trials with some of each) :math:`x_i^\top d = 0`, with at least one inequality strict, the data are
(quasi-)completely separated. Moving :math:`\beta` along :math:`d` then raises every row's conditional
likelihood whatever the random effects are, so the marginal likelihood keeps rising as :math:`\beta \to
\infty`: there is no maximum. (The random effects cannot do the same: their variance penalises them.) An
optimiser stops somewhere on that ray where the gradient has underflowed, and must not call it converged.

The test is exact (a linear programme, as R's ``detectseparation`` package does for GLMs); it runs only
when the fit shows the symptom, fitted probabilities within :data:`EXTREME` of the observed outcomes, so
ordinary fits pay nothing. It is the one separation test of the package: :func:`glmmteach.glm` uses it too.
There it also catches a response that is 0 (or 1) in every row, whose intercept Fisher scoring leaves at
-25.6 with fitted probabilities of 8e-12, above the 2e-15 at which R's ``glm`` warns "fitted probabilities
numerically 0 or 1 occurred" (R 4.2 gives no warning there and calls the fit converged; glmmteach warns and
does not). ``glmer`` refuses such a response outright (no variation to model).

A GLMM whose fixed effects do not separate the outcomes has a finite maximum even when some *group* has a
single outcome (all 0, say): that group's random effect is pulled to a finite value by its variance, and lme4
gives no warning; neither does this test (such a group's rows are not separated by any fixed-effect
direction unless the fixed effects single the group out, as a group indicator among them would).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..exceptions import SeparationWarning
from ..families import Family
from .diagnosis import FitWarning

# Fitted probabilities this close to 0 or 1 in some row trigger the exact test. At a stop on a separating ray
# the Newton decrement is about the rows' residuals, so a "converged" stop (decrement < 1e-6) has them far
# closer than this.
EXTREME = 1e-5


def separating_direction(X: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> np.ndarray | None:
    """A direction ``d`` of the fixed effects along which the likelihood rises without bound (the data are
    (quasi-)separated), or ``None``. Rows with zero trials are ignored.

    The linear programme: maximise the sum of :math:`s_i x_i^\\top d` over the all-success (:math:`s_i = 1`)
    and all-failure (:math:`s_i = -1`) rows subject to :math:`0 \\le s_i x_i^\\top d \\le 1` there and
    :math:`x_i^\\top d = 0` on mixed rows. Its optimum is 0 without separation and at least 1 with it (a
    separating ``d`` scaled until its largest :math:`s_i x_i^\\top d` is 1)."""
    X = np.asarray(X, dtype=float)
    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale  # unit columns: the feasibility tolerances mean the same for every column
    used = trials > 0
    sign = np.where(successes >= trials, 1.0, np.where(successes <= 0, -1.0, 0.0))
    signed = unique_rows(sign[used & (sign != 0), None] * Xs[used & (sign != 0)])
    mixed = unique_rows(Xs[used & (sign == 0)])
    if signed.shape[0] == 0 or not_separated(signed, mixed):
        return None
    p = X.shape[1]
    result = linprog(
        -signed.sum(axis=0),
        A_ub=np.vstack([-signed, signed]),
        b_ub=np.concatenate([np.zeros(len(signed)), np.ones(len(signed))]),
        A_eq=mixed if mixed.shape[0] else None,
        b_eq=np.zeros(len(mixed)) if mixed.shape[0] else None,
        bounds=[(None, None)] * p,
        method="highs",
    )
    if result.status != 0 or -result.fun < 0.5:
        return None
    direction = result.x / scale
    return direction / np.max(np.abs(direction))


def unique_rows(A: np.ndarray) -> np.ndarray:
    """The distinct rows of ``A`` (finite values; -0.0 and 0.0 the same) in lexicographic order, as
    ``np.unique(A, axis=0)`` gives them: each row compared as one block of bytes (7 times faster on 134 rows,
    15 times on 1e5, than its field-by-field comparison)."""
    A = np.ascontiguousarray(A, dtype=float) + 0.0  # -0.0 + 0.0 is 0.0: one bit pattern for each value
    if A.shape[0] == 0:
        return A
    rows = A.view(np.dtype((np.void, A.dtype.itemsize * A.shape[1]))).ravel()
    distinct = A[np.unique(rows, return_index=True)[1]]
    return distinct[np.lexsort(distinct.T[::-1])]


def not_separated(signed: np.ndarray, mixed: np.ndarray) -> bool:
    r"""A certificate that no separating direction exists, found without the linear programme (whose set-up
    was a fifth of a small fit's time): by Stiemke's lemma there is none exactly when some
    :math:`\lambda > 0` and :math:`\nu` give :math:`\sum_i \lambda_i s_i x_i + \sum_j \nu_j x_j = 0`
    (signed rows :math:`s_i x_i`, mixed rows :math:`x_j`): then :math:`\sum_i \lambda_i s_i x_i^\top d
    = 0` for every :math:`d`, so no :math:`d` makes one term positive and none negative. Tried once,
    :math:`\lambda = 1 + \delta` with the least-squares :math:`(\delta, \nu)`; ``False`` (not proven,
    the programme decides) when that :math:`\lambda` is not clearly positive or the equation not met."""
    system = np.vstack([signed, mixed]).T  # p x (signed + mixed rows), unit-scaled columns
    target = -signed.sum(axis=0)
    solution = np.linalg.lstsq(system, target, rcond=None)[0]
    lam = 1.0 + solution[: len(signed)]
    residual = np.abs(system @ solution - target).max()
    return bool(lam.min() > CERTIFICATE_MARGIN and residual <= 1e-9 * max(1.0, len(signed)))


# The least positive weight that certifies "no separation" (the linear programme's tolerances are 1e-7)
CERTIFICATE_MARGIN = 1e-6


def separation_warning(family: Family, X: np.ndarray, successes: np.ndarray, trials: np.ndarray,
                       mu: np.ndarray, column_names: list[str]) -> FitWarning | None:
    """The warning for a binomial fit whose fixed effects separate the outcomes (``None`` otherwise): checked
    only when a fitted probability ``mu`` is within :data:`EXTREME` of its row's observed all-or-nothing
    outcome."""
    if not family.is_binomial:
        return None
    near_outcome = ((successes >= trials) & (mu > 1 - EXTREME)) | ((successes <= 0) & (mu < EXTREME))
    if not np.any(near_outcome & (trials > 0)):
        return None
    direction = separating_direction(X, successes, trials)
    if direction is None:
        return None
    terms = " ".join(f"{'-' if value < 0 else '+'} {abs(value):.2g} {name}"
                     for value, name in zip(direction, column_names, strict=True) if abs(value) > 1e-8)
    terms = terms[2:] if terms.startswith("+ ") else "-" + terms[2:]  # "x - 0.5 z", "-1 (Intercept)"
    used = trials > 0
    if np.all(successes[used] <= 0) or np.all(successes[used] >= trials[used]):
        outcome = "failure (0)" if np.all(successes[used] <= 0) else "success"
        cause = (f"every row's outcome is a {outcome}, so the likelihood keeps rising as the linear predictor runs "
                 f"to {'-' if outcome.startswith('failure') else '+'}infinity along {terms}")
        remedy = "A binomial model needs outcomes of both kinds"
    else:
        cause = (f"along {terms} every all-success row's linear predictor rises and every all-failure "
                 "row's falls (mixed rows unchanged), so the likelihood keeps rising as the fixed effects grow")
        remedy = ("Drop or merge the separating terms, give the fixed effects a prior (glmmteach.bglmer with "
                  "fixef_prior=), or collect data with both outcomes at their values")
    return FitWarning(
        f"the fixed effects separate the outcomes (the data are (quasi-)completely separated): {cause}. Their "
        "maximum-likelihood estimates are infinite: the values reported are where the fit stopped (fitted "
        "probabilities within 1e-5 of the outcomes), and the fit is not converged. " + remedy,
        SeparationWarning)
