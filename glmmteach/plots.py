r"""Figures for the course: integrands, profile likelihoods, subject curves, county estimates, maps, and
model checks (simulated residuals, random-effect caterpillars).

Each function draws on a matplotlib ``Axes`` (a new figure is made when ``ax`` is None) and
returns that ``Axes``, so lessons can add titles or combine panels. Most take plain arrays and
callables, so each figure shows exactly the quantity the lesson computed; the model checks take
what the library computed: :class:`glmmteach.residuals.SimulatedResiduals` and a fitted GLMM
(:func:`plot_caterpillar` given a fit, lme4's ``dotplot(ranef(fit, condVar = TRUE))``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from scipy import stats

from .datasets import CountyShape
from .exceptions import DataError, check_level

__all__ = [
    "plot_integrand",
    "plot_profile",
    "plot_subject_curves",
    "plot_caterpillar",
    "plot_choropleth",
    "plot_qq_uniform",
    "plot_residuals_predicted",
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
    estimates: Any,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    *,
    term: str | None = None,
    level: float = 0.95,
    labels: Sequence[str] | None = None,
    reference: float | None = None,
    xlabel: str = "estimate",
    ax: Axes | Sequence[Axes] | None = None,
) -> Axes | list[Axes]:
    """Draw sorted point estimates with intervals, one row per group (a caterpillar plot).

    Given arrays (``estimates``, ``lower``, ``upper``): one panel; with ``labels``, every group is named on
    the y axis; ``reference`` draws a vertical line (for example the population value). Returns the Axes.

    Given a fitted GLMM (lme4's ``dotplot(ranef(fit, condVar = TRUE))``): for the grouping factor ``term``
    (a key of ``fit.ranef``; may be omitted with one factor), one panel per random effect (column) with the
    conditional modes and the intervals mode ± z·(conditional SD) at ``level`` (z = 1.959964 at 0.95, where lme4's
    panel function types 1.96; the conditional SDs are lme4's condVar, the
    ``_sd`` columns of :attr:`~glmmteach.GLMMResults.ranef`), the levels sorted by the first effect in every
    panel as lme4 sorts them, and a line at 0. ``ax``: one Axes per panel, or None. Returns the list of Axes.
    """
    if hasattr(estimates, "ranef_cov"):
        return _caterpillar_fit(estimates, term, level, ax)
    if lower is None or upper is None:
        raise DataError("plot_caterpillar needs lower and upper with the estimates (or a fitted GLMM)")
    estimates, lower, upper = (np.asarray(a, dtype=float) for a in (estimates, lower, upper))
    if not estimates.shape == lower.shape == upper.shape:
        raise ValueError("estimates, lower and upper must have the same length")
    order = np.argsort(estimates)
    ax = _axes(ax, figsize=(6.4, max(4.0, 0.12 * len(order))))
    _caterpillar_panel(ax, estimates, lower, upper, order, labels, reference)
    ax.set_xlabel(xlabel)
    return ax


def _caterpillar_panel(ax: Axes, estimates: np.ndarray, lower: np.ndarray, upper: np.ndarray, order: np.ndarray,
                       labels: Sequence[str] | None, reference: float | None) -> None:
    rows = np.arange(len(order))
    ax.hlines(rows, lower[order], upper[order], color="C0", lw=1)
    ax.plot(estimates[order], rows, "o", color="C0", ms=3)
    if reference is not None:
        ax.axvline(reference, color="C3", lw=1, ls="--")
    if labels is not None:
        ax.set_yticks(rows, [labels[i] for i in order], fontsize=5)
    else:
        ax.set_yticks([])
    ax.set_ylim(-1, len(order))


def _caterpillar_fit(fit: Any, term: str | None, level: float, ax: Axes | Sequence[Axes] | None) -> list[Axes]:
    ranef = fit.ranef
    frames = ranef if isinstance(ranef, dict) else {fit.group_name: ranef}
    if term is None:
        if len(frames) > 1:
            raise DataError(f"the model has several grouping factors: choose one with term= "
                            f"({', '.join(map(repr, frames))})")
        term = next(iter(frames))
    if term not in frames:
        raise DataError(f"term {term!r} is not a grouping factor of the model; it has {', '.join(map(repr, frames))}")
    level = check_level("level", level)
    frame = frames[term]
    modes, sds = frame.iloc[:, 0::2], frame.iloc[:, 1::2]  # ranef's layout: <effect>, <effect>_sd, ...
    z = stats.norm.ppf((1 + level) / 2)
    order = np.argsort(modes.iloc[:, 0].to_numpy(), kind="stable")  # lme4: every panel in the first effect's order
    labels = [str(v) for v in frame.index]
    n_panels = modes.shape[1]
    if ax is None:
        _, axes = plt.subplots(1, n_panels, figsize=(3.2 * n_panels + 1.0, max(4.0, 0.12 * len(frame))),
                               sharey=True, layout="constrained", squeeze=False)
        panels = list(axes[0])
    else:
        panels = [ax] if isinstance(ax, Axes) else list(ax)
        if len(panels) != n_panels:
            raise DataError(f"term {term!r} has {n_panels} random effects: give {n_panels} Axes, got {len(panels)}")
    for k, panel in enumerate(panels):
        b, s = modes.iloc[:, k].to_numpy(), sds.iloc[:, k].to_numpy()
        _caterpillar_panel(panel, b, b - z * s, b + z * s, order, labels, 0.0)
        if k > 0:  # (the panels share the y axis: its labels once, on the left)
            panel.tick_params(labelleft=False)
        panel.set_title(str(modes.columns[k]), fontsize="medium")
        panel.set_xlabel(f"conditional mode ± {level:.0%} interval")
    panels[0].set_ylabel(term)
    return panels


def plot_qq_uniform(residuals: Any, *, ax: Axes | None = None) -> Axes:
    """DHARMa's ``plotQQunif``: the sorted scaled residuals of a
    :class:`~glmmteach.residuals.SimulatedResiduals` against the uniform quantiles (i - 0.5)/n, with the
    diagonal and the p-values of the Kolmogorov–Smirnov uniformity test and the dispersion test (DHARMa also
    prints its outlier test, not computed here)."""
    r = np.sort(residuals.residuals.to_numpy())
    expected = (np.arange(1, len(r) + 1) - 0.5) / len(r)
    ax = _axes(ax, figsize=(4.5, 4.5))
    ax.plot(expected, r, "^", ms=3, mfc="none", color="C0")
    ax.plot([0, 1], [0, 1], color="C3", lw=1)
    lines = [f"KS test: p = {monte_carlo_p_text(residuals.test_uniformity().p_value)}",
             f"dispersion test: p = {monte_carlo_p_text(residuals.test_dispersion().p_value, residuals.nsim)}"]
    ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize="small")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="expected (uniform)", ylabel="observed scaled residual",
           title="Q-Q plot of the scaled residuals")
    return ax


def monte_carlo_p_text(p: float, nsim: int | None = None) -> str:
    """A p-value of a simulation test as the plot shows it: 2 significant digits (DHARMa's plots show about as
    many) and, for a share of ``nsim`` simulations, no digit below its Monte-Carlo error
    (:func:`glmmteach.booktools.to_mc_error` with SE sqrt(p(1 - p)/nsim)); a share of 0 is "< 1/nsim". The
    KS test's p-value (``nsim=None``) is exact for the residuals drawn, but they are randomised: 2 digits."""
    from .booktools import to_mc_error

    if nsim is not None and p == 0:
        return f"< {1 / nsim:.2g}"
    shown = float(f"{p:.2g}")
    if nsim is not None and 0 < p < 1:
        mc_se = float(np.sqrt(p * (1 - p) / nsim))
        if np.floor(np.log10(mc_se)) > np.floor(np.log10(p)) - 1:  # the MC error is coarser than 2 digits
            shown = to_mc_error(p, mc_se)
    return f"{shown:g}"


def plot_residuals_predicted(residuals: Any, *, bins: int = 10, ax: Axes | None = None) -> Axes:
    """DHARMa's ``plotResiduals``: the scaled residuals of a :class:`~glmmteach.residuals.SimulatedResiduals`
    against the rank-transformed population-level predictions (``rank_transform``: ranks / largest rank), with
    lines at 0.25, 0.5, 0.75. Where DHARMa fits quantile regressions (package qgam), this draws the residuals'
    quartiles in ``bins`` equal-count bins of the predicted rank: under a correct model they lie near the lines."""
    from .residuals import rank_transform

    x = rank_transform(residuals.fitted)
    y = residuals.residuals.to_numpy()
    ax = _axes(ax, figsize=(5.5, 4.5))
    ax.plot(x, y, "^", ms=3, mfc="none", color="0.45")
    for q in (0.25, 0.5, 0.75):
        ax.axhline(q, color="0.3", lw=0.8, ls="--")
    order = np.argsort(x, kind="stable")
    groups = np.array_split(order, min(bins, len(order)))
    centres = np.array([x[g].mean() for g in groups])
    quartiles = np.array([np.quantile(y[g], [0.25, 0.5, 0.75]) for g in groups])
    for k in range(3):
        ax.plot(centres, quartiles[:, k], color="C3", lw=1.5, label="binned quartiles" if k == 0 else None)
    ax.set(xlim=(0, 1.02), ylim=(0, 1), xlabel="model predictions (rank transformed)", ylabel="scaled residual")
    # The residuals fill the whole square, so a legend inside it covers points: it sits above the frame,
    # right of the title.
    ax.set_title("Residuals vs. predicted", loc="left")
    ax.legend(frameon=False, fontsize="small", loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1)
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
