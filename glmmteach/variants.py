"""Per-student variants of a course data set, for exercises whose answers differ from student to student.

An exercise notebook draws its data with the seed of its checks object::

    crossover = resample_clusters(load_crossover(), "ID", seed=checks.seed)

In the instructor's source and in the book ``checks.seed`` is None and the course data come back unchanged; in
a notebook released to one student (``glmmteach release --students roster.csv``) the seed is that student's,
and the grader computes the student's key from the same draw. Copying a classmate's numbers then earns nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .exceptions import GlmmteachError


def resample_clusters(data: pd.DataFrame, cluster: str, seed: int | None) -> pd.DataFrame:
    """A bootstrap resample of whole clusters (patients, counties), or ``data`` itself when ``seed`` is None.

    As many clusters as the data have are drawn with replacement; each draw keeps all its rows in their order
    and gets a new id ``1, 2, ...`` in ``cluster`` (so a cluster drawn twice counts as two clusters). The result
    has a fresh index; ``data`` is not modified.
    """
    if seed is None:
        return data
    if cluster not in data.columns:
        raise GlmmteachError(f"resample_clusters: no column {cluster!r} in the data (columns: {list(data.columns)})")
    codes, uniques = pd.factorize(data[cluster], sort=True)
    if (codes < 0).any():
        raise GlmmteachError(f"resample_clusters: column {cluster!r} has missing values")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(uniques), size=len(uniques))
    order = np.argsort(codes, kind="stable")  # rows grouped by cluster, original order within a cluster
    starts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    lengths = starts[drawn + 1] - starts[drawn]
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = order[np.repeat(starts[drawn], lengths) + offsets]
    resampled = data.iloc[rows].reset_index(drop=True)
    resampled[cluster] = np.repeat(np.arange(1, len(uniques) + 1), lengths)
    return resampled
