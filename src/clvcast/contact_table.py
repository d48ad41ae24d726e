"""The contact table marketing tools import, assembled from its parts.

:func:`build_contact_table`: summary, RFM scores and segments, and, when given,
forecasts (BG/NBD + Gamma-Gamma), churn risk and drift dates, contact attributes and
prospects, one row per contact, columns in the public order of ``docs/scored-table.md``
(:data:`SCORED_COLUMNS`). It imports the churn model only when one is given, so the RFM and
forecast commands never load scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvcast.cores import meanwhile
from clvcast.data import PurchaseLog, parse_as_of
from clvcast.errors import InputError, NotFittedError
from clvcast.estimator import check_fitted
from clvcast.rfm import HIGH_VALUE_M_SCORES, PROSPECT, SCORE_COLUMNS, RFMScorer
from clvcast.summary import SUMMARY_COLUMNS, purchases_frame, summarize
from clvcast.text_ids import isin_ids

if TYPE_CHECKING:  # churn imports scikit-learn, models SciPy: only type names here
    from clvcast.churn.features import SnapshotContext
    from clvcast.churn.model import ChurnModel
    from clvcast.models.forecast import CLVForecaster

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


def _is_fitted(estimator: Any) -> bool:
    try:
        check_fitted(estimator)
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
    churn_context: SnapshotContext | None = None,
    summary: pd.DataFrame | None = None,
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
        prospects (group and segment ``prospect``, no scores, 0 orders, 0 spend, 0
        expected purchases and 0 CLV, other model columns empty).
    scorer
        Fitted :class:`~clvcast.rfm.RFMScorer` whose frozen boundaries to apply; when
        omitted, one is fitted on this population (``monetary_basis`` applies).
    forecaster
        A :class:`~clvcast.models.CLVForecaster`: used as is when fitted, fitted on this
        summary when not; omitted = no forecast columns.
    churn_model
        A :class:`~clvcast.churn.ChurnModel`: used as is when fitted, trained on this log up
        to ``as_of`` when not; omitted = no churn columns.

    churn_context
        The churn snapshot's population-level parts, when ``purchases`` is one chunk of a
        larger log (see :class:`~clvcast.churn.features.SnapshotContext`).
    summary
        The summary of ``purchases`` at ``as_of`` when already computed
        (:func:`clvcast.summary.summarize_view`); ``purchases`` may then be None unless a
        churn model needs them.

    Every table also has ``high_value`` (M score 4-5) and ``r_drop_date`` (the day the R
    score falls a band without a new purchase, from the frozen boundaries).
    """
    day = parse_as_of(as_of)
    if contacts is not None:
        check_contact_attributes(contacts)
    if summary is None:
        summary = summarize(purchases, day)  # a PurchaseLog is not grouped into days again
    predictions = None
    if forecaster is not None and not _is_fitted(forecaster):
        # The RFM scores on a thread while the models fit: the RFM steps run on one core,
        # and the fit leaves part of the other idle (1M contacts: 0.39-0.44 s for both
        # together against 0.50-0.57 s one after the other).
        rfm_parts = meanwhile(lambda: _rfm_parts(summary, scorer, monetary_basis))
        try:
            predictions = forecaster.fit_predict(summary)
        except BaseException:
            rfm_parts()  # an RFM error comes first, as when the steps ran in turn
            raise
        scorer, scores, extra = rfm_parts()
    else:
        scorer, scores, extra = _rfm_parts(summary, scorer, monetary_basis)
        if forecaster is not None:
            predictions = forecaster.predict(summary)
    parts = [summary, scores]
    if predictions is not None:
        parts.append(predictions)
    parts.append(extra)
    if churn_model is not None:
        if not _is_fitted(churn_model):
            churn_model.fit(purchases_frame(purchases), day)
        churn = churn_model.score(
            purchases_frame(purchases), day, summary=summary, context=churn_context
        )
        parts.append(churn[list(CHURN_COLUMNS)])
    table = pd.concat(parts, axis=1).reset_index()
    model_columns = []
    if forecaster is not None:
        from clvcast.models.forecast import prediction_columns

        model_columns += list(prediction_columns(forecaster.horizon_days))
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
    for column in ("first_purchase", "last_purchase", "r_drop_date", "expected_drift_date"):
        if column in table.columns:
            table[column] = table[column].astype("datetime64[ns]")
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


def _rfm_parts(
    summary: pd.DataFrame, scorer: RFMScorer | None, monetary_basis: str
) -> tuple[RFMScorer, pd.DataFrame, pd.DataFrame]:
    """The RFM scorer (fitted on ``summary`` when not given), its scores and the columns
    ``high_value`` and ``r_drop_date``."""
    if scorer is None:
        scorer = RFMScorer(monetary_basis=monetary_basis).fit(summary)
    scores = scorer.transform(summary)
    extra = pd.DataFrame(
        {
            "high_value": scores["m_score"].isin(HIGH_VALUE_M_SCORES),
            "r_drop_date": scorer.r_drop_dates(summary),
        },
        index=summary.index,
    )
    return scorer, scores, extra


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


# A prospect has bought nothing yet, and the models forecast from a first purchase on: its
# expected purchases and CLV are 0 (not empty), so that a numeric filter such as
# "clv_12m < 100" behaves as marketers expect; its other model columns stay empty.
PROSPECT_ZERO_PREFIXES = ("predicted_purchases_", "clv_")


def _with_contacts(
    table: pd.DataFrame, contacts: pd.DataFrame, forecast_columns: list[str]
) -> pd.DataFrame:
    """Join attributes; add prospects (contacts without purchases) at the end, sorted by id."""
    attributes = [c for c in contacts.columns if c != "contact_id"]
    clashes = [c for c in attributes if c in table.columns]
    if clashes:
        contacts = contacts.rename(columns={c: f"contact_{c}" for c in clashes})
        attributes = [c for c in contacts.columns if c != "contact_id"]
    bought = isin_ids(contacts["contact_id"], table["contact_id"])
    check_id_formats(table["contact_id"], contacts["contact_id"], bought)
    buyers = table.merge(contacts, on="contact_id", how="left")
    prospects = contacts.loc[~bought].copy()
    prospects = prospects.sort_values("contact_id", kind="stable")
    prospects["orders"] = 0
    prospects["total_spend"] = 0.0
    prospects["rfm_group"] = PROSPECT
    prospects["rfm_segment"] = PROSPECT
    for column in forecast_columns:
        if column.startswith(PROSPECT_ZERO_PREFIXES):
            prospects[column] = 0.0
    combined = pd.concat([buyers, prospects], ignore_index=True)
    ordered = ["contact_id", *attributes, *SUMMARY_COLUMNS, *SCORE_COLUMNS, *forecast_columns]
    return combined[ordered]


# Other ways of writing the same id, and what settles each: (what differs, the id written
# that way, the fix).
_ID_FORMS = (
    (
        "without leading zeros",
        lambda ids: ids.str.lstrip("0"),
        "write the ids the same way in both (with or without leading zeros)",
    ),
    (
        "in lower case",
        lambda ids: ids.str.lower(),
        "pass --id-case lower (id_case='lower') if upper and lower case are the same contact",
    ),
)


# Contacts that match a buyer only when written another way, as a share of the contacts
# table, from which the table is refused: a few could be chance ("815" and "0815" in two
# unrelated numberings); one in a hundred is two exports of the same ids that differ.
ID_FORM_SHARE = 0.01


def check_id_formats(buyer_ids: pd.Series, contact_ids: pd.Series, bought: np.ndarray) -> None:
    """Refuse a contacts table whose ids match the purchase log's when written another way
    (without leading zeros, in lower case) for :data:`ID_FORM_SHARE` of its contacts or more:
    joined as written, those buyers would lose their attributes and come back as prospects,
    without a word (a CRM export of "123" against a shop's "00123"; CDNOW's ids below 10000
    are padded). ``bought``: which ``contact_ids`` are among ``buyer_ids`` as written."""
    least = max(1, int(ID_FORM_SHARE * len(contact_ids)))
    unmatched = contact_ids[~bought].astype("str")
    if len(unmatched) < least:
        return
    buyers = buyer_ids.astype("str")
    for difference, form, fix in _ID_FORMS:
        buyer_forms, contact_forms = form(buyers), form(unmatched)
        hits = isin_ids(contact_forms, buyer_forms) & (contact_forms != "").to_numpy()
        if hits.sum() < least:
            continue
        example = unmatched[hits].iloc[0]
        twin = buyers[(buyer_forms == contact_forms[hits].iloc[0]).to_numpy()].iloc[0]
        raise InputError(
            f"{int(hits.sum()):,} of the contacts table's {len(contact_ids):,} ids match the "
            f"transactions' only when written {difference} (for example '{example}' and "
            f"'{twin}'; {int(bought.sum()):,} match as written); {fix}."
        )


def check_contact_attributes(contacts: pd.DataFrame) -> None:
    """Refuse contact attributes named like a column clvcast writes (they would collide)."""
    written = {*SCORED_COLUMNS, *BATCH_COLUMNS} - {"contact_id"}
    clashes = [str(c) for c in contacts.columns if str(c) in written]
    if clashes:
        raise InputError(
            f"the contacts table has column(s) {clashes} with the name of a column clvcast "
            "writes; rename them in the contacts table (for example to crm_as_of)."
        )


def _position_after_attributes(contacts: pd.DataFrame | None) -> int:
    """Column position of ``as_of``: after ``contact_id`` and the contact attributes."""
    return 1 if contacts is None else len(contacts.columns)


# Columns clvcast predict adds after the scored columns.
BATCH_COLUMNS = ("model_name", "model_version", "scored_at")

# The scored table's public column order (docs/scored-table.md); contact attributes follow
# contact_id, and batch prediction appends model_name, model_version and scored_at.
SCORED_COLUMNS = (
    "contact_id",
    "as_of",
    *SUMMARY_COLUMNS,
    *SCORE_COLUMNS,
    "predicted_purchases_12m",
    "p_alive",
    "expected_order_value",
    "clv_12m",
    "high_value",
    "churn_risk",
    "churn_risk_band",
    "r_drop_date",
    "expected_drift_date",
)
