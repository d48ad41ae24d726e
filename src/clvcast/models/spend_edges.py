"""Gamma-Gamma at the edges of its parameter space, where its likelihood may be largest.

The model (Fader & Hardie, note 025): a contact's order values are Gamma(p, nu), and nu is
Gamma(q, v) across contacts. Two kinds of data put the maximum of the likelihood at an edge,
with a parameter at infinity, where no optimiser converges (the unpenalized steps run away
and the penalized one, pulled back by its penalty, biases the population mean):

- **Fixed spend per contact** (``p`` to infinity): each contact spends the same on every
  purchase day, and contacts differ (plans, tiers, one basket each). A contact's mean ``m``
  is then its spend exactly: ``m`` is inverse-gamma with shape ``q`` and scale ``s``
  (``= p v``), and every repeat buyer's expected order value is its own mean.
- **Alike contacts** (``q`` to infinity): every contact has the same ``nu``; their means
  differ no more than the order values within one contact do. ``x m`` is Gamma(p x, nu),
  and every contact's expected order value is the population mean, the mean of every
  repeat purchase day (``sum x m / sum x``).

Both limits keep two parameters, and the likelihood of each is a function of one after the
other is set to its best value in closed form, so it is maximised by a root search in one
variable. :func:`edge_fits` returns them as fit results whose Gamma-Gamma parameters give the same
expected order values through the usual formulas (the infinite parameter set to
:data:`EDGE_INFINITY`), so the model file and the lifetimes adapter need no case of
their own. Where both means are equal, see ``gamma_gamma.CONSTANT_SPREAD``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from clvcast.models.fitting import FitResult
from clvcast.models.likelihood import GammaGammaData

# The parameter at infinity, as a number: 1e12 makes the weight of a contact's own mean
# p x / (p x + q - 1) equal to 1 (fixed spend) or 0 (alike contacts) within 1e-11.
EDGE_INFINITY = 1e12
FIXED_SPEND = "edge: fixed spend per contact"
ALIKE_CONTACTS = "edge: alike contacts"
# What each edge means for the expected order values, in the words of the fit's warning,
# clvcast forecast's summary and the report.
MEANING = {
    FIXED_SPEND: "each contact spends about the same on every purchase day (p = inf), so a "
    "repeat buyer's expected order value is its own mean",
    ALIKE_CONTACTS: "contacts' mean spends differ no more than chance (q = inf), so every "
    "contact's expected order value is the mean of all repeat purchase days",
}
_ROOT_STEPS = 200  # bisection steps on a log scale: far beyond double precision


def _root(decreasing, low: float, high: float) -> float:
    """The point where ``decreasing`` (a decreasing function of a log-parameter) crosses
    0 in [low, high], by bisection; an end when it does not cross."""
    if decreasing(low) <= 0:
        return low
    if decreasing(high) >= 0:
        return high
    for _ in range(_ROOT_STEPS):
        middle = 0.5 * (low + high)
        if decreasing(middle) > 0:
            low = middle
        else:
            high = middle
        if high - low < 1e-13:
            break
    return 0.5 * (low + high)


def _edge(step: str, params: np.ndarray, log_likelihood: float, n: float) -> FitResult:
    """An edge as a fit result: its Gamma-Gamma parameters and objective (the mean negative
    log-likelihood), no gradient (the optimum lies at infinity), no penalizer."""
    return FitResult(np.log(params), float(-log_likelihood / n), float("nan"), step, 0.0)


def fixed_spend_fit(data: GammaGammaData) -> FitResult | None:
    """The fixed-spend edge: ``m`` inverse-gamma(q, s), fitted by maximum likelihood.

    With ``n`` contacts, ``S = sum w / m`` and ``L = sum w ln m``, the best scale for a
    shape ``q`` is ``s = n q / S``, and the best ``q`` solves ``ln q - digamma(q) =
    ln(S / n) + L / n`` (the right side is > 0 unless every ``m`` is equal). None when the
    population mean ``s / (q - 1)`` would be infinite (q <= 1).
    """
    n = data.n_contacts
    m = data.spend / _row_x(data)
    total_inverse = float(np.dot(data.weights, 1.0 / m))
    target = np.log(total_inverse / n) + data.sum_log_m / n
    log_q = _root(lambda t: t - digamma(np.exp(t)) - target, -20.0, 60.0)
    q = float(np.exp(log_q))
    if q <= 1.0:
        return None
    scale = n * q / total_inverse
    ll = n * (q * np.log(scale) - gammaln(q)) - (q + 1.0) * data.sum_log_m - scale * total_inverse
    return _edge(FIXED_SPEND, np.array([EDGE_INFINITY, q, scale / EDGE_INFINITY]), ll, n)


def alike_contacts_fit(data: GammaGammaData) -> FitResult:
    """The alike-contacts edge: ``x m`` Gamma(p x, nu), fitted by maximum likelihood.

    With ``X = sum w x`` and ``T = sum w x m``, the best rate for a shape ``p`` is
    ``nu = p X / T``, and the best ``p`` solves
    ``X ln(p X / T) + sum w x ln(x m) - sum w x digamma(p x) = 0``.
    """
    n = data.n_contacts
    x_total = float(np.dot(data.x_weight, data.x))
    spend_total = float(np.dot(data.weights, data.spend))

    def score(log_p: float) -> float:
        p = np.exp(log_p)
        return (
            x_total * np.log(p * x_total / spend_total)
            + data.sum_x_log_spend
            - float(np.dot(data.x_weight * data.x, digamma(p * data.x)))
        )

    p = float(np.exp(_root(score, -20.0, 60.0)))
    rate = p * x_total / spend_total
    ll = (
        p * np.log(rate) * x_total
        + p * data.sum_x_log_spend
        - data.sum_log_m
        - rate * spend_total
        - float(np.dot(data.x_weight, gammaln(p * data.x)))
    )
    mean = spend_total / x_total
    params = np.array([p, EDGE_INFINITY, (EDGE_INFINITY - 1.0) * mean / p])
    return _edge(ALIKE_CONTACTS, params, ll, n)


def _row_x(data: GammaGammaData) -> np.ndarray:
    """Each row's purchase count ``x`` (the rows carry ``w x`` and ``w``)."""
    return data.x_weights / data.weights


def edge_fits(data: GammaGammaData) -> list[FitResult]:
    """Both edges fitted, the better (lower objective) first."""
    fits = [fit for fit in (fixed_spend_fit(data), alike_contacts_fit(data)) if fit is not None]
    return sorted(fits, key=lambda fit: fit.objective)
