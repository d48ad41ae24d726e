"""Reading, validating and normalising purchase logs and contacts tables.

- :func:`read_transactions` (``ingest``): a transactions table (CSV, Parquet or DataFrame)
  to a purchase log, one row per contact and day, with the policies for bad rows, refunds
  and duplicates and an :class:`IngestionReport` that accounts for every row (``report``).
- :func:`read_transactions_in_chunks` (``chunks``): the same, split into chunks of whole
  contacts written to Parquet, for logs too large to hold in memory at once.
- :func:`read_contacts` and the shared readers and checks (``inputs``).
- The CDNOW data set that ships with lifetimes (``cdnow``).
"""

from clvcast.data.cdnow import cdnow_master_path, cdnow_purchase_log, load_cdnow_master
from clvcast.data.chunks import (
    ChunkedPurchaseLog,
    read_transactions_in_chunks,
    sample_contacts,
)
from clvcast.data.ingest import ReadOptions, read_transactions
from clvcast.data.inputs import check_columns, parse_as_of, read_contacts, source_name
from clvcast.data.report import (
    PURCHASE_LOG_COLUMNS,
    REASON_AFTER_AS_OF,
    REASON_AMOUNT_RANGE,
    REASON_BAD_AMOUNT,
    REASON_BAD_DATE,
    REASON_DUPLICATE,
    REASON_FIELD_COUNT,
    REASON_MISSING_AMOUNT,
    REASON_MISSING_CONTACT,
    REASON_MISSING_DATE,
    REASON_NET_NONPOSITIVE,
    REASON_NONPOSITIVE,
    REASON_ORDER_CANCELLED,
    REASON_OTHER_CURRENCY,
    REASON_REFUNDED_PURCHASE,
    REASON_STATUS,
    REASON_UNMATCHED_REFUND,
    IngestionReport,
    PurchaseLog,
)

__all__ = [
    "PURCHASE_LOG_COLUMNS",
    "REASON_AFTER_AS_OF",
    "REASON_AMOUNT_RANGE",
    "REASON_BAD_AMOUNT",
    "REASON_BAD_DATE",
    "REASON_DUPLICATE",
    "REASON_FIELD_COUNT",
    "REASON_MISSING_AMOUNT",
    "REASON_MISSING_CONTACT",
    "REASON_MISSING_DATE",
    "REASON_NET_NONPOSITIVE",
    "REASON_NONPOSITIVE",
    "REASON_ORDER_CANCELLED",
    "REASON_OTHER_CURRENCY",
    "REASON_REFUNDED_PURCHASE",
    "REASON_STATUS",
    "REASON_UNMATCHED_REFUND",
    "ChunkedPurchaseLog",
    "IngestionReport",
    "PurchaseLog",
    "ReadOptions",
    "cdnow_master_path",
    "cdnow_purchase_log",
    "check_columns",
    "load_cdnow_master",
    "parse_as_of",
    "read_contacts",
    "read_transactions",
    "read_transactions_in_chunks",
    "sample_contacts",
    "source_name",
]
