"""The CDNOW data set that ships with lifetimes, as raw transactions or a purchase log."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data.ingest import read_transactions
from clvcast.data.report import PurchaseLog


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
