"""The fitted whole: from a purchase log to the contact table marketing tools import.

So far this assembles the RFM contact table (summary + scores + segments + contact
attributes, prospects included); the forecast, churn and save/load parts join it as the
later layers land.
"""

from __future__ import annotations

import pandas as pd

from clvcast.data import PurchaseLog, parse_as_of
from clvcast.rfm import PROSPECT, SCORE_COLUMNS, RFMScorer
from clvcast.summary import SUMMARY_COLUMNS, summarize

# Whole-number columns, nullable so that prospects can leave them empty.
_COUNT_COLUMNS = (
    "frequency",
    "orders",
    "days_since_last_purchase",
    "r_score",
    "f_score",
    "m_score",
)


def rfm_contact_table(
    purchases: PurchaseLog | pd.DataFrame,
    as_of: str | pd.Timestamp,
    *,
    contacts: pd.DataFrame | None = None,
    scorer: RFMScorer | None = None,
    monetary_basis: str = "total",
) -> tuple[pd.DataFrame, RFMScorer]:
    """Summary, RFM scores, cell, group and segment for every contact, one row each.

    Parameters
    ----------
    purchases
        A :class:`~clvcast.data.PurchaseLog` or its ``purchases`` DataFrame.
    as_of
        Inclusive as-of day of the summary.
    contacts
        Optional contacts table from :func:`clvcast.data.read_contacts`; its attribute
        columns are carried through, and its contacts without purchases appear as
        prospects (group and segment ``prospect``, no scores, 0 orders).
    scorer
        Fitted :class:`~clvcast.rfm.RFMScorer` whose frozen boundaries to apply; when
        omitted, one is fitted on this population (``monetary_basis`` applies).

    Returns
    -------
    (table, scorer)
        ``table`` has ``contact_id``, the contact attributes, ``as_of``, the summary columns
        and the score columns; ``scorer`` is the one used.
    """
    log = purchases.purchases if isinstance(purchases, PurchaseLog) else purchases
    day = parse_as_of(as_of)
    summary = summarize(log, day)
    if scorer is None:
        scorer = RFMScorer(monetary_basis=monetary_basis).fit(summary)
    table = summary.join(scorer.transform(summary))
    table = table.reset_index()
    if contacts is not None:
        table = _with_contacts(table, contacts)
    for column in _COUNT_COLUMNS:
        table[column] = table[column].astype("Int64")
    table.insert(_position_after_attributes(table, contacts), "as_of", day)
    table["as_of"] = table["as_of"].astype("datetime64[ns]")
    return table, scorer


def _with_contacts(table: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    """Join attributes; add prospects (contacts without purchases) at the end, sorted by id."""
    attributes = [c for c in contacts.columns if c != "contact_id"]
    clashes = [c for c in attributes if c in table.columns]
    if clashes:
        contacts = contacts.rename(columns={c: f"contact_{c}" for c in clashes})
        attributes = [c for c in contacts.columns if c != "contact_id"]
    buyers = table.merge(contacts, on="contact_id", how="left")
    prospects = contacts.loc[~contacts["contact_id"].isin(table["contact_id"])].copy()
    prospects = prospects.sort_values("contact_id", kind="stable")
    prospects["orders"] = 0
    prospects["total_spend"] = 0.0
    prospects["rfm_group"] = PROSPECT
    prospects["rfm_segment"] = PROSPECT
    combined = pd.concat([buyers, prospects], ignore_index=True)
    ordered = ["contact_id", *attributes, *SUMMARY_COLUMNS, *SCORE_COLUMNS]
    return combined[ordered]


def _position_after_attributes(table: pd.DataFrame, contacts: pd.DataFrame | None) -> int:
    if contacts is None:
        return 1
    return 1 + sum(1 for c in table.columns[1:] if c not in SUMMARY_COLUMNS + SCORE_COLUMNS)
