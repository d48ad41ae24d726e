"""The figures of clvcast.plots carry the numbers they claim to show (CDNOW, real fits)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from clvcast import plots
from clvcast.errors import InputError
from clvcast.models import CLVForecaster, evaluate_holdout
from clvcast.models.bgnbd import expected_purchases, probability_alive
from clvcast.rfm import RFMScorer
from clvcast.summary import summarize


@pytest.fixture(scope="module")
def evaluation(cdnow_log):
    return evaluate_holdout(cdnow_log.purchases, "1997-09-30", "1998-06-30")


@pytest.fixture(scope="module")
def summary(cdnow_log):
    return summarize(cdnow_log.purchases, "1998-06-30")


@pytest.fixture(scope="module")
def forecaster(summary):
    return CLVForecaster().fit(summary)


@pytest.fixture(scope="module")
def predictions(forecaster, summary):
    return forecaster.predict(summary)


@pytest.fixture(scope="module")
def scored(summary, predictions):
    return RFMScorer().fit_transform(summary).join(predictions)


def labelled(ax) -> bool:
    return bool(ax.get_xlabel().strip() and ax.get_ylabel().strip() and ax.get_title().strip())


def image_of(fig: Figure):
    (ax,) = [ax for ax in fig.axes if ax.images]
    return ax, ax.images[0]


# --- holdout evaluation ------------------------------------------------------------------


def test_calibration_vs_holdout_lines_are_the_by_frequency_table(evaluation):
    fig = plots.calibration_vs_holdout(evaluation)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert labelled(ax)
    assert "273-day" in ax.get_title()
    table = evaluation.by_frequency
    lines = ax.get_lines()
    assert [line.get_label() for line in lines][:2] == ["actual", "BG/NBD"]
    for line, column in zip(lines, ["actual_mean", "predicted_mean", "baseline_mean"], strict=True):
        np.testing.assert_allclose(line.get_ydata(), table[column].to_numpy())
    ticks = [label.get_text().split("\n")[0] for label in ax.get_xticklabels()]
    assert ticks == list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]


def test_tracking_cumulative_lines_are_the_tracking_table(evaluation):
    fig = plots.tracking(evaluation)
    (ax,) = fig.axes
    assert labelled(ax)
    actual, expected, calibration_end = ax.get_lines()
    table = evaluation.tracking
    np.testing.assert_array_equal(actual.get_ydata(), table["actual_cumulative"].to_numpy())
    np.testing.assert_allclose(expected.get_ydata(), table["expected_cumulative"].to_numpy())
    assert mdates.num2date(calibration_end.get_xdata(orig=False)[0]).date() == (
        evaluation.calibration_end.date()
    )
    assert "1997-09-30" in calibration_end.get_label()


def test_tracking_weekly_sums_whole_weeks_aligned_on_the_calibration_end(evaluation):
    fig = plots.tracking(evaluation, cumulative=False)
    (ax,) = fig.axes
    assert "week" in ax.get_ylabel()
    actual, expected, _ = ax.get_lines()
    week_ends = pd.DatetimeIndex(mdates.num2date(actual.get_xdata(orig=False))).tz_localize(None)
    assert (np.diff(week_ends.values) == np.timedelta64(7, "D")).all()
    assert evaluation.calibration_end in week_ends
    assert week_ends[-1] == evaluation.observation_end  # the 273-day holdout is 39 weeks
    daily = evaluation.tracking
    for end, value, model in zip(week_ends, actual.get_ydata(), expected.get_ydata(), strict=True):
        week = daily.loc[end - pd.Timedelta(days=6) : end]
        assert len(week) == 7
        assert value == week["actual"].sum()
        assert model == pytest.approx(week["expected"].sum())


def test_tracking_daily_plots_every_day(evaluation):
    fig = plots.tracking(evaluation, cumulative=False, weekly=False)
    actual = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(actual.get_ydata(), evaluation.tracking["actual"].to_numpy())


# --- frequency x recency maps ------------------------------------------------------------


def test_frequency_recency_matrix_shows_the_model_values_on_the_grid(forecaster):
    model = forecaster.bgnbd_
    fig = plots.frequency_recency_matrix(
        model, horizon_days=180, max_frequency=10, max_recency_days=200, T_days=250
    )
    ax, image = image_of(fig)
    assert labelled(ax)
    values = image.get_array()
    assert values.shape == (11, 201)  # frequency 0..10, recency 0..200 days
    params = model.params_tuple()
    for x, t_x in [(0, 0), (3, 100), (10, 200), (7, 15)]:
        want = expected_purchases(
            params, model.to_model_time(180), np.array([x]), t_x, model.to_model_time(250)
        )[0]
        assert values[x, t_x] == pytest.approx(want)
    # more purchases, more recently: more expected purchases (the top right is the best)
    assert values[10, 200] > values[1, 200] > values[0, 0]
    assert values[10, 200] > values[10, 20]
    colourbar = [a for a in fig.axes if a is not ax and "expected purchases" in a.get_ylabel()]
    assert colourbar
    assert "180 days" in colourbar[0].get_ylabel()


def test_frequency_recency_matrix_takes_its_axes_from_the_summary(forecaster, summary):
    fig = plots.frequency_recency_matrix(forecaster.bgnbd_, summary=summary)
    _, image = image_of(fig)
    max_frequency = math.ceil(summary["frequency"].quantile(0.99))
    assert image.get_array().shape == (max_frequency + 1, int(summary["recency"].max()) + 1)
    assert f"{summary['T'].max():g} days" in fig.axes[0].get_title()


def test_p_alive_matrix_is_a_probability_and_masks_impossible_cells(forecaster):
    model = forecaster.bgnbd_
    fig = plots.p_alive_matrix(model, max_frequency=15, max_recency_days=400, T_days=300)
    ax, image = image_of(fig)
    assert labelled(ax)
    values = image.get_array()
    assert values.shape == (16, 401)
    assert image.get_clim() == (0.0, 1.0)
    possible = values[:, :301]
    assert not np.ma.is_masked(possible)
    assert ((possible >= 0) & (possible <= 1)).all()
    assert values.mask[:, 301:].all()  # recency above the age of 300 days
    np.testing.assert_array_equal(possible[0], 1.0)  # one-time buyers are alive by assumption
    want = probability_alive(model.params_tuple(), np.array([5.0]), 120.0, 300.0)[0]
    assert possible[5, 120] == pytest.approx(want)


def test_frequency_recency_grid_rejects_a_bad_quantity(forecaster):
    with pytest.raises(InputError, match="quantity"):
        plots.frequency_recency_grid(forecaster.bgnbd_, "clv")  # type: ignore[arg-type]


# --- CLV ----------------------------------------------------------------------------------


def test_clv_distribution_pareto_curve_ends_at_one_and_is_concave(predictions):
    fig = plots.clv_distribution(predictions, currency="USD")
    histogram, pareto = fig.axes
    assert labelled(histogram)
    assert labelled(pareto)
    assert "USD" in histogram.get_xlabel()
    curve = pareto.get_lines()[0]
    x, y = curve.get_xdata(), curve.get_ydata()
    assert (x[0], y[0]) == (0.0, 0.0)
    assert x[-1] == 1.0
    assert y[-1] == pytest.approx(1.0)
    assert (np.diff(y) >= 0).all()  # monotone
    assert (np.diff(y, 2) <= 1e-12).all()  # concave: highest values first
    values = predictions["clv_12m"].to_numpy()
    top = np.sort(values)[::-1][: int(0.2 * len(values))].sum() / values.sum()
    (note,) = pareto.texts
    assert f"{top:.0%}" in note.get_text()
    assert "top 20%" in note.get_text()


def test_clv_distribution_histogram_counts_every_contact(predictions):
    fig = plots.clv_distribution(predictions)
    histogram = fig.axes[0]
    heights = [patch.get_height() for patch in histogram.patches]
    assert sum(heights) == len(predictions)  # the bars up to the cut plus the tail bar
    cap = np.percentile(predictions["clv_12m"], 99)
    assert heights[-1] == (predictions["clv_12m"] > cap).sum()
    assert "currency of the input" in histogram.get_xlabel()


def test_clv_distribution_names_a_missing_column(predictions):
    with pytest.raises(InputError, match="clv_90d"):
        plots.clv_distribution(predictions, column="clv_90d")


# --- RFM ----------------------------------------------------------------------------------


def test_rfm_heatmap_counts_every_contact_once(scored):
    fig = plots.rfm_heatmap(scored)
    ax, image = image_of(fig)
    assert labelled(ax)
    counts = image.get_array()
    assert counts.shape == (5, 5)
    assert counts.sum() == len(scored)
    r5f5 = ((scored["r_score"] == 5) & (scored["f_score"] == 5)).sum()
    assert counts[4, 4] == r5f5
    assert len(ax.texts) == 25
    assert f"{r5f5:,}" in [text.get_text() for text in ax.texts]


def test_rfm_heatmap_of_a_value_shows_the_mean_per_cell(scored):
    fig = plots.rfm_heatmap(scored, value="clv_12m")
    _, image = image_of(fig)
    cell = scored[(scored["r_score"] == 5) & (scored["f_score"] == 5)]
    assert image.get_array()[4, 4] == pytest.approx(cell["clv_12m"].mean())


# --- all figures --------------------------------------------------------------------------


def test_every_figure_renders_without_touching_pyplot(evaluation, forecaster, predictions, scored):
    before = plt.get_fignums()
    figures = [
        plots.calibration_vs_holdout(evaluation),
        plots.tracking(evaluation),
        plots.frequency_recency_matrix(forecaster.bgnbd_, max_frequency=5, max_recency_days=60),
        plots.p_alive_matrix(forecaster.bgnbd_, max_frequency=5, max_recency_days=60),
        plots.clv_distribution(predictions),
        plots.rfm_heatmap(scored),
    ]
    for fig in figures:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=50)
        assert buffer.getvalue().startswith(b"\x89PNG")
    assert plt.get_fignums() == before
