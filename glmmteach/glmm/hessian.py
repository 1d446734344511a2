r"""The analytic Hessian of the Laplace log-likelihood of a scalar random effect, in :math:`(\tau, \beta)`.

Per group, with :math:`\eta_j = x_j^\top\beta + o_j + \tau z_j u`, the Laplace log-likelihood is
:math:`L = F(\tilde u) + G(\tilde u)`, :math:`F(u) = \sum_j \ell(\eta_j) - u^2/2` (stationary at the mode
:math:`\tilde u`) and :math:`G(u) = -\tfrac12\log D`, :math:`D = 1 + \tau^2 \sum_j z_j^2 w(\eta_j)`. For parameters
:math:`\phi, \psi \in (\tau, \beta)`, with :math:`H = -F_{uu}` and the modes' derivatives
:math:`\tilde u_\phi = F_{u\phi}/H` (implicit function theorem),

.. math::

    \frac{d^2 L}{d\phi\,d\psi} = F_{\phi\psi} + \frac{F_{u\phi}F_{u\psi}}{H}
    + G_{\phi\psi} + G_{u\phi}\tilde u_\psi + G_{u\psi}\tilde u_\phi + G_{uu}\tilde u_\phi\tilde u_\psi
    + G_u \tilde u_{\phi\psi},\qquad
    \tilde u_{\phi\psi} = \frac{F_{u\phi\psi} + F_{uu\phi}\tilde u_\psi + F_{uu\psi}\tilde u_\phi
    + F_{uuu}\tilde u_\phi\tilde u_\psi}{H},

summed over the groups. Every partial derivative is a group sum of the row derivatives of :math:`\ell` (to the
third) and of :math:`w` (to the second) times the derivatives of :math:`\eta`: :math:`\eta_u = \tau z`,
:math:`\eta_\tau = z u`, :math:`\eta_\beta = x`, :math:`\eta_{u\tau} = z` and no other second derivative.
The canonical links (binomial logit, Poisson log) give these in closed form: there :math:`\ell'' = -w`,
:math:`\ell''' = -w'` (:meth:`~glmmteach.families.Family.fisher_second_deriv`).

The fit uses it for Newton steps and the covariance of the estimates, where a finite-difference Hessian costs one
evaluation of the likelihood per parameter (the small fits' largest cost after the optimiser's own steps).
"""

from __future__ import annotations

import numpy as np

from .model import GroupedData
from .pirls import ModeState


def hessian_available(data: GroupedData, n_nodes: int) -> bool:
    """The analytic Hessian is defined: Laplace, one scalar random effect, a canonical link."""
    return n_nodes == 1 and data.n_re == 1 and data.family.has_fisher_second_deriv


def scalar_laplace_hessian(data: GroupedData, state: ModeState, tau: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Hessian of the Laplace log-likelihood in :math:`(\tau, \beta)` at the modes ``state`` (see the module
    docstring), ``tau`` the SD parameter :math:`\theta`; and the modes' derivatives
    :math:`d\tilde u_i/d(\tau, \beta)` (G×(1+p)), which predict the modes after a step (a warm start)."""
    kv = state.values
    z = None if data.z_is_ones else data.Z[:, 0]
    w = kv.fisher  # = -l'' (canonical link), and its derivatives w' = -l''', w''
    w1 = data.family.fisher_deriv(state.eta, data.response, data.family_weights, kv)
    w2 = data.family.fisher_second_deriv(kv)
    H = state.hessian_obs[:, 0, 0]  # = D = 1 + tau^2 S, S = sum z^2 w (canonical: observed = expected)
    u_rows = data.gather(state.u[:, 0])
    n, m = data.nobs, data.X.shape[1] + 1
    t2 = tau * tau
    if z is None:  # z = 1: no products with z (on small data each NumPy call counts)
        zw, z2w1, z2w2 = w, w1, w2
        scalars, weights = (kv.score, w, w1, w2), (w, w1, w2)
    else:
        z2 = z * z
        zw, z2w1, z2w2 = z * w, z2 * w1, z2 * w2
        scalars, weights = (kv.score * z, z2 * w, z2w1 * z, z2w2 * z2), (zw, z2w1, z2w2 * z)

    # every group sum in one reduction: four per-row sums and three weighted sums of the columns of Q =
    # d eta / d(tau, beta), filled into one array (stack and concatenate cost more than the products here)
    rows = np.empty((4 + 4 * m, n))
    QT = rows[4 + 3 * m:]  # Q transposed (m×n), kept after the reduction's rows
    QT[0] = u_rows if z is None else z * u_rows
    QT[1:] = data.X.T
    rows[:4] = scalars
    for k, weight in enumerate(weights):  # the three weights
        np.multiply(weight, QT, out=rows[4 + k * m: 4 + (k + 1) * m])
    Q = QT.T
    sums = data.group_sum_rows(rows[:4 + 3 * m])
    l1z, S, w1z3, w2z4 = sums[:4]
    wzQ, S_phi, w2z3Q = sums[4:].reshape(3, m, -1).transpose(0, 2, 1)  # each G×m

    # F = sum l - u^2/2: A = F_u.phi = -tau sum w z Q (+ sum l' z for tau), the modes' derivatives A / H,
    # F_uuu = -tau^3 sum w' z^3, F_uu.phi = -tau^2 sum w' z^2 Q (- 2 tau S for tau)
    A = -tau * wzQ
    A[:, 0] += l1z
    mode_d = A / H[:, None]
    F_uuu = -tau * t2 * w1z3
    F_uu_phi = -t2 * S_phi
    F_uu_phi[:, 0] -= 2.0 * tau * S

    # G = -log(D)/2: D_u = tau^3 sum w' z^3, D_phi = tau^2 S_phi (+ 2 tau S), D_uu = tau^4 sum w'' z^4,
    # D_u.phi = tau^3 sum w'' z^3 Q (+ tau^2 sum w' z^3 + 2 tau S_u for tau)
    D_u = tau * t2 * w1z3
    D_uu = t2 * t2 * w2z4
    D_phi = t2 * S_phi
    D_phi[:, 0] += 2.0 * tau * S
    D_uphi = tau * t2 * w2z3Q
    D_uphi[:, 0] += 3.0 * t2 * w1z3
    inv_D = 1.0 / H
    G_u = -0.5 * D_u * inv_D
    G_uu = -0.5 * (D_uu - D_u * D_u * inv_D) * inv_D
    G_uphi = -0.5 * (D_uphi - (D_u * inv_D)[:, None] * D_phi) * inv_D[:, None]
    c = G_u * inv_D  # the weight of the modes' second derivatives

    # the row-level second derivatives in one weighted cross product (of F, of G through w'', and the modes'
    # second derivatives through w'), then the eta_u.tau = z terms, the explicit tau terms of G and the
    # products of first derivatives
    c_row = data.gather(c)
    row_weight = -w - 0.5 * t2 * z2w2 * data.gather(inv_D) - tau * c_row * (w1 if z is None else w1 * z)
    hessian = Q.T @ (row_weight[:, None] * Q)
    hessian += 0.5 * (D_phi * (inv_D * inv_D)[:, None]).T @ D_phi
    edge = -(Q.T @ (c_row * zw)) - tau * (inv_D @ S_phi)
    hessian[0, :] += edge
    hessian[:, 0] += edge
    hessian[0, 0] -= float(S @ inv_D)
    cross = (G_uphi + c[:, None] * F_uu_phi).T @ mode_d
    hessian += A.T @ mode_d + cross + cross.T + mode_d.T @ ((G_uu + c * F_uuu)[:, None] * mode_d)
    return 0.5 * (hessian + hessian.T), mode_d
