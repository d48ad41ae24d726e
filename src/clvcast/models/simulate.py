"""Simulate contacts from known BG/NBD and Gamma-Gamma parameters (time in days).

``lifetimes.generate_data`` relies on pandas APIs removed in pandas 2 and loops per
contact; these simulators are vectorised numpy and scale to tens of millions of contacts.

The BG/NBD story per contact: purchase rate ``lambda ~ Gamma(r, rate alpha)``, dropout
probability ``p ~ Beta(a, b)``; after each repeat purchase the contact drops out with
probability ``p``, so it makes ``K ~ Geometric(p)`` repeat purchases at most. Without dropout
it would make ``N ~ Poisson(lambda T)`` in ``(0, T]``, at the order statistics of ``N``
uniform times; so ``x = min(N, K)`` and ``t_x`` is the x-th of ``N`` uniforms on ``(0, T]``,
that is ``T * Beta(x, N - x + 1)``. Gamma-Gamma: ``nu ~ Gamma(q, rate v)``, each order's
value ``~ Gamma(p, rate nu)``, so the mean of ``x`` orders is ``Gamma(p x, rate nu x)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _draw_contacts(n: int, bgnbd: tuple[float, float, float, float], rng: np.random.Generator):
    r, alpha, a, b = bgnbd
    rate = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    dropout = rng.beta(a, b, size=n)
    max_repeats = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    return rate, dropout, max_repeats


def simulate_summary(
    n_contacts: int,
    bgnbd: tuple[float, float, float, float],
    gamma_gamma: tuple[float, float, float] | None = None,
    *,
    min_age_days: int = 30,
    max_age_days: int = 730,
    seed: int = 0,
) -> pd.DataFrame:
    """A customer summary (frequency, recency, T, monetary_value) drawn from the models.

    Ages ``T`` are whole days, uniform in ``[min_age_days, max_age_days]``; purchase times
    are continuous, so ``recency`` is fractional. Extra columns ``true_rate``,
    ``true_dropout`` and ``alive`` hold each contact's hidden state for tests.
    """
    rng = np.random.default_rng(seed)
    ages = rng.integers(min_age_days, max_age_days + 1, size=n_contacts).astype(float)
    rate, dropout, max_repeats = _draw_contacts(n_contacts, bgnbd, rng)
    possible = rng.poisson(rate * ages)
    x = np.minimum(possible, max_repeats)
    repeat = x > 0
    recency = np.zeros(n_contacts)
    recency[repeat] = ages[repeat] * rng.beta(x[repeat], possible[repeat] - x[repeat] + 1)
    frame = pd.DataFrame(
        {"frequency": x.astype(np.int64), "recency": recency, "T": ages},
        index=pd.Index([f"sim-{i:08d}" for i in range(n_contacts)], name="contact_id"),
    )
    if gamma_gamma is not None:
        p, q, v = gamma_gamma
        nu = rng.gamma(shape=q, scale=1.0 / v, size=n_contacts)
        shape = p * np.maximum(x, 1)
        mean_value = rng.gamma(shape=shape, scale=1.0 / (nu * np.maximum(x, 1)))
        frame["monetary_value"] = np.where(repeat, mean_value, 0.0)
        frame["true_mean_order_value"] = p / nu
    frame["true_rate"] = rate
    frame["true_dropout"] = dropout
    frame["alive"] = max_repeats > possible
    frame.attrs["time_unit_days"] = 1.0
    return frame


def simulate_transactions(
    n_contacts: int,
    bgnbd: tuple[float, float, float, float],
    gamma_gamma: tuple[float, float, float],
    *,
    start: str = "2022-01-01",
    end: str = "2024-12-31",
    seed: int = 0,
) -> pd.DataFrame:
    """A purchase log (contact_id, date, amount) drawn from the models, as a shop exports it.

    Each contact's first purchase falls on a uniform day in ``[start, end]``; repeat
    purchases follow BG/NBD up to ``end`` (summarise at an earlier as-of date to keep a
    holdout period); amounts follow Gamma-Gamma, the first order included.
    Purchase times are floored to days, so two purchases on one day merge downstream, as in
    real data. Rows are in contact order.
    """
    rng = np.random.default_rng(seed)
    first_day = pd.Timestamp(start)
    span = (pd.Timestamp(end) - first_day).days
    offsets = rng.integers(0, span + 1, size=n_contacts)
    ages = (span - offsets).astype(float)
    rate, _, max_repeats = _draw_contacts(n_contacts, bgnbd, rng)
    possible = rng.poisson(rate * ages)
    x = np.minimum(possible, max_repeats)
    # x repeat purchases: the first x of `possible` sorted uniform times in (0, age].
    owner = np.repeat(np.arange(n_contacts), possible)
    times = rng.random(len(owner)) * ages[owner]
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    position = np.arange(len(owner)) - np.repeat(np.cumsum(possible) - possible, possible)
    kept = position < x[owner]
    owner, times = owner[kept], times[kept]
    contacts = np.concatenate([np.arange(n_contacts), owner])
    days = np.concatenate([offsets.astype(float), offsets[owner] + times])
    p, q, v = gamma_gamma
    nu = rng.gamma(shape=q, scale=1.0 / v, size=n_contacts)
    amounts = rng.gamma(shape=p, scale=1.0 / nu[contacts])
    frame = pd.DataFrame(
        {
            "contact_id": "c" + pd.Series(contacts).astype(str).str.zfill(7),
            "date": first_day + pd.to_timedelta(np.floor(days), unit="D"),
            "amount": np.round(amounts, 2).clip(min=0.01),
        }
    )
    return frame.sort_values(["contact_id", "date"], kind="stable").reset_index(drop=True)
