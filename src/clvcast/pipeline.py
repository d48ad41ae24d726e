"""The fitted whole: from a purchase log to the contact table marketing tools import.

So far this assembles the contact table: summary, RFM scores and segments, forecasts
(BG/NBD + Gamma-Gamma), churn risk and drift dates, contact attributes, prospects included.
The saved, versioned pipeline object joins it next.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from clvcast.churn.evaluation import HIGH_VALUE_M_SCORES
from clvcast.churn.model import ChurnModel
from clvcast.data import PurchaseLog, parse_as_of
from clvcast.models.forecast import CLVForecaster, prediction_columns
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


@dataclass
class ContactTable:
    """A contact table and the fitted pieces that made it."""

    table: pd.DataFrame
    summary: pd.DataFrame
    scorer: RFMScorer
    forecaster: CLVForecaster | None = None
    churn_model: ChurnModel | None = None


CHURN_COLUMNS = ("churn_risk", "churn_risk_band", "expected_drift_date")


def _log_of(purchases: PurchaseLog | pd.DataFrame) -> pd.DataFrame:
    return purchases.purchases if isinstance(purchases, PurchaseLog) else purchases


def _is_fitted(estimator: object) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def build_contact_table(
    purchases: PurchaseLog | pd.DataFrame,
    as_of: str | pd.Timestamp,
    *,
    contacts: pd.DataFrame | None = None,
    scorer: RFMScorer | None = None,
    monetary_basis: str = "total",
    forecaster: CLVForecaster | None = None,
    churn_model: ChurnModel | None = None,
) -> ContactTable:
    """Summary, RFM scores and segments, and optionally forecasts, one row per contact.

    Parameters
    ----------
    purchases
        A :class:`~clvcast.data.PurchaseLog` or its ``purchases`` DataFrame.
    as_of
        Inclusive as-of day of the summary.
    contacts
        Optional contacts table from :func:`clvcast.data.read_contacts`; its attribute
        columns are carried through, and its contacts without purchases appear as
        prospects (group and segment ``prospect``, no scores, 0 orders, no forecasts).
    scorer
        Fitted :class:`~clvcast.rfm.RFMScorer` whose frozen boundaries to apply; when
        omitted, one is fitted on this population (``monetary_basis`` applies).
    forecaster
        A :class:`~clvcast.models.CLVForecaster`: used as is when fitted, fitted on this
        summary when not; omitted = no forecast columns.
    churn_model
        A :class:`~clvcast.churn.ChurnModel`: used as is when fitted, trained on this log up
        to ``as_of`` when not; omitted = no churn columns.

    Every table also has ``high_value`` (M score 4-5) and ``r_drop_date`` (the day the R
    score falls a band without a new purchase, from the frozen boundaries).
    """
    day = parse_as_of(as_of)
    summary = summarize(_log_of(purchases), day)
    if scorer is None:
        scorer = RFMScorer(monetary_basis=monetary_basis).fit(summary)
    scores = scorer.transform(summary)
    parts = [summary, scores]
    if forecaster is not None:
        if not _is_fitted(forecaster):
            forecaster.fit(summary)
        parts.append(forecaster.predict(summary))
    extra = pd.DataFrame(
        {
            "high_value": scores["m_score"].isin(HIGH_VALUE_M_SCORES),
            "r_drop_date": scorer.r_drop_dates(summary),
        },
        index=summary.index,
    )
    parts.append(extra)
    if churn_model is not None:
        if not _is_fitted(churn_model):
            churn_model.fit(_log_of(purchases), day)
        parts.append(churn_model.score(_log_of(purchases), day)[list(CHURN_COLUMNS)])
    table = pd.concat(parts, axis=1).reset_index()
    model_columns = list(prediction_columns(forecaster.horizon_days)) if forecaster else []
    model_columns += ["high_value"]
    if churn_model is not None:
        model_columns += ["churn_risk", "churn_risk_band"]
    model_columns += ["r_drop_date"]
    if churn_model is not None:
        model_columns += ["expected_drift_date"]
    if contacts is not None:
        table = _with_contacts(table, contacts, model_columns)
    else:
        table = table[["contact_id", *SUMMARY_COLUMNS, *SCORE_COLUMNS, *model_columns]]
    table["high_value"] = table["high_value"].fillna(False).astype(bool)
    for column in _COUNT_COLUMNS:
        table[column] = table[column].astype("Int64")
    table.insert(_position_after_attributes(contacts), "as_of", day)
    table["as_of"] = table["as_of"].astype("datetime64[ns]")
    return ContactTable(
        table=table,
        summary=summary,
        scorer=scorer,
        forecaster=forecaster,
        churn_model=churn_model,
    )


def rfm_contact_table(
    purchases: PurchaseLog | pd.DataFrame,
    as_of: str | pd.Timestamp,
    *,
    contacts: pd.DataFrame | None = None,
    scorer: RFMScorer | None = None,
    monetary_basis: str = "total",
) -> tuple[pd.DataFrame, RFMScorer]:
    """The contact table without forecasts, and the RFM scorer used (see above)."""
    result = build_contact_table(
        purchases, as_of, contacts=contacts, scorer=scorer, monetary_basis=monetary_basis
    )
    return result.table, result.scorer


def _with_contacts(
    table: pd.DataFrame, contacts: pd.DataFrame, forecast_columns: list[str]
) -> pd.DataFrame:
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
    ordered = ["contact_id", *attributes, *SUMMARY_COLUMNS, *SCORE_COLUMNS, *forecast_columns]
    return combined[ordered]


def _position_after_attributes(contacts: pd.DataFrame | None) -> int:
    """Column position of ``as_of``: after ``contact_id`` and the contact attributes."""
    return 1 if contacts is None else len(contacts.columns)
