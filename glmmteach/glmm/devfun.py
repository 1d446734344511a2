r"""The marginal log-likelihood of :math:`(\theta, \beta)` and its gradient: Laplace and adaptive Gauss–Hermite.

At the conditional modes :math:`\tilde u` (:mod:`glmmteach.glmm.pirls`),

.. math::

    \log L(\theta, \beta) \approx \sum_i \Bigl[\sum_j \ell(y_{ij}\mid\tilde\eta_{ij}) - \tfrac12\|\tilde u_i\|^2
    - \tfrac12\log\det\bigl(I + T^\top Z_i^\top W_i Z_i T\bigr)\Bigr]

(Laplace), or the adaptive Gauss–Hermite sum for a scalar random effect. Every value includes the
constants (:math:`-\log y!`, :math:`\log\binom{n}{y}`). The gradient is analytic: it is
differentiated through the modes by the implicit function theorem. :func:`make_devfun` returns the
function of :math:`(\theta, \beta)` that the optimiser maximises (lme4's ``devfun``), for lessons to
evaluate and plot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..families import LOG_2PI
from ..quadrature import gauss_hermite
from .model import (
    GroupedData,
    batch_inverse,
    batch_logdet,
    batch_solve,
    group_vector_sum,
    leverage,
    random_part,
    weighted_crossprod,
)
from .pirls import ModeState, conditional_modes
from .terms import theta_positions, theta_to_T


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``scipy.special.logsumexp(a, axis=1, keepdims=True)`` for a real G×K array, by the same operations
    (the largest term of each row set apart, ``log1p`` of the rest), without its per-call array-API
    dispatch (a fifth of an nAGQ = 25 fit of the crossover)."""
    a_max = np.max(a, axis=1, keepdims=True)
    is_max = a == a_max
    count = np.sum(is_max, axis=1, keepdims=True, dtype=a.dtype)
    rest = np.sum(np.exp(np.where(is_max, -np.inf, a) - a_max), axis=1, keepdims=True)
    rest = np.where(rest == 0, rest, rest / count)
    return np.log1p(rest) + np.log(count) + a_max


def laplace_loglik(
    data: GroupedData, T: np.ndarray, beta: np.ndarray, state: ModeState | None = None, **mode_kwargs: Any
) -> tuple[float, ModeState]:
    r"""Laplace approximation of the marginal log-likelihood (with all constants).

    .. math::

        \log L(\theta, \beta) \approx \sum_i \Bigl[ \sum_j \ell(y_{ij} \mid \tilde\eta_{ij})
        - \tfrac12 \|\tilde u_i\|^2 - \tfrac12 \log\det\bigl(I + T^\top Z_i^\top W_i Z_i T\bigr)\Bigr],

    :math:`W_i` the expected-information (GLM working) weights at the modes, as in lme4
    (for canonical links they equal the observed ones). Returns the value and the
    :class:`ModeState` it was computed from.
    """
    if state is None:
        state = conditional_modes(data, T, beta, **mode_kwargs)
    logdet = batch_logdet(state.hessian_fisher)
    value = float(state.penalised.sum() - 0.5 * logdet.sum()) + data.log_constant
    return value, state


def agq_loglik(
    data: GroupedData,
    T: np.ndarray,
    beta: np.ndarray,
    n_nodes: int,
    state: ModeState | None = None,
    **mode_kwargs: Any,
) -> tuple[float, ModeState]:
    r"""Adaptive Gauss–Hermite approximation of the marginal log-likelihood (scalar random effect).

    With modes :math:`\tilde u_i` and scales :math:`s_i = (1 + \tau^2\sum_j w_{ij} z_{ij}^2)^{-1/2}`,
    nodes :math:`u_{ik} = \tilde u_i + \sqrt2 s_i x_k`:

    .. math::

        \log L_i = \log(\sqrt2\,s_i) + \operatorname{logsumexp}_k\Bigl[\log w_k + x_k^2
        - \tfrac12\log 2\pi + \sum_j \ell(y_{ij}\mid\eta_{ij}(u_{ik})) - \tfrac12 u_{ik}^2\Bigr].

    ``n_nodes = 1`` reproduces :func:`laplace_loglik` exactly.
    """
    value, state, _ = _agq_value_and_gradient(data, T, beta, n_nodes, state, want_gradient=False, **mode_kwargs)
    return value, state


def _node_log_terms(data: GroupedData, state: ModeState, eta0: np.ndarray, n_nodes: int):
    nodes, node_weights = gauss_hermite(n_nodes)
    u_mode = state.u[:, 0]
    scale = 1.0 / np.sqrt(state.hessian_fisher[:, 0, 0])
    zt = state.ZT[:, 0]
    u_nodes = u_mode[:, None] + np.sqrt(2.0) * scale[:, None] * nodes[None, :]  # G×K
    log_terms = np.empty_like(u_nodes)
    sums = np.empty((n_nodes, data.n_groups))
    for block in _node_blocks(data, nodes):  # the nodes in blocks, each block one pass over the data
        eta = eta0[None, :] + zt[None, :] * u_nodes.T[block][:, data.groups]  # nodes x rows
        family_rows = None if data.family_weights is None else data.family_weights[None, :]
        sums[block] = data.group_sum_rows(data.family.loglik_eta(eta, data.response[None, :], family_rows))
    for k in range(n_nodes):
        if nodes[k] == 0.0:
            sums[k] = state.penalised + 0.5 * u_mode**2
        log_terms[:, k] = np.log(node_weights[k]) + nodes[k] ** 2 - 0.5 * LOG_2PI + sums[k] - 0.5 * u_nodes[:, k] ** 2
    return nodes, scale, u_nodes, log_terms


NODE_BLOCK_ELEMENTS = 1 << 21  # nodes x rows per block: 16 MB of doubles per intermediate


def _node_blocks(data: GroupedData, nodes: np.ndarray) -> list[np.ndarray]:
    """The indices of the nonzero quadrature nodes in blocks of at most ``NODE_BLOCK_ELEMENTS`` node-rows.

    Per node, a pass over small data is a dozen NumPy calls whose overhead is most of their cost (an nAGQ = 25
    fit of the crossover trial, 134 rows, spent half its time in them); nodes x rows arrays take all the
    nodes of a block in one call each, the same operations on the same numbers."""
    nonzero = np.flatnonzero(nodes != 0.0)
    size = max(1, NODE_BLOCK_ELEMENTS // max(1, data.nobs))
    return [nonzero[i:i + size] for i in range(0, len(nonzero), size)]


def _agq_value_and_gradient(
    data: GroupedData,
    T: np.ndarray,
    beta: np.ndarray,
    n_nodes: int,
    state: ModeState | None = None,
    want_gradient: bool = True,
    **mode_kwargs: Any,
) -> tuple[float, ModeState, np.ndarray | None]:
    if data.n_re != 1:
        raise ValueError(
            f"adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single scalar random effect; "
            f"this model has {data.n_re} random-effect terms per group"
        )
    eta0 = data.eta_fixed(beta)
    if state is None:
        state = conditional_modes(data, T, beta, eta_fixed=eta0, **mode_kwargs)
    nodes, scale, u_nodes, log_terms = _node_log_terms(data, state, eta0, n_nodes)
    per_group = np.log(np.sqrt(2.0) * scale) + _logsumexp_rows(log_terms)[:, 0]
    value = float(per_group.sum()) + data.log_constant
    if not want_gradient:
        return value, state, None
    grad = _agq_gradient(data, state, eta0, T, nodes, scale, u_nodes, log_terms)
    return value, state, grad


def _agq_gradient(data, state, eta0, T, nodes, scale, u_nodes, log_terms) -> np.ndarray:
    r"""Gradient of the AGQ log-likelihood in (tau, beta), differentiating through the modes
    and scales (implicit function theorem); see :func:`loglik_and_gradient`."""
    tau = T[0, 0]
    z = data.Z[:, 0]
    g = data.groups
    kv = state.values
    u_mode = state.u[:, 0]
    H_obs = state.hessian_obs[:, 0, 0]
    H_f = state.hessian_fisher[:, 0, 0]
    fisher_deriv = data.family.fisher_deriv(state.eta, data.response, data.family_weights, kv)
    posterior_node = np.exp(log_terms - _logsumexp_rows(log_terms))  # G×K, pi_ik

    # Second sweep over the nodes: the pi-weighted score per row and the per-group sums E_ik.
    score_avg = np.zeros(data.nobs)
    E = np.empty_like(u_nodes)
    family_rows = None if data.family_weights is None else data.family_weights[None, :]
    is_zero = nodes == 0.0  # the node at the mode (odd rules): its scores are the modes' own

    def add_zero_nodes(k: int) -> None:  # the weighted scores of the zero node(s) from k on, in node order
        nonlocal score_avg
        while k < len(nodes) and is_zero[k]:
            score_avg += posterior_node[g, k] * kv.score
            E[:, k] = data.group_sum(kv.score * z)
            k += 1

    add_zero_nodes(0)
    for block in _node_blocks(data, nodes):
        eta = eta0[None, :] + tau * z[None, :] * u_nodes.T[block][:, g]  # nodes x rows
        scores = data.family.eta_values(eta, data.response[None, :], family_rows).score
        E[:, block] = data.group_sum_rows(scores * z[None, :]).T
        for row, k in enumerate(block):  # summed in node order, as one node at a time did
            score_avg += posterior_node[g, k] * scores[row]
            add_zero_nodes(k + 1)
    D = tau * E - u_nodes
    alpha = (posterior_node * D).sum(axis=1)
    gamma = 1.0 / scale + np.sqrt(2.0) * (posterior_node * D * nodes[None, :]).sum(axis=1)
    explicit_tau = (posterior_node * E * u_nodes).sum(axis=1)

    A = data.group_sum(kv.fisher * z * z)
    C = data.group_sum(fisher_deriv * z**3)
    dmode_deta = -kv.neg_hessian * tau * z / H_obs[g]
    dmode_dtau = (data.group_sum(-kv.neg_hessian * z * z) * tau * u_mode + data.group_sum(kv.score * z)) / H_obs
    half_h32 = -0.5 * H_f ** (-1.5)
    dscale_deta = half_h32[g] * tau**2 * (fisher_deriv * z * z + C[g] * tau * dmode_deta)
    dscale_dtau = half_h32 * (2.0 * tau * A + tau**2 * C * (u_mode + tau * dmode_dtau))

    d_eta = score_avg + alpha[g] * dmode_deta + gamma[g] * dscale_deta
    d_tau = explicit_tau + alpha * dmode_dtau + gamma * dscale_dtau
    return np.concatenate([[d_tau.sum()], data.X.T @ d_eta])


def _laplace_gradient(data: GroupedData, state: ModeState, T: np.ndarray, correlated: bool) -> np.ndarray:
    r"""Gradient of the Laplace log-likelihood in (theta, beta) through the modes.

    With :math:`F = \sum\ell - \frac12\|u\|^2` stationary in :math:`u` at the modes and
    :math:`G = -\frac12\sum_i\log\det H_i`,
    :math:`\frac{d}{d\phi}(F + G) = \partial_\phi F + \partial_\phi G + v^\top \partial_u\partial_\phi F`
    with the adjoint :math:`v_i = H_{\mathrm{obs},i}^{-1}\,\partial G/\partial u_i`.
    """
    if data.n_re == 1:
        return _scalar_laplace_gradient(data, state, float(T[0, 0]))
    kv = state.values
    ZT = state.ZT
    fisher_deriv = data.family.fisher_deriv(state.eta, data.response, data.family_weights, kv)
    M = batch_inverse(state.hessian_fisher)  # G×r×r
    e = -0.5 * fisher_deriv * leverage(data, ZT, M)  # dG/deta_j
    dG_du = group_vector_sum(data, e, ZT)
    v = batch_solve(state.hessian_obs, dG_du)
    s = random_part(data, ZT, v)
    c = kv.score + e - kv.neg_hessian * s
    grad_beta = data.X.T @ c
    # d/dT_ab: sum_i (P_i u_i^T + Q_i v_i^T)_ab - sum_i (A_i T M_i)_ab
    P = group_vector_sum(data, c, data.Z)
    Q = group_vector_sum(data, kv.score, data.Z)
    A = weighted_crossprod(data, kv.fisher, data.Z)
    grad_T = P.T @ state.u + Q.T @ v
    # sum_i A_i T M_i as one (r^2 x G)(G x r^2) product: a three-operand einsum over the groups was
    # most of the gradient's time for (1 + x | g)
    G, r = A.shape[0], A.shape[1]
    grad_T -= np.einsum("abcd,bc->ad", (A.reshape(G, r * r).T @ M.reshape(G, r * r)).reshape(r, r, r, r), T)
    rows, cols = theta_positions(data.n_re, correlated)
    return np.concatenate([grad_T[rows, cols], grad_beta])


def _scalar_laplace_gradient(data: GroupedData, state: ModeState, tau: float) -> np.ndarray:
    """:func:`_laplace_gradient` for one random effect per group (r = 1, T = tau): the same formulas on
    length-G vectors (fewer NumPy calls; no r×r bookkeeping)."""
    kv = state.values
    z = None if data.z_is_ones else data.Z[:, 0]
    fisher_deriv = data.family.fisher_deriv(state.eta, data.response, data.family_weights, kv)
    M = 1.0 / state.hessian_fisher[:, 0, 0]
    H_obs = state.hessian_obs[:, 0, 0]
    u = state.u[:, 0]
    if z is None:
        e = (-0.5 * tau * tau) * fisher_deriv * data.gather(M)  # dG/deta_j
        v = tau * data.group_sum(e) / H_obs
        c = kv.score + e - kv.neg_hessian * (tau * data.gather(v))
        P, Q, A = data.group_sum(c), data.group_sum(kv.score), data.group_sum(kv.fisher)
    else:
        zt = tau * z
        e = -0.5 * fisher_deriv * (zt * zt) * data.gather(M)
        v = data.group_sum(e * zt) / H_obs
        c = kv.score + e - kv.neg_hessian * (zt * data.gather(v))
        P, Q, A = data.group_sum(c * z), data.group_sum(kv.score * z), data.group_sum(kv.fisher * (z * z))
    grad_tau = float(P @ u + Q @ v - tau * (A @ M))
    return np.concatenate([[grad_tau], data.X.T @ c])


def _modes_at(data: GroupedData, theta: np.ndarray, beta: np.ndarray, correlated: bool, u_start: np.ndarray | None,
              tol: float, min_iter: int = 1) -> tuple[np.ndarray, ModeState]:
    r""":math:`T_\theta` and the conditional modes at :math:`(\theta, \beta)`: the first step of every evaluation
    of the marginal log-likelihood."""
    theta = np.asarray(theta, dtype=float)
    T = theta.reshape(1, 1) if data.n_re == 1 else theta_to_T(theta, data.n_re, correlated)
    return T, conditional_modes(data, T, beta, u_start=u_start, tol=tol, min_iter=min_iter)


def loglik_and_gradient(
    data: GroupedData,
    theta: np.ndarray,
    beta: np.ndarray,
    correlated: bool = True,
    n_nodes: int = 1,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
    min_iter: int = 1,
) -> tuple[float, np.ndarray, ModeState]:
    r"""Marginal log-likelihood (Laplace or AGQ) and its analytic gradient in (theta, beta).

    The modes :math:`\tilde u(\theta,\beta)` solve :math:`\nabla_u F = 0`; by the implicit
    function theorem :math:`d\tilde u/d\phi = H_{\mathrm{obs}}^{-1}\,\partial_u\partial_\phi F`,
    so the gradient needs one extra adjoint solve per group rather than finite differences
    (which are inaccurate with warm-started inner solves). Returns
    ``(loglik, gradient, mode_state)``; the gradient lists theta first, then beta.
    """
    T, state = _modes_at(data, theta, beta, correlated, u_start, tol, min_iter)
    if n_nodes == 1:
        value, _ = laplace_loglik(data, T, beta, state=state)
        grad = _laplace_gradient(data, state, T, correlated)
    else:
        value, _, grad = _agq_value_and_gradient(data, T, beta, n_nodes, state=state)
        assert grad is not None
    return value, grad, state


def marginal_loglik(
    data: GroupedData,
    theta: np.ndarray,
    beta: np.ndarray,
    correlated: bool = True,
    n_nodes: int = 1,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
) -> float:
    """Marginal log-likelihood (Laplace for ``n_nodes=1``, else AGQ) at (theta, beta)."""
    T, state = _modes_at(data, theta, beta, correlated, u_start, tol)
    if n_nodes == 1:
        return laplace_loglik(data, T, beta, state=state)[0]
    return agq_loglik(data, T, beta, n_nodes, state=state)[0]



def make_devfun(
    model: Any,
    correlated: bool | None = None,
    n_nodes: int | None = None,
    deviance: bool = False,
    gradient: bool = False,
    tol: float = 1e-10,
) -> Callable[[np.ndarray, np.ndarray], Any]:
    r"""The objective of the fit as a function of :math:`(\theta, \beta)`, as lme4's ``devfun``.

    ``model`` is a fitted :class:`~glmmteach.glmm.results.GLMMResults` (its engine ``model`` and ``nAGQ``
    are the defaults), an engine model (:class:`~glmmteach.glmm.model.MixedModel`, which carries its
    covariance term) or a :class:`~glmmteach.glmm.model.GroupedData` (defaults: correlated effects,
    Laplace). Returns ``f(theta, beta)``: the marginal log-likelihood (Laplace for
    ``n_nodes=1``, adaptive Gauss–Hermite otherwise), or the deviance :math:`-2\log L` with
    ``deviance=True``. With ``gradient=True`` it returns ``(value, gradient)``, the gradient in
    :math:`(\theta, \beta)` (theta first). Every call solves for the conditional modes from zero, so
    the value does not depend on earlier calls; at a fit's estimates it is the fit's ``llf``.

    >>> devfun = make_devfun(fit)                    # doctest: +SKIP
    >>> devfun(fit.theta, fit.params.to_numpy())     # doctest: +SKIP
    """
    fitted = hasattr(model, "nAGQ")  # a fitted model: its engine model and node count are the defaults
    engine = model.model if fitted else model
    if fitted and n_nodes is None:
        # (an nAGQ = 0 fit's value at its estimates is the Laplace approximation: glmmteach.glmm.nagq0)
        n_nodes = max(model.nAGQ, 1)
    sign = -2.0 if deviance else 1.0
    if hasattr(engine, "loglik_and_gradient"):  # an engine model (glmmteach.glmm.model.MixedModel)
        if n_nodes is not None:
            engine = engine.with_nodes(n_nodes)

        def value_and_gradient(theta: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
            return engine.loglik_and_gradient(theta, beta, tol=tol)[:2]

        def value_only(theta: np.ndarray, beta: np.ndarray) -> float:
            return engine.marginal_loglik(theta, beta, tol=tol)
    else:  # the arrays of one grouping factor
        correlated = True if correlated is None else correlated
        n_nodes = 1 if n_nodes is None else n_nodes

        def value_and_gradient(theta: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
            return loglik_and_gradient(engine, theta, beta, correlated, n_nodes, tol=tol)[:2]

        def value_only(theta: np.ndarray, beta: np.ndarray) -> float:
            return marginal_loglik(engine, theta, beta, correlated, n_nodes, tol=tol)

    def devfun(theta: np.ndarray, beta: np.ndarray) -> Any:
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        beta = np.atleast_1d(np.asarray(beta, dtype=float))
        if gradient:
            value, grad = value_and_gradient(theta, beta)
            return sign * value, sign * grad
        return sign * value_only(theta, beta)

    return devfun
