"""Bookkeeping for the course's pages: values kept for the text, digits the page may show, warnings shown once.

Course tooling, not part of the fitting engine. A lesson records each number its prose quotes with
:func:`record` (in cells the rendered page hides), and shows the warnings of a fit with
:func:`shown_warnings`, once each and wrapped to the page's width.

**Stored outputs are mathematics, not machine.** A lesson's outputs are stored in its notebook and a fresh
run must reproduce them on any CPU (nbval). The last bits of a fit depend on the BLAS kernel the CPU selects
(the crossover's Laplace SE of ``trt`` is 3.105675605 with one OpenBLAS kernel and 3.105675378 with
another), so a page prints and records a number only to the digits its method determines:

* ``ESTIMATE_DIGITS`` (6 significant digits): estimates, log-likelihoods, deviances and statistics of a
  converged, well-conditioned fit, and anything computed in closed form from the data;
* ``SE_DIGITS`` (4 significant digits): standard errors and everything else that comes from a
  finite-difference Hessian, and any quantity of a fit on a flat likelihood ridge (the crossover's
  Laplace and quadrature fits);
* Monte-Carlo quantities to their Monte-Carlo error (:func:`to_mc_error`);
* never an iteration or evaluation count, a timing, or a difference that is round-off (``1e-14``): a page
  states such a fact as a checked inequality ("agree to 1e-9"), asserted in a hidden cell.

:func:`signif` rounds a value (or an array) to a number of significant digits for printing;
:func:`record` rounds what it keeps (``digits``, default ``ESTIMATE_DIGITS``). Rounding cannot remove the
chance that a value lies within its noise of a rounding boundary: ``tests/README.md`` gives the developer
check that re-executes every lesson under other OpenBLAS kernels.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

PAGE_WIDTH = 88  # characters of a code-cell line or output line that fit the page without scrolling
ESTIMATE_DIGITS = 6  # significant digits of a converged, well-conditioned estimate (see the module docstring)
SE_DIGITS = 4  # significant digits of a finite-difference standard error or a quantity on a flat ridge


def signif(value: Any, digits: int = ESTIMATE_DIGITS) -> Any:
    """``value`` (a number, array or pandas object) rounded to ``digits`` significant digits.

    Zeros, infinities and NaN are returned as they are; each element of an array is rounded on its own.
    """
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return value
    array = np.asarray(value, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        finite = np.isfinite(array) & (array != 0)
        exponent = np.where(finite, np.floor(np.log10(np.abs(np.where(finite, array, 1.0)))), 0.0)
        scale = 10.0 ** (digits - 1 - exponent)
        rounded = np.where(finite, np.round(array * scale) / scale, array)
    if hasattr(value, "copy") and hasattr(value, "index"):  # a pandas Series or DataFrame
        out = value.copy()
        out.loc[:] = rounded
        return out
    if np.ndim(value) == 0:
        return float(f"{float(rounded):.{digits}g}")  # the shortest float that prints as rounded
    return rounded


def to_mc_error(value: float, mc_se: float) -> float:
    """A Monte-Carlo estimate rounded to the decimal place of the first significant digit of its MC error."""
    if not math.isfinite(mc_se) or mc_se <= 0:
        raise ValueError(f"a Monte-Carlo standard error must be positive and finite, got {mc_se!r}")
    place = math.floor(math.log10(mc_se))
    return round(float(value), -place)


def record(name: str, value: Any, digits: int = ESTIMATE_DIGITS) -> None:
    """Keep a computed value for the text of the page (``{glue:text}`name```) and the book's checks.

    Floats are kept to ``digits`` significant digits: ``ESTIMATE_DIGITS`` by default, ``SE_DIGITS`` for a
    finite-difference standard error or a quantity on a flat ridge (the module docstring gives the rule),
    so that the stored outputs do not depend on the CPU. Without myst_nb (a reader running a lesson after
    ``glmmteach copy-course``) there is no page to fill and nothing is kept.
    """
    try:
        from myst_nb import glue  # imported here: only the book needs myst_nb
    except ImportError:
        return

    value = value.item() if hasattr(value, "item") else value
    glue(name, signif(value, digits) if isinstance(value, float) else value, display=False)


@contextmanager
def shown_warnings(width: int = PAGE_WIDTH) -> Iterator[list[warnings.WarningMessage]]:
    """Print each distinct warning raised inside the block once, wrapped to ``width`` characters.

    Yields the list of caught warnings, so a page can also test what was raised.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    seen: set[tuple[str, str]] = set()
    for warning in caught:
        key = (warning.category.__name__, str(warning.message))
        if key in seen:
            continue
        seen.add(key)
        text = f"{key[0]}: {key[1]}"
        print(textwrap.fill(text, width=width, subsequent_indent="    ", break_on_hyphens=False))


def lme4_style(message: str, category: type[Warning], width: int = PAGE_WIDTH) -> str:
    """A warning as lme4 prints its messages: the class and the text, wrapped to ``width``, with every clause
    that quotes a number shown as "...": on a flat ridge or a runaway SD those numbers say where the optimiser
    stopped, which is not mathematics (and differs between CPUs)."""
    shown: list[str] = []
    for clause in re.split(r"(?<=[:;]) ", str(message)):
        if not re.search(r"\d", clause):
            shown.append(clause)
        elif shown[-1:] != ["..."]:
            shown.append("...")
    return textwrap.fill(f"{category.__name__}: {' '.join(shown)}", width=width, subsequent_indent="    ",
                         break_on_hyphens=False)


def print_warnings_like_lme4() -> list[tuple[type[Warning], str]]:
    """From now on print every warning lme4-style (:func:`lme4_style`) on standard output, without the file and
    line Python adds, and keep each in the returned list (class, text) for a page's hidden checks."""
    raised: list[tuple[type[Warning], str]] = []

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        raised.append((category, str(message)))
        print(lme4_style(str(message), category))

    warnings.showwarning = show
    warnings.simplefilter("always")
    return raised
