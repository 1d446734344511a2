"""The import path of :mod:`glmmteach.theta_ml` (MASS's ``theta.ml``) that ``glm`` and the tests use."""

from .theta_ml import (
    THETA_MAX,
    THETA_MIN,
    ShapeEstimate,
    bound_message,
    theta_information,
    theta_loglik,
    theta_ml,
    theta_score,
    warn_bound,
)

__all__ = [
    "THETA_MAX",
    "THETA_MIN",
    "ShapeEstimate",
    "bound_message",
    "theta_information",
    "theta_loglik",
    "theta_ml",
    "theta_score",
    "warn_bound",
]
