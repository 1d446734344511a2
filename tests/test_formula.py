"""Formula parsing and design matrices: R's term order and names, random-effect bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glmmteach.exceptions import DataError, FormulaError
from glmmteach.formula import BarTerm, build_design, parse_formula


def test_parse_splits_fixed_and_random_terms():
    parsed = parse_formula("y ~ x + factor(g) + (1 + x | id) + (1 + x || site)")
    assert parsed.response == "y"
    assert parsed.fixed_terms == ("x", "factor(g)")
    assert parsed.bars == (BarTerm("1 + x", "id", True), BarTerm("1 + x", "site", False))
    assert parse_formula("y ~ (1|id)").fixed_rhs == "1"


def test_r_term_order_and_names(ohio):
    design = build_design("death ~ offset(logpop) + factor(sex)*factor(race) + year", ohio)
    assert design.column_names == [
        "(Intercept)",
        "factor(sex)2",
        "factor(race)2",
        "year",
        "factor(sex)2:factor(race)2",
    ]
    np.testing.assert_allclose(design.offset, ohio["logpop"])
    np.testing.assert_array_equal(design.X[:, 1], (ohio["sex"] == 2).astype(float))


def test_star_expands_with_interaction_last(crossover):
    design = build_design("outcome ~ 1 + trt + period + trt*period", crossover)
    assert design.column_names == ["(Intercept)", "trt", "period", "trt:period"]
    np.testing.assert_array_equal(design.X[:, 3], crossover["trt"] * crossover["period"])


def test_random_terms_build_z_and_group_codes(crossover):
    design = build_design("outcome ~ trt + (1 + period | ID)", crossover)
    (term,) = design.random
    assert term.group_name == "ID" and term.correlated and term.names == ["(Intercept)", "period"]
    assert term.Z.shape == (134, 2) and term.n_groups == 67
    np.testing.assert_array_equal(term.Z[:, 1], crossover["period"])
    np.testing.assert_array_equal(term.group_levels[term.group_codes], crossover["ID"])
    assert not build_design("outcome ~ trt + (1 + period || ID)", crossover).random[0].correlated
    np.testing.assert_array_equal(term.codes_for([1, 67, 999]), [0, 66, -1])


def test_string_factor_names_like_r():
    data = pd.DataFrame({"y": [0, 1, 1, 0], "arm": ["control", "drug", "drug", "control"]})
    assert build_design("y ~ arm", data).column_names == ["(Intercept)", "armdrug"]


def test_new_data_keeps_the_fitted_coding(ohio):
    design = build_design("death ~ factor(sex) + year", ohio)
    X, offset = design.new_fixed(pd.DataFrame({"sex": [2, 1], "year": [5, 6]}))
    np.testing.assert_array_equal(X, [[1, 1, 5], [1, 0, 6]])
    np.testing.assert_array_equal(offset, 0)


def test_grouping_column_missing(crossover):
    with pytest.raises(DataError, match="column 'patient' named in the formula"):
        build_design("outcome ~ trt + (1 | patient)", crossover)


def test_grouping_factor_must_be_a_column_an_interaction_or_a_nesting(crossover):
    with pytest.raises(FormulaError, match=r"must be a column name, an interaction of columns \(a:b\) or a nesting"):
        build_design("outcome ~ trt + (1 | ID + period)", crossover)
    term = build_design("outcome ~ trt + (1 | ID:period)", crossover).random[0]
    assert term.group_name == "ID:period" and term.n_groups == 134
    assert term.group_levels[:3].tolist() == ["1:0", "1:1", "2:0"]  # R's interaction: first factor slowest


def test_offset_argument_and_formula_offset_add(ohio):
    design = build_design("death ~ offset(logpop) + year", ohio, offset=np.ones(len(ohio)))
    np.testing.assert_allclose(design.offset, ohio["logpop"] + 1)


def test_scalar_terms_of_one_factor_merge_into_an_uncorrelated_term(crossover):
    merged = build_design("outcome ~ trt + (1 | ID) + (0 + period | ID)", crossover).random
    double_bar = build_design("outcome ~ trt + (1 + period || ID)", crossover).random[0]
    assert len(merged) == 1
    (term,) = merged
    assert not term.correlated and term.names == double_bar.names == ["(Intercept)", "period"]
    np.testing.assert_array_equal(term.Z, double_bar.Z)
    Z, codes = term.new_rows(pd.DataFrame({"period": [0, 1], "ID": [3, 1000]}))
    np.testing.assert_array_equal(Z, [[1, 0], [1, 1]])
    np.testing.assert_array_equal(codes, [2, -1])


def test_vector_terms_of_one_factor_do_not_merge(crossover):
    # lme4 keeps a vector term and another term of the same factor as two terms (two blocks of theta)
    terms = build_design("outcome ~ trt + (1 + period | ID) + (0 + trt | ID)", crossover).random
    assert [(t.group_name, t.names, t.correlated) for t in terms] == [
        ("ID", ["(Intercept)", "period"], True), ("ID", ["trt"], True)]
    with pytest.raises(FormulaError, match="repeat an effect"):
        build_design("outcome ~ trt + (1 | ID) + (1 | ID)", crossover)


def _categorical_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(17)
    mode = rng.choice(["want", "do"], 300)
    g = rng.integers(0, 6, 300)
    y = rng.poisson(np.exp(0.3 + 0.5 * (mode == "do") + rng.normal(0, 0.5, 6)[g])).astype(float)
    frame = pd.DataFrame({
        "y": y,
        # R: factor(mode, levels = c("never", "want", "do")); model.frame drops the unused level
        "mode": pd.Categorical(mode, categories=["never", "want", "do"]),
        "g": pd.Categorical([f"g{k}" for k in g], categories=[f"g{k}" for k in range(5, -1, -1)]),
    })
    return frame, mode


def test_categorical_level_order_sets_the_reference_level():
    """A pandas categorical is an R factor: its first used level is the reference (VerbAgg's mode:
    levels want, do give R's ``modedo``), whatever the alphabetical order."""
    import glmmteach

    frame, mode = _categorical_frame()
    design = build_design("y ~ mode", frame)
    assert design.column_names == ["(Intercept)", "modedo"]
    np.testing.assert_array_equal(design.X[:, 1], (mode == "do").astype(float))
    assert build_design("y ~ factor(mode)", frame).column_names == ["(Intercept)", "factor(mode)do"]
    categorical = glmmteach.glm("y ~ mode", frame, family="poisson")
    strings = glmmteach.glm("y ~ mode", frame.assign(mode=mode.astype(object)), family="poisson")
    assert strings.params.index.tolist() == ["(Intercept)", "modewant"]  # sorted levels: do first
    assert categorical.params["modedo"] == pytest.approx(-strings.params["modewant"], abs=1e-10)
    assert categorical.llf == pytest.approx(strings.llf, abs=1e-10)
    new = frame.head(5).assign(mode=mode[:5].astype(object))  # new data given as plain strings
    np.testing.assert_allclose(categorical.predict(new), strings.predict(new), atol=1e-10)


def test_categorical_grouping_factor_keeps_its_level_order():
    import glmmteach

    frame, _ = _categorical_frame()
    fit = glmmteach.glmer("y ~ mode + (1 | g)", frame, family="poisson")
    assert fit.ranef.index.tolist() == [f"g{k}" for k in range(5, -1, -1)]  # R's levels(g), not sorted


# --------------------------------------------------------------------------------------------
# The package's shape: one job per module, each importing only those above it, no private names read across


def _package_imports() -> dict[str, tuple[set[str], set[str]]]:
    """Each module of glmmteach.formula: the sibling modules it imports and the private names it takes from them."""
    import ast
    from pathlib import Path

    import glmmteach.formula

    root = Path(glmmteach.formula.__file__).parent
    modules = {path.stem for path in root.glob("*.py")} - {"__init__"}
    found = {}
    for name in modules:
        siblings, private = set(), set()
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported = {alias.name for alias in node.names}
                siblings |= {node.module} if node.module else imported & modules
                private |= {f"{node.module}.{n}" for n in imported if n.startswith("_")}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                private |= {f"{node.value.id}.{node.attr}"} if node.attr.startswith("_") else set()
        found[name] = (siblings, private)
    return found


def test_formula_modules_import_no_cycle_and_no_private_name():
    imports = _package_imports()
    assert {name for name, (_, private) in imports.items() if private} == set()
    done: list[str] = []  # a topological order: every module after all it imports
    while len(done) < len(imports):
        ready = sorted(m for m, (siblings, _) in imports.items() if m not in done and siblings <= set(done))
        assert ready, f"an import cycle among {sorted(set(imports) - set(done))}"
        done += ready
    assert imports["syntax"][0] == set() and "design" not in {s for sib, _ in imports.values() for s in sib}

