"""Drawing responses from a fitted model's means (Poisson, negative binomial, binomial), shared by ``glm`` and
``glmer`` simulation and the parametric bootstrap; and the checks of ``seed`` and ``nsim``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import GlmmteachError


def as_generator(seed: Any) -> np.random.Generator:
    """``seed`` as a NumPy generator: ``None`` (fresh entropy), an integer, or a generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise GlmmteachError(f"seed must be a non-negative whole number, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def check_nsim(nsim: Any) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise GlmmteachError(f"nsim must be a whole number >= 1, got {nsim!r}")
    return int(nsim)


def draw_responses(family: str, mean: np.ndarray, trials: np.ndarray | None, rng: np.random.Generator,
                   theta: float | None = None) -> np.ndarray:
    """One response per entry of ``mean``: Poisson counts, negative binomial counts (NB2 with shape
    ``theta``), or binomial successes out of ``trials`` (1: 0/1)."""
    if family == "poisson":
        return rng.poisson(mean).astype(float)
    if family == "negative_binomial":
        if theta is None:
            raise GlmmteachError("simulating negative binomial counts needs the shape theta")
        return rng.negative_binomial(theta, theta / (theta + mean)).astype(float)
    if family != "binomial":
        raise GlmmteachError(f"simulation is available for the binomial, poisson and negative_binomial families, "
                             f"not {family!r}")
    n = np.ones(mean.shape[0]) if trials is None else trials
    n = np.broadcast_to(np.asarray(n, dtype=np.int64).reshape(-1, *([1] * (mean.ndim - 1))), mean.shape)
    return rng.binomial(n, np.clip(mean, 0.0, 1.0)).astype(float)
