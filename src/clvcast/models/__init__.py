"""Probabilistic models: BG/NBD purchases, Gamma-Gamma order value, CLV, holdout evaluation.

Fitted on the customer summary of :mod:`clvcast.summary`, with time in days. The fitted
models keep parameters only; ``to_lifetimes()`` hands them to lifetimes' own classes.
"""

from clvcast.models.bgnbd import BetaGeoModel
from clvcast.models.evaluation import HoldoutEvaluation, evaluate_holdout, tracking_table
from clvcast.models.forecast import CLVForecaster, prediction_columns
from clvcast.models.gamma_gamma import GammaGammaModel
from clvcast.models.simulate import simulate_summary, simulate_transactions

__all__ = [
    "BetaGeoModel",
    "CLVForecaster",
    "GammaGammaModel",
    "HoldoutEvaluation",
    "evaluate_holdout",
    "prediction_columns",
    "simulate_summary",
    "simulate_transactions",
    "tracking_table",
]
