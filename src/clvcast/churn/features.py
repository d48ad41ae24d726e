"""Churn features and labels at a cutoff date, computed from purchases up to the cutoff only.

A *snapshot* at cutoff ``c`` has one row per contact who bought on or before ``c``. Every
feature is a function of the purchases dated ``<= c`` (the log is filtered first, so later
purchases cannot leak in; ``tests/test_churn.py`` checks it), and the label is
1 = no purchase in ``(c, c + horizon_days]``.

Features (all in days or the input currency):

- the summary: ``frequency``, ``recency``, ``T``, ``monetary_value``, ``orders``,
  ``total_spend``, ``days_since_last_purchase``, ``average_order_value``;
- RFM scores ``r_score``, ``f_score``, ``m_score`` from bins learned on the snapshot itself;
- inter-purchase time: ``mean_gap_days``, ``gap_std_days``, ``last_gap_days`` and
  ``overdue_ratio`` = days since the last purchase / the contact's own mean gap;
- activity and spend trends: purchases and spend in the last 90 days and the 90 before,
  purchases in the last 30 days, and their ratios;
- BG/NBD fitted on the snapshot: ``p_alive``, ``expected_purchases_horizon`` and
  ``bgnbd_no_purchase`` = P(no purchase in the next ``horizon_days``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from clvcast.cores import usable_cores
from clvcast.errors import ModelError
from clvcast.models.bgnbd import BetaGeoModel, probability_alive
from clvcast.rfm import RFMScorer
from clvcast.summary import summarize
from clvcast.text_ids import contact_codes, isin_ids, same_ids

WINDOW_DAYS = 90
SNAPSHOT_THREADS = min(2, usable_cores())  # snapshots computed at once (prefetch)
SHORT_WINDOW_DAYS = 30

FEATURE_COLUMNS = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "orders",
    "total_spend",
    "days_since_last_purchase",
    "average_order_value",
    "r_score",
    "f_score",
    "m_score",
    "mean_gap_days",
    "gap_std_days",
    "last_gap_days",
    "overdue_ratio",
    "purchases_last_30d",
    "purchases_last_90d",
    "purchases_prior_90d",
    "spend_last_90d",
    "spend_prior_90d",
    "activity_trend",
    "spend_trend",
    "p_alive",
    "expected_purchases_horizon",
    "bgnbd_no_purchase",
)


def probability_no_purchase(
    params: tuple[float, float, float, float],
    t: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """BG/NBD P(no purchase in (T, T + t] | x, t_x, T).

    A contact that has dropped out buys nothing; one still active buys at a rate whose
    posterior is Gamma(r + x, alpha + T), so it makes no purchase in ``t`` with probability
    ``((alpha + T) / (alpha + T + t)) ** (r + x)``.
    """
    r, alpha, _, _ = params
    alive = probability_alive(params, x, t_x, T)
    quiet = ((alpha + T) / (alpha + T + t)) ** (r + np.asarray(x, dtype=float))
    return 1.0 - alive + alive * quiet


def _history_statistics(log: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Gap statistics and recent-window activity per contact, in one vectorised pass.

    ``log`` has one row per contact and day. Rows are put in (contact, date) order, the gaps
    between consecutive purchase days of a contact are taken with one ``np.diff``, and every
    per-contact sum is a ``np.bincount`` over integer contact codes: no Python-level groupby,
    which matters at tens of millions of rows. The window sums run over the rows of their
    window alone (a tenth of a long history), not over every row weighted by 0 or 1.
    """
    codes, contacts = contact_codes(log["contact_id"])
    cutoff_day = np.datetime64(cutoff.date(), "D").astype(np.int64)
    days = log["date"].to_numpy().astype("datetime64[D]").view(np.int64) - cutoff_day  # <= 0
    amounts = log["amount"].to_numpy(dtype=float)
    code_steps, day_steps = np.diff(codes), np.diff(days)
    # A purchase log from read_transactions is already in (contact, date) order, and its
    # codes (numbered in order of appearance) then never decrease: skip the sort.
    in_order = bool(np.all(code_steps >= 0)) and bool(np.all((day_steps >= 0) | (code_steps > 0)))
    if not in_order:
        order = np.lexsort((days, codes))
        codes, days, amounts = codes[order], days[order], amounts[order]
        code_steps, day_steps = np.diff(codes), np.diff(days)
    n = len(contacts)
    same = code_steps == 0
    gaps = day_steps[same].astype(float)
    owners = codes[1:][same]
    count = np.bincount(owners, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(owners, gaps, minlength=n) / count
        square = np.bincount(owners, gaps**2, minlength=n) / count
        spread = np.sqrt(np.maximum(square - mean**2, 0.0))
    last_gap = np.full(n, np.nan)
    last_gap[owners] = gaps  # in date order, the last write per contact is its last gap
    age = -days
    recent = np.flatnonzero(age < WINDOW_DAYS)
    prior = np.flatnonzero((age >= WINDOW_DAYS) & (age < 2 * WINDOW_DAYS))
    last_30d = recent[age[recent] < SHORT_WINDOW_DAYS]

    def purchases_in(rows: np.ndarray) -> np.ndarray:
        return np.bincount(codes[rows], minlength=n).astype(float)

    def spend_in(rows: np.ndarray) -> np.ndarray:
        return np.bincount(codes[rows], amounts[rows], minlength=n)

    frame = pd.DataFrame(
        {
            "gap_std_days": np.where(count > 0, spread, np.nan),
            "last_gap_days": last_gap,
            "purchases_last_30d": purchases_in(last_30d),
            "purchases_last_90d": purchases_in(recent),
            "purchases_prior_90d": purchases_in(prior),
            "spend_last_90d": spend_in(recent),
            "spend_prior_90d": spend_in(prior),
        },
        index=pd.Index(contacts, name="contact_id"),
    )
    return frame


@dataclass
class SnapshotContext:
    """The parts of a snapshot fitted on its whole population, not per contact.

    ``scorer`` holds the RFM bins of the snapshot, ``bgnbd`` the BG/NBD model fitted on it
    (None when it cannot be fitted). A log processed in chunks fits them once on the summary
    of every contact (:func:`snapshot_context`) and passes them to each chunk, so the
    features equal those of the whole log at once.
    """

    scorer: RFMScorer
    bgnbd: BetaGeoModel | None


def snapshot_context(summary: pd.DataFrame) -> SnapshotContext:
    """Fit the population-level parts of a snapshot on its summary (warnings silenced:
    a snapshot is not the user's RFM or forecast, and its quirks are expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scorer = RFMScorer().fit(summary)
        try:
            bgnbd = BetaGeoModel().fit(summary, uncertainty=False)
        except ModelError:
            bgnbd = None
    return SnapshotContext(scorer=scorer, bgnbd=bgnbd)


def snapshot_features(
    purchases: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    horizon_days: float,
    context: SnapshotContext | None = None,
    summary: pd.DataFrame | None = None,
    one_row_per_day: bool = False,
) -> tuple[pd.DataFrame, BetaGeoModel | None]:
    """Features of every contact who bought on or before ``cutoff`` (index: contact_id).

    ``purchases`` is a purchase log (one row per contact-day); rows after ``cutoff`` are
    ignored. The RFM bins and the BG/NBD model of the snapshot are fitted on this log unless
    ``context`` gives them (a chunk of a larger log); ``summary`` may pass the summary of this
    log at ``cutoff`` when the caller has it already, and ``one_row_per_day`` says the log
    has one row per contact and day (as ingestion makes it), so the summary does not group
    the days again (see :func:`~clvcast.summary.summarize`). Returns the features and the BG/NBD
    model used (None if it could not be fitted; its three features are then missing, which
    the classifier tolerates).
    """
    log = purchases.loc[purchases["date"] <= cutoff, ["contact_id", "date", "amount"]]
    if summary is None:
        summary = summarize(log, cutoff, one_row_per_day=one_row_per_day)
    features = summary.copy()
    features["average_order_value"] = summary["total_spend"] / summary["orders"]
    context = context or snapshot_context(summary)
    scores = context.scorer.transform(summary)
    features[["r_score", "f_score", "m_score"]] = scores[["r_score", "f_score", "m_score"]]
    repeat = summary["frequency"] > 0
    features["mean_gap_days"] = np.where(
        repeat, summary["recency"] / summary["frequency"].where(repeat, 1), np.nan
    )
    history = _history_statistics(log, cutoff)
    if same_ids(features.index, history.index):  # a sorted log: the same contacts in order
        for column in history.columns:
            features[column] = history[column].to_numpy()
    else:
        features = features.join(history)
    features["overdue_ratio"] = summary["days_since_last_purchase"] / features["mean_gap_days"]
    features["activity_trend"] = (features["purchases_last_90d"] + 1) / (
        features["purchases_prior_90d"] + 1
    )
    features["spend_trend"] = (features["spend_last_90d"] + 1) / (features["spend_prior_90d"] + 1)

    model = context.bgnbd
    if model is not None:
        params = model.params_tuple()
        x = summary["frequency"].to_numpy(dtype=float)
        t_x = summary["recency"].to_numpy(dtype=float)
        T = summary["T"].to_numpy(dtype=float)
        horizon = model.to_model_time(horizon_days)
        features["p_alive"] = probability_alive(params, x, t_x, T)
        features["expected_purchases_horizon"] = model.expected_purchases(horizon_days, summary)
        features["bgnbd_no_purchase"] = probability_no_purchase(params, horizon, x, t_x, T)
    else:
        for column in ("p_alive", "expected_purchases_horizon", "bgnbd_no_purchase"):
            features[column] = np.nan
    return features[list(FEATURE_COLUMNS)].astype(float), model


def days_to_no_purchase_median(
    params: tuple[float, float, float, float] | None,
    risk: np.ndarray,
    horizon: float,
    x: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """Median time to the next purchase implied by a churn risk (model time unit; inf if never).

    ``risk`` is P(no purchase in the next ``horizon``) from whichever scorer the churn model
    chose. The time profile comes from BG/NBD: a contact still active stays silent for ``h``
    with probability ``q(h) = ((alpha + T) / (alpha + T + h)) ** (r + x)``. The curve through
    the risk is ``P(h) = 1 - A + A q(h)`` with ``A = (1 - risk) / (1 - q(horizon))``, a
    P(alive) adjusted so that ``P(horizon) = risk``; when that ``A`` would exceed 1 (the
    scorer expects a purchase sooner than BG/NBD's rate), the curve is ``q(h) ** k`` with
    ``k = log(risk) / log(q(horizon))``. Both give ``P(horizon) = risk`` exactly, so the
    median is within the horizon if and only if the risk is below 0.5, and it is infinite
    ("drifting already") only when ``A <= 0.5``, which needs a risk above 0.5. Without BG/NBD
    (``params`` None) the profile is exponential: ``P(h) = risk ** (h / horizon)``.
    """
    risk = np.clip(np.asarray(risk, dtype=float), 1e-9, 1 - 1e-9)
    if params is None:
        return horizon * np.log(0.5) / np.log(risk)
    r, alpha, _, _ = params
    x = np.asarray(x, dtype=float)
    base = alpha + np.asarray(T, dtype=float)
    shape = r + x
    quiet_horizon = (base / (base + horizon)) ** shape
    alive = (1.0 - risk) / (1.0 - quiet_horizon)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # A <= 1: q(h) = 1 - 0.5 / A; A > 1: q(h) = 0.5 ** (1 / k).
        target = np.where(
            alive <= 1.0,
            1.0 - 0.5 / alive,
            0.5 ** (np.log(quiet_horizon) / np.log(risk)),
        )
        days = base * (target ** (-1.0 / shape) - 1.0)
    return np.where(target > 0, days, np.inf)


def no_purchase_labels(
    purchases: pd.DataFrame, contacts: pd.Index, cutoff: pd.Timestamp, horizon_days: float
) -> pd.Series:
    """1 for each contact with no purchase in (cutoff, cutoff + horizon_days], else 0."""
    end = cutoff + pd.Timedelta(days=horizon_days)
    window = purchases[(purchases["date"] > cutoff) & (purchases["date"] <= end)]
    bought = isin_ids(contacts, window["contact_id"].unique())
    return pd.Series((~bought).astype(int), index=contacts, name="no_purchase")


class SnapshotSeries:
    """Snapshot features and labels of one purchase log, computed once per cutoff.

    Training a churn model reads a dozen snapshots, choosing its scorer a dozen more, and an
    evaluation repeats both one horizon earlier: most cutoffs recur. This keeps each
    snapshot (features, labels, BG/NBD model) once. A snapshot at ``c`` reads the purchases up
    to ``c`` for its features and those in ``(c, c + horizon_days]`` for its labels; callers
    ask only for cutoffs whose label window ends by their own as-of date.

    The candidates trained on these snapshots are kept too (:meth:`trained`): an evaluation
    trains one horizon before the as-of date, so its final training set is the validation
    training set of the model fitted at the as-of date, and the same settings on the same
    rows train the same estimator. ``one_row_per_day`` says ``purchases`` has one row per
    contact and day, as ingestion makes it (see :func:`snapshot_features`).
    """

    def __init__(
        self, purchases: pd.DataFrame, horizon_days: int, *, one_row_per_day: bool = False
    ) -> None:
        self.purchases = purchases
        self.horizon_days = horizon_days
        self.one_row_per_day = one_row_per_day
        self._snapshots: dict[pd.Timestamp, tuple[pd.DataFrame, pd.Series, object]] = {}
        self._trained: dict[Hashable, object] = {}

    @classmethod
    def up_to(
        cls,
        purchases: pd.DataFrame,
        as_of: pd.Timestamp,
        horizon_days: int,
        *,
        one_row_per_day: bool = False,
    ) -> SnapshotSeries:
        """The snapshots of ``purchases`` up to ``as_of`` (later rows dropped first)."""
        return cls(
            purchases.loc[purchases["date"] <= as_of], horizon_days, one_row_per_day=one_row_per_day
        )

    def trained(self, key: Hashable, train: Callable[[], object]) -> object:
        """The estimator ``train()`` returns, trained once per ``key`` (which must name the
        candidate, its settings and its training cutoffs)."""
        if key not in self._trained:
            self._trained[key] = train()
        return self._trained[key]

    def prefetch(self, cutoffs: Iterable[pd.Timestamp]) -> None:
        """Compute the snapshots of ``cutoffs`` not kept yet, :data:`SNAPSHOT_THREADS` at
        a time on threads. A snapshot is mostly DuckDB, numpy and pandas work that releases
        the GIL: twelve snapshots of the same 100,000 contacts took 6.2 s on two threads
        against 9.0 s one after the other (two runs each, 2 cores).

        Warnings are caught around the threads, so the silencing inside each snapshot
        (:func:`snapshot_context`) can only change a copy of the caller's filters."""
        missing = [cutoff for cutoff in dict.fromkeys(cutoffs) if cutoff not in self._snapshots]
        threads = min(SNAPSHOT_THREADS, len(missing))
        if threads <= 1:
            for cutoff in missing:
                self._get(cutoff)
            return
        with (
            warnings.catch_warnings(),
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clvcast-snapshot") as pool,
        ):
            for cutoff, snapshot in zip(missing, pool.map(self._snapshot, missing), strict=True):
                self._snapshots[cutoff] = snapshot

    def features(self, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, BetaGeoModel | None]:
        """Features of the snapshot at ``cutoff`` and its BG/NBD model."""
        features, _, model = self._get(cutoff)
        return features, model

    def labels(self, cutoff: pd.Timestamp) -> pd.Series:
        """1 = no purchase in ``(cutoff, cutoff + horizon_days]``, per contact of the snapshot."""
        return self._get(cutoff)[1]

    def _get(self, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series, object]:
        if cutoff not in self._snapshots:
            self._snapshots[cutoff] = self._snapshot(cutoff)
        return self._snapshots[cutoff]

    def _snapshot(self, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series, object]:
        """(features, labels, BG/NBD model) of the snapshot at ``cutoff``, computed."""
        features, model = snapshot_features(
            self.purchases,
            cutoff,
            horizon_days=self.horizon_days,
            one_row_per_day=self.one_row_per_day,
        )
        labels = no_purchase_labels(self.purchases, features.index, cutoff, self.horizon_days)
        return features, labels, model


def days_to_next_purchase(
    purchases: pd.DataFrame, contacts: pd.Index, cutoff: pd.Timestamp, end: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray]:
    """Days from ``cutoff`` to each contact's next purchase, censored at ``end``.

    Returns (days, observed): ``observed`` is False where no purchase came by ``end`` and
    ``days`` is then the censoring time ``end - cutoff``.
    """
    later = purchases[(purchases["date"] > cutoff) & (purchases["date"] <= end)]
    first = later.groupby("contact_id")["date"].min()
    first = first.reindex(contacts)
    observed = first.notna().to_numpy()
    days = np.where(
        observed, (first - cutoff).dt.days.to_numpy(dtype=float), float((end - cutoff).days)
    )
    return days, observed
