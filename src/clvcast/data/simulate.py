"""Generated shop exports with known answers, shaped like the real ones clvcast must read.

:func:`online_retail_lines` makes a line-item export like UCI Online Retail (one row per
order line, ``InvoiceNo``/``CustomerID``/``InvoiceDate``/``Quantity``/``UnitPrice``,
cancellation invoices "C" + the invoice number with negative quantities, some days later,
lines without a customer) together with the purchase log it should give, computed here
by hand in pandas, independently of the ingestion SQL. Tests and benchmarks use it; no
real file is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ONLINE_RETAIL_DATE_FORMAT = "%m/%d/%Y %H:%M"


@dataclass
class LineItemExport:
    """A generated export and the truth it encodes."""

    lines: pd.DataFrame  # the export, as a shop would write it
    expected: pd.DataFrame  # contact_id, date, amount: one row per contact-day, exact nets
    guest_lines: int  # lines without a customer id
    unmatched_cancellations: int  # cancellation lines whose invoice is not in the export


def online_retail_lines(
    n_invoices: int = 2_000,
    *,
    n_customers: int | None = None,
    cancel_share: float = 0.08,
    guest_share: float = 0.05,
    seed: int = 0,
) -> LineItemExport:
    """A UCI-Online-Retail-shaped export of ``n_invoices`` invoices (about 4 lines each).

    Customers are float ids (12346.0, as the UCI file is read by pandas); a share
    ``guest_share`` of invoices has no customer; a share ``cancel_share`` of customer
    invoices is cancelled in part or in full by an invoice "C<number>" 0-10 days later;
    one cancellation in ten names an invoice that is not in the export. Dates are written
    month-first, ``12/01/2010 08:26``, over two years.
    """
    rng = np.random.default_rng(seed)
    n_customers = n_customers or max(10, n_invoices // 5)
    invoice_no = np.arange(536_365, 536_365 + n_invoices)
    customer = 12_346.0 + rng.zipf(1.6, n_invoices) % n_customers
    customer[rng.random(n_invoices) < guest_share] = np.nan
    start = pd.Timestamp("2010-12-01 08:00")
    stamps = start + pd.to_timedelta(rng.integers(0, 730, n_invoices), unit="D")
    stamps += pd.to_timedelta(rng.integers(0, 14 * 60, n_invoices), unit="min")
    n_lines = rng.integers(1, 8, n_invoices)
    line_invoice = np.repeat(np.arange(n_invoices), n_lines)
    quantity = rng.integers(1, 13, len(line_invoice))
    price = np.round(rng.gamma(1.5, 2.5, len(line_invoice)) + 0.29, 2)
    lines = pd.DataFrame(
        {
            "InvoiceNo": invoice_no[line_invoice].astype(str),
            "StockCode": rng.integers(10_000, 90_000, len(line_invoice)).astype(str),
            "Quantity": quantity,
            "InvoiceDate": stamps[line_invoice],
            "UnitPrice": price,
            "CustomerID": customer[line_invoice],
        }
    )
    cancelled = np.flatnonzero(~np.isnan(customer) & (rng.random(n_invoices) < cancel_share))
    chosen = lines[np.isin(line_invoice, cancelled) & (rng.random(len(lines)) < 0.6)].copy()
    chosen["InvoiceNo"] = "C" + chosen["InvoiceNo"]
    chosen["Quantity"] = -chosen["Quantity"]
    delay = rng.integers(0, 11, len(cancelled))
    by_invoice = pd.Series(delay, index=invoice_no[cancelled].astype(str))
    chosen["InvoiceDate"] += pd.to_timedelta(
        by_invoice.loc[chosen["InvoiceNo"].str[1:]].to_numpy(), unit="D"
    ) + pd.Timedelta(minutes=30)
    orphans = chosen.sample(frac=0.1, random_state=seed).index
    chosen.loc[orphans, "InvoiceNo"] = "C" + (9_000_000 + np.arange(len(orphans))).astype(str)
    export = pd.concat([lines, chosen], ignore_index=True).sort_values(
        "InvoiceDate", kind="stable", ignore_index=True
    )
    expected = _expected_log(export)
    export["InvoiceDate"] = export["InvoiceDate"].dt.strftime(ONLINE_RETAIL_DATE_FORMAT)
    return LineItemExport(
        lines=export,
        expected=expected,
        guest_lines=int(export["CustomerID"].isna().sum()),
        unmatched_cancellations=len(orphans),
    )


def _expected_log(export: pd.DataFrame) -> pd.DataFrame:
    """The purchase log by hand: each order's net (its lines plus its cancellation's), on
    the order's day; orders netted to <= 0 and orphan cancellations left out."""
    known = export[export["CustomerID"].notna()].copy()
    known["order"] = known["InvoiceNo"].str.removeprefix("C")
    known["money"] = known["Quantity"] * known["UnitPrice"]
    positive = known[known["money"] > 0]
    day = positive.groupby("order")["InvoiceDate"].min().dt.normalize()
    net = known.groupby("order")["money"].sum()
    orders = pd.DataFrame({"day": day, "net": net.reindex(day.index)})
    orders["contact_id"] = positive.groupby("order")["CustomerID"].first()
    orders = orders[orders["net"] > 1e-9]
    log = orders.groupby(["contact_id", "day"], as_index=False)["net"].sum()
    log["contact_id"] = log["contact_id"].astype("int64").astype(str)
    return log.rename(columns={"day": "date", "net": "amount"}).sort_values(
        ["contact_id", "date"], ignore_index=True
    )
