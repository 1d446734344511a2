"""Regenerate crossover_sim130.csv: replicate 130 (0-based) of lesson 14's 200 simulated crossover trials.

Run from the repository root: ``PYTHONPATH=. python tests/data/runaway/make_data.py``. The trials are drawn
from the crossover GLMM fitted by 25-node quadrature (true beta = (-5.004, 3.595, 2.786, -3.338), tau = 4.940),
as in lessons/14_simulation_studies.ipynb, with numpy's default_rng(14) drawn in order. In this trial every
discordant patient of each sequence has the same pattern (sequence 0: 2 patients 10, none 01; sequence 1:
6 patients 01, none 10), so the likelihood rises towards its supremum, the multinomial fit of the pattern
counts (-55.0342), as tau grows: the maximum-likelihood estimate of tau is infinite.
"""

from pathlib import Path

import numpy as np
from scipy import special

from glmmteach import glmer
from glmmteach.datasets import load_crossover

crossover = load_crossover()
truth = glmer("outcome ~ trt*period + (1|ID)", crossover, family="binomial", nAGQ=25)
beta_true, tau_true = truth.params.to_numpy(), truth.sd_re.iloc[0]
X = truth.design.X
patient = np.unique(crossover["ID"], return_inverse=True)[1]
rng = np.random.default_rng(14)
for _ in range(131):  # draw replicates 0..130 in order
    theta = rng.normal(0.0, tau_true, size=patient.max() + 1)
    trial = crossover.assign(outcome=rng.binomial(1, special.expit(X @ beta_true + theta[patient])))
trial.to_csv(Path(__file__).with_name("crossover_sim130.csv"), index=False)
