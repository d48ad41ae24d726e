"""The ``clvcast`` command line: parse arguments, call the library, print a summary.

Errors of the :class:`~clvcast.errors.ClvcastError` family end as one line on stderr and exit
code 2 (bad input) or 1 (other failures); ``--verbose`` adds the traceback. Warnings are
printed as ``clvcast: warning: ...`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from clvcast import __version__
from clvcast.errors import ClvcastError, InputError

log = logging.getLogger("clvcast")


def _add_transaction_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("transactions input")
    group.add_argument(
        "--transactions",
        required=required,
        metavar="PATH",
        help="purchase log: CSV, TSV or Parquet, one row per purchase or order line",
    )
    group.add_argument(
        "--contact-col",
        default="contact_id",
        metavar="NAME",
        help="column with the contact id (default: %(default)s)",
    )
    group.add_argument(
        "--date-col",
        default="date",
        metavar="NAME",
        help="column with the purchase date or timestamp (default: %(default)s)",
    )
    group.add_argument(
        "--amount-col",
        default="amount",
        metavar="NAME",
        help="column with the purchase amount (default: %(default)s)",
    )
    group.add_argument(
        "--quantity-col",
        default=None,
        metavar="NAME",
        help="order-line exports without an amount: column with the quantity; "
        "amount = quantity x price (with --price-col)",
    )
    group.add_argument(
        "--price-col",
        default=None,
        metavar="NAME",
        help="column with the unit price (with --quantity-col)",
    )
    group.add_argument(
        "--order-col",
        default=None,
        metavar="NAME",
        help="order or invoice id: lines of one order are one order, on the day of its "
        "first line; a line with amount <= 0 whose id is an order's, or 'C' + it "
        "(a cancellation invoice), is netted against that order",
    )
    group.add_argument(
        "--date-format",
        default=None,
        metavar="FMT",
        help="strftime format of the dates, e.g. %%d/%%m/%%Y (default: one format inferred "
        "from every value; a column that reads as day/month and month/day alike is refused)",
    )
    group.add_argument(
        "--dayfirst",
        action="store_true",
        default=None,
        help="dates like 03/09/2022 put the day first (3 September)",
    )
    group.add_argument(
        "--timezone",
        default="UTC",
        metavar="ZONE",
        help="the shop's time zone, e.g. Europe/Madrid: timestamps with a UTC offset are "
        "converted to it before taking the day; naive ones are taken as local "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--sep",
        default=None,
        metavar="CHAR",
        help="CSV separator (default: detected from the header among , ; tab |); "
        "'tab' or '\\t' for a tab",
    )
    group.add_argument(
        "--decimal",
        choices=[".", ","],
        default=".",
        help="decimal mark of CSV amounts, '17.25' or '17,25' (default: %(default)s)",
    )
    group.add_argument(
        "--encoding",
        default="utf-8",
        metavar="NAME",
        help="text encoding of CSV files (default: %(default)s, BOM or not); e.g. latin-1, cp1252",
    )
    group.add_argument(
        "--id-case",
        choices=["keep", "lower"],
        default="keep",
        help="lower: lower-case contact ids (emails), so Ana@x.com and ana@x.com are one "
        "contact (default: %(default)s; ids differing only in case get a warning)",
    )
    group.add_argument(
        "--nonpositive",
        choices=["drop", "net", "net-contact", "error"],
        default="drop",
        help="rows with amount <= 0 (refunds, returns) not matched to an order by "
        "--order-col: drop them; net them against the same contact-day; net-contact: "
        "net them against the contact's earlier purchases, latest first (a purchase "
        "netted to <= 0 is removed, a refund with nothing before it dropped); or "
        "refuse the input (default: %(default)s)",
    )
    group.add_argument(
        "--duplicates",
        choices=["keep", "drop", "error"],
        default="keep",
        help="rows identical in every column (default: %(default)s)",
    )
    group.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop and count rows with a missing or unparseable date or amount, "
        "instead of refusing the input (rows without a contact id, guest checkouts, "
        "are always dropped and counted)",
    )
    group.add_argument(
        "--contacts",
        default=None,
        metavar="PATH",
        help="contacts table (CSV or Parquet) with a contact id column and any "
        "attributes; contacts without purchases become prospects",
    )
    group.add_argument(
        "--contacts-id-col",
        default=None,
        metavar="NAME",
        help="contact id column of the contacts table (default: --contact-col)",
    )
    group.add_argument(
        "--as-of",
        required=required,
        metavar="DATE",
        help="last day of history, inclusive (YYYY-MM-DD); later rows are dropped and counted",
    )


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("contact table output")
    group.add_argument(
        "--output", required=True, metavar="PATH", help="contact table to write: .parquet or .csv"
    )
    group.add_argument(
        "--monetary-basis",
        choices=["total", "average"],
        default="total",
        help="M score on total spend or on average order value (default: %(default)s)",
    )
    group.add_argument(
        "--boundaries",
        metavar="PATH",
        default=None,
        help="apply RFM boundaries saved earlier (JSON) instead of learning them",
    )
    group.add_argument(
        "--save-boundaries",
        metavar="PATH",
        default=None,
        help="write the RFM boundaries used to this JSON file",
    )


def _read_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of read_transactions from the transaction options."""
    return {
        "contact_col": args.contact_col,
        "date_col": args.date_col,
        "amount_col": args.amount_col,
        "date_format": args.date_format,
        "as_of": args.as_of,
        "nonpositive": args.nonpositive,
        "duplicates": args.duplicates,
        "invalid": "drop" if args.drop_invalid else "error",
        "dayfirst": args.dayfirst,
        "timezone": args.timezone,
        "sep": _separator(args.sep),
        "decimal": args.decimal,
        "encoding": args.encoding,
        "id_case": args.id_case,
        "quantity_col": args.quantity_col,
        "price_col": args.price_col,
        "order_col": args.order_col,
    }


def _separator(text: str | None) -> str | None:
    """--sep as a character: 'tab' and '\\t' mean a tab."""
    if text is None:
        return None
    return "\t" if text.lower() in {"tab", "\\t"} else text


def _read_contacts(args: argparse.Namespace):
    from clvcast.data import read_contacts

    if not args.contacts:
        return None
    from clvcast.pipeline import check_contact_attributes

    contacts = read_contacts(
        args.contacts,
        contact_col=args.contacts_id_col or args.contact_col,
        sep=_separator(args.sep),
        encoding=args.encoding,
        id_case=args.id_case,
    )
    check_contact_attributes(contacts)
    return contacts


def _read_inputs(args: argparse.Namespace):
    from clvcast.data import read_transactions

    purchase_log = read_transactions(args.transactions, **_read_options(args))
    return purchase_log, _read_contacts(args)


@contextlib.contextmanager
def _chunked_inputs(args: argparse.Namespace):
    """The purchase log in chunks of --chunk-contacts contacts (files in a temporary folder
    under --work-dir, removed afterwards) and the contacts table."""
    from clvcast.data import read_transactions_in_chunks

    if args.chunk_contacts < 1000:
        raise InputError(
            f"--chunk-contacts {args.chunk_contacts}: use at least 1000 contacts per chunk."
        )
    if args.work_dir and not Path(args.work_dir).is_dir():
        raise InputError(f"--work-dir {args.work_dir} is not a folder; create it first.")
    with tempfile.TemporaryDirectory(prefix="clvcast-chunks-", dir=args.work_dir) as folder:
        with _step(args, f"reading and checking {args.transactions}"):
            log = read_transactions_in_chunks(
                args.transactions,
                folder,
                chunk_contacts=args.chunk_contacts,
                **_read_options(args),
            )
        if log.n_chunks > 1:
            _progress(args, f"{log.report.contacts:,} contacts in {log.n_chunks} chunks")
        yield log, _read_contacts(args)


def _shows_progress(args: argparse.Namespace) -> bool:
    """Progress goes to a terminal (stderr), or anywhere with --verbose; never with --quiet."""
    return not args.quiet and (args.verbose or sys.stderr.isatty())


def _progress(args: argparse.Namespace, message: str) -> None:
    """A progress line, shown where _step shows its lines."""
    if _shows_progress(args):
        print(f"clvcast: {message}", file=sys.stderr, flush=True)


def _add_scale_options(parser: argparse.ArgumentParser) -> None:
    from clvcast.data.chunks import DEFAULT_CHUNK_CONTACTS

    group = parser.add_argument_group("large inputs")
    group.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="local: DuckDB and pandas on this machine, in chunks; spark: Apache Spark "
        "(pip install 'clvcast[spark]', Java 17+) (default: %(default)s)",
    )
    group.add_argument(
        "--spark-master",
        default=None,
        metavar="URL",
        help="Spark master URL, e.g. spark://host:7077 or local[4] (default: local[*])",
    )
    group.add_argument(
        "--chunk-contacts",
        type=int,
        default=DEFAULT_CHUNK_CONTACTS,
        metavar="N",
        help="process the purchase log in chunks of about N contacts, written to Parquet "
        "files in --work-dir, so memory holds one chunk at a time (default: %(default)s)",
    )
    group.add_argument(
        "--work-dir",
        default=None,
        metavar="DIR",
        help="folder for the chunk files and DuckDB's spill files (default: the system's "
        "temporary folder); it needs about the size of the input as Parquet",
    )


def _check_output_path(path: str, args: argparse.Namespace | None = None) -> None:
    """Fail before the work if the output cannot be written, or would overwrite an input."""
    from clvcast.atomic import check_writable
    from clvcast.output import table_format

    table_format(path)
    if args is not None:
        _check_not_an_input(path, args)
    check_writable(path)


_INPUT_OPTIONS = ("transactions", "contacts", "previous", "scored", "boundaries", "model")


def _check_not_an_input(output: str, args: argparse.Namespace) -> None:
    """Refuse an output path that is one of the command's input files (it would replace it)."""
    target = Path(output).expanduser().resolve()
    for option in _INPUT_OPTIONS:
        value = getattr(args, option, None)
        if not value or "://" in str(value) or str(value).startswith(("models:", "runs:")):
            continue
        source = Path(value).expanduser().resolve()
        same = source == target
        if not same and source.exists() and target.exists():
            same = os.path.samefile(source, target)
        if same:
            raise InputError(
                f"the output {output} is the --{option.replace('_', '-')} input file; writing "
                "it would replace the input. Write the output to another path."
            )


def cmd_rfm(args: argparse.Namespace) -> int:
    """clvcast rfm: contact table with summary, RFM scores, cells and segments."""
    from clvcast.atomic import check_writable
    from clvcast.output import write_table
    from clvcast.pipeline import rfm_contact_table
    from clvcast.rfm import RFMScorer

    _check_output_path(args.output, args)
    if args.save_boundaries:
        _check_not_an_input(args.save_boundaries, args)
        check_writable(args.save_boundaries)
    purchase_log, contacts = _read_inputs(args)
    scorer = RFMScorer.load(args.boundaries) if args.boundaries else None
    table, scorer = rfm_contact_table(
        purchase_log,
        args.as_of,
        contacts=contacts,
        scorer=scorer,
        monetary_basis=args.monetary_basis,
    )
    write_table(table, args.output)
    if args.save_boundaries:
        scorer.save(args.save_boundaries)
    if not args.quiet:
        print(purchase_log.report.format())
        print()
        print(_format_boundaries(scorer))
        print()
        print(_format_segments(table))
        print()
        print(f"Wrote {len(table):,} contacts to {args.output}")
        if args.save_boundaries:
            print(f"Wrote RFM boundaries to {args.save_boundaries}")
    return 0


def _format_boundaries(scorer) -> str:
    boundaries = scorer.boundaries()
    lines = [f"RFM boundaries (learned on {scorer.n_contacts_:,} contacts):"]
    for row in boundaries.itertuples():
        lines.append(f"  {row.label:<55} {row.share:6.1%} of contacts")
    return "\n".join(lines)


def _format_segments(table: pd.DataFrame) -> str:
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


def cmd_forecast(args: argparse.Namespace) -> int:
    """clvcast forecast: contact table plus predicted purchases, P(alive) and CLV."""
    from clvcast.atomic import check_writable
    from clvcast.data import parse_as_of
    from clvcast.models import CLVForecaster, evaluate_holdout
    from clvcast.output import write_table
    from clvcast.pipeline import build_contact_table
    from clvcast.rfm import RFMScorer

    _check_output_path(args.output, args)
    _check_plots_folder(args.plots)
    if args.save_boundaries:
        _check_not_an_input(args.save_boundaries, args)
        check_writable(args.save_boundaries)
    if args.holdout_days is not None and args.holdout_days < 1:
        raise InputError(f"--holdout-days {args.holdout_days}: use a whole number of days >= 1.")
    purchase_log, contacts = _read_inputs(args)
    forecaster = CLVForecaster(
        horizon_days=args.horizon_days,
        discount_rate_monthly=args.discount_rate_monthly,
        penalizer=args.penalizer,
    )
    evaluation = None
    if args.holdout_days:
        as_of = parse_as_of(args.as_of)
        calibration_end = as_of - pd.Timedelta(days=args.holdout_days)
        log.info("evaluating on a %d-day holdout", args.holdout_days)
        evaluation = evaluate_holdout(
            purchase_log.purchases,
            calibration_end,
            as_of,
            forecaster=forecaster,
            compare_models=args.compare_models,
        )
    scorer = RFMScorer.load(args.boundaries) if args.boundaries else None
    result = build_contact_table(
        purchase_log,
        args.as_of,
        contacts=contacts,
        scorer=scorer,
        monetary_basis=args.monetary_basis,
        forecaster=forecaster,
    )
    write_table(result.table, args.output)
    if args.save_boundaries:
        result.scorer.save(args.save_boundaries)
    written = _write_plots(args.plots, result, evaluation) if args.plots else []
    if not args.quiet:
        print(purchase_log.report.format())
        print()
        print(_format_models(result.forecaster))
        if evaluation is not None:
            print()
            print(evaluation.format())
        print()
        print(_format_forecast(result.table, result.forecaster))
        print()
        print(f"Wrote {len(result.table):,} contacts to {args.output}")
        if written:
            print(
                f"Wrote {len(written)} figures to {args.plots}: "
                + ", ".join(path.name for path in written)
            )
    return 0


def _write_plots(folder: str, result, evaluation) -> list[Path]:
    """Render the forecast figures as PNG files (atomically) and return their paths."""
    from clvcast import plots  # figures are plain Figure objects: no GUI backend involved
    from clvcast.models import prediction_columns

    out = Path(folder)
    if not out.is_dir():
        raise InputError(f"--plots {folder}: folder does not exist; create it first.")
    model = result.forecaster.bgnbd_
    clv_column = prediction_columns(result.forecaster.horizon_days)[3]
    figures = {
        "frequency_recency_matrix.png": plots.frequency_recency_matrix(
            model, horizon_days=result.forecaster.horizon_days, summary=result.summary
        ),
        "p_alive_matrix.png": plots.p_alive_matrix(model, summary=result.summary),
        "clv_distribution.png": plots.clv_distribution(
            result.table.dropna(subset=[clv_column]), column=clv_column
        ),
        "rfm_heatmap.png": plots.rfm_heatmap(result.table.dropna(subset=["r_score"])),
    }
    if evaluation is not None:
        figures["calibration_vs_holdout.png"] = plots.calibration_vs_holdout(evaluation)
        figures["tracking_cumulative.png"] = plots.tracking(evaluation, cumulative=True)
        figures["tracking_weekly.png"] = plots.tracking(evaluation, cumulative=False)
    return _save_figures(out, figures)


def _save_figures(folder: Path, figures: dict) -> list[Path]:
    """Write each Figure as ``folder/name`` (PNG, atomically); return the paths."""
    from clvcast.atomic import atomic_path

    written = []
    for name, figure in figures.items():
        with atomic_path(folder / name) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
        written.append(folder / name)
    return written


def _format_parameters(model) -> str:
    return "  " + "  ".join(
        f"{name}={value:.4g} (se {se:.2g})"
        for name, value, se in zip(
            model.params_.index, model.params_, model.standard_errors_, strict=True
        )
    )


def _format_models(forecaster) -> str:
    bgnbd, gamma_gamma = forecaster.bgnbd_, forecaster.gamma_gamma_
    lines = [
        f"BG/NBD fitted on {bgnbd.n_contacts_:,} contacts ({bgnbd.n_rows_fitted_:,} distinct "
        f"rows, step '{bgnbd.fit_step_}'), log-likelihood {bgnbd.log_likelihood_:,.1f}:",
        _format_parameters(bgnbd),
        f"Gamma-Gamma fitted on {gamma_gamma.n_repeat_buyers_:,} repeat buyers (step "
        f"'{gamma_gamma.fit_step_}'), frequency/spend correlation "
        f"{gamma_gamma.frequency_monetary_correlation_:.2f}:",
        _format_parameters(gamma_gamma),
        f"  one-time buyers get the population mean order value "
        f"{gamma_gamma.population_mean_:,.2f}",
    ]
    return "\n".join(lines)


def _format_forecast(table: pd.DataFrame, forecaster) -> str:
    from clvcast.models import prediction_columns

    purchases, p_alive, _, clv = prediction_columns(forecaster.horizon_days)
    values = table[clv].dropna().sort_values(ascending=False)
    top = values.head(max(1, len(values) // 5)).sum() / values.sum() if values.sum() else 0.0
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


def cmd_churn(args: argparse.Namespace) -> int:
    """clvcast churn: contact table with churn risk, bands and drift dates."""
    from clvcast.churn import ChurnModel, evaluate_churn
    from clvcast.churn.features import SnapshotSeries
    from clvcast.data import parse_as_of
    from clvcast.output import write_table
    from clvcast.pipeline import build_contact_table
    from clvcast.rfm import RFMScorer

    _check_output_path(args.output, args)
    _check_plots_folder(args.plots)
    purchase_log, contacts = _read_inputs(args)
    model = ChurnModel(
        horizon_days=args.horizon_days,
        n_cutoffs=args.cutoffs,
        spacing_days=args.spacing_days,
        n_threads=args.threads,
    )
    as_of = parse_as_of(args.as_of)
    history = purchase_log.purchases
    # The evaluation (trained one horizon earlier) and the model share most snapshots.
    snapshots = SnapshotSeries(history.loc[history["date"] <= as_of], args.horizon_days)
    evaluation = None
    if not args.no_evaluation:
        with _step(args, f"evaluating the churn model on the last {args.horizon_days} days"):
            evaluation = evaluate_churn(history, as_of, model, snapshots=snapshots)
    with _step(args, "choosing and training the churn scorer"):
        model.fit(history, as_of, snapshots=snapshots)
    scorer = RFMScorer.load(args.boundaries) if args.boundaries else None
    result = build_contact_table(
        purchase_log,
        args.as_of,
        contacts=contacts,
        scorer=scorer,
        monetary_basis=args.monetary_basis,
        churn_model=model,
    )
    write_table(result.table, args.output)
    if args.save_boundaries:
        result.scorer.save(args.save_boundaries)
    written = []
    if args.plots:
        from clvcast import plots

        figures = {"churn_risk_by_segment.png": plots.churn_risk_by_segment(result.table)}
        if evaluation is not None:
            figures["churn_roc.png"] = plots.churn_roc(evaluation)
            figures["churn_calibration.png"] = plots.churn_calibration(evaluation)
        written = [path.name for path in _save_figures(Path(args.plots), figures)]
    if not args.quiet:
        print(purchase_log.report.format())
        if evaluation is not None:
            print()
            print(evaluation.format())
        print()
        print(_format_churn(result.table, model))
        print()
        print(f"Wrote {len(result.table):,} contacts to {args.output}")
        if written:
            print(f"Wrote {len(written)} figures to {args.plots}: " + ", ".join(written))
    return 0


def _check_plots_folder(folder: str | None) -> None:
    if folder and not Path(folder).is_dir():
        raise InputError(f"--plots {folder}: folder does not exist; create it first.")


def _format_churn(table: pd.DataFrame, model) -> str:
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


@contextlib.contextmanager
def _step(args: argparse.Namespace, message: str):
    """Show a long step on a terminal (stderr), or with --verbose; quiet in a pipe."""
    show = _shows_progress(args)
    started = time.perf_counter()
    if show:
        print(f"clvcast: {message} ...", file=sys.stderr, flush=True)
    yield
    if show:
        elapsed = time.perf_counter() - started
        print(f"clvcast: {message}: done in {elapsed:.1f} s", file=sys.stderr, flush=True)


def _add_tracking_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "mlruns/mlflow.db in the working directory)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON summary on stdout instead of text"
    )


def _training_artifacts(pipeline, purchase_log, table, evaluation) -> dict:
    from clvcast import plots

    summary = pipeline.forecaster_.bgnbd_
    artifacts = {
        "ingestion_report.json": purchase_log.report.to_dict(),
        "rfm_boundaries.json": pipeline.scorer_.to_dict(),
        "rfm_boundaries.csv": pipeline.scorer_.boundaries(),
        "bgnbd_parameters.csv": summary.summary,
        "gamma_gamma_parameters.csv": pipeline.forecaster_.gamma_gamma_.summary,
        "frequency_recency_matrix.png": plots.frequency_recency_matrix(summary),
        "p_alive_matrix.png": plots.p_alive_matrix(summary),
        "clv_distribution.png": plots.clv_distribution(table.dropna(subset=["clv_12m"])),
        "rfm_heatmap.png": plots.rfm_heatmap(table.dropna(subset=["r_score"])),
        "churn_risk_by_segment.png": plots.churn_risk_by_segment(table),
    }
    if evaluation:
        holdout, churn = evaluation["holdout"], evaluation["churn"]
        artifacts.update(
            {
                "holdout_by_frequency.csv": holdout.by_frequency,
                "calibration_vs_holdout.png": plots.calibration_vs_holdout(holdout),
                "tracking_cumulative.png": plots.tracking(holdout, cumulative=True),
                "tracking_weekly.png": plots.tracking(holdout, cumulative=False),
                "churn_metrics.csv": churn.metrics,
                "churn_calibration.csv": churn.calibration,
                "churn_roc.png": plots.churn_roc(churn),
                "churn_calibration.png": plots.churn_calibration(churn),
            }
        )
    return artifacts


def _report_html(pipeline, table, evaluation, model_name) -> str:
    from clvcast.report import render_report

    return render_report(pipeline, table, evaluation=evaluation, model_name=model_name or None).html


def cmd_report(args: argparse.Namespace) -> int:
    """clvcast report: a self-contained HTML report (and PNG figures) of a model version."""
    from clvcast.output import read_scored
    from clvcast.report import write_report
    from clvcast.tracking import load_model

    if not args.scored and not args.transactions:
        raise InputError("clvcast report needs --scored PATH or --transactions PATH --as-of DATE.")
    if (args.transactions or args.holdout_days) and not (args.transactions and args.as_of):
        raise InputError("--transactions and --as-of go together (and --holdout-days needs them).")
    with _step(args, f"loading {args.model}"):
        loaded = load_model(args.model, args.tracking_uri, trust_model_file=args.trust_model_file)
    purchase_log, contacts = _read_inputs(args) if args.transactions else (None, None)
    if args.scored:
        scored = read_scored(args.scored)
        versions = set(scored.get("model_version", pd.Series(dtype=str)).astype(str))
        if versions and versions != {loaded.version}:
            print(
                f"clvcast: warning: {args.scored} was scored with version(s) "
                f"{sorted(versions)}, the report's model is version {loaded.version}",
                file=sys.stderr,
            )
    else:
        with _step(args, "scoring every contact"):
            scored = loaded.pipeline.score(purchase_log, args.as_of, contacts=contacts)
    evaluation = None
    if args.holdout_days:
        with _step(args, f"evaluating on a {args.holdout_days}-day holdout"):
            loaded.pipeline.evaluate(purchase_log, args.as_of, args.holdout_days)
            evaluation = loaded.pipeline.last_evaluation_
    with _step(args, f"writing the report to {args.output}"):
        path = write_report(
            loaded.pipeline,
            scored,
            args.output,
            evaluation=evaluation,
            title=args.title,
            model_name=loaded.name,
            model_version=loaded.version,
            currency=args.currency,
        )
    if not args.quiet:
        print(
            f"Wrote {path} (open it in a browser; no server needed) and its figures as PNG "
            f"in {Path(args.output)}"
        )
    return 0


def train_pipeline(args: argparse.Namespace, purchase_log) -> tuple:
    """Fit (and evaluate) the pipeline, log it to MLflow; returns (pipeline, run, table)."""
    from clvcast.data.chunks import DEFAULT_CHURN_SAMPLE_CONTACTS
    from clvcast.pipeline import CLVPipeline
    from clvcast.tracking import log_training_run

    pipeline = CLVPipeline(
        horizon_days=args.horizon_days,
        churn_horizon_days=args.churn_horizon_days,
        discount_rate_monthly=args.discount_rate_monthly,
        churn_sample_contacts=getattr(args, "churn_sample_contacts", DEFAULT_CHURN_SAMPLE_CONTACTS),
    )
    metrics: dict[str, float] = {}
    evaluation = None
    from clvcast.spark.engine import SparkTrainingData  # no pyspark import until used

    # Spark hands over the summary and the churn sample; evaluation runs on the sample.
    from_spark = isinstance(purchase_log, SparkTrainingData)
    log = purchase_log.sample if from_spark else purchase_log
    if args.holdout_days:
        with _step(args, f"evaluating on a {args.holdout_days}-day holdout"):
            metrics.update(pipeline.evaluate(log, args.as_of, args.holdout_days))
            evaluation = pipeline.last_evaluation_
    with _step(args, "fitting RFM bins, BG/NBD, Gamma-Gamma and the churn classifier"):
        if from_spark:
            pipeline.fit_summary(
                purchase_log.summary,
                purchase_log.sample,
                args.as_of,
                churn_contacts=purchase_log.sample_contacts,
            )
        else:
            pipeline.fit(purchase_log, args.as_of)
    # A large log is shown through the churn sample: the figures need one table.
    shown, _ = pipeline.sample_purchases(log, args.as_of)
    with _step(args, "scoring the training contacts for the run's figures"):
        table = pipeline.score(shown, args.as_of)
    forecaster = pipeline.forecaster_
    metrics.update(
        {
            "bgnbd_log_likelihood": forecaster.bgnbd_.log_likelihood_,
            "gamma_gamma_log_likelihood": forecaster.gamma_gamma_.log_likelihood_,
            "data_rows_read": purchase_log.report.rows_read,
            "data_rows_dropped": purchase_log.report.rows_dropped,
            "data_purchase_days": purchase_log.report.purchase_days,
            "data_contacts": pipeline.training_["contacts"],
            "data_repeat_buyers": pipeline.training_["repeat_buyers"],
            "data_history_days": pipeline.training_["history_days"],
            "churn_training_rows": pipeline.churn_model_.n_training_rows_,
            "churn_training_contacts": pipeline.training_["churn_training_contacts"],
        }
    )
    metrics.update({f"bgnbd_{k}": v for k, v in forecaster.bgnbd_.params_.items()})
    metrics.update({f"gamma_gamma_{k}": v for k, v in forecaster.gamma_gamma_.params_.items()})
    params = {
        "as_of": str(pipeline.as_of_.date()),
        "holdout_days": args.holdout_days or "",
        "churn_scorer": pipeline.churn_model_.scorer_,
        "churn_scorer_reason": pipeline.churn_model_.selection_reason_[:490],
        "transactions": Path(args.transactions).name if hasattr(args, "transactions") else "",
        "nonpositive_policy": getattr(args, "nonpositive", "drop"),
        "duplicates_policy": getattr(args, "duplicates", "keep"),
        "bgnbd_fit_step": forecaster.bgnbd_.fit_step_,
        "gamma_gamma_fit_step": forecaster.gamma_gamma_.fit_step_,
    }
    example_ids = shown["contact_id"].drop_duplicates().head(20)
    example = shown[shown["contact_id"].isin(example_ids)]
    with _step(args, "logging the run and the model to MLflow"):
        run = log_training_run(
            pipeline,
            params=params,
            metrics=metrics,
            artifacts=_training_artifacts(pipeline, purchase_log, table, evaluation)
            | {"report.html": _report_html(pipeline, table, evaluation, args.register_as)},
            input_example=example,
            experiment=args.experiment,
            register_as=args.register_as or None,
            alias=args.alias,
            force_alias=args.force_alias,
            tracking_uri=args.tracking_uri,
        )
    return pipeline, run, table


@contextlib.contextmanager
def _spark_training_data(args: argparse.Namespace):
    """The summary and the churn sample computed by Spark, for train_pipeline."""
    from clvcast.data.ingest import ReadOptions
    from clvcast.spark.engine import training_data_spark
    from clvcast.spark.session import job_session

    with (
        job_session(args.spark_master) as spark,
        _step(args, f"reading and summarising {args.transactions} with Spark"),
    ):
        yield training_data_spark(
            spark,
            args.transactions,
            ReadOptions(**_read_options(args)),
            args.as_of,
            args.churn_sample_contacts,
        )


def cmd_train(args: argparse.Namespace) -> int:
    """clvcast train: fit the pipeline, log an MLflow run, register a model version."""
    from clvcast.atomic import check_writable

    if args.holdout_days is not None and args.holdout_days < 1:
        raise InputError(f"--holdout-days {args.holdout_days}: use a whole number of days >= 1.")
    _check_not_an_input(args.save, args)
    check_writable(args.save)
    if args.churn_sample_contacts < 1000:
        raise InputError(
            f"--churn-sample-contacts {args.churn_sample_contacts}: use at least 1000 contacts."
        )
    if args.engine == "spark":
        with _spark_training_data(args) as data:
            pipeline, run, _ = train_pipeline(args, data)
        purchase_log = data
    else:
        with _chunked_inputs(args) as (purchase_log, _):
            pipeline, run, _ = train_pipeline(args, purchase_log)
    saved = pipeline.save(args.save)
    if args.json:
        print(json.dumps({**run.to_dict(), "saved": str(saved)}, indent=2, default=str))
    elif not args.quiet:
        print(purchase_log.report.format())
        print()
        print(_format_models(pipeline.forecaster_))
        if "holdout_rmse" in run.metrics:
            m = run.metrics
            print()
            print(
                f"Holdout ({args.holdout_days} days): purchases RMSE {m['holdout_rmse']:.3f} "
                f"(baseline {m['holdout_baseline_rmse']:.3f}), aggregate error "
                f"{m['holdout_aggregate_error_pct']:+.1f}%; churn ROC-AUC "
                f"{m['churn_roc_auc']:.4f} (BG/NBD "
                f"{m['churn_baseline_bgnbd_no_purchase_roc_auc']:.4f}, recency "
                f"{m['churn_baseline_recency_roc_auc']:.4f})"
            )
        churn = pipeline.churn_model_
        print(f"Churn scorer {churn.scorer_}: {churn.selection_reason_}")
        print()
        print(f"MLflow run {run.run_id} in {run.tracking_uri}")
        if run.version:
            print(f"Registered {run.model_uri}")
        if run.alias:
            verb = "moved to" if run.alias_moved else "not moved to"
            print(f"Alias '{run.alias}' {verb} version {run.version}: {run.alias_reason}")
        print(f"Saved the pipeline to {saved}")
    return 0


@contextlib.contextmanager
def _local_scored(args: argparse.Namespace, pipeline):
    """(ingestion report, scored tables chunk by chunk) with the local engine."""
    with _chunked_inputs(args) as (log, contacts):

        def tables():
            for index, table in enumerate(pipeline.score_in_chunks(log, args.as_of, contacts)):
                if log.n_chunks > 1:
                    _progress(args, f"scored chunk {index + 1} of {log.n_chunks}")
                yield table

        yield log.report, tables()


@contextlib.contextmanager
def _spark_scored(args: argparse.Namespace, pipeline):
    """(ingestion report, scored tables part by part) with the Spark engine.

    Spark writes the scored table as Parquet parts into a temporary folder under
    --work-dir; they are streamed from there into the output writers, so every output
    kind and the atomic write work as with the local engine.
    """
    import pyarrow.dataset

    from clvcast.data.ingest import ReadOptions
    from clvcast.spark.engine import read_transactions_spark, score_spark
    from clvcast.spark.session import job_session

    with job_session(args.spark_master) as spark:
        with _step(args, f"reading and checking {args.transactions} with Spark"):
            options = ReadOptions(**_read_options(args))
            purchases, report = read_transactions_spark(spark, args.transactions, options)
        contacts = _read_contacts(args)
        scored = score_spark(spark, pipeline, purchases, args.as_of, contacts=contacts)
        with tempfile.TemporaryDirectory(prefix="clvcast-spark-", dir=args.work_dir) as folder:
            parts = Path(folder) / "scored"
            scored.write.parquet(str(parts))
            dataset = pyarrow.dataset.dataset(str(parts), format="parquet")

            def tables():
                for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
                    table = fragment.to_table().to_pandas(types_mapper=_nullable_types)
                    if len(table):
                        yield table

            yield report, tables()


def _nullable_types(kind):
    """Arrow to pandas types as the local engine's table has them (nullable counts, text)."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return pd.Int64Dtype()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.StringDtype()
    return None


def cmd_predict(args: argparse.Namespace) -> int:
    """clvcast predict: score every contact with a model version and write the table."""
    from clvcast.output import (
        check_sql_target,
        is_sql_url,
        migrations_target,
        read_scored,
        write_scored,
        write_scored_chunks,
    )
    from clvcast.rfm import MIGRATION_INPUT_COLUMNS, check_scored_table, rfm_migrations
    from clvcast.tracking import load_model

    # Preflight: every output, the previous table and the options are checked before any
    # work, so that a bad one fails here with nothing written.
    if is_sql_url(args.output):
        check_sql_target(args.output, args.table, migrations=bool(args.previous))
    else:
        _check_output_path(args.output, args)
        if args.previous:
            _check_output_path(migrations_target(args.output, None)[0], args)
    previous = None
    if args.previous:
        previous = read_scored(args.previous, args.previous_table or args.table)
        check_scored_table(previous, "previous")
    scored_at = _scored_at(args.scored_at)
    with _step(args, f"loading {args.model}"):
        loaded = load_model(args.model, args.tracking_uri, trust_model_file=args.trust_model_file)
    stamp = scored_at.floor("s")
    counts = {"contacts": 0, "prospects": 0}
    slim: list[pd.DataFrame] = []  # the columns migrations compare, chunk by chunk

    def stamped(tables):
        for table in tables:
            table["model_name"] = loaded.name
            table["model_version"] = loaded.version
            table["scored_at"] = stamp
            counts["contacts"] += len(table)
            counts["prospects"] += int((table["rfm_group"] == "prospect").sum())
            if previous is not None:
                slim.append(table[[*MIGRATION_INPUT_COLUMNS]])
            yield table

    scored = _spark_scored if args.engine == "spark" else _local_scored
    with (
        scored(args, loaded.pipeline) as (report, tables),
        _step(args, f"scoring every contact and writing {args.output}"),
    ):
        where, _ = write_scored_chunks(stamped(tables), args.output, args.table)
    migration_rows = None
    migration_where = None
    if previous is not None:
        migrations = rfm_migrations(previous, pd.concat(slim, ignore_index=True))
        target, table_name = migrations_target(args.output, args.table)
        migration_where = write_scored(migrations, target, table_name)
        migration_rows = len(migrations)
    summary = {
        "model": loaded.uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "as_of": str(pd.Timestamp(args.as_of).date()),
        "contacts": counts["contacts"],
        "prospects": counts["prospects"],
        "output": where,
        "migrations": migration_rows,
        "migrations_output": migration_where,
        "scored_at": str(stamp),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        print(report.format())
        print()
        print(
            f"Scored {counts['contacts']:,} contacts ({summary['prospects']:,} prospects) with "
            f"{loaded.name} version {loaded.version} as of {summary['as_of']}"
        )
        print(f"Wrote {where}")
        if migration_where:
            print(f"Wrote {migration_rows:,} RFM migrations to {migration_where}")
    return 0


def _scored_at(text: str | None) -> pd.Timestamp:
    """--scored-at as a naive UTC timestamp (now when not given)."""
    if not text:
        return pd.Timestamp.now("UTC").tz_localize(None)
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise InputError(
            f"--scored-at {text!r} is not a timestamp; use ISO 8601, e.g. 2024-07-01T06:00:00Z."
        ) from exc
    if pd.isna(stamp):
        raise InputError(f"--scored-at {text!r} is not a timestamp; use ISO 8601.")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def cmd_demo(args: argparse.Namespace) -> int:
    """clvcast demo: train, register, alias and batch-predict on the bundled CDNOW data."""
    from clvcast.data import cdnow_purchase_log
    from clvcast.output import write_scored
    from clvcast.tracking import CHAMPION_ALIAS, load_model

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    as_of = "1998-06-30"
    purchase_log = cdnow_purchase_log(as_of=as_of)
    settings = argparse.Namespace(
        as_of=as_of,
        holdout_days=180,
        horizon_days=365.0,
        churn_horizon_days=90,
        discount_rate_monthly=0.01,
        experiment="clvcast",
        register_as="clvcast",
        alias=CHAMPION_ALIAS,
        force_alias=False,
        tracking_uri=args.tracking_uri,
        transactions="CDNOW_master.txt",
        nonpositive="drop",
        duplicates="keep",
        quiet=args.quiet,
        verbose=args.verbose,
    )
    pipeline, run, _ = train_pipeline(settings, purchase_log)
    saved = pipeline.save(Path("models") / "clvcast.model") if Path("models").is_dir() else None
    model_uri = f"models:/{run.model_name}@{CHAMPION_ALIAS}"
    with _step(args, f"batch-predicting with {model_uri}"):
        loaded = load_model(model_uri, run.tracking_uri)
        table = loaded.pipeline.score(purchase_log, as_of)
        table["model_name"] = loaded.name
        table["model_version"] = loaded.version
        table["scored_at"] = pd.Timestamp.now("UTC").tz_localize(None).floor("s")
        parquet = write_scored(table, str(out / "cdnow_contacts.parquet"))
        csv = write_scored(table, str(out / "cdnow_contacts.csv"))
    with _step(args, "writing the HTML report"):
        from clvcast.report import write_report

        report = write_report(
            pipeline,
            table,
            out / "report",
            evaluation=pipeline.last_evaluation_,
            model_name=loaded.name,
            model_version=loaded.version,
        )
    if not args.quiet:
        m = run.metrics
        print("clvcast demo: CDNOW master data (shipped with lifetimes), as of", as_of)
        print()
        print(purchase_log.report.format())
        print()
        print(_format_boundaries(pipeline.scorer_))
        print()
        print(_format_segments(table))
        print()
        print(_format_models(pipeline.forecaster_))
        print()
        print(pipeline.last_evaluation_["holdout"].format())
        print()
        print(_format_forecast(table, pipeline.forecaster_))
        print()
        print(pipeline.last_evaluation_["churn"].format())
        print()
        print(_format_churn(table, pipeline.churn_model_))
        print()
        print(
            f"MLflow run:      {run.run_id} (holdout RMSE {m['holdout_rmse']:.3f}, churn "
            f"ROC-AUC {m['churn_roc_auc']:.4f})"
        )
        print(
            f"Model version:   {run.model_uri}; alias '{CHAMPION_ALIAS}' "
            f"{'moved' if run.alias_moved else 'not moved'}: {run.alias_reason}"
        )
        print(
            f"Scored table:    {parquet} and {csv} ({len(table):,} contacts, scored with "
            f"{model_uri} = version {loaded.version})"
        )
        if saved:
            print(f"Pipeline file:   {saved}")
        print(f"HTML report:     {report} (open it in a browser, no server needed)")
        print(f"MLflow UI:       mlflow ui --backend-store-uri {run.tracking_uri}")
        print("                 then open http://127.0.0.1:5000")
    return 0


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clvcast",
        description="Customer-lifetime-value and purchase forecasting from a purchase log.",
    )
    parser.add_argument("--version", action="version", version=f"clvcast {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="show details and, on errors, the traceback"
    )
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    rfm = commands.add_parser(
        "rfm",
        parents=[common],
        help="summary, RFM scores and segments per contact",
        description="Summarise the purchase log at --as-of, score every contact R, F and M "
        "1-5, name its RFM cell and segment, and write the contact table "
        "(Parquet or CSV by the extension of --output).",
    )
    _add_transaction_options(rfm)
    _add_table_options(rfm)
    rfm.set_defaults(handler=cmd_rfm)

    forecast = commands.add_parser(
        "forecast",
        parents=[common],
        help="contact table plus predicted purchases, P(alive) and CLV (BG/NBD + Gamma-Gamma)",
        description="Fit BG/NBD and Gamma-Gamma on the history up to --as-of and write the "
        "contact table with predicted purchases, P(alive), expected order value "
        "and CLV over --horizon-days. With --holdout-days N, first fit on the "
        "history up to N days before --as-of and print how well it predicted "
        "those N days.",
    )
    _add_transaction_options(forecast)
    _add_table_options(forecast)
    forecast.add_argument(
        "--holdout-days",
        type=int,
        default=None,
        metavar="N",
        help="also evaluate on the last N days before --as-of",
    )
    forecast.add_argument(
        "--compare-models",
        action="store_true",
        help="with --holdout-days: also fit MBG/NBD and Pareto/NBD and compare",
    )
    forecast.add_argument(
        "--horizon-days",
        type=float,
        default=365.0,
        metavar="DAYS",
        help="forecast horizon in days (default: %(default)g = 12 months)",
    )
    forecast.add_argument(
        "--discount-rate-monthly",
        type=float,
        default=0.01,
        metavar="RATE",
        help="CLV discount rate per month (default: %(default)g = 1%%)",
    )
    forecast.add_argument(
        "--penalizer",
        type=float,
        default=0.0,
        metavar="C",
        help="L2 penalty of the BG/NBD fit (default: %(default)g)",
    )
    forecast.add_argument(
        "--plots",
        metavar="DIR",
        default=None,
        help="also write the model figures (PNG) to this folder",
    )
    forecast.set_defaults(handler=cmd_forecast)

    churn = commands.add_parser(
        "churn",
        parents=[common],
        help="contact table with churn risk, risk bands and drift dates",
        description="Train the churn classifier on snapshots before --as-of, evaluate it on "
        "the last --horizon-days against BG/NBD and recency baselines, and write "
        "the contact table with churn_risk, churn_risk_band, high_value, "
        "r_drop_date and expected_drift_date.",
    )
    _add_transaction_options(churn)
    _add_table_options(churn)
    churn.add_argument(
        "--horizon-days",
        type=int,
        default=90,
        metavar="DAYS",
        help="churn = no purchase in this many days (default: %(default)s)",
    )
    churn.add_argument(
        "--cutoffs",
        type=int,
        default=12,
        metavar="N",
        help="training snapshots (default: %(default)s)",
    )
    churn.add_argument(
        "--spacing-days",
        type=int,
        default=14,
        metavar="DAYS",
        help="days between training snapshots (default: %(default)s)",
    )
    churn.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads of the gradient-boosted scorer (default: one below 1,000,000 training "
        "rows, every core above; OMP_NUM_THREADS wins when set)",
    )
    churn.add_argument(
        "--no-evaluation", action="store_true", help="skip the holdout evaluation (faster)"
    )
    churn.add_argument(
        "--plots",
        metavar="DIR",
        default=None,
        help="also write the churn figures (PNG) to this folder",
    )
    churn.set_defaults(handler=cmd_churn)

    train = commands.add_parser(
        "train",
        parents=[common],
        help="fit the whole pipeline, log an MLflow run and register a model version",
        description="Fit RFM bins, BG/NBD + Gamma-Gamma and the churn classifier on the "
        "history up to --as-of; log parameters, holdout metrics, figures and the "
        "model to MLflow; register a new model version and, with --alias, move "
        "the alias to it when its holdout metrics are not worse than the "
        "current holder's.",
    )
    _add_transaction_options(train)
    train.add_argument(
        "--holdout-days",
        type=int,
        default=None,
        metavar="N",
        help="evaluate on the last N days first (needed by the champion rule)",
    )
    train.add_argument(
        "--horizon-days",
        type=float,
        default=365.0,
        metavar="DAYS",
        help="forecast horizon (default: %(default)g)",
    )
    train.add_argument(
        "--churn-horizon-days",
        type=int,
        default=90,
        metavar="DAYS",
        help="churn = no purchase in this many days (default: %(default)s)",
    )
    train.add_argument(
        "--discount-rate-monthly",
        type=float,
        default=0.01,
        metavar="RATE",
        help="CLV discount rate per month (default: %(default)g)",
    )
    train.add_argument(
        "--experiment",
        default="clvcast",
        metavar="NAME",
        help="MLflow experiment (default: %(default)s)",
    )
    train.add_argument(
        "--register-as",
        default="clvcast",
        metavar="NAME",
        help="registered model name (default: %(default)s; '' = do not register)",
    )
    train.add_argument(
        "--alias",
        default=None,
        metavar="NAME",
        help="alias to move to the new version (e.g. champion), by the champion rule",
    )
    train.add_argument(
        "--force-alias",
        action="store_true",
        help="move the alias even if the new version's metrics are worse",
    )
    train.add_argument(
        "--save",
        default="models/clvcast.model",
        metavar="PATH",
        help="also save the pipeline here (default: %(default)s)",
    )
    _add_tracking_options(train)
    _add_scale_options(train)
    from clvcast.data.chunks import DEFAULT_CHURN_SAMPLE_CONTACTS

    train.add_argument(
        "--churn-sample-contacts",
        type=int,
        default=DEFAULT_CHURN_SAMPLE_CONTACTS,
        metavar="N",
        help="train and evaluate the churn classifier on a random sample of about N "
        "contacts when there are more (default: %(default)s)",
    )
    train.set_defaults(handler=cmd_train)

    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="score every contact with a model version and write the scored table",
        description="Load a model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/model "
        "or a model file), score every contact of --transactions (and the "
        "prospects of --contacts) at --as-of and write the scored contact table "
        "to a .parquet/.csv file or a SQL table (SQLAlchemy URL + --table), "
        "atomically. With --previous, also write the RFM migrations.",
    )
    _add_transaction_options(predict)
    predict.add_argument(
        "--model",
        required=True,
        metavar="URI_OR_PATH",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a model file",
    )
    predict.add_argument(
        "--trust-model-file",
        action="store_true",
        help="load an old pickle (joblib) model file, which can run code stored in it; "
        "only for files you made yourself (clvcast's model files load without it)",
    )
    predict.add_argument(
        "--output",
        required=True,
        metavar="TARGET",
        help=".parquet or .csv path, or a SQLAlchemy URL "
        "(sqlite:///scores.db, postgresql://user@host/db)",
    )
    predict.add_argument(
        "--table", default=None, metavar="NAME", help="table name for a SQL --output"
    )
    predict.add_argument(
        "--previous",
        default=None,
        metavar="PATH_OR_URL",
        help="an earlier scored table: write <output>.migrations with the "
        "contacts whose RFM scores or segment changed",
    )
    predict.add_argument(
        "--previous-table",
        default=None,
        metavar="NAME",
        help="table name of a SQL --previous (default: --table)",
    )
    predict.add_argument(
        "--scored-at",
        default=None,
        metavar="TIMESTAMP",
        help="value of the scored_at column (default: now, UTC)",
    )
    _add_tracking_options(predict)
    _add_scale_options(predict)
    predict.set_defaults(handler=cmd_predict)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="self-contained HTML report (and PNG figures) of a model version",
        description="Write report.html (images embedded, opens from disk) and the figures as "
        "PNG to --output: model parameters and fit, holdout tracking (with "
        "--holdout-days), frequency/recency and P(alive) matrices, RFM heat maps, "
        "segment sizes and value, the CLV Pareto curve, churn risk and the R-score "
        "boundaries in days. Scores come from --scored or are computed from "
        "--transactions at --as-of.",
    )
    report.add_argument(
        "--model",
        required=True,
        metavar="URI_OR_PATH",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a model file",
    )
    report.add_argument(
        "--trust-model-file",
        action="store_true",
        help="load an old pickle (joblib) model file, which can run code stored in it; "
        "only for files you made yourself (clvcast's model files load without it)",
    )
    report.add_argument(
        "--scored",
        default=None,
        metavar="PATH",
        help="a scored table written by clvcast predict (.parquet or .csv)",
    )
    report.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="folder for report.html and the PNG figures (created if missing)",
    )
    report.add_argument(
        "--holdout-days",
        type=int,
        default=None,
        metavar="N",
        help="also evaluate on the last N days before --as-of (needs --transactions)",
    )
    report.add_argument("--title", default=None, help="report title")
    report.add_argument("--currency", default=None, help="currency name for the axes, e.g. EUR")
    _add_transaction_options(report, required=False)
    report.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "mlruns/mlflow.db in the working directory)",
    )
    report.set_defaults(handler=cmd_report)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the main job on the bundled CDNOW data",
        description="On CDNOW_master (shipped with lifetimes): train with a holdout "
        "evaluation, log the run to MLflow, register a model version and alias it champion, "
        "batch-predict with models:/clvcast@champion to --output-dir (Parquet and CSV), and "
        "print where everything is.",
    )
    demo.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: mlruns/ in the working directory)",
    )
    demo.add_argument(
        "--output-dir",
        default="scored",
        metavar="DIR",
        help="folder for the outputs (default: %(default)s)",
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def _print_warnings(caught: list[warnings.WarningMessage], verbose: bool) -> None:
    """clvcast's own warnings, each text once; others (numpy, pandas) only with --verbose.

    A raw library warning ("invalid value encountered in divide") tells a marketer nothing;
    whatever it means for the scores is clvcast's job to say in its own words.
    """
    from clvcast.errors import WARNINGS

    shown = set()
    for message in caught:
        text = str(message.message)
        if text in shown:
            continue
        shown.add(text)
        if issubclass(message.category, WARNINGS):
            print(f"clvcast: warning: {text}", file=sys.stderr)
        elif verbose:
            print(
                f"clvcast: debug: {message.category.__name__} from {message.filename}:"
                f"{message.lineno}: {text}",
                file=sys.stderr,
            )


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command; turn clvcast errors into one stderr line and an exit code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for noisy in ("lifetimes", "autograd", "mlflow"):
            warnings.filterwarnings("ignore", module=noisy)
        try:
            code = handler(args)
        except ClvcastError as exc:
            if args.verbose:
                traceback.print_exc()
            print(f"clvcast: error: {exc}", file=sys.stderr)
            code = exc.exit_code
        except KeyboardInterrupt:
            print("clvcast: interrupted; outputs were not changed.", file=sys.stderr)
            code = 130
        except MemoryError:
            if args.verbose:
                traceback.print_exc()
            print(
                "clvcast: error: out of memory; outputs were not changed. Process the log in "
                "smaller pieces (--chunk-contacts) or on a machine with more memory.",
                file=sys.stderr,
            )
            code = 1
        except BrokenPipeError:  # the reader of our output went away (`| head`)
            code = 141
        except OSError as exc:  # the environment: disk full, permissions, a vanished file
            if args.verbose:
                traceback.print_exc()
            print(f"clvcast: error: {_os_problem(exc)}", file=sys.stderr)
            code = 1
        except Exception as exc:  # a bug: still one line unless --verbose
            if args.verbose:
                traceback.print_exc()
            print(
                f"clvcast: internal error: {type(exc).__name__}: {exc} "
                "(run again with --verbose for the traceback and report it)",
                file=sys.stderr,
            )
            code = 1
    if not args.quiet:
        _print_warnings(caught, args.verbose)
    return code


def _os_problem(exc: OSError) -> str:
    """One line for an operating-system error, with what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space or write elsewhere"
    elif isinstance(exc, PermissionError):
        advice = "check the permissions"
    elif isinstance(exc, IsADirectoryError):
        advice = "give a file name, not a folder"
    else:
        advice = "check the path and the disk"
    return f"{reason}{where}; outputs were not changed: {advice}."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:  # read by MLflow when it is first imported
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # MLflow's own progress chatter; errors still surface as ours
        for noisy in ("mlflow", "alembic", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    return run(args.handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
