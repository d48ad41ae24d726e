"""Reading tables and checking their columns, dates and ids: the parts every reader shares."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clvcast.errors import InputError

EXAMPLES = 5  # example rows shown in an error message


def read_table(source: str | os.PathLike[str] | pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension), or pass a DataFrame through.

    Every column of a CSV is read as text, so ids keep their leading zeros and the
    validation below sees the values exactly as written.
    """
    if isinstance(source, pd.DataFrame):
        return source
    path = existing_file(source, what=what)
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


def examples(values: pd.Series, limit: int = EXAMPLES) -> str:
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


def parse_dates(raw: pd.Series, date_format: str | None, notes: list[str]) -> pd.Series:
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


def existing_file(source: str | os.PathLike[str], *, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}.")
    return path


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
            f"'{contact_col}' ({examples(ids[ids.isna()].fillna(''))}). Every contact needs an id."
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise InputError(
            f"contacts ({name}): {int(ids[dup].nunique()):,} contact ids appear more than once "
            f"in column '{contact_col}' ({examples(ids[dup])}). Keep one row per contact."
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
