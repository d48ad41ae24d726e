"""Log-likelihoods of BG/NBD and Gamma-Gamma with analytic gradients, vectorised in numpy.

Pure functions of (log-parameters, data, weights): no state, no I/O. Both return the
objective that lifetimes minimises, so the optimum is the same point:

    mean negative log-likelihood over the weighted rows + penalizer * sum(params ** 2)

and its gradient with respect to the *log*-parameters (the optimiser works in log space, so
every parameter stays positive). ``weights`` are the numbers of contacts sharing a row
after compression to unique rows; the mean is over contacts, not rows.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln


def bgnbd_objective(
    log_params: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    penalizer: float = 0.0,
) -> tuple[float, np.ndarray]:
    """BG/NBD objective and gradient (Fader, Hardie & Lee 2005, eq. 6 and section 7).

    Per contact: ``LL = A1 + A2 + log(exp(A3) + [x > 0] exp(A4))`` with

    - ``A1 = lnG(r+x) - lnG(r) + r ln(alpha)``
    - ``A2 = lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)``
    - ``A3 = -(r+x) ln(alpha+T)``
    - ``A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)``

    ``x`` repeat purchases, ``t_x`` recency and ``T`` age, in one time unit (alpha is in
    the same unit).
    """
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    b_x1 = b + np.maximum(x, 1) - 1
    a3 = -(r + x) * log_alpha_T
    a4 = np.log(a) - np.log(b_x1) - (r + x) * log_alpha_tx
    top = np.where(repeat, np.maximum(a3, a4), a3)
    e3 = np.exp(a3 - top)
    e4 = np.where(repeat, np.exp(a4 - top), 0.0)
    total = e3 + e4
    ll = a1 + a2 + np.log(total) + top
    w3 = e3 / total
    w4 = e4 / total

    n = weights.sum()
    value = -np.dot(weights, ll) / n
    # d LL / d theta for theta = r, alpha, a, b
    psi_r_x = digamma(r + x)
    psi_ab_x = digamma(a + b + x)
    psi_ab = digamma(a + b)
    d_r = psi_r_x - digamma(r) + np.log(alpha) - w3 * log_alpha_T - w4 * log_alpha_tx
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = psi_ab - psi_ab_x + w4 / a
    d_b = psi_ab + digamma(b + x) - digamma(b) - psi_ab_x - w4 / b_x1
    params = np.array([r, alpha, a, b])
    gradient = np.array(
        [
            -np.dot(weights, d_r) / n,
            -np.dot(weights, d_alpha) / n,
            -np.dot(weights, d_a) / n,
            -np.dot(weights, d_b) / n,
        ]
    )
    gradient = gradient * params + 2.0 * penalizer * params**2
    return float(value + penalizer * np.sum(params**2)), gradient


def gamma_gamma_objective(
    log_params: np.ndarray,
    x: np.ndarray,
    m: np.ndarray,
    weights: np.ndarray,
    penalizer: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Gamma-Gamma objective and gradient (Fader & Hardie, note 025, eq. 1a).

    Per repeat buyer with ``x`` repeat purchases of mean value ``m``:
    ``LL = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(xm+v)``.
    """
    p, q, v = np.exp(log_params)
    px = p * x
    log_m = np.log(m)
    log_x = np.log(x)
    log_xm_v = np.log(x * m + v)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * log_m
        + px * log_x
        - (px + q) * log_xm_v
    )
    n = weights.sum()
    value = -np.dot(weights, ll) / n
    psi_px_q = digamma(px + q)
    d_p = x * (psi_px_q - digamma(px) + log_m + log_x - log_xm_v)
    d_q = psi_px_q - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    params = np.array([p, q, v])
    gradient = -np.array([np.dot(weights, d_p), np.dot(weights, d_q), np.dot(weights, d_v)]) / n
    gradient = gradient * params + 2.0 * penalizer * params**2
    return float(value + penalizer * np.sum(params**2)), gradient
