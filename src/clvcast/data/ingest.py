"""Reading, validating and normalising purchase logs and contacts tables.

A *transactions* table (CSV, Parquet or a DataFrame) has one row per purchase or order line,
with a contact id, a date or timestamp and an amount, under configurable column names.
:func:`read_transactions` turns it into a *purchase log*: one row per contact and calendar day
(``contact_id``, ``date``, ``amount``), which is what the lifetimes convention counts as one
purchase. Every input row is accounted for in an :class:`IngestionReport`: it ends up in a
purchase day (kept or merged into another row of the same contact-day) or is dropped for a
named reason. Nothing is dropped silently.

Policies (all documented in the README):

- ``nonpositive``: rows with amount <= 0 (refunds, returns, free orders).
  ``"drop"`` (default) drops them; ``"net"`` nets them against the same contact-day and drops
  days whose net amount is <= 0; ``"error"`` refuses the input.
- ``duplicates``: rows identical in every input column. ``"keep"`` (default: without an order
  id, two identical lines are usually two real orders on one day, as in CDNOW) keeps and
  counts them; ``"drop"`` keeps the first; ``"error"`` refuses the input.
- ``invalid``: rows with a missing contact id, or a missing or unparseable date or amount.
  ``"error"`` (default) refuses the input with counts and examples; ``"drop"`` drops and
  counts them.
- Time zones: tz-aware timestamps are converted to UTC, then the day is taken.
- ``as_of``: rows after the as-of day are dropped and counted (they are the future).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pandas as pd

from clvcast.data import rules
from clvcast.data.inputs import (
    EXAMPLES,
    check_columns,
    existing_file,
    parse_as_of,
    parse_dates,
    source_name,
)
from clvcast.data.report import (
    REASON_AFTER_AS_OF,
    REASON_DUPLICATE,
    REASON_NET_NONPOSITIVE,
    REASON_NONPOSITIVE,
    IngestionReport,
    PurchaseLog,
)
from clvcast.errors import InputError

NonPositivePolicy = Literal["drop", "net", "error"]
DuplicatePolicy = Literal["keep", "drop", "error"]
InvalidPolicy = Literal["error", "drop"]


def _check_policy(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name}='{value}' is not a known policy; use one of {list(allowed)}.")


# DuckDB column types, as DESCRIBE names them, that decide how a column is read.
_TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
_ZONED_TYPE = "TIMESTAMP WITH TIME ZONE"
_FLOAT_TYPES = ("FLOAT", "DOUBLE")
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT")
_NUMERIC_TYPES += ("USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "DECIMAL") + _FLOAT_TYPES
# Day totals are summed as DECIMAL: exact for money, and the same on every run however the
# threads of a parallel sum finish. Amounts this large count as unparseable: no shop sells
# for 10^16, and below it the sums stay exact in both engines' DECIMAL arithmetic.
_AMOUNT_DECIMAL = "DECIMAL(38, 10)"
AMOUNT_LIMIT = 1e16
_ROWS = "_clvcast_rows"  # multiplicity of a distinct input row
_POSITION = "_clvcast_position"  # 0-based position of an input row


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _base_type(duck_type: str) -> str:
    return duck_type.split("(")[0]


@dataclass
class _Columns:
    """SQL expressions that type the contact, date and amount columns of one input row."""

    contact: str
    timestamp: str
    date_blank: str
    amount: str
    amount_blank: str
    join: str  # joins the table of parsed date texts, when dates arrive as text

    def problem(self) -> str:
        """The row's problem code: 0 = usable, else 1 + the index in ``rules.PROBLEMS``."""
        bad_amount = (
            f"{self.amount} IS NULL OR NOT isfinite({self.amount}) "
            f"OR abs({self.amount}) >= {AMOUNT_LIMIT}"
        )
        checks = (
            f"{self.contact} IS NULL",
            self.date_blank,
            f"{self.timestamp} IS NULL",
            self.amount_blank,
            bad_amount,
        )
        cases = " ".join(f"WHEN {check} THEN {code}" for code, check in enumerate(checks, 1))
        return f"CASE {cases} ELSE 0 END"


def _contact_sql(connection: duckdb.DuckDBPyConnection, column: str, duck_type: str) -> str:
    """Contact ids as text: trimmed (blank = missing); whole-number floats lose their '.0'."""
    q = f"source.{_quote(column)}"
    if _base_type(duck_type) in _FLOAT_TYPES:
        whole = connection.execute(
            f"SELECT bool_and({q} = floor({q})) FROM source WHERE NOT isnan({q})"
        ).fetchall()[0][0]
        text = f"CAST(CAST({q} AS HUGEINT) AS VARCHAR)" if whole else f"CAST({q} AS VARCHAR)"
        return f"CASE WHEN isnan({q}) THEN NULL ELSE {text} END"
    if _base_type(duck_type) in _NUMERIC_TYPES:
        return f"CAST({q} AS VARCHAR)"
    return f"NULLIF(trim(CAST({q} AS VARCHAR)), '')"


def _date_sql(
    connection: duckdb.DuckDBPyConnection,
    column: str,
    duck_type: str,
    date_format: str | None,
    notes: list[str],
) -> tuple[str, str, str]:
    """(timestamp expression, blank test, join) for the date column, in naive UTC.

    Typed dates and timestamps are used as they are (time-zone-aware ones converted to UTC).
    Text is parsed by pandas, once per distinct value (a log has few distinct dates), so the
    accepted formats, the inference and the UTC rules are those of ``pd.to_datetime``.
    """
    q = f"source.{_quote(column)}"
    if duck_type in _TEMPORAL_TYPES:
        return f"CAST({q} AS TIMESTAMP)", f"{q} IS NULL", ""
    if duck_type == _ZONED_TYPE:
        notes.append("timestamps with a time zone were converted to UTC before taking the day")
        return f"timezone('UTC', {q})", f"{q} IS NULL", ""
    text = f"CAST({q} AS VARCHAR)" if date_format else f"trim(CAST({q} AS VARCHAR))"
    blank = f"({q} IS NULL OR trim(CAST({q} AS VARCHAR)) = '')"
    distinct = connection.execute(
        f"SELECT DISTINCT {text} AS date_text FROM source WHERE NOT {blank} ORDER BY 1"
    ).df()["date_text"]
    parsed = parse_dates(distinct.astype("string"), date_format, notes)
    mapping = pd.DataFrame({"date_text": distinct.astype(str), "date_parsed": parsed})
    connection.register("date_map", mapping)
    join = f"LEFT JOIN date_map ON date_map.date_text = {text}"
    return "date_map.date_parsed", blank, join


def _amount_sql(column: str, duck_type: str) -> tuple[str, str]:
    """(amount as DOUBLE, blank test); text that is not a number becomes NULL."""
    q = f"source.{_quote(column)}"
    if _base_type(duck_type) in _NUMERIC_TYPES:
        return f"CAST({q} AS DOUBLE)", f"{q} IS NULL"
    blank = f"({q} IS NULL OR trim(CAST({q} AS VARCHAR)) = '')"
    return f"TRY_CAST(trim(CAST({q} AS VARCHAR)) AS DOUBLE)", blank


def _register_source(
    connection: duckdb.DuckDBPyConnection, source: str | os.PathLike[str] | pd.DataFrame
) -> None:
    """Make the input the view ``source``: a DataFrame, or a Parquet or CSV file read in place.

    Every column of a CSV is read as text, so ids keep their leading zeros and the
    validation sees the values exactly as written.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        if mixed:  # Python objects of any type: compare and parse them as text
            frame = frame.astype({c: "string" for c in mixed})
        connection.register("source_frame", frame)
        connection.execute("CREATE VIEW source AS SELECT * FROM source_frame")
        return
    path = existing_file(source, what="transactions")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        reader = f"read_parquet({_literal(str(path))})"
    elif suffix in {".csv", ".txt", ".tsv"}:
        sep = "\\t" if suffix == ".tsv" else ","
        reader = (
            f"read_csv({_literal(str(path))}, all_varchar = true, header = true, "
            f"delim = {_literal(sep)})"
        )
    else:
        raise InputError(
            f"transactions file {path} has extension '{suffix}'; use .csv, .tsv or .parquet."
        )
    try:
        connection.execute(f"CREATE VIEW source AS SELECT * FROM {reader}")
        connection.execute("SELECT * FROM source LIMIT 1").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"cannot read transactions file {path}: {exc}") from exc


def _examples_of(connection: duckdb.DuckDBPyConnection, sql: str, total: int) -> str:
    """'row 3: "abc", row 9: "x"' from a query of (0-based position, value), first rows first."""
    rows = connection.execute(f"{sql} ORDER BY 1 LIMIT {EXAMPLES}").fetchall()
    shown = [f'row {int(position) + 1}: "{value}"' for position, value in rows]
    more = total - len(rows)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    return connection.execute(sql, params).fetchall()[0][0]


def read_transactions(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    contact_col: str = "contact_id",
    date_col: str = "date",
    amount_col: str = "amount",
    date_format: str | None = None,
    as_of: str | pd.Timestamp | None = None,
    nonpositive: NonPositivePolicy = "drop",
    duplicates: DuplicatePolicy = "keep",
    invalid: InvalidPolicy = "error",
    name: str | None = None,
) -> PurchaseLog:
    """Read, validate and normalise transactions into a purchase log (one row per contact-day).

    Parameters
    ----------
    source
        A CSV/TSV/Parquet path or a DataFrame with one row per purchase or order line.
    contact_col, date_col, amount_col
        Names of the contact id, purchase date/timestamp and amount columns.
    date_format
        strftime format of the dates (for example ``"%Y%m%d"``); inferred when omitted.
    as_of
        Inclusive last day of history; later rows are dropped and counted.
    nonpositive, duplicates, invalid
        Policies for refunds and zero amounts, exact duplicate rows and unusable rows
        (see the module docstring).
    name
        Name of the input in messages and in the report (default: the file name).

    The work runs in DuckDB, which reads Parquet and CSV files in place, in parallel and
    without a Python object per row: the input is grouped into distinct rows (which also
    counts exact duplicates), each distinct row is typed and checked once, and the usable
    rows are summed per contact and day.

    Raises
    ------
    InputError
        Missing columns, empty input, or rows refused by an ``"error"`` policy; the message
        gives counts and example rows.
    """
    options = ReadOptions(
        contact_col=contact_col,
        date_col=date_col,
        amount_col=amount_col,
        date_format=date_format,
        as_of=as_of,
        nonpositive=nonpositive,
        duplicates=duplicates,
        invalid=invalid,
        name=name,
    )
    with ingested(source, options) as (connection, report):
        # Through Arrow: text columns arrive as pandas' Arrow-backed strings, without a
        # Python object per row (four times faster than DuckDB's own DataFrame conversion).
        purchases = fetch_frame(connection, "SELECT * FROM purchases ORDER BY contact_id, date")
    return PurchaseLog(purchases=purchases, report=report)


def fetch_frame(connection: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result as a DataFrame, through Arrow (text as Arrow-backed strings)."""
    return connection.sql(sql).to_arrow_table().to_pandas()


def duckdb_connection(spill: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that spills to ``spill`` beyond its memory budget.

    The budget is a share of the machine's memory (:data:`DUCKDB_MEMORY_SHARE`), so that
    DuckDB's buffers plus the Python side of a run stay well within it; larger inputs spill
    to disk instead of running out of memory.
    """
    config = {"temp_directory": str(spill), "memory_limit": f"{_memory_budget_mb()}MB"}
    return duckdb.connect(config=config)


DUCKDB_MEMORY_SHARE = 0.35


def _memory_budget_mb() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: DuckDB's default
        total = 8 * 1024**3 / 0.8
    return max(256, int(total * DUCKDB_MEMORY_SHARE / 1024**2))


@dataclass(frozen=True)
class ReadOptions:
    """How to read a transactions table: the keyword arguments of :func:`read_transactions`."""

    contact_col: str = "contact_id"
    date_col: str = "date"
    amount_col: str = "amount"
    date_format: str | None = None
    as_of: str | pd.Timestamp | None = None
    nonpositive: NonPositivePolicy = "drop"
    duplicates: DuplicatePolicy = "keep"
    invalid: InvalidPolicy = "error"
    name: str | None = None


def check_policies(options: ReadOptions) -> None:
    """One clear error for a policy name that is not one of the known ones."""
    _check_policy("nonpositive", options.nonpositive, ("drop", "net", "error"))
    _check_policy("duplicates", options.duplicates, ("keep", "drop", "error"))
    _check_policy("invalid", options.invalid, ("error", "drop"))


@contextlib.contextmanager
def ingested(
    source: str | os.PathLike[str] | pd.DataFrame, options: ReadOptions
) -> Iterator[tuple[duckdb.DuckDBPyConnection, IngestionReport]]:
    """Ingest ``source`` into an open DuckDB, as :func:`read_transactions` with ``options``.

    Yields the connection, whose view ``purchases`` (contact_id, date, amount: one row per
    contact and day, unordered) is the purchase log, and the ingestion report. The
    connection and its spill folder are gone after the ``with`` block.
    """
    check_policies(options)
    as_of_day = parse_as_of(options.as_of)
    name = options.name or source_name(source)
    with tempfile.TemporaryDirectory(prefix="clvcast-duckdb-") as spill:
        connection = duckdb_connection(spill)
        try:
            report = _ingest(
                connection,
                source,
                name,
                columns=(options.contact_col, options.date_col, options.amount_col),
                date_format=options.date_format,
                as_of_day=as_of_day,
                policies=(options.nonpositive, options.duplicates, options.invalid),
            )
            yield connection, report
        finally:
            connection.close()


def _ingest(
    connection: duckdb.DuckDBPyConnection,
    source: str | os.PathLike[str] | pd.DataFrame,
    name: str,
    *,
    columns: tuple[str, str, str],
    date_format: str | None,
    as_of_day: pd.Timestamp | None,
    policies: tuple[str, str, str],
) -> IngestionReport:
    """Check and aggregate ``source`` in ``connection``; see :func:`ingested`."""
    contact_col, date_col, amount_col = columns
    nonpositive, duplicates, invalid = policies
    _register_source(connection, source)
    described = connection.execute("DESCRIBE SELECT * FROM source").fetchall()
    types = {str(row[0]): str(row[1]) for row in described}
    check_columns(
        list(types),
        {"contact id": contact_col, "purchase date": date_col, "amount": amount_col},
        what=f"transactions ({name})",
    )
    notes: list[str] = []
    timestamp, date_blank, join = _date_sql(
        connection, date_col, types[date_col], date_format, notes
    )
    amount, amount_blank = _amount_sql(amount_col, types[amount_col])
    typed = _Columns(
        contact=_contact_sql(connection, contact_col, types[contact_col]),
        timestamp=timestamp,
        date_blank=date_blank,
        amount=amount,
        amount_blank=amount_blank,
        join=join,
    )
    # One row per distinct input row, with its multiplicity: exact duplicates are counted
    # here, and every check below runs once per distinct row.
    connection.execute(
        f"""
        CREATE TEMP TABLE typed AS
        SELECT {typed.contact} AS contact_id, CAST({typed.timestamp} AS DATE) AS day,
               {typed.amount} AS amount, {typed.problem()} AS problem, source.{_ROWS} AS n
        FROM (SELECT *, COUNT(*) AS {_ROWS} FROM source GROUP BY ALL) AS source {typed.join}
        """
    )
    rows_read = int(_scalar(connection, "SELECT COALESCE(SUM(n), 0) FROM typed"))
    if rows_read == 0:
        raise rules.no_rows(name)
    report = IngestionReport(source=name, rows_read=rows_read, notes=notes)
    numbered = (
        f"(SELECT row_number() OVER () - 1 AS {_POSITION}, * FROM source) AS source {typed.join}"
    )
    counts = dict(connection.execute("SELECT problem, SUM(n) FROM typed GROUP BY ALL").fetchall())
    found = []
    for code, reason in enumerate(rules.PROBLEMS, 1):
        count = int(counts.get(code, 0))
        if count:
            column = {1: contact_col, 2: date_col, 3: date_col}.get(code, amount_col)
            examples = _examples_of(
                connection,
                f"SELECT {_POSITION}, source.{_quote(column)} FROM {numbered} "
                f"WHERE {typed.problem()} = {code}",
                count,
            )
            found.append(f"{count:,} rows with {reason} in column '{column}' ({examples})")
            report.dropped[reason] = count
    if found and invalid == "error":
        raise rules.invalid_rows(name, found)

    n_dup = int(_scalar(connection, "SELECT COALESCE(SUM(n - 1), 0) FROM typed WHERE problem = 0"))
    weight = "n"
    if n_dup and duplicates == "error":
        every = ", ".join(f"source.{_quote(c)}" for c in types)
        examples = _examples_of(
            connection,
            f"""SELECT {_POSITION}, contact FROM (
                    SELECT {_POSITION}, {typed.contact} AS contact, {typed.problem()} AS problem,
                           row_number() OVER (PARTITION BY {every} ORDER BY {_POSITION}) AS k
                    FROM {numbered}) WHERE k > 1 AND problem = 0""",
            n_dup,
        )
        raise rules.duplicate_rows(name, n_dup, examples)
    if n_dup and duplicates == "drop":
        report.dropped[REASON_DUPLICATE] = n_dup
        weight = "1"
    elif n_dup:
        report.notes.append(rules.duplicates_kept_note(n_dup))

    usable = "problem = 0"
    count = int(
        _scalar(
            connection,
            f"SELECT COALESCE(SUM({weight}), 0) FROM typed WHERE {usable} AND amount <= 0",
        )
    )
    if count and nonpositive == "error":
        examples = _examples_of(
            connection,
            f"SELECT {_POSITION}, source.{_quote(amount_col)} FROM {numbered} "
            f"WHERE {typed.problem()} = 0 AND {typed.amount} <= 0",
            count,
        )
        raise rules.nonpositive_rows(name, count, amount_col, examples)
    if count and nonpositive == "drop":
        report.dropped[REASON_NONPOSITIVE] = count
        usable += " AND amount > 0"
    if as_of_day is not None:
        future = f"{usable} AND day > $as_of"
        params = {"as_of": as_of_day.date()}
        count = int(
            _scalar(
                connection, f"SELECT COALESCE(SUM({weight}), 0) FROM typed WHERE {future}", params
            )
        )
        if count:
            report.dropped[REASON_AFTER_AS_OF] = count
            usable += f" AND day <= {_literal(str(as_of_day.date()))}"

    all_contacts = int(_scalar(connection, "SELECT COUNT(DISTINCT contact_id) FROM typed"))
    connection.execute(
        f"""
        CREATE TEMP TABLE daily AS
        SELECT contact_id, day,
               SUM(CAST(amount AS {_AMOUNT_DECIMAL}) * {weight}) AS amount,
               SUM({weight}) AS size
        FROM typed WHERE {usable} GROUP BY contact_id, day
        """
    )
    kept = "TRUE"
    if nonpositive == "net":
        count = int(
            _scalar(connection, "SELECT COALESCE(SUM(size), 0) FROM daily WHERE amount <= 0")
        )
        if count:
            report.dropped[REASON_NET_NONPOSITIVE] = count
            kept = "amount > 0"
    days, rows, contacts, first, last = connection.execute(
        f"""SELECT COUNT(*), COALESCE(SUM(size), 0), COUNT(DISTINCT contact_id), MIN(day), MAX(day)
            FROM daily WHERE {kept}"""
    ).fetchall()[0]
    rules.finish_report(
        report,
        days=days,
        rows=rows,
        contacts=contacts,
        all_contacts=all_contacts,
        first=first,
        last=last,
    )
    connection.execute(
        f"""CREATE VIEW purchases AS
            SELECT contact_id, CAST(day AS TIMESTAMP) AS date, CAST(amount AS DOUBLE) AS amount
            FROM daily WHERE {kept}"""
    )
    return report
