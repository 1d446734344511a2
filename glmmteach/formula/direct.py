"""Model matrices of simple formulas, built directly with NumPy.

formulae parses and evaluates a formula term by term in Python; for the formulas of most models (columns,
``factor()``, ``offset()`` and interactions of those) that is most of a small fit's time. The builder here
makes exactly formulae's matrices for them (tests/test_formula_direct.py compares the two on many formulas
and column types) and declines anything else (None), which formulae then builds
(:mod:`glmmteach.formula.backend`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..exceptions import FormulaError
from .contrasts import contr_poly, contr_poly_names
from .syntax import split_top_level

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ATOM = re.compile(rf"(?:(factor|offset)\(\s*({_IDENT})\s*\)|({_IDENT}))")


@dataclass(frozen=True)
class _Atom:
    """A variable of a simple formula: a column as it is (``plain``: numeric, or a factor when it holds
    strings or is categorical), ``factor(column)`` or ``offset(column)``."""

    kind: str
    column: str


@dataclass(frozen=True)
class _SimpleTerms:
    """A simple right-hand side: intercept or not, its terms (tuples of atoms, in formulae's order: as
    written, ``a*b`` expanded to ``a``, ``b``, ``a:b``) and its offset columns."""

    intercept: bool
    terms: tuple[tuple[_Atom, ...], ...]
    offsets: tuple[str, ...]


def _atom(text: str) -> _Atom | None:
    match = _ATOM.fullmatch(text.strip())
    if match is None:
        return None
    return _Atom("plain", match.group(3)) if match.group(3) else _Atom(match.group(1), match.group(2))


@lru_cache(maxsize=256)
def simple_terms(rhs: str) -> _SimpleTerms | None:
    """The terms of ``rhs`` when it is simple; None for anything else."""
    try:
        pieces = split_top_level(rhs)
    except FormulaError:
        return None
    if "1" in pieces and "0" in pieces:
        return None
    terms: list[tuple[_Atom, ...]] = []
    offsets: list[str] = []
    for piece in pieces:
        if piece in ("0", "1"):
            continue
        if "*" in piece and ":" in piece:
            return None
        atoms = [_atom(part) for part in piece.split("*" if "*" in piece else ":")]
        if any(a is None for a in atoms) or len({a.column for a in atoms}) < len(atoms):
            return None
        if len(atoms) == 1 and atoms[0].kind == "offset":
            offsets.append(atoms[0].column)
        elif any(a.kind == "offset" for a in atoms) or len(atoms) > 2 and "*" in piece:
            return None  # offsets in interactions; formulae's expansion of a*b*c is not reproduced
        elif "*" in piece:
            terms += [(atoms[0],), (atoms[1],), tuple(atoms)]
        else:
            terms.append(tuple(atoms))
    keys = [frozenset(t) for t in terms]
    kinds = {}
    for atom in (a for t in terms for a in t):
        kinds.setdefault(atom.column, set()).add(atom.kind)
    if len(set(keys)) < len(keys) or len(set(offsets)) < len(offsets) or any(len(k) > 1 for k in kinds.values()):
        return None  # repeated terms, or a column both as itself and in factor()
    return _SimpleTerms("0" not in pieces, tuple(terms), tuple(offsets))


_BAD_LEVEL = re.compile(r"[:\[\]]")


def _factor_coding(atom: _Atom, column: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """Codes 0..k-1 and level labels of a factor, as formulae codes it (a categorical's levels in their
    order, others sorted); None when the column is no factor here or formulae would label it otherwise."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        levels = list(dtype.categories)
        if not all(isinstance(v, str) or isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
                   for v in levels):
            return None
        codes = column.cat.codes.to_numpy().astype(np.intp)
    elif atom.kind == "factor" and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        codes, values = sorted_codes(column.to_numpy())
        levels = values.tolist()
    elif pd.api.types.is_string_dtype(dtype) and pd.api.types.infer_dtype(column, skipna=False) == "string":
        codes, uniques = pd.factorize(column.to_numpy())
        uniques = uniques.tolist()
        ranks = sorted(range(len(uniques)), key=uniques.__getitem__)  # Python's sort, as formulae's
        levels = [uniques[k] for k in ranks]
        codes = np.argsort(ranks)[codes]
    else:
        return None
    labels = [str(v) for v in levels]
    if len(labels) < 2 or any(_BAD_LEVEL.search(label) for label in labels):
        return None  # (':' and brackets in a level change formulae's names and term order)
    return codes, labels


def sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 of integers and their distinct values in increasing order, as ``pd.factorize(values,
    sort=True)`` gives them; by a table of the values' range when it is small (ten times faster than sorting)."""
    if values.size and (high := int(values.max())) - (low := int(values.min())) <= 4 * values.size + 1024:
        shifted = values - values.dtype.type(low)
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[shifted] = True
        table = np.cumsum(seen, dtype=np.intp) - 1
        return table[shifted], (np.flatnonzero(seen) + low).astype(values.dtype)
    codes, levels = pd.factorize(values, sort=True)
    return codes.astype(np.intp), np.asarray(levels)


def direct_matrix(rhs: str, columns: dict[str, pd.Series], n: int, r_order: bool,
                  ordered: frozenset[str] = frozenset()) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """The model matrix (C order), R's column names and the summed offsets of a simple ``rhs`` on ``columns``,
    equal to formulae's with R's column order inside interaction terms
    (:func:`~glmmteach.formula.backend.r_column_order`), in formulae's term order, or R's, main effects first,
    with ``r_order``; None when the formula or a column is of a kind left to formulae. The columns in ``ordered``
    are ordered factors: polynomial contrasts (:func:`contr_poly`) instead of treatment contrasts."""
    simple = simple_terms(rhs)
    if simple is None:
        return None
    coded: dict[_Atom, tuple[list[np.ndarray], list[str]] | tuple[np.ndarray, list[str]]] = {}
    numeric: dict[_Atom, np.ndarray] = {}
    for atom in {a for t in simple.terms for a in t}:
        column = columns[atom.column]
        dtype = column.dtype
        if atom.kind == "plain" and isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            numeric[atom] = column.to_numpy()
            continue
        coding = _factor_coding(atom, column)
        if coding is None:
            return None
        coded[atom] = coding
    present = {frozenset(t) for t in simple.terms} | ({frozenset()} if simple.intercept else set())
    blocks = []
    for term in simple.terms:
        values: list[np.ndarray] = []
        names: list[str] = []
        for atom in term:
            if atom in numeric:
                part, part_names = [numeric[atom]], [atom.column]
            else:
                # contrasts (the first level left out) when the term without this factor is in the model
                if frozenset(term) - {atom} not in present:
                    return None  # full indicator coding is left to formulae
                codes, labels = coded[atom]
                prefix = atom.column if atom.kind == "plain" else f"factor({atom.column})"
                if atom.column in ordered:
                    contrasts = contr_poly(len(labels))
                    part = [contrasts[:, j][codes] for j in range(contrasts.shape[1])]
                    part_names = [prefix + label for label in contr_poly_names(len(labels))]
                else:
                    part = [(codes == k).astype(float) for k in range(1, len(labels))]
                    part_names = [prefix + label for label in labels[1:]]
            if not values:
                values, names = part, part_names
            else:  # R's interaction columns: the earlier factor varies fastest
                values = [a * b for b in part for a in values]
                names = [f"{a}:{b}" for b in part_names for a in names]
        blocks.append((len(term), values, names))
    if r_order:
        blocks.sort(key=lambda block: block[0])
    values = ([np.ones(n)] if simple.intercept else []) + [v for _, vs, _ in blocks for v in vs]
    names = (["(Intercept)"] if simple.intercept else []) + [nm for _, _, nms in blocks for nm in nms]
    X = np.empty((n, len(values)))
    for j, column in enumerate(values):
        X[:, j] = column
    offsets = [np.asarray(columns[name].to_numpy(), dtype=float) for name in simple.offsets]
    if not offsets:
        offset = np.zeros(n)
    elif len(offsets) == 1:
        offset = offsets[0]
    else:
        offset = np.column_stack(offsets).sum(axis=1)
    return X, names, offset

