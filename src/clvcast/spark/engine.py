"""The Spark engine: ingestion and the customer summary in Spark SQL, scoring in Spark tasks.

What runs where:

- **Ingestion** (:func:`read_transactions_spark`): Spark reads the Parquet or CSV file
  (CSV as text) and applies the rules of :func:`clvcast.data.read_transactions` in Spark
  SQL: distinct rows with their multiplicity, one problem code per row, the policies for
  unusable rows, duplicates and refunds, the as-of date, and the DECIMAL day totals per
  contact and day. Dates that arrive as text are parsed on the driver by pandas, once per
  distinct value, exactly as the local engine parses them. Error messages give example
  values (Spark has no row numbers of a file).
- **Summary** (:func:`summary_spark`): the local engine's SQL in Spark's dialect. Training
  collects it, one row of numbers per contact ordered by id, to the driver, where the same
  code as the local engine fits the RFM bins, BG/NBD and Gamma-Gamma; the churn classifier
  trains on the histories of the same contact sample (an md5 of the id, the same in DuckDB
  and Spark) collected to the driver.
- **Scoring** (:func:`score_spark`): the snapshot's population-level parts are fitted once
  on the driver from the collected summary; then the purchases and the contacts table are
  grouped by the md5 of the contact id (as the local engine chunks them) and each group is
  scored in a Spark task by ``cogroup(...).applyInPandas`` running
  :meth:`clvcast.pipeline.CLVPipeline.score_partition`, the local engine's own code. That is why the scored table equals the local engine's.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from clvcast.data import (
    IngestionReport,
    check_columns,
    parse_as_of,
    rules,
    source_name,
    statuses,
)
from clvcast.data.chunks import PARTITION_BITS, SAMPLE_BITS, SAMPLE_SALT
from clvcast.data.dates import instant_zone, parse_dates
from clvcast.data.ingest import AMOUNT_LIMIT, ReadOptions, check_policies, utf8_text_file
from clvcast.data.inputs import (
    CSV_SUFFIXES,
    EXAMPLES,
    EXCEL_TEXT_PATTERN,
    FLOAT_ID_PATTERN,
    WHOLE_ID_PATTERN,
    check_csv_header,
    check_header_split,
    column_zone,
    csv_separator,
    existing_file,
    field_count_problem,
    is_parquet,
    unknown_extension,
)
from clvcast.data.lines import purchase_days
from clvcast.data.report import REASON_AFTER_AS_OF, REASON_DUPLICATE, listed
from clvcast.errors import DataQualityWarning, InputError
from clvcast.summary import finish_summary

_ROWS = "_clvcast_rows"
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")
_TEMPORAL = ("date", "timestamp_ntz")


def _functions():
    from pyspark.sql import functions

    return functions


def _column(name: str):
    return _functions().col("`" + name.replace("`", "``") + "`")


def _read_source(
    spark: Any,
    source: str | os.PathLike[str],
    options: ReadOptions,
    workdir: str,
    mode: str = "FAILFAST",
) -> tuple[Any, Callable[[], str | None] | None]:
    """The input as a Spark DataFrame, the CSV dialect read as the local engine reads it,
    and for a CSV what explains a failure to read its rows: the lines with another number
    of fields than the header (:func:`~clvcast.data.inputs.field_count_problem`). Spark
    refuses them in ``mode`` FAILFAST; its default, PERMISSIVE, keeps the first part of
    a split value ("20" of an unquoted "20,50") without a word."""
    path = existing_file(source, what="transactions")
    suffix = path.suffix.lower()
    try:
        if is_parquet(path):
            return spark.read.parquet(str(path)), None
        if suffix in CSV_SUFFIXES:
            readable = utf8_text_file(path, options.encoding, workdir, "transactions")
            sep = csv_separator(readable, options.sep)
            check_csv_header(readable, sep, "transactions")
            frame = spark.read.csv(
                str(readable),
                header=True,
                sep=sep,
                inferSchema=False,
                encoding="UTF-8",
                mode=mode,
                quote='"',
                escape='"',  # a quote inside quotes is doubled, as DuckDB reads it (RFC 4180)
            )
            first = frame.columns[0].lstrip("\ufeff")
            if first != frame.columns[0]:
                frame = frame.withColumnRenamed(frame.columns[0], first)
            check_header_split(frame.columns, sep, path, "transactions")
            return frame, lambda: field_count_problem(readable, sep, "transactions", path.name)
    except InputError:
        raise
    except Exception as exc:  # Spark's AnalysisException and friends
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read transactions file {path.name}: {first_line}") from exc
    raise unknown_extension("transactions", path)


def _contact(frame: Any, column: str, kind: str, id_case: str, name: str):
    """Contact ids as text, as the local engine makes them (``_contact_sql`` and
    ``_normalise_ids``), with the same warning for ids that differ only in case."""
    F = _functions()
    value = _column(column)
    if kind in ("float", "double"):
        usable = frame.filter(value.isNotNull() & ~F.isnan(value))
        whole = usable.agg(F.min((value == F.floor(value)).cast("int"))).collect()[0][0]
        text = value.cast("bigint").cast("string") if whole != 0 else value.cast("string")
        return F.when(value.isNull() | F.isnan(value), None).otherwise(text)
    if kind.startswith(_NUMERIC):
        return value.cast("string")
    text = _normal_text(value)
    if id_case == "lower":
        text = F.lower(text)
    present = frame.select(text.alias("t")).where(F.col("t").isNotNull())
    floats, whole, twins = present.agg(
        F.max(F.col("t").rlike(FLOAT_ID_PATTERN).cast("int")),
        F.min(F.col("t").rlike(WHOLE_ID_PATTERN).cast("int")),
        F.countDistinct("t") - F.countDistinct(F.lower(F.col("t"))),
    ).collect()[0]
    if floats and whole:
        return F.regexp_replace(text, r"\.0+$", "")
    if twins and id_case != "lower":
        first, second = (
            present.distinct()
            .groupBy(F.lower(F.col("t")).alias("key"))
            .agg(F.min("t"), F.max("t"), F.count(F.lit(1)).alias("k"))
            .where(F.col("k") > 1)
            .orderBy("key")
            .select("min(t)", "max(t)")
            .first()
        )
        warnings.warn(
            rules.case_twins(name, column, int(twins), first, second), DataQualityWarning, 3
        )
    return text


def _without_guests(frame: Any, contact, name: str, column: str, options: ReadOptions):
    """The contact ids with --guest-id's made missing, after refusing a placeholder id that
    holds a share of the rows without it, as the local engine."""
    F = _functions()
    key = F.lower(F.trim(contact))
    guests = rules.guest_ids(options.guest_id)
    if guests:
        return F.when(key.isin(list(guests)), None).otherwise(contact)
    if options.guest_id is not None:
        return contact
    counts = (
        frame.where(contact.isNotNull())
        .groupBy(F.when(key.isin(list(rules.PLACEHOLDER_IDS)), contact).alias("placeholder"))
        .agg(F.sum(_ROWS).alias("rows"))
        .collect()
    )
    total = sum(int(row["rows"]) for row in counts)
    for row in counts:
        if row["placeholder"] is not None and rules.is_placeholder_heavy(int(row["rows"]), total):
            raise rules.placeholder_id(name, column, row["placeholder"], int(row["rows"]), total)
    return contact


def _dates(
    spark: Any,
    frame: Any,
    column: str,
    kind: str,
    options: ReadOptions,
    notes: list,
    written: str | None = None,
):
    """(timestamp column, blank test, mapping frame to join or None, format of text dates),
    as the local engine."""
    F = _functions()
    value = _column(column)
    if kind in _TEMPORAL:
        return value.cast("timestamp_ntz"), value.isNull(), None, None
    if kind == "timestamp":  # an instant: its wall clock in the shop's zone (session: UTC)
        zone, note = instant_zone("timestamps with a time zone", options.timezone, written)
        notes.append(note)
        local = F.from_utc_timestamp(value, zone)
        return local.cast("timestamp_ntz"), value.isNull(), None, None
    raw = value.cast("string")
    text = raw if options.date_format else F.trim(raw)
    blank = value.isNull() | (F.trim(raw) == "")
    distinct = frame.where(~blank).select(text.alias("date_text")).distinct().toPandas()
    values = distinct["date_text"].astype(str).sort_values(ignore_index=True)
    parsed, used = parse_dates(
        values.astype("string"),
        options.date_format,
        notes,
        dayfirst=options.dayfirst,
        timezone=options.timezone,
        what=f"transactions column '{column}': ",
    )
    mapping = pd.DataFrame({"date_text": values, "date_parsed": parsed.astype("datetime64[us]")})
    schema = "date_text string, date_parsed timestamp_ntz"
    mapped = spark.createDataFrame(mapping, schema=schema)
    return F.col("date_parsed"), blank, (F.broadcast(mapped), text), used


def _amount(
    column: str,
    kind: str,
    decimal: str = ".",
    thousands: str | None = None,
    currency: str | None = None,
):
    """(amount as double, blank test), as the local engine (``_amount_sql``)."""
    F = _functions()
    value = _column(column)
    if kind.startswith(_NUMERIC):
        return value.cast("double"), value.isNull()
    raw = value.cast("string")
    text = rules.amount_text_sql(
        f"trim(cast(`{column}` as string))", decimal, thousands, _full_match, currency
    )
    return F.expr(f"try_cast({text} as double)"), (value.isNull() | (F.trim(raw) == ""))


def _full_match(text: str, pattern: str) -> str:
    """Spark SQL that ``text`` matches ``pattern`` whole."""
    return f"{text} rlike '^(?:{pattern.replace(chr(39), chr(39) * 2)})$'"


def _check_dotted_thousands(
    grouped: Any, kinds: dict[str, str], name: str, options: ReadOptions
) -> None:
    """Refuse amounts whose every dot may separate thousands, as the local engine
    (``_amount_shapes``); ``grouped`` holds the distinct input rows and their counts."""
    if options.amount_marks_given:
        return
    F = _functions()
    for column in options.money_columns:
        if kinds[column].startswith(_NUMERIC):
            continue
        text = f"trim(cast(`{column}` as string))"
        shape = F.expr(rules.amount_shape_sql(text, options.currency, _full_match))
        shaped = grouped.groupBy(shape.alias("shape")).agg(F.sum(_ROWS)).collect()
        examples = grouped.where(shape == rules.DOTS_AS_THOUSANDS).select(F.expr(text))

        def shown(values: Any = examples) -> list[str]:
            return sorted(row[0] for row in values.distinct().limit(5).collect())

        rules.check_dotted_thousands(name, column, {int(k): int(n) for k, n in shaped}, shown)


def _line_amount(kinds: dict[str, str], options: ReadOptions):
    """(amount, blank test, the input value shown in messages), as ``_line_amount_sql``."""
    F = _functions()
    amount, blank, shown = _written_amount(kinds, options)
    column = rules.named_column(options.refund_col)
    if column is None:
        return amount, blank, shown
    refund, refund_blank = _amount(column, kinds[column], *options.amount_dialect)
    written = F.trim(_column(column).cast("string"))
    return (
        F.when(refund_blank, amount).otherwise(F.round(amount - F.abs(refund), 10)),
        blank,
        F.concat_ws(" - ", shown.cast("string"), F.when(written != "", written)),
    )


def _written_amount(kinds: dict[str, str], options: ReadOptions):
    """(amount, blank test, shown) of a line as written, as ``_written_amount_sql``."""
    F = _functions()
    if options.quantity_col is None:
        column = options.amount_col
        return (
            *_amount(column, kinds[column], *options.amount_dialect),
            _column(column),
        )
    quantity_col, price_col = options.quantity_col, str(options.price_col)
    dialect = options.amount_dialect
    quantity, quantity_blank = _amount(quantity_col, kinds[quantity_col], *dialect)
    price, price_blank = _amount(price_col, kinds[price_col], *dialect)
    shown = F.concat_ws(
        " x ", _column(quantity_col).cast("string"), _column(price_col).cast("string")
    )
    return quantity * price, quantity_blank | price_blank, shown


def _not_purchase(reading: statuses.StatusReading):
    """Whether a row's status (in the column read) says it is not a purchase, as the local
    engine: its value is one of the written values that are not."""
    F = _functions()
    if reading.column is None or not reading.dropped:
        return F.lit(False)
    written = _column(reading.column).cast("string")
    return F.coalesce(written.isin(list(reading.dropped)), F.lit(False))


def _check_statuses(raw: Any, name: str, options: ReadOptions) -> statuses.StatusReading:
    """Check the input's status columns and say what they hold, as the local engine."""

    def counts_of(column: str) -> dict[str, int]:
        written = _column(column).cast("string")
        values = raw.where(written.isNotNull()).groupBy(written.alias("written")).count()
        rows = values.limit(statuses.MAX_STATUS_VALUES + 1).collect()
        return {r["written"]: int(r["count"]) for r in rows}

    return statuses.read_statuses(
        name, raw.columns, options.status_col, counts_of, options.status_meanings
    )


def _check_refunds(raw: Any, kinds: dict[str, str], name: str, options: ReadOptions) -> None:
    """Refuse a column of refunds without --refund-col, as the local engine."""
    if options.refund_col is not None:
        return
    F = _functions()
    for column in rules.columns_named(
        raw.columns, rules.REFUND_COLUMN_NAMES, options.amount_columns
    ):
        refund, _ = _amount(column, kinds[column], *options.amount_dialect)
        found = raw.where(F.abs(refund) > 0).agg(
            F.count(F.lit(1)).alias("rows"), F.sum(F.abs(refund)).alias("money")
        )
        rows, money = found.collect()[0]
        if rows:
            raise rules.unread_refunds(name, column, options.amount_label, rows, float(money))


def _other_currency(raw: Any, name: str, options: ReadOptions):
    """Whether a row's amount is in another currency than the one read, as the local
    engine (``_other_currency_sql``)."""
    F = _functions()
    other = F.lit(False)
    for column in rules.option_columns(
        raw.columns, options.currency_col, rules.CURRENCY_COLUMN_NAMES, options.amount_columns
    ):
        upper = F.upper(F.trim(_column(column).cast("string")))
        code = F.when(upper != "", upper)
        rows = raw.where(code.isNotNull()).groupBy(code.alias("c")).count().collect()
        counts = {row["c"]: int(row["count"]) for row in rows}
        keep = rules.currency_to_keep(name, column, counts, options.currency)
        if keep is not None:
            other = other | F.coalesce(code != F.lit(keep), F.lit(False))
    return other


def _normal_text(value):
    """A text id as the local engine's ``_normal_id`` keeps it (case as written): trimmed,
    unwrapped from a spreadsheet text formula (``="00123"``), blank = missing."""
    F = _functions()
    trimmed = F.regexp_replace(F.trim(value.cast("string")), EXCEL_TEXT_PATTERN, "$1")
    return F.when(trimmed == "", None).otherwise(trimmed)


def _order(options: ReadOptions, kinds: dict[str, str]):
    """The order id as trimmed text, unwrapped from a text formula, as ``_order_sql``."""
    F = _functions()
    if options.order_col is None:
        return F.lit(None).cast("string")
    text = _normal_text(_column(options.order_col))
    if kinds[options.order_col] in ("float", "double"):
        text = F.regexp_replace(text, r"\.0+$", "")
    return text


def _example_values(frame: Any, column) -> list[Any]:
    return [row[0] for row in frame.select(column).limit(EXAMPLES).collect()]


def _shown(values: list[Any], total: int) -> str:
    return "for example " + listed([rules.shown_value(value) for value in values], total)


def _examples(frame: Any, column, total: int) -> str:
    return _shown(_example_values(frame, column), total)


def _workdir() -> str:
    """A folder for a UTF-8 copy of a CSV in another encoding; Spark reads it lazily, so it
    lives until the process ends."""
    folder = tempfile.mkdtemp(prefix="clvcast-spark-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


# Spark's error class for a CSV line that FAILFAST refuses (its number of fields).
_MALFORMED = "MALFORMED_RECORD_IN_PARSING"


def read_transactions_spark(
    spark: Any, source: str | os.PathLike[str], options: ReadOptions
) -> tuple[Any, IngestionReport]:
    """The purchase log as a Spark DataFrame (contact_id, date, amount) and its report.

    The same rows, amounts and report counts as :func:`clvcast.data.read_transactions`
    with the same options (tested); see the module docstring for the differences in
    error messages.
    """
    check_policies(options)
    as_of_day = parse_as_of(options.as_of)
    name = options.name or source_name(source)
    workdir = _workdir()
    raw, unreadable = _read_source(spark, source, options, workdir)
    try:
        return _read_rows(spark, raw, source, name, options, as_of_day)
    except InputError:
        raise
    except Exception as exc:  # Spark's exceptions from the rows it reads
        if unreadable is None:
            raise
        problem = unreadable()
        if problem and options.invalid == "drop":  # Spark would drop them uncounted
            problem += (
                " --drop-invalid drops and counts such lines with the local engine, not with "
                "--engine spark."
            )
        if problem:
            raise InputError(problem) from exc
        if _MALFORMED not in str(exc):  # not FAILFAST's refusal: the same error again
            raise
    # Every line has the header's fields, some with empty ones after them (a separator at
    # the end of the line): FAILFAST refuses them, PERMISSIVE drops the empty ones.
    raw, _ = _read_source(spark, source, options, workdir, mode="PERMISSIVE")
    return _read_rows(spark, raw, source, name, options, as_of_day)


def _read_rows(
    spark: Any,
    raw: Any,
    source: str | os.PathLike[str],
    name: str,
    options: ReadOptions,
    as_of_day: pd.Timestamp | None,
) -> tuple[Any, IngestionReport]:
    """:func:`read_transactions_spark` of the input read as ``raw``."""
    F = _functions()
    kinds = dict(raw.dtypes)
    contact_col, date_col = options.contact_col, options.date_col
    rules.check_amount_columns(name, raw.columns, options.amount_col, options.quantity_col)
    check_columns(raw.columns, options.required_columns(), what=f"transactions ({name})")
    status_reading, _, other_currency = rules.checked_together(
        lambda: _check_statuses(raw, name, options),
        lambda: _check_refunds(raw, kinds, name, options),
        lambda: _other_currency(raw, name, options),
    )
    grouped = raw.groupBy(*[_column(c) for c in raw.columns]).agg(F.count(F.lit(1)).alias(_ROWS))
    notes: list[str] = list(status_reading.notes)
    timestamp, date_blank, join, date_format = _dates(
        spark, grouped, date_col, kinds[date_col], options, notes, column_zone(source, date_col)
    )
    if join is not None:
        mapping, text = join
        grouped = grouped.join(mapping, text == mapping["date_text"], "left")
    _check_dotted_thousands(grouped, kinds, name, options)
    amount, amount_blank, amount_shown = _line_amount(kinds, options)
    contact = _contact(grouped, contact_col, kinds[contact_col], options.id_case, name)
    contact = _without_guests(grouped, contact, name, contact_col, options)
    unparseable = amount.isNull() | F.isnan(amount)
    out_of_range = (F.abs(amount) == float("inf")) | (F.abs(amount) >= AMOUNT_LIMIT)
    checks = (
        contact.isNull(),
        date_blank,
        timestamp.isNull(),
        amount_blank,
        unparseable,
        out_of_range,
        _not_purchase(status_reading),
        other_currency,
    )
    problem = F.lit(0)
    for code in range(len(checks), 0, -1):  # the first check that applies wins
        problem = F.when(checks[code - 1], F.lit(code)).otherwise(problem)
    typed = grouped.select(
        contact.alias("contact_id"),
        F.to_date(timestamp).alias("day"),
        amount.alias("amount"),
        _order(options, kinds).alias("order_id"),
        problem.alias("problem"),
        F.col(_ROWS).alias("n"),
        _column(date_col).alias("raw_date"),
        amount_shown.alias("raw_amount"),
    ).cache()
    return _aggregate(spark, typed, name, notes, options, as_of_day, date_format)


class _SparkRunner:
    """:class:`clvcast.data.lines.SqlRunner` over a Spark session (tables are cached views)."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.cached: list[Any] = []

    def table(self, name: str, sql: str) -> None:
        frame = self.spark.sql(sql).cache()
        self.cached.append(frame)
        frame.createOrReplaceTempView(name)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.spark.sql(sql).collect()]

    def frame(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(sql).toPandas()

    def register(self, name: str, frame: pd.DataFrame, schema: str) -> None:
        self.spark.createDataFrame(frame, schema=schema).createOrReplaceTempView(name)


def _aggregate(
    spark: Any,
    typed: Any,
    name: str,
    notes: list,
    options: ReadOptions,
    as_of_day,
    date_format: str | None,
):
    F = _functions()
    counts = {row[0]: int(row[1]) for row in typed.groupBy("problem").agg(F.sum("n")).collect()}
    rows_read = sum(counts.values())
    if rows_read == 0:
        raise rules.no_rows(name)
    report = IngestionReport(source=name, rows_read=rows_read, notes=notes, date_format=date_format)
    found = []
    for code, reason in enumerate(rules.PROBLEMS, 1):
        count = counts.get(code, 0)
        report.dropped.update({reason: count} if count else {})
        if not count or code in rules.ALWAYS_DROPPED:  # dropped, never an error
            continue
        column = options.date_col if code in (2, 3) else options.amount_label
        raw = "raw_date" if code in (2, 3) else "raw_amount"
        values = _example_values(typed.where(F.col("problem") == code), raw)
        every = count == rows_read - counts.get(1, 0) - counts.get(2, 0)  # each dated row
        hint = rules.problem_hint(code, values, options, every)
        if code == rules.MISSING_AMOUNT and options.order_col is not None:
            keys = ["contact_id", "order_id"]
            priced = typed.where(F.col("problem") == 0).select(*keys).distinct()
            lines = typed.where(F.col("problem") == code).join(priced, keys, "left_semi")
            in_orders = lines.agg(F.sum("n")).collect()[0][0] or 0
            hint += rules.order_line_hint(count, int(in_orders))
        found.append(rules.problem_rows(count, reason, column, _shown(values, count)) + hint)
    if found and options.invalid == "error":
        raise rules.invalid_rows(name, found)
    usable = typed.where(F.col("problem") == 0)
    last_year = None if as_of_day is None else as_of_day.year + 1
    early_day = F.lit(rules.EARLIEST_PLAUSIBLE).cast("date")
    late_day = F.lit(f"{last_year or 9999}-12-31").cast("date")
    # Duplicates count among the usable rows on or before the as-of day, as in the local
    # engine; a repeated row after it is one more row after the as-of date.
    in_window = F.lit(True) if as_of_day is None else F.col("day") <= F.lit(as_of_day.date())
    n_dup, early, earliest, late, latest = usable.agg(
        F.coalesce(F.sum(F.when(in_window, F.col("n") - 1)), F.lit(0)),
        F.sum(F.when(F.col("day") < early_day, F.col("n"))),
        F.min("day"),
        F.sum(F.when(F.col("day") > late_day, F.col("n"))),
        F.max("day"),
    ).collect()[0]
    n_dup = int(n_dup)
    rules.implausible_dates(report, int(early or 0), earliest, int(late or 0), latest, last_year)
    weight = F.col("n")
    if n_dup and options.duplicates == "error":
        examples = _examples(usable.where((F.col("n") > 1) & in_window), "contact_id", n_dup)
        raise rules.duplicate_rows(name, n_dup, examples)
    if n_dup and options.duplicates == "drop":
        report.dropped[REASON_DUPLICATE] = n_dup
        weight = F.lit(1)
    elif n_dup:
        report.notes.append(rules.duplicates_kept_note(n_dup))
    usable = usable.withColumn("w", weight.cast("bigint"))
    if options.nonpositive == "error":
        nonpositive = usable.where(F.col("amount") <= 0)
        count = int(nonpositive.agg(F.coalesce(F.sum("n"), F.lit(0))).collect()[0][0])
        if count:
            examples = _examples(nonpositive, "raw_amount", count)
            raise rules.nonpositive_rows(name, count, options.amount_label, examples)
    if as_of_day is not None:
        end = F.lit(as_of_day.date())
        future = usable.where(F.col("day") > end)
        count = int(future.agg(F.coalesce(F.sum("n"), F.lit(0))).collect()[0][0])
        if count:
            report.dropped[REASON_AFTER_AS_OF] = count
            usable = usable.where(F.col("day") <= end)
    all_contacts = int(
        typed.select("contact_id").where(F.col("contact_id").isNotNull()).distinct().count()
    )
    usable.select("contact_id", "day", "amount", "order_id", "w").createOrReplaceTempView("lines")
    runner = _SparkRunner(spark)
    purchase_days(runner, options.nonpositive, report, orders=options.order_col is not None)
    daily = spark.table("daily").cache()
    days, rows, netted, contacts, first, last = daily.agg(
        F.count(F.lit(1)),
        F.coalesce(F.sum("size"), F.lit(0)),
        F.coalesce(F.sum("netted"), F.lit(0)),
        F.countDistinct("contact_id"),
        F.min("day"),
        F.max("day"),
    ).collect()[0]
    rules.finish_report(
        report,
        days=days,
        rows=rows,
        netted=netted,
        contacts=contacts,
        all_contacts=all_contacts,
        first=first,
        last=last,
        as_of=as_of_day,
    )
    purchases = daily.select(
        "contact_id",
        F.col("day").cast("timestamp_ntz").alias("date"),
        F.col("amount").cast("double").alias("amount"),
    )
    return purchases, report


def summary_spark(purchases: Any, as_of: str | pd.Timestamp) -> Any:
    """The customer summary at ``as_of`` in Spark SQL: :func:`clvcast.summary.summarize`'s
    query in Spark's dialect, over a purchase log (contact_id, date, amount)."""
    F = _functions()
    end = parse_as_of(as_of).date()
    daily = (
        purchases.where(F.to_date("date") <= F.lit(end))
        .groupBy("contact_id", F.to_date("date").alias("day"))
        .agg(F.sum(F.col("amount").cast("decimal(38,10)")).alias("amount"))
    )
    count = F.count(F.lit(1))
    total = F.sum("amount")
    first_amount = F.min_by("amount", "day")
    return daily.groupBy("contact_id").agg(
        (count - 1).alias("frequency"),
        F.datediff(F.max("day"), F.min("day")).cast("double").alias("recency"),
        F.datediff(F.lit(end), F.min("day")).cast("double").alias("T"),
        F.when(count > 1, (total - first_amount).cast("double") / (count - 1))
        .otherwise(F.lit(0.0))
        .alias("monetary_value"),
        F.min("day").alias("first_purchase"),
        F.max("day").alias("last_purchase"),
        count.alias("orders"),
        total.cast("double").alias("total_spend"),
        F.datediff(F.lit(end), F.max("day")).alias("days_since_last_purchase"),
    )


def summary_to_pandas(summary: Any) -> pd.DataFrame:
    """A Spark summary as the local engine's summary DataFrame (indexed by id, same dtypes)."""
    return finish_summary(summary.orderBy("contact_id").toPandas())


def sample_spark(purchases: Any, max_contacts: int, total: int) -> tuple[pd.DataFrame, int]:
    """The churn sample's purchases on the driver: :func:`clvcast.data.sample_contacts`."""
    F = _functions()
    if total > max_contacts:
        threshold = int(np.floor((2**SAMPLE_BITS) * max_contacts / total))
        digest = F.md5(F.concat(F.col("contact_id"), F.lit(SAMPLE_SALT)))
        slot = F.conv(F.substring(digest, 1, SAMPLE_BITS // 4), 16, 10).cast("bigint")
        purchases = purchases.where(slot < threshold)
    frame = purchases.orderBy("contact_id", "date").toPandas()
    frame["contact_id"] = frame["contact_id"].astype(str)
    frame["date"] = frame["date"].astype("datetime64[us]")
    return frame.reset_index(drop=True), int(frame["contact_id"].nunique())


def score_spark(
    spark: Any,
    pipeline: Any,
    purchases: Any,
    as_of: str | pd.Timestamp,
    contacts: pd.DataFrame | None = None,
    *,
    groups: int | None = None,
) -> Any:
    """The scored table as a Spark DataFrame, scored group by group in Spark tasks.

    ``pipeline`` is a fitted :class:`~clvcast.pipeline.CLVPipeline`. Contacts are grouped
    by :func:`partition_column` (the local engine's chunk function) into ``groups`` groups
    (default: 4 per core, at least about 200,000 contacts each); each group's purchases and contacts-table rows go to one task,
    which runs :meth:`~clvcast.pipeline.CLVPipeline.score_partition` (the local engine's
    scoring function) with the snapshot parts fitted once on the driver.
    """
    day = parse_as_of(as_of)
    summary = summary_to_pandas(summary_spark(purchases, day))
    context = pipeline.partition_context(summary)
    if groups is None:
        cores = spark.sparkContext.defaultParallelism
        groups = max(1, min(4 * cores, len(summary) // 200_000 + 1))
    template = pipeline.score_partition(
        _first_contacts(purchases, summary), day, contacts=_head(contacts), context=context
    )
    schema = _spark_schema(template)
    columns = list(template.columns)

    def score_group(log: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
        log = log.drop(columns="group").sort_values(["contact_id", "date"], ignore_index=True)
        log["date"] = log["date"].astype("datetime64[us]")
        rows = None if contacts is None else attributes.drop(columns="group")
        if log.empty:
            if rows is not None and len(rows):
                raise InputError(
                    f"a Spark group of {len(rows):,} contacts has no purchase; score with "
                    "fewer groups (the default sizes groups to the data)."
                )
            return template.head(0)
        table = pipeline.score_partition(log, day, contacts=rows, context=context)[columns]
        # PySpark converts each column with pyarrow.Array.from_pandas, which refuses pandas'
        # Arrow-backed (chunked) strings: hand text over as Python objects.
        text = [c for c in columns if pd.api.types.is_string_dtype(table[c])]
        return table.astype({c: object for c in text})

    group_of = partition_column(groups).alias("group")
    by_group = purchases.select("*", group_of).groupBy("group")
    if contacts is None:
        empty = spark.createDataFrame([], "contact_id string, group bigint")
        others = empty.groupBy("group")
    else:
        frame = spark.createDataFrame(contacts.astype({"contact_id": str}))
        others = frame.select("*", partition_column(groups).alias("group"))
        others = others.groupBy("group")
    return by_group.cogroup(others).applyInPandas(score_group, schema=schema)


def partition_column(n_parts: int) -> Any:
    """A contact's part out of ``n_parts`` as a Spark column: the same number as the local
    engine's :func:`clvcast.data.chunks.partition_sql` (the first 32 bits of md5(id))."""
    F = _functions()
    digits = PARTITION_BITS // 4
    slot = F.conv(F.substring(F.md5("contact_id"), 1, digits), 16, 10).cast("bigint")
    return F.pmod(slot, F.lit(n_parts)).cast("bigint")


def _first_contacts(purchases: Any, summary: pd.DataFrame) -> pd.DataFrame:
    """A few contacts' purchases on the driver: a template of the scored table's schema."""
    F = _functions()
    ids = list(summary.index[:50])
    frame = purchases.where(F.col("contact_id").isin(ids)).orderBy("contact_id", "date")
    frame = frame.toPandas()
    frame["contact_id"] = frame["contact_id"].astype(str)
    frame["date"] = frame["date"].astype("datetime64[us]")
    return frame


def _head(contacts: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if contacts is None else contacts.head(0)


def _spark_schema(table: pd.DataFrame) -> Any:
    """The Spark schema of a scored table (pandas dtypes to Spark types, through Arrow)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    arrow = pa.Schema.from_pandas(table, preserve_index=False)
    fields = []
    for field in arrow:
        kind = field.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us")
        elif pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind))
    return from_arrow_schema(pa.schema(fields))


@dataclass
class SparkTrainingData:
    """What training needs from Spark, on the driver: the summary and the churn sample."""

    report: IngestionReport
    summary: pd.DataFrame
    sample: pd.DataFrame
    sample_contacts: int


def training_data_spark(
    spark: Any,
    source: str | os.PathLike[str],
    options: ReadOptions,
    as_of: str | pd.Timestamp,
    sample_contacts: int,
) -> SparkTrainingData:
    """Read ``source`` with Spark and bring its summary at ``as_of`` (one row of numbers per
    contact) and the churn sample's purchases to the driver."""
    F = _functions()
    day = parse_as_of(as_of)
    purchases, report = read_transactions_spark(spark, source, options)
    purchases = purchases.where(F.col("date") <= F.lit(day.to_pydatetime())).cache()
    summary = summary_to_pandas(summary_spark(purchases, day))
    sample, size = sample_spark(purchases, sample_contacts, len(summary))
    return SparkTrainingData(report=report, summary=summary, sample=sample, sample_contacts=size)
