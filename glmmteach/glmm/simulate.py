r"""Simulating responses from a fitted GLMM (lme4's ``simulate``).

Given the estimates :math:`(\hat\beta, T_{\hat\theta})`, one simulated data set draws

.. math::

    b_i = T_{\hat\theta} u_i,\quad u_i \sim N(0, I_r) \qquad\text{(new random effects, lme4's default)}

or keeps the conditional modes :math:`b_i = T_{\hat\theta}\tilde u_i` (``use_u=True``, lme4's
``use.u = TRUE``), then :math:`\eta = X\hat\beta + o + Z b` and, independently per row,
:math:`y \sim \mathrm{Poisson}(g^{-1}(\eta))` or :math:`y \sim \mathrm{Binomial}(n, g^{-1}(\eta))`.
The first is the model's sampling distribution (what a parametric bootstrap needs); the second
simulates new observations of the groups that were observed.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..exceptions import GlmmteachWarning
from ..simulation import as_generator as as_generator
from ..simulation import check_nsim as check_nsim
from ..simulation import draw_responses
from .model import GroupedData


def simulate_glmm(
    data: GroupedData,
    beta: np.ndarray,
    T: np.ndarray,
    modes: np.ndarray,
    nsim: int,
    rng: np.random.Generator,
    use_u: bool = False,
) -> np.ndarray:
    r"""``nsim`` simulated response vectors (an n×nsim array, in the units of ``data.y``: counts or successes).

    ``modes`` are the spherical conditional modes :math:`\tilde u` (G×r), used when ``use_u``. Prior
    weights have no generative meaning for these families and are ignored, with a warning (as lme4).
    New random effects are drawn for all simulations first (G×r×nsim), then the responses.
    """
    if data.prior_weights is not None:
        warnings.warn("prior weights are ignored when simulating (as lme4 does): each row is simulated from its "
                      "fitted distribution", GlmmteachWarning, stacklevel=3)
    if use_u:
        b = (modes @ T.T)[:, :, None]  # G×r×1: the same random effects in every simulation
    else:
        u = rng.standard_normal((nsim, data.n_groups, data.n_re))
        b = np.einsum("sgr,ar->gas", u, T)  # G×r×nsim
    eta = np.repeat(data.eta_fixed(beta)[:, None], nsim, axis=1)
    for a in range(data.n_re):  # one n×nsim gather per random-effect term, not an n×r×nsim array
        eta += data.Z[:, a, None] * b[data.groups, a, :]
    return draw_responses(data.family.base, data.family.linkinv(eta), data.trials, rng, data.family.theta)
