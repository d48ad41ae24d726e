"""Plain-text summaries of the jobs' results, as the ``clvcast`` commands print them.

Functions here only turn results into text; they compute nothing the result does not hold
and print nothing (the CLI prints what they return).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def format_boundaries(scorer) -> str:
    boundaries = scorer.boundaries()
    lines = [f"RFM boundaries (learned on {scorer.n_contacts_:,} contacts):"]
    for row in boundaries.itertuples():
        lines.append(f"  {row.label:<55} {row.share:6.1%} of contacts")
    return "\n".join(lines)


def format_segments(table: pd.DataFrame) -> str:
    counts = (
        table.groupby("rfm_segment")
        .agg(contacts=("contact_id", "size"), total_spend=("total_spend", "sum"))
        .sort_values("contacts", ascending=False)
    )
    lines = ["Segments:"]
    for name, row in counts.iterrows():
        share = row.contacts / len(table)
        lines.append(
            f"  {name:<22} {int(row.contacts):>8,} contacts {share:6.1%}"
            f"   total spend {row.total_spend:>14,.2f}"
        )
    return "\n".join(lines)


def format_parameters(model) -> str:
    return "  " + "  ".join(
        f"{name}={value:.4g} (se {se:.2g})"
        for name, value, se in zip(
            model.params_.index, model.params_, model.standard_errors_, strict=True
        )
    )


def format_models(forecaster) -> str:
    bgnbd = forecaster.bgnbd_
    lines = [
        f"BG/NBD fitted on {bgnbd.n_contacts_:,} contacts ({bgnbd.n_rows_fitted_:,} distinct "
        f"rows, step '{bgnbd.fit_step_}'), log-likelihood {bgnbd.log_likelihood_:,.1f}:",
        format_parameters(bgnbd),
        *_spend_model_lines(forecaster.gamma_gamma_),
    ]
    return "\n".join(lines)


def _spend_model_lines(model) -> list[str]:
    """What the Gamma-Gamma fit found: its parameters, or, where it is not fitted or lies at
    an edge (a parameter at infinity), what that means for the expected order values."""
    from clvcast.models.gamma_gamma import CONSTANT_STEP
    from clvcast.models.spend_edges import FIXED_SPEND, MEANING

    buyers, mean = model.n_repeat_buyers_, model.population_mean_
    p, q, _ = model.params_
    if model.fit_step_ == CONSTANT_STEP:
        return [
            f"Gamma-Gamma not fitted: all {buyers:,} repeat buyers spend the same per purchase day;",
            f"  every contact's expected order value is {mean:,.2f}",
        ]
    if model.fit_step_ in MEANING:
        finite = f"q={q:.4g}" if model.fit_step_ == FIXED_SPEND else f"p={p:.4g}"
        return [
            f"Gamma-Gamma at an edge on {buyers:,} repeat buyers ({finite}): "
            f"{MEANING[model.fit_step_]};",
            f"  one-time buyers get the population mean order value {mean:,.2f}",
        ]
    return [
        f"Gamma-Gamma fitted on {buyers:,} repeat buyers (step '{model.fit_step_}'), "
        f"frequency/spend correlation {model.frequency_monetary_correlation_:.2f}:",
        format_parameters(model),
        f"  one-time buyers get the population mean order value {mean:,.2f}",
    ]


def _top_fifth_share(values: np.ndarray) -> float:
    """Share of ``values``' sum held by its largest fifth (at least one value). A partition,
    not a sort: a million contacts in milliseconds instead of a quarter second."""
    total = values.sum()
    if not total:
        return 0.0
    k = max(1, values.size // 5)
    return float(np.partition(values, values.size - k)[values.size - k :].sum() / total)


def format_forecast(table: pd.DataFrame, forecaster) -> str:
    from clvcast.models import prediction_columns

    purchases, p_alive, _, clv = prediction_columns(forecaster.horizon_days)
    values = table[clv].dropna()
    top = _top_fifth_share(values.to_numpy(dtype=float))
    return "\n".join(
        [
            f"Forecast for the next {forecaster.horizon_days:g} days "
            f"(discount {forecaster.discount_rate_monthly:.2%} a month):",
            f"  predicted purchases {table[purchases].sum():,.0f} in total, "
            f"{table[purchases].mean():.3f} per contact",
            f"  predicted value (CLV) {values.sum():,.2f} in total, {values.mean():,.2f} per contact",
            f"  the top 20% of contacts hold {top:.0%} of the predicted value",
            f"  mean P(alive) {table[p_alive].mean():.3f}",
        ]
    )


def format_churn(table: pd.DataFrame, model) -> str:
    scored = table.dropna(subset=["churn_risk"])
    bands = scored["churn_risk_band"].value_counts()
    valuable = scored[scored["high_value"]]
    lines = [
        f"Churn risk (no purchase in the next {model.horizon_days} days), trained on "
        f"{model.n_training_rows_:,} snapshot rows at {len(model.cutoffs_)} cutoffs "
        f"({model.cutoffs_[-1].date()} to {model.cutoffs_[0].date()}); scorer "
        f"{model.scorer_}: {model.selection_reason_}",
        "  "
        + ", ".join(f"{band} {int(bands.get(band, 0)):,}" for band in ("low", "medium", "high")),
        f"  high-value contacts (M 4-5): {len(valuable):,}, of which "
        f"{int((valuable['churn_risk_band'] == 'high').sum()):,} at high risk",
        f"  mean risk {scored['churn_risk'].mean():.3f}",
    ]
    return "\n".join(lines)


def format_holdout_line(metrics: dict[str, float], holdout_days: int | None) -> str:
    """One line of holdout metrics of a training run."""
    m = metrics
    return (
        f"Holdout ({holdout_days} days): purchases RMSE {m['holdout_rmse']:.3f} "
        f"(baseline {m['holdout_baseline_rmse']:.3f}), aggregate error "
        f"{m['holdout_aggregate_error_pct']:+.1f}%; churn ROC-AUC "
        f"{m['churn_roc_auc']:.4f} (BG/NBD "
        f"{m['churn_baseline_bgnbd_no_purchase_roc_auc']:.4f}, recency "
        f"{m['churn_baseline_recency_roc_auc']:.4f})"
    )


def format_train(result: Any, holdout_days: int | None) -> str:
    """What ``clvcast train`` prints: data, models, holdout, MLflow run, version, alias."""
    pipeline = result.pipeline
    lines = [result.report.format(), "", format_models(pipeline.forecaster_)]
    if "holdout_rmse" in result.metrics:
        lines += ["", format_holdout_line(result.metrics, holdout_days)]
    churn = pipeline.churn_model_
    lines += [f"Churn scorer {churn.scorer_}: {churn.selection_reason_}", ""]
    lines.append(f"MLflow run {result.run_id} in {result.tracking_uri}")
    if result.version:
        lines.append(f"Registered {result.model_uri}")
    if result.alias:
        verb = "moved to" if result.alias_moved else "not moved to"
        lines.append(
            f"Alias '{result.alias}' {verb} version {result.version}: {result.alias_reason}"
        )
    if result.saved:
        lines.append(f"Saved the pipeline to {result.saved}")
    return "\n".join(lines)


def format_predict(result: Any) -> str:
    """What ``clvcast predict`` prints: data, contacts scored, outputs."""
    lines = [
        result.report.format(),
        "",
        f"Scored {result.contacts:,} contacts ({result.prospects:,} prospects) with "
        f"{result.model_name} version {result.model_version} as of {result.as_of}",
        f"Wrote {result.output}",
    ]
    for name, where in result.side_outputs.items():
        rows = result.side_rows[name]
        if name == "changes":
            share = rows / result.contacts if result.contacts else 0.0
            lines.append(
                f"Wrote {rows:,} changed rows (new, changed or removed: {share:.1%} of "
                f"{result.contacts:,}) to {where}"
            )
        else:
            what = {"migrations": "RFM migrations", "audiences": "audience members"}
            what["audience_changes"] = "audience entries and exits"
            lines.append(f"Wrote {rows:,} {what.get(name, name)} to {where}")
    if result.audiences:
        lines.append("Audiences: members" + (", entered, left" if _has_events(result) else ""))
        width = max(len(name) for name in result.audiences)
        for name, counts in result.audiences.items():
            line = f"  {name:<{width}}  {counts['members']:>9,}"
            if "entered" in counts:
                line += f"  +{counts['entered']:,}  -{counts['left']:,}"
            lines.append(line)
    lines += [f"Note: {note}" for note in result.notes]
    return "\n".join(lines)


def _has_events(result: Any) -> bool:
    return any("entered" in counts for counts in result.audiences.values())


def format_table_job(result: Any, output: str | None, plots: str | None = None) -> str:
    """What ``clvcast rfm``, ``forecast`` and ``churn`` print."""
    lines = [result.report.format(), ""]
    if result.forecaster is None and result.churn_model is None:
        lines += [format_boundaries(result.scorer), "", format_segments(result.table)]
    if result.forecaster is not None:
        lines.append(format_models(result.forecaster))
        if result.evaluation is not None:
            lines += ["", result.evaluation.format()]
        lines += ["", format_forecast(result.table, result.forecaster)]
    if result.churn_model is not None:
        if result.evaluation is not None:
            lines += [result.evaluation.format(), ""]
        lines.append(format_churn(result.table, result.churn_model))
    lines += ["", f"Wrote {len(result.table):,} contacts to {output}"]
    if result.boundaries_output:
        lines.append(f"Wrote RFM boundaries to {result.boundaries_output}")
    if result.figures:
        names = ", ".join(path.name for path in result.figures)
        lines.append(f"Wrote {len(result.figures)} figures to {plots}: {names}")
    return "\n".join(lines)


def format_demo(result: Any) -> str:
    """What ``clvcast demo`` prints: every step's summary and where everything is."""
    trained, scored = result.trained, result.scored
    pipeline, table, m = trained.pipeline, scored.table, trained.metrics
    evaluation = trained.evaluation
    model_uri = scored.model_uri
    lines = [
        f"clvcast demo: CDNOW master data (shipped with lifetimes), as of {scored.as_of}",
        "",
        trained.report.format(),
        "",
        format_boundaries(pipeline.scorer_),
        "",
        format_segments(table),
        "",
        format_models(pipeline.forecaster_),
        "",
        evaluation.holdout.format(),
        "",
        format_forecast(table, pipeline.forecaster_),
        "",
        evaluation.churn.format(),
        "",
        format_churn(table, pipeline.churn_model_),
        "",
        f"MLflow run:      {trained.run_id} (holdout RMSE {m['holdout_rmse']:.3f}, churn "
        f"ROC-AUC {m['churn_roc_auc']:.4f})",
        f"Model version:   {trained.model_uri}; alias '{trained.alias}' "
        f"{'moved' if trained.alias_moved else 'not moved'}: {trained.alias_reason}",
        f"Scored table:    {result.parquet} and {result.csv} ({scored.contacts:,} contacts, scored "
        f"with {model_uri} = version {scored.model_version})",
    ]
    if trained.saved:
        lines.append(f"Pipeline file:   {trained.saved}")
    lines += [
        f"HTML report:     {result.report_path} (open it in a browser, no server needed)",
        f"MLflow UI:       mlflow ui --backend-store-uri {trained.tracking_uri}",
        "                 then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines)
