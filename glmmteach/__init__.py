"""glmmteach: Generalized Linear Mixed Models, step by step.

GLMs are fitted by Fisher scoring (:func:`glm`), GLMMs by maximum likelihood with the Laplace
approximation or adaptive Gauss–Hermite quadrature (:func:`glmer`); :func:`anova` compares
nested models by likelihood-ratio tests, :func:`bootstrap_lrt` by a parametric bootstrap;
:func:`bootstrap` is lme4's ``bootMer`` (on local processes or a Dask cluster); :func:`bglmer` is blme's
maximum a posteriori fit with its priors (:mod:`glmmteach.priors`), :func:`all_fit` lme4's ``allFit``;
:mod:`glmmteach.crossover` has the within-patient tests of a 2x2 crossover (Mainland-Gart, Prescott,
conditional logistic regression).
"""

from .bootstrap import BootstrapResult, bootstrap
from .compare import BootstrapLRT, anova, bootstrap_lrt, compare_ic
from .crossover import (
    ConditionalLogit,
    MainlandGart,
    Prescott,
    conditional_logit,
    mainland_gart,
    pair_table,
    prescott,
)
from .emmeans import MarginalMeans, contrast, emmeans
from .exceptions import GlmmteachError
from .glm import GLMResults, glm
from .glmm import GLMMResults, glmer, priors
from .glmm.allfit import AllFit, all_fit
from .glmm.bglmer import bglmer
from .residuals import SimulatedResiduals, simulated_residuals
from .tidy import tidy_glm, tidy_glmm

__all__ = [
    "AllFit",
    "BootstrapLRT",
    "BootstrapResult",
    "ConditionalLogit",
    "GLMMResults",
    "GlmmteachError",
    "GLMResults",
    "MainlandGart",
    "MarginalMeans",
    "Prescott",
    "SimulatedResiduals",
    "all_fit",
    "anova",
    "bglmer",
    "bootstrap",
    "bootstrap_lrt",
    "compare_ic",
    "conditional_logit",
    "contrast",
    "emmeans",
    "glm",
    "glmer",
    "mainland_gart",
    "pair_table",
    "prescott",
    "priors",
    "simulated_residuals",
    "tidy_glm",
    "tidy_glmm",
]
# The one place the version is written: pyproject.toml reads it (dynamic), the book shows it in its
# footer (glmmteach.bookbuild), CITATION.cff and CHANGELOG.md name it (tests/test_publication.py checks).
__version__ = "0.3.0.dev0"
