"""The course data sets, loaded as pandas DataFrames.

The files ship inside the package (``glmmteach.data``, the repository's ``data/`` folder), so the
loaders work from an installed package as well as from a checkout. They are opened read-only and
never written. Provenance and codes: ``data/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import DataError


def data_path(name: str = "") -> Path:
    """Path of a file (or, with no name, the folder) of the course data."""
    folder = Path(str(resources.files("glmmteach.data")))
    path = folder / name
    if not path.exists():
        raise DataError(f"course data file {name!r} not found in {folder}")
    return path


def load_crossover() -> pd.DataFrame:
    """Two-period crossover trial on cerebrovascular deficiency (Jones & Kenward 1989).

    134 rows (67 patients × 2 periods). Columns:

    ========  ==========================================================================
    ID        patient, 1–67
    group     sequence: 1 = placebo then active drug (patients 1–34), 0 = drug then placebo
    period    0 = period 1, 1 = period 2
    trt       0 = placebo, 1 = active drug
    outcome   electrocardiogram: 0 = normal, 1 = abnormal
    ========  ==========================================================================
    """
    return pd.read_csv(data_path("crossover.csv"))


def load_ohio_cancer() -> pd.DataFrame:
    """Lung cancer deaths in Ohio's 88 counties, 1968–1988 (Xia & Carlin 1998).

    7,392 rows = 88 counties × 2 sexes × 2 races × 21 years. Columns:

    ========  ==========================================================================
    county    1–88, counties in alphabetical order (1 = Adams)
    sex       1 = male, 2 = female
    race      1 = white, 2 = non-white
    year      1–21 = 1968–1988
    death     lung cancer deaths
    pop       population at risk
    logpop    log(pop), the offset of a rate model (added by the loader)
    ========  ==========================================================================
    """
    cancer = pd.read_csv(data_path("ohio_cancer.csv"))
    cancer["logpop"] = np.log(cancer["pop"])
    return cancer


def load_ohio_county_names() -> pd.DataFrame:
    """County number (1–88, alphabetical) and county name."""
    return pd.read_csv(data_path("ohio_county_names.csv"))


def load_grouseticks() -> pd.DataFrame:
    """Ticks on the heads of red grouse chicks (Elston et al. 2001; lme4's ``grouseticks``).

    403 rows, one per chick: chicks nested in broods, broods in locations, sampled in 1995–1997.
    Columns:

    ========  ==========================================================================
    INDEX     chick, 1–403 (one row each: an observation-level grouping factor)
    TICKS     number of ticks counted on the chick's head
    BROOD     brood (118 broods; each brood at one location in one year)
    HEIGHT    height of the location above sea level, metres
    YEAR      95, 96 or 97 (year − 1900)
    LOCATION  location code (63 locations, some sampled in several years)
    cHEIGHT   HEIGHT minus its mean over the 403 chicks (as lme4 ships it)
    ========  ==========================================================================
    """
    return pd.read_csv(data_path("grouseticks.csv"))


# Factor levels in lme4's order, so that reference levels and codes match R's VerbAgg.
VERBAGG_LEVELS = {
    "Gender": ["F", "M"],
    "resp": ["no", "perhaps", "yes"],
    "btype": ["curse", "scold", "shout"],
    "situ": ["other", "self"],
    "mode": ["want", "do"],
    "r2": ["N", "Y"],
}


def load_verbagg() -> pd.DataFrame:
    """Verbal aggression questionnaire (De Boeck & Wilson 2004; lme4's ``VerbAgg``).

    7,584 rows = 316 subjects × 24 items; subjects and items are crossed. Factors are pandas
    categoricals with lme4's level order (``resp`` ordered). Columns:

    ========  ==========================================================================
    Anger     the subject's trait anger score (STAXI), 11–39
    Gender    F or M
    item      the item (24 levels, in lme4's order: S1WantCurse, S1WantScold, ...)
    resp      response: no < perhaps < yes
    id        subject, 1–316
    btype     behaviour type: curse, scold, shout
    situ      situation: other (other-to-blame) or self (self-to-blame)
    mode      behaviour mode: want or do
    r2        dichotomous response: N (no) or Y (perhaps or yes)
    y         r2 as 0/1 (1 = Y), the response of a logistic model (added by the loader)
    ========  ==========================================================================
    """
    data = pd.read_csv(data_path("verbagg.csv"))
    for column, levels in VERBAGG_LEVELS.items():
        unknown = set(data[column]) - set(levels)
        if unknown:
            raise DataError(f"verbagg.csv: column {column!r} has unexpected values {sorted(unknown)}")
        data[column] = pd.Categorical(data[column], categories=levels, ordered=column == "resp")
    # the file lists the rows item by item, in lme4's level order
    data["item"] = pd.Categorical(data["item"], categories=list(pd.unique(data["item"])))
    data["y"] = (data["r2"] == "Y").astype(int)
    return data


@dataclass(frozen=True)
class CountyShape:
    """One county's boundary: a list of rings, each an (m, 2) array of longitude/latitude."""

    county: int
    name: str
    fips: str
    rings: list[np.ndarray]


def load_ohio_counties() -> list[CountyShape]:
    """County boundaries of Ohio (US Census TIGER/Line 2007), one :class:`CountyShape` per county.

    ``county`` is the course's county number (alphabetical, as in :func:`load_ohio_cancer`),
    matched through the county name; shapes are sorted by it.
    """
    import shapefile  # pyshp; imported here because only the map needs it

    numbers = dict(zip(load_ohio_county_names()["name"], load_ohio_county_names()["county"], strict=True))
    shapes = []
    with shapefile.Reader(str(data_path("ohio_counties") / "fe_2007_39_county")) as reader:
        fields = [f[0] for f in reader.fields[1:]]
        for record, shape in zip(reader.iterRecords(), reader.iterShapes(), strict=True):
            attrs = dict(zip(fields, record, strict=True))
            points = np.asarray(shape.points, dtype=float)
            bounds = list(shape.parts) + [len(points)]
            rings = [points[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            name = str(attrs["NAME"])
            if name not in numbers:
                raise DataError(f"county {name!r} of the shapefile is not in ohio_county_names.csv")
            shapes.append(CountyShape(int(numbers[name]), name, str(attrs["CNTYIDFP"]), rings))
    return sorted(shapes, key=lambda s: s.county)
