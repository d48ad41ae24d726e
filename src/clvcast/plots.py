"""Matplotlib figures of the forecasts, for notebooks, reports and MLflow runs.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot: nothing is
shown, printed or saved, and no global figure state is touched. In a notebook, run
``%matplotlib inline`` once, then a figure left as the last expression of a cell is shown;
save one with ``fig.savefig(path)`` or log it with ``mlflow.log_figure(fig, "name.png")``.

Time is in days on every axis; "recency" is the BTYD recency (days from a contact's first
to last purchase), not the RFM "days since last purchase". Money is in the currency of the
input amounts; pass ``currency="EUR"`` (for example) to name it on the axes.

- :func:`calibration_vs_holdout`: holdout purchases by calibration frequency, actual vs model.
- :func:`tracking`: repeat purchases over time, actual vs expected, across the holdout.
- :func:`frequency_recency_matrix` and :func:`p_alive_matrix`: the BG/NBD model as a map of
  frequency x recency (values from :func:`frequency_recency_grid`).
- :func:`clv_distribution`: how CLV is spread over contacts and how concentrated it is.
- :func:`rfm_heatmap`: contacts (or a mean/sum) per pair of RFM scores.
- :func:`segment_summary`: contacts and total predicted CLV per RFM segment (values from
  :func:`segment_values`).
- :func:`churn_roc`, :func:`churn_calibration`: the churn classifier against its baselines.
- :func:`churn_risk_by_segment`: churn risk within each RFM segment.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from clvcast.churn.evaluation import ChurnEvaluation
from clvcast.errors import InputError
from clvcast.models.bgnbd import BetaGeoModel, expected_purchases, probability_alive
from clvcast.models.evaluation import HoldoutEvaluation

FIGSIZE = (8.0, 5.0)
CMAP = "viridis"
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
ACTUAL_COLOUR = "#000000"
MODEL_COLOUR = "#0072B2"
BASELINE_COLOUR = "#E69F00"
MARK_COLOUR = "#D55E00"

DEFAULT_MAX_FREQUENCY = 30
DEFAULT_MAX_RECENCY_DAYS = 365 * 1.5
FREQUENCY_QUANTILE = 0.99  # with a summary, the frequency axis stops at this quantile

Quantity = Literal["expected_purchases", "p_alive"]


def _figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def _money(currency: str | None) -> str:
    return currency if currency else "currency of the input"


def _thousands(value: float, _position: object = None) -> str:
    return f"{value:,.0f}"


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{what} is missing column(s) {missing}; available: {[str(c) for c in frame.columns]}."
        )


# --- holdout evaluation ----------------------------------------------------------------


def calibration_vs_holdout(evaluation: HoldoutEvaluation) -> Figure:
    """Mean holdout purchases per contact, by number of repeat purchases in calibration.

    One point per calibration frequency bucket (0, 1, ..., 6, 7+; the tick labels give the
    number of contacts in each): what the contacts bought in the holdout (black), what
    BG/NBD predicted (blue) and the naive baseline "repeat the calibration rate" (orange).
    Read it as: the closer the blue line to the black one in every bucket, the better the
    model ranks light and heavy buyers; a baseline far above the actual line shows how
    much a model that ignores drop-out overstates the best customers.
    """
    table = evaluation.by_frequency
    fig = _figure()
    ax = fig.add_subplot()
    positions = np.arange(len(table))
    series = (
        ("actual_mean", "actual", ACTUAL_COLOUR, "o", "-"),
        ("predicted_mean", "BG/NBD", MODEL_COLOUR, "s", "-"),
        ("baseline_mean", "baseline (calibration rate)", BASELINE_COLOUR, "^", "--"),
    )
    for column, label, colour, marker, style in series:
        ax.plot(
            positions,
            table[column].to_numpy(dtype=float),
            marker=marker,
            linestyle=style,
            color=colour,
            label=label,
        )
    ax.set_xticks(
        positions,
        [f"{bucket}\n{int(n):,}" for bucket, n in zip(table.index, table["contacts"], strict=True)],
    )
    ax.set_xlabel(
        f"repeat purchases in the calibration period, up to {evaluation.calibration_end.date()}"
        " (below: contacts)"
    )
    ax.set_ylabel("mean purchases in the holdout, per contact")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    ax.set_title(
        f"Holdout purchases by calibration frequency: {evaluation.holdout_days}-day holdout\n"
        f"(calibration to {evaluation.calibration_end.date()}, "
        f"holdout to {evaluation.observation_end.date()})"
    )
    return fig


def _weekly(table: pd.DataFrame, calibration_end: pd.Timestamp) -> pd.DataFrame:
    """Sums over whole 7-day weeks, one of them ending on the calibration end; by week end."""
    day = pd.Timedelta(days=1)
    offset = (table.index - (calibration_end + day)) // day
    week = np.floor_divide(offset.to_numpy(), 7)
    grouped = table[["actual", "expected"]].groupby(week)
    sums = grouped.sum()
    sums = sums[grouped.size() == 7]  # incomplete weeks at either end would look like dips
    sums.index = pd.DatetimeIndex(
        calibration_end + pd.to_timedelta(7 * (sums.index + 1), unit="D"), name="week_end"
    )
    return sums


def tracking(evaluation: HoldoutEvaluation, cumulative: bool = True, weekly: bool = True) -> Figure:
    """Repeat purchases over time, actual vs BG/NBD's expectation, before and after calibration.

    Covers the contacts who made their first purchase by the calibration end
    (``evaluation.tracking``). Cumulative (default): total repeat purchases up to each day;
    the lines should run together in calibration and stay together to the right of the
    dotted line, in the holdout (shaded). Not cumulative: purchases per week (``weekly``,
    sums over whole 7-day weeks aligned on the calibration end and shown at the week's last
    day; incomplete weeks at the ends are left out) or per day. The model knows nothing of
    seasonality, so weekly actuals scatter around a smooth expected curve.
    """
    table = evaluation.tracking
    calibration_end = evaluation.calibration_end
    if cumulative:
        data = table[["actual_cumulative", "expected_cumulative"]].set_axis(
            ["actual", "expected"], axis=1
        )
        ylabel, what = "cumulative repeat purchases", "cumulative"
    elif weekly:
        data = _weekly(table, calibration_end)
        ylabel, what = "repeat purchases per week (week ending on the date)", "weekly"
    else:
        data = table[["actual", "expected"]]
        ylabel, what = "repeat purchases per day", "daily"

    fig = _figure()
    ax = fig.add_subplot()
    ax.axvspan(
        calibration_end,
        evaluation.observation_end,
        color="0.92",
        zorder=0,
        label=f"holdout ({evaluation.holdout_days} days)",
    )
    ax.plot(data.index, data["actual"].to_numpy(), color=ACTUAL_COLOUR, label="actual")
    ax.plot(
        data.index,
        data["expected"].to_numpy(),
        color=MODEL_COLOUR,
        linestyle="--" if cumulative else "-",
        label="expected (BG/NBD)",
    )
    ax.axvline(
        calibration_end,
        color=MARK_COLOUR,
        linestyle=":",
        linewidth=1.5,
        label=f"calibration end ({calibration_end.date()})",
    )
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("date (day of purchase)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=4, frameon=False)
    ax.set_title(
        f"Tracking: {what} repeat purchases, actual vs expected\n"
        f"({int(evaluation.metrics['contacts']):,} contacts acquired by the calibration end)"
    )
    return fig


# --- the BG/NBD model as a frequency x recency map -------------------------------------


def _grid_axes(
    model: BetaGeoModel,
    max_frequency: int | None,
    max_recency_days: float | None,
    T_days: float | None,
    summary: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    unit = model.time_unit_days_
    if summary is not None:
        _require(summary, ["frequency", "recency"], "summary")
        if max_frequency is None:
            max_frequency = math.ceil(float(summary["frequency"].quantile(FREQUENCY_QUANTILE)))
        if max_recency_days is None:
            max_recency_days = float(summary["recency"].max()) * unit
        if T_days is None and "T" in summary.columns:
            T_days = max(float(summary["T"].max()) * unit, max_recency_days)
    max_frequency = DEFAULT_MAX_FREQUENCY if max_frequency is None else int(max_frequency)
    max_frequency = max(max_frequency, 1)
    if max_recency_days is None:
        max_recency_days = DEFAULT_MAX_RECENCY_DAYS
    if not max_recency_days >= 1:
        raise InputError(f"max_recency_days={max_recency_days}; it must be at least 1 day.")
    T_days = float(max_recency_days if T_days is None else T_days)
    if not T_days > 0:
        raise InputError(f"T_days={T_days}; the contacts' age must be positive (days).")
    frequency = np.arange(max_frequency + 1, dtype=float)
    recency_days = np.arange(math.floor(max_recency_days) + 1, dtype=float)
    return frequency, recency_days, T_days


def frequency_recency_grid(
    model: BetaGeoModel,
    quantity: Quantity = "expected_purchases",
    *,
    horizon_days: float = 365.0,
    max_frequency: int | None = None,
    max_recency_days: float | None = None,
    T_days: float | None = None,
    summary: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The values behind :func:`frequency_recency_matrix` and :func:`p_alive_matrix`.

    One row per frequency ``x`` = 0..``max_frequency`` (repeat purchases), one column per
    whole day of recency ``t_x`` = 0..``max_recency_days`` (days from first to last
    purchase), all for contacts of age ``T_days`` (days since their first purchase).
    ``quantity`` is ``"expected_purchases"`` (in the next ``horizon_days`` days) or
    ``"p_alive"``. Cells with recency above the age are impossible and hold NaN. The age
    used is in ``grid.attrs["T_days"]``.

    Defaults: with ``summary`` (the customer summary the model was fitted on), the
    frequency axis stops at its 99th percentile (the few heaviest buyers would otherwise
    squeeze everyone else into a corner) and recency at its maximum; without one, at 30
    purchases and 547 days. ``T_days`` defaults to the summary's oldest contact (its
    maximum ``T``), else to the maximum recency.
    """
    frequency, recency_days, T_days = _grid_axes(
        model, max_frequency, max_recency_days, T_days, summary
    )
    x = frequency[:, None]
    shape = (len(frequency), len(recency_days))
    t_x = np.broadcast_to(model.to_model_time(1.0) * recency_days[None, :], shape)
    T = model.to_model_time(T_days)
    params = model.params_tuple()
    if quantity == "expected_purchases":
        values = expected_purchases(params, model.to_model_time(horizon_days), x, t_x, T)
    elif quantity == "p_alive":
        values = probability_alive(params, x, t_x, T)
    else:
        raise InputError(f"quantity={quantity!r}; use 'expected_purchases' or 'p_alive'.")
    values = np.where(recency_days[None, :] <= T_days, np.broadcast_to(values, shape), np.nan)
    grid = pd.DataFrame(
        values,
        index=pd.Index(frequency.astype(int), name="frequency"),
        columns=pd.Index(recency_days, name="recency_days"),
    )
    grid.attrs["T_days"] = T_days
    return grid


def _matrix_figure(
    grid: pd.DataFrame, T_days: float, *, title: str, colourbar: str, **image: object
) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    recency = grid.columns.to_numpy(dtype=float)
    frequency = grid.index.to_numpy(dtype=float)
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    cmap = image.pop("cmap", CMAP)
    mappable = ax.imshow(
        values,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(recency[0] - 0.5, recency[-1] + 0.5, frequency[0] - 0.5, frequency[-1] + 0.5),
        cmap=cmap,
        **image,
    )
    ax.set_facecolor("0.85")  # impossible cells (recency above age) show as grey
    if recency[-1] > T_days:
        ax.text(
            (T_days + recency[-1]) / 2,
            (frequency[0] + frequency[-1]) / 2,
            f"impossible:\nrecency above\nthe age\n({T_days:g} days)",
            ha="center",
            va="center",
            fontsize=9,
            color="0.3",
        )
    fig.colorbar(mappable, ax=ax, label=colourbar)
    days = MaxNLocator(nbins=8, steps=[1, 2, 5, 10], integer=True)
    ax.xaxis.set_major_locator(days)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.set_xlabel("recency: days from first to last purchase")
    ax.set_ylabel("frequency: repeat purchases")
    # The same axis read the RFM way, at this age: days since last purchase = T - recency.
    since = ax.secondary_xaxis("top", functions=(lambda r: T_days - r, lambda d: T_days - d))
    since.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10], integer=True))
    since.xaxis.set_major_formatter(FuncFormatter(lambda d, _: f"{d:,.0f}" if d >= 0 else ""))
    since.set_xlabel("days since last purchase (= age - recency)")
    ax.set_title(title)
    return fig


def frequency_recency_matrix(
    model: BetaGeoModel,
    horizon_days: float = 365,
    max_frequency: int | None = None,
    max_recency_days: float | None = None,
    T_days: float | None = None,
    *,
    summary: pd.DataFrame | None = None,
) -> Figure:
    """Heat map of the purchases BG/NBD expects in the next ``horizon_days`` days.

    Each cell is a contact of age ``T_days`` (days since the first purchase) with ``x``
    repeat purchases (rows, up) whose last purchase came ``t_x`` days after the first
    (columns, right). The best prospects sit top right: many purchases, the last one
    recent. Left of the top rows the value collapses: a frequent buyer who stopped long
    ago has most likely dropped out. Row 0 does not depend on recency (one-time buyers
    have none). See :func:`frequency_recency_grid` for the axes' defaults; pass the fitted
    ``summary`` to take them from the data.
    """
    grid = frequency_recency_grid(
        model,
        "expected_purchases",
        horizon_days=horizon_days,
        max_frequency=max_frequency,
        max_recency_days=max_recency_days,
        T_days=T_days,
        summary=summary,
    )
    T = grid.attrs["T_days"]
    return _matrix_figure(
        grid,
        T,
        title=(
            f"Expected purchases in the next {horizon_days:g} days, by frequency and recency\n"
            f"(BG/NBD, contacts first seen {T:g} days ago)"
        ),
        colourbar=f"expected purchases in the next {horizon_days:g} days",
        vmin=0.0,
    )


def p_alive_matrix(
    model: BetaGeoModel,
    max_frequency: int | None = None,
    max_recency_days: float | None = None,
    T_days: float | None = None,
    *,
    summary: pd.DataFrame | None = None,
) -> Figure:
    """Heat map of the probability that a contact is still active (has not dropped out).

    Same grid as :func:`frequency_recency_matrix`, colours fixed on 0..1. A contact who
    bought often but not for a long time (top left) is probably gone; one-time buyers
    (row 0) count as alive by the model's assumption (drop-out happens only after a
    repeat purchase), so use their expected purchases rather than this probability.
    """
    grid = frequency_recency_grid(
        model,
        "p_alive",
        max_frequency=max_frequency,
        max_recency_days=max_recency_days,
        T_days=T_days,
        summary=summary,
    )
    T = grid.attrs["T_days"]
    return _matrix_figure(
        grid,
        T,
        title=(
            f"Probability still active, by frequency and recency\n"
            f"(BG/NBD, contacts first seen {T:g} days ago)"
        ),
        colourbar="P(alive)",
        vmin=0.0,
        vmax=1.0,
    )


# --- CLV --------------------------------------------------------------------------------


def _horizon_text(column: str) -> str:
    match = re.fullmatch(r".*_(\d+(?:\.\d+)?)(m|d)", column)
    if match is None:
        return ""
    number, unit = match.groups()
    return f", next {number} {'months' if unit == 'm' else 'days'}"


def lorenz_curve(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of contacts (highest value first) and of total value, from (0, 0).

    The curve of :func:`clv_distribution`: ``share_of_value[i]`` is the share of the total
    held by the ``share_of_contacts[i]`` most valuable contacts. It ends at (1, 1) and is
    concave.
    """
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    total = ordered.sum()
    share_of_contacts = np.arange(len(ordered) + 1) / len(ordered)
    share_of_value = np.concatenate([[0.0], np.cumsum(ordered) / total])
    return share_of_contacts, share_of_value


def clv_distribution(
    predictions: pd.DataFrame,
    column: str = "clv_12m",
    *,
    currency: str | None = None,
    clip_percentile: float = 99.0,
    top_share: float = 0.2,
    bins: int = 40,
) -> Figure:
    """How predicted CLV is spread over contacts (left) and how concentrated it is (right).

    Left: histogram of ``column`` in ``currency``, on a plain axis cut at the
    ``clip_percentile``-th percentile; the contacts above it are one orange bar right of the
    cut (its legend entry gives their number and the maximum), so the few very valuable
    contacts neither stretch the axis nor disappear. Dashed and dotted lines mark the
    median and the mean: a mean far above the median is the usual long tail.

    Right: the cumulative-value (Pareto) curve. Contacts are sorted by CLV, highest first;
    the curve shows which share of the total predicted value (up) the top share of contacts
    (across) holds. The point marked is the top ``top_share`` (20%: "the top 20% hold y% of
    the value"); the diagonal is what equal values would give.
    """
    _require(predictions, [column], "predictions")
    raw = predictions[column].to_numpy(dtype=float)
    values = raw[np.isfinite(raw)]
    if len(values) == 0 or values.sum() <= 0:
        raise InputError(
            f"column {column!r} has no positive finite values ({len(raw):,} rows); nothing to plot."
        )
    if (values < 0).any():
        raise InputError(
            f"column {column!r} has {int((values < 0).sum()):,} negative values; "
            "CLV cannot be negative, check the predictions."
        )
    money = _money(currency)
    horizon = _horizon_text(column)
    fig = _figure(figsize=(11.0, 5.0))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})

    cap = float(np.percentile(values, clip_percentile))
    if cap <= 0:
        cap = float(values.max())
    above = int((values > cap).sum())
    edges = np.linspace(0.0, cap, bins + 1)
    width = edges[1] - edges[0]
    left.hist(
        values[values <= cap], bins=edges, color=MODEL_COLOUR, edgecolor="white", linewidth=0.4
    )
    if above:
        # The tail beyond the cut: one bar of its own colour, right of the axis cut.
        left.bar(
            cap + width,
            above,
            width=width,
            color=MARK_COLOUR,
            edgecolor="white",
            linewidth=0.4,
            label=f"above {cap:,.0f}: {above:,} contacts (max {values.max():,.0f})",
        )
    median, mean = float(np.median(values)), float(values.mean())
    left.axvline(median, color=ACTUAL_COLOUR, linestyle="--", label=f"median {median:,.2f}")
    if mean <= cap:
        left.axvline(mean, color="0.45", linestyle=":", label=f"mean {mean:,.2f}")
    left.legend(frameon=False, loc="upper right")
    left.yaxis.set_major_formatter(FuncFormatter(_thousands))
    left.set_ylabel("contacts")
    tail = (
        f"\naxis cut at the {clip_percentile:g}th percentile ({cap:,.0f}); "
        "the orange bar counts the contacts above it"
        if above
        else ""
    )
    left.set_xlabel(f"predicted CLV{horizon} ({money}){tail}")
    left.set_title("Distribution of predicted CLV")
    left.grid(axis="y", alpha=0.3)

    share_of_contacts, share_of_value = lorenz_curve(values)
    right.plot(share_of_contacts, share_of_value, color=MODEL_COLOUR, label="predicted CLV")
    right.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="equal values")
    held = float(np.interp(top_share, share_of_contacts, share_of_value))
    right.plot([top_share, top_share], [0, held], color=MARK_COLOUR, linestyle=":", linewidth=1)
    right.plot([0, top_share], [held, held], color=MARK_COLOUR, linestyle=":", linewidth=1)
    right.plot([top_share], [held], "o", color=MARK_COLOUR)
    right.annotate(
        f"top {top_share:.0%} of contacts\nhold {held:.0%} of predicted value",
        xy=(top_share, held),
        xytext=(top_share + 0.12, held - 0.22),
        arrowprops={"arrowstyle": "->", "color": MARK_COLOUR},
        color=MARK_COLOUR,
    )
    right.set_xlim(0, 1)
    right.set_ylim(0, 1.02)
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_xlabel("share of contacts, highest CLV first")
    right.set_ylabel("share of total predicted value")
    right.set_title("Concentration of value")
    right.grid(alpha=0.3)
    right.legend(frameon=False, loc="lower right")
    fig.suptitle(
        f"Predicted CLV{horizon}: {len(values):,} contacts, total {values.sum():,.0f} {money}"
    )
    return fig


# --- RFM --------------------------------------------------------------------------------

_SCORE_MEANING = {
    "r_score": "R score (5 = most recent)",
    "f_score": "F score (5 = most frequent)",
    "m_score": "M score (5 = highest spend)",
}


def rfm_heatmap(
    table: pd.DataFrame,
    rows: str = "r_score",
    columns: str = "f_score",
    value: str | None = None,
    agg: Literal["mean", "sum"] = "mean",
    *,
    figsize: tuple[float, float] = FIGSIZE,
) -> Figure:
    """Contacts per pair of RFM scores, or the mean (or sum) of ``value`` per pair.

    ``table`` holds one row per contact with the score columns of
    :meth:`clvcast.rfm.RFMScorer.transform` (and ``value``, e.g. ``clv_12m``, if given).
    Rows and columns run from score 1 to 5 (more if the scorer used more bins), 5 top and
    right, so the best contacts sit top right; each cell is annotated with its number (an
    empty pair shows "-"). A smaller ``figsize`` (inches) makes the numbers relatively
    larger where the figure is shown small, e.g. two side by side in a report.
    """
    needed = [rows, columns] + ([value] if value is not None else [])
    _require(table, needed, "table")
    if agg not in ("mean", "sum"):
        raise InputError(f"agg={agg!r}; use 'mean' or 'sum'.")
    n = max(5, int(table[rows].max()), int(table[columns].max()))
    scores = list(range(1, n + 1))
    counts = pd.crosstab(table[rows], table[columns]).reindex(
        index=scores, columns=scores, fill_value=0
    )
    if value is None:
        matrix = counts
        label, fmt = "contacts", "{:,.0f}"
    else:
        matrix = table.pivot_table(index=rows, columns=columns, values=value, aggfunc=agg)
        matrix = matrix.reindex(index=scores, columns=scores)
        label, fmt = f"{agg} of {value}", "{:,.1f}" if agg == "mean" else "{:,.0f}"
    grid = matrix.to_numpy(dtype=float)
    n_contacts = counts.to_numpy()

    fig = _figure(figsize)
    ax = fig.add_subplot()
    mappable = ax.imshow(
        np.ma.masked_invalid(grid),
        origin="lower",
        cmap=CMAP,
        extent=(0.5, n + 0.5, 0.5, n + 0.5),
        aspect="auto",
    )
    ax.set_facecolor("0.85")
    whole = value is None or agg == "sum"  # counts and sums read best as 1,234,567
    fig.colorbar(mappable, ax=ax, label=label, format=FuncFormatter(_thousands) if whole else None)
    low, high = mappable.get_clim()
    middle = (low + high) / 2
    for i, r in enumerate(scores):
        for j, c in enumerate(scores):
            cell = grid[i, j]
            text = "-" if not np.isfinite(cell) else fmt.format(cell)
            if value is not None:
                text += f"\n(n={n_contacts[i, j]:,})"
            dark = np.isfinite(cell) and cell < middle
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else "black",
            )
    ax.set_xticks(scores)
    ax.set_yticks(scores)
    ax.set_xlabel(_SCORE_MEANING.get(columns, columns))
    ax.set_ylabel(_SCORE_MEANING.get(rows, rows))
    what = "Contacts" if value is None else f"{agg.capitalize()} of {value}"
    first, second = (name.removesuffix("_score").upper() for name in (rows, columns))
    ax.set_title(f"{what} by {first} and {second} score ({len(table):,} contacts)")
    return fig


def segment_values(table: pd.DataFrame, value: str | None = "clv_12m") -> pd.DataFrame:
    """Contacts and total ``value`` per RFM segment: the numbers of :func:`segment_summary`.

    One row per ``rfm_segment`` (prospects included) with ``contacts``, ``contacts_share``
    (of all rows of ``table``) and, when ``value`` is given, ``value_total``,
    ``value_share`` (of the total over every segment) and ``value_mean`` (per contact with
    a value). A segment without any value (prospects have no forecast) has NaN there.
    Sorted by total value, highest first (segments without a value last), else by contacts.
    """
    _require(table, ["rfm_segment"] + ([value] if value is not None else []), "table")
    if len(table) == 0:
        raise InputError("table has no rows; nothing to summarise by segment.")
    grouped = table.groupby("rfm_segment", sort=False, observed=True)
    frame = pd.DataFrame({"contacts": grouped.size()})
    frame["contacts_share"] = frame["contacts"] / len(table)
    order = ["contacts"]
    if value is not None:
        values = table[value].astype(float)
        if "rfm_group" in table.columns:  # a prospect's 0 is "nothing yet", not a forecast
            values = values.where(table["rfm_group"] != "prospect")
        by_segment = values.groupby(table["rfm_segment"], sort=False, observed=True)
        frame["value_total"] = by_segment.sum(min_count=1)
        frame["value_share"] = frame["value_total"] / values.sum()
        frame["value_mean"] = by_segment.mean()
        order = ["value_total", "contacts"]
    frame = frame.sort_values(order, ascending=False, kind="stable", na_position="last")
    frame.index.name = "rfm_segment"
    return frame


def segment_summary(
    table: pd.DataFrame, value: str | None = "clv_12m", *, currency: str | None = None
) -> Figure:
    """Contacts (left) and total predicted ``value`` (right) per RFM segment, as bars.

    ``table`` is a contact table with ``rfm_segment`` (and ``value``, e.g. ``clv_12m``).
    Segments run top to bottom by total value (:func:`segment_values`); each bar is
    labelled with its number and its share of the whole, so a small segment that holds a
    large share of the value stands out. Prospects have no forecast: their value bar is
    missing and labelled so. With ``value=None`` (a table scored without forecasts) only
    the contacts are shown.
    """
    frame = segment_values(table, value)
    names = [str(name) for name in frame.index]
    positions = np.arange(len(frame))
    panels = 1 if value is None else 2
    fig = _figure(
        (11.0, 0.42 * len(frame) + 1.8) if panels == 2 else (7.0, 0.42 * len(frame) + 1.8)
    )
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]

    counts = frame["contacts"].to_numpy(dtype=float)
    left = axes[0]
    bars = left.barh(positions, counts, color="#56B4E9", height=0.7)
    left.bar_label(
        bars,
        labels=[
            f"{n:,.0f} ({s:.1%})" for n, s in zip(counts, frame["contacts_share"], strict=True)
        ],
        padding=3,
        fontsize=8,
    )
    left.set_xlim(0, counts.max() * 1.4)
    left.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
    left.xaxis.set_major_formatter(FuncFormatter(_thousands))
    left.set_yticks(positions, names)
    left.invert_yaxis()
    left.set_xlabel("contacts (share of all contacts)")
    left.set_title("Contacts per segment")
    left.grid(axis="x", alpha=0.3)

    if value is not None:
        right = axes[1]
        totals = frame["value_total"].to_numpy(dtype=float)
        bars = right.barh(positions, np.nan_to_num(totals), color="#009E73", height=0.7)
        right.bar_label(
            bars,
            labels=[
                "no forecast" if not np.isfinite(t) else f"{t:,.0f} ({s:.1%})"
                for t, s in zip(totals, frame["value_share"], strict=True)
            ],
            padding=3,
            fontsize=8,
        )
        finite = totals[np.isfinite(totals)]
        right.set_xlim(0, (finite.max() if len(finite) and finite.max() > 0 else 1.0) * 1.4)
        right.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
        right.xaxis.set_major_formatter(FuncFormatter(_thousands))
        right.set_xlabel(f"total {value} in {_money(currency)} (share of the total)")
        right.set_title(f"Predicted value per segment{_horizon_text(value)}")
        right.grid(axis="x", alpha=0.3)
        right.tick_params(axis="y", left=False)
    fig.suptitle(f"RFM segments: {len(table):,} contacts")
    return fig


# --- churn -----------------------------------------------------------------------------

_CHURN_SCORES = {
    "classifier": ("churn classifier", MODEL_COLOUR, "-"),
    "bgnbd_no_purchase": ("BG/NBD P(no purchase)", BASELINE_COLOUR, "--"),
    "recency": ("days since last purchase", "#009E73", ":"),
}


def churn_roc(evaluation: ChurnEvaluation) -> Figure:
    """ROC curves of the churn classifier and its baselines on the temporal holdout.

    Left: all contacts; right: high-value contacts (M score 4-5). A curve further to the
    top left ranks churners above stayers better; the legend gives each ROC-AUC.
    """
    from sklearn.metrics import roc_curve

    rows = evaluation.rows
    fig = _figure((11.0, 5.0))
    for position, (population, mask) in enumerate(
        (("all", np.ones(len(rows), bool)), ("high value", rows["high_value"].to_numpy()))
    ):
        ax = fig.add_subplot(1, 2, position + 1)
        labels = rows["no_purchase"].to_numpy()[mask]
        for score, (name, colour, style) in _CHURN_SCORES.items():
            values = rows[score].to_numpy()[mask]
            usable = ~np.isnan(values)
            false_positive, true_positive, _ = roc_curve(labels[usable], values[usable])
            auc = evaluation.auc(score, population)
            ax.plot(false_positive, true_positive, style, color=colour, label=f"{name} ({auc:.3f})")
        ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, label="random (0.500)")
        ax.set_xlabel("stayers flagged (false positive rate)")
        ax.set_ylabel("churners caught (true positive rate)")
        ax.set_title(f"{population}: {int(mask.sum()):,} contacts, churn rate {labels.mean():.0%}")
        ax.legend(loc="lower right", fontsize=8, title="ROC-AUC", title_fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.suptitle(
        f"Churn (no purchase in {evaluation.horizon_days} days) after "
        f"{evaluation.cutoff.date()}: classifier vs baselines"
    )
    return fig


def churn_calibration(evaluation: ChurnEvaluation) -> Figure:
    """Predicted churn risk against the observed churn rate, in ten equal-count bins.

    Points on the diagonal mean a risk of 0.7 comes true 70% of the time; the BG/NBD
    baseline's probabilities are shown for comparison.
    """
    rows = evaluation.rows
    labels = rows["no_purchase"].to_numpy()
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, label="perfect calibration")
    for score in ("classifier", "bgnbd_no_purchase"):
        name, colour, style = _CHURN_SCORES[score]
        frame = pd.DataFrame({"risk": rows[score].to_numpy(), "label": labels}).dropna()
        frame["bin"] = pd.qcut(frame["risk"].rank(method="first"), 10, labels=False)
        table = frame.groupby("bin").agg(risk=("risk", "mean"), rate=("label", "mean"))
        ax.plot(table["risk"], table["rate"], style, marker="o", color=colour, label=name)
    ax.set_xlabel("predicted churn risk (mean per bin of 10% of contacts)")
    ax.set_ylabel("observed churn rate")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title(
        f"Calibration: no purchase in {evaluation.horizon_days} days after "
        f"{evaluation.cutoff.date()}"
    )
    return fig


def churn_risk_by_segment(table: pd.DataFrame) -> Figure:
    """Distribution of churn risk within each RFM segment (box plots, largest segment first).

    ``table`` is a contact table with ``rfm_segment`` and ``churn_risk`` (prospects are
    left out). The dashed lines mark the risk bands (0.5 medium, 0.8 high).
    """
    _require(table, ["rfm_segment", "churn_risk"], "table")
    scored = table.dropna(subset=["churn_risk"])
    order = scored["rfm_segment"].value_counts().index.tolist()
    groups = [scored.loc[scored["rfm_segment"] == s, "churn_risk"].to_numpy() for s in order]
    fig = _figure((9.0, 5.5))
    ax = fig.add_subplot()
    ax.boxplot(
        groups,
        orientation="horizontal",
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "#cfe3f1"},
        medianprops={"color": MODEL_COLOUR},
    )
    ax.set_yticks(
        range(1, len(order) + 1), [f"{s} ({len(g):,})" for s, g in zip(order, groups, strict=True)]
    )
    ax.invert_yaxis()
    for edge in (0.5, 0.8):
        ax.axvline(edge, color=MARK_COLOUR, linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("churn risk (bands: low < 50% <= medium < 80% <= high)")
    ax.set_title(f"Churn risk by RFM segment ({len(scored):,} contacts)")
    return fig
