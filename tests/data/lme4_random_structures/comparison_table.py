"""Print, case by case, how glmmteach.glmer compares with the lme4 (and glmmTMB) fits of reference.json, with
the time each took.

Columns: log-likelihood of glmmteach minus lme4's best (negative: glmmteach below lme4) and minus
glmmTMB's; the largest fixed-effect difference in lme4's standard errors; the largest SD difference;
glmmteach's converged flag; singular (glmmteach/lme4); seconds for glmmteach's fit, lme4's default fit and
lme4's three reference starts together. Totals at the end. Timings are wall-clock, single runs: noisy on a
loaded machine.

Run from the repository root:
    PYTHONPATH=. python tests/data/lme4_random_structures/comparison_table.py [DATA_DIR]
DATA_DIR (default: this folder) holds cases.json, reference.json and the CSVs in this folder's format.
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

import glmmteach


def compare(name: str, case: dict, data_dir: Path) -> dict:
    data = pd.read_csv(data_dir / case["data"])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = glmmteach.glmer(case["formula"], data, family=case["family"], link=case["link"],
                                  offset=case["offset"], trials=case["trials"])
        except Exception as err:  # noqa: BLE001 - a table of outcomes, errors included
            return {"case": name, "error": f"{type(err).__name__}: {err}"}
    seconds = time.perf_counter() - start
    expected = pd.Series(case["fixef"], dtype=float)
    fixef_se = float(((fit.params[expected.index] - expected).abs() / pd.Series(case["se"], dtype=float)).max())
    ours = {(re.sub(r"\.\d+$", "", label), effect): sd for (label, effect), sd in fit.sd_re.items()}
    sd_diff = max(abs(ours[(re.sub(r"\.\d+$", "", t["group"]), t["name"])] - t["sd"]) for t in case["random"]["terms"])
    tmb = case.get("glmmTMB") or {}
    return {
        "case": name,
        "vs_lme4": fit.llf - case["loglik"],
        "vs_glmmTMB": fit.llf - tmb["loglik"] if tmb.get("loglik") is not None else float("nan"),
        "fixef_SE": fixef_se,
        "sd_diff": sd_diff,
        "converged": fit.converged,
        "singular": f"{fit.singular:d}/{case['isSingular']:d}",
        "s_glmmteach": seconds,
        "s_lme4_default": case["default"]["seconds"],
        "s_lme4_3starts": sum(s["seconds"] for s in case["starts"].values()),
    }


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    cases = json.loads((data_dir / "reference.json").read_text())["cases"]
    table = pd.DataFrame([compare(name, case, data_dir) for name, case in cases.items()])
    with pd.option_context("display.width", 250, "display.max_rows", 1000, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    ok = table.drop(columns="error", errors="ignore").dropna(subset=["vs_lme4"])
    print(f"\n{len(table)} cases; errors {len(table) - len(ok)}; glmmteach >= lme4 - 1e-6 in "
          f"{int((ok['vs_lme4'] >= -1e-6).sum())}; worst gaps {ok['vs_lme4'].min():+.3g} / {ok['vs_lme4'].max():+.3g}; "
          f"converged {int(ok['converged'].sum())}; max fixef diff {ok['fixef_SE'].max():.3g} SE; "
          f"max SD diff {ok['sd_diff'].max():.3g}")
    print(f"seconds: glmmteach {ok['s_glmmteach'].sum():.2f}, lme4 default fit {ok['s_lme4_default'].sum():.2f}, "
          f"lme4 three starts {ok['s_lme4_3starts'].sum():.2f}")


if __name__ == "__main__":
    main()
