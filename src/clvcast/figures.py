"""The model's figures, by file name: one set for ``--plots``, the MLflow run and the report.

:func:`model_figures` draws every figure whose inputs are given and returns them as
``{"frequency_recency_matrix.png": Figure, ...}``; :func:`model_figure` draws one by name.
Every figure reads the forecast columns of the forecaster's own horizon
(``clv_180d`` for ``horizon_days=180``), so a 180-day model draws 180-day figures.

| name | needs |
|---|---|
| ``frequency_recency_matrix.png``, ``p_alive_matrix.png`` | forecaster |
| ``clv_distribution.png`` | forecaster, table |
| ``rfm_heatmap.png`` | table |
| ``churn_risk_by_segment.png`` | table with churn columns |
| ``calibration_vs_holdout.png``, ``tracking_cumulative.png``, ``tracking_weekly.png`` | holdout evaluation |
| ``churn_roc.png``, ``churn_calibration.png`` | churn evaluation |

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot, no GUI backend).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from clvcast import plots
from clvcast.churn.evaluation import ChurnEvaluation
from clvcast.errors import InputError
from clvcast.models.evaluation import HoldoutEvaluation
from clvcast.models.forecast import CLVForecaster, prediction_columns


@dataclass(frozen=True)
class FigureInputs:
    """What the figures are drawn from; any part may be missing."""

    table: pd.DataFrame | None = None
    forecaster: CLVForecaster | None = None
    summary: pd.DataFrame | None = None
    holdout: HoldoutEvaluation | None = None
    churn: ChurnEvaluation | None = None

    @property
    def clv_column(self) -> str:
        return prediction_columns(self.forecaster.horizon_days)[3]

    def has(self, part: str) -> bool:
        if part == "churn_table":
            return self.table is not None and "churn_risk" in self.table.columns
        return getattr(self, part) is not None


def _buyers(table: pd.DataFrame) -> pd.DataFrame:
    return table.dropna(subset=["r_score"])


# name -> (inputs it needs, how to draw it)
_FIGURES: dict[str, tuple[tuple[str, ...], Callable[[FigureInputs], Any]]] = {
    "frequency_recency_matrix.png": (
        ("forecaster",),
        lambda i: plots.frequency_recency_matrix(
            i.forecaster.bgnbd_, horizon_days=i.forecaster.horizon_days, summary=i.summary
        ),
    ),
    "p_alive_matrix.png": (
        ("forecaster",),
        lambda i: plots.p_alive_matrix(i.forecaster.bgnbd_, summary=i.summary),
    ),
    "clv_distribution.png": (
        ("forecaster", "table"),
        lambda i: plots.clv_distribution(
            i.table.dropna(subset=[i.clv_column]), column=i.clv_column
        ),
    ),
    "rfm_heatmap.png": (("table",), lambda i: plots.rfm_heatmap(_buyers(i.table))),
    "churn_risk_by_segment.png": (
        ("churn_table",),
        lambda i: plots.churn_risk_by_segment(_buyers(i.table)),
    ),
    "calibration_vs_holdout.png": (
        ("holdout",),
        lambda i: plots.calibration_vs_holdout(i.holdout),
    ),
    "tracking_cumulative.png": (
        ("holdout",),
        lambda i: plots.tracking(i.holdout, cumulative=True),
    ),
    "tracking_weekly.png": (("holdout",), lambda i: plots.tracking(i.holdout, cumulative=False)),
    "churn_roc.png": (("churn",), lambda i: plots.churn_roc(i.churn)),
    "churn_calibration.png": (("churn",), lambda i: plots.churn_calibration(i.churn)),
}

FIGURE_NAMES = tuple(_FIGURES)
# The figures of the forecast (``clvcast forecast --plots``) and of the churn model
# (``clvcast churn --plots``); the MLflow run and the report have them all.
FIGURE_GROUPS = {
    "forecast": (
        "frequency_recency_matrix.png",
        "p_alive_matrix.png",
        "clv_distribution.png",
        "rfm_heatmap.png",
        "calibration_vs_holdout.png",
        "tracking_cumulative.png",
        "tracking_weekly.png",
    ),
    "churn": ("churn_risk_by_segment.png", "churn_roc.png", "churn_calibration.png"),
}


def model_figure(name: str, inputs: FigureInputs) -> Any:
    """The figure ``name`` (one of :data:`FIGURE_NAMES`) drawn from ``inputs``."""
    if name not in _FIGURES:
        raise InputError(f"no figure named {name!r}; figures: {list(FIGURE_NAMES)}.")
    needs, draw = _FIGURES[name]
    missing = [part for part in needs if not inputs.has(part)]
    if missing:
        raise InputError(f"figure {name} needs {', '.join(missing)}.")
    return draw(inputs)


def model_figures(
    table: pd.DataFrame | None = None,
    *,
    forecaster: CLVForecaster | None = None,
    summary: pd.DataFrame | None = None,
    evaluation: Any = None,
    names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Every figure (or those of ``names``; an empty ``names`` draws none) whose inputs are
    given, by file name.

    ``evaluation`` is what :meth:`~clvcast.pipeline.CLVPipeline.evaluate` returns, a
    :class:`~clvcast.models.evaluation.HoldoutEvaluation` or a
    :class:`~clvcast.churn.evaluation.ChurnEvaluation`.
    """
    holdout = evaluation if isinstance(evaluation, HoldoutEvaluation) else None
    churn = evaluation if isinstance(evaluation, ChurnEvaluation) else None
    if holdout is None and churn is None and evaluation is not None:
        holdout, churn = evaluation.holdout, evaluation.churn
    inputs = FigureInputs(table, forecaster, summary, holdout, churn)
    figures = {}
    for name in FIGURE_NAMES if names is None else names:
        needs, _ = _FIGURES[name]
        if all(inputs.has(part) for part in needs):
            figures[name] = model_figure(name, inputs)
    return figures
