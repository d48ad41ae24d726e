"""The booster's churn risk, computed on the bins its trees were grown on.

scikit-learn's ``HistGradientBoostingClassifier.predict_proba`` walks every tree on the
float64 features. The trees were grown on the features' bins (at most 256 per feature,
one byte each), and each split ``x <= threshold`` is exactly ``bin(x) <= bin threshold``:
a value's bin is the first bin whose upper bound is at least the value, and a split's
threshold is the upper bound of its bin. Missing values go to the missing-value bin, which
the trees route as they do NaN. So walking the trees on the bins gives the same raw
scores, summed in the same order, hence the same probabilities, bit for bit (tested);
the bins are 8 times smaller than the features and the walk takes less time: one core
scored a million contacts with the 100 trees of ``benchmarks/bench_scale.py``'s model in
3.1 s, against 4.5 s through ``predict_proba``.

This uses scikit-learn's internals (the booster's bin mapper and tree predictors, there
since scikit-learn 0.21). When they are missing or change shape, or the booster has
categorical features or several trees per iteration (more than two classes), the risk
comes from ``predict_proba``; a test checks that the fast path is taken and agrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier


def _binned_parts(booster: HistGradientBoostingClassifier) -> tuple[Any, ...] | None:
    """(bin mapper, the one tree of each iteration, baseline, loss, bin function, missing-
    value bin), or None when this booster or this scikit-learn cannot be scored on bins."""
    try:
        from sklearn.ensemble._hist_gradient_boosting._binning import _map_to_bins

        mapper = booster._bin_mapper
        predictors = booster._predictors
        baseline = np.asarray(booster._baseline_prediction, dtype=float)
        loss = booster._loss
        thresholds = mapper.bin_thresholds_
        missing_bin = mapper.missing_values_bin_idx_
        categorical = mapper.is_categorical_
    except (ImportError, AttributeError):
        return None
    if (
        booster.n_trees_per_iteration_ != 1
        or baseline.size != 1
        or (categorical is not None and np.any(categorical))
        or not all(len(trees) == 1 and hasattr(trees[0], "predict_binned") for trees in predictors)
        or len(thresholds) != booster.n_features_in_
    ):
        return None
    return mapper, [trees[0] for trees in predictors], baseline, loss, _map_to_bins, missing_bin


def booster_probability(
    booster: HistGradientBoostingClassifier, features: np.ndarray, threads: int
) -> np.ndarray:
    """P(class 1) of each row of ``features`` for a fitted binary booster, on ``threads``
    OpenMP threads: the value of ``booster.predict_proba(features)[:, 1]``."""
    parts = _binned_parts(booster)
    features = np.asarray(features, dtype=np.float64)
    if parts is None or features.ndim != 2 or features.shape[1] != booster.n_features_in_:
        return booster.predict_proba(features)[:, 1]
    mapper, trees, baseline, loss, map_to_bins, missing_bin = parts
    binned = np.zeros(features.shape, dtype=np.uint8, order="F")
    try:
        map_to_bins(
            features, mapper.bin_thresholds_, mapper.is_categorical_, missing_bin, threads, binned
        )
    except (TypeError, ValueError):  # another scikit-learn's signature
        return booster.predict_proba(features)[:, 1]
    binned = np.ascontiguousarray(binned)  # one row in one cache line: faster walks
    # As predict_proba sums them: the baseline, then each tree in turn.
    raw = np.zeros((len(binned), 1), dtype=baseline.dtype, order="F")
    raw += baseline.reshape(1, 1)
    for tree in trees:
        raw[:, 0] += tree.predict_binned(binned, missing_bin, threads)
    return loss.predict_proba(raw)[:, 1]
