r"""R-style model formulas turned into design matrices.

A formula such as ``death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)``
has three parts, which lme4 separates the same way:

* the **response** (left of ``~``), a column of the data, or ``cbind(successes, failures)``;
* the **fixed-effects** terms, expanded into the model matrix :math:`X` (one column per
  coefficient; ``factor(x)`` makes treatment-coded dummies named as R names them, e.g.
  ``factor(sex)2``; an ordered pandas categorical is an R ordered factor, coded by R's polynomial
  contrasts ``contr.poly``, e.g. ``dose.L``, ``dose.Q``; ``a*b`` expands to ``a + b + a:b``;
  ``offset(z)`` adds a known term to :math:`\eta` without a coefficient; functions of columns, such as
  ``log(x + 5)``, ``I(x^2)``, ``scale(x)``, ``poly(x, 2)``, are evaluated and named as R does, the functions
  listed in :data:`~glmmteach.formula.backend.SUPPORTED_CALLS`; interaction columns of factors have the first
  factor varying fastest; ``a/b`` is ``a + a:b`` and the variables of an interaction are in their order of
  first appearance, as R's ``terms()`` (:func:`r_terms`); ``contrasts=`` and ``C(f, sum)`` give R's other
  contrasts);
* the **random-effects** terms ``(expr | g)`` (correlated effects of ``expr`` within each level of
  ``g``) and ``(expr || g)`` (the same effects, uncorrelated). For each such term we build the
  per-observation random-effects covariates :math:`Z_i` (an :math:`n \times r` matrix) and the
  group index of every row, so that the contribution to the linear predictor is
  :math:`z_i^\top b_{g(i)}`.

Model matrices of simple formulas (columns, ``factor()``, ``offset()`` and their interactions) are
built directly with NumPy; the others by `formulae <https://bambinos.github.io/formulae/>`_
(bambi's parser), which gives the same matrices for the simple ones (tests/test_formula_direct.py):
the bars are split off first (formulae does not know ``||``), ``factor()`` becomes formulae's
``C()``, the terms are ordered as R orders them (main effects before interactions) and the columns
renamed the R way. Rows with a missing value in any variable the model uses are dropped, and how
many is reported, as R's ``na.omit`` does.

One job per module, each using only those above it:

========================  =================================================================================
``syntax``                the formula's text: top-level splitting, bars, function calls
``contrasts``             R's contrasts (treatment, sum, Helmert, polynomial) and ``contrasts=``
``backend``               formulae: R's spelling translated, the callable functions, formulae's matrices
``naming``                R's ``terms()`` (nesting, order of an interaction's variables) and column names
``parse``                 the formula split into response, fixed terms and bars (:func:`parse_formula`)
``columns``               the data's columns, the per-row arguments ``offset=``/``weights=``/``trials=``
``missing``               ``subset=`` and ``na_action`` (R's na.omit, na.exclude, na.fail)
``response``              R's response convention (binary factors, trials, ``cbind``, 0 trials, weights)
``direct``                the NumPy builder of simple formulas' model matrices
``random``                the random-effects terms (:class:`RandomTerm`), lme4's reading and order
``design``                :func:`build_design`: all of the above, into a :class:`Design`
========================  =================================================================================
"""

from __future__ import annotations

from .columns import ArrayLike
from .contrasts import contr_helmert, contr_poly, contr_poly_names, contr_sum
from .design import Design, build_design
from .naming import r_terms
from .parse import parse_formula
from .random import RandomTerm, grouping_columns
from .response import check_response, new_response_values
from .syntax import BarTerm

__all__ = [
    "ArrayLike",
    "BarTerm",
    "Design",
    "RandomTerm",
    "build_design",
    "check_response",
    "contr_helmert",
    "contr_poly",
    "contr_poly_names",
    "contr_sum",
    "grouping_columns",
    "new_response_values",
    "parse_formula",
    "r_terms",
]
