"""Holdout evaluation on the CDNOW sample: the BTYD walkthrough's table, as numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvcast.models import CLVForecaster, evaluate_holdout, simulate_transactions

# BTYD walkthrough, CDNOW sample, calibration weeks 1-39, holdout weeks 40-78.
PUBLISHED_CONTACTS = [1411, 439, 214, 100, 62, 38, 29, 64]
PUBLISHED_ACTUAL_MEAN = [0.237, 0.697, 1.393, 1.560, 2.532, 2.947, 3.862, 6.359]


@pytest.fixture(scope="module")
def evaluation(cdnow_sample_log):
    return evaluate_holdout(
        cdnow_sample_log.purchases, "1997-09-30", "1998-06-30", compare_models=True
    )


def test_frequency_table_matches_btyd_walkthrough(evaluation, cdnow_sample_log):
    table = evaluation.by_frequency
    assert list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    # The 8 sample customers whose only purchases have amount 0 are dropped by the default
    # refund policy; BTYD counts them among the 1,411 zero-repeat customers.
    assert cdnow_sample_log.report.contacts_without_purchase == 8
    expected_counts = [PUBLISHED_CONTACTS[0] - 8, *PUBLISHED_CONTACTS[1:]]
    assert table["contacts"].tolist() == expected_counts
    np.testing.assert_allclose(table["actual_mean"].iloc[1:], PUBLISHED_ACTUAL_MEAN[1:], atol=5e-4)
    zero_total = table["actual_mean"].iloc[0] * expected_counts[0]
    assert zero_total / PUBLISHED_CONTACTS[0] == pytest.approx(PUBLISHED_ACTUAL_MEAN[0], abs=5e-4)


def test_model_beats_naive_baseline_and_tracks_by_frequency(evaluation):
    m = evaluation.metrics
    assert m["rmse"] < m["baseline_rmse"] and m["mae"] < m["baseline_mae"]
    assert abs(m["aggregate_error_pct"]) < abs(m["baseline_aggregate_error_pct"])
    assert abs(m["aggregate_error_pct"]) < 20
    table = evaluation.by_frequency
    # Predicted means rise with calibration frequency, as the actual means do.
    assert table["predicted_mean"].is_monotonic_increasing
    assert np.corrcoef(table["predicted_mean"], table["actual_mean"])[0, 1] > 0.98


def test_metrics_are_computed_from_the_per_contact_table(evaluation):
    contacts = evaluation.contacts
    error = contacts["predicted_holdout"] - contacts["frequency_holdout"]
    m = evaluation.metrics
    assert m["mae"] == pytest.approx(error.abs().mean())
    assert m["rmse"] == pytest.approx(np.sqrt((error**2).mean()))
    assert m["actual_total"] == contacts["frequency_holdout"].sum()
    assert m["contacts"] == len(contacts) == evaluation.by_frequency["contacts"].sum()
    assert evaluation.holdout_days == 273
    baseline = contacts["frequency_cal"] / contacts["T_cal"] * 273
    np.testing.assert_allclose(contacts["baseline_holdout"], baseline.fillna(0.0))


def test_tracking_adds_up(evaluation, cdnow_sample_log):
    tracking = evaluation.tracking
    purchases = cdnow_sample_log.purchases
    repeat_days = len(purchases) - purchases["contact_id"].nunique()
    assert tracking["actual_cumulative"].iloc[-1] == repeat_days
    assert tracking["expected_cumulative"].is_monotonic_increasing
    assert tracking.index[-1] == pd.Timestamp("1998-06-30")
    assert tracking["holdout"].sum() == 273
    # In the holdout the expected total tracks the actual within 15%.
    assert tracking["expected_cumulative"].iloc[-1] == pytest.approx(repeat_days, rel=0.15)


def test_model_comparison_lists_three_models(evaluation):
    table = evaluation.comparison
    assert set(table.index) == {"BG/NBD", "MBG/NBD", "Pareto/NBD"}
    assert table["rmse"].is_monotonic_increasing
    assert (table["log_likelihood"] < 0).all()
    text = evaluation.format()
    assert "Pareto/NBD" in text and "aggregate error %" in text


def test_evaluation_on_data_from_the_model_is_nearly_unbiased():
    truth = (0.25, 40.0, 0.8, 2.5)
    transactions = simulate_transactions(
        15_000, truth, (6.0, 3.5, 15.0), seed=5, start="2022-01-01", end="2023-12-31"
    )
    result = evaluate_holdout(transactions, "2023-06-30", "2023-12-31", forecaster=CLVForecaster())
    # Data drawn from BG/NBD itself: the aggregate holdout forecast is close to what happened.
    assert abs(result.metrics["aggregate_error_pct"]) < 8
    assert result.metrics["rmse"] < result.metrics["baseline_rmse"]


def test_identical_model_comparison_is_explained():
    from clvcast.models.evaluation import models_agree

    same = pd.DataFrame({"rmse": [1.000, 1.004, 1.008], "mae": [0.5, 0.501, 0.502]})
    apart = pd.DataFrame({"rmse": [1.0, 1.2, 1.3], "mae": [0.5, 0.6, 0.7]})
    assert models_agree(same) and not models_agree(apart)


def test_a_holdout_longer_than_the_history_names_the_history(cdnow_sample_log):
    """A holdout that starts before the first purchase left no history: the message said
    'no purchase on or before the as-of date 1991-...', a date the user never gave."""
    from clvcast.errors import InputError

    with pytest.raises(
        InputError,
        match=r"a holdout of 3,000 days before 1998-06-30 starts before the first "
        r"purchase \(1997-01-01\).* within the 545 days of history",
    ):
        evaluate_holdout(cdnow_sample_log, "1990-04-13", "1998-06-30")
