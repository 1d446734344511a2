r"""The GLMM engine, one module per stage, in lme4's shape.

- :mod:`~glmmteach.glmm.terms`: random-effects terms, the relative covariance factor
  :math:`T_\theta`, :math:`\theta` ↔ parameters, lower bounds;
- :mod:`~glmmteach.glmm.model`: the model's arrays (:class:`GroupedData`) and per-group block algebra;
- :mod:`~glmmteach.glmm.pirls`: conditional modes of the random effects;
- :mod:`~glmmteach.glmm.sparse`: the general engine for several random-effects terms (crossed, nested,
  observation-level): sparse :math:`Z\Lambda_\theta`, PIRLS and the Laplace likelihood with its gradient
  on a block factorisation whose symbolic analysis is done once per fit;
- :mod:`~glmmteach.glmm.devfun`: Laplace and adaptive Gauss–Hermite log-likelihood and gradient,
  :func:`make_devfun`;
- :mod:`~glmmteach.glmm.grouped`: the one-grouping-factor model of the engine's protocol
  (:class:`~glmmteach.glmm.model.MixedModel`) and :func:`as_model`, where a representation is chosen;
- :mod:`~glmmteach.glmm.start`: start values (the GLM fit, moment estimates of the SDs);
- :mod:`~glmmteach.glmm.optimize`: the optimiser, Newton polish, boundary checks, convergence test;
- :mod:`~glmmteach.glmm.diagnosis`: covariance of the estimates and the warnings about a fit;
- :mod:`~glmmteach.glmm.nagq0`: lme4's ``nAGQ = 0`` approximation (beta inside PIRLS, theta alone optimised);
- :mod:`~glmmteach.glmm.results`: :class:`GLMMResults`, a passive record of the fit;
- :mod:`~glmmteach.glmm.summary`: lme4's printed summary;
- :mod:`~glmmteach.glmm.api`: :func:`glmer` (formula → terms → fit → results).

The one-cluster teaching functions are in :mod:`glmmteach.integration`.
"""

from .api import glmer
from .devfun import agq_loglik, laplace_loglik, loglik_and_gradient, make_devfun, marginal_loglik
from .diagnosis import Diagnosis, diagnose
from .grouped import GroupedModel, as_model
from .model import GroupedData, MixedModel
from .optimize import fit_glmm, maximise_beta
from .outcome import FitOutcome
from .pirls import ModeState, conditional_modes
from .results import GLMMResults
from .sparse import SparseModel, TermLayout
from .start import glm_start
from .summary import GLMMSummary, r_abbreviate
from .terms import CovarianceTerm, theta_lower_bounds, theta_positions, theta_to_T

__all__ = [
    "CovarianceTerm",
    "Diagnosis",
    "FitOutcome",
    "GLMMResults",
    "GLMMSummary",
    "GroupedData",
    "GroupedModel",
    "MixedModel",
    "ModeState",
    "SparseModel",
    "TermLayout",
    "agq_loglik",
    "as_model",
    "conditional_modes",
    "diagnose",
    "fit_glmm",
    "glm_start",
    "glmer",
    "laplace_loglik",
    "loglik_and_gradient",
    "make_devfun",
    "marginal_loglik",
    "maximise_beta",
    "r_abbreviate",
    "theta_lower_bounds",
    "theta_positions",
    "theta_to_T",
]
