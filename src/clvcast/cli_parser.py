"""The ``clvcast`` command line's options, each defined once, and its parser.

Options that several commands share (``--tracking-uri``, ``--horizon-days``, ``--model``,
the transaction and output options ...) are defined here once and added to each command
that takes them; :mod:`clvcast.cli` turns the parsed arguments into the jobs' settings.
Limits of numeric settings are checked by the library (:mod:`clvcast.limits`) and reported
under the option's name.
"""

from __future__ import annotations

import argparse
from typing import Any

from clvcast import __version__
from clvcast.limits import DEFAULT_CHUNK_CONTACTS, DEFAULT_CHURN_SAMPLE_CONTACTS

# Options several commands take: name -> add_argument keywords.
SHARED: dict[str, dict[str, Any]] = {
    "--format": {
        "dest": "csv_format",
        "choices": ["default", "marketing"],
        "default": "default",
        "help": "CSV files: default (lossless) or marketing (money to cents, probabilities to "
        "4 decimals, true/false, ISO dates and offsets, UTF-8 with BOM for Excel, no BTYD "
        "columns; docs/scored-table.md)",
    },
    "--tracking-uri": {
        "default": None,
        "metavar": "URI",
        "help": "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "mlruns/mlflow.db in the working directory)",
    },
    "--json": {
        "action": "store_true",
        "help": "print a JSON summary on stdout instead of text",
    },
    "--horizon-days": {
        "type": float,
        "default": 365.0,
        "metavar": "DAYS",
        "help": "forecast horizon in days; columns are named by it, e.g. clv_180d "
        "(default: %(default)g = 12 months)",
    },
    "--churn-horizon-days": {
        "type": int,
        "default": 90,
        "metavar": "DAYS",
        "help": "churn = no purchase in this many days (default: %(default)s)",
    },
    "--discount-rate-monthly": {
        "type": float,
        "default": 0.01,
        "metavar": "RATE",
        "help": "CLV discount rate per month (default: %(default)g = 1%%)",
    },
    "--holdout-days": {
        "type": int,
        "default": None,
        "metavar": "N",
        "help": "evaluate on the last N days before --as-of first",
    },
    "--plots": {
        "metavar": "DIR",
        "default": None,
        "help": "also write the figures (PNG) to this folder",
    },
    "--model": {
        "required": True,
        "metavar": "URI_OR_PATH",
        "help": "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a model file",
    },
    "--trust-model-file": {
        "action": "store_true",
        "help": "load an old pickle (joblib) model file, which can run code stored in it; "
        "only for files you made yourself (clvcast's model files load without it)",
    },
}


def _add(parser: argparse.ArgumentParser, *names: str, **changes: Any) -> None:
    """Add the shared options ``names`` (with ``changes`` to their keywords)."""
    for name in names:
        parser.add_argument(name, **{**SHARED[name], **changes})


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
        "--guest-id",
        default=None,
        metavar="ID",
        help="a contact id that stands for guest checkouts (WooCommerce writes 0): its rows "
        "are dropped and counted as guest checkouts; 'none' keeps every id as a customer. "
        "A placeholder id (0, -1, guest, unknown, ...) holding 0.5%% of the rows or more is "
        "refused until this says which",
    )
    group.add_argument(
        "--status-col",
        default=None,
        metavar="NAME",
        help="order status column (Shopify's 'Financial Status', WooCommerce's 'Order "
        "Status', PrestaShop's 'Estado'): rows whose status is cancelled, refunded, "
        "returned, voided, failed, declined, unavailable or expired (in English, Spanish, "
        "Portuguese, French, Italian, German, Polish or Dutch, or holds such a word, as "
        "'order_refunded') are not purchases, dropped and counted, and unpaid ones (pending, "
        "on-hold) are counted in a note; 'none' counts every row. An input with such a "
        "column and such statuses is refused until this option says which",
    )
    group.add_argument(
        "--not-purchase-statuses",
        default=None,
        metavar="LIST",
        help="comma-separated statuses of orders that are not purchases, whatever clvcast "
        "reads in them (e.g. 'closed,exchange'); a status column holding a status that says "
        "neither (Magento's 'closed': refunded there, completed elsewhere) is refused until "
        "this option or --purchase-statuses names it",
    )
    group.add_argument(
        "--purchase-statuses",
        default=None,
        metavar="LIST",
        help="comma-separated statuses of orders that are purchases, whatever clvcast reads "
        "in them",
    )
    group.add_argument(
        "--refund-col",
        default=None,
        metavar="NAME",
        help="column of money refunded on an order whose amount still holds the whole order "
        "(Shopify's 'Refunded Amount' beside 'Total'): taken off the amount, so an order "
        "refunded in full goes with the amounts <= 0; 'none' reads the amounts as written. "
        "An input with such a column holding refunds is refused until this option says which",
    )
    group.add_argument(
        "--date-format",
        default=None,
        metavar="FMT",
        help="strftime format of the dates, e.g. %%d/%%m/%%Y, or for dates written as "
        "numbers: unix (seconds since 1970, UTC), unix-ms (milliseconds), unix-us "
        "(microseconds, as GA4's event_timestamp), excel (spreadsheet serial days) or "
        "days-since:YYYY-MM-DD (day numbers, that date being day 0) (default: one format "
        "inferred from every value; a "
        "column that reads as day/month and month/day alike is refused)",
    )
    group.add_argument(
        "--dayfirst",
        action="store_true",
        default=None,
        help="dates like 03/09/2022 put the day first (3 September)",
    )
    group.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="the shop's time zone, e.g. Europe/Madrid: timestamps with a UTC offset or a "
        "zone are converted to it before taking the day; naive ones are taken as local "
        "(default: the day as written: text with an offset at the time it writes, "
        "instants such as Unix times in UTC)",
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
        default=None,
        help="decimal mark of CSV amounts, '17.25' or '17,25' (default: '.'; amounts whose "
        "every dot is followed by three digits, such as '12.990', are refused until "
        "--decimal . or --thousands . says which the dot is)",
    )
    group.add_argument(
        "--thousands",
        default=None,
        choices=[",", ".", "space", "apostrophe"],
        metavar="SEP",
        help="separator between the thousands of CSV amounts: ',' for '1,234.56', '.' "
        "for '1.234,56' (with --decimal ,), 'space' for '1 234,56', 'apostrophe' for Swiss "
        "'1'234.50'; taken out only between groups of three digits (default: none)",
    )
    group.add_argument(
        "--currency",
        default=None,
        metavar="SIGN",
        help="the currency of the amounts, e.g. € or EUR: taken out of CSV amounts that "
        "carry it (an amount in another currency stays unparseable; nothing is converted); "
        "with a currency column (Shopify's 'Currency') holding several, only its rows are "
        "read, the others dropped and counted; the report names it on its axes",
    )
    group.add_argument(
        "--currency-col",
        default=None,
        metavar="NAME",
        help="the column that says each amount's currency (default: one named like "
        "'Currency'); 'none' when the amounts are in one currency already",
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
        help="rows identical in every column, on or before --as-of (default: %(default)s)",
    )
    group.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop and count rows with a missing or unparseable date or amount, and "
        "lines of a CSV with another number of fields than the header (local engine), "
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
    _add(group, "--format")
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


def _add_scale_options(parser: argparse.ArgumentParser) -> None:
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
        help="predict: score the purchase log in chunks of about N contacts, written to "
        "Parquet files in --work-dir; two chunks are scored at once, so memory holds about "
        "two (default: %(default)s; train writes no chunks)",
    )
    group.add_argument(
        "--work-dir",
        default=None,
        metavar="DIR",
        help="folder for the chunk files and DuckDB's spill files (default: the system's "
        "temporary folder); it needs about the size of the input as Parquet",
    )


def _command(commands: Any, name: str, common: argparse.ArgumentParser, **texts: str) -> Any:
    parser = commands.add_parser(name, parents=[common], **texts)
    parser.set_defaults(command=name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``clvcast`` parser; each command's arguments end in ``args.command``."""
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

    rfm = _command(
        commands,
        "rfm",
        common,
        help="summary, RFM scores and segments per contact",
        description="Summarise the purchase log at --as-of, score every contact R, F and M "
        "1-5, name its RFM cell and segment, and write the contact table "
        "(Parquet or CSV by the extension of --output).",
    )
    _add_transaction_options(rfm)
    _add_table_options(rfm)

    forecast = _command(
        commands,
        "forecast",
        common,
        help="contact table plus predicted purchases, P(alive) and CLV (BG/NBD + Gamma-Gamma)",
        description="Fit BG/NBD and Gamma-Gamma on the history up to --as-of and write the "
        "contact table with predicted purchases, P(alive), expected order value and CLV "
        "over --horizon-days. With --holdout-days N, first fit on the history up to N days "
        "before --as-of and print how well it predicted those N days.",
    )
    _add_transaction_options(forecast)
    _add_table_options(forecast)
    _add(forecast, "--holdout-days", "--horizon-days", "--discount-rate-monthly", "--plots")
    forecast.add_argument(
        "--compare-models",
        action="store_true",
        help="with --holdout-days: also fit MBG/NBD and Pareto/NBD and compare",
    )
    forecast.add_argument(
        "--penalizer",
        type=float,
        default=0.0,
        metavar="C",
        help="L2 penalty of the BG/NBD fit (default: %(default)g)",
    )

    churn = _command(
        commands,
        "churn",
        common,
        help="contact table with churn risk, risk bands and drift dates",
        description="Train the churn classifier on snapshots before --as-of, evaluate it on "
        "the last --horizon-days against BG/NBD and recency baselines, and write the contact "
        "table with churn_risk, churn_risk_band, high_value, r_drop_date and "
        "expected_drift_date.",
    )
    _add_transaction_options(churn)
    _add_table_options(churn)
    # In the churn command, the churn horizon is *the* horizon: --horizon-days.
    churn.add_argument(
        "--horizon-days", dest="churn_horizon_days", **SHARED["--churn-horizon-days"]
    )
    churn.add_argument(
        "--cutoffs", type=int, default=12, metavar="N", help="training snapshots (default: 12)"
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
        type=int,
        default=None,
        metavar="N",
        help="threads of the gradient-boosted scorer (default: one below 1,000,000 training "
        "rows, every core above; OMP_NUM_THREADS wins when set)",
    )
    churn.add_argument(
        "--no-evaluation", action="store_true", help="skip the holdout evaluation (faster)"
    )
    _add(churn, "--plots")

    train = _command(
        commands,
        "train",
        common,
        help="fit the whole pipeline, log an MLflow run and register a model version",
        description="Fit RFM bins, BG/NBD + Gamma-Gamma and the churn classifier on the "
        "history up to --as-of; log parameters, holdout metrics, figures and the model to "
        "MLflow; register a new model version and, with --alias, move the alias to it when "
        "its holdout metrics are not worse than the current holder's.",
    )
    _add_transaction_options(train)
    _add(
        train,
        "--holdout-days",
        help="evaluate on the last N days first (the champion rule needs it)",
    )
    _add(train, "--horizon-days", "--discount-rate-monthly")
    _add(train, "--churn-horizon-days")
    train.add_argument(
        "--experiment",
        default="clvcast",
        metavar="NAME",
        help="MLflow experiment (default: clvcast)",
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
        default=None,
        metavar="PATH",
        help="also save the pipeline as a model file here (its folder is created); the "
        "model is always in MLflow",
    )
    _add(train, "--tracking-uri", "--json")
    _add_scale_options(train)
    train.add_argument(
        "--churn-sample-contacts",
        type=int,
        default=DEFAULT_CHURN_SAMPLE_CONTACTS,
        metavar="N",
        help="train and evaluate the churn classifier on a random sample of about N "
        "contacts when there are more (default: %(default)s)",
    )

    predict = _command(
        commands,
        "predict",
        common,
        help="score every contact with a model version and write the scored table",
        description="Load a model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/model "
        "or a model file), score every contact of --transactions (and the prospects of "
        "--contacts) at --as-of and write the scored contact table to a .parquet/.csv file "
        "or a SQL table (SQLAlchemy URL + --table), atomically. With --previous, also write "
        "the RFM migrations; --audiences and --changed-only write audiences and changes next "
        "to it.",
    )
    _add_transaction_options(predict)
    _add(predict, "--model", "--trust-model-file")
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
    _add(predict, "--format")
    predict.add_argument(
        "--audiences",
        default=None,
        metavar="YAML",
        help="audience name -> condition over the scored columns and contact attributes: "
        "write <output>.audiences (members) and, with --previous, <output>.audience_changes "
        "(entered / left)",
    )
    predict.add_argument(
        "--changed-only",
        action="store_true",
        help="with --previous: also write <output>.changes, only the new, changed and removed "
        "contacts (segment, scores, risk band, CLV beyond --clv-tolerance), for API syncs; "
        "--output stays the whole table",
    )
    predict.add_argument(
        "--clv-tolerance",
        type=float,
        default=0.10,
        metavar="FRACTION",
        help="a CLV counts as changed when it moved by more than this share of its previous "
        "value and more than 1.00 (default: %(default)s)",
    )
    predict.add_argument(
        "--scored-at",
        default=None,
        metavar="TIMESTAMP",
        help="value of the scored_at column (default: now, UTC)",
    )
    _add(predict, "--tracking-uri", "--json")
    _add_scale_options(predict)

    report = _command(
        commands,
        "report",
        common,
        help="self-contained HTML report (and PNG figures) of a model version",
        description="Write report.html (images embedded, opens from disk) and the figures as "
        "PNG to --output: model parameters and fit, holdout tracking (with --holdout-days), "
        "frequency/recency and P(alive) matrices, RFM heat maps, segment sizes and value, "
        "the CLV Pareto curve, churn risk and the R-score boundaries in days. Scores come "
        "from --scored or are computed from --transactions at --as-of.",
    )
    _add(report, "--model", "--trust-model-file")
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
    _add(report, "--holdout-days", help="also evaluate on the last N days (needs --transactions)")
    report.add_argument("--title", default=None, help="report title")
    _add_transaction_options(report, required=False)
    _add(report, "--tracking-uri")

    demo = _command(
        commands,
        "demo",
        common,
        help="run the main job on the bundled CDNOW data",
        description="On CDNOW_master (shipped with lifetimes): train with a holdout "
        "evaluation, log the run to MLflow, register a model version and alias it champion, "
        "batch-predict with models:/clvcast@champion to --output-dir (Parquet and CSV), "
        "write the HTML report, and print where everything is.",
    )
    _add(demo, "--tracking-uri")
    demo.add_argument(
        "--output-dir",
        default="scored",
        metavar="DIR",
        help="folder for the outputs (default: %(default)s)",
    )
    return parser
