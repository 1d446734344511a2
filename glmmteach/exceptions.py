"""Errors and warnings raised by glmmteach.

Every error a user can provoke with bad input is a :class:`GlmmteachError` (a ``ValueError``),
whose message names the column, value or option at fault.
"""

from __future__ import annotations


class GlmmteachError(ValueError):
    """Base class for input errors: a bad formula, column, family, link or option."""


class FormulaError(GlmmteachError):
    """The model formula cannot be parsed or refers to something that is not in the data."""


class DataError(GlmmteachError):
    """The data do not fit the model: wrong outcome values, empty frame, missing column."""


class FamilyError(GlmmteachError):
    """Unknown family or link, or a link the family does not support."""


class GlmmteachWarning(UserWarning):
    """Base class for warnings about a fit."""


class ConvergenceWarning(GlmmteachWarning):
    """The fitting algorithm stopped before meeting its convergence criterion."""


class SeparationWarning(GlmmteachWarning):
    """Fitted probabilities of 0 or 1: (quasi-)complete separation, estimates are infinite."""


class MissingDataWarning(GlmmteachWarning):
    """Rows with missing values were dropped (as R's ``na.omit``)."""


class RankDeficiencyWarning(GlmmteachWarning):
    """Some design columns are linear combinations of others and are not estimable."""


class SingularFitWarning(GlmmteachWarning):
    """A random-effect variance (or a correlation) is estimated on the boundary."""


class ScalingWarning(GlmmteachWarning):
    """The problem is badly scaled (lme4: 'very large eigenvalue - rescale variables?')."""


class FlatRidgeWarning(GlmmteachWarning):
    """The likelihood is nearly flat along a ridge: a combination of the estimates is barely determined."""


def check_level(name: str, value: object, hint: str = "") -> float:
    """``value`` as a float strictly between 0 and 1 (an ``alpha`` or a confidence ``level``), else a
    GlmmteachError naming ``name``: the one check of that rule for every interval function."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or not 0 < float(value) < 1:
        raise GlmmteachError(f"{name} must be between 0 and 1{hint}, got {value!r}")
    return float(value)
