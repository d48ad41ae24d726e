"""Reading tables and checking their columns, dates and ids: the parts every reader shares."""

from __future__ import annotations

import csv
import difflib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clvcast.data.report import counted, listed, one_line
from clvcast.errors import InputError

EXAMPLES = 5  # example rows shown in an error message
SEPARATORS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})  # read as delimited text
# Text ids that are whole numbers, some written as floats ("12346.0", as spreadsheets export
# them): every engine writes them without the '.0'.
FLOAT_ID_PATTERN = r"^[0-9]+\.0+$"
WHOLE_ID_PATTERN = r"^[0-9]+(\.0+)?$"
# Text ids written as a spreadsheet formula that shows them as text, ="00123", as exports
# meant for Excel write ids with leading zeros: the id is the text inside (00123), which
# the CRM holds. Every engine reads it so.
EXCEL_TEXT_PATTERN = r'^="(.*)"$'


def separator_name(sep: str) -> str:
    """A separator as messages show it: 'tab' or the quoted character."""
    return "tab" if sep == "\t" else f"'{sep}'"


def detect_separator(header: str, default: str = ",") -> str:
    """The separator of a CSV header line: the most frequent of , ; tab | (``default`` if none)."""
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else default


def text_codec(encoding: str) -> str:
    """The Python codec to open a text file with: UTF-8 files may start with a BOM."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def file_encoding(path: Path, encoding: str) -> str:
    """The encoding to read a text file with: ``encoding``, except that a file asked for as
    UTF-8 (the default) that starts with a UTF-16 byte-order mark, as Excel's "Unicode
    text" exports do, is UTF-16: the mark says so, and it cannot begin UTF-8 text."""
    if text_codec(encoding) != "utf-8-sig":
        return encoding
    with open(path, "rb") as handle:
        start = handle.read(2)
    return "utf-16" if start in _UTF16_BOMS else encoding


def csv_separator(path: Path, sep: str | None, encoding: str = "utf-8") -> str:
    """``sep`` when given, else the one detected from the file's header (tab for .tsv)."""
    if sep:
        return sep
    with open(path, encoding=text_codec(encoding), newline="") as handle:
        header = handle.readline()
    return detect_separator(header, "\t" if path.suffix.lower() == ".tsv" else ",")


def check_header_split(columns: Sequence[object], sep: str, path: Path, what: str) -> None:
    """One line naming ``--sep`` when the header read as one column holds another separator."""
    if len(columns) != 1:
        return
    header = str(columns[0]).lstrip("\ufeff")
    others = [s for s in SEPARATORS if s != sep and s in header]
    if others:
        raise InputError(
            f"{what} file {path.name}: the header splits into one column ({header[:60]!r}) "
            f"with separator {separator_name(sep)}; pass --sep {separator_name(others[0])}."
        )


def check_csv_header(path: Path, sep: str, what: str, encoding: str = "utf-8") -> list[str]:
    """The header's column names; one line for an empty file, or a header that names a
    column twice (which reader would silently take the first)."""
    with open(path, encoding=text_codec(encoding), newline="") as handle:
        header = handle.readline()
        if not header.strip() and not handle.read(1 << 16).strip():
            raise InputError(f"{what} file {path.name} is empty; give a file with a header row.")
    names = [name.strip().lstrip("\ufeff") for name in next(csv.reader([header], delimiter=sep))]
    check_unique_columns(names, f"{what} file {path.name}")
    return names


# Two fields of a line that has one too many and that read as one amount with a decimal
# comma ("20", "50" of an unquoted 20,50).
_SPLIT_DECIMAL = re.compile(r"-?[0-9]+"), re.compile(r"[0-9]{1,2}")


def _split_decimal(fields: Sequence[str], sep: str, header: int) -> str | None:
    """'20,50' when a line with one field more than the header holds two neighbouring
    fields that would be one amount with a decimal comma, unquoted in a comma-separated file."""
    if sep != "," or len(fields) != header + 1:
        return None
    for left, right in zip(fields, fields[1:], strict=False):
        if _SPLIT_DECIMAL[0].fullmatch(left.strip()) and _SPLIT_DECIMAL[1].fullmatch(right):
            return f"{left.strip()},{right}"
    return None


def split_decimal(line: str, sep: str, header: int) -> str | None:
    """'20,50' when ``line`` (a CSV line as written) has one field more than the header's
    ``header`` and two neighbouring fields read as one amount with a decimal comma."""
    fields = next(csv.reader([line], delimiter=sep, quotechar='"', doublequote=True), [])
    return _split_decimal(fields, sep, header)


def _unclosed_quote(path: Path, sep: str) -> tuple[int, str] | None:
    """The line where a quote opens a value that is never closed (so the value runs to the
    end of the file), and that line as written; None when every quoted value is closed."""
    start = 1
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True, strict=True)
        try:
            for _ in rows:
                start = rows.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return None  # another flaw, which the caller explains if it can
        else:
            return None
    with open(path, encoding="utf-8-sig", newline="") as handle:
        line = next(itertools.islice(handle, start - 1, None), "")
    return start, line


def field_count_problem(
    path: Path, sep: str, what: str, name: str, drop_option: str | None = None
) -> str | None:
    """One line naming the lines of a CSV whose number of fields is not the header's, or
    None when every line has the header's number (empty fields after them aside: a
    separator at the end of every line, as some exports write). ``drop_option`` is the
    option that drops and counts such lines, where the reader has one. A quote that opens a
    value and is never closed (:func:`_unclosed_quote`) is named instead: every later line
    is part of that value, so the field counts after it mean nothing.

    Such a line is read wrong by any reader that does not refuse it: an unquoted decimal
    comma ("20,50") or text with the separator in it splits a value in two, and Spark's
    default CSV mode keeps the first part ("20") without a word. The whole file is read
    (with Python's csv module, quotes as DuckDB and Spark read them), so call this only to
    explain a file that a reader found malformed.
    """
    unclosed = _unclosed_quote(path, sep)
    if unclosed is not None:
        line, text = unclosed
        return (
            f'{what} file {name}: a quote (") opens a value in line {line:,} ("{one_line(text)}") '
            "and is never closed, so every line after it reads as part of that value. A quote "
            'inside a value must be doubled (""): export the file so, or remove the stray quote.'
        )
    found: list[tuple[int, int, str]] = []
    total = 0
    decimal = None
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True)
        header = len(next(rows, []))
        start = rows.line_num + 1  # the line where the next record starts
        for fields in rows:
            first_line, start = start, rows.line_num + 1
            if not fields or len(fields) == header:
                continue  # blank lines are skipped by every reader
            if len(fields) > header and not any(fields[header:]):
                continue  # a separator at the end of the line: DuckDB reads it so
            total += 1
            decimal = decimal or _split_decimal(fields, sep, header)
            if len(found) < 3:
                found.append((first_line, len(fields), one_line(sep.join(fields))))
    if not total:
        return None
    shown = "; ".join(f'line {line:,}: {count} fields, "{text}"' for line, count, text in found)
    more = f"; and {total - len(found):,} more" if total > len(found) else ""
    cause = (
        f'an amount with a decimal comma such as "{decimal}" splits in two where it is not quoted'
        if decimal
        else "a value that holds the separator is not quoted, or a line is cut short"
    )
    settle = f"pass --sep if {separator_name(sep)} is not its separator"
    if drop_option:
        settle += f", or pass {drop_option} to drop and count such lines"
    else:
        settle = "or " + settle
    return (
        f"{what} file {name}: {total:,} line{'s' if total > 1 else ''} with another number "
        f"of fields than the header's {header} ({shown}{more}): {cause}. Export the file "
        f"with such values in quotes, {settle}."
    )


# Spreadsheet files, which clvcast does not read (their cells' types are the application's
# guess, and reading them needs another library): the refusal says how to make a CSV.
_SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def unknown_extension(what: str, path: Path) -> InputError:
    """The refusal of an input file whose extension says neither CSV nor Parquet; a
    spreadsheet gets how to save it as CSV."""
    suffix = path.suffix.lower()
    how = (
        " Save the sheet as CSV first (Excel: File > Save As > CSV UTF-8)."
        if suffix in _SPREADSHEETS
        else ""
    )
    return InputError(
        f"{what} file {path} has extension '{suffix}'; use .csv, .tsv or .parquet.{how}"
    )


def check_unique_columns(names: Sequence[object], where: str) -> None:
    """Refuse a table with two columns of one name: which one is meant is a guess.

    Columns without a name are left out: no option can name them, so none is read (a
    spreadsheet saved as CSV often ends its header with empty names)."""
    seen: dict[str, int] = {}
    for position, name in enumerate(map(str, names), 1):
        if not name.strip():
            continue
        if name in seen:
            raise InputError(
                f"{where} has two columns named '{name}' (columns {seen[name]} and "
                f"{position}); rename one so that it is clear which to read."
            )
        seen[name] = position


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    what: str,
    sep: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension), or pass a DataFrame through.

    Every column of a CSV is read as text, so ids keep their leading zeros and the
    validation below sees the values exactly as written. The CSV separator is detected
    from the header among , ; tab | unless ``sep`` is given; UTF-8 may carry a BOM.
    """
    if isinstance(source, pd.DataFrame):
        check_unique_columns(source.columns, f"{what} table")
        return source
    path = existing_file(source, what=what)
    suffix = path.suffix.lower()
    try:
        if is_parquet(path):
            return pd.read_parquet(path)
        if suffix in CSV_SUFFIXES:
            encoding = file_encoding(path, encoding)
            chosen = csv_separator(path, sep, encoding)
            check_csv_header(path, chosen, what, encoding)
            try:
                frame = pd.read_csv(
                    path,
                    sep=chosen,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    encoding=text_codec(encoding),
                )
            except pd.errors.ParserError:
                if text_codec(encoding) == "utf-8-sig":  # the lines pandas could not split
                    problem = field_count_problem(path, chosen, what, path.name)
                    if problem:
                        raise InputError(problem) from None
                raise
            check_header_split(frame.columns, chosen, path, what)
            return frame
    except InputError:
        raise
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} file {path.name} is not valid {encoding}; pass its encoding, for example "
            "--encoding latin-1 or --encoding cp1252."
        ) from exc
    except LookupError as exc:
        raise InputError(
            f"encoding '{encoding}' is not known; use utf-8, latin-1 or cp1252."
        ) from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {what} file {path}: {str(exc).splitlines()[0]}") from exc
    raise unknown_extension(what, path)


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


def parse_as_of(value: str | pd.Timestamp | np.datetime64 | None) -> pd.Timestamp | None:
    """Parse an as-of date (inclusive: the whole day counts) to a midnight Timestamp.

    Text must be YYYY-MM-DD or a full ISO timestamp: "05/01/2024" is refused rather than
    read as one of two days.
    """
    if value is None:
        return None
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value.strip()):
        raise InputError(f"as-of date '{value}' is not a date; use YYYY-MM-DD.")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"as-of date '{value}' is not a date; use YYYY-MM-DD.") from exc
    if stamp is pd.NaT:
        raise InputError(f"as-of date '{value}' is not a date; use YYYY-MM-DD.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


# What the columns of a role are called in the exports clvcast's users have (lower case,
# letters and digits only), most telling first: the hint for a missing column. By spelling
# alone, UCI Online Retail's "Customer ID" was not offered for the contact id (its
# "increment_id" was), and a Magento export's "discount_amount" was offered for the amount.
_USUAL_NAMES = {
    "contact id": (
        "contactid", "customerid", "customeruniqueid", "clientid", "userid", "memberid",
        "membernumber", "householdkey", "buyerid", "custid", "accountid", "customeremail",
        "email", "customer", "cliente", "idcliente", "kunde", "kundennummer", "client",
        "customername",
    ),
    "purchase date": (
        "purchasedate", "orderdate", "invoicedate", "transactiondate", "transdate",
        "createdat", "orderpurchasetimestamp", "paidat", "datetime", "timestamp", "tdat",
        "fecha", "datum", "data", "day",
    ),
    "amount": (
        "amount", "grandtotal", "ordertotal", "total", "totalprice", "sales", "revenue",
        "tranamount", "saleamount", "paymentvalue", "value", "spend", "importe", "betrag",
        "montant", "importo", "valor",
    ),
}  # fmt: skip


def _letters(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _likely_column(role: str, name: str, available: Sequence[str]) -> str | None:
    """The available column most likely meant for ``role``: one named as exports usually
    name it (:data:`_USUAL_NAMES`), else the closest spelling of ``name``."""
    by_letters = {_letters(column): column for column in reversed(available)}
    for usual in _USUAL_NAMES.get(role, ()):
        if usual in by_letters:
            return by_letters[usual]
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    return close[0] if close else None


def check_columns(columns: Sequence[object], required: Mapping[str, str], *, what: str) -> None:
    """Raise one InputError naming every missing column, the available ones and likely ones.

    ``columns`` are the input's column names; ``required`` maps a role ("contact id") to the
    column name expected for it.
    """
    available = [str(c) for c in columns]
    missing = [(role, name) for role, name in required.items() if name not in available]
    if not missing:
        return
    parts = []
    for role, name in missing:
        likely = _likely_column(role, name, available)
        hint = f" (did you mean '{likely}'?)" if likely else ""
        parts.append(f"'{name}' for the {role}{hint}")
    raise InputError(
        f"{what} is missing column {', '.join(parts)}; available columns: {available}. "
        "Rename the columns or pass the names to use (for example --contact-col)."
    )


def examples(values: pd.Series, limit: int = EXAMPLES) -> str:
    """'row 3: "abc", row 9: "x"' for the first few offending rows (1-based data rows)."""
    shown = [f'row {int(pos) + 1}: "{val}"' for pos, val in values.head(limit).items()]
    return listed(shown, len(values))


def normalise_contact_ids(ids: pd.Series, id_case: str = "keep") -> pd.Series:
    """Contact ids as strings, the same way from every input path.

    Whole-number floats lose their '.0', whether they are floats (ids read with NaNs) or
    text such as "12346.0" (when every id of the column is a whole number); text is
    trimmed (blank = missing), and unwrapped when written as a spreadsheet text formula
    (``="00123"``: :data:`EXCEL_TEXT_PATTERN`); ``id_case="lower"`` lower-cases (emails).
    """
    if pd.api.types.is_float_dtype(ids):
        whole = ids.dropna()
        if (whole == np.floor(whole)).all():
            return ids.astype("Int64").astype("string").astype(object).where(ids.notna())
    if pd.api.types.is_string_dtype(ids) or ids.dtype == object:
        text = ids.astype("string").str.strip().str.replace(EXCEL_TEXT_PATTERN, r"\1", regex=True)
        text = text.where(text != "")
        present = text.dropna()
        if present.str.match(WHOLE_ID_PATTERN).all() and present.str.match(FLOAT_ID_PATTERN).any():
            text = text.str.replace(r"\.0+$", "", regex=True)
        if id_case == "lower":
            text = text.str.lower()
        return text.astype(object).where(text.notna())
    return ids.astype("string").astype(object).where(ids.notna())


def is_parquet(source: str | os.PathLike[str]) -> bool:
    """Whether the file ``source`` is read as Parquet (by its extension)."""
    return Path(source).suffix.lower() in PARQUET_SUFFIXES


def column_zone(source: str | os.PathLike[str] | pd.DataFrame, column: str) -> str | None:
    """The time zone a DataFrame's or Parquet file's timestamp column is written in (pandas
    and pyarrow keep it; DuckDB and Spark read such a column as instants and drop it), or
    None (naive, not a timestamp, or a CSV)."""
    if isinstance(source, pd.DataFrame):
        dtype = source[column].dtype if column in source.columns else None
        return str(dtype.tz) if isinstance(dtype, pd.DatetimeTZDtype) else None
    if not is_parquet(source) or not Path(source).is_file():
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(source)
    index = schema.get_field_index(column)
    kind = schema.field(index).type if index >= 0 else None
    return kind.tz if kind is not None and pa.types.is_timestamp(kind) and kind.tz else None


def existing_file(source: str | os.PathLike[str], *, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}.")
    return path


def read_contacts(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    contact_col: str = "contact_id",
    sep: str | None = None,
    encoding: str = "utf-8",
    id_case: str = "keep",
) -> pd.DataFrame:
    """Read a contacts table: one row per contact, any attribute columns carried through.

    Returns a DataFrame whose first column is ``contact_id`` (str). Contacts without
    purchases become prospects in the scored table. A text column holding only true and
    false (as CRMs export opt-in flags) becomes a boolean column. ``sep``, ``encoding`` and ``id_case``
    as for :func:`~clvcast.data.read_transactions`, so ids match the purchase log's.
    """
    if id_case not in {"keep", "lower"}:
        raise InputError(f"id_case='{id_case}' is not known; use 'keep' or 'lower'.")
    name = source_name(source)
    frame = read_table(source, what="contacts", sep=sep, encoding=encoding)
    check_columns(frame.columns, {"contact id": contact_col}, what=f"contacts ({name})")
    ids = normalise_contact_ids(frame[contact_col].reset_index(drop=True), id_case)
    if ids.isna().any():
        raise InputError(
            f"contacts ({name}): {counted(int(ids.isna().sum()), 'row')} with no value in "
            f"column '{contact_col}' ({examples(ids[ids.isna()].fillna(''))}). Every contact "
            "needs an id."
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
    for column in attributes.columns:
        attributes[column] = _booleans_from_text(attributes[column])
    result = pd.concat([pd.Series(ids, name="contact_id"), attributes], axis=1)
    return result


def _booleans_from_text(values: pd.Series) -> pd.Series:
    """A text column whose every value is true or false (any case; empty = missing) as a
    boolean column, so Parquet and SQL outputs store a boolean and audiences can test it;
    any other column as it is."""
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)
    ):
        return values
    text = values.astype("string").str.strip().str.lower().replace("", pd.NA)
    present = text.dropna()
    if present.empty or not present.isin(["true", "false"]).all():
        return values
    return text.map({"true": True, "false": False}).astype("boolean")


def source_name(source: object) -> str:
    """A short name of an input for messages and reports."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    return Path(str(source)).name
