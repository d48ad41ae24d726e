"""Gamma-Gamma spend model: expected order value per contact.

Fader & Hardie, "The Gamma-Gamma model of monetary value" (2013, note 025). Each order's
value is Gamma(p, nu) around a contact's own mean, with ``nu ~ Gamma(q, v)`` across contacts.
It is fitted on repeat buyers only (``frequency > 0``, ``monetary_value`` = mean of the
repeat purchase days), and assumes spend is independent of purchase frequency; the fit
measures that correlation and warns above ``max_correlation``.

What contacts the model cannot see get (documented in the README):

- one-time buyers (``frequency == 0``): the population mean order value ``p v / (q - 1)``;
  the first order's value is not used, following the model (lifetimes #134, #81, #315);
- refunds: amounts <= 0 never reach the summary under the ``drop``/``net`` ingestion policies,
  so expected order values are always positive;
- repeat buyers who all spend the same per purchase day (an export without revenue, every
  amount 1.0): the model is not fitted (see :data:`CONSTANT_SPREAD`) and every contact's
  expected order value is that amount, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from clvcast.errors import DataQualityWarning, InputError, ModelError, ModelWarning
from clvcast.estimator import Estimator, check_fitted
from clvcast.models.checks import MIN_REPEAT_BUYERS, require_columns
from clvcast.models.fitting import (
    FitResult,
    minimize_with_retries,
    parameter_table,
    pilot_weights,
    standard_errors,
)
from clvcast.models.likelihood import gamma_gamma_objective, prepare_gamma_gamma_data
from clvcast.models.spend_edges import EDGE_INFINITY, MEANING, edge_fits

PARAMS = ("p", "q", "v")
_SPREAD_STARTS = ((1.0, 1.0, 2.0), (2.0, 0.5, 3.0), (0.0, 2.0, 1.0))
# Repeat buyers whose mean order values differ by less than this share of their mean give
# the model no spread of spend to learn: its likelihood then grows without bound as p goes
# to infinity, and a fit runs away or converges only with a penalizer, whose pull biases
# the population mean (the BTYDplus grocery log, every amount 1.0: 1.08 instead of 1.0,
# and every CLV 8% too high with it).
CONSTANT_SPREAD = 1e-6
CONSTANT_STEP = "constant spend"  # the fit step of such a model: no fit, the common value
# The constant model is written in the model's own parameters, both shapes at infinity
# (EDGE_INFINITY): with q = p + 1 and v = the common value, the population mean
# p v / (q - 1) is that value, and every contact's expected order value a weighted mean of
# it and the contact's own (equal) mean. So the formulas, the model file and the lifetimes
# adapter need no case of their own.


def expected_order_value(
    params: tuple[float, float, float], x: np.ndarray, m: np.ndarray
) -> np.ndarray:
    """E[M | x, m]: a weighted mean of the contact's own mean and the population mean."""
    p, q, v = params
    x = np.asarray(x, dtype=float)
    weight = p * x / (p * x + q - 1)
    population_mean = v * p / (q - 1)
    return (1 - weight) * population_mean + weight * np.asarray(m, dtype=float)


class GammaGammaModel(Estimator):
    """Gamma-Gamma model of order value, fitted on the repeat buyers of a summary.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the parameters, as lifetimes' ``penalizer_coef``.
    max_correlation : float
        Absolute Pearson correlation between frequency and monetary value above which the
        independence assumption is flagged with a warning.

    Attributes
    ----------
    params_ : pd.Series
        ``p``, ``q``, ``v`` (``v`` in the currency of the input).
    standard_errors_, covariance_, log_likelihood_
    population_mean_ : float
        Expected order value of a contact with no repeat purchase.
    frequency_monetary_correlation_ : float
    n_repeat_buyers_, n_rows_fitted_ : int
    fit_step_, fit_attempts_, penalizer_used_
    """

    def __init__(self, penalizer: float = 0.0, max_correlation: float = 0.3) -> None:
        self.penalizer = penalizer
        self.max_correlation = max_correlation

    def fit(self, summary: pd.DataFrame) -> GammaGammaModel:
        """Fit on the contacts with ``frequency > 0`` of a customer summary."""
        require_columns(summary, ("frequency", "monetary_value"), model="Gamma-Gamma")
        repeat = summary["frequency"].to_numpy(dtype=float) > 0
        x = summary["frequency"].to_numpy(dtype=float)[repeat]
        m = summary["monetary_value"].to_numpy(dtype=float)[repeat]
        bad = ~np.isfinite(m) | (m <= 0)
        if bad.any():
            examples = summary.index[repeat][bad][:5].tolist()
            raise InputError(
                f"Gamma-Gamma: {int(bad.sum()):,} repeat buyers have a monetary_value <= 0 or "
                f"missing (contacts {examples}). Read the transactions with "
                "nonpositive='drop' or 'net' so refunds do not make spend negative."
            )
        if len(x) < MIN_REPEAT_BUYERS:
            raise ModelError(
                f"Gamma-Gamma needs at least {MIN_REPEAT_BUYERS} repeat buyers to learn "
                f"order values; this summary has {len(x):,}. Use a longer history."
            )
        if np.ptp(m) <= CONSTANT_SPREAD * np.mean(m):
            return self._constant_spend(m)
        varies = len(x) > 2 and np.ptp(x) > 0 and np.ptp(m) > 0
        correlation = float(np.corrcoef(x, m)[0, 1]) if varies else float("nan")
        if np.isfinite(correlation) and abs(correlation) > self.max_correlation:
            warnings.warn(
                f"Gamma-Gamma assumes spend does not depend on purchase frequency, but their "
                f"correlation among {len(x):,} repeat buyers is {correlation:.2f} "
                f"(threshold {self.max_correlation}); expected order values may be biased.",
                DataQualityWarning,
                stacklevel=2,
            )
        # Mean order values are continuous, so rows are not compressed: one row per buyer.
        data = prepare_gamma_gamma_data(x, m, np.ones(len(x)))
        sample = pilot_weights(data.weights)  # every k-th repeat buyer, in summary order
        pilot = None
        if sample is not None:
            keep = sample > 0
            pilot = (prepare_gamma_gamma_data(x[keep], m[keep], sample[keep]),)
        result = minimize_with_retries(
            gamma_gamma_objective,
            (data,),
            n_params=3,
            penalizer=float(self.penalizer),
            model="Gamma-Gamma",
            spread_starts=_SPREAD_STARTS,
            pilot_args=pilot,
            edges=lambda: edge_fits(data),
        )
        params = np.exp(result.log_params)
        if result.step in MEANING:  # an edge (spend_edges)
            return self._at_edge(result, params, correlation, len(x))
        if params[1] <= 1:
            raise ModelError(
                f"Gamma-Gamma: q = {params[1]:.3f} <= 1, so the population mean order value "
                "is infinite; a few extreme order values probably dominate. Cap outliers or "
                "pass a penalizer."
            )
        covariance, errors = standard_errors(
            gamma_gamma_objective,
            result.log_params,
            (data, result.penalizer),
            data.n_contacts,
            params,
            gradient=result.gradient,
        )
        penalty = result.penalizer * float(np.sum(params**2))
        return self._store(
            params,
            covariance=covariance,
            errors=errors,
            log_likelihood=-(result.objective - penalty) * data.n_contacts,
            correlation=correlation,
            n_buyers=len(x),
            n_rows=len(x),
            step=result.step,
            attempts=result.attempts,
            penalizer=result.penalizer,
        )

    def _store(
        self,
        params: np.ndarray,
        *,
        covariance: np.ndarray | None = None,
        errors: np.ndarray | None = None,
        log_likelihood: float,
        correlation: float,
        n_buyers: int,
        n_rows: int,
        step: str,
        attempts: list[dict[str, object]],
        penalizer: float,
    ) -> GammaGammaModel:
        """Set the fitted state (see the class docstring); a model the optimiser did not
        estimate (an edge, equal spend) has no ``covariance`` and ``errors``: NaN."""
        names = list(PARAMS)
        if covariance is None or errors is None:
            covariance, errors = np.full((3, 3), np.nan), np.full(3, np.nan)
        self.params_ = pd.Series(params, index=names, name="Gamma-Gamma")
        self.covariance_ = pd.DataFrame(covariance, index=names, columns=names)
        self.standard_errors_ = pd.Series(errors, index=names, name="se")
        self.log_likelihood_ = float(log_likelihood)
        self.population_mean_ = float(params[2] * params[0] / (params[1] - 1))
        self.frequency_monetary_correlation_ = correlation
        self.n_repeat_buyers_ = int(n_buyers)
        self.n_rows_fitted_ = int(n_rows)
        self.fit_step_ = step
        self.fit_attempts_ = attempts
        self.penalizer_used_ = penalizer
        return self

    def _at_edge(
        self, result: FitResult, params: np.ndarray, correlation: float, n_buyers: int
    ) -> GammaGammaModel:
        """The model at an edge of its parameter space (:mod:`clvcast.models.spend_edges`),
        which the optimiser's steps cannot reach: no standard errors, and a warning that
        says what the edge means for the expected order values."""
        self._store(
            params,
            log_likelihood=-result.objective * n_buyers,
            correlation=correlation,
            n_buyers=n_buyers,
            n_rows=n_buyers,
            step=result.step,
            attempts=result.attempts,
            penalizer=0.0,
        )
        warnings.warn(
            f"Gamma-Gamma: the likelihood is largest at an edge of the model: "
            f"{MEANING[result.step]}; one-time buyers get {self.population_mean_:,.4g}. No "
            "standard errors there.",
            ModelWarning,
            stacklevel=3,
        )
        return self

    def _constant_spend(self, m: np.ndarray) -> GammaGammaModel:
        """The model of repeat buyers who all spend the same (see :data:`CONSTANT_SPREAD`):
        every contact's expected order value is their mean spend; nothing is estimated."""
        value = float(np.mean(m))
        warnings.warn(
            f"Gamma-Gamma: all {len(m):,} repeat buyers spend the same amount per purchase "
            f"day, {value:,.6g}, so there is no spread of spend to fit: every contact's "
            f"expected order value is {value:,.6g}. With amounts that are all equal (1.0 in "
            "an export without revenue) CLV is the predicted purchases times that value.",
            DataQualityWarning,
            stacklevel=3,
        )
        return self._store(
            np.array([EDGE_INFINITY, EDGE_INFINITY + 1, value]),
            log_likelihood=float("nan"),
            correlation=float("nan"),
            n_buyers=len(m),
            n_rows=0,
            step=CONSTANT_STEP,
            attempts=[],
            penalizer=0.0,
        )

    def expected_order_value(self, summary: pd.DataFrame) -> pd.Series:
        """Expected value of each contact's future orders (population mean for x = 0)."""
        check_fitted(self, "params_")
        require_columns(summary, ("frequency", "monetary_value"), model="Gamma-Gamma")
        x = summary["frequency"].to_numpy(dtype=float)
        m = np.where(x > 0, summary["monetary_value"].to_numpy(dtype=float), 0.0)
        params = tuple(float(v) for v in self.params_[list(PARAMS)])
        values = expected_order_value(params, x, m)  # type: ignore[arg-type]
        return pd.Series(values, index=summary.index, name="expected_order_value")

    @property
    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors and 95% intervals."""
        check_fitted(self, "params_")
        return parameter_table(self.params_, self.standard_errors_)

    def to_lifetimes(self, summary: pd.DataFrame | None = None):
        """A fitted ``lifetimes.GammaGammaFitter`` with these parameters (data attached if given)."""
        from clvcast.models.lifetimes_adapter import gamma_gamma_fitter

        return gamma_gamma_fitter(self, summary)
