"""``import glmmteach`` pulls in only what a fit needs (issue 15, speed).

scipy.stats alone costs more than numpy, pandas, scipy.optimize and scipy.sparse together, and
matplotlib is only for plots: both are imported where they are used (intervals, emmeans, glm's
``loglik``, plots). Checked in a fresh interpreter, whose ``sys.modules`` this test's process cannot
pollute; the p-values that replaced scipy.stats at fit time are checked against it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmmteach

LAZY = ["scipy.stats", "matplotlib", "scipy.integrate", "glmmteach.crossover", "glmmteach.glmm.allfit",
        "glmmteach.residuals", "glmmteach.tidy", "formulae", "scipy.interpolate"]


def _modules_after(code: str) -> dict[str, bool]:
    probe = f"import sys, json\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {LAZY!r}}}))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_import_does_not_load_scipy_stats_or_matplotlib():
    assert _modules_after("import glmmteach") == dict.fromkeys(LAZY, False)


def test_lazy_names_are_the_modules_objects():
    # the names imported on first use are the same objects as in their modules, listed in dir() and __all__
    from glmmteach import crossover, residuals, tidy
    from glmmteach.glmm import allfit, bglmer

    assert glmmteach.prescott is crossover.prescott and glmmteach.all_fit is allfit.all_fit
    assert glmmteach.bglmer is bglmer.bglmer and glmmteach.tidy_glmm is tidy.tidy_glmm
    assert glmmteach.simulated_residuals is residuals.simulated_residuals
    assert set(glmmteach.__all__) <= set(dir(glmmteach))
    assert all(callable(getattr(glmmteach, name)) for name in glmmteach.__all__ if name != "priors")
    with pytest.raises(AttributeError, match="no attribute 'fit_everything'"):
        glmmteach.fit_everything  # noqa: B018


def test_glm_and_glmer_fits_do_not_load_scipy_stats():
    # a Poisson GLM with its summary table and a Laplace GLMM: the fits need no scipy.stats
    code = (
        "import numpy as np, pandas as pd, glmmteach as g\n"
        "rng = np.random.default_rng(1); n = 200\n"
        "d = pd.DataFrame({'x': rng.normal(size=n), 'g': np.repeat(np.arange(20), 10)})\n"
        "d['y'] = rng.poisson(np.exp(0.3 + 0.5 * d.x + rng.normal(0, 0.5, 20)[d.g]))\n"
        "f = g.glm('y ~ x', d, 'poisson'); f.pvalues; f.summary()\n"
        "m = g.glmer('y ~ x + (1 | g)', d, 'poisson'); m.pvalues; m.summary()\n"
    )
    assert _modules_after(code)["scipy.stats"] is False


@pytest.mark.parametrize("df", [1.0, 3.5, 40.0, np.inf])
def test_special_tails_equal_scipy_stats(df):
    z = np.concatenate([np.linspace(-40, 40, 2001), [0.0, np.inf, -np.inf, np.nan]])
    assert np.array_equal(special.stdtr(df, -np.abs(z)), stats.t.sf(np.abs(z), df), equal_nan=True)
    assert np.array_equal(special.ndtr(-np.abs(z)), stats.norm.sf(np.abs(z)), equal_nan=True)
    stat = np.abs(z[np.isfinite(z)])  # anova's statistic: >= 0, df >= 1
    assert np.array_equal(special.chdtrc(df, stat), stats.chi2.sf(stat, df))


def test_glm_pvalues_are_scipy_stats_tails():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.normal(size=60)})
    d["y"] = 1.0 + 0.2 * d.x + rng.normal(size=60)
    fit = glmmteach.glm("y ~ x", d, "gaussian")
    expected = 2 * stats.t.sf(np.abs(fit.zvalues.to_numpy()), fit.df_resid)
    assert np.array_equal(fit.pvalues.to_numpy(), expected)
