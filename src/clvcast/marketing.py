"""The ``marketing`` CSV format: what marketing tools and spreadsheets import cleanly.

The ``default`` CSV is lossless (every float to its last digit, the BTYD columns). The
``marketing`` format is for Connectif, SALESmanago, Klaviyo, a CDP or Excel:

- money (``total_spend``, ``expected_order_value``, ``clv_*``) to cents: ``5.30``;
- probabilities (``p_alive``, ``churn_risk``) to 4 decimals: ``0.1234``;
- expected purchases (``predicted_purchases_*``) to 2 decimals;
- counts and scores as integers: ``3``;
- booleans as ``true`` / ``false`` (contact attributes too);
- dates ISO (``2024-06-30``), timestamps ISO with their offset
  (``2024-07-01T06:00:00+00:00``);
- missing values as empty fields;
- UTF-8 with a byte-order mark, so Excel shows "José" and not "JosÃ©";
- no BTYD internals (``frequency``, ``recency``, ``T``, ``monetary_value``), whose sense
  marketers misread (a one-order customer has frequency 0): ``orders``,
  ``days_since_last_purchase`` and ``total_spend`` say the same in their words.

Any table clvcast writes (scored table, changes, migrations, audiences) takes the format:
the rules go by column name and type.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clvcast.csv_text import (
    bool_cells,
    date_cells,
    each_time_once,
    fits_int64,
    fixed_cells,
    float_cells,
    has_time_of_day,
    integer_cells,
    is_text,
    text_cells,
    text_scalar,
    with_missing,
)
from clvcast.errors import InputError

CsvFormat = Literal["default", "marketing"]
CSV_FORMATS: tuple[str, ...] = ("default", "marketing")

# Columns in the lifetimes (BTYD) sense that the marketing format leaves out.
BTYD_COLUMNS = ("frequency", "recency", "T", "monetary_value")
_MONEY = ("total_spend", "expected_order_value")
_MONEY_PREFIXES = ("clv_",)
_PROBABILITIES = ("p_alive", "churn_risk")
_EXPECTED_COUNT_PREFIXES = ("predicted_purchases_",)
# Encoding of marketing CSV files: UTF-8 with a byte-order mark (Excel reads it as UTF-8).
MARKETING_ENCODING = "utf-8-sig"


def check_csv_format(value: str) -> str:
    """``value`` if it is a known CSV format, else one clear error."""
    if value not in CSV_FORMATS:
        raise InputError(f"--format {value!r} is not known; use one of {list(CSV_FORMATS)}.")
    return value


def _decimals(column: str) -> int | None:
    """Decimals a float column is rounded to in the marketing format (None: as it is)."""
    if column in _MONEY or column.startswith(_MONEY_PREFIXES):
        return 2
    if column in _PROBABILITIES:
        return 4
    if column.startswith(_EXPECTED_COUNT_PREFIXES):
        return 2
    return None


def marketing_columns(columns: list[str]) -> list[str]:
    """The columns the marketing format keeps, in their order."""
    return [c for c in columns if c not in BTYD_COLUMNS]


def marketing_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as the marketing CSV's text cells (see the module docstring)."""
    kept = table[marketing_columns([str(c) for c in table.columns])]
    return pd.DataFrame(
        {column: _cells(kept[column], str(column)) for column in kept.columns}, index=kept.index
    )


def _cells(values: pd.Series, column: str) -> pd.Series:
    """One column as text cells; missing values as empty text. Made in Arrow
    (:mod:`clvcast.csv_text`): 847k contacts in well under a second, where formatting each
    cell in Python took seconds a column."""
    missing = values.isna().to_numpy()
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        cells = bool_cells(values, "true", "false")
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        cells = _datetimes(values)
    elif fits_int64(dtype):
        cells = integer_cells(values)
    elif pd.api.types.is_float_dtype(dtype):
        decimals = _decimals(column)
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        if decimals is None and whole[~missing].all():
            cells = fixed_cells(numbers, 0)
        elif decimals is None:
            cells = float_cells(numbers)
        else:
            cells = fixed_cells(np.round(numbers, decimals) + 0.0, decimals)  # no "-0.00"
    elif is_text(values):
        cells = text_cells(values)
    else:
        text = values.map(_text_cell, na_action="ignore").to_numpy(dtype=object)
        cells = pa.array(text, type=pa.large_string(), from_pandas=True)
    cells = pc.fill_null(with_missing(cells, missing), text_scalar(""))
    return pd.Series(pd.array(cells, dtype=_TEXT_DTYPE), index=values.index)


# pandas' default text dtype: "str" (Arrow-backed) from pandas 3.
_TEXT_DTYPE = pd.Series(["text"]).dtype


def _text_cell(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _datetimes(values: pd.Series) -> pa.Array:
    """Dates as YYYY-MM-DD; timestamps with a time of day (or a zone) as ISO 8601."""
    zoned = getattr(values.dtype, "tz", None) is not None
    if not (zoned or has_time_of_day(values)):
        return date_cells(values)
    texts = each_time_once(values, lambda times: [time.isoformat() for time in times])
    return pa.array(texts, type=pa.large_string())
