"""The customer summary equals lifetimes' own functions, on CDNOW and on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from clvcast.data import read_transactions
from clvcast.errors import InputError
from clvcast.summary import CALIBRATION_HOLDOUT_COLUMNS, calibration_holdout, summarize

LIFETIMES_COLUMNS = ["frequency", "recency", "T", "monetary_value"]


def lifetimes_summary(purchases: pd.DataFrame, as_of: str) -> pd.DataFrame:
    return summary_data_from_transaction_data(
        purchases,
        "contact_id",
        "date",
        monetary_value_col="amount",
        observation_period_end=as_of,
        freq="D",
    )


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame, columns) -> None:
    assert sorted(ours.index) == sorted(theirs.index)
    theirs = theirs.loc[ours.index]
    for column in columns:
        np.testing.assert_allclose(
            ours[column].to_numpy(float),
            theirs[column].to_numpy(float),
            rtol=1e-9,
            atol=1e-9,
            err_msg=column,
        )


@pytest.mark.parametrize("as_of", ["1998-06-30", "1997-09-30"])
def test_summary_equals_lifetimes_on_cdnow_master(cdnow_log, as_of):
    ours = summarize(cdnow_log.purchases, as_of)
    theirs = lifetimes_summary(cdnow_log.purchases, as_of)
    assert_same(ours, theirs, LIFETIMES_COLUMNS)


def test_summary_equals_lifetimes_on_generated_timestamps(transactions):
    # Raw transactions: several rows per day, times of day, shuffled string ids.
    ours = summarize(transactions, "2023-06-30")
    theirs = lifetimes_summary(transactions, "2023-06-30")
    assert_same(ours, theirs, LIFETIMES_COLUMNS)


def test_descriptive_columns_are_consistent(cdnow_log):
    summary = summarize(cdnow_log.purchases, "1998-06-30")
    assert (summary["orders"] == summary["frequency"] + 1).all()
    assert (
        summary["recency"] == (summary["last_purchase"] - summary["first_purchase"]).dt.days
    ).all()
    as_of = pd.Timestamp("1998-06-30")
    assert (summary["days_since_last_purchase"] == (as_of - summary["last_purchase"]).dt.days).all()
    spend = cdnow_log.purchases.groupby("contact_id")["amount"].sum()
    np.testing.assert_allclose(summary["total_spend"], spend.loc[summary.index], rtol=1e-12)
    assert summary.index.is_monotonic_increasing


def test_calibration_holdout_equals_lifetimes_on_cdnow(cdnow_log):
    ours = calibration_holdout(cdnow_log.purchases, "1997-09-30", "1998-06-30")
    theirs = calibration_and_holdout_data(
        cdnow_log.purchases,
        "contact_id",
        "date",
        calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30",
        monetary_value_col="amount",
        freq="D",
    )
    assert_same(ours, theirs, CALIBRATION_HOLDOUT_COLUMNS)


def test_calibration_holdout_equals_lifetimes_on_generated(transactions):
    # On a purchase log (one row per contact-day). On raw timestamps lifetimes counts a
    # purchase made after midnight of the calibration-end day as holdout, and averages
    # holdout order lines rather than days; clvcast keeps one convention throughout.
    purchases = read_transactions(transactions).purchases
    ours = calibration_holdout(purchases, "2022-12-31", "2023-08-31")
    theirs = calibration_and_holdout_data(
        purchases,
        "contact_id",
        "date",
        calibration_period_end="2022-12-31",
        observation_period_end="2023-08-31",
        monetary_value_col="amount",
        freq="D",
    )
    assert_same(ours, theirs, CALIBRATION_HOLDOUT_COLUMNS)


def test_calibration_end_day_belongs_to_calibration_even_with_times():
    data = pd.DataFrame(
        {
            "contact_id": ["a", "a", "a"],
            "date": pd.to_datetime(["2024-01-01 10:00", "2024-01-31 18:00", "2024-02-10 09:00"]),
            "amount": [10.0, 20.0, 30.0],
        }
    )
    split = calibration_holdout(data, "2024-01-31", "2024-02-29").loc["a"]
    assert split["frequency_cal"] == 1 and split["frequency_holdout"] == 1
    assert split["monetary_value_cal"] == 20.0 and split["monetary_value_holdout"] == 30.0


def test_calibration_holdout_rejects_empty_holdout(cdnow_log):
    with pytest.raises(InputError, match="must be after the calibration end"):
        calibration_holdout(cdnow_log.purchases, "1998-01-01", "1997-12-31")


def test_as_of_before_any_purchase_is_a_clear_error(cdnow_log):
    with pytest.raises(InputError, match="no purchase on or before the as-of date 1996-12-31"):
        summarize(cdnow_log.purchases, "1996-12-31")


def test_missing_columns_are_named():
    with pytest.raises(InputError, match=r"missing column\(s\) \['amount'\]"):
        summarize(pd.DataFrame({"contact_id": ["a"], "date": ["2024-01-01"]}), "2024-01-02")


purchase_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 60),
        st.floats(0.5, 500, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=purchase_rows, as_of_day=st.integers(0, 70))
def test_summary_invariants(rows, as_of_day):
    data = pd.DataFrame(rows, columns=["contact_id", "day", "amount"])
    data["date"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(data["day"], unit="D")
    as_of = pd.Timestamp("2024-01-01") + pd.Timedelta(days=as_of_day)
    visible = data[data["date"] <= as_of]
    if visible.empty:
        with pytest.raises(InputError):
            summarize(data, as_of)
        return
    summary = summarize(data, as_of)
    assert set(summary.index) == set(visible["contact_id"])  # no contact lost or invented
    assert (summary["recency"] <= summary["T"]).all()
    assert (summary["frequency"] >= 0).all()
    assert ((summary["frequency"] == 0) == (summary["monetary_value"] == 0)).all()
    np.testing.assert_allclose(summary["total_spend"].sum(), visible["amount"].sum(), rtol=1e-9)
    assert_same(summary, lifetimes_summary(data, as_of), LIFETIMES_COLUMNS)


def test_the_summary_where_duckdb_read_the_input_equals_summarize(cdnow_raw):
    """clvcast rfm and forecast summarise in the ingestion's own DuckDB (no purchase log
    fetched to pandas): the same summary as summarize on the fetched log."""
    from clvcast.data import ReadOptions, read_transactions
    from clvcast.data.ingest import ingested
    from clvcast.summary import summarize_view

    options = ReadOptions(date_format="%Y%m%d", as_of="1998-03-31")
    with ingested(cdnow_raw, options) as (connection, _):
        in_place = summarize_view(connection, "1998-03-31")
    log = read_transactions(cdnow_raw, date_format="%Y%m%d", as_of="1998-03-31")
    pd.testing.assert_frame_equal(in_place, summarize(log.purchases, "1998-03-31"))
    assert in_place.attrs == {"time_unit_days": 1.0}


def test_an_ingestion_is_closed_and_its_spill_folder_removed_after_the_block(cdnow_raw):
    """The connection closes on a thread of its own after the ``with`` block (the caller
    goes on meanwhile); the thread ends, the connection is closed and the folder gone."""
    import threading
    from pathlib import Path

    import duckdb

    from clvcast.data import ReadOptions
    from clvcast.data.ingest import ingested

    options = ReadOptions(date_format="%Y%m%d", as_of="1998-03-31")
    with ingested(cdnow_raw, options) as (connection, _):
        spill = Path(connection.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        assert spill.is_dir() and spill.name.startswith("clvcast-duckdb-")
    for thread in threading.enumerate():
        if thread.name == "clvcast-cleanup-duckdb":
            thread.join(timeout=120)  # only to fail, never to time: it takes milliseconds
    assert not spill.exists()
    with pytest.raises(duckdb.ConnectionException):
        connection.execute("SELECT 1")
