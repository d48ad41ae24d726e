"""Purchase logs with known dropout dates, where customers fade before they leave.

BG/NBD lets a customer leave only right after a purchase, at full speed until then. Real
customers often drift: they buy less often and spend less for a while, then stop. This
simulator draws such customers, with the true dropout date of each, so tests can check that
the churn classifier sees the drift that BG/NBD cannot.

Per contact: a first purchase day, a purchase rate ``lambda ~ Gamma(rate_shape, rate_scale)``
per day, a lifetime ``~ Exponential(mean_lifetime_days)`` after the first purchase. During
the last ``fade_days`` before dropout the rate (and the order value) shrink linearly to zero;
after dropout there is no purchase. Purchases are a thinned Poisson process, floored to days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_fading_transactions(
    n_contacts: int,
    *,
    start: str = "2022-01-01",
    end: str = "2024-06-30",
    mean_lifetime_days: float = 800.0,
    fade_days: float = 240.0,
    rate_shape: float = 1.5,
    rate_scale: float = 1.0 / 45.0,
    seed: int = 0,
    id_prefix: str = "f",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions (contact_id, date, amount) and the truth per contact.

    Contact ids are ``id_prefix`` and a six-digit number (distinct prefixes let blocks drawn
    with different seeds be stacked into one large log). The truth has ``first_purchase``, ``dropout_date`` (may lie after ``end``) and
    ``rate_per_day``. First purchases fall in the first 60% of the period.
    """
    rng = np.random.default_rng(seed)
    first_day = pd.Timestamp(start)
    span = float((pd.Timestamp(end) - first_day).days)
    first = np.floor(rng.uniform(0, 0.6 * span, n_contacts))
    rate = rng.gamma(rate_shape, rate_scale, n_contacts)
    dropout = first + rng.exponential(mean_lifetime_days, n_contacts)
    stop = np.minimum(dropout, span + 1)
    candidates = rng.poisson(rate * np.maximum(stop - first, 0))
    owner = np.repeat(np.arange(n_contacts), candidates)
    times = first[owner] + rng.random(len(owner)) * (stop - first)[owner]
    fading = np.clip((dropout[owner] - times) / fade_days, 0.0, 1.0)
    kept = rng.random(len(owner)) < fading
    owner, times, fading = owner[kept], times[kept], fading[kept]
    mean_value = rng.gamma(4.0, 10.0, n_contacts)
    contacts = np.concatenate([np.arange(n_contacts), owner])
    days = np.concatenate([first, np.floor(times)])
    scale = np.concatenate([np.ones(n_contacts), 0.5 + 0.5 * fading])
    amounts = rng.gamma(3.0, mean_value[contacts] * scale / 3.0)
    ids = id_prefix + pd.Series(np.arange(n_contacts)).astype(str).str.zfill(6)
    transactions = pd.DataFrame(
        {
            "contact_id": ids.to_numpy()[contacts],
            "date": first_day + pd.to_timedelta(days, unit="D"),
            "amount": np.round(amounts, 2).clip(min=0.01),
        }
    ).sort_values(["contact_id", "date"], kind="stable", ignore_index=True)
    truth = pd.DataFrame(
        {
            "first_purchase": first_day + pd.to_timedelta(first, unit="D"),
            "dropout_date": first_day + pd.to_timedelta(np.floor(dropout), unit="D"),
            "rate_per_day": rate,
        },
        index=pd.Index(ids, name="contact_id"),
    )
    return transactions, truth
