"""Per-contact forecasts: predicted purchases, P(alive), expected order value and CLV.

Honest time units: every horizon is in days. 12 months = 365 days, split into 12 months of
365/12 days for discounting; ``discount_rate_monthly`` applies per such month. (lifetimes'
``customer_lifetime_value(time=12, freq="D")`` uses 30-day months, so 360 days; its
quickstart passes weekly data with ``freq="D"`` and so computes 360 *weeks*.) With
``horizon_days=360, month_days=30`` the CLV here equals lifetimes' exactly (tested).

CLV of a contact = expected order value x sum over months k of the expected purchases in
month k, discounted by ``(1 + discount_rate_monthly) ** (t_k / month_days)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from clvcast.errors import InputError, ModelError
from clvcast.estimator import Estimator, check_fitted
from clvcast.models.bgnbd import BetaGeoModel, history_factor, horizon_term, probability_alive
from clvcast.models.fitting import CompressedRows, compress_rows
from clvcast.models.gamma_gamma import GammaGammaModel

DAYS_PER_YEAR = 365.0


def prediction_columns(horizon_days: float) -> tuple[str, str, str, str]:
    """Names of the forecast columns; ``_12m`` for the default 365-day horizon."""
    suffix = "12m" if horizon_days == DAYS_PER_YEAR else f"{horizon_days:g}d"
    return (f"predicted_purchases_{suffix}", "p_alive", "expected_order_value", f"clv_{suffix}")


def discounted_expected_purchases(
    params: tuple[float, float, float, float],
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    *,
    horizon: float,
    month: float,
    discount_rate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases over ``horizon`` and their discounted sum by month.

    ``horizon`` and ``month`` are in the model's time unit. Returns (undiscounted total,
    discounted total); the last month is cut at the horizon.

    Expected purchases up to ``t`` are ``horizon_term(t, x, T) * history_factor(x, t_x, T)``
    (:func:`~clvcast.models.bgnbd.expected_purchases`), so the monthly differences are
    summed on the distinct (x, T) pairs, and each row's sums multiplied by its factor once.
    """
    steps = max(1, math.ceil(horizon / month - 1e-9))
    (pair_x, pair_T), _, pair = compress_rows(np.asarray(x, dtype=float), np.asarray(T))
    previous = np.zeros(len(pair_x))
    discounted = np.zeros(len(pair_x))
    for k in range(1, steps + 1):
        t_k = min(k * month, horizon)
        current = horizon_term(params, t_k, pair_x, pair_T)
        discounted += (current - previous) / (1 + discount_rate) ** (t_k / month)
        previous = current
    factor = history_factor(params, x, t_x, T)
    return factor * previous[pair], factor * discounted[pair]


class CLVForecaster(Estimator):
    """BG/NBD + Gamma-Gamma: predicted purchases, P(alive), order value and CLV per contact.

    Parameters
    ----------
    horizon_days : float
        Forecast horizon in days (365 = the "12m" columns).
    discount_rate_monthly : float
        Discount rate per month of ``month_days`` days (0.01 = 1% a month).
    month_days : float
        Length of a discounting month in days (365/12 by default; 30 reproduces lifetimes).
    penalizer, monetary_penalizer : float
        L2 penalties of the BG/NBD and Gamma-Gamma fits.
    max_correlation : float
        Frequency/spend correlation above which Gamma-Gamma warns.

    Attributes
    ----------
    bgnbd_ : BetaGeoModel
    gamma_gamma_ : GammaGammaModel
    """

    def __init__(
        self,
        horizon_days: float = DAYS_PER_YEAR,
        discount_rate_monthly: float = 0.01,
        month_days: float = DAYS_PER_YEAR / 12,
        penalizer: float = 0.0,
        monetary_penalizer: float = 0.0,
        max_correlation: float = 0.3,
    ) -> None:
        self.horizon_days = horizon_days
        self.discount_rate_monthly = discount_rate_monthly
        self.month_days = month_days
        self.penalizer = penalizer
        self.monetary_penalizer = monetary_penalizer
        self.max_correlation = max_correlation

    def fit(self, summary: pd.DataFrame, *, time_unit_days: float | None = None) -> CLVForecaster:
        """Fit BG/NBD on every contact and Gamma-Gamma on the repeat buyers."""
        self._fit(summary, time_unit_days)
        return self

    def _fit(self, summary: pd.DataFrame, time_unit_days: float | None) -> CompressedRows:
        """:meth:`fit`; returns the summary's distinct rows the BG/NBD was fitted on."""
        self._check_settings()
        bgnbd = BetaGeoModel(penalizer=self.penalizer)
        rows = bgnbd._fit_returning_rows(summary, time_unit_days=time_unit_days)
        self.bgnbd_ = bgnbd
        self.gamma_gamma_ = GammaGammaModel(
            penalizer=self.monetary_penalizer, max_correlation=self.max_correlation
        ).fit(summary)
        return rows

    def _check_settings(self) -> None:
        if not self.horizon_days > 0:
            raise InputError(f"horizon_days={self.horizon_days}; it must be positive.")
        if not self.month_days > 0:
            raise InputError(f"month_days={self.month_days}; it must be positive.")
        if not self.discount_rate_monthly > -1:
            raise InputError(
                f"discount_rate_monthly={self.discount_rate_monthly}; it must be above -1 "
                "(0.01 means 1% a month)."
            )

    def fit_predict(
        self, summary: pd.DataFrame, *, time_unit_days: float | None = None
    ) -> pd.DataFrame:
        """:meth:`fit`, then :meth:`predict` for the same summary: the same forecast, with the
        summary's distinct rows found once for both (850k contacts: 0.07 s less)."""
        return self._predict_rows(summary, self._fit(summary, time_unit_days))

    def predict(self, summary: pd.DataFrame) -> pd.DataFrame:
        """Forecast columns for every contact of ``summary`` (same index)."""
        check_fitted(self, "bgnbd_")
        self._check_settings()
        return self._predict_rows(summary, compress_rows(*self.bgnbd_._columns(summary)))

    def _predict_rows(self, summary: pd.DataFrame, rows: CompressedRows) -> pd.DataFrame:
        """The forecast for ``summary``, whose distinct (frequency, recency, T) rows are
        ``rows``."""
        model = self.bgnbd_
        params = model.params_tuple()
        (ux, utx, uT), _, codes = rows
        purchases, discounted = discounted_expected_purchases(
            params,
            ux,
            utx,
            uT,
            horizon=model.to_model_time(self.horizon_days),
            month=model.to_model_time(self.month_days),
            discount_rate=self.discount_rate_monthly,
        )
        alive = probability_alive(params, ux, utx, uT)
        order_value = self.gamma_gamma_.expected_order_value(summary).to_numpy()
        names = prediction_columns(self.horizon_days)
        forecast = pd.DataFrame(
            {
                names[0]: purchases[codes],
                names[1]: alive[codes],
                names[2]: order_value,
                names[3]: order_value * discounted[codes],
            },
            index=summary.index,
            copy=False,  # fresh columns: no need to copy them into one block
        )
        _check_finite(forecast, summary, params)
        return forecast


def _check_finite(
    forecast: pd.DataFrame, summary: pd.DataFrame, params: tuple[float, float, float, float]
) -> None:
    """Refuse a forecast with a value that is not a finite number.

    A NaN prediction is a value read wrong without a word (session 12 found one: a + b < 1
    made 882 one-time buyers' forecasts NaN, as in lifetimes); a refusal that names the
    contact and the parameters turns any future cause into an error instead.
    """
    # Column by column: the frame's columns are separate arrays, and turning them into one
    # 2-D array first cost 0.045 s at 850k contacts, against 0.005 s.
    bad = np.zeros(len(forecast), dtype=bool)
    for column in forecast.columns:
        bad |= ~np.isfinite(forecast[column].to_numpy(dtype=float))
    if not bad.any():
        return
    first = forecast.index[bad][0]
    row = summary.loc[first]
    r, alpha, a, b = params
    raise ModelError(
        f"the forecast is not a finite number for {int(bad.sum()):,} of {len(forecast):,} "
        f"contacts (first: {first!r}, frequency {row['frequency']:g}, recency "
        f"{row['recency']:g}, T {row['T']:g}; BG/NBD r={r:.4g}, alpha={alpha:.4g}, "
        f"a={a:.4g}, b={b:.4g}), so it is refused rather than passed on. A small penalizer (--penalizer 0.001) "
        "may avoid it; please report the case."
    )
