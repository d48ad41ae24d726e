"""A visual model report: one self-contained HTML file plus the same figures as PNG files.

:func:`write_report` takes a fitted :class:`~clvcast.pipeline.CLVPipeline`, the contact
table it scored (``docs/scored-table.md``) and, optionally, the pipeline's holdout
evaluation (what :meth:`~clvcast.pipeline.CLVPipeline.evaluate` returns)
and writes ``report.html`` and one PNG per figure into a folder; :func:`render_report`
returns the same HTML and PNG bytes without writing (for ``mlflow.log_text``).

The HTML opens from disk in any browser with no server and no network: every figure is
embedded as a base64 PNG data URI, the style sheet is inline, and there is no JavaScript
and no external resource. Every text that comes from data (segment names, model name,
title) is HTML-escaped. Every file is written atomically (:func:`clvcast.atomic.atomic_path`):
a reader sees the previous file or the new one, never half of one.

The report has two parts. For marketers: the numbers at a glance, segments with their size
and predicted value, how concentrated the value is, the RFM scores (their boundaries in days,
purchase days and spend, and heat maps of contacts and value) and churn risk. For data
scientists: the fitted parameters with standard errors and how the fit went, the holdout
evaluation of the purchase forecast, the BG/NBD frequency/recency maps and the churn model's
evaluation against its baselines. Sections that need the evaluation say so when it is
missing instead of disappearing.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clvcast import __version__, plots
from clvcast.atomic import atomic_path
from clvcast.churn.evaluation import ChurnEvaluation
from clvcast.errors import InputError
from clvcast.estimator import check_fitted
from clvcast.figures import FigureInputs, model_figure
from clvcast.models.evaluation import HoldoutEvaluation
from clvcast.models.forecast import prediction_columns
from clvcast.models.gamma_gamma import CONSTANT_STEP
from clvcast.models.spend_edges import MEANING
from clvcast.pipeline import CLVPipeline, PipelineEvaluation
from clvcast.rfm import segment_table

REPORT_FILE = "report.html"
DEFAULT_TITLE = "Customer lifetime value report"
DPI = 110
TOP_SHARE = 0.2  # the Pareto sentence: "the top 20% of contacts hold y% of the value"

# Section anchors and headings, in the order of the report (tests check every heading).
SECTIONS: dict[str, str] = {
    "overview": "At a glance",
    "segments": "Segments: size and predicted value",
    "value": "Concentration of predicted value",
    "rfm": "RFM scores: boundaries and heat maps",
    "churn-risk": "Churn risk",
    "model": "Model parameters and fit",
    "holdout": "Holdout evaluation of the purchase forecast",
    "matrices": "Frequency/recency and P(alive) matrices",
    "churn-evaluation": "Churn model evaluation",
}
PARTS = {
    "overview": "For marketers: customers and value",
    "model": "For data scientists: model quality",
}

_PAIR_FIGSIZE = (6.4, 4.8)  # heat maps shown two abreast: smaller figure, larger text
_RFM_PAIRS = (("r_score", "f_score"), ("f_score", "m_score"), ("r_score", "m_score"))
_REQUIRED = ["contact_id", "r_score", "f_score", "m_score", "rfm_segment"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1d2328; background: #fff; margin: 0; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
header { border-bottom: 3px solid #0072B2; margin-bottom: 1rem; }
h1 { font-size: 1.8rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.35rem; margin-top: 2.4rem; border-bottom: 1px solid #d5dde3;
  padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.part { margin-top: 2.8rem; font-size: 0.85rem; letter-spacing: 0.08em; text-transform: uppercase;
  color: #0072B2; }
.meta { color: #4a5560; margin: 0 0 0.8rem; }
.meta span { margin-right: 1.4rem; white-space: nowrap; }
.note { background: #fff6e0; border-left: 4px solid #E69F00; padding: 0.5rem 0.8rem; }
.key { font-size: 1.05rem; background: #eef5fa; border-left: 4px solid #0072B2;
  padding: 0.5rem 0.8rem; }
nav ol { columns: 2; margin: 0.4rem 0 0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e8ec; }
figcaption { color: #4a5560; font-size: 0.9rem; margin-top: 0.3rem; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pair figure { margin: 0.4rem 0; }
table.data { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.9rem;
  font-variant-numeric: tabular-nums; }
table.data th, table.data td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e3e8ec; }
table.data thead th { background: #f3f6f8; text-align: right; vertical-align: bottom; }
table.data td { text-align: right; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data tbody th { text-align: left; font-weight: normal; vertical-align: top; }
table.text td, table.text thead th { text-align: left; }
dl.glance { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 1.2rem; }
dl.glance dt { font-weight: 600; }
dl.glance dd { margin: 0; }
footer { margin-top: 3rem; color: #6b7680; font-size: 0.85rem; }
@media (max-width: 800px) { .pair { grid-template-columns: 1fr; } nav ol { columns: 1; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(share: float, digits: int = 1) -> str:
    return "-" if not np.isfinite(share) else f"{100 * share:.{digits}f}%"


def _number(value: float, digits: int = 0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _formatter(spec: str) -> Callable[[object], str]:
    def format_one(value: object) -> str:
        missing = (
            value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        )
        return "-" if missing else spec.format(value)

    return format_one


def _table(
    frame: pd.DataFrame,
    formats: dict[str, str] | None = None,
    *,
    text: bool = False,
    index: bool = False,
) -> str:
    """An escaped HTML table; ``formats`` maps columns to format specs, others use 4 digits."""
    shown = frame.copy()
    for column, spec in (formats or {}).items():
        if column in shown.columns:
            shown[column] = shown[column].map(_formatter(spec)).astype(object)
    return shown.to_html(
        classes=["data", "text" if text else "num"],
        border=0,
        index=index,
        escape=True,
        na_rep="-",
        float_format=lambda v: f"{v:,.4g}",
    )


def _paragraph(text: str, css: str | None = None) -> str:
    """A paragraph of trusted report text (callers escape the data they put in it)."""
    return f'<p class="{css}">{text}</p>' if css else f"<p>{text}</p>"


def _note(text: str) -> str:
    return _paragraph(text, "note")


@dataclass
class _Figures:
    """Figures rendered once to PNG: embedded in the HTML and written as files."""

    dpi: int = DPI
    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, figure: object, caption: str) -> str:
        if name in self.files:
            raise ValueError(f"figure {name} added twice")  # a bug in this module
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=self.dpi, metadata={"Software": None})
        data = buffer.getvalue()
        self.files[name] = data
        encoded = base64.b64encode(data).decode("ascii")
        return (
            f'<figure id="fig-{_e(name.removesuffix(".png"))}">'
            f'<img src="data:image/png;base64,{encoded}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)} ({_e(name)})</figcaption></figure>"
        )


@dataclass
class _Context:
    pipeline: CLVPipeline
    scored: pd.DataFrame
    buyers: pd.DataFrame
    holdout: HoldoutEvaluation | None
    churn: ChurnEvaluation | None
    purchases_column: str | None
    value_column: str | None
    currency: str | None
    figures: _Figures

    @functools.cached_property
    def figure_inputs(self) -> FigureInputs:
        """What the named figures are drawn from (the summary columns of the buyers)."""
        summary = None
        if {"frequency", "recency", "T"} <= set(self.buyers.columns):
            summary = self.buyers[["frequency", "recency", "T"]].astype(float).dropna()
        return FigureInputs(
            table=self.scored,
            forecaster=self.pipeline.forecaster_,
            summary=summary if summary is not None and len(summary) else None,
            holdout=self.holdout,
            churn=self.churn,
        )

    def figure(self, name: str) -> object:
        """One of the model's named figures (:mod:`clvcast.figures`), as --plots and the
        MLflow run draw it."""
        return model_figure(name, self.figure_inputs)

    @property
    def money(self) -> str:
        return f" {self.currency}" if self.currency else ""

    @property
    def horizon(self) -> str:
        days = float(self.pipeline.horizon_days)
        return "12 months (365 days)" if days == 365.0 else f"{days:g} days"


# --- inputs --------------------------------------------------------------------------------


def _check_inputs(
    pipeline: CLVPipeline, scored: pd.DataFrame, evaluation: PipelineEvaluation | dict | None
) -> tuple[HoldoutEvaluation | None, ChurnEvaluation | None]:
    if not isinstance(pipeline, CLVPipeline):
        raise InputError(
            f"pipeline is a {type(pipeline).__name__}; pass a fitted clvcast CLVPipeline."
        )
    check_fitted(pipeline, "forecaster_")
    if not isinstance(scored, pd.DataFrame):
        raise InputError(f"scored is a {type(scored).__name__}; pass the scored contact table.")
    missing = [c for c in _REQUIRED if c not in scored.columns]
    if missing:
        raise InputError(
            f"the scored table is missing column(s) {missing} (see docs/scored-table.md); "
            f"available: {[str(c) for c in scored.columns]}."
        )
    if scored["r_score"].notna().sum() == 0:
        raise InputError(
            f"the scored table has no contact with purchases ({len(scored):,} rows, all "
            "prospects or empty); nothing to report."
        )
    if evaluation is None:
        return None, None
    if isinstance(evaluation, PipelineEvaluation):
        return evaluation.holdout, evaluation.churn
    if not isinstance(evaluation, dict) or not set(evaluation) <= {"holdout", "churn"}:
        raise InputError(
            "evaluation must be what CLVPipeline.evaluate returns, a dict "
            "{'holdout': HoldoutEvaluation, 'churn': ChurnEvaluation}, or None."
        )
    holdout, churn = evaluation.get("holdout"), evaluation.get("churn")
    if holdout is not None and not isinstance(holdout, HoldoutEvaluation):
        raise InputError(f"evaluation['holdout'] is a {type(holdout).__name__}, not a holdout.")
    if churn is not None and not isinstance(churn, ChurnEvaluation):
        raise InputError(f"evaluation['churn'] is a {type(churn).__name__}, not a churn one.")
    return holdout, churn


def _single_value(scored: pd.DataFrame, column: str) -> str | None:
    if column not in scored.columns:
        return None
    values = scored[column].dropna().astype(str).unique()
    return ", ".join(sorted(values)) if len(values) else None


def _as_of(scored: pd.DataFrame, pipeline: CLVPipeline) -> str:
    if "as_of" in scored.columns and scored["as_of"].notna().any():
        days = sorted({str(pd.Timestamp(d).date()) for d in scored["as_of"].dropna().unique()})
        return ", ".join(days)
    return str(pipeline.as_of_.date())


# --- numbers the text states ------------------------------------------------------------


def pareto_shares(values: pd.Series | np.ndarray, top_share: float = TOP_SHARE) -> dict:
    """The numbers of the Pareto sentence, from the values of contacts with a forecast.

    ``top_value_share``: share of the total held by the ``top_share`` most valuable
    contacts (read off :func:`clvcast.plots.lorenz_curve` as the figure does); and the
    smallest shares of contacts that hold half and 80% of the value.
    """
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    contacts, value = plots.lorenz_curve(array)
    return {
        "contacts": len(array),
        "total": float(array.sum()),
        "top_share": top_share,
        "top_contacts": int(round(top_share * len(array))),
        "top_value_share": float(np.interp(top_share, contacts, value)),
        "contacts_for_half": float(np.interp(0.5, value, contacts)),
        "contacts_for_80": float(np.interp(0.8, value, contacts)),
    }


def _pareto_sentence(shares: dict, horizon: str, money: str) -> str:
    return (
        f"The {_pct(shares['top_share'], 0)} of contacts with the highest predicted value "
        f"({shares['top_contacts']:,} of {shares['contacts']:,}) hold "
        f"<strong>{_pct(shares['top_value_share'])}</strong> of the value predicted for the "
        f"next {horizon}: {_number(shares['top_value_share'] * shares['total'])} of "
        f"{_number(shares['total'])}{_e(money)}. Half of the value is held by the top "
        f"{_pct(shares['contacts_for_half'])} of contacts, 80% of it by the top "
        f"{_pct(shares['contacts_for_80'])}."
    )


# --- sections ----------------------------------------------------------------------------


def _section(key: str, body: list[str]) -> str:
    part = f'<p class="part">{_e(PARTS[key])}</p>' if key in PARTS else ""
    return f'{part}<section id="{key}"><h2>{_e(SECTIONS[key])}</h2>{"".join(body)}</section>'


def _overview(ctx: _Context) -> list[str]:
    scored, buyers = ctx.scored, ctx.buyers
    prospects = len(scored) - len(buyers)
    contacts = (
        f"{len(scored):,}, all with purchases"
        if prospects == 0
        else f"{len(scored):,}: {len(buyers):,} with purchases and {prospects:,} prospects "
        "(no purchase yet, so no forecast)"
    )
    items = [("Contacts", contacts)]
    if ctx.value_column:
        total = float(buyers[ctx.value_column].sum())
        mean = float(buyers[ctx.value_column].mean())
        items.append(
            (
                f"Predicted value, next {ctx.horizon}",
                f"{_number(total)}{_e(ctx.money)} in all, {_number(mean, 2)} per contact with "
                "purchases (discounted CLV)",
            )
        )
        items.append(
            (
                "Concentration",
                _pareto_sentence(pareto_shares(buyers[ctx.value_column]), ctx.horizon, ctx.money),
            )
        )
        top = plots.segment_values(buyers, ctx.value_column).iloc[0]
        items.append(
            (
                "Most valuable segment",
                f"{_e(top.name)}: {_pct(top['contacts_share'])} of the contacts with "
                f"purchases, {_pct(top['value_share'])} of the predicted value",
            )
        )
    if ctx.purchases_column:
        items.append(
            (
                f"Predicted purchases, next {ctx.horizon}",
                f"{_number(float(buyers[ctx.purchases_column].sum()))} purchases expected (BG/NBD)",
            )
        )
    if "churn_risk_band" in scored.columns and buyers["churn_risk_band"].notna().any():
        high = buyers["churn_risk_band"] == "high"
        text = f"{int(high.sum()):,} contacts ({_pct(high.mean())}) with a high churn risk"
        if "high_value" in buyers.columns:
            valuable = high & buyers["high_value"].astype(bool)
            text += f", {int(valuable.sum()):,} of them high-value (M score 4-5)"
        items.append(
            (
                f"Churn risk (no purchase in {ctx.pipeline.churn_horizon_days} days)",
                text,
            )
        )
    if ctx.holdout is not None:
        m = ctx.holdout.metrics
        items.append(
            (
                "Forecast accuracy",
                f"{ctx.holdout.holdout_days}-day holdout: {_number(m['predicted_total'])} "
                f"purchases predicted, {_number(m['actual_total'])} happened "
                f"({m['aggregate_error_pct']:+.1f}%; repeating each contact's past rate: "
                f"{m['baseline_aggregate_error_pct']:+.1f}%)",
            )
        )
    if ctx.churn is not None:
        items.append(
            (
                "Churn model",
                f"ROC-AUC {ctx.churn.auc('classifier'):.3f} (BG/NBD alone "
                f"{ctx.churn.auc('bgnbd_no_purchase'):.3f}, days since last purchase "
                f"{ctx.churn.auc('recency'):.3f}; 0.5 = random)",
            )
        )
    glance = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    contents = "".join(
        f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title in SECTIONS.items()
    )
    body = [
        _paragraph(
            "What the model sees in the contact table and how far to trust it. The first "
            "part is for planning campaigns; the second shows how well the models fit and "
            "how they did on data they had not seen."
        ),
        f'<dl class="glance">{glance}</dl>',
        f"<nav><strong>Contents</strong><ol>{contents}</ol></nav>",
    ]
    if ctx.holdout is None or ctx.churn is None:
        body.append(
            _note(
                "This report was made without a holdout evaluation, so the sections on "
                "forecast accuracy and on the churn model's quality are left out. Evaluate "
                "the pipeline (CLVPipeline.evaluate, or train with --holdout-days) and pass "
                "its evaluation to include them."
            )
        )
    return body


def _segments(ctx: _Context) -> list[str]:
    value = ctx.value_column
    frame = plots.segment_values(ctx.scored, value)
    body = [
        _paragraph(
            "Every contact is in one named segment, set by its R, F and M scores (rules "
            "below, the first matching row wins). The bars show how many contacts each "
            f"segment has and how much of the value predicted for the next {ctx.horizon} it "
            "holds: a segment whose value share is far above its contact share is worth "
            "more attention per contact."
        ),
        ctx.figures.add(
            "segment_summary.png",
            plots.segment_summary(ctx.scored, value, currency=ctx.currency),
            "Contacts and total predicted value per RFM segment",
        ),
    ]
    table = frame.reset_index()
    extra = {}
    for column, name in (("p_alive", "mean P(alive)"), ("churn_risk", "mean churn risk")):
        if column in ctx.scored.columns:
            extra[name] = ctx.scored.groupby("rfm_segment", observed=True)[column].mean()
    for name, series in extra.items():
        table[name] = table["rfm_segment"].map(series)
    formats = {
        "contacts": "{:,.0f}",
        "contacts_share": "{:.1%}",
        "value_total": "{:,.0f}",
        "value_share": "{:.1%}",
        "value_mean": "{:,.2f}",
        "mean P(alive)": "{:.2f}",
        "mean churn risk": "{:.2f}",
    }
    if value:
        table = table.rename(
            columns={
                "value_total": f"total {value}",
                "value_share": "share of value",
                "value_mean": f"mean {value}",
            }
        )
        formats[f"total {value}"] = formats.pop("value_total")
        formats["share of value"] = formats.pop("value_share")
        formats[f"mean {value}"] = formats.pop("value_mean")
    table = table.rename(columns={"rfm_segment": "segment", "contacts_share": "share of contacts"})
    formats["share of contacts"] = formats.pop("contacts_share")
    body.append(_table(table, formats))
    body.append("<h3>Segment rules and typical actions</h3>")
    body.append(_table(segment_table(), text=True))
    return body


def _value(ctx: _Context) -> list[str]:
    if not ctx.value_column:
        return [_note("The scored table has no CLV column (it was scored without forecasts).")]
    values = ctx.buyers[ctx.value_column]
    shares = pareto_shares(values)
    return [
        _paragraph(_pareto_sentence(shares, ctx.horizon, ctx.money), "key"),
        _paragraph(
            "Left: how many contacts have each predicted value (most have little; the long "
            "tail on the right is where the money is). Right: contacts sorted by predicted "
            "value, highest first; the curve shows which share of the total value the top "
            "share of contacts holds. The further it bends above the diagonal, the more a "
            "campaign can gain by focusing on the top contacts. Prospects have no forecast "
            "and are not counted here."
        ),
        ctx.figures.add(
            "clv_distribution.png",
            plots.clv_distribution(
                ctx.buyers, ctx.value_column, currency=ctx.currency, top_share=TOP_SHARE
            ),
            "Distribution and concentration of predicted CLV",
        ),
    ]


def _rfm(ctx: _Context) -> list[str]:
    boundaries = ctx.pipeline.scorer_.boundaries()
    shown = boundaries[["dimension", "code", "label", "share"]].rename(
        columns={"label": "meaning", "share": "share of training contacts"}
    )
    body = [
        _paragraph(
            "R scores recency (days since the last purchase, 5 = most recent), F the number "
            "of purchase days and M the spend (5 = most). The boundaries were learned when "
            f"the model was trained (as of {ctx.pipeline.as_of_.date()}) and are frozen, so "
            "R5 means the same number of days in every scoring run. Equal values always get "
            "equal scores, so a bin can hold more or less than a fifth of the contacts."
        ),
        _table(shown, {"share of training contacts": "{:.1%}"}, text=True),
        _paragraph(
            "Each heat map crosses two scores: on the left the number of contacts per pair, "
            "on the right the total predicted value they hold (with the number of contacts "
            "in brackets). The best contacts sit top right."
        ),
    ]
    for rows, columns in _RFM_PAIRS:
        first, second = (name.removesuffix("_score").upper() for name in (rows, columns))
        stem = f"rfm_heatmap_{first.lower()}_{second.lower()}"
        pair = [
            ctx.figures.add(
                f"{stem}_contacts.png",
                plots.rfm_heatmap(ctx.buyers, rows, columns, figsize=_PAIR_FIGSIZE),
                f"Contacts by {first} and {second} score",
            )
        ]
        if ctx.value_column:
            pair.append(
                ctx.figures.add(
                    f"{stem}_{ctx.value_column}.png",
                    plots.rfm_heatmap(
                        ctx.buyers,
                        rows,
                        columns,
                        value=ctx.value_column,
                        agg="sum",
                        figsize=_PAIR_FIGSIZE,
                    ),
                    f"Total {ctx.value_column} by {first} and {second} score",
                )
            )
        body.append(f"<h3>{_e(first)} x {_e(second)}</h3>")
        body.append(f'<div class="pair">{"".join(pair)}</div>')
    return body


def _churn_risk(ctx: _Context) -> list[str]:
    if "churn_risk" not in ctx.scored.columns or ctx.buyers["churn_risk"].isna().all():
        return [_note("The scored table has no churn risk column.")]
    horizon = ctx.pipeline.churn_horizon_days
    buyers = ctx.buyers
    body = [
        _paragraph(
            f"Churn risk is the probability that a contact buys nothing in the "
            f"next {horizon} days; the bands are low (below 50%), medium (50-80%) and high "
            "(80% and above). In most shops many contacts buy once and never again, so a "
            "large share of high risks is normal: act on the valuable contacts among them "
            "(high-value = M score 4-5), not on the band alone."
        )
    ]
    if "churn_risk_band" in buyers.columns:
        bands = pd.Categorical(buyers["churn_risk_band"], ["low", "medium", "high"])
        grouped = buyers.groupby(bands, observed=False)
        table = pd.DataFrame(
            {
                "contacts": grouped.size(),
                "share": grouped.size() / len(buyers),
                "mean churn risk": grouped["churn_risk"].mean(),
            }
        )
        formats = {"contacts": "{:,.0f}", "share": "{:.1%}", "mean churn risk": "{:.2f}"}
        if "high_value" in buyers.columns:
            table["high-value contacts"] = grouped["high_value"].sum()
            formats["high-value contacts"] = "{:,.0f}"
        if ctx.value_column:
            table[f"total {ctx.value_column}"] = grouped[ctx.value_column].sum()
            formats[f"total {ctx.value_column}"] = "{:,.0f}"
        table.index.name = "risk band"
        body.append(_table(table.reset_index(), formats))
    body.append(
        ctx.figures.add(
            "churn_risk_by_segment.png",
            ctx.figure("churn_risk_by_segment.png"),
            "Churn risk within each RFM segment (box: middle half, line: median)",
        )
    )
    return body


def _model(ctx: _Context) -> list[str]:
    pipeline = ctx.pipeline
    bgnbd, gamma = pipeline.forecaster_.bgnbd_, pipeline.forecaster_.gamma_gamma_
    r, alpha, a, b = bgnbd.params_tuple()
    unit = bgnbd.time_unit_days_
    yearly = 365.0 * r / (alpha * unit)
    dropout = a / (a + b)
    parameter_formats = {
        c: "{:,.4f}" for c in ("coef", "se(coef)", "lower 95% bound", "upper 95% bound")
    }

    def parameters(model: object) -> str:
        frame = model.summary.reset_index().rename(columns={"index": "parameter"})
        return _table(frame, parameter_formats)

    fit = pd.DataFrame(
        [
            {
                "model": "BG/NBD (purchases)",
                "log-likelihood": bgnbd.log_likelihood_,
                "fit step": bgnbd.fit_step_,
                "penalizer used": bgnbd.penalizer_used_,
                "contacts fitted": bgnbd.n_contacts_,
                "repeat buyers": bgnbd.n_repeat_buyers_,
                "distinct rows": bgnbd.n_rows_fitted_,
            },
            {
                "model": "Gamma-Gamma (order value)",
                "log-likelihood": gamma.log_likelihood_,
                "fit step": gamma.fit_step_,
                "penalizer used": gamma.penalizer_used_,
                "contacts fitted": gamma.n_repeat_buyers_,
                "repeat buyers": gamma.n_repeat_buyers_,
                "distinct rows": gamma.n_rows_fitted_,
            },
        ]
    )
    fit_formats = {
        "log-likelihood": "{:,.2f}",
        "penalizer used": "{:g}",
        "contacts fitted": "{:,}",
        "repeat buyers": "{:,}",
        "distinct rows": "{:,}",
    }
    training = pd.DataFrame(
        [(key.replace("_", " "), value) for key, value in pipeline.training_.items()],
        columns=["training data", "value"],
    )
    training["value"] = [
        f"{v:,}" if isinstance(v, int | np.integer) else str(v) for v in training["value"]
    ]
    settings = pd.DataFrame(
        [(key.replace("_", " "), str(value)) for key, value in pipeline.get_params().items()],
        columns=["setting", "value"],
    )
    correlation = gamma.frequency_monetary_correlation_
    if gamma.fit_step_ in MEANING:
        spend = [
            _paragraph(
                f"The likelihood is largest at an edge of the model, fitted as its limit on "
                f"the {gamma.n_repeat_buyers_:,} repeat buyers: {MEANING[gamma.fit_step_]}. "
                f"One-time buyers get {_number(gamma.population_mean_, 2)}{_e(ctx.money)}. "
                "No standard errors there."
            )
        ]
    elif gamma.fit_step_ == CONSTANT_STEP:
        spend = [
            _paragraph(
                f"Not fitted: all {gamma.n_repeat_buyers_:,} repeat buyers spend the same per "
                "purchase day, so there is no spread of spend to learn. Every contact's "
                f"expected order value is {_number(gamma.population_mean_, 2)}{_e(ctx.money)}, "
                "and CLV is the predicted purchases times it, discounted."
            )
        ]
    else:
        spend = [
            parameters(gamma),
            _paragraph(
                f"Expected order value of a contact without repeat purchases (the population "
                f"mean p v / (q - 1)): {_number(gamma.population_mean_, 2)}{_e(ctx.money)}. "
                f"Correlation of purchase frequency and spend among the "
                f"{gamma.n_repeat_buyers_:,} repeat buyers: {correlation:.2f} (the model "
                f"assumes none; above {gamma.max_correlation:g} the fit warns)."
            ),
        ]
    return [
        _paragraph(
            f"The models were fitted on the purchases up to {pipeline.as_of_.date()}. "
            "BG/NBD describes how often contacts buy and when they drop out; Gamma-Gamma "
            "how much they spend per purchase day. Standard errors come from the observed "
            "information; a 95% interval far from zero means the parameter is well "
            "determined by the data."
        ),
        "<h3>BG/NBD</h3>",
        parameters(bgnbd),
        _paragraph(
            f"r and alpha spread the purchase rates over contacts: an active contact buys "
            f"on average r / alpha = {_number(yearly, 2)} times a year. a and b spread the "
            f"drop-out probability: after each purchase a contact leaves with probability "
            f"a / (a + b) = {_pct(dropout)} on average. alpha is in days"
            f"{'' if unit == 1.0 else f' x {unit:g}'}."
        ),
        "<h3>Gamma-Gamma</h3>",
        *spend,
        "<h3>Fit</h3>",
        _table(fit, fit_formats),
        _paragraph(
            "The fit step names the optimiser attempt that converged (lbfgs = the first, "
            "plain one). The log-likelihood is comparable only between models fitted on the "
            "same data."
        ),
        "<h3>Training data and settings</h3>",
        f'<div class="pair"><div>{_table(training, text=True)}</div>'
        f"<div>{_table(settings, text=True)}</div></div>",
    ]


def _holdout(ctx: _Context) -> list[str]:
    holdout = ctx.holdout
    if holdout is None:
        return [
            _note(
                "Not evaluated: no holdout evaluation was given. Train with --holdout-days "
                "(or call CLVPipeline.evaluate) to see how the forecast did on unseen days."
            )
        ]
    m = holdout.metrics
    rows = [
        ("total holdout purchases", m["predicted_total"], m["baseline_total"], "{:,.0f}"),
        (
            "aggregate error %",
            m["aggregate_error_pct"],
            m["baseline_aggregate_error_pct"],
            "{:+.1f}",
        ),
        ("MAE per contact", m["mae"], m["baseline_mae"], "{:.3f}"),
        ("RMSE per contact", m["rmse"], m["baseline_rmse"], "{:.3f}"),
        ("bias per contact", m["bias"], m["baseline_bias"], "{:+.3f}"),
    ]
    if np.isfinite(m.get("order_value_mae", np.nan)):
        rows.append(
            (
                f"order value MAE ({int(m['order_value_contacts']):,} repeat buyers)",
                m["order_value_mae"],
                m["order_value_baseline_mae"],
                "{:,.2f}",
            )
        )
    table = pd.DataFrame(
        [(name, spec.format(model), spec.format(base)) for name, model, base, spec in rows],
        columns=["measure", "BG/NBD (+ Gamma-Gamma)", "baseline"],
    )
    by_frequency = holdout.by_frequency.reset_index().rename(
        columns={
            "frequency_cal": "repeat purchases in calibration",
            "actual_mean": "actual mean",
            "predicted_mean": "BG/NBD mean",
            "baseline_mean": "baseline mean",
        }
    )
    return [
        _paragraph(
            f"A copy of the purchase model was fitted on the history up to "
            f"{holdout.calibration_end.date()} only and asked to predict the next "
            f"{holdout.holdout_days} days, to {holdout.observation_end.date()}, for the "
            f"{int(m['contacts']):,} contacts known by then. It predicted "
            f"{_number(m['predicted_total'])} purchases; {_number(m['actual_total'])} "
            f"happened ({m['aggregate_error_pct']:+.1f}%). The baseline repeats each "
            f"contact's past purchase rate and predicted {_number(m['baseline_total'])} "
            f"({m['baseline_aggregate_error_pct']:+.1f}%)."
        ),
        _table(table),
        ctx.figures.add(
            "tracking_cumulative.png",
            ctx.figure("tracking_cumulative.png"),
            "Cumulative repeat purchases, actual vs expected",
        ),
        ctx.figures.add(
            "tracking_weekly.png",
            ctx.figure("tracking_weekly.png"),
            "Repeat purchases per week, actual vs expected",
        ),
        _paragraph(
            "The model knows nothing of seasons or campaigns: weekly actuals scatter around "
            "its smooth line. What matters is that the lines stay together in the shaded "
            "holdout."
        ),
        ctx.figures.add(
            "calibration_vs_holdout.png",
            ctx.figure("calibration_vs_holdout.png"),
            "Mean holdout purchases by calibration frequency",
        ),
        _table(
            by_frequency,
            {
                "contacts": "{:,.0f}",
                "actual mean": "{:.3f}",
                "BG/NBD mean": "{:.3f}",
                "baseline mean": "{:.3f}",
            },
        ),
    ]


def _matrices(ctx: _Context) -> list[str]:
    horizon = float(ctx.pipeline.horizon_days)
    return [
        _paragraph(
            "The fitted BG/NBD model as a map: each cell is a contact of the oldest age in "
            "the table with a given number of repeat purchases (up) and days between first "
            "and last purchase (across). Frequent buyers whose last purchase is long past "
            "(top left) have most likely dropped out. One-time buyers (bottom row) have "
            "P(alive) = 1 however long they have been silent: BG/NBD lets a contact drop out "
            "only after a repeat purchase. The p_alive column is therefore no guide for them; "
            "use churn_risk and days_since_last_purchase to find lapsed contacts."
        ),
        ctx.figures.add(
            "frequency_recency_matrix.png",
            ctx.figure("frequency_recency_matrix.png"),
            f"Expected purchases in the next {horizon:g} days by frequency and recency",
        ),
        ctx.figures.add(
            "p_alive_matrix.png",
            ctx.figure("p_alive_matrix.png"),
            "Probability still active by frequency and recency",
        ),
    ]


def _churn_evaluation(ctx: _Context) -> list[str]:
    churn = ctx.churn
    if churn is None:
        return [
            _note(
                "Not evaluated: no churn evaluation was given. Train with --holdout-days (or "
                "call CLVPipeline.evaluate) to compare the churn model with its baselines."
            )
        ]
    metrics = churn.metrics.rename(
        index={
            "classifier": "churn classifier",
            "bgnbd_no_purchase": "BG/NBD P(no purchase)",
            "recency": "days since last purchase",
            "one_minus_p_alive": "1 - P(alive)",
        },
        level="score",
    )
    metrics = metrics.rename(
        columns={
            "roc_auc": "ROC-AUC",
            "pr_auc": "PR-AUC",
            "brier": "Brier",
            "churn_rate": "churn rate",
        }
    )
    formats = {
        "ROC-AUC": "{:.4f}",
        "PR-AUC": "{:.4f}",
        "Brier": "{:.4f}",
        "contacts": "{:,.0f}",
        "churn rate": "{:.3f}",
    }
    return [
        _paragraph(
            f"A copy of the churn classifier was trained on the history up to "
            f"{churn.cutoff.date()} only, scored the contacts of that day, and is compared "
            f"with what happened in the next {churn.horizon_days} days (to "
            f"{churn.as_of.date()}) and with two strong baselines. ROC-AUC: how well risks "
            "rank churners above stayers (0.5 = random); Brier: the mean squared error of "
            "the probability (lower is better). The churn model chose its scorer on an "
            f"earlier snapshot: {churn.model.selection_reason_}."
        ),
        _table(metrics, formats, index=True),
        ctx.figures.add(
            "churn_roc.png",
            ctx.figure("churn_roc.png"),
            "ROC curves of the churn classifier and its baselines",
        ),
        ctx.figures.add(
            "churn_calibration.png",
            ctx.figure("churn_calibration.png"),
            "Calibration: predicted churn risk vs observed churn rate",
        ),
        _paragraph(
            f"Drift dates: the expected and the actual days to the next purchase agree in "
            f"{churn.drift_concordance:.1%} of comparable pairs (concordance; 50% = "
            f"random). {churn.drifting_now:,} contacts were drifting already at the "
            f"cutoff; {_pct(churn.drifting_precision)} of them bought nothing in the "
            "horizon."
        ),
    ]


# --- the report --------------------------------------------------------------------------


@dataclass
class RenderedReport:
    """The report in memory: the HTML document and its figures as PNG bytes by file name."""

    html: str
    figures: dict[str, bytes]


def render_report(
    pipeline: CLVPipeline,
    scored: pd.DataFrame,
    *,
    evaluation: PipelineEvaluation | dict | None = None,
    title: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    currency: str | None = None,
) -> RenderedReport:
    """Build the report without writing anything (arguments as :func:`write_report`).

    The HTML is pure ASCII (other characters become character references), so it reads
    the same whatever encoding a viewer assumes; log it to MLflow with
    ``mlflow.log_text(report.html, "report.html")``.
    """
    holdout, churn = _check_inputs(pipeline, scored, evaluation)
    purchases_column, _, _, value_column = prediction_columns(pipeline.horizon_days)
    buyers = scored.loc[scored["r_score"].notna()]
    has_values = value_column in scored.columns and buyers[value_column].notna().any()
    ctx = _Context(
        pipeline=pipeline,
        scored=scored,
        buyers=buyers,
        holdout=holdout,
        churn=churn,
        purchases_column=purchases_column if purchases_column in scored.columns else None,
        value_column=value_column if has_values else None,
        currency=currency,
        figures=_Figures(),
    )
    sections = {
        "overview": _overview,
        "segments": _segments,
        "value": _value,
        "rfm": _rfm,
        "churn-risk": _churn_risk,
        "model": _model,
        "holdout": _holdout,
        "matrices": _matrices,
        "churn-evaluation": _churn_evaluation,
    }
    body = "".join(_section(key, build(ctx)) for key, build in sections.items())
    name = model_name or _single_value(scored, "model_name")
    version = model_version or _single_value(scored, "model_version")
    document = _document(
        title or DEFAULT_TITLE, _header_facts(scored, pipeline, name, version), body
    )
    ascii_document = document.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return RenderedReport(html=ascii_document, figures=dict(ctx.figures.files))


def write_report(
    pipeline: CLVPipeline,
    scored: pd.DataFrame,
    output_dir: str | Path,
    *,
    evaluation: PipelineEvaluation | dict | None = None,
    title: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    currency: str | None = None,
) -> Path:
    """Write ``output_dir/report.html`` and its figures as PNG files; return the HTML path.

    Parameters
    ----------
    pipeline
        A fitted :class:`~clvcast.pipeline.CLVPipeline` (parameters, fit, RFM boundaries).
    scored
        The contact table it scored (``CLVPipeline.score`` or ``clvcast predict``, columns
        of ``docs/scored-table.md``, from memory, Parquet or CSV); prospects, and tables
        without the forecast, churn or model columns (``model_name``...), are fine: what
        needs a missing column says so in the report.
    output_dir
        Folder for ``report.html`` and the PNG files; created if missing. Files of the
        same names are replaced, each atomically (PNG files first, the HTML last); other
        files are left alone, so a figure left from an earlier report with an evaluation
        stays until removed.
    evaluation
        What :meth:`~clvcast.pipeline.CLVPipeline.evaluate` returns (or a dict
        ``{"holdout": ..., "churn": ...}``); without it the holdout and churn evaluation
        sections only say that they were not evaluated.
    title, model_name, model_version
        Shown in the header; the model name and version default to the scored table's
        ``model_name`` and ``model_version`` columns when it has them.
    currency
        Name of the currency of the amounts, for the axes and the text.

    Raises :class:`~clvcast.errors.InputError` (before writing anything) for a table
    without the RFM columns or without any contact with purchases, or a malformed
    ``evaluation``.
    """
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"cannot write the report to {folder}: it is a file, not a folder.")
    report = render_report(
        pipeline,
        scored,
        evaluation=evaluation,
        title=title,
        model_name=model_name,
        model_version=model_version,
        currency=currency,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, data in report.figures.items():
        with atomic_path(folder / file_name) as temporary:
            temporary.write_bytes(data)
    target = folder / REPORT_FILE
    with atomic_path(target) as temporary:
        temporary.write_text(report.html, encoding="ascii")
    return target


def _header_facts(
    scored: pd.DataFrame, pipeline: CLVPipeline, name: str | None, version: str | None
) -> list[tuple[str, str]]:
    facts = [("As of", _as_of(scored, pipeline))]
    if name:
        facts.append(("Model", name))
    if version:
        facts.append(("Version", version))
    facts.append(("Trained on data up to", str(pipeline.as_of_.date())))
    scored_at = _single_value(scored, "scored_at")
    if scored_at:
        facts.append(("Scored at", scored_at))
    return facts


def _document(title: str, facts: list[tuple[str, str]], body: str) -> str:
    meta = "".join(f"<span><strong>{_e(k)}:</strong> {_e(v)}</span>" for k, v in facts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f'<body><main><header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>'
        f"{body}"
        f"<footer>Made by clvcast {_e(__version__)}. Self-contained: the figures are "
        "embedded and also saved as PNG files next to this page.</footer>"
        "</main></body></html>\n"
    )
