"""train: fit the pipeline, log an MLflow run, register a version, move the alias."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data import IngestionReport, ReadOptions, parse_as_of
from clvcast.data.chunks import DEFAULT_CHUNK_CONTACTS
from clvcast.engines import training_data, with_as_of
from clvcast.errors import InputError
from clvcast.jobs.common import (
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL_NAME,
    Progress,
    TrainConfig,
    Transactions,
    _engine,
    _source_name,
    _Steps,
    check_not_an_input,
)
from clvcast.text_ids import isin_ids


@dataclass
class TrainResult:
    """What :func:`train` did: the fitted pipeline, its metrics and where MLflow keeps it."""

    run_id: str
    model_uri: str
    model_name: str | None
    version: str | None
    alias: str | None
    alias_moved: bool
    alias_reason: str
    tracking_uri: str
    metrics: dict[str, float]
    params: dict[str, Any]
    pipeline: Any = None
    report: IngestionReport | None = None
    evaluation: Any = None
    saved: Path | None = None
    table: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary ``clvcast train --json`` prints."""
        return {
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "registered_model": self.model_name,
            "version": self.version,
            "alias": self.alias,
            "alias_moved": self.alias_moved,
            "alias_reason": self.alias_reason,
            "tracking_uri": self.tracking_uri,
            "params": self.params,
            "metrics": self.metrics,
            "saved": None if self.saved is None else str(self.saved),
        }


def train(
    transactions: Transactions,
    *,
    as_of: Any,
    config: TrainConfig | None = None,
    read: ReadOptions | None = None,
    engine: str = "local",
    spark_master: str | None = None,
    chunk_contacts: int = DEFAULT_CHUNK_CONTACTS,
    work_dir: str | None = None,
    store: Any = None,
    experiment: str = DEFAULT_EXPERIMENT,
    register_as: str | None = DEFAULT_MODEL_NAME,
    alias: str | None = None,
    force_alias: bool = False,
    save: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Fit the pipeline on the purchases up to ``as_of``, log an MLflow run, register a
    version and move ``alias`` to it when the champion rule allows.

    Parameters
    ----------
    transactions
        Purchase log: a CSV/TSV/Parquet path or a DataFrame, read with ``read``
        (:class:`~clvcast.data.ReadOptions`: column names, date format, policies).
    as_of
        Last day of history, inclusive.
    config
        :class:`TrainConfig` (horizon, discount, churn horizon, holdout, churn sample).
    engine, spark_master, chunk_contacts, work_dir
        Where the reading and summarising run (:mod:`clvcast.engines`).
    store
        An :class:`~clvcast.tracking.MlflowStore` or a tracking URI (default
        ``MLFLOW_TRACKING_URI``, else ``mlruns/`` in the working directory).
    register_as, alias, force_alias
        Registered model name (None: log the run only), the alias to move (``champion``)
        and whether to move it even when the champion rule says no.
    save
        Also save the pipeline as a model file here (its folder is created).
    progress
        Called with one line of text at the start and end of each long step.
    """
    from clvcast.tracking import MlflowStore

    config = config or TrainConfig()
    config.check()
    settings = _engine(engine, spark_master, chunk_contacts, work_dir)
    read = with_as_of(read, as_of)
    day = parse_as_of(as_of)
    if save is not None:
        _prepare_save(save, {"transactions": transactions})
    mlflow_store = MlflowStore.of(store)
    mlflow_store.check_writable()
    steps = _Steps(progress)
    pipeline = config.pipeline()
    with training_data(
        transactions,
        read,
        settings,
        sample_size=config.churn_sample_contacts,
        step=steps,
    ) as data:
        evaluation = None
        metrics: dict[str, float] = {}
        # One set of churn snapshots for the evaluation and the fit. The local engine's
        # sample comes from ingestion: one row per contact and day.
        snapshots = pipeline.churn_snapshots(
            data.sample, day, one_row_per_day=settings.engine == "local"
        )
        if config.holdout_days:
            with steps(f"evaluating on a {config.holdout_days}-day holdout"):
                evaluation = pipeline.evaluate(
                    data.sample, day, config.holdout_days, snapshots=snapshots
                )
                metrics.update(evaluation.metrics)
        with steps("fitting RFM bins, BG/NBD, Gamma-Gamma and the churn classifier"):
            pipeline.fit_summary(
                data.summary,
                data.sample,
                day,
                churn_contacts=data.sample_contacts,
                snapshots=snapshots,
            )
        # A large log is shown through the churn sample: the figures need one table.
        with steps("scoring the training contacts for the run's figures"):
            table = pipeline.score(data.sample, day)
        metrics.update(_training_metrics(pipeline, data.report))
        params = _training_params(pipeline, config, read, transactions)
        source = _source_name(transactions, read)
        with steps("logging the run and the model to MLflow"):
            run = mlflow_store.log_training(
                pipeline,
                params=params,
                metrics=metrics,
                artifacts=_run_artifacts(pipeline, data.report, table, evaluation, register_as),
                example=_example(data.sample, table),
                experiment=experiment,
                register_as=register_as,
                alias=alias,
                force_alias=force_alias,
                version_tags=_version_tags(pipeline, config, source, data.report, metrics),
                description=_version_description(pipeline, source, metrics),
            )
    saved = pipeline.save(save) if save is not None else None
    return TrainResult(
        **vars(run),
        pipeline=pipeline,
        report=data.report,
        evaluation=evaluation,
        saved=saved,
        table=table,
    )


def _prepare_save(save: str | os.PathLike[str], inputs: dict[str, object]) -> None:
    """The model file's folder exists (created if missing) and the file can be written."""
    from clvcast.atomic import check_writable

    check_not_an_input(save, inputs)
    folder = Path(save).expanduser().parent
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the folder {folder} of {save}: {exc.strerror}."
            ) from exc
    check_writable(save)


def _training_metrics(pipeline: Any, report: IngestionReport) -> dict[str, float]:
    forecaster = pipeline.forecaster_
    metrics = {
        "bgnbd_log_likelihood": forecaster.bgnbd_.log_likelihood_,
        "gamma_gamma_log_likelihood": forecaster.gamma_gamma_.log_likelihood_,
        "data_rows_read": report.rows_read,
        "data_rows_dropped": report.rows_dropped,
        "data_purchase_days": report.purchase_days,
        "data_contacts": pipeline.training_["contacts"],
        "data_repeat_buyers": pipeline.training_["repeat_buyers"],
        "data_history_days": pipeline.training_["history_days"],
        "churn_training_rows": pipeline.churn_model_.n_training_rows_,
        "churn_training_contacts": pipeline.training_["churn_training_contacts"],
    }
    metrics.update({f"bgnbd_{k}": v for k, v in forecaster.bgnbd_.params_.items()})
    metrics.update({f"gamma_gamma_{k}": v for k, v in forecaster.gamma_gamma_.params_.items()})
    return metrics


def _training_params(
    pipeline: Any, config: TrainConfig, read: ReadOptions, transactions: Transactions
) -> dict[str, Any]:
    return {
        "as_of": str(pipeline.as_of_.date()),
        "holdout_days": config.holdout_days or "",
        "churn_scorer": pipeline.churn_model_.scorer_,
        "churn_scorer_reason": pipeline.churn_model_.selection_reason_[:490],
        "transactions": _source_name(transactions, read),
        "nonpositive_policy": read.nonpositive,
        "duplicates_policy": read.duplicates,
        "bgnbd_fit_step": pipeline.forecaster_.bgnbd_.fit_step_,
        "gamma_gamma_fit_step": pipeline.forecaster_.gamma_gamma_.fit_step_,
    }


def _version_tags(
    pipeline: Any,
    config: TrainConfig,
    source: str,
    report: IngestionReport,
    metrics: dict[str, float],
) -> dict[str, str]:
    tags = {
        "as_of": str(pipeline.as_of_.date()),
        "horizon_days": f"{config.horizon_days:g}",
        "data_file": source,
        "rows": str(report.rows_read),
        "contacts": str(pipeline.training_["contacts"]),
    }
    for metric in ("holdout_rmse", "churn_roc_auc"):
        if metric in metrics:
            tags[metric] = f"{metrics[metric]:.4f}"
    return tags


def _version_description(pipeline: Any, source: str, metrics: dict[str, float]) -> str:
    text = (
        f"clvcast pipeline trained on {source} as of "
        f"{pipeline.as_of_.date()} ({pipeline.training_['contacts']:,} contacts, "
        f"{pipeline.horizon_days:g}-day forecast)"
    )
    if "holdout_rmse" in metrics and "churn_roc_auc" in metrics:
        text += (
            f"; holdout purchases RMSE {metrics['holdout_rmse']:.3f}, churn ROC-AUC "
            f"{metrics['churn_roc_auc']:.4f}"
        )
    return text + "."


def _example(sample: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The purchases of 20 contacts and their scored rows: the pyfunc model's example
    (scored with the whole sample: 20 contacts alone are too few for the churn snapshot)."""
    ids = sample["contact_id"].drop_duplicates().head(20)
    return (
        sample[isin_ids(sample["contact_id"], ids)],
        table[isin_ids(table["contact_id"], ids)],
    )


def _run_artifacts(
    pipeline: Any,
    report: IngestionReport,
    table: pd.DataFrame,
    evaluation: Any,
    model_name: str | None,
) -> dict[str, Any]:
    """The MLflow run's files: data report, boundaries, parameters, figures, HTML report.

    The report draws most of the model's figures from the run's data; the run stores those
    PNG files as the report embeds them (the same picture under one name, drawn once: 1.7 s
    less for CDNOW) and draws only the ones the report does not have.
    """
    from clvcast.figures import FIGURE_NAMES, model_figures
    from clvcast.html_report import render_report

    artifacts: dict[str, Any] = {
        "ingestion_report.json": report.to_dict(),
        "rfm_boundaries.json": pipeline.scorer_.to_dict(),
        "rfm_boundaries.csv": pipeline.scorer_.boundaries(),
        "bgnbd_parameters.csv": pipeline.forecaster_.bgnbd_.summary,
        "gamma_gamma_parameters.csv": pipeline.forecaster_.gamma_gamma_.summary,
    }
    if evaluation is not None:
        artifacts.update(
            {
                "holdout_by_frequency.csv": evaluation.holdout.by_frequency,
                "churn_metrics.csv": evaluation.churn.metrics,
                "churn_calibration.csv": evaluation.churn.calibration,
            }
        )
    report = render_report(pipeline, table, evaluation=evaluation, model_name=model_name or None)
    drawn = {name: png for name, png in report.figures.items() if name in FIGURE_NAMES}
    others = tuple(name for name in FIGURE_NAMES if name not in drawn)
    artifacts.update(
        model_figures(table, forecaster=pipeline.forecaster_, evaluation=evaluation, names=others)
    )
    artifacts.update(drawn)
    artifacts["report.html"] = report.html
    return artifacts
