"""Where every input row went (the ingestion report) and the purchase log it describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

PURCHASE_LOG_COLUMNS = ("contact_id", "date", "amount")


def counted(count: int, noun: str) -> str:
    """A count and its noun, singular for one: "1 row", "2 rows", "1,234 contacts"."""
    return f"{count:,} {plural(count, noun)}"


def plural(count: int, noun: str) -> str:
    """``noun`` as it goes with ``count``: "row" for one, "rows" otherwise."""
    return noun if count == 1 else noun + "s"


def listed(shown: list[str], total: int) -> str:
    """The examples of a refusal, with how many more there are: 'row 3: "a", row 9: "b" and
    7 more' for two shown of ``total``."""
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def one_line(text: str, width: int = 60) -> str:
    """``text`` (a line of a file, or a value) as part of a one-line message: its line
    breaks written as ``\\n`` and cut to ``width`` characters."""
    flat = text.rstrip("\r\n").replace("\r\n", "\\n").replace("\n", "\\n")
    return flat if len(flat) <= width else flat[: width - 3] + "..."


# Reasons a row can be dropped; the keys of IngestionReport.dropped.
REASON_FIELD_COUNT = "line with another number of fields than the header (values split or cut)"
REASON_MISSING_CONTACT = "no contact id (guest checkout)"
REASON_MISSING_DATE = "missing date"
REASON_BAD_DATE = "unparseable date"
REASON_MISSING_AMOUNT = "missing amount"
REASON_BAD_AMOUNT = "unparseable amount"
REASON_AMOUNT_RANGE = "amount out of range (1e16 or more)"
REASON_STATUS = "order status not a purchase (cancelled, refunded, failed, expired, ...)"
REASON_OTHER_CURRENCY = "amount in another currency than --currency"
REASON_DUPLICATE = "exact duplicate row"
REASON_NONPOSITIVE = "non-positive amount (refund, return or zero)"
REASON_NET_NONPOSITIVE = "contact-day with non-positive net amount"
REASON_AFTER_AS_OF = "after the as-of date"
REASON_ORDER_CANCELLED = "order cancelled or refunded in full"
REASON_REFUNDED_PURCHASE = "purchase refunded in full by later refunds"
REASON_UNMATCHED_REFUND = "refund with no earlier purchase to net against"


@dataclass
class IngestionReport:
    """Where every input row went.

    ``rows_read == purchase_days + rows_merged + rows_netted + sum(dropped.values())``
    always holds: a row is the first line of its contact-day (a purchase day), another
    purchase line merged into that day (same order, or same contact and day), a refund or
    cancellation netted against a kept purchase, or dropped for a reason in ``dropped``.
    """

    source: str
    rows_read: int
    purchase_days: int = 0
    rows_merged: int = 0
    rows_netted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    contacts: int = 0
    contacts_without_purchase: int = 0
    first_date: pd.Timestamp | None = None
    last_date: pd.Timestamp | None = None
    notes: list[str] = field(default_factory=list)
    date_format: str | None = None

    @property
    def rows_dropped(self) -> int:
        return int(sum(self.dropped.values()))

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome (kept, merged, dropped: reason) with row counts."""
        rows = [("kept", "purchase day", self.purchase_days)]
        rows.append(("merged", "same order, or same contact and day", self.rows_merged))
        rows.append(("netted", "refund netted against a kept purchase", self.rows_netted))
        rows += [("dropped", reason, count) for reason, count in self.dropped.items()]
        return pd.DataFrame(rows, columns=["outcome", "reason", "rows"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for logs and MLflow artifacts)."""
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "purchase_days": self.purchase_days,
            "rows_merged": self.rows_merged,
            "rows_netted": self.rows_netted,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped),
            "contacts": self.contacts,
            "contacts_without_purchase": self.contacts_without_purchase,
            "first_date": None if self.first_date is None else str(self.first_date.date()),
            "last_date": None if self.last_date is None else str(self.last_date.date()),
            "notes": list(self.notes),
            "date_format": self.date_format,
        }

    def format(self) -> str:
        """A short human-readable report, as the CLI prints it."""
        width = len(f"{self.rows_read:,}")
        lines = [f"Ingestion report for {self.source}"]
        lines.append(f"  {self.rows_read:>{width},} {plural(self.rows_read, 'row')} read")
        lines.append(
            f"  {self.purchase_days:>{width},} purchase days kept (one per contact and day)"
        )
        merged = plural(self.rows_merged, "row")
        lines.append(f"  {self.rows_merged:>{width},} {merged} merged into a purchase day")
        if self.rows_netted:
            lines.append(
                f"  {self.rows_netted:>{width},} refund {plural(self.rows_netted, 'row')} "
                "netted against a kept purchase"
            )
        for reason, count in self.dropped.items():
            lines.append(f"  {count:>{width},} {plural(count, 'row')} dropped: {reason}")
        span = ""
        if self.first_date is not None and self.last_date is not None:
            span = f", {self.first_date.date()} to {self.last_date.date()}"
        lines.append(f"  {counted(self.contacts, 'contact')} with purchases{span}")
        if self.contacts_without_purchase:
            lines.append(
                f"  {counted(self.contacts_without_purchase, 'contact')} lost every row to the "
                "drops above"
            )
        if self.date_format:
            lines.append(f"  dates read as {self.date_format}")
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
