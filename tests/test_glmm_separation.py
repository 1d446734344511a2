"""glmer on outcomes that the fixed effects separate: no maximum exists, so the fit is never called converged.

Found by the randomised several-term test (tests/test_lme4_random_structures.py, notes in its data folder's
README): a binary probit ``y ~ x + (1 | a) + (1 | b) + (1 | c)`` whose 48 outcomes are all 1 below x = 2 and 0
above came back converged with log-likelihood -2e-35 and fixed effects (145, -77), where lme4 fails in PIRLS.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

import glmmteach
from glmmteach.exceptions import SeparationWarning
from glmmteach.glmm.separation import not_separated, separating_direction


def crossed_frame(seed: int = 1) -> pd.DataFrame:
    """6 x 4 fully crossed levels of a and b, one row per cell, a covariate x."""
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(1, 7), np.arange(1, 5), indexing="ij")
    return pd.DataFrame({"a": a.ravel(), "b": b.ravel(), "x": np.round(rng.standard_normal(24), 3)})


def fit_recording(formula: str, data: pd.DataFrame, **kwargs) -> tuple[glmmteach.GLMMResults, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = glmmteach.glmer(formula, data, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, SeparationWarning)]


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a)"])
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_completely_separated_binary_outcomes_are_not_a_converged_fit(formula: str, link: str) -> None:
    data = crossed_frame()
    data["y"] = (data["x"] < 0.5).astype(int)  # every x below 0.5 a success, every x above a failure
    result, separation = fit_recording(formula, data, family="binomial", link=link)
    assert not result.converged
    assert len(separation) == 1 and "(Intercept)" in separation[0] and " x " in separation[0]


def test_quasi_complete_separation_with_trials_is_found() -> None:
    """Binomial trials: all successes where x < 0, all failures where x > 0, mixed rows at x = 0 only."""
    data = crossed_frame(2)
    data.loc[data.index % 5 == 0, "x"] = 0.0
    data["n"] = 4
    data["y"] = np.where(data["x"] < 0, 4, np.where(data["x"] > 0, 0, 2))
    result, separation = fit_recording("y ~ x + (1 | a) + (1 | b)", data, family="binomial", trials="n")
    assert not result.converged and len(separation) == 1


def test_overlapping_outcomes_are_not_flagged() -> None:
    """One outcome on the wrong side of the threshold: the maximum is finite, the fit converges, no warning."""
    data = crossed_frame()
    data["y"] = (data["x"] < 0.5).astype(int)
    data.loc[data["x"].idxmin(), "y"] = 0
    result, separation = fit_recording("y ~ x + (1 | a) + (1 | b)", data, family="binomial")
    assert result.converged and separation == []
    X = np.column_stack([np.ones(len(data)), data["x"]])
    assert separating_direction(X, data["y"].to_numpy(float), np.ones(len(data))) is None


def test_separating_direction_is_the_threshold() -> None:
    """For y = 1 exactly where x < 0.5 the direction found changes sign between the last success and the
    first failure, and is 0 on no row."""
    data = crossed_frame()
    y = (data["x"] < 0.5).to_numpy(float)
    X = np.column_stack([np.ones(len(data)), data["x"]])
    direction = separating_direction(X, y, np.ones(len(data)))
    assert direction is not None
    change = X @ direction
    assert np.all(change[y == 1] >= -1e-9) and np.all(change[y == 0] <= 1e-9)
    assert np.max(np.abs(direction)) == pytest.approx(1.0)


def test_certificate_of_no_separation_is_exact_on_cell_designs() -> None:
    """Saturated cell means (a 2 x 2 factorial, as the crossover's trt*period): the data are separated
    exactly when a cell's binary outcomes are all one value; the cheap certificate proves the rest."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        trt, period = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
        y = (rng.random(40) < rng.choice([0.02, 0.3, 0.7, 0.98])).astype(float)
        X = np.column_stack([np.ones(40), trt, period, trt * period])
        cells = trt * 2 + period
        mixed_everywhere = all(0 < y[cells == c].mean() < 1 for c in np.unique(cells)) and len(np.unique(cells)) == 4
        signed = np.where(y == 1, 1.0, -1.0)[:, None] * X
        assert not_separated(signed, np.empty((0, 4))) == mixed_everywhere
        assert (separating_direction(X, y, np.ones(40)) is None) == mixed_everywhere


def test_certificate_never_contradicts_the_linear_programme() -> None:
    """Continuous and binomial designs, separated or not: wherever the certificate says 'not separated'
    the linear programme (solved here directly) finds no separating direction."""
    rng = np.random.default_rng(8)
    certified = 0
    for _ in range(150):
        n, p = int(rng.integers(4, 30)), int(rng.integers(1, 4))
        X = np.column_stack([np.ones(n), rng.standard_normal((n, p))])
        eta = X @ rng.normal(0, rng.choice([0.5, 5.0, 50.0]), p + 1)
        trials = rng.choice([1.0, 3.0], n)
        successes = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
        sign = np.where(successes >= trials, 1.0, np.where(successes <= 0, -1.0, 0.0))
        signed, mixed = sign[sign != 0, None] * X[sign != 0], X[sign == 0]
        if len(signed) == 0 or not not_separated(signed, mixed):
            continue
        certified += 1
        lp = linprog(-signed.sum(axis=0), A_ub=np.vstack([-signed, signed]),
                     b_ub=np.concatenate([np.zeros(len(signed)), np.ones(len(signed))]),
                     A_eq=mixed if len(mixed) else None, b_eq=np.zeros(len(mixed)) if len(mixed) else None,
                     bounds=[(None, None)] * X.shape[1], method="highs")
        assert lp.status == 0 and -lp.fun < 1e-7
    assert certified >= 20  # the certificate applies often enough to be tested (measured: 30 of the 150)


@pytest.mark.parametrize("outcome", [0, 1])
def test_glm_with_one_outcome_in_every_row_is_not_converged(outcome: int) -> None:
    """glm on an all-0 (all-1) binary response: Fisher scoring stops at intercept -25.6 (+25.6) with fitted
    probabilities 8e-12 from the outcomes, which R 4.2's glm calls converged without a warning (its warning needs
    2e-15). The estimate is infinite: the one separation test says so and the fit is not converged."""
    rng = np.random.default_rng(5)
    data = pd.DataFrame({"y": np.full(20, outcome), "x": rng.standard_normal(20)})
    with pytest.warns(SeparationWarning, match=f"every row's outcome is a {'failure' if outcome == 0 else 'success'}"):
        fit = glmmteach.glm("y ~ x", data, family="binomial")
    assert not fit.converged
    assert abs(fit.params["(Intercept)"]) > 20


def test_glm_separation_uses_the_exact_test() -> None:
    """Separated by x (the classic case): the warning names the direction; the glm is not converged."""
    data = pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [1, 2, 3, 4, 5, 6]})
    with pytest.warns(SeparationWarning, match=r"along -1 \(Intercept\) \+ 0\.29 x"):
        fit = glmmteach.glm("y ~ x", data, family="binomial")
    assert not fit.converged


def test_glm_with_overlapping_outcomes_is_not_flagged() -> None:
    data = pd.DataFrame({"y": [0, 0, 1, 0, 1, 1], "x": [1, 2, 3, 4, 5, 6]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        fit = glmmteach.glm("y ~ x", data, family="binomial")
    assert fit.converged


def test_glmm_group_with_a_single_outcome_is_not_separation() -> None:
    """One group all 0: its random effect is pulled to a finite mode by the variance; the maximum is finite and
    lme4 gives no warning (checked on such data with R 4.2 / lme4: no warning, mode -2.3). Neither does glmer."""
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 8), "x": np.round(rng.standard_normal(80), 3)})
    eta = 0.3 + 0.8 * data["x"] + np.repeat(rng.standard_normal(10), 8)
    data["y"] = (rng.uniform(size=80) < 1 / (1 + np.exp(-eta))).astype(int)
    data.loc[data["g"] == 4, "y"] = 0
    result, separation = fit_recording("y ~ x + (1 | g)", data, family="binomial")
    assert separation == [] and result.converged
    assert np.isfinite(result.ranef.loc[4].iloc[0]) and result.ranef.loc[4].iloc[0] < 0
