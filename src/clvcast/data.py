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

import difflib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from clvcast.errors import InputError

NonPositivePolicy = Literal["drop", "net", "error"]
DuplicatePolicy = Literal["keep", "drop", "error"]
InvalidPolicy = Literal["error", "drop"]

PURCHASE_LOG_COLUMNS = ("contact_id", "date", "amount")

# Reasons a row can be dropped; the keys of IngestionReport.dropped.
REASON_MISSING_CONTACT = "missing contact_id"
REASON_MISSING_DATE = "missing date"
REASON_BAD_DATE = "unparseable date"
REASON_MISSING_AMOUNT = "missing amount"
REASON_BAD_AMOUNT = "unparseable amount"
REASON_DUPLICATE = "exact duplicate row"
REASON_NONPOSITIVE = "non-positive amount (refund, return or zero)"
REASON_NET_NONPOSITIVE = "contact-day with non-positive net amount"
REASON_AFTER_AS_OF = "after the as-of date"

_EXAMPLES = 5


@dataclass
class IngestionReport:
    """Where every input row went.

    ``rows_read == purchase_days + rows_merged + sum(dropped.values())`` always holds:
    a row is the first of its contact-day (a purchase day), merged into a day that already
    has a row, or dropped for a reason in ``dropped``.
    """

    source: str
    rows_read: int
    purchase_days: int = 0
    rows_merged: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    contacts: int = 0
    contacts_without_purchase: int = 0
    first_date: pd.Timestamp | None = None
    last_date: pd.Timestamp | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return int(sum(self.dropped.values()))

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome (kept, merged, dropped: reason) with row counts."""
        rows = [("kept", "purchase day", self.purchase_days)]
        rows.append(("merged", "same contact and day as a kept row", self.rows_merged))
        rows += [("dropped", reason, count) for reason, count in self.dropped.items()]
        return pd.DataFrame(rows, columns=["outcome", "reason", "rows"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for logs and MLflow artifacts)."""
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "purchase_days": self.purchase_days,
            "rows_merged": self.rows_merged,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped),
            "contacts": self.contacts,
            "contacts_without_purchase": self.contacts_without_purchase,
            "first_date": None if self.first_date is None else str(self.first_date.date()),
            "last_date": None if self.last_date is None else str(self.last_date.date()),
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """A short human-readable report, as the CLI prints it."""
        width = len(f"{self.rows_read:,}")
        lines = [f"Ingestion report for {self.source}"]
        lines.append(f"  {self.rows_read:>{width},} rows read")
        lines.append(
            f"  {self.purchase_days:>{width},} purchase days kept (one per contact and day)"
        )
        lines.append(f"  {self.rows_merged:>{width},} rows merged into a purchase day")
        for reason, count in self.dropped.items():
            lines.append(f"  {count:>{width},} rows dropped: {reason}")
        span = ""
        if self.first_date is not None and self.last_date is not None:
            span = f", {self.first_date.date()} to {self.last_date.date()}"
        lines.append(f"  {self.contacts:,} contacts with purchases{span}")
        if self.contacts_without_purchase:
            lines.append(
                f"  {self.contacts_without_purchase:,} contacts lost every row to the drops above"
            )
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class PurchaseLog:
    """A validated purchase log and the report of how it was made.

    ``purchases`` has columns ``contact_id`` (str), ``date`` (datetime64, midnight of the
    purchase day) and ``amount`` (float, the day's total), one row per contact and day,
    sorted by contact and date.
    """

    purchases: pd.DataFrame
    report: IngestionReport


def read_table(source: str | os.PathLike[str] | pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension), or pass a DataFrame through.

    Every column of a CSV is read as text, so ids keep their leading zeros and the
    validation below sees the values exactly as written.
    """
    if isinstance(source, pd.DataFrame):
        return source
    path = _existing_file(source, what=what)
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".csv", ".txt", ".tsv"}:
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {what} file {path}: {exc}") from exc
    raise InputError(f"{what} file {path} has extension '{suffix}'; use .csv, .tsv or .parquet.")


def parse_as_of(value: str | pd.Timestamp | np.datetime64 | None) -> pd.Timestamp | None:
    """Parse an as-of date (inclusive: the whole day counts) to a midnight Timestamp."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"as-of date '{value}' is not a date; use YYYY-MM-DD.") from exc
    if stamp is pd.NaT:
        raise InputError(f"as-of date '{value}' is not a date; use YYYY-MM-DD.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


def check_columns(columns: Sequence[object], required: Mapping[str, str], *, what: str) -> None:
    """Raise one InputError naming every missing column, the available ones and close matches.

    ``columns`` are the input's column names; ``required`` maps a role ("contact id") to the
    column name expected for it.
    """
    available = [str(c) for c in columns]
    missing = [(role, name) for role, name in required.items() if name not in available]
    if not missing:
        return
    parts = []
    for role, name in missing:
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parts.append(f"'{name}' for the {role}{hint}")
    raise InputError(
        f"{what} is missing column {', '.join(parts)}; available columns: {available}. "
        "Rename the columns or pass the names to use (for example --contact-col)."
    )


def _examples(values: pd.Series, limit: int = _EXAMPLES) -> str:
    """'row 3: "abc", row 9: "x"' for the first few offending rows (1-based data rows)."""
    shown = [f'row {int(pos) + 1}: "{val}"' for pos, val in values.head(limit).items()]
    more = len(values) - limit
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def normalise_contact_ids(ids: pd.Series) -> pd.Series:
    """Contact ids as strings; whole-number floats (ids read with NaNs) lose their '.0'."""
    if pd.api.types.is_float_dtype(ids):
        whole = ids.dropna()
        if (whole == np.floor(whole)).all():
            return ids.astype("Int64").astype("string").astype(object).where(ids.notna())
    if pd.api.types.is_string_dtype(ids) or ids.dtype == object:
        text = ids.astype("string").str.strip()
        return text.where(text != "").astype(object)
    return ids.astype("string").astype(object).where(ids.notna())


def _parse_dates(raw: pd.Series, date_format: str | None, notes: list[str]) -> pd.Series:
    """Parse to naive UTC datetimes; tz-aware values are converted to UTC and noted."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        notes.append(f"timestamps in time zone {raw.dt.tz} were converted to UTC")
        return raw.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(raw):
        return raw
    text = raw.astype("string").str.strip() if date_format is None else raw.astype("string")
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=date_format)
    except (ValueError, TypeError):
        # Mixed UTC offsets (or mixed aware and naive values): everything to UTC.
        parsed = pd.to_datetime(text, errors="coerce", format=date_format, utc=True)
        notes.append("timestamps with mixed time zones were converted to UTC")
        return parsed.dt.tz_localize(None)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        notes.append(f"timestamps with time zone {parsed.dt.tz} were converted to UTC")
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    retry = parsed.isna() & text.notna() & (text != "")
    if date_format is None and retry.any():
        # The format was inferred from the first value; parse the rows written in another
        # format (say "2024-01-31 23:59" after "2024-01-01") one by one.
        again = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=True)
        parsed = parsed.copy()
        parsed[retry] = again.dt.tz_localize(None)
    return parsed


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
# threads of a parallel sum finish. Amounts this large do not fit and count as unparseable.
_AMOUNT_DECIMAL = "DECIMAL(38, 10)"
_AMOUNT_LIMIT = 1e26
# Problems of a row, checked in this order (the first that applies counts); code = index + 1.
_PROBLEMS = (
    REASON_MISSING_CONTACT,
    REASON_MISSING_DATE,
    REASON_BAD_DATE,
    REASON_MISSING_AMOUNT,
    REASON_BAD_AMOUNT,
)
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
        """The row's problem code: 0 = usable, else 1 + the index in ``_PROBLEMS``."""
        bad_amount = (
            f"{self.amount} IS NULL OR NOT isfinite({self.amount}) "
            f"OR abs({self.amount}) >= {_AMOUNT_LIMIT}"
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
    parsed = _parse_dates(distinct.astype("string"), date_format, notes)
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
    path = _existing_file(source, what="transactions")
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


def _existing_file(source: str | os.PathLike[str], *, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}.")
    return path


def _examples_of(connection: duckdb.DuckDBPyConnection, sql: str, total: int) -> str:
    """'row 3: "abc", row 9: "x"' from a query of (0-based position, value), first rows first."""
    rows = connection.execute(f"{sql} ORDER BY 1 LIMIT {_EXAMPLES}").fetchall()
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
    _check_policy("nonpositive", nonpositive, ("drop", "net", "error"))
    _check_policy("duplicates", duplicates, ("keep", "drop", "error"))
    _check_policy("invalid", invalid, ("error", "drop"))
    as_of_day = parse_as_of(as_of)
    name = name or source_name(source)
    with tempfile.TemporaryDirectory(prefix="clvcast-duckdb-") as spill:
        connection = duckdb.connect(config={"temp_directory": spill})
        try:
            return _ingest(
                connection,
                source,
                name,
                columns=(contact_col, date_col, amount_col),
                date_format=date_format,
                as_of_day=as_of_day,
                policies=(nonpositive, duplicates, invalid),
            )
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
) -> PurchaseLog:
    """The body of :func:`read_transactions`, on an open DuckDB connection."""
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
        raise InputError(f"transactions ({name}) has no rows; nothing to model.")
    report = IngestionReport(source=name, rows_read=rows_read, notes=notes)
    numbered = (
        f"(SELECT row_number() OVER () - 1 AS {_POSITION}, * FROM source) AS source {typed.join}"
    )
    counts = dict(connection.execute("SELECT problem, SUM(n) FROM typed GROUP BY ALL").fetchall())
    found = []
    for code, reason in enumerate(_PROBLEMS, 1):
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
        raise InputError(
            f"transactions ({name}): "
            + "; ".join(found)
            + ". Fix the data, or pass invalid='drop' (CLI: --drop-invalid) to drop and count them."
        )

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
        raise InputError(
            f"transactions ({name}): {n_dup:,} rows are exact duplicates of an earlier row "
            f"({examples}). Remove them, or pass duplicates='keep' or 'drop'."
        )
    if n_dup and duplicates == "drop":
        report.dropped[REASON_DUPLICATE] = n_dup
        weight = "1"
    elif n_dup:
        report.notes.append(
            f"{n_dup:,} rows are exact duplicates of an earlier row; kept as separate "
            "order lines (duplicates='drop' removes them)"
        )

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
        raise InputError(
            f"transactions ({name}): {count:,} rows have an amount <= 0 in column "
            f"'{amount_col}' ({examples}). Pass nonpositive='drop' "
            "or 'net' (CLI: --nonpositive) to say how refunds and zero amounts count."
        )
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
    if days == 0:
        raise InputError(
            f"transactions ({name}): no usable purchase is left after the drops "
            f"({report.dropped}); check the as-of date and the amount column."
        )
    report.purchase_days = int(days)
    report.rows_merged = int(rows) - int(days)
    report.contacts = int(contacts)
    report.contacts_without_purchase = all_contacts - report.contacts
    report.first_date = pd.Timestamp(first)
    report.last_date = pd.Timestamp(last)
    # Through Arrow: text columns arrive as pandas' Arrow-backed strings, without a Python
    # object per row (four times faster than DuckDB's own DataFrame conversion).
    purchases = (
        connection.sql(
            f"""SELECT contact_id, CAST(day AS TIMESTAMP) AS date, CAST(amount AS DOUBLE) AS amount
                FROM daily WHERE {kept} ORDER BY contact_id, day"""
        )
        .to_arrow_table()
        .to_pandas()
    )
    return PurchaseLog(purchases=purchases, report=report)


def read_contacts(
    source: str | os.PathLike[str] | pd.DataFrame, *, contact_col: str = "contact_id"
) -> pd.DataFrame:
    """Read a contacts table: one row per contact, any attribute columns carried through.

    Returns a DataFrame whose first column is ``contact_id`` (str). Contacts without
    purchases become prospects in the scored table.
    """
    name = source_name(source)
    frame = read_table(source, what="contacts")
    check_columns(frame.columns, {"contact id": contact_col}, what=f"contacts ({name})")
    ids = normalise_contact_ids(frame[contact_col].reset_index(drop=True))
    if ids.isna().any():
        raise InputError(
            f"contacts ({name}): {int(ids.isna().sum()):,} rows have no value in column "
            f"'{contact_col}' ({_examples(ids[ids.isna()].fillna(''))}). Every contact needs an id."
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise InputError(
            f"contacts ({name}): {int(ids[dup].nunique()):,} contact ids appear more than once "
            f"in column '{contact_col}' ({_examples(ids[dup])}). Keep one row per contact."
        )
    attributes = frame.reset_index(drop=True).drop(columns=[contact_col])
    clash = [c for c in attributes.columns if c == "contact_id"]
    if clash:
        attributes = attributes.drop(columns=clash)
    result = pd.concat([pd.Series(ids, name="contact_id"), attributes], axis=1)
    return result


def source_name(source: object) -> str:
    """A short name of an input for messages and reports."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    return Path(str(source)).name


def cdnow_master_path() -> Path:
    """Path of ``CDNOW_master.txt`` as shipped inside the lifetimes package."""
    path = resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt")
    return Path(str(path))


def load_cdnow_master() -> pd.DataFrame:
    """The raw CDNOW master data set (69,659 rows, 23,570 contacts) as a transactions table.

    Columns: ``contact_id`` (zero-padded text, as in the file), ``date`` (text YYYYMMDD),
    ``cds`` (number of CDs) and ``amount`` (US dollars). Includes the 80 rows whose amount
    is 0; pass the result to :func:`read_transactions` with ``date_format="%Y%m%d"``, or use
    :func:`cdnow_purchase_log`.
    """
    frame = pd.read_csv(
        cdnow_master_path(), sep=r"\s+", dtype={"customer_id": str, "date": str}, engine="c"
    )
    return frame.rename(
        columns={"customer_id": "contact_id", "number_of_cds": "cds", "dollar_value": "amount"}
    )


def cdnow_purchase_log(as_of: str | pd.Timestamp | None = None, **policies: Any) -> PurchaseLog:
    """CDNOW master as a validated purchase log (default policies, dates as YYYYMMDD)."""
    return read_transactions(
        load_cdnow_master(), date_format="%Y%m%d", as_of=as_of, name="CDNOW_master.txt", **policies
    )
