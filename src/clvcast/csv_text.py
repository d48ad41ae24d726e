"""A table's CSV text made column by column in Arrow: the bytes pandas' ``to_csv`` writes,
in a fraction of the time.

pandas formats every cell in Python and writes the rows one by one: a scored table of 847k
contacts and 23 columns took 10-12 s to CSV, against 0.5 s to Parquet. Here each column
becomes an Arrow string array of its cells, Arrow joins the cells into lines, and the lines
go to the file as one buffer. The cells are pandas' own (the tests compare the bytes):

- floats as Python writes them (``repr``: ``0.1``, ``516.0``, ``1e-05``): Arrow's cast where
  it writes the same digits (plain decimals from 1e-4 to 1e10, tested on millions of
  values), whole numbers as their integer and ``.0``, Python's ``repr`` for the rest (tiny,
  huge and infinite values, ``-0.0``);
- integers as digits, booleans as ``True`` / ``False``, dates as ``YYYY-MM-DD`` (the caller
  has turned columns with a time of day into text);
- text as it is, quoted when it holds the delimiter, a quote or a line break (quotes
  doubled), which is ``csv.QUOTE_MINIMAL``;
- missing values as empty fields.

Columns of other types (Python objects other than text, categories, time spans, zoned
timestamps, ``float32``) are not handled here: :func:`csv_bytes` returns None and the
caller writes the table with pandas.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clvcast.cores import map_in_order, usable_cores

DELIMITER = ","
QUOTE = '"'

# Where Arrow's float-to-text cast writes a plain decimal with the shortest digits, as
# Python's repr does: below 1e-4 Python switches to an exponent (Arrow only below 1e-6),
# from 1e10 on Arrow does (Python from 1e16 on).
_PLAIN_LOW, _PLAIN_HIGH = 1e-4, 1e10
# Whole numbers below this are written as their integer and ".0" by Python's repr.
_WHOLE_HIGH = 1e16
# Fixed-point text from whole units below this (see fixed_cells).
_FIXED_HIGH = 1e11


def csv_buffers(
    table: pd.DataFrame, *, header: bool = True, line_end: str = os.linesep
) -> list[bytes | pa.Buffer] | None:
    """``table``'s CSV text (no index; missing values empty) as UTF-8 buffers to write one
    after the other, or None when a column has a type this module does not write (see the
    module docstring)."""
    if table.columns.has_duplicates or len(table.columns) < 2:
        return None  # pandas' special cases: repeated names, a lone empty field quoted
    names = list(table.columns)
    # Arrow's functions release the GIL: the columns are made on every core.
    columns = map_in_order(lambda name: column_cells(table[name], line_end), names, usable_cores())
    if any(cells is None for cells in columns):
        return None
    buffers: list[bytes | pa.Buffer] = []
    if header:
        labels = [_quoted_text(str(name), line_end) for name in names]
        buffers.append((DELIMITER.join(labels) + line_end).encode("utf-8"))
    if len(table):
        columns[-1] = pc.binary_join_element_wise(
            columns[-1], text_scalar(line_end), text_scalar("")
        )
        buffers.append(_characters(pc.binary_join_element_wise(*columns, text_scalar(DELIMITER))))
    return buffers


def csv_bytes(
    table: pd.DataFrame, *, header: bool = True, line_end: str = os.linesep
) -> bytes | None:
    """:func:`csv_buffers` as one ``bytes``."""
    buffers = csv_buffers(table, header=header, line_end=line_end)
    return None if buffers is None else b"".join(bytes(b) for b in buffers)


def _characters(lines: pa.Array) -> pa.Buffer:
    """The characters of a string array's values, one after the other: its data buffer
    from the first value's start to the last value's end (no copy)."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2][start:end]


def column_cells(values: pd.Series, line_end: str = os.linesep) -> pa.Array | None:
    """One column's CSV cells as an Arrow string array without nulls, or None for a type
    this module does not write."""
    dtype = values.dtype
    missing = values.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        return with_missing(bool_cells(values, "True", "False"), missing)
    if fits_int64(dtype):
        return with_missing(integer_cells(values), missing)
    if dtype == np.float64:
        return with_missing(float_cells(values.to_numpy()), missing)
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        if has_time_of_day(values):  # not a date column
            return None
        return pc.fill_null(date_cells(values), text_scalar(""))
    if is_text(values):
        return pc.fill_null(quoted(text_cells(values), line_end), text_scalar(""))
    return None


def has_time_of_day(values: pd.Series) -> bool:
    """Whether a datetime column holds timestamps (some value has a time of day), not
    calendar days: CSV writes days as YYYY-MM-DD and timestamps in full."""
    present = values.dropna()
    return bool((present != present.dt.normalize()).any())


def bool_cells(values: pd.Series, true: str, false: str) -> pa.Array:
    """A boolean column as ``true`` / ``false`` text (missing values: ``false``)."""
    flags = pa.array(values.to_numpy(dtype=bool, na_value=False))
    return pc.if_else(flags, text_scalar(true), text_scalar(false))


def each_time_once(values: pd.Series, text_of: Callable[[pd.DatetimeIndex], list]) -> np.ndarray:
    """A datetime column as text, ``text_of`` applied to its distinct times only (a scored
    table has one ``scored_at`` for every row): Python strings, None where missing."""
    codes, times = pd.factorize(values)
    return np.array([*text_of(times), None], dtype=object)[codes]  # code -1 (missing): None


def date_cells(values: pd.Series) -> pa.Array:
    """A naive datetime column's days as ``YYYY-MM-DD`` (missing values null)."""
    days = pa.array(values.to_numpy(), from_pandas=True).cast(pa.date32())
    return pc.cast(days, pa.large_string())


def text_cells(values: pd.Series) -> pa.Array:
    """A text column (:func:`is_text`) as an Arrow string array (missing values null)."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        text = pa.array(values.array)  # the Arrow data itself, no Python strings
    else:
        text = pa.array(values.to_numpy(dtype=object, na_value=None))
    if isinstance(text, pa.ChunkedArray):  # pandas may keep its text in several chunks
        text = text.combine_chunks()
    return pc.cast(text, pa.large_string())


def integer_cells(values: pd.Series) -> pa.Array:
    """An integer column's digits (``0`` where missing: see :func:`with_missing`)."""
    integers = pa.array(values.to_numpy(dtype="int64", na_value=0), type=pa.int64())
    return pc.cast(integers, pa.large_string())


def fits_int64(dtype: object) -> bool:
    """Whether an integer dtype's values all fit in int64 (every one but uint64)."""
    if pd.api.types.is_signed_integer_dtype(dtype):
        return True
    return pd.api.types.is_unsigned_integer_dtype(dtype) and dtype.itemsize < 8


def is_text(values: pd.Series) -> bool:
    """Whether a column holds text (pandas' text dtype, or Python strings and missing values)."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    )


def with_missing(cells: pa.Array, missing: np.ndarray) -> pa.Array:
    """``cells`` with empty text where ``missing``."""
    if not missing.any():
        return cells
    return pc.if_else(pa.array(missing), text_scalar(""), cells)


def float_cells(numbers: np.ndarray) -> pa.Array:
    """Python's ``repr`` of every float (``nan`` for NaN), as an Arrow string array."""
    numbers = np.asarray(numbers, dtype=np.float64)
    if not len(numbers):
        return pa.array([], type=pa.large_string())
    size = np.abs(numbers)
    finite = np.isfinite(numbers)
    whole = finite & (numbers == np.floor(numbers)) & (size < _WHOLE_HIGH)
    whole &= ~((numbers == 0) & np.signbit(numbers))  # -0.0 is written "-0.0"
    plain = finite & ~whole & (size >= _PLAIN_LOW) & (size < _PLAIN_HIGH)
    if whole.any():
        integers = np.where(whole, numbers, 0).astype(np.int64)
        whole_cells = pc.binary_join_element_wise(
            pc.cast(pa.array(integers), pa.large_string()), text_scalar(".0"), text_scalar("")
        )
    if whole.all():
        return whole_cells  # days and counts held as floats
    cells = pc.cast(pa.array(numbers), pa.large_string())
    if whole.any():
        cells = pc.if_else(pa.array(whole), whole_cells, cells)
    return _by_python(cells, ~(whole | plain), numbers, lambda v: repr(float(v)))


def fixed_cells(numbers: np.ndarray, decimals: int) -> pa.Array:
    """``f"{v:.{decimals}f}"`` of every float, as an Arrow string array.

    A number already rounded to ``decimals`` (``np.round``: the marketing format's money and
    probabilities) is a whole count of units of ``10 ** -decimals``; below 1e11 it lies far
    closer than half a unit to that count, so its fixed-point text is the count's digits.
    Other numbers (not so rounded, larger, non-finite, ``-0.0``) are written by Python."""
    numbers = np.asarray(numbers, dtype=np.float64)
    if not len(numbers):
        return pa.array([], type=pa.large_string())
    scale = 10**decimals
    simple = np.isfinite(numbers) & (np.abs(numbers) < _FIXED_HIGH)
    simple &= ~((numbers == 0) & np.signbit(numbers))
    with np.errstate(over="ignore", invalid="ignore"):
        simple &= np.round(numbers, decimals) == numbers
    units = np.rint(np.where(simple, numbers, 0.0) * scale).astype(np.int64)
    magnitude = np.abs(units)
    cells = pc.cast(pa.array(magnitude // scale), pa.large_string())
    if decimals:
        fraction = pc.cast(pa.array(magnitude % scale), pa.large_string())
        fraction = pc.utf8_lpad(fraction, decimals, "0")
        cells = pc.binary_join_element_wise(cells, fraction, text_scalar("."))
    negative = units < 0
    if negative.any():
        signed = pc.binary_join_element_wise(text_scalar("-"), cells, text_scalar(""))
        cells = pc.if_else(pa.array(negative), signed, cells)
    return _by_python(cells, ~simple, numbers, lambda v: f"{v:.{decimals}f}")


def _by_python(
    cells: pa.Array, where: np.ndarray, numbers: np.ndarray, text_of: Callable[[float], str]
) -> pa.Array:
    """``cells`` with ``text_of(number)`` where ``where``: the few numbers Arrow's text would
    not match Python's."""
    if not where.any():
        return cells
    texts = np.full(len(numbers), None, dtype=object)
    texts[where] = [text_of(v) for v in numbers[where]]
    return pc.if_else(pa.array(where), pa.array(texts, type=pa.large_string()), cells)


def quoted(text: pa.Array, line_end: str = os.linesep) -> pa.Array:
    """Text cells as ``csv.QUOTE_MINIMAL`` writes them: in quotes, with quotes doubled,
    when they hold the delimiter, a quote or a character of the line end."""
    special = "[" + "".join(_escaped(c) for c in sorted({DELIMITER, QUOTE, *line_end})) + "]"
    needs = pc.fill_null(pc.match_substring_regex(text, special), False)
    if not pc.any(needs).as_py():
        return text
    inside = pc.replace_substring(text, QUOTE, QUOTE + QUOTE)
    wrapped = pc.binary_join_element_wise(
        text_scalar(QUOTE), inside, text_scalar(QUOTE), text_scalar("")
    )
    return pc.if_else(needs, wrapped, text)


def text_scalar(value: str) -> pa.Scalar:
    """A text scalar of the cells' type (Arrow's functions want one type of text)."""
    return pa.scalar(value, type=pa.large_string())


def _quoted_text(text: str, line_end: str) -> str:
    if any(c in text for c in (DELIMITER, QUOTE, *line_end)):
        return QUOTE + text.replace(QUOTE, QUOTE + QUOTE) + QUOTE
    return text


def _escaped(character: str) -> str:
    return "\\" + character if character in r"\^-]" else character
