"""Churn: no leakage, better than both baselines on CDNOW and on drifting customers, dates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from clvcast.churn import (
    FEATURE_COLUMNS,
    ChurnModel,
    build_training_set,
    concordance_index,
    evaluate_churn,
    risk_band,
    snapshot_features,
)
from clvcast.churn.booster import _binned_parts, booster_probability
from clvcast.churn.features import (
    SnapshotSeries,
    _history_statistics,
    days_to_next_purchase,
    days_to_no_purchase_median,
    no_purchase_labels,
    probability_no_purchase,
)
from clvcast.churn.model import (
    THREADS_MIN_ROWS,
    booster_threads,
    compare_scorers,
    training_cutoffs,
)
from clvcast.churn.simulate import simulate_fading_transactions
from clvcast.data import read_transactions
from clvcast.errors import InputError, ModelError
from clvcast.models import BetaGeoModel
from clvcast.models.simulate import simulate_transactions
from clvcast.pipeline import build_contact_table
from clvcast.summary import summarize

BASELINES = ("bgnbd_no_purchase", "recency")


@pytest.fixture(scope="module")
def cdnow_evaluation(cdnow_log):
    return evaluate_churn(cdnow_log.purchases, "1998-03-31")


@pytest.fixture(scope="module")
def cdnow_part(cdnow_log):
    """The purchases of the first 6,000 CDNOW customers: for properties (reproducible, no
    look-ahead, thread-independent) that do not need every customer, at a quarter of the
    cost."""
    purchases = cdnow_log.purchases
    return purchases[purchases["contact_id"] <= "06000"].reset_index(drop=True)


@pytest.fixture(scope="module")
def drifting_log():
    transactions, truth = simulate_fading_transactions(10_000, seed=1)
    return read_transactions(transactions).purchases, truth


def test_features_at_a_cutoff_ignore_later_purchases(cdnow_log):
    cutoff = pd.Timestamp("1997-09-30")
    purchases = cdnow_log.purchases
    before = purchases[purchases["date"] <= cutoff]
    # Add invented purchases after the cutoff for existing and new contacts.
    extra = pd.DataFrame(
        {
            "contact_id": ["00001", "00003", "brand-new"],
            "date": pd.to_datetime(["1997-10-01", "1998-01-15", "1997-10-02"]),
            "amount": [999.0, 5.0, 20.0],
        }
    )
    with_extra = pd.concat([purchases, extra], ignore_index=True)
    full, _ = snapshot_features(purchases, cutoff, horizon_days=90)
    cut, _ = snapshot_features(before, cutoff, horizon_days=90)
    more, _ = snapshot_features(with_extra, cutoff, horizon_days=90)
    pd.testing.assert_frame_equal(full, cut)
    pd.testing.assert_frame_equal(full, more)
    assert list(full.columns) == list(FEATURE_COLUMNS)


def test_training_rows_end_by_the_as_of_date(cdnow_log):
    as_of = pd.Timestamp("1997-12-31")
    cutoffs = training_cutoffs(as_of, horizon_days=90, n_cutoffs=4, spacing_days=30)
    assert cutoffs[0] == as_of - pd.Timedelta(days=90)
    assert all(c + pd.Timedelta(days=90) <= as_of for c in cutoffs)
    purchases = cdnow_log.purchases
    visible = purchases[purchases["date"] <= as_of]
    features, labels = build_training_set(visible, cutoffs, horizon_days=90)
    features_all, labels_all = build_training_set(purchases, cutoffs, horizon_days=90)
    pd.testing.assert_frame_equal(features, features_all)
    pd.testing.assert_series_equal(labels, labels_all)  # labels never look past as_of
    assert set(features["cutoff"]) == set(cutoffs)


def test_model_trained_up_to_a_date_ignores_later_data(cdnow_part):
    purchases = cdnow_part
    as_of = pd.Timestamp("1997-12-31")
    small = ChurnModel(n_cutoffs=3)
    a = small.fit(purchases, as_of)
    b = ChurnModel(n_cutoffs=3).fit(purchases[purchases["date"] <= as_of], as_of)
    features, _ = snapshot_features(purchases, as_of, horizon_days=90)
    np.testing.assert_allclose(a.predict_risk(features), b.predict_risk(features))


def test_labels_and_next_purchase_times():
    log = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "c"],
            "date": pd.to_datetime(["2024-01-01", "2024-02-15", "2024-01-01", "2024-01-10"]),
            "amount": 1.0,
        }
    )
    contacts = pd.Index(["a", "b", "c"])
    cutoff = pd.Timestamp("2024-01-31")
    labels = no_purchase_labels(log, contacts, cutoff, 30)
    assert labels.tolist() == [0, 1, 1]
    days, observed = days_to_next_purchase(log, contacts, cutoff, pd.Timestamp("2024-03-31"))
    assert days.tolist() == [15.0, 60.0, 60.0] and observed.tolist() == [True, False, False]


def test_classifier_beats_both_baselines_on_cdnow(cdnow_evaluation):
    e = cdnow_evaluation
    assert e.cutoff == pd.Timestamp("1998-01-01") - pd.Timedelta(days=1)
    for population in ("all", "high value"):
        ours = e.auc("classifier", population)
        for baseline in BASELINES:
            assert ours > e.auc(baseline, population), (population, baseline)
    # The strong baselines are as published for this setting: about 0.80 and 0.79.
    assert e.auc("bgnbd_no_purchase") == pytest.approx(0.79, abs=0.015)
    assert e.auc("recency") == pytest.approx(0.79, abs=0.015)
    # 1 - P(alive) ranks badly: every one-time buyer has P(alive) = 1.
    assert e.auc("one_minus_p_alive") < 0.4


def test_classifier_is_calibrated_on_the_holdout(cdnow_evaluation):
    table = cdnow_evaluation.calibration
    assert table["contacts"].sum() == len(cdnow_evaluation.rows)
    gap = (table["mean_risk"] - table["churn_rate"]).abs()
    assert gap.max() < 0.15
    # CDNOW is one ageing cohort: its churn rate keeps rising, so a model calibrated on the
    # latest labelled snapshot (before the holdout) under-predicts the holdout a little.
    mean_gap = table["churn_rate"].mean() - cdnow_evaluation.rows["classifier"].mean()
    assert 0 <= mean_gap < 0.06
    brier = cdnow_evaluation.metrics.loc[("all", "classifier"), "brier"]
    assert brier < 0.12


def test_drift_dates_order_next_purchases(cdnow_evaluation):
    assert cdnow_evaluation.drift_concordance > 0.65
    assert cdnow_evaluation.drifting_precision > 0.85


def test_classifier_beats_baselines_on_customers_who_fade(drifting_log):
    purchases, _ = drifting_log
    e = evaluate_churn(purchases, "2024-06-30")
    for population in ("all", "high value"):
        for baseline in BASELINES:
            assert e.auc("classifier", population) > e.auc(baseline, population) + 0.002
    assert e.drift_concordance > 0.7


def test_contacts_that_dropped_out_get_high_risk(drifting_log):
    purchases, truth = drifting_log
    as_of = pd.Timestamp("2024-06-30")
    scored = ChurnModel().fit(purchases, as_of).score(purchases, as_of)
    gone = truth.loc[scored.index, "dropout_date"] < as_of - pd.Timedelta(days=180)
    assert scored.loc[gone, "churn_risk"].mean() > scored.loc[~gone, "churn_risk"].mean() + 0.3


def test_probability_no_purchase_and_median_agree():
    # With BG/NBD's own risk, the curve through it is BG/NBD's: its median is BG/NBD's.
    params = (0.3, 40.0, 0.8, 2.5)
    x, t_x, T = np.array([3.0, 0.0]), np.array([80.0, 0.0]), np.array([100.0, 100.0])
    risk = probability_no_purchase(params, 90.0, x, t_x, T)
    median = days_to_no_purchase_median(params, risk, 90.0, x, T)
    assert np.isfinite(median[0])
    at_median = probability_no_purchase(params, median[0], x[:1], t_x[:1], T[:1])
    assert at_median[0] == pytest.approx(0.5)
    horizons = [10.0, 30.0, 90.0, 365.0]
    values = [probability_no_purchase(params, h, x, t_x, T)[0] for h in horizons]
    assert np.all(np.diff(values) < 0)  # more time, less chance of staying silent


def test_bgnbd_no_purchase_matches_lifetimes_for_a_new_contact(cdnow_log):
    # For a contact who made its first purchase just now (x = 0, T = 0) the conditional
    # probability equals lifetimes' unconditional P(X(t) = 0).
    model = BetaGeoModel().fit(summarize(cdnow_log.purchases, "1998-06-30"))
    bgf = model.to_lifetimes()
    zero = np.zeros(1)
    for t in (30.0, 90.0, 365.0):
        ours = probability_no_purchase(model.params_tuple(), t, zero, zero, zero)[0]
        theirs = float(np.asarray(bgf.probability_of_n_purchases_up_to_time(t, 0)).ravel()[0])
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_risk_bands():
    assert risk_band([0.1, 0.5, 0.79, 0.8, 0.95]).tolist() == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_concordance_index_small_cases():
    times = np.array([1.0, 2.0, 3.0, 4.0])
    observed = np.array([True, True, True, False])
    assert concordance_index(times, times, observed) == 1.0
    assert concordance_index(times, -times, observed) == 0.0
    assert concordance_index(times, np.ones(4), observed) == 0.5


def test_concordance_index_equals_the_count_over_every_pair():
    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(2, 40))
        # Whole days with ties, or distinct times; predictions with ties, NaN and inf.
        times = rng.integers(1, 6, n).astype(float) if trial % 2 else rng.random(n)
        predicted = rng.integers(0, 4, n).astype(float)
        predicted[rng.random(n) < 0.1] = np.nan
        predicted[rng.random(n) < 0.1] = np.inf
        observed = rng.random(n) < 0.6
        concordant = comparable = 0.0
        for i in range(n):
            for j in range(n):
                if observed[i] and times[j] > times[i]:
                    comparable += 1
                    if predicted[j] > predicted[i]:
                        concordant += 1
                    elif predicted[j] == predicted[i]:
                        concordant += 0.5
        expected = concordant / comparable if comparable else np.nan
        np.testing.assert_equal(concordance_index(times, predicted, observed), expected)


def test_contact_table_with_churn_columns(cdnow_log):
    model = ChurnModel(n_cutoffs=3)
    result = build_contact_table(cdnow_log, "1998-06-30", churn_model=model)
    table = result.table.set_index("contact_id")
    assert table.columns[-5:].tolist() == [
        "high_value",
        "churn_risk",
        "churn_risk_band",
        "r_drop_date",
        "expected_drift_date",
    ]
    assert table["churn_risk"].between(0, 1).all()
    assert (table["expected_drift_date"] >= pd.Timestamp("1998-06-30")).all()
    r5 = table["r_score"] == 5
    edge = result.scorer.bins_["recency"].edges[0]
    expected = table.loc[r5, "last_purchase"] + pd.to_timedelta(edge, unit="D")
    pd.testing.assert_series_equal(table.loc[r5, "r_drop_date"], expected, check_names=False)
    assert table.loc[table["r_score"] == 1, "r_drop_date"].isna().all()
    assert (table["high_value"] == table["m_score"].isin([4, 5])).all()


def test_bad_settings_and_short_history(cdnow_log):
    with pytest.raises(InputError, match="horizon_days=0"):
        ChurnModel(horizon_days=0).fit(cdnow_log.purchases, "1998-06-30")
    with pytest.raises(InputError, match="scorers=\\('forest',\\)"):
        ChurnModel(scorers=("forest",)).fit(cdnow_log.purchases, "1998-06-30")
    with pytest.raises(InputError, match="n_threads=0"):
        ChurnModel(n_threads=0).fit(cdnow_log.purchases, "1998-06-30")
    with pytest.raises(InputError, match="history is too short"):
        ChurnModel().fit(cdnow_log.purchases, "1997-03-01")
    tiny = cdnow_log.purchases[cdnow_log.purchases["contact_id"] <= "00030"]
    with pytest.raises(ModelError, match="need at least 200 rows"):
        ChurnModel(n_cutoffs=1).fit(tiny, "1998-06-30")


def test_scoring_is_reproducible(cdnow_part):
    purchases = cdnow_part
    a = ChurnModel(n_cutoffs=3).fit(purchases, "1998-06-30").score(purchases, "1998-06-30")
    b = ChurnModel(n_cutoffs=3).fit(purchases, "1998-06-30").score(purchases, "1998-06-30")
    pd.testing.assert_frame_equal(a, b)
    summary = summarize(purchases, "1998-06-30")
    assert a.index.equals(summary.index)


def test_model_does_not_depend_on_the_thread_count(cdnow_part, monkeypatch):
    purchases = cdnow_part
    scores = []
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        # Few boosting rounds: two OpenMP threads crawl when the other core is busy.
        model = ChurnModel(n_cutoffs=3, max_iter=20).fit(purchases, "1998-06-30")
        scores.append(model.score(purchases, "1998-06-30"))
    pd.testing.assert_frame_equal(scores[0], scores[1], check_exact=True)


# --- the scorer choice ----------------------------------------------------------------


def test_on_data_from_a_btyd_model_the_choice_keeps_bgnbd():
    # Purchases drawn from BG/NBD itself: nothing can rank better than BG/NBD's own answer,
    # so no challenger may prove a sure gain on the validation snapshot.
    transactions = simulate_transactions(
        6_000, (0.25, 40.0, 0.8, 2.5), (6.0, 4.0, 15.0), start="2022-01-01", end="2024-06-30"
    )
    purchases = read_transactions(transactions).purchases
    model = ChurnModel().fit(purchases, "2024-03-31")
    assert model.scorer_ == "bgnbd", model.selection_reason_
    assert model.estimator_ is None
    assert model.selection_reason_.startswith("bgnbd kept")
    table = model.selection_
    assert set(table.index) == {"bgnbd", "logistic", "booster"}
    assert not table.loc[["logistic", "booster"], "passes"].any()
    features, _ = snapshot_features(purchases, pd.Timestamp("2024-03-31"), horizon_days=90)
    np.testing.assert_array_equal(
        model.predict_risk(features).to_numpy(), features["bgnbd_no_purchase"].to_numpy()
    )


def test_when_customers_fade_a_challenger_wins_and_says_by_how_much(drifting_log):
    purchases, _ = drifting_log
    model = ChurnModel().fit(purchases, "2024-06-30")
    assert model.scorer_ in {"logistic", "booster"}
    winner = model.selection_.loc[model.scorer_]
    assert winner["passes"]
    assert winner["log_loss"] < model.selection_.loc["bgnbd", "log_loss"]
    assert model.validation_cutoff_ == pd.Timestamp("2024-06-30") - pd.Timedelta(days=90)
    assert f"{winner['log_loss']:.4f}" in model.selection_reason_


def test_choice_needs_a_sure_gain_in_log_loss_and_ranking():
    rng = np.random.default_rng(0)
    n = 4_000
    truth = rng.uniform(0.05, 0.95, n)
    labels = (rng.uniform(size=n) < truth).astype(int)
    high_value = rng.uniform(size=n) < 0.4
    noisy = np.clip(truth + rng.normal(0, 0.25, n), 0.01, 0.99)
    from clvcast.churn.model import ChurnModel as Model
    from clvcast.churn.model import _Validation

    better = _Validation(labels, high_value, {"bgnbd": noisy, "booster": truth})
    table = compare_scorers(better)
    assert table.loc["booster", "passes"]
    assert Model._decide(table)[0] == "booster"
    # A challenger that only rescales the baseline ranks the same: no sure AUC gain.
    rescaled = _Validation(labels, high_value, {"bgnbd": noisy, "logistic": noisy**1.3})
    table = compare_scorers(rescaled)
    assert not table.loc["logistic", "passes"]
    assert Model._decide(table)[0] == "bgnbd"
    # Worse on every count: kept out.
    worse = _Validation(labels, high_value, {"bgnbd": truth, "booster": noisy})
    assert Model._decide(compare_scorers(worse))[0] == "bgnbd"


def test_bootstrap_auc_equals_the_auc_of_the_resampled_rows():
    # The bootstrap counts draws instead of copying rows; with tied scores, NaN and one-class
    # resamples it must give what ranking the resampled rows gives, and what sklearn gives.
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    from clvcast.churn.model import _auc, _BootstrapAuc, _resamples

    def by_ranks(y, s):
        positives = int(y.sum())
        ranks = rankdata(s)
        return (ranks[y == 1].sum() - positives * (positives + 1) / 2) / (
            positives * (len(y) - positives)
        )

    rng = np.random.default_rng(3)
    n = 2_000
    labels = (rng.uniform(size=n) < 0.3).astype(int)
    scores = np.round(rng.uniform(size=n) + 0.4 * labels, 1)  # few distinct values: many ties
    auc = _BootstrapAuc(labels, scores)
    draws = np.random.default_rng(7)
    for counts in _resamples(n, 20, 7):
        rows = draws.integers(0, n, n)
        assert np.array_equal(np.bincount(rows, minlength=n), counts)
        assert auc(counts) == pytest.approx(by_ranks(labels[rows], scores[rows]), abs=1e-12)
        assert _auc(labels[rows], scores[rows]) == pytest.approx(auc(counts), abs=1e-12)
        assert auc(counts) == pytest.approx(roc_auc_score(labels[rows], scores[rows]), abs=1e-12)
    assert auc(np.ones(n, dtype=int)) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    only_negatives = np.where(labels == 0, 1, 0)
    assert np.isnan(auc(only_negatives))
    assert np.isnan(_BootstrapAuc(labels, np.where(labels == 1, np.nan, scores))(counts))


def test_short_history_keeps_bgnbd_and_says_why(cdnow_log):
    # CDNOW starts on 1997-01-01. Trained at 1997-06-15, the training snapshots (from
    # 1997-02-17) exist, but the validation models would need snapshots before 1996-12-18.
    model = ChurnModel(n_cutoffs=3).fit(cdnow_log.purchases, "1997-06-15")
    assert model.validation_cutoff_ is None and model.selection_.empty
    assert model.scorer_ == "bgnbd"
    assert "too short" in model.selection_reason_


def test_shared_snapshots_give_the_same_model(cdnow_part, monkeypatch):
    purchases = cdnow_part
    day = pd.Timestamp("1998-03-31")
    trainings = []
    train = ChurnModel._train

    def counted(self, name, features, labels):
        trainings.append(name)
        return train(self, name, features, labels)

    monkeypatch.setattr(ChurnModel, "_train", counted)
    # The CDNOW log is ingested: one row per contact and day, so its snapshots need not
    # group the days again.
    series = SnapshotSeries(purchases[purchases["date"] <= day], 90, one_row_per_day=True)
    evaluation = evaluate_churn(purchases, day, ChurnModel(n_cutoffs=4), snapshots=series)
    shared = ChurnModel(n_cutoffs=4).fit(purchases, day, snapshots=series)
    shared_trainings = len(trainings)
    alone_evaluation = evaluate_churn(purchases, day, ChurnModel(n_cutoffs=4))
    alone = ChurnModel(n_cutoffs=4).fit(purchases, day)
    # The evaluation's final candidates are the fitted model's validation candidates: with
    # shared snapshots they are trained once, not twice.
    assert shared_trainings < len(trainings) - shared_trainings
    assert shared.scorer_ == alone.scorer_
    pd.testing.assert_frame_equal(shared.selection_, alone.selection_)
    features, _ = series.features(pd.Timestamp("1998-01-01"))
    np.testing.assert_array_equal(shared.predict_risk(features), alone.predict_risk(features))
    pd.testing.assert_frame_equal(evaluation.metrics, alone_evaluation.metrics)
    assert evaluation.scorer in {"bgnbd", "logistic", "booster"}
    grouped = SnapshotSeries(purchases[purchases["date"] <= day], 90)
    pd.testing.assert_frame_equal(grouped.features(day)[0], series.features(day)[0])


# --- drift dates agree with the risk ---------------------------------------------------


def _assert_drift_agrees_with_risk(scored: pd.DataFrame, as_of: str, horizon_days: int) -> None:
    day = pd.Timestamp(as_of)
    drifting = scored["expected_drift_date"] == day
    low = scored["churn_risk"] < 0.5
    # "Drifting already" never goes with a low risk, and a low risk always expects the
    # next purchase within the horizon.
    assert not (drifting & low).any()
    assert (scored.loc[drifting, "churn_risk_band"] != "low").all()
    within = scored["expected_drift_date"] <= day + pd.Timedelta(days=horizon_days)
    assert (within == (low | drifting)).all()
    assert (scored["expected_drift_date"] >= day).all()
    # Higher risk, later expected purchase (among contacts not drifting yet).
    waiting = scored.loc[~drifting & low]
    assert waiting["churn_risk"].corr(waiting["expected_drift_date"].astype("int64")) > 0.5


@pytest.mark.parametrize("scorers", [("bgnbd",), ("logistic",), ("booster",)])
def test_drift_dates_agree_with_risk_on_cdnow(cdnow_log, scorers):
    purchases = cdnow_log.purchases
    model = ChurnModel(scorers=scorers, n_cutoffs=4).fit(purchases, "1998-06-30")
    assert model.scorer_ == scorers[0]
    _assert_drift_agrees_with_risk(model.score(purchases, "1998-06-30"), "1998-06-30", 90)


def test_drift_dates_agree_with_risk_on_fading_customers(drifting_log):
    purchases, _ = drifting_log
    scored = ChurnModel(horizon_days=60).fit(purchases, "2024-06-30").score(purchases, "2024-06-30")
    _assert_drift_agrees_with_risk(scored, "2024-06-30", 60)


def test_median_from_risk_passes_through_the_risk():
    params = (0.3, 40.0, 0.8, 2.5)
    x, T = np.array([0.0, 3.0, 3.0, 10.0]), np.array([100.0, 100.0, 300.0, 50.0])
    risk = np.array([0.2, 0.45, 0.7, 0.95])
    median = days_to_no_purchase_median(params, risk, 90.0, x, T)
    assert (median[risk < 0.5] < 90).all() and (median[risk >= 0.5] >= 90).all()
    # Without BG/NBD the profile is exponential: risk 0.25 at 90 days is 0.5 at 45 days.
    assert days_to_no_purchase_median(None, np.array([0.25]), 90.0, x[:1], T[:1])[0] == (
        pytest.approx(45.0)
    )


def test_booster_threads_follow_size_setting_and_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert booster_threads(THREADS_MIN_ROWS - 1) == 1
    assert booster_threads(THREADS_MIN_ROWS) >= 1
    assert booster_threads(10, n_threads=3) == 3
    from clvcast.churn.model import usable_cores

    assert booster_threads(THREADS_MIN_ROWS - 1, min_rows=THREADS_MIN_ROWS // 4) == usable_cores()
    assert booster_threads(THREADS_MIN_ROWS // 4 - 1, min_rows=THREADS_MIN_ROWS // 4) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert booster_threads(10, n_threads=3) == 2


def test_snapshots_computed_on_threads_equal_those_computed_one_at_a_time(cdnow_part):
    purchases = cdnow_part
    cutoffs = [pd.Timestamp("1997-10-01") + pd.Timedelta(days=14 * k) for k in range(5)]
    on_threads = SnapshotSeries(purchases, 90, one_row_per_day=True)
    one_by_one = SnapshotSeries(purchases, 90, one_row_per_day=True)
    filters = list(warnings.filters)
    on_threads.prefetch([*cutoffs, cutoffs[0]])  # a repeated cutoff is computed once
    # Each snapshot silences warnings inside; the caller's filters are as they were.
    assert warnings.filters == filters
    assert set(on_threads._snapshots) == set(cutoffs)
    for cutoff in cutoffs:
        features, model = on_threads.features(cutoff)
        expected, expected_model = one_by_one.features(cutoff)
        pd.testing.assert_frame_equal(features, expected)
        pd.testing.assert_series_equal(on_threads.labels(cutoff), one_by_one.labels(cutoff))
        assert model.params_.equals(expected_model.params_)


def test_history_statistics_equal_a_plain_groupby(cdnow_part):
    # The windows are summed over their own rows; a groupby over every row must agree.
    cutoff = pd.Timestamp("1998-03-31")
    log = cdnow_part[cdnow_part["date"] <= cutoff]
    stats = _history_statistics(log, cutoff)
    age = (cutoff - log["date"]).dt.days
    grouped = log.assign(age=age).groupby("contact_id", sort=False)
    gaps = log.groupby("contact_id")["date"].diff().dt.days
    expected = pd.DataFrame(
        {
            "gap_std_days": gaps.groupby(log["contact_id"]).std(ddof=0),
            "last_gap_days": gaps.groupby(log["contact_id"]).last(),
            "purchases_last_30d": grouped["age"].apply(lambda a: float((a < 30).sum())),
            "purchases_last_90d": grouped["age"].apply(lambda a: float((a < 90).sum())),
            "purchases_prior_90d": grouped["age"].apply(lambda a: float(a.between(90, 179).sum())),
            "spend_last_90d": grouped.apply(lambda g: g["amount"][g["age"] < 90].sum()),
            "spend_prior_90d": grouped.apply(
                lambda g: g["amount"][g["age"].between(90, 179)].sum()
            ),
        }
    ).reindex(stats.index)
    assert stats["purchases_last_90d"].sum() > 0 and stats["purchases_prior_90d"].sum() > 0
    assert stats["gap_std_days"].notna().sum() > 1_000
    pd.testing.assert_frame_equal(stats, expected, check_names=False, rtol=1e-9)


def test_booster_risk_on_bins_equals_predict_proba(cdnow_part):
    # The trees walked on the bins they were grown on give predict_proba's values exactly,
    # with missing values (one-time buyers' gaps) and values beyond the training range.
    features, labels = build_training_set(
        cdnow_part, training_cutoffs(pd.Timestamp("1998-06-30"), horizon_days=90,
                                     n_cutoffs=3, spacing_days=30), horizon_days=90
    )  # fmt: skip
    X = features[list(FEATURE_COLUMNS)].to_numpy()
    # One OpenMP thread to fit: two spin for a core when another process keeps them busy.
    with threadpool_limits(limits=1, user_api="openmp"):
        booster = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, labels)
        three = HistGradientBoostingClassifier(max_iter=5).fit(X, np.arange(len(X)) % 3)
    assert _binned_parts(booster) is not None  # this scikit-learn takes the fast path
    assert np.isnan(X).any()
    wider = X.copy()
    wider[::7] *= 3.0
    wider[::11, 0] = np.inf
    wider[::13, 1] = np.nan
    for rows in (X, wider):
        expected = booster.predict_proba(rows)[:, 1]
        for threads in (1, 2):
            np.testing.assert_array_equal(booster_probability(booster, rows, threads), expected)
    # More than two classes: predict_proba itself, never the bins.
    assert _binned_parts(three) is None
