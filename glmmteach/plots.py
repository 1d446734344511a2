r"""Figures for the course: integrands, profile likelihoods, subject curves, county estimates, maps.

Each function draws on a matplotlib ``Axes`` (a new figure is made when ``ax`` is None) and
returns that ``Axes``, so lessons can add titles or combine panels. The functions take plain
arrays and callables, not fitted-model objects, so each figure shows exactly the quantity the
lesson computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from scipy import stats

from .datasets import CountyShape
from .exceptions import DataError

__all__ = [
    "plot_integrand",
    "plot_profile",
    "plot_subject_curves",
    "plot_caterpillar",
    "plot_choropleth",
]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_integrand(
    integrand: Callable[[np.ndarray], np.ndarray],
    *,
    mode: float,
    scale: float,
    nodes: np.ndarray | None = None,
    nodes_label: str = "quadrature nodes",
    width: float = 5.0,
    ax: Axes | None = None,
) -> Axes:
    r"""Draw a cluster's integrand, its Laplace (Gaussian) approximation and quadrature nodes.

    The integrand is :math:`f(\theta) = p(\mathbf y_i \mid \theta)\, \phi(\theta; 0, \tau^2)`.
    The Laplace approximation replaces :math:`\log f` by its second-order Taylor expansion at the
    mode :math:`\hat\theta`,

    .. math::

        f(\theta) \approx f(\hat\theta)\,
        \exp\!\Bigl(-\frac{(\theta-\hat\theta)^2}{2\sigma^2}\Bigr),

    with :math:`\sigma` = ``scale`` the inverse square root of the curvature of
    :math:`-\log f` at the mode. The area under the dashed curve is the Laplace value of the
    integral.

    Parameters
    ----------
    integrand
        Vectorised :math:`f`, evaluated on a grid of :math:`\theta` values.
    mode, scale
        :math:`\hat\theta` and :math:`\sigma`.
    nodes
        Quadrature abscissae (on the :math:`\theta` scale) to mark with stems at
        :math:`f(\text{node})`.
    width
        Half-width of the plotted range in units of ``scale`` (the range always includes
        the nodes).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    ax = _axes(ax)
    low, high = mode - width * scale, mode + width * scale
    if nodes is not None and len(nodes):
        low, high = min(low, float(np.min(nodes))), max(high, float(np.max(nodes)))
    grid = np.linspace(low, high, 601)
    peak = float(integrand(np.array([mode]))[0])
    ax.plot(grid, integrand(grid), color="C0", lw=2, label=r"integrand $f(\theta)$")
    gaussian = peak * np.exp(-0.5 * ((grid - mode) / scale) ** 2)
    ax.plot(grid, gaussian, color="C1", lw=1.5, ls="--", label="Laplace (Gaussian) approximation")
    ax.axvline(mode, color="0.5", lw=0.8, ls=":")
    if nodes is not None and len(nodes):
        heights = integrand(np.asarray(nodes, dtype=float))
        ax.vlines(nodes, 0.0, heights, color="C2", lw=1)
        ax.plot(nodes, heights, "o", color="C2", ms=4, label=nodes_label)
    ax.set_xlabel(r"random effect $\theta$")
    ax.set_ylabel(r"$f(\theta)$")
    ax.set_ylim(bottom=0)
    # A white, nearly opaque box keeps the legend readable where it overlaps a curve.
    ax.legend(fontsize="small", framealpha=0.9, edgecolor="none")
    return ax


def plot_profile(
    parameter: np.ndarray,
    loglik: np.ndarray,
    *,
    estimate: float,
    level: float = 0.95,
    xlabel: str = r"$\tau$",
    ax: Axes | None = None,
) -> Axes:
    r"""Draw a profile log-likelihood and the cut-off that defines a likelihood-ratio interval.

    The interval is :math:`\{\psi : 2[\ell_p(\hat\psi) - \ell_p(\psi)] \le \chi^2_{1,\,level}\}`;
    the horizontal line sits at :math:`\max \ell_p - \chi^2_{1,\,level}/2`.
    """
    parameter = np.asarray(parameter, dtype=float)
    loglik = np.asarray(loglik, dtype=float)
    if parameter.shape != loglik.shape:
        raise ValueError(
            f"parameter and loglik must have the same shape, got {parameter.shape} and "
            f"{loglik.shape}"
        )
    ax = _axes(ax)
    top = float(np.max(loglik))
    cutoff = top - stats.chi2.ppf(level, df=1) / 2.0
    ax.plot(parameter, loglik, color="C0", lw=2, label="profile log-likelihood")
    ax.axhline(cutoff, color="C3", lw=1, ls="--", label=f"{100 * level:.0f}% cut-off")
    ax.axvline(estimate, color="0.5", lw=0.8, ls=":", label="maximum")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log-likelihood")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_subject_curves(
    x: np.ndarray,
    subject_curves: np.ndarray,
    population_curve: np.ndarray,
    *,
    typical_curve: np.ndarray | None = None,
    xlabel: str = "x",
    ylabel: str = "probability",
    ax: Axes | None = None,
) -> Axes:
    r"""Draw subject-specific curves with the population-averaged curve on top.

    Parameters
    ----------
    x
        Covariate grid, shape ``(m,)``.
    subject_curves
        ``(n_subjects, m)`` conditional means :math:`g^{-1}(\eta + \theta_i)`.
    population_curve
        ``(m,)`` marginal mean :math:`\int g^{-1}(\eta + \theta)\,\phi(\theta; 0, \tau^2)\,d\theta`.
    typical_curve
        Optional ``(m,)`` curve of the "typical" subject, :math:`g^{-1}(\eta)` (:math:`\theta = 0`).
    """
    subject_curves = np.atleast_2d(subject_curves)
    if subject_curves.shape[1] != len(x) or len(population_curve) != len(x):
        raise ValueError("subject_curves must be (n_subjects, len(x)) and population_curve len(x)")
    ax = _axes(ax)
    ax.plot(x, subject_curves.T, color="0.6", lw=0.7, alpha=0.6)
    ax.plot([], [], color="0.6", lw=0.7, label="subject-specific curves")
    if typical_curve is not None:
        ax.plot(x, typical_curve, color="C1", lw=2, ls="--", label=r"typical subject ($\theta=0$)")
    ax.plot(x, population_curve, color="black", lw=2.5, label="population average")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax


def plot_caterpillar(
    estimates: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    reference: float | None = None,
    xlabel: str = "estimate",
    ax: Axes | None = None,
) -> Axes:
    """Draw sorted point estimates with intervals, one row per group (a caterpillar plot).

    With ``labels``, every group is named on the y axis; ``reference`` draws a vertical line
    (for example the population value).
    """
    estimates, lower, upper = (np.asarray(a, dtype=float) for a in (estimates, lower, upper))
    if not estimates.shape == lower.shape == upper.shape:
        raise ValueError("estimates, lower and upper must have the same length")
    order = np.argsort(estimates)
    rows = np.arange(len(order))
    ax = _axes(ax, figsize=(6.4, max(4.0, 0.12 * len(order))))
    ax.hlines(rows, lower[order], upper[order], color="C0", lw=1)
    ax.plot(estimates[order], rows, "o", color="C0", ms=3)
    if reference is not None:
        ax.axvline(reference, color="C3", lw=1, ls="--")
    if labels is not None:
        ax.set_yticks(rows, [labels[i] for i in order], fontsize=5)
    else:
        ax.set_yticks([])
    ax.set_ylim(-1, len(order))
    ax.set_xlabel(xlabel)
    return ax


def plot_choropleth(
    shapes: Sequence[CountyShape],
    values: Mapping[int, float],
    *,
    cmap: str = "RdBu_r",
    center: float | None = None,
    limits: tuple[float, float] | None = None,
    label: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Colour each county by its value (a choropleth map) with a colour bar.

    ``shapes`` are county boundaries as returned by :func:`glmmteach.datasets.load_ohio_counties`;
    ``values`` maps county numbers to numbers (a dict or a pandas Series indexed by county). A
    county without a value is an error, so a wrong key cannot silently leave a county blank.
    With ``center``, the colour scale is symmetric about it (for log rate ratios, ``center=0``);
    ``limits = (low, high)`` fixes the scale instead, so that several maps can share one.
    """
    missing = sorted(shape.county for shape in shapes if shape.county not in values)
    if missing:
        raise DataError(f"no value for counties {missing[:5]} ({len(missing)} in all)")
    ax = _axes(ax, figsize=(6.0, 6.4))
    rings = [ring for shape in shapes for ring in shape.rings]
    ring_values = np.array(
        [values[shape.county] for shape in shapes for _ in shape.rings], dtype=float
    )
    if limits is not None:
        norm = Normalize(vmin=float(limits[0]), vmax=float(limits[1]))
    elif center is None:
        norm = Normalize(vmin=float(ring_values.min()), vmax=float(ring_values.max()))
    else:
        half_range = float(np.max(np.abs(ring_values - center)))
        norm = Normalize(vmin=center - half_range, vmax=center + half_range)
    collection = PolyCollection(rings, array=ring_values, cmap=cmap, norm=norm,
                                edgecolors="white", linewidths=0.4)
    ax.add_collection(collection)
    ax.autoscale_view()
    # Degrees of longitude shrink with latitude: keep the map's proportions true.
    mean_latitude = float(np.mean(np.concatenate([ring[:, 1] for ring in rings])))
    ax.set_aspect(1.0 / np.cos(np.deg2rad(mean_latitude)))
    ax.set_axis_off()
    ax.figure.colorbar(collection, ax=ax, label=label, shrink=0.7)
    return ax
