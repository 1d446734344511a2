"""The direct model-matrix builder gives formulae's matrices exactly, and declines what it does not build.

Every formula is built twice, by the direct builder and (with it switched off) by formulae, and the two
designs compared: column names, the bits of X, the offset, the random-effects covariates, and the coding of
new rows for predictions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from glmmteach.formula import build_design
from glmmteach.formula import direct as direct_builder
from glmmteach.formula.backend import DeferredModel


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 60
    index = rng.permutation(np.arange(100, 100 + n))
    cat = pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["mid", "lo", "hi", "unused"])
    data = pd.DataFrame({
        "y": rng.integers(0, 2, n).astype(float),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n) * 10,
        "k": rng.integers(-3, 9, n),
        "f": rng.choice([3, 1, 2], n),
        "s": pd.Series(rng.choice(["b", "a", "C", "é"], n), dtype="str", index=index),
        "so": pd.Series(rng.choice(["beta", "alpha", "gamma"], n), dtype=object, index=index),
        "cat": cat,
        "cati": pd.Categorical(rng.choice([10, 2, 5], n), categories=[5, 10, 2]),
        "flag": rng.integers(0, 2, n).astype(bool),
        "fl": rng.choice([1.0, 2.5], n),
        "colon": rng.choice(["a:1", "b:2"], n),
        "g": rng.integers(0, 8, n),
        "h": rng.choice(["u", "v", "w"], n),
    }, index=index)
    data.loc[data.index[[3, 17]], "x"] = np.nan  # rows dropped for missing values
    data.loc[data.index[5], "s"] = None
    return data


SIMPLE = [
    "x", "x + z", "0 + x", "1 + x", "x + 1", "0 + x + z", "k + x", "factor(f)", "factor( f )", "s", "factor(s)",
    "so", "cat", "factor(cat)", "cati", "factor(cati)", "x*s", "s*x", "factor(f)*s", "x + s + s:x", "x + x:s + s",
    "x:z + x + z", "x*z", "z*k", "x + z + x:z", "offset(z) + x", "offset(z) + offset(k) + s", "x:z + s + x + z",
    "cat*factor(f) + x", "s + cat + s:cat", "s*cat + z", "factor(f):x + x + factor(f)", "1",
]
FALLBACK = ["flag", "factor(fl)", "colon", "0 + s", "s:x", "x*z*k", "log(z)", "x + I(x**2)", "x - 1", "x + x",
            "s + factor(s)", "offset(z):x + x", "x:s:cat + x + s + cat"]


def _without_direct(monkeypatch):
    monkeypatch.setattr(direct_builder, "direct_matrix", lambda *args, **kwargs: None)


def _designs(formula, data, monkeypatch, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (rows with missing values dropped: compared by _same)
        direct = build_design(formula, data, **kwargs)
        with monkeypatch.context() as patch:
            _without_direct(patch)
            reference = build_design(formula, data, **kwargs)
    return direct, reference


def _same(a, b) -> None:
    assert a.column_names == b.column_names
    assert a.X.dtype == b.X.dtype and a.X.shape == b.X.shape
    np.testing.assert_array_equal(a.X, b.X, strict=True)
    assert a.X.tobytes() == b.X.tobytes()  # bit for bit (the sign of zeros too)
    assert a.offset.tobytes() == b.offset.tobytes()
    assert a.y.tobytes() == b.y.tobytes()
    assert list(a.row_index) == list(b.row_index) and a.dropped_rows == b.dropped_rows


@pytest.mark.parametrize("rhs", SIMPLE)
def test_direct_builder_equals_formulae(rhs, frame, monkeypatch):
    assert direct_builder.simple_terms(rhs) is not None
    direct, reference = _designs(f"y ~ {rhs}", frame, monkeypatch)
    assert isinstance(direct._common, DeferredModel)  # the direct builder built it
    _same(direct, reference)
    new = frame.dropna(subset=["x", "s"]).iloc[[4, 0, 9, 2]]
    X_new, off_new = direct.new_fixed(new)
    X_ref, off_ref = reference.new_fixed(new)
    assert X_new.tobytes() == X_ref.tobytes() and off_new.tobytes() == off_ref.tobytes()
    np.testing.assert_array_equal(X_new, direct.X[[list(direct.row_index).index(i) for i in new.index]])


@pytest.mark.parametrize("rhs", FALLBACK)
def test_other_formulas_are_left_to_formulae(rhs, frame, monkeypatch):
    try:
        direct, reference = _designs(f"y ~ {rhs}", frame, monkeypatch)
    except Exception as err:  # what formulae refuses is refused the same way
        with monkeypatch.context() as patch:
            _without_direct(patch)
            with pytest.raises(type(err)):
                build_design(f"y ~ {rhs}", frame)
        return
    assert not isinstance(direct._common, DeferredModel)
    _same(direct, reference)


@pytest.mark.parametrize("bar", ["1 + x", "x", "0 + x", "1 + s", "z + x", "x*z", "factor(f)", "0 + s", "1 + flag",
                                 "1 + offset(z) + x"])
def test_random_covariates_equal_formulae(bar, frame, monkeypatch):
    direct, reference = _designs(f"y ~ x + ({bar} | g) + (1 | h)", frame, monkeypatch)
    _same(direct, reference)
    new = frame.dropna(subset=["x", "s"]).iloc[[1, 7, 3]]
    for a, b in zip(direct.random, reference.random, strict=True):
        assert a.names == b.names and a.group_name == b.group_name
        assert a.Z.tobytes() == b.Z.tobytes()
        np.testing.assert_array_equal(a.group_codes, b.group_codes)
        np.testing.assert_array_equal(a.group_levels, b.group_levels)
        Za, ca = a.new_rows(new)
        Zb, cb = b.new_rows(new)
        assert Za.tobytes() == Zb.tobytes()
        np.testing.assert_array_equal(ca, cb)


def test_options_and_weights_equal_formulae(frame, monkeypatch):
    data = frame.assign(n=frame["k"] + 4, y=lambda d: np.minimum(d["y"] * 3, d["k"] + 4))
    direct, reference = _designs("y ~ offset(z) + x + factor(f) + (1 | g)", data, monkeypatch, trials="n",
                                 offset=np.linspace(0, 1, len(data)), weights="n", family="binomial")
    _same(direct, reference)
    assert direct.trials.tobytes() == reference.trials.tobytes()
    assert direct.weights.tobytes() == reference.weights.tobytes()


def test_glmer_fit_is_bit_identical(ohio, monkeypatch):
    from glmmteach import glmer

    formula = "death ~ offset(logpop) + factor(sex)*factor(race) + year + (1 | county)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (year's scale)
        fit = glmer(formula, ohio, "poisson")
        with monkeypatch.context() as patch:
            _without_direct(patch)
            reference = glmer(formula, ohio, "poisson")
    assert fit.llf == reference.llf
    assert fit.params.to_numpy().tobytes() == reference.params.to_numpy().tobytes()
    assert fit.bse.to_numpy().tobytes() == reference.bse.to_numpy().tobytes()
    assert list(fit.params.index) == list(reference.params.index)


def test_design_does_not_follow_later_changes_to_the_data(ohio):
    data = ohio.copy()
    design = build_design("death ~ offset(logpop) + factor(sex) + year + (1 | county)", data, trials="pop",
                          weights="logpop")
    saved = [design.y.copy(), design.trials.copy(), design.weights.copy(), design.offset.copy(), design.X.copy()]
    data.loc[:, ["death", "pop", "logpop", "year"]] = 1  # in place, after the design was built
    data["sex"] = 3
    for before, now in zip(saved, [design.y, design.trials, design.weights, design.offset, design.X], strict=True):
        np.testing.assert_array_equal(before, now)
    X, _ = design.new_fixed(ohio.iloc[:3])  # the coding of the fitted rows (sex 1 and 2), not of the changed data
    np.testing.assert_array_equal(X, saved[4][:3])
