"""The one place that builds lifetimes objects from clvcast models.

lifetimes 0.11.3 (archived, last release 2020) keeps its training data on the fitter and
attaches lambdas in ``fit``, which forces dill to save it. clvcast models keep parameters
only; these functions produce equivalent fitted lifetimes objects on demand, for users who
want lifetimes' own methods and plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.generate_data import beta_geometric_nbd_model


def _attach_uncertainty(fitter, params: pd.Series, covariance: pd.DataFrame) -> None:
    fitter.params_ = params.copy()
    fitter.params_.name = None
    fitter.variance_matrix_ = covariance.copy()
    fitter.standard_errors_ = pd.Series(np.sqrt(np.diag(covariance.to_numpy())), index=params.index)
    fitter.confidence_intervals_ = pd.DataFrame(
        {
            "lower 95% bound": params - 1.96 * fitter.standard_errors_,
            "upper 95% bound": params + 1.96 * fitter.standard_errors_,
        },
        index=params.index,
    )


def beta_geo_fitter(model, summary: pd.DataFrame | None = None) -> BetaGeoFitter:
    """A fitted ``BetaGeoFitter`` equal to ``model`` (a fitted clvcast ``BetaGeoModel``)."""
    fitter = BetaGeoFitter(penalizer_coef=model.penalizer_used_)
    _attach_uncertainty(fitter, model.params_, model.covariance_)
    fitter._negative_log_likelihood_ = -model.log_likelihood_ / model.n_contacts_
    fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    if summary is not None:
        frame = pd.DataFrame(
            {
                "frequency": summary["frequency"].to_numpy(dtype=int),
                "recency": summary["recency"].to_numpy(dtype=float),
                "T": summary["T"].to_numpy(dtype=float),
                "weights": np.ones(len(summary), dtype=int),
            },
            index=summary.index,
        )
        fitter.data = frame
        r, alpha, a, b = (float(model.params_[k]) for k in ("r", "alpha", "a", "b"))
        ages = frame["T"].to_numpy()
        fitter.generate_new_data = lambda size=1: beta_geometric_nbd_model(
            ages, r, alpha, a, b, size=size
        )
    return fitter


def gamma_gamma_fitter(model, summary: pd.DataFrame | None = None) -> GammaGammaFitter:
    """A fitted ``GammaGammaFitter`` equal to ``model`` (a fitted clvcast ``GammaGammaModel``)."""
    fitter = GammaGammaFitter(penalizer_coef=model.penalizer_used_)
    _attach_uncertainty(fitter, model.params_, model.covariance_)
    fitter._negative_log_likelihood_ = -model.log_likelihood_ / model.n_repeat_buyers_
    if summary is not None:
        repeat = summary[summary["frequency"] > 0]
        fitter.data = pd.DataFrame(
            {
                "monetary_value": repeat["monetary_value"].to_numpy(dtype=float),
                "frequency": repeat["frequency"].to_numpy(dtype=int),
                "weights": np.ones(len(repeat), dtype=int),
            },
            index=repeat.index,
        )
    return fitter
