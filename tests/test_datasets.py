"""The course data load, with the codes of data/README.md, from wherever the package is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glmmteach import datasets


def test_crossover_layout():
    data = datasets.load_crossover()
    assert list(data.columns) == ["ID", "group", "period", "trt", "outcome"]
    assert data.shape == (134, 5) and data["ID"].nunique() == 67
    # group 1 = placebo first: period 0 on placebo
    first = data[(data["group"] == 1) & (data["period"] == 0)]
    assert (first["trt"] == 0).all() and first["ID"].max() == 34


def test_ohio_layout():
    data = datasets.load_ohio_cancer()
    assert data.shape == (7392, 7)
    assert data["year"].between(1, 21).all() and data["year"].nunique() == 21
    assert set(data["sex"]) == {1, 2} and set(data["race"]) == {1, 2}
    np.testing.assert_allclose(data["logpop"], np.log(data["pop"]))



def test_grouseticks_layout():
    ticks = datasets.load_grouseticks()
    assert list(ticks.columns) == ["INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT"]
    assert ticks.shape == (403, 7) and ticks["INDEX"].is_unique
    assert (ticks["BROOD"].nunique(), ticks["LOCATION"].nunique()) == (118, 63)
    # broods are nested in locations (and in years); cHEIGHT is HEIGHT centred at its mean
    assert ticks.groupby("BROOD")["LOCATION"].nunique().max() == 1
    assert ticks.groupby("BROOD")["YEAR"].nunique().max() == 1
    assert set(ticks["YEAR"]) == {95, 96, 97} and (ticks["TICKS"] >= 0).all()
    np.testing.assert_allclose(ticks["cHEIGHT"], ticks["HEIGHT"] - ticks["HEIGHT"].mean(), atol=1e-12)


def test_verbagg_layout():
    verbal = datasets.load_verbagg()
    assert verbal.shape == (7584, 10)
    assert (verbal["id"].nunique(), verbal["item"].nunique()) == (316, 24)
    # subjects and items are fully crossed: one answer per (subject, item)
    assert not verbal.duplicated(["id", "item"]).any()
    # lme4's factor levels, so that reference levels match R's
    assert list(verbal["btype"].cat.categories) == ["curse", "scold", "shout"]
    assert list(verbal["mode"].cat.categories) == ["want", "do"]
    assert list(verbal["item"].cat.categories[:2]) == ["S1WantCurse", "S1WantScold"]
    assert verbal["resp"].cat.ordered and list(verbal["resp"].cat.categories) == ["no", "perhaps", "yes"]
    # r2 = Y for perhaps or yes; y is its 0/1 form
    assert ((verbal["r2"] == "Y") == (verbal["resp"] != "no")).all()
    assert (verbal["y"] == (verbal["r2"] == "Y")).all()
    # subject-level columns are constant within a subject
    assert verbal.groupby("id")[["Anger", "Gender"]].nunique().max().max() == 1

def test_county_shapes_match_names():
    shapes = datasets.load_ohio_counties()
    names = datasets.load_ohio_county_names()
    assert [s.county for s in shapes] == list(range(1, 89))
    assert [s.name for s in shapes] == list(names["name"])
    # county k has FIPS 39000 + 2k - 1
    assert all(int(s.fips) == 39000 + 2 * s.county - 1 for s in shapes)
    lon, lat = np.concatenate([r for s in shapes for r in s.rings]).T
    assert -85 < lon.min() < lon.max() < -80 and 38 < lat.min() < lat.max() < 42.5


@pytest.mark.slow
def test_loaders_work_outside_the_repository(tmp_path):
    code = "from glmmteach import datasets; print(len(datasets.load_crossover()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "134"


@pytest.mark.slow
def test_loaders_work_from_an_installed_wheel(tmp_path):
    """Build the wheel, install it into a bare folder, and load every data set from there."""
    root = Path(__file__).resolve().parents[1]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(root), "-w", str(tmp_path / "wheel")],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "wheel").glob("glmmteach-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True, capture_output=True
    )
    code = (
        "import glmmteach, sys; from glmmteach import datasets as d; "
        "assert glmmteach.__file__.startswith(sys.argv[1]), glmmteach.__file__; "
        "print(len(d.load_crossover()), len(d.load_ohio_cancer()), len(d.load_ohio_counties()), "
        "len(d.load_grouseticks()), len(d.load_verbagg()))"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["134", "7392", "88", "403", "7584"]
