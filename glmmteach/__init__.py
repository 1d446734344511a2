"""glmmteach: Generalized Linear Mixed Models, step by step.

GLMs are fitted by Fisher scoring (:func:`glm`), GLMMs by maximum likelihood with the Laplace
approximation or adaptive Gauss–Hermite quadrature (:func:`glmer`); :func:`anova` compares
nested models by likelihood-ratio tests, :func:`bootstrap_lrt` by a parametric bootstrap;
:func:`bootstrap` is lme4's ``bootMer`` (on local processes or a Dask cluster).
"""

from .bootstrap import BootstrapResult, bootstrap
from .compare import BootstrapLRT, anova, bootstrap_lrt, compare_ic
from .emmeans import MarginalMeans, contrast, emmeans
from .exceptions import GlmmteachError
from .glm import GLMResults, glm
from .glmm import GLMMResults, glmer
from .residuals import SimulatedResiduals, simulated_residuals
from .tidy import tidy_glm, tidy_glmm

__all__ = [
    "BootstrapLRT",
    "BootstrapResult",
    "GLMMResults",
    "GLMResults",
    "GlmmteachError",
    "MarginalMeans",
    "SimulatedResiduals",
    "anova",
    "bootstrap",
    "bootstrap_lrt",
    "compare_ic",
    "contrast",
    "emmeans",
    "glm",
    "glmer",
    "simulated_residuals",
    "tidy_glm",
    "tidy_glmm",
]
__version__ = "0.1.0"
