"""Write a scan: many specs drawn at random for make_data.py's simulator, in a folder of their own.

The stored cases are few; a scan looks for failures among many more. It draws each spec (structure, family,
link, numbers of levels, rows, coefficients, true SDs from {0, 0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2},
correlation, offset) from ``numpy.random.default_rng(meta_seed)``, simulates it with ``make_data.simulate``,
and writes the CSVs, ``cases.json`` and a copy of ``make_reference.R`` into OUT_DIR. Then:

    python tests/data/lme4_random_structures/scan.py /tmp/scan 101 150
    Rscript /tmp/scan/make_reference.R --on-error skip
    PYTHONPATH=. python tests/data/lme4_random_structures/comparison_table.py /tmp/scan

Cases found this way are stored by adding their specs (with the scan's seed) to make_data.py's SPECS.
The scans behind the stored ``scan*`` cases: meta-seeds 101 and 202 with 150 specs each (all structures),
303 with 80 (``--structures crossed_slope,vecscalar,crossed_slope --canonical``), 404 with 100 (``--canonical``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_data  # noqa: E402 - the simulator beside this script

SD_CHOICES = (0.0, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
SD_CHOICES_SLOPES = (0.0, 0.05, 0.1, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)  # the correlated-slope scan (--canonical)


def draw_spec(meta: np.random.Generator, k: int, prefix: str, structures: list[str], canonical: bool) -> make_data.Spec:
    """One random spec; the draw order is fixed, so a meta-seed gives the same specs every time."""
    families = ([("binary", "logit"), ("trials", "logit"), ("poisson", "log"), ("poisson", "log")] if canonical else
                [("binary", "logit"), ("binary", "probit"), ("trials", "logit"), ("trials", "probit"),
                 ("poisson", "log")])
    sd_choices = SD_CHOICES_SLOPES if canonical else SD_CHOICES
    structure = structures[meta.integers(len(structures))]
    family, link = families[meta.integers(len(families))]
    if structure == "obs" and family == "binary":
        family = "trials"  # an observation-level effect is not identified from 0/1 outcomes
    n_sd = {"crossed": 2, "crossed3": 3, "nested": 2, "interaction": 2, "obs": 2}.get(structure, 3)
    sd = tuple(float(meta.choice(sd_choices)) for _ in range(n_sd))
    big = meta.uniform() < 0.15
    if structure.startswith("crossed"):
        n_a = int(meta.choice([5, 8, 15, 30, 50, 300] if not big else [300]))
        n_b = int(meta.integers(3, 9))
        keep = float(meta.choice([0.5, 0.7, 0.9, 1.0]))
        rows = (1, int(meta.integers(1, 4)))
        rows = rows if n_a < 300 else (1, 1)  # drawn either way: the scans' specs depend on the draw order
    elif structure in ("nested", "interaction"):
        n_a = int(meta.choice([6, 10, 20, 40, 300] if not big else [300]))
        n_b, keep = int(meta.integers(2, 5)), 1.0
        rows = (1, int(meta.integers(2, 6))) if n_a < 300 else (1, 2)
    else:
        n_a = int(meta.choice([8, 20, 40, 60, 300] if not big else [300]))
        n_b, keep = 0, 1.0
        rows = (int(meta.integers(2, 6)), int(meta.integers(6, 12))) if n_a < 300 else (2, 4)
    beta = (round(float(meta.uniform(-0.8, 0.8)), 2), round(float(meta.uniform(-0.8, 0.8)), 2))
    corr = round(float(meta.uniform(-0.6, 0.6)), 2) if structure in ("crossed_slope", "vecscalar") else 0.0
    offset = str(meta.choice(["", "arg", "formula"])) if family == "poisson" else ""
    n_c = int(meta.integers(3, 6)) if structure == "crossed3" else 0
    return make_data.Spec(f"{prefix}_{k:03d}_{structure}_{family}_{link}", family, link, structure, n_a, n_b, rows,
                          beta, sd, corr=corr, keep=keep, n_c=n_c, offset=offset, seed=int(meta.integers(1, 2**31)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("meta_seed", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("--structures", default=",".join(make_data.RE_FORMS),
                        help="comma-separated keys of make_data.RE_FORMS (repeat one to weight it)")
    parser.add_argument("--canonical", action="store_true", help="logit and log links only (glmmTMB checks them all)")
    args = parser.parse_args()
    structures = args.structures.split(",")
    unknown = set(structures) - set(make_data.RE_FORMS)
    if unknown:
        parser.error(f"unknown structures {sorted(unknown)}; known: {sorted(make_data.RE_FORMS)}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = np.random.default_rng(args.meta_seed)
    cases = {}
    for k in range(args.n):
        spec = draw_spec(meta, k, f"scan{args.meta_seed}", structures, args.canonical)
        frame = make_data.simulate(spec)
        if frame["y"].nunique() < 2:  # glmer refuses a constant response
            continue
        frame.to_csv(args.out_dir / spec.file, index=False, lineterminator="\n")
        cases[spec.name] = make_data.fit_spec(spec) | {"nobs": len(frame), "simulation": asdict(spec)}
    (args.out_dir / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    shutil.copy(HERE / "make_reference.R", args.out_dir / "make_reference.R")
    print(f"{len(cases)} cases, {sum(c['nobs'] for c in cases.values())} rows, in {args.out_dir}")


if __name__ == "__main__":
    main()
