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
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

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
    path = Path(source)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}.")
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


def check_columns(frame: pd.DataFrame, required: Mapping[str, str], *, what: str) -> None:
    """Raise one InputError naming every missing column, the available ones and close matches.

    ``required`` maps a role ("contact id") to the column name expected for it.
    """
    available = [str(c) for c in frame.columns]
    missing = [(role, name) for role, name in required.items() if name not in frame.columns]
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


def _is_blank(raw: pd.Series) -> pd.Series:
    """True where a value is missing: null, or empty text."""
    if pd.api.types.is_string_dtype(raw) or raw.dtype == object:
        return raw.isna() | (raw.astype("string").str.strip() == "").fillna(True)
    return raw.isna()


def _parse_amounts(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype(float)
    text = raw.astype("string").str.strip()
    return pd.to_numeric(text, errors="coerce").astype(float)


def _check_policy(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name}='{value}' is not a known policy; use one of {list(allowed)}.")


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
    frame = read_table(source, what="transactions")
    check_columns(
        frame,
        {"contact id": contact_col, "purchase date": date_col, "amount": amount_col},
        what=f"transactions ({name})",
    )
    if len(frame) == 0:
        raise InputError(f"transactions ({name}) has no rows; nothing to model.")

    report = IngestionReport(source=name, rows_read=len(frame))
    positions = pd.RangeIndex(len(frame))
    contact = normalise_contact_ids(frame[contact_col].reset_index(drop=True))
    when = _parse_dates(frame[date_col].reset_index(drop=True), date_format, report.notes)
    amount = _parse_amounts(frame[amount_col].reset_index(drop=True))
    raw_date = frame[date_col].reset_index(drop=True)
    raw_amount = frame[amount_col].reset_index(drop=True)

    date_missing = _is_blank(raw_date)
    amount_missing = _is_blank(raw_amount)
    problems = {
        REASON_MISSING_CONTACT: (contact.isna(), frame[contact_col]),
        REASON_MISSING_DATE: (date_missing, raw_date),
        REASON_BAD_DATE: (when.isna() & ~date_missing, raw_date),
        REASON_MISSING_AMOUNT: (amount_missing, raw_amount),
        REASON_BAD_AMOUNT: ((amount.isna() | np.isinf(amount)) & ~amount_missing, raw_amount),
    }
    keep = pd.Series(True, index=positions)
    found = []
    for reason, (mask, values) in problems.items():
        mask = pd.Series(np.asarray(mask, dtype=bool), index=positions) & keep
        if mask.any():
            column = {REASON_MISSING_CONTACT: contact_col}.get(reason)
            column = column or (date_col if "date" in reason else amount_col)
            shown = pd.Series(np.asarray(values)[mask.to_numpy()], index=positions[mask])
            found.append(
                f"{int(mask.sum()):,} rows with {reason} in column '{column}' ({_examples(shown)})"
            )
            report.dropped[reason] = int(mask.sum())
            keep &= ~mask
    if found and invalid == "error":
        raise InputError(
            f"transactions ({name}): "
            + "; ".join(found)
            + ". Fix the data, or pass invalid='drop' (CLI: --drop-invalid) to drop and count them."
        )

    log = pd.DataFrame({"contact_id": contact, "timestamp": when, "amount": amount})
    dup_mask = frame.reset_index(drop=True).duplicated(keep="first").to_numpy() & keep.to_numpy()
    n_dup = int(dup_mask.sum())
    if n_dup and duplicates == "error":
        shown = contact[dup_mask]
        raise InputError(
            f"transactions ({name}): {n_dup:,} rows are exact duplicates of an earlier row "
            f"({_examples(shown)}). Remove them, or pass duplicates='keep' or 'drop'."
        )
    if n_dup and duplicates == "drop":
        report.dropped[REASON_DUPLICATE] = n_dup
        keep &= ~pd.Series(dup_mask, index=positions)
    elif n_dup:
        report.notes.append(
            f"{n_dup:,} rows are exact duplicates of an earlier row; kept as separate "
            "order lines (duplicates='drop' removes them)"
        )

    nonpos_mask = keep & (log["amount"] <= 0)
    if nonpos_mask.any():
        count = int(nonpos_mask.sum())
        if nonpositive == "error":
            raise InputError(
                f"transactions ({name}): {count:,} rows have an amount <= 0 in column "
                f"'{amount_col}' ({_examples(raw_amount[nonpos_mask])}). Pass nonpositive='drop' "
                "or 'net' (CLI: --nonpositive) to say how refunds and zero amounts count."
            )
        if nonpositive == "drop":
            report.dropped[REASON_NONPOSITIVE] = count
            keep &= ~nonpos_mask

    log["date"] = log["timestamp"].dt.normalize()
    if as_of_day is not None:
        future = keep & (log["date"] > as_of_day)
        if future.any():
            report.dropped[REASON_AFTER_AS_OF] = int(future.sum())
            keep &= ~future

    all_contacts = contact[contact.notna()].nunique()
    log = log.loc[keep.to_numpy(), ["contact_id", "date", "amount"]]
    grouped = log.groupby(["contact_id", "date"], sort=True, observed=True)["amount"]
    daily = grouped.agg(["sum", "size"]).reset_index()
    if nonpositive == "net":
        bad_day = daily["sum"] <= 0
        if bad_day.any():
            report.dropped[REASON_NET_NONPOSITIVE] = int(daily.loc[bad_day, "size"].sum())
            daily = daily.loc[~bad_day]
    purchases = daily.rename(columns={"sum": "amount"})[list(PURCHASE_LOG_COLUMNS)]
    purchases = purchases.reset_index(drop=True)

    report.purchase_days = len(purchases)
    report.rows_merged = int(daily["size"].sum()) - len(purchases)
    report.contacts = int(purchases["contact_id"].nunique())
    report.contacts_without_purchase = int(all_contacts - report.contacts)
    if len(purchases):
        report.first_date = purchases["date"].min()
        report.last_date = purchases["date"].max()
    else:
        raise InputError(
            f"transactions ({name}): no usable purchase is left after the drops "
            f"({report.dropped}); check the as-of date and the amount column."
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
    check_columns(frame, {"contact id": contact_col}, what=f"contacts ({name})")
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
