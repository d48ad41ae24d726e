"""Checks that a customer summary can support a model, with messages that say what to do.

Floors (below them a fit is refused with :class:`~clvcast.errors.ModelError`) and advice
levels (below them a :class:`~clvcast.errors.DataQualityWarning` gives the numbers).
Commercial tools ask for about 500 buyers and 180 days of history (Klaviyo).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from clvcast.errors import DataQualityWarning, InputError, ModelError, ModelWarning

MIN_CONTACTS = 20
MIN_REPEAT_BUYERS = 5
ADVISED_CONTACTS = 500
ADVISED_REPEAT_BUYERS = 100
ADVISED_HISTORY_DAYS = 180


def require_columns(summary: pd.DataFrame, columns: tuple[str, ...], *, model: str) -> None:
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise InputError(
            f"{model} needs columns {list(columns)}; missing {missing} (available: "
            f"{[str(c) for c in summary.columns]}). Build the summary with "
            "clvcast.summary.summarize."
        )


def resolve_time_unit(summary: pd.DataFrame, time_unit_days: float | None) -> float:
    """Days per unit of the summary's recency and T.

    Explicit argument first, then ``summary.attrs["time_unit_days"]`` (set by
    :func:`clvcast.summary.summarize`), else days. Fractional ages in a summary said to be in
    days usually mean weeks or months: that gets a warning rather than a silent 52x error.
    """
    if time_unit_days is None:
        time_unit_days = summary.attrs.get("time_unit_days")
        if time_unit_days is None:
            ages = summary["T"].to_numpy(dtype=float)
            if ages.size and np.any(ages != np.round(ages)):
                warnings.warn(
                    "recency and T are not whole days; clvcast assumes days. If the summary "
                    "is in weeks, pass time_unit_days=7 so horizons in days stay right.",
                    DataQualityWarning,
                    stacklevel=3,
                )
            time_unit_days = 1.0
    if not time_unit_days > 0:
        raise InputError(f"time_unit_days={time_unit_days}; it must be a positive number.")
    return float(time_unit_days)


def check_purchase_data(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, *, unit_days: float
) -> None:
    """Validate (frequency, recency, T) and judge whether there is enough data."""
    n = len(frequency)
    if n == 0:
        raise ModelError("BG/NBD: the summary has no contact; nothing to fit.")
    problems = []
    for name, values in (("frequency", frequency), ("recency", recency), ("T", T)):
        if not np.all(np.isfinite(values)):
            problems.append(f"{int((~np.isfinite(values)).sum()):,} missing or infinite {name}")
        elif np.any(values < 0):
            problems.append(f"{int((values < 0).sum()):,} negative {name}")
    if not problems:
        if np.any(frequency != np.round(frequency)):
            problems.append("frequency has non-integer values")
        if np.any(recency > T):
            problems.append(f"{int((recency > T).sum()):,} contacts have recency > T")
        if np.any((frequency == 0) & (recency != 0)):
            problems.append("contacts with frequency 0 have a non-zero recency")
    if problems:
        raise InputError(
            "BG/NBD: the summary is inconsistent: "
            + "; ".join(problems)
            + ". Use clvcast.summary.summarize, which follows the lifetimes convention."
        )
    repeat = int(np.count_nonzero(frequency > 0))
    history_days = float(np.max(T)) * unit_days
    if n < MIN_CONTACTS or repeat < MIN_REPEAT_BUYERS:
        # Many contacts and not one repeat buyer is what an id made anew for every order
        # gives: Olist's customer_id (its customer_unique_id is the customer's).
        per_order = (
            " If the contact ids are new for every order, read the id that stays the same "
            "across a customer's orders instead (Olist: customer_unique_id)."
            if repeat == 0 and n >= ADVISED_CONTACTS
            else ""
        )
        raise ModelError(
            f"BG/NBD needs at least {MIN_CONTACTS} contacts and {MIN_REPEAT_BUYERS} repeat "
            f"buyers; this summary has {n:,} contacts and {repeat:,} repeat buyers. Use a "
            f"longer history or more contacts.{per_order}"
        )
    shortfalls = []
    if n < ADVISED_CONTACTS:
        shortfalls.append(f"{n:,} contacts (advised: {ADVISED_CONTACTS:,}+)")
    if repeat < ADVISED_REPEAT_BUYERS:
        shortfalls.append(f"{repeat:,} repeat buyers (advised: {ADVISED_REPEAT_BUYERS:,}+)")
    if history_days < ADVISED_HISTORY_DAYS:
        shortfalls.append(f"{history_days:,.0f} days of history (advised: {ADVISED_HISTORY_DAYS}+)")
    if shortfalls:
        warnings.warn(
            "BG/NBD: little data for a trustworthy model: "
            + ", ".join(shortfalls)
            + "; treat the forecasts as rough.",
            DataQualityWarning,
            stacklevel=3,
        )


def weak_parameters(params: pd.Series, errors: pd.Series) -> list[str]:
    """Parameters the data do not pin down: standard error above the estimate, or none at all.

    A maximum-likelihood estimate whose standard error exceeds the estimate itself (or
    cannot be computed, because the likelihood is flat) is at a bound of what the data can
    say. Returns "name = value ± se" for each.
    """
    weak = []
    for name, value in params.items():
        se = errors.get(name, np.nan)
        if not np.isfinite(se) or se > abs(value):
            shown = "?" if not np.isfinite(se) else f"{se:.3g}"
            weak.append(f"{name} = {value:.3g} ± {shown}")
    return weak


def warn_if_bgnbd_degenerate(params: pd.Series, errors: pd.Series, mean_p_alive: float) -> None:
    """Say in words when BG/NBD's dropout part collapsed (seen on UCI Online Retail).

    With ``a`` or ``b`` not pinned down, or with P(alive) near 1 for nearly everyone, the
    model sees almost no customer leaving: P(alive) and the expected purchases then rest on
    purchase rates alone, and a long silence lowers them only a little.
    """
    dropout = weak_parameters(params[["a", "b"]], errors)
    if not dropout and mean_p_alive < 0.98:
        return
    detail = f" ({', '.join(dropout)})" if dropout else ""
    warnings.warn(
        f"BG/NBD: the data show almost no sign of customers leaving{detail}; mean P(alive) "
        f"is {mean_p_alive:.3f}. P(alive) is close to 1 for nearly everyone and does not "
        "rank contacts by dropout: use churn_risk and days_since_last_purchase to find "
        "lapsed contacts, and check that the log covers a long enough history.",
        ModelWarning,
        stacklevel=3,
    )
