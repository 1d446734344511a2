"""The grading errors: a release or a grading run cannot proceed."""

from __future__ import annotations


class GradingError(RuntimeError):
    """An exercise source, a release or a grading run cannot proceed; the message says why."""


class ReleaseError(GradingError):
    """The solution notebooks do not pass their own checks, so nothing is released."""

