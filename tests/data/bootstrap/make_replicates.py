"""Bootstrap replicates fed to R's boot.ci (boot_ci.R): 200 parametric-bootstrap replicates of the crossover
Laplace fit (default statistic: SD, then fixed effects), seed 20261203. Run from the repository root:
.venv/bin/python tests/data/bootstrap/make_replicates.py
"""

import warnings
from pathlib import Path

from glmmteach import bootstrap, datasets, glmer

HERE = Path(__file__).parent

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = glmer("outcome ~ trt*period + (1|ID)", datasets.load_crossover(), "binomial")
boot = bootstrap(fit, nsim=200, seed=20261203)
assert boot.n_failed == 0, boot.failures
# 17 significant digits: R reads back the same doubles
boot.replicates.to_csv(HERE / "replicates.csv", index=False, float_format="%.17g")
boot.observed.to_frame().T.to_csv(HERE / "observed.csv", index=False, float_format="%.17g")
