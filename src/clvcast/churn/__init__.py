"""Churn risk: which contacts, high-value ones above all, are drifting away, and when.

Snapshots at cutoffs before the as-of date give leak-free training rows
(:mod:`clvcast.churn.features`); a calibrated scikit-learn classifier turns them into a risk
of no purchase in the next ``horizon_days`` (:mod:`clvcast.churn.model`); a temporal
holdout compares it with BG/NBD and recency baselines (:mod:`clvcast.churn.evaluation`).
"""

from clvcast.churn.evaluation import ChurnEvaluation, concordance_index, evaluate_churn
from clvcast.churn.features import (
    FEATURE_COLUMNS,
    SnapshotContext,
    snapshot_context,
    snapshot_features,
)
from clvcast.churn.model import RISK_BANDS, ChurnModel, build_training_set, risk_band

__all__ = [
    "FEATURE_COLUMNS",
    "RISK_BANDS",
    "SnapshotContext",
    "ChurnEvaluation",
    "ChurnModel",
    "build_training_set",
    "concordance_index",
    "evaluate_churn",
    "risk_band",
    "snapshot_context",
    "snapshot_features",
]
