"""Writing scored contact tables: Parquet or CSV by extension, always atomically.

A failed or interrupted write leaves the previous file as it was (see :mod:`clvcast.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from clvcast.atomic import atomic_path
from clvcast.errors import InputError

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def table_format(path: str | os.PathLike[str]) -> str:
    """'parquet' or 'csv' from a file extension; InputError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise InputError(
            f"output {path} has extension '{suffix or '(none)'}'; use .parquet or .csv."
        )
    return TABLE_FORMATS[suffix]


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` (no index) to ``path`` as Parquet or CSV, atomically.

    CSV dates are written as ISO dates (YYYY-MM-DD) and missing values as empty fields.
    """
    kind = table_format(path)
    with atomic_path(path) as temporary:
        if kind == "parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False, date_format="%Y-%m-%d")
    return Path(path)
