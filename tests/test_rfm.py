"""RFM scores: ties, heavily tied data, frozen boundaries, segment map."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvcast.errors import InputError, RFMWarning
from clvcast.rfm import (
    GROUPS,
    SEGMENT_RULES,
    RFMScorer,
    _distinct_counts,
    bin_positions,
    fit_bins,
    group_of,
    segment_of,
    segment_table,
)
from clvcast.summary import summarize


def summary_from(days_since, orders, spend) -> pd.DataFrame:
    return pd.DataFrame(
        {"days_since_last_purchase": days_since, "orders": orders, "total_spend": spend},
        index=pd.Index([f"c{i}" for i in range(len(orders))], name="contact_id"),
    )


@pytest.fixture(scope="module")
def cdnow_summary(cdnow_log):
    return summarize(cdnow_log.purchases, "1998-06-30")


def test_cdnow_gets_five_scores_per_dimension(cdnow_summary):
    scores = RFMScorer().fit_transform(cdnow_summary)
    for column in ("r_score", "f_score", "m_score"):
        assert sorted(scores[column].unique()) == [1, 2, 3, 4, 5]
    # Recency and spend have many distinct values: bins within a point of 20%.
    shares = scores["r_score"].value_counts(normalize=True)
    assert shares.between(0.19, 0.21).all()
    # Half of CDNOW bought on one day only: F1 is exactly the one-time buyers.
    one_timers = cdnow_summary["orders"] == 1
    assert (scores.loc[one_timers, "f_score"] == 1).all()
    assert (scores.loc[~one_timers, "f_score"] > 1).all()


def test_recency_five_is_most_recent(cdnow_summary):
    scores = RFMScorer().fit_transform(cdnow_summary)
    days = cdnow_summary["days_since_last_purchase"]
    assert days[scores["r_score"] == 5].max() < days[scores["r_score"] == 4].min()
    assert days[scores["r_score"] == 1].min() > days[scores["r_score"] == 2].max()


def test_heavily_tied_frequency_keeps_five_bins():
    # 60% bought once, then a long tail: pd.qcut would fail or silently give fewer bins.
    orders = [1] * 600 + [2] * 150 + [3] * 80 + [4] * 50 + [5] * 40 + list(range(6, 86))
    summary = summary_from(np.arange(len(orders)), orders, np.linspace(1, 100, len(orders)))
    bins = RFMScorer().fit(summary).bins_["frequency"]
    assert bins.edges == (2.0, 3.0, 4.0, 6.0)
    assert bins.scores == (1, 2, 3, 4, 5)
    assert bins.shares[0] == pytest.approx(0.6)


@settings(deadline=None)
@given(
    values=st.lists(st.integers(-50, 500), min_size=1, max_size=300),
    scale=st.sampled_from([1.0, 0.5, 1e9]),
)
def test_bins_are_the_same_whether_values_are_counted_or_hashed(values, scale):
    # Whole numbers in a narrow range are counted by bincount, others hashed: both must
    # learn the bins that sorting every value gives.
    array = np.asarray(values, dtype=float) * scale
    distinct, counts = _distinct_counts(array)
    expected, expected_counts = np.unique(array, return_counts=True)
    np.testing.assert_array_equal(distinct, expected)
    np.testing.assert_array_equal(counts, expected_counts)
    assert distinct.dtype == array.dtype


@pytest.mark.filterwarnings("ignore::clvcast.errors.RFMWarning")
@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(0, 30), min_size=1, max_size=300))
def test_equal_values_get_equal_scores_and_order_does_not_matter(values):
    summary = summary_from(values, [1] * len(values), [1.0] * len(values))
    scores = RFMScorer().fit_transform(summary)["r_score"]
    assert scores.between(1, 5).all()
    by_value = pd.DataFrame({"v": values, "s": scores.to_numpy()}).groupby("v")["s"].nunique()
    assert (by_value == 1).all()  # a score depends on the value only
    assert scores.nunique() == min(5, len(set(values)))  # as many bins as values allow
    # Monotone: more days since the last purchase never scores higher.
    order = np.argsort(values, kind="stable")
    assert (np.diff(scores.to_numpy()[order]) <= 0).all()
    # Row order does not matter.
    shuffled = summary.sample(frac=1.0, random_state=1)
    assert RFMScorer().fit(shuffled).bins_ == RFMScorer().fit(summary).bins_


def test_fewer_distinct_values_warn_and_spread_scores():
    summary = summary_from([5, 5, 40, 40, 90, 90], [1, 1, 1, 1, 1, 1], [1.0, 2, 3, 4, 5, 6])
    with pytest.warns(RFMWarning, match="only 3 distinct value"):
        scorer = RFMScorer().fit(summary)
    assert scorer.bins_["recency"].scores == (5, 3, 1)
    assert scorer.bins_["frequency"].scores == (3,)


def test_boundaries_round_trip_and_reapply_to_later_population(tmp_path, cdnow_log, cdnow_summary):
    scorer = RFMScorer(monetary_basis="average").fit(cdnow_summary)
    path = scorer.save(tmp_path / "rfm.json")
    loaded = RFMScorer.load(path)
    assert loaded.bins_ == scorer.bins_
    assert loaded.monetary_basis == "average"
    later = summarize(cdnow_log.purchases, "1998-03-31")
    pd.testing.assert_frame_equal(loaded.transform(later), scorer.transform(later))
    # Frozen: R5 means the same days for the later population, whatever its distribution.
    r5_edge = scorer.bins_["recency"].edges[0]
    r5 = loaded.transform(later)["r_score"] == 5
    assert (later.loc[r5, "days_since_last_purchase"] < r5_edge).all()
    assert (later.loc[~r5, "days_since_last_purchase"] >= r5_edge).all()


def test_loading_a_foreign_file_is_a_clear_error(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a clvcast RFM boundaries document"):
        RFMScorer.load(path)
    with pytest.raises(InputError, match="not found"):
        RFMScorer.load(tmp_path / "missing.json")


def test_boundaries_read_in_human_units(cdnow_summary):
    table = RFMScorer().fit(cdnow_summary).boundaries()
    labels = table["label"].tolist()
    assert labels[0].startswith("R5 = last purchase 0-") and labels[0].endswith(" days ago")
    assert "F1 = 1 purchase day" in labels
    assert any(
        label.startswith("M5 = total spend ") and label.endswith(" or more") for label in labels
    )
    assert table.groupby("dimension")["share"].sum().round(9).eq(1.0).all()


def test_average_order_value_basis(cdnow_summary):
    total = RFMScorer().fit_transform(cdnow_summary)["m_score"]
    average = RFMScorer(monetary_basis="average").fit_transform(cdnow_summary)["m_score"]
    assert (total != average).any()
    aov = cdnow_summary["total_spend"] / cdnow_summary["orders"]
    assert aov[average == 5].min() > aov[average == 1].max()


def test_every_cell_has_exactly_one_first_matching_segment():
    names = {rule.name for rule in SEGMENT_RULES}
    seen = set()
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        seen.add(segment_of(r, f, m))
    assert seen == names  # all 125 cells are named, and every rule is reachable
    assert segment_of(5, 5, 5) == "champions"
    assert segment_of(1, 5, 5) == "cannot lose them"
    assert segment_of(1, 5, 1) == "at risk"
    assert segment_of(5, 1, 3) == "new customers"


def test_groups():
    assert group_of(0, 1, 1) == "prospect"
    assert group_of(1, 5, 1) == "first-time buyer"
    assert group_of(7, 4, 5) == "loyal"
    assert group_of(7, 1, 5) == "recurring"
    assert set(GROUPS) == {"prospect", "first-time buyer", "recurring", "loyal"}


def test_segment_table_matches_docs():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for row in segment_table().itertuples():
        assert f"| {row.segment} | {row.R} | {row.F} | {row.M} |" in readme


def test_scorer_follows_sklearn_conventions(cdnow_summary):
    from sklearn.base import clone

    from clvcast.errors import NotFittedError

    scorer = RFMScorer(monetary_basis="average")
    assert scorer.fit(cdnow_summary) is scorer
    assert clone(scorer).get_params() == {"monetary_basis": "average", "n_bins": 5}
    with pytest.raises(NotFittedError):
        RFMScorer().transform(cdnow_summary)
    with pytest.raises(InputError, match="monetary_basis='median'"):
        RFMScorer(monetary_basis="median").fit(cdnow_summary)


def test_fit_bins_refuses_empty_values():
    with pytest.raises(InputError, match="no contact"):
        fit_bins(
            pd.Series([], dtype=float),
            dimension="recency",
            measure="x",
            unit="{span}",
            higher_is_better=False,
            integer=True,
        )


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(st.floats(-1e6, 1e6), max_size=6).map(sorted),
    values=st.lists(
        st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))),
        max_size=50,
    ),
)
def test_bin_positions_equal_searchsorted(edges, values):
    """Scores count the edges a value reaches, as np.searchsorted(side="right") does,
    for values on an edge, between, beyond both ends, infinite or missing."""
    edges = np.asarray(edges, dtype=float)
    values = np.asarray(values + [*edges], dtype=float)  # also every edge itself
    np.testing.assert_array_equal(
        bin_positions(edges, values), np.searchsorted(edges, values, side="right")
    )
