"""Print, for every case of reference.json, how glmmteach.glmer's fit compares with lme4's.

Columns: log-likelihood gap (lme4 minus glmmteach: positive = glmmteach below lme4), the largest
relative fixed-effect difference, glmmteach's and lme4's random-effect SDs, and which of
glmmteach's SDs are (near) 0, and whether glmmteach calls its fit converged. Cases failing
tests/test_lme4_random.py are marked FAIL.

Run from the repository root:  PYTHONPATH=. python tests/data/lme4_random/failure_table.py [--all]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glmmteach

DATA_DIR = Path(__file__).resolve().parent


def main() -> None:
    cases = json.loads((DATA_DIR / "reference.json").read_text())["cases"]
    show_all = "--all" in sys.argv[1:]
    rows = []
    for name, case in cases.items():
        data = pd.read_csv(DATA_DIR / case["data"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = glmmteach.glmer(case["formula"], data, family=case["family"], link=case["link"],
                                      nAGQ=case["nAGQ"], offset=case["offset"], trials=case["trials"])
            except Exception as err:  # noqa: BLE001 - a table of outcomes, errors included
                rows.append((name, "ERROR", float("nan"), float("nan"), "", "", f"{type(err).__name__}: {err}", ""))
                continue
        gap = case["loglik"] - fit.llf
        expected = pd.Series(case["fixef"], dtype=float)
        diff = (fit.params[expected.index] - expected).abs()
        rel = float((diff / np.maximum(expected.abs(), 1e-2)).max())
        fixef_bad = bool((diff > np.maximum(1e-4 * expected.abs(), 1e-6)).any())
        failed = gap > 1e-4 or (fixef_bad and fit.llf <= case["loglik"] + 1e-6)
        sds = np.sqrt(np.diag(fit.cov_re.to_numpy()))
        names = case["random"]["names"]
        at_zero = ", ".join(n for n, s in zip(names, sds, strict=True) if s < 1e-4) or "-"
        ours = " ".join(f"{s:.4g}" for s in sds)
        theirs = " ".join(f"{s:.4g}" for s in case["random"]["sd"].values())
        if failed or show_all:
            rows.append((name, "FAIL" if failed else "ok", gap, rel, ours, theirs, at_zero, fit.converged))
    table = pd.DataFrame(rows, columns=["case", "status", "loglik_gap", "max_rel_fixef_diff", "glmmteach_sd",
                                        "lme4_sd", "glmmteach_sd_at_0", "converged"])
    with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\n{sum(r[1] != 'ok' for r in rows)} of {len(cases)} cases fail")


if __name__ == "__main__":
    main()
