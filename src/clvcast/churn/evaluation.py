"""Temporal holdout evaluation of the churn classifier against two baselines.

The holdout cutoff is the last one whose horizon ends by the as-of date:
``cutoff = as_of - horizon_days``. A copy of the model is trained with ``as_of = cutoff``
(so it reads nothing after the cutoff), scores the contacts at the cutoff, and is compared
on the same rows with

- the BG/NBD model's own answer, P(no purchase in the horizon), from a BG/NBD fitted on the
  history up to the cutoff;
- recency alone (days since the last purchase);
- ``1 - P(alive)``, reported for completeness: BG/NBD gives every one-time buyer
  P(alive) = 1, so it ranks badly on its own.

Metrics: ROC-AUC, PR-AUC (average precision), Brier score and a calibration table, overall
and for high-value contacts (M score 4-5 at the cutoff). ``expected_drift_date`` is checked
with Harrell's concordance index against the actual days to the next purchase, censored at
the as-of date; contacts it calls drifting already should mostly buy nothing in the horizon
(their share is reported). The evaluation also says which scorer the model chose on its own
validation snapshot (one horizon before the cutoff) and why.

The evaluation's model and the model trained at ``as_of`` read mostly the same snapshots;
pass one :class:`~clvcast.churn.features.SnapshotSeries` to both (``snapshots``) and each
snapshot is computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from clvcast.churn.features import SnapshotSeries, days_to_next_purchase
from clvcast.churn.model import HIGH_VALUE_M_SCORES, ChurnModel
from clvcast.data import parse_as_of
from clvcast.summary import purchases_frame


@dataclass
class ChurnEvaluation:
    """The result of :func:`evaluate_churn`."""

    cutoff: pd.Timestamp
    as_of: pd.Timestamp
    horizon_days: int
    metrics: pd.DataFrame  # rows: (population, score); columns roc_auc, pr_auc, brier
    calibration: pd.DataFrame
    rows: pd.DataFrame  # per contact: label, every score, high_value, drift, next purchase
    drift_concordance: float
    drifting_now: int
    drifting_precision: float
    model: ChurnModel

    def auc(self, score: str = "classifier", population: str = "all") -> float:
        return float(self.metrics.loc[(population, score), "roc_auc"])

    @property
    def scorer(self) -> str:
        """The scorer the evaluated model chose (``bgnbd``, ``logistic`` or ``booster``)."""
        return self.model.scorer_

    def format(self) -> str:
        lines = [
            f"Churn evaluation: trained up to {self.cutoff.date()}, label = no purchase in "
            f"the {self.horizon_days} days to {self.as_of.date()}",
            f"  {'population':<12}{'score':<22}{'ROC-AUC':>9}{'PR-AUC':>9}{'Brier':>9}"
            f"{'contacts':>10}{'churn rate':>12}",
        ]
        for (population, score), row in self.metrics.iterrows():
            brier = "" if np.isnan(row["brier"]) else f"{row['brier']:.4f}"
            lines.append(
                f"  {population:<12}{score:<22}{row['roc_auc']:>9.4f}{row['pr_auc']:>9.4f}"
                f"{brier:>9}{int(row['contacts']):>10,}{row['churn_rate']:>12.3f}"
            )
        lines.append(f"  scorer chosen: {self.model.selection_reason_}")
        drifting = (
            f"{self.drifting_now:,} contacts drifting already at the cutoff, "
            f"{self.drifting_precision:.1%} of them bought nothing in the horizon"
            if self.drifting_now
            else "no contact was drifting already at the cutoff"
        )
        lines.append(
            f"  expected_drift_date: concordance of the expected with the actual days to the "
            f"next purchase {self.drift_concordance:.3f} (0.5 = random, censored at "
            f"{self.as_of.date()}); {drifting}"
        )
        return "\n".join(lines)


def concordance_index(
    event_times: np.ndarray, predicted_times: np.ndarray, observed: np.ndarray
) -> float:
    """Harrell's C: share of comparable pairs whose predicted order matches the observed one.

    A pair is comparable when the shorter time is an observed event; it is concordant when
    that contact also has the shorter predicted time (ties in prediction count one half; a
    NaN prediction is never longer nor equal).

    Contacts are walked from the longest time down, one group of equal times at a time,
    keeping the predictions of the longer-lived contacts sorted: each group's events count
    their concordant partners with two binary searches, so the work grows with the number
    of distinct times times the contacts (whole days: at most the horizon's length), not
    with events times contacts (100,000 contacts over 90 days: 0.06 s instead of 1.3 s).
    """
    times = np.asarray(event_times, dtype=float)
    predicted = np.asarray(predicted_times, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    order = np.argsort(times, kind="stable")
    times, predicted, observed = times[order], predicted[order], observed[order]
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])  # groups of equal times
    ends = np.r_[starts[1:], len(times)]
    later = np.empty(0)  # the sorted, non-NaN predictions of contacts with a longer time
    concordant = comparable = 0.0
    for first, last in zip(starts[::-1], ends[::-1], strict=True):
        group = predicted[first:last]
        events = group[observed[first:last]]
        longer = len(times) - last  # contacts with a longer time, NaN predictions included
        if events.size and longer:
            up_to = np.searchsorted(later, events, side="right")
            below = np.searchsorted(later, events, side="left")
            comparable += events.size * longer
            concordant += float(np.sum(later.size - up_to)) + 0.5 * float(np.sum(up_to - below))
        added = np.sort(group[~np.isnan(group)])
        later = np.insert(later, np.searchsorted(later, added), added)
    return concordant / comparable if comparable else float("nan")


def calibration_table(labels: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted risk vs observed churn rate in equal-count bins of risk."""
    frame = pd.DataFrame({"label": labels, "risk": risk})
    frame["bin"] = pd.qcut(frame["risk"].rank(method="first"), bins, labels=False)
    table = frame.groupby("bin").agg(
        contacts=("label", "size"), mean_risk=("risk", "mean"), churn_rate=("label", "mean")
    )
    return table


def _metrics(labels: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    result = {}
    for name, values in scores.items():
        usable = ~np.isnan(values)
        y, s = labels[usable], values[usable]
        probability = name in {"classifier", "bgnbd_no_purchase", "one_minus_p_alive"}
        result[name] = {
            "roc_auc": roc_auc_score(y, s) if len(np.unique(y)) == 2 else np.nan,
            "pr_auc": average_precision_score(y, s) if len(np.unique(y)) == 2 else np.nan,
            "brier": brier_score_loss(y, s) if probability else np.nan,
            "contacts": float(len(y)),
            "churn_rate": float(y.mean()),
        }
    return result


def evaluate_churn(
    purchases: pd.DataFrame,
    as_of: str | pd.Timestamp,
    model: ChurnModel | None = None,
    *,
    snapshots: SnapshotSeries | None = None,
) -> ChurnEvaluation:
    """Train a copy of ``model`` up to ``as_of - horizon`` and evaluate it on the last horizon.

    ``snapshots``: a :class:`SnapshotSeries` of ``purchases`` up to ``as_of`` with the same
    horizon, to share snapshots with a model trained at ``as_of``.
    """
    template = model if model is not None else ChurnModel()
    day = parse_as_of(as_of)
    if snapshots is None or snapshots.horizon_days != template.horizon_days:
        purchases = purchases_frame(purchases)
        snapshots = SnapshotSeries.up_to(purchases, day, template.horizon_days)
    log = snapshots.purchases
    cutoff = day - pd.Timedelta(days=template.horizon_days)
    fitted = clone(template).fit(log, cutoff, snapshots=snapshots)
    features, bgnbd = snapshots.features(cutoff)
    labels = snapshots.labels(cutoff).to_numpy()
    risk = fitted.predict_risk(features).to_numpy()
    scores = {
        "classifier": risk,
        "bgnbd_no_purchase": features["bgnbd_no_purchase"].to_numpy(),
        "recency": features["days_since_last_purchase"].to_numpy(),
        "one_minus_p_alive": 1.0 - features["p_alive"].to_numpy(),
    }
    high_value = features["m_score"].isin(HIGH_VALUE_M_SCORES).to_numpy()
    table = {}
    for population, mask in (("all", np.ones(len(labels), bool)), ("high value", high_value)):
        for name, values in _metrics(labels[mask], {k: v[mask] for k, v in scores.items()}).items():
            table[(population, name)] = values
    metrics = pd.DataFrame(table).T
    metrics.index.names = ["population", "score"]

    drift = fitted.drift_days(features, bgnbd, risk)
    next_days, observed = days_to_next_purchase(log, features.index, cutoff, day)
    # "Drifting already" (NaN) is the longest expected wait of all.
    concordance = concordance_index(next_days, np.nan_to_num(drift, nan=1e9), observed)
    drifting = np.isnan(drift)  # expected_drift_date = the cutoff itself
    drifting_precision = float(labels[drifting].mean()) if drifting.any() else float("nan")
    rows = pd.DataFrame(
        {
            "no_purchase": labels,
            **scores,
            "high_value": high_value,
            "drift_days": drift,
            "days_to_next_purchase": next_days,
            "next_purchase_observed": observed,
        },
        index=features.index,
    )
    return ChurnEvaluation(
        cutoff=cutoff,
        as_of=day,
        horizon_days=fitted.horizon_days,
        metrics=metrics,
        calibration=calibration_table(labels, risk),
        rows=rows,
        drift_concordance=concordance,
        drifting_now=int(drifting.sum()),
        drifting_precision=drifting_precision,
        model=fitted,
    )
