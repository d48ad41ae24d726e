"""The contact tables of the exploring commands: rfm, forecast and churn."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data import IngestionReport, ReadOptions, parse_as_of
from clvcast.engines import with_as_of
from clvcast.jobs.common import (
    Progress,
    Transactions,
    _check_plots_folder,
    _contacts,
    _Steps,
    check_not_an_input,
    check_output_file,
    import_meanwhile,
    save_figures,
)
from clvcast.limits import check_limits


@dataclass
class TableResult:
    """A contact table, what made it and where it went."""

    table: pd.DataFrame
    report: IngestionReport
    scorer: Any
    forecaster: Any = None
    churn_model: Any = None
    evaluation: Any = None
    output: str | None = None
    boundaries_output: str | None = None
    figures: list[Path] = field(default_factory=list)


def _table_job(
    transactions: Transactions,
    *,
    as_of: Any,
    contacts: Transactions | None,
    contacts_id_col: str | None,
    read: ReadOptions | None,
    output: str | os.PathLike[str] | None,
    csv_format: str,
    boundaries: str | os.PathLike[str] | None,
    save_boundaries: str | os.PathLike[str] | None,
    plots: str | os.PathLike[str] | None,
    monetary_basis: str,
    figure_group: str = "forecast",
    needs_purchases: bool = True,
    build: Callable[..., tuple[Any, Any]],
    build_imports: tuple[str, ...] = (),
) -> TableResult:
    """Shared shape of rfm/forecast/churn: preflight, read, build, write (a CSV in
    ``csv_format``, ``default`` or ``marketing``: :mod:`clvcast.marketing`).

    ``build(log, summary, scorer, contacts, as_of)`` makes the table. A job that needs only
    the summary (``needs_purchases=False``) gets it computed where DuckDB read the input
    (:func:`clvcast.summary.summarize_view`) and ``log=None``: the purchase log never goes
    to pandas and back. ``build_imports`` are the modules ``build`` imports: they load while
    the input is read (:func:`~clvcast.jobs.common.import_meanwhile`)."""
    from clvcast.data import read_transactions
    from clvcast.data.ingest import ingested
    from clvcast.marketing import check_csv_format
    from clvcast.output import write_table
    from clvcast.rfm import RFMScorer, check_monetary_basis
    from clvcast.summary import summarize_view

    read = with_as_of(read, as_of)
    inputs = {"transactions": transactions, "contacts": contacts, "boundaries": boundaries}
    check_csv_format(csv_format)
    if output is not None:
        check_output_file(output, inputs)
    if save_boundaries is not None:
        from clvcast.atomic import check_writable

        check_not_an_input(save_boundaries, inputs)
        check_writable(save_boundaries)
    _check_plots_folder(plots)
    check_monetary_basis(monetary_basis)
    import_meanwhile(build_imports)
    if needs_purchases:
        purchase_log = read_transactions(transactions, **asdict(read))
        summary, report = None, purchase_log.report
    else:
        purchase_log = None
        with ingested(transactions, read) as (connection, report):
            summary = summarize_view(connection, read.as_of)
    table_contacts = _contacts(contacts, read, contacts_id_col)
    scorer = RFMScorer.load(boundaries) if boundaries else None
    result, extra = build(purchase_log, summary, scorer, table_contacts, read.as_of)
    done = TableResult(
        table=result.table,
        report=report,
        scorer=result.scorer,
        forecaster=result.forecaster,
        churn_model=result.churn_model,
        evaluation=extra,
    )
    if output is not None:
        write_table(result.table, output, csv_format)
        done.output = str(output)
    if save_boundaries is not None:
        result.scorer.save(save_boundaries)
        done.boundaries_output = str(save_boundaries)
    if plots is not None:
        from clvcast.figures import FIGURE_GROUPS, model_figures

        figures = model_figures(
            result.table,
            forecaster=result.forecaster,
            summary=result.summary,
            evaluation=extra,
            names=FIGURE_GROUPS[figure_group],
        )
        done.figures = save_figures(figures, plots)
    return done


def rfm(
    transactions: Transactions,
    *,
    as_of: Any,
    contacts: Transactions | None = None,
    contacts_id_col: str | None = None,
    read: ReadOptions | None = None,
    output: str | os.PathLike[str] | None = None,
    csv_format: str = "default",
    monetary_basis: str = "total",
    boundaries: str | os.PathLike[str] | None = None,
    save_boundaries: str | os.PathLike[str] | None = None,
) -> TableResult:
    """The RFM contact table: summary, quintile scores, cells and segments (no models).

    ``boundaries`` applies RFM boundaries saved earlier (JSON) instead of learning them;
    ``save_boundaries`` writes the ones used.
    """
    from clvcast.contact_table import build_contact_table

    def build(log, summary, scorer, contacts_table, day):
        made = build_contact_table(
            log,
            day,
            contacts=contacts_table,
            scorer=scorer,
            monetary_basis=monetary_basis,
            summary=summary,
        )
        return made, None

    return _table_job(
        transactions,
        as_of=as_of,
        contacts=contacts,
        contacts_id_col=contacts_id_col,
        read=read,
        output=output,
        csv_format=csv_format,
        boundaries=boundaries,
        save_boundaries=save_boundaries,
        plots=None,
        monetary_basis=monetary_basis,
        needs_purchases=False,
        build=build,
    )


def forecast(
    transactions: Transactions,
    *,
    as_of: Any,
    contacts: Transactions | None = None,
    contacts_id_col: str | None = None,
    read: ReadOptions | None = None,
    output: str | os.PathLike[str] | None = None,
    csv_format: str = "default",
    horizon_days: float = 365.0,
    discount_rate_monthly: float = 0.01,
    penalizer: float = 0.0,
    holdout_days: int | None = None,
    compare_models: bool = False,
    monetary_basis: str = "total",
    boundaries: str | os.PathLike[str] | None = None,
    save_boundaries: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> TableResult:
    """The contact table with predicted purchases, P(alive) and CLV over ``horizon_days``.

    ``holdout_days`` evaluates the forecast first (``result.evaluation``), on a copy fitted
    up to ``as_of - holdout_days``; ``plots`` is a folder for the figures as PNG files.
    """
    from clvcast.contact_table import build_contact_table

    check_limits(
        horizon_days=horizon_days,
        discount_rate_monthly=discount_rate_monthly,
        penalizer=penalizer,
        holdout_days=holdout_days,
    )
    steps = _Steps(progress)

    def build(log, summary, scorer, contacts_table, day):
        from clvcast.models import CLVForecaster, evaluate_holdout

        forecaster = CLVForecaster(
            horizon_days=horizon_days,
            discount_rate_monthly=discount_rate_monthly,
            penalizer=penalizer,
        )
        evaluation = None
        if holdout_days:
            day = parse_as_of(day)
            with steps(f"evaluating on a {holdout_days}-day holdout"):
                evaluation = evaluate_holdout(
                    log.purchases,
                    day - pd.Timedelta(days=holdout_days),
                    day,
                    forecaster=forecaster,
                    compare_models=compare_models,
                )
        with steps("fitting BG/NBD and Gamma-Gamma and scoring every contact"):
            made = build_contact_table(
                log,
                day,
                contacts=contacts_table,
                scorer=scorer,
                monetary_basis=monetary_basis,
                forecaster=forecaster,
                summary=summary,
            )
        return made, evaluation

    return _table_job(
        transactions,
        as_of=as_of,
        contacts=contacts,
        contacts_id_col=contacts_id_col,
        read=read,
        output=output,
        csv_format=csv_format,
        boundaries=boundaries,
        save_boundaries=save_boundaries,
        plots=plots,
        monetary_basis=monetary_basis,
        figure_group="forecast",
        needs_purchases=bool(holdout_days),  # the holdout reads the purchases themselves
        build=build,
        build_imports=("clvcast.models",),
    )


def churn(
    transactions: Transactions,
    *,
    as_of: Any,
    contacts: Transactions | None = None,
    contacts_id_col: str | None = None,
    read: ReadOptions | None = None,
    output: str | os.PathLike[str] | None = None,
    csv_format: str = "default",
    horizon_days: int = 90,
    cutoffs: int = 12,
    spacing_days: int = 14,
    threads: int | None = None,
    evaluate: bool = True,
    monetary_basis: str = "total",
    boundaries: str | os.PathLike[str] | None = None,
    save_boundaries: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> TableResult:
    """The contact table with churn risk, risk bands and drift dates.

    ``evaluate`` (default) first evaluates the classifier trained one horizon earlier
    against what happened since (``result.evaluation``).
    """
    from clvcast.contact_table import build_contact_table

    check_limits(
        churn_horizon_days=horizon_days,
        churn_cutoffs=cutoffs,
        churn_spacing_days=spacing_days,
        threads=threads,
    )
    steps = _Steps(progress)

    def build(log, summary, scorer, contacts_table, day):
        from clvcast.churn import ChurnModel, evaluate_churn
        from clvcast.churn.features import SnapshotSeries

        day = parse_as_of(day)
        model = ChurnModel(
            horizon_days=horizon_days,
            n_cutoffs=cutoffs,
            spacing_days=spacing_days,
            n_threads=threads,
        )
        history = log.purchases
        # The evaluation (trained one horizon earlier) and the model share most snapshots.
        snapshots = SnapshotSeries.up_to(history, day, horizon_days, one_row_per_day=True)
        evaluation = None
        if evaluate:
            with steps(f"evaluating the churn model on the last {horizon_days} days"):
                evaluation = evaluate_churn(history, day, model, snapshots=snapshots)
        with steps("choosing and training the churn scorer"):
            model.fit(history, day, snapshots=snapshots)
        made = build_contact_table(
            log,
            day,
            contacts=contacts_table,
            scorer=scorer,
            monetary_basis=monetary_basis,
            churn_model=model,
        )
        return made, evaluation

    return _table_job(
        transactions,
        as_of=as_of,
        contacts=contacts,
        contacts_id_col=contacts_id_col,
        read=read,
        output=output,
        csv_format=csv_format,
        boundaries=boundaries,
        save_boundaries=save_boundaries,
        plots=plots,
        monetary_basis=monetary_basis,
        figure_group="churn",
        build=build,
        build_imports=("clvcast.churn",),
    )
