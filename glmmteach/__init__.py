"""glmmteach: Generalized Linear Mixed Models, step by step.

GLMs are fitted by Fisher scoring (:func:`glm`), GLMMs by maximum likelihood with the Laplace
approximation or adaptive Gauss–Hermite quadrature (:func:`glmer`); :func:`anova` compares
nested models by likelihood-ratio tests, :func:`bootstrap_lrt` by a parametric bootstrap;
:func:`bootstrap` is lme4's ``bootMer`` (on local processes or a Dask cluster); :func:`bglmer` is blme's
maximum a posteriori fit with its priors (:mod:`glmmteach.priors`), :func:`all_fit` lme4's ``allFit``;
:mod:`glmmteach.crossover` has the within-patient tests of a 2x2 crossover (Mainland-Gart, Prescott,
conditional logistic regression).
"""

from importlib import import_module

from .bootstrap import BootstrapResult, bootstrap
from .compare import BootstrapLRT, anova, bootstrap_lrt, compare_ic
from .emmeans import MarginalMeans, contrast, emmeans
from .exceptions import GlmmteachError
from .glm import GLMResults, glm
from .glmm import GLMMResults, glmer, priors

# Imported when first used (PEP 562): a fit needs none of these, and ``import glmmteach`` is most of a short
# script's time (issue 15: at most 1.3x numpy, pandas, scipy.optimize and scipy.sparse). A name whose module
# has the same name (bootstrap, emmeans) stays eager: importing that module later would rebind the name.
_LAZY = {
    "ConditionalLogit": "crossover", "MainlandGart": "crossover", "Prescott": "crossover",
    "conditional_logit": "crossover", "mainland_gart": "crossover", "pair_table": "crossover",
    "prescott": "crossover",
    "AllFit": "glmm.allfit", "all_fit": "glmm.allfit",
    "bglmer": "glmm.bglmer",
    "SimulatedResiduals": "residuals", "simulated_residuals": "residuals",
    "tidy_glm": "tidy", "tidy_glmm": "tidy",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'glmmteach' has no attribute {name!r}")
    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
