r"""The general GLMM engine: any number of random-effects terms (crossed, nested, observation-level).

lme4's model with several terms: :math:`\eta = X\beta + o + Z\Lambda_\theta u`, :math:`u \sim N(0, I_q)`,
:math:`Z = [Z_1 \dots Z_k]` one block of columns per term (levels × effects), :math:`\Lambda_\theta`
block diagonal (term :math:`i`'s :math:`T_i` repeated for each of its levels). With
:math:`A = Z\Lambda_\theta` (sparse: each row has one entry per effect of every term) the conditional
modes solve :math:`H\delta = A^\top\ell' - u`, :math:`H = I + A^\top W A`, and the Laplace
log-likelihood needs :math:`\log\det H`.

**Factorisation.** :math:`H` is ordered with the term that has the most columns first (its block
:math:`D` is block diagonal: a row meets one level of each term, so that term has no fill) and the
other terms after it (block :math:`C`, of the remaining :math:`q_c` columns):

.. math::

    H = \begin{pmatrix} D & B \\ B^\top & C \end{pmatrix}, \qquad
    S = C - B^\top D^{-1} B = L_S L_S^\top .

This is the sparse Cholesky factorisation of :math:`H` under the fill-reducing ordering "largest
term first": the fill is confined to the dense Schur complement :math:`S` (:math:`q_c \times q_c`).
The symbolic analysis — which entry of :math:`D`, :math:`B` or :math:`C` every row and pair of
effects adds to — is done once per fit (:class:`SparseModel`); each evaluation is one
``np.bincount`` per pair of effects, a batch of tiny block inverses for :math:`D` and one dense
Cholesky of :math:`S`. The same index arrays read back the entries of :math:`H^{-1}` that the
gradient needs (the selected inverse on the pattern of :math:`A^\top A`):
:math:`H^{-1} = \begin{pmatrix} D^{-1} + Y S^{-1} Y^\top & -Y S^{-1} \\ -S^{-1}Y^\top & S^{-1}\end{pmatrix}`,
:math:`Y = D^{-1}B`.

**Gradient.** As in :mod:`glmmteach.glmm.devfun` (implicit function theorem through the modes): with
:math:`e_j = -\frac12 w'_j\,a_j^\top H^{-1} a_j` and the adjoint :math:`v = H_{\mathrm{obs}}^{-1}A^\top e`,
:math:`\partial/\partial\beta = X^\top c`, :math:`c = \ell' + e - (-\ell'')\,(Av)`, and for the entry
:math:`(a, b)` of :math:`T_i`:
:math:`\sum_j z_{ija}\bigl[c_j \tilde u_{i,l(j),b} + \ell'_j v_{i,l(j),b} - w_j (H^{-1}a_j)_{i,l(j),b}\bigr]`.

Why no sparse Cholesky package: ``scikit-sparse`` (CHOLMOD) has no wheel on the package index here; of the
packages with wheels, ``qdldl`` re-factorises with a kept symbolic analysis and gives :math:`L, D, P` (so
the log-determinant) but no selected inverse, and ``cholespy`` neither. Measured on the 2e5-row crossed
benchmark's :math:`H` (2,000 × 200 levels, single-threaded BLAS, CPU time): this block factorisation
10.5 ms, qdldl's numeric refactorisation 14.4 ms (plus assembling :math:`H` as a sparse matrix); the
log-determinants agree to 1e-15 relative.

Only the Laplace approximation is defined here (lme4 allows nAGQ > 1 for one scalar term only, which
the single-factor engine handles).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import linalg

from ..exceptions import GlmmteachError, GlmmteachWarning
from ..families import EtaValues, Family
from ..simulation import draw_responses
from .model import GroupedData, batch_inverse, batch_logdet, column_sd
from .pirls import newton_modes
from .start import moment_theta_terms
from .terms import CovarianceTerm

# The Schur complement of the terms after the largest is dense: refuse designs where it is too big.
MAX_DENSE_COLUMNS = 6000


@dataclass(frozen=True)
class TermLayout:
    """One random-effects term in the general engine: its group codes, covariates and covariance map."""

    name: str  # the grouping factor as lme4 prints it (e.g. "class:school")
    codes: np.ndarray  # level of each row, 0..levels-1
    n_levels: int
    Z: np.ndarray  # n×r covariates
    cov: CovarianceTerm

    @property
    def n_re(self) -> int:
        return self.Z.shape[1]

    @property
    def n_columns(self) -> int:
        return self.n_levels * self.n_re


class StackedCovariance:
    r""":math:`\theta` of several terms, concatenated in term order (lme4's order): the questions
    :class:`~glmmteach.glmm.terms.CovarianceTerm` answers for one term, answered for all."""

    def __init__(self, covs: list[CovarianceTerm]):
        self.covs = covs
        self.sizes = [c.n_theta for c in covs]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    @property
    def n_theta(self) -> int:
        return int(self.starts[-1])

    @property
    def diagonal(self) -> np.ndarray:
        return np.concatenate([c.diagonal for c in self.covs])

    @property
    def lower_bounds(self) -> np.ndarray:
        return np.concatenate([c.lower_bounds for c in self.covs])

    @property
    def theta_start(self) -> np.ndarray:
        return np.concatenate([c.theta_start for c in self.covs])

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        return [theta[self.starts[i]:self.starts[i + 1]] for i in range(len(self.covs))]

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        return [c.T(t) for c, t in zip(self.covs, self.split(theta), strict=True)]


@dataclass
class Factor:
    r"""The factorisation of :math:`H = I + A^\top W A` in the partition of :class:`SparseModel`."""

    D_inv: np.ndarray  # G×r×r inverses of the first term's blocks
    Y: np.ndarray  # D^{-1} B: q_e×q_c dense, or its values on B's pattern (SparseModel.b_sparse)
    S_chol: tuple | None  # cho_factor of the Schur complement
    logdet: float
    _S_inv: np.ndarray | None = None

    @property
    def S_inv(self) -> np.ndarray:
        """The inverse of the Schur complement (q_c×q_c), formed when first asked for: only the gradient and
        the conditional covariances need it, not the inner Newton iterations."""
        if self._S_inv is None:
            q_c = 0 if self.S_chol is None else self.S_chol[0].shape[0]
            self._S_inv = np.zeros((0, 0)) if q_c == 0 else linalg.cho_solve(self.S_chol, np.eye(q_c))
        return self._S_inv


@dataclass
class SparseModeState:
    r"""Conditional modes :math:`\tilde u` (length q, term by term, level by level) and what was
    computed there (cf. :class:`glmmteach.glmm.pirls.ModeState`)."""

    u: np.ndarray
    eta: np.ndarray
    values: EtaValues
    penalised: float
    A: np.ndarray  # n×m values of Z Λ at each row's effects
    factor_obs: Factor
    factor_fisher: Factor
    iterations: int
    passes: int
    converged: bool


class SparseModel:
    r"""A GLMM with several random-effects terms: the data (a :class:`GroupedData` holding ``X``, the
    response, family, offset and weights) and the symbolic analysis of :math:`H`.

    ``terms`` are in lme4's order; the term with the most columns is eliminated first.
    """

    def __init__(self, data: GroupedData, terms: list[TermLayout]):
        self.data = data
        self.terms = terms
        self.covariance = StackedCovariance([t.cov for t in terms])
        n = data.nobs
        sizes = [t.n_columns for t in terms]
        self.q = int(sum(sizes))
        self.col_start = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        # slots: one per (term, effect); the q-column of each row's slot
        self.slot_term = np.array([i for i, t in enumerate(terms) for _ in range(t.n_re)])
        self.slot_effect = np.array([a for t in terms for a in range(t.n_re)])
        self.slot_cols = np.empty((n, len(self.slot_term)), dtype=np.intp)
        for s, (i, a) in enumerate(zip(self.slot_term, self.slot_effect, strict=True)):
            t = terms[i]
            self.slot_cols[:, s] = self.col_start[i] + t.codes * t.n_re + a
        self.slot_columns = [np.ascontiguousarray(self.slot_cols[:, s]) for s in range(self.slot_cols.shape[1])]
        self.Zslots = np.column_stack([t.Z for t in terms])
        self._analyse()

    # ---- symbolic analysis (once per fit) ---------------------------------------------------
    def _analyse(self) -> None:
        sizes = [t.n_columns for t in self.terms]
        e = int(np.argmax(sizes))
        self.eliminated = e
        first = self.terms[e]
        self.r_e = first.n_re
        self.q_e = first.n_columns
        # permutation of the q columns: eliminated term first, then the others in order
        order = [e] + [i for i in range(len(self.terms)) if i != e]
        perm = np.concatenate([np.arange(self.col_start[i], self.col_start[i + 1]) for i in order])
        self.perm = perm  # position k of the partitioned system holds column perm[k]
        self.position = np.empty(self.q, dtype=np.intp)
        self.position[perm] = np.arange(self.q)
        self.q_c = self.q - self.q_e
        if self.q_c > MAX_DENSE_COLUMNS:
            raise GlmmteachError(
                f"the random effects after the largest term have {self.q_c} columns; this engine keeps their "
                f"Schur complement dense and fits up to {MAX_DENSE_COLUMNS} (terms: "
                + ", ".join(f"{t.name} {t.n_levels} levels" for t in self.terms) + ")")
        pos = self.position[self.slot_cols]  # n×m positions in the partitioned system
        m = pos.shape[1]
        in_e = self.slot_term == e
        self.pairs: list[tuple[int, int, str, np.ndarray]] = []
        for s in range(m):
            for t in range(m):
                if in_e[s] and in_e[t]:
                    # D block of the row's level: (level, a, b) flattened
                    level = (pos[:, s]) // self.r_e
                    flat = (level * self.r_e + self.slot_effect[s]) * self.r_e + self.slot_effect[t]
                    self.pairs.append((s, t, "D", flat))
                elif in_e[s]:
                    self.pairs.append((s, t, "B", pos[:, s] * self.q_c + (pos[:, t] - self.q_e)))
                elif not in_e[t]:
                    self.pairs.append((s, t, "C", (pos[:, s] - self.q_e) * self.q_c + (pos[:, t] - self.q_e)))
        self.n_levels_e = first.n_levels
        # B is kept sparse (a fixed pattern, its entries summed per evaluation) when it is sparse enough and the
        # first term is scalar; otherwise dense.
        b_flats = [flat for _, _, part, flat in self.pairs if part == "B"]
        self.b_sparse = False
        if b_flats and self.r_e == 1:
            pattern, inverse = np.unique(np.concatenate(b_flats), return_inverse=True)
            if pattern.size < 0.05 * self.q_e * self.q_c:
                self.b_sparse = True
                self.b_rows, self.b_cols = np.divmod(pattern, self.q_c)
                self.b_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.b_rows, minlength=self.q_e))])
                self.b_nnz = pattern.size
                split = np.cumsum([f.size for f in b_flats])[:-1]
                b_inverse = np.split(inverse.ravel(), split)
                k = 0
                for idx, (s, t, part, _) in enumerate(self.pairs):
                    if part == "B":
                        self.pairs[idx] = (s, t, "b", b_inverse[k])
                        k += 1
                # pairs of B's entries in the same row: (Y S^{-1}) at B's pattern is a sum over them
                counts = np.diff(self.b_indptr)[self.b_rows]
                self.w_first = np.repeat(np.arange(self.b_nnz), counts)
                local = np.arange(self.w_first.size) - np.repeat(np.cumsum(counts) - counts, counts)
                self.w_second = self.b_indptr[self.b_rows[self.w_first]] + local
                self.s_flat = self.b_cols[self.w_first] * self.q_c + self.b_cols[self.w_second]

    def with_family(self, family: Family) -> SparseModel:
        """The same model with another family (e.g. another negative binomial shape): the terms and the
        symbolic analysis are shared with this one, not redone; only the data's family changes."""
        other = copy.copy(self)
        other.data = replace(self.data, family=family)
        return other

    n_nodes = 1  # the Laplace approximation only (see the module docstring)
    one_grouping_factor = False  # several terms: the groups' integrals are not independent
    quadrature_available = False  # (terms.quadrature_available: several terms)
    hessian_available = False  # (glmm.hessian: one scalar random effect only)

    def loglik_hessian(self, theta: np.ndarray, state: SparseModeState) -> tuple[np.ndarray, np.ndarray]:
        """Not defined for several terms (``hessian_available`` is False): the fit differences the gradient."""
        raise GlmmteachError("the analytic Hessian is defined for one scalar random effect only")

    def with_nodes(self, n_nodes: int) -> SparseModel:
        """This model (Laplace, ``n_nodes`` <= 1); quadrature is defined for one scalar term only."""
        if n_nodes > 1:
            raise GlmmteachError(f"nAGQ = {n_nodes} needs a single scalar random-effects term; this model has "
                                 f"{len(self.terms)} terms (its likelihood is the Laplace approximation)")
        return self

    def sorted_by_group(self) -> SparseModel:
        """Itself: the general engine needs no row order."""
        return self

    def warm_start(self, u: np.ndarray, theta_old: np.ndarray, theta_new: np.ndarray) -> np.ndarray:
        """:meth:`rescaled_modes`."""
        return self.rescaled_modes(u, theta_old, theta_new)

    def moment_start(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Moment start of :math:`\\theta`, term by term (:func:`glmmteach.glmm.start.moment_theta_terms`)."""
        return moment_theta_terms(self.data, self.terms, beta)

    def thetacolumn_sd(self) -> np.ndarray:
        """Each theta entry's scale in the ridge test: the SD of its term's random-effect column."""
        return np.concatenate([column_sd(t.Z)[t.cov.positions[0]] for t in self.terms])

    @property
    def n_groups(self) -> int:
        """Levels of the largest grouping factor."""
        return max(t.n_levels for t in self.terms)

    @property
    def n_terms(self) -> int:
        return len(self.terms)

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        return self.covariance.Ts(theta)

    def term_effects(self, state: SparseModeState, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per term: conditional modes b (levels×r) and conditional covariances (levels×r×r)."""
        covs = self.conditional_covariances(state, theta)
        return [(u @ T.T, cov) for u, T, cov in zip(self.term_modes(state.u), self.Ts(theta), covs, strict=True)]

    def simulate(self, beta: np.ndarray, theta: np.ndarray, state: SparseModeState, nsim: int,
                 rng: np.random.Generator, use_u: bool) -> np.ndarray:
        r"""``nsim`` response vectors: :math:`\eta = X\hat\beta + o + A u` with :math:`A = Z\Lambda_{\hat\theta}`
        and :math:`u \sim N(0, I_q)` per simulation (or the modes :math:`\tilde u`)."""
        data, family = self.data, self.data.family
        if data.prior_weights is not None:
            warnings.warn("prior weights are ignored when simulating (as lme4 does): each row is simulated from its "
                          "fitted distribution", GlmmteachWarning, stacklevel=3)
        eta0 = data.eta_fixed(beta)
        eta = np.empty((self.nobs, nsim))
        for k in range(nsim):  # loops over the simulations, not over rows or levels
            u = state.u if use_u else rng.standard_normal(self.q)
            eta[:, k] = eta0 + self.Au(state.A, u)
        return draw_responses(family.base, family.linkinv(eta), data.trials, rng, family.theta)

    # ---- GroupedData's vocabulary, for the fixed-effects part ------------------------------
    @property
    def X(self) -> np.ndarray:
        return self.data.X

    @property
    def nobs(self) -> int:
        return self.data.nobs

    @property
    def family(self):
        return self.data.family

    def eta_fixed(self, beta: np.ndarray) -> np.ndarray:
        return self.data.eta_fixed(beta)

    # ---- numeric factorisation --------------------------------------------------------------
    def A_values(self, theta: np.ndarray) -> np.ndarray:
        r"""Entries of :math:`A = Z\Lambda_\theta` at each row's slots (n×m): :math:`z_{ij}^\top T_i`."""
        return np.column_stack([t.Z @ T for t, T in zip(self.terms, self.covariance.Ts(theta), strict=True)])

    def factor(self, A: np.ndarray, w: np.ndarray) -> Factor:
        r"""Factorise :math:`H = I + A^\top \mathrm{diag}(w) A`."""
        G, r, q_e, q_c = self.n_levels_e, self.r_e, self.q_e, self.q_c
        sizes = {"D": G * r * r, "B": self.b_nnz if self.b_sparse else q_e * q_c, "C": q_c * q_c}
        sums: dict[str, np.ndarray] = {}
        values = np.empty(len(w))  # one work vector for every pair: fresh n-vectors cost page faults
        for s, t, part, flat in self.pairs:
            key = "B" if part == "b" else part
            np.multiply(w, A[:, s], out=values)
            values *= A[:, t]
            counts = np.bincount(flat, values, minlength=sizes[key])
            if key in sums:
                sums[key] += counts
            else:
                sums[key] = counts
        D = sums["D"].reshape(G, r, r) + np.eye(r)
        D_inv = batch_inverse(D)
        logdet = float(batch_logdet(D).sum())
        if q_c == 0:
            return Factor(D_inv, np.zeros((q_e, 0)), None, logdet)
        B = sums.get("B", np.zeros(sizes["B"]))
        C = sums.get("C", np.zeros(sizes["C"])).reshape(q_c, q_c)
        if self.b_sparse:
            Y = B * D_inv[self.b_rows, 0, 0]
            BtY = np.bincount(self.s_flat, B[self.w_first] * Y[self.w_second], minlength=q_c * q_c).reshape(q_c, q_c)
        else:
            B = B.reshape(q_e, q_c)
            if r == 1:  # B' D^-1 B as a symmetric rank-k update (half the flops of a product; lower triangle)
                Y = B * D_inv[:, 0, :]
                B *= np.sqrt(D_inv[:, 0, :])  # B is not needed after this: scaled in place
                BtY = linalg.blas.dsyrk(1.0, B.T, trans=0, lower=1)  # B.T is Fortran-ordered: no copy
            else:
                Y = np.einsum("gab,gbk->gak", D_inv, B.reshape(G, r, q_c)).reshape(q_e, q_c)
                BtY = B.T @ Y
        # S is symmetric and the Cholesky factorisation reads its lower triangle only
        S = C - BtY
        S[np.diag_indices(q_c)] += 1.0
        if not np.isfinite(S).all():  # weights overflowed at an extreme trial point: an evaluation failure
            raise np.linalg.LinAlgError("the Schur complement of H is not finite")
        S_chol = linalg.cho_factor(S, lower=True, check_finite=False)
        logdet += 2.0 * float(np.log(np.diag(S_chol[0])).sum())
        return Factor(D_inv, Y, S_chol, logdet)

    def solve(self, factor: Factor, g: np.ndarray) -> np.ndarray:
        """Solve :math:`Hx = g` (vectors in the model's column order) by block elimination."""
        g = g[self.perm]
        q_e, r = self.q_e, self.r_e
        g1, g2 = g[:q_e], g[q_e:]
        if r == 1:
            x1 = factor.D_inv[:, 0, 0] * g1
        else:
            x1 = np.einsum("gab,gb->ga", factor.D_inv, g1.reshape(-1, r)).ravel()
        if factor.S_chol is not None:
            if self.b_sparse:  # Y^T g1 and Y x2 on B's pattern
                Yt_g1 = np.bincount(self.b_cols, factor.Y * g1[self.b_rows], minlength=self.q_c)
                x2 = linalg.cho_solve(factor.S_chol, g2 - Yt_g1)
                x1 = x1 - np.bincount(self.b_rows, factor.Y * x2[self.b_cols], minlength=q_e)
            else:
                x2 = linalg.cho_solve(factor.S_chol, g2 - factor.Y.T @ g1)
                x1 = x1 - factor.Y @ x2
            x1 = np.concatenate([x1, x2])
        return x1[self.position]

    def _inverse_blocks(self, factor: Factor) -> tuple[np.ndarray, np.ndarray]:
        r"""The eliminated term's diagonal blocks of :math:`H^{-1}`, :math:`D^{-1} + (Y S^{-1} Y^\top)_{ll}`
        (G×r×r), and :math:`-(Y S^{-1})` at B's entries (sparse B: its pattern; dense: all, flattened)."""
        if not self.q_c:
            return factor.D_inv, np.zeros(0)
        if self.b_sparse:
            Y_data = factor.Y
            W = np.bincount(self.w_first, Y_data[self.w_second] * factor.S_inv[self.b_cols[self.w_second],
                                                                                self.b_cols[self.w_first]],
                            minlength=self.b_nnz)
            correction = np.bincount(self.b_rows, Y_data * W, minlength=self.q_e).reshape(-1, 1, 1)
            return factor.D_inv + correction, -W
        W = factor.Y @ factor.S_inv  # q_e×q_c
        G, r = factor.D_inv.shape[:2]
        correction = np.einsum("gak,gbk->gab", W.reshape(G, r, -1), factor.Y.reshape(G, r, -1))
        return factor.D_inv + correction, -W.ravel()

    def inverse_times_rows(self, factor: Factor, A: np.ndarray) -> np.ndarray:
        r""":math:`(H^{-1} a_j)` at row :math:`j`'s own slots (n×m), from the selected inverse: the entries of
        :math:`H^{-1}` on the pattern of :math:`A^\top A`, read with the assembly's index arrays."""
        M_D, M_B = self._inverse_blocks(factor)
        M_C = factor.S_inv.ravel()
        M_D = M_D.ravel()
        out = np.zeros_like(A)
        for s, t, part, flat in self.pairs:
            if part == "D":
                out[:, s] += M_D[flat] * A[:, t]
            elif part in ("B", "b"):
                entry = M_B[flat]
                out[:, s] += entry * A[:, t]
                out[:, t] += entry * A[:, s]
            else:
                out[:, s] += M_C[flat] * A[:, t]
        return out

    def Au(self, A: np.ndarray, u: np.ndarray) -> np.ndarray:
        """:math:`A u` (length n)."""
        out = A[:, 0] * u[self.slot_columns[0]]
        for s in range(1, len(self.slot_columns)):
            out += A[:, s] * u[self.slot_columns[s]]
        return out

    def At(self, A: np.ndarray, values: np.ndarray) -> np.ndarray:
        r""":math:`A^\top` values (length q): one bincount per slot (the slots' columns are disjoint)."""
        out = np.bincount(self.slot_columns[0], A[:, 0] * values, minlength=self.q)
        for s in range(1, len(self.slot_columns)):
            out += np.bincount(self.slot_columns[s], A[:, s] * values, minlength=self.q)
        return out

    def rescaled_modes(self, u: np.ndarray, theta_old: np.ndarray, theta_new: np.ndarray) -> np.ndarray:
        r"""A start for the modes at ``theta_new`` from the modes ``u`` at ``theta_old``: the random effects
        :math:`b = T_{\mathrm{old}} u` held, :math:`u = T_{\mathrm{new}}^{-1} b` per term (a term whose new
        :math:`T` is singular keeps its ``u``). The conditional modes of :math:`b` move far less with
        :math:`\theta` than those of :math:`u`, so PIRLS starts closer."""
        out = np.array(u, dtype=float)
        pairs = zip(self.covariance.Ts(theta_old), self.covariance.Ts(theta_new), strict=True)
        for i, (T_old, T_new) in enumerate(pairs):
            if np.min(np.abs(np.diag(T_new))) <= 1e-8 * max(1.0, float(np.abs(T_new).max())):
                continue
            block = out[self.col_start[i]:self.col_start[i + 1]].reshape(self.terms[i].n_levels, self.terms[i].n_re)
            b = block @ T_old.T
            block[:] = linalg.solve_triangular(T_new, b.T, lower=True).T
        return out

    # ---- conditional modes ------------------------------------------------------------------
    def conditional_modes(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                          tol: float = 1e-10, max_iter: int = 200, min_iter: int = 1) -> SparseModeState:
        """Penalised IRLS (Newton with step-halving) for the spherical random effects of all terms.

        A warm start ``u_start`` far from the modes (the previous modes rescaled to a nearly singular
        :math:`T`) can lead through points with huge weights, where :math:`H` loses positive definiteness to
        rounding: then the solve restarts once from :math:`u = 0`."""
        A = self.A_values(theta)
        eta0 = self.data.eta_fixed(beta)
        if u_start is None:
            return self._newton_modes(A, eta0, None, tol, max_iter, min_iter)
        try:
            return self._newton_modes(A, eta0, u_start, tol, max_iter, min_iter)
        except np.linalg.LinAlgError:
            return self._newton_modes(A, eta0, None, tol, max_iter, min_iter)

    def _newton_modes(self, A: np.ndarray, eta0: np.ndarray, u_start: np.ndarray | None, tol: float,
                      max_iter: int, min_iter: int) -> SparseModeState:
        data = self.data
        u = np.zeros(self.q) if u_start is None else np.array(u_start, dtype=float).ravel()

        def evaluate(u_try: np.ndarray):
            eta = eta0 + self.Au(A, u_try)
            kv = data.family.eta_values(eta, data.response, data.family_weights)
            return eta, kv, float(kv.loglik.sum() - 0.5 * u_try @ u_try)

        def newton_step(u_now: np.ndarray, kv: EtaValues) -> tuple[Factor, np.ndarray, float]:
            g = self.At(A, kv.score) - u_now
            factor = self.factor(A, kv.neg_hessian)
            step = self.solve(factor, g)
            return factor, step, float(g @ step)

        found = newton_modes(evaluate, newton_step, lambda kv: self.factor(A, kv.neg_hessian), u, u_start is not None,
                             tol, max_iter, min_iter)
        kv, factor_obs = found.values, found.curvature
        factor_fisher = factor_obs if data.family.canonical else self.factor(A, kv.fisher)
        return SparseModeState(found.u, found.eta, kv, found.penalised, A, factor_obs, factor_fisher,
                               found.iterations, found.passes, found.converged)

    # ---- Laplace log-likelihood and gradient -----------------------------------------------
    def laplace_loglik(self, state: SparseModeState) -> float:
        return state.penalised - 0.5 * state.factor_fisher.logdet + self.data.log_constant

    def loglik_and_gradient(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                            tol: float = 1e-10, min_iter: int = 1) -> tuple[float, np.ndarray, SparseModeState]:
        """Laplace log-likelihood and its analytic gradient in (theta, beta) (theta first)."""
        data = self.data
        theta = np.asarray(theta, dtype=float)
        state = self.conditional_modes(theta, beta, u_start, tol, min_iter=min_iter)
        value = self.laplace_loglik(state)
        kv, A = state.values, state.A
        fisher_deriv = data.family.fisher_deriv(state.eta, data.response, data.family_weights, kv)
        MA = self.inverse_times_rows(state.factor_fisher, A)
        leverage = np.einsum("ns,ns->n", A, MA)
        e = -0.5 * fisher_deriv * leverage
        v = self.solve(state.factor_obs, self.At(A, e))
        c = kv.score + e - kv.neg_hessian * self.Au(A, v)
        grad_beta = data.X.T @ c
        U = state.u[self.slot_cols]
        V = v[self.slot_cols]
        grad_theta = np.empty(self.covariance.n_theta)
        k = 0
        first_slot = np.concatenate([[0], np.cumsum([t.n_re for t in self.terms])])
        for i, term in enumerate(self.terms):
            rows, cols = term.cov.positions
            base = first_slot[i]
            for a, b in zip(rows, cols, strict=True):
                sa, sb = base + a, base + b
                per_row = (c * U[:, sb] + kv.score * V[:, sb] - kv.fisher * MA[:, sb]) * self.Zslots[:, sa]
                grad_theta[k] = per_row.sum()
                k += 1
        return value, np.concatenate([grad_theta, grad_beta]), state

    def beta_information(self, state: SparseModeState) -> np.ndarray:
        r"""Information for :math:`\beta` with the random effects profiled out:
        :math:`X^\top W X - (A^\top W X)^\top H^{-1} (A^\top W X)`."""
        w = state.values.fisher
        X = self.data.X
        AWX = np.column_stack([self.At(state.A, w * X[:, k]) for k in range(X.shape[1])])
        HinvAWX = np.column_stack([self.solve(state.factor_fisher, AWX[:, k]) for k in range(X.shape[1])])
        return X.T @ (w[:, None] * X) - AWX.T @ HinvAWX

    def marginal_loglik(self, theta: np.ndarray, beta: np.ndarray, u_start: np.ndarray | None = None,
                        tol: float = 1e-10) -> float:
        return self.laplace_loglik(self.conditional_modes(theta, beta, u_start, tol=tol))

    # ---- per-term views of a state -------------------------------------------------------------
    def term_modes(self, u: np.ndarray) -> list[np.ndarray]:
        """The spherical modes of each term (levels × r)."""
        return [u[self.col_start[i]:self.col_start[i + 1]].reshape(t.n_levels, t.n_re)
                for i, t in enumerate(self.terms)]

    def conditional_covariances(self, state: SparseModeState, theta: np.ndarray) -> list[np.ndarray]:
        r"""Per term and level, :math:`T_i (H^{-1})_{ll} T_i^\top` (levels × r × r), the conditional covariance
        of that level's random effects: diagonal blocks of :math:`H^{-1}` read from the factorisation."""
        factor = state.factor_fisher
        out = []
        for i, (term, T) in enumerate(zip(self.terms, self.covariance.Ts(theta), strict=True)):
            r = term.n_re
            if i == self.eliminated:
                block = self._inverse_blocks(factor)[0]
            else:
                cols = self.col_start[i] + np.arange(term.n_columns).reshape(term.n_levels, r)
                pos = self.position[cols] - self.q_e
                block = factor.S_inv[pos[:, :, None], pos[:, None, :]]
            out.append(np.einsum("ab,gbc,dc->gad", T, block, T))
        return out

    # ---- the penalised system in (beta, u), for intervals given the random effects --------------------------
    @property
    def effect_starts(self) -> np.ndarray:
        """The first position in ``u`` of each term's effects."""
        return self.col_start[:-1]

    def effects_crossprod(self, state: SparseModeState, values: np.ndarray) -> np.ndarray:
        r""":math:`A^\top V` (q×k) for row values ``V`` (n×k), :math:`A = Z\Lambda_\theta` at the modes ``state``."""
        return np.column_stack([self.At(state.A, values[:, k]) for k in range(values.shape[1])])

    def fisher_solve(self, state: SparseModeState, M: np.ndarray) -> np.ndarray:
        """:math:`H^{-1}M` (q×k) with the expected-information :math:`H` of the modes ``state``."""
        if not M.shape[1]:
            return M
        return np.column_stack([self.solve(state.factor_fisher, M[:, k]) for k in range(M.shape[1])])
