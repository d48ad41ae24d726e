"""The fitted whole: from a purchase log to the contact table marketing tools import.

:func:`build_contact_table` assembles the contact table: summary, RFM scores and segments,
forecasts (BG/NBD + Gamma-Gamma), churn risk and drift dates, contact attributes, prospects
included. :class:`CLVPipeline` is the fitted whole (frozen RFM bins, BG/NBD + Gamma-Gamma,
churn classifier) with ``fit``, ``score``, ``evaluate``, ``save`` and ``load``; its model
file holds parameters and configuration only, no contact data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from clvcast.churn.evaluation import ChurnEvaluation
from clvcast.churn.features import SnapshotContext, snapshot_context
from clvcast.churn.model import HIGH_VALUE_M_SCORES, ChurnModel
from clvcast.data import ChunkedPurchaseLog, PurchaseLog, parse_as_of, sample_contacts
from clvcast.data.chunks import DEFAULT_CHURN_SAMPLE_CONTACTS, chunk_of
from clvcast.errors import InputError
from clvcast.limits import check_limits
from clvcast.models.evaluation import HoldoutEvaluation
from clvcast.models.forecast import CLVForecaster, prediction_columns
from clvcast.rfm import PROSPECT, SCORE_COLUMNS, RFMScorer
from clvcast.summary import (
    SUMMARY_COLUMNS,
    Purchases,
    purchases_frame,
    purchases_source,
    summarize,
)

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


@dataclass
class PipelineEvaluation:
    """What :meth:`CLVPipeline.evaluate` returns: flat metrics (for MLflow and the champion
    rule) and the two evaluations behind them (tables and figures)."""

    metrics: dict[str, float]
    holdout: HoldoutEvaluation
    churn: ChurnEvaluation


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
    churn_context: SnapshotContext | None = None,
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

    churn_context
        The churn snapshot's population-level parts, when ``purchases`` is one chunk of a
        larger log (see :class:`~clvcast.churn.features.SnapshotContext`).

    Every table also has ``high_value`` (M score 4-5) and ``r_drop_date`` (the day the R
    score falls a band without a new purchase, from the frozen boundaries).
    """
    day = parse_as_of(as_of)
    if contacts is not None:
        check_contact_attributes(contacts)
    summary = summarize(purchases_frame(purchases), day)
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
            churn_model.fit(purchases_frame(purchases), day)
        churn = churn_model.score(
            purchases_frame(purchases), day, summary=summary, context=churn_context
        )
        parts.append(churn[list(CHURN_COLUMNS)])
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


# --- the fitted, saved pipeline -----------------------------------------------------------

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


class CLVPipeline(BaseEstimator):
    """Everything a scoring run needs, fitted once: RFM bins, BG/NBD + Gamma-Gamma, churn.

    Built from its parts, like a scikit-learn pipeline from its steps: each part is an
    unfitted estimator whose parameters are the pipeline's
    (``pipeline.set_params(forecaster__horizon_days=180)``); :meth:`fit` fits a clone of
    each and keeps the clones in ``scorer_``, ``forecaster_`` and ``churn_model_``.

    Parameters
    ----------
    scorer : RFMScorer, default ``RFMScorer()``
        RFM quintile bins (``monetary_basis``: M score on total or average spend).
    forecaster : CLVForecaster, default ``CLVForecaster()``
        BG/NBD + Gamma-Gamma: horizon of ``predicted_purchases_12m`` and ``clv_12m`` (365
        days), discount rate, penalty.
    churn_model : ChurnModel, default ``ChurnModel()``
        Churn = no purchase in its ``horizon_days``; training snapshots and scorers.
    churn_sample_contacts : int
        The churn classifier trains on the histories of a random sample of about this many
        contacts when there are more (:func:`clvcast.data.sample_contacts`): its training
        rows grow with contacts times cutoffs, and past a few hundred thousand contacts
        more rows cost time and memory without improving the holdout metrics
        (``benchmarks/bench_scale.py``). :meth:`evaluate` runs on this sample too.

    Attributes
    ----------
    scorer_, forecaster_, churn_model_ : the fitted parts.
    as_of_ : Timestamp
        The as-of date of the training data.
    training_ : dict
        Sizes of the training data (contacts, purchase days, repeat buyers, history days).
    """

    def __init__(
        self,
        *,
        scorer: RFMScorer | None = None,
        forecaster: CLVForecaster | None = None,
        churn_model: ChurnModel | None = None,
        churn_sample_contacts: int = DEFAULT_CHURN_SAMPLE_CONTACTS,
    ) -> None:
        self.scorer = scorer
        self.forecaster = forecaster
        self.churn_model = churn_model
        self.churn_sample_contacts = churn_sample_contacts

    def get_params(self, deep: bool = True) -> dict:
        """The parts and, with ``deep``, their parameters (``forecaster__horizon_days``...),
        the default parts' included."""
        params = super().get_params(deep=False)
        if deep:
            for name in ("scorer", "forecaster", "churn_model"):
                part = self._part(name)
                params.update({f"{name}__{k}": v for k, v in part.get_params().items()})
        return params

    def set_params(self, **params: object) -> CLVPipeline:
        """Set parts or their parameters; a default part is created before its parameter
        is set."""
        for name in ("scorer", "forecaster", "churn_model"):
            if getattr(self, name) is None and any(k.startswith(f"{name}__") for k in params):
                setattr(self, name, self._part(name))
        return super().set_params(**params)

    def _part(self, name: str) -> BaseEstimator:
        """The part ``name`` as given, or its default."""
        given = getattr(self, name)
        if given is not None:
            return given
        return {"scorer": RFMScorer, "forecaster": CLVForecaster, "churn_model": ChurnModel}[name]()

    @property
    def horizon_days(self) -> float:
        """The forecast horizon in days (the forecaster's)."""
        return self._part("forecaster").horizon_days

    @property
    def churn_horizon_days(self) -> int:
        """Churn = no purchase in this many days (the churn model's)."""
        return self._part("churn_model").horizon_days

    def _forecaster(self) -> CLVForecaster:
        return clone(self._part("forecaster"))

    def _churn_model(self) -> ChurnModel:
        return clone(self._part("churn_model"))

    def fit(self, purchases: Purchases, as_of: str | pd.Timestamp) -> CLVPipeline:
        """Fit every part on the purchases up to ``as_of`` (later rows are ignored).

        ``purchases`` may be a :class:`~clvcast.data.ChunkedPurchaseLog` too large for
        memory: the summary is then computed where its files lie, and the churn classifier
        trains on a sample of contacts (``churn_sample_contacts``), as it does in memory.
        """
        day = parse_as_of(as_of)
        summary = summarize(purchases, day)
        churn_log, churn_contacts = self.sample_purchases(purchases, day)
        return self.fit_summary(summary, churn_log, day, churn_contacts=churn_contacts)

    def fit_summary(
        self,
        summary: pd.DataFrame,
        churn_log: pd.DataFrame,
        as_of: str | pd.Timestamp,
        *,
        churn_contacts: int,
    ) -> CLVPipeline:
        """Fit from the customer summary at ``as_of`` and the churn sample's purchases.

        :meth:`fit` computes both and calls this; an engine that computes them elsewhere
        (Spark) calls it directly, so the fitting is the same code on every engine.
        """
        check_limits(churn_sample_contacts=self.churn_sample_contacts)
        day = parse_as_of(as_of)
        self.scorer_ = clone(self._part("scorer")).fit(summary)
        self.forecaster_ = self._forecaster().fit(summary)
        self.churn_model_ = self._churn_model().fit(churn_log, day)
        self.as_of_ = day
        first = summary["first_purchase"].min()
        self.training_ = {
            "contacts": int(len(summary)),
            "repeat_buyers": int((summary["frequency"] > 0).sum()),
            "purchase_days": int(summary["orders"].sum()),
            "history_days": int((day - first).days),
            "first_purchase": str(first.date()),
            "churn_training_contacts": churn_contacts,
        }
        return self

    def sample_purchases(
        self, purchases: Purchases, as_of: str | pd.Timestamp
    ) -> tuple[pd.DataFrame, int]:
        """The purchases up to ``as_of`` of the churn sample, and its number of contacts.

        The whole log (up to ``as_of``) when it has ``churn_sample_contacts`` or fewer.
        """
        day = parse_as_of(as_of)
        source = purchases_source(purchases)
        if isinstance(source, pd.DataFrame):
            source = source.loc[source["date"] <= day]
        sample, contacts = sample_contacts(source, self.churn_sample_contacts)
        return sample.loc[sample["date"] <= day], contacts

    def partition_context(self, summary: pd.DataFrame) -> SnapshotContext:
        """The population-level parts of the churn snapshot (RFM bins and BG/NBD of its
        features), fitted on the summary of every contact: what :meth:`score_partition`
        needs to score one part of the contacts as if it scored all of them."""
        return snapshot_context(summary)

    def score_partition(
        self,
        purchases: PurchaseLog | pd.DataFrame,
        as_of: str | pd.Timestamp,
        *,
        contacts: pd.DataFrame | None = None,
        context: SnapshotContext | None = None,
    ) -> pd.DataFrame:
        """The scored rows of the contacts in ``purchases`` (and the prospects of
        ``contacts``) with the frozen parts: the one scoring function behind :meth:`score`,
        :meth:`score_in_chunks` and the Spark engine's tasks.

        ``context`` (:meth:`partition_context` of the whole population) makes a part's rows
        equal those of scoring every contact at once; without it the part is the population.
        """
        check_is_fitted(self, "forecaster_")
        return build_contact_table(
            purchases,
            as_of,
            contacts=contacts,
            scorer=self.scorer_,
            forecaster=self.forecaster_,
            churn_model=self.churn_model_,
            churn_context=context,
        ).table

    def score_in_chunks(
        self,
        purchases: ChunkedPurchaseLog,
        as_of: str | pd.Timestamp,
        contacts: pd.DataFrame | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The scored table chunk by chunk: one DataFrame per chunk of contacts.

        Only one chunk is in memory at a time. The snapshot's population-level parts are
        fitted once on the summary of every contact first (:meth:`partition_context`), so
        the rows equal those of :meth:`score` on the whole log; each chunk is sorted by
        contact id and followed by its prospects (contacts of ``contacts`` without
        purchases, assigned to chunks by the same hash as purchases).
        """
        check_is_fitted(self, "forecaster_")
        day = parse_as_of(as_of)
        if purchases.in_memory:
            yield self.score_partition(purchases.frame, day, contacts=contacts)
            return
        context = self.partition_context(summarize(purchases, day))
        groups = _contacts_by_chunk(contacts, purchases.n_chunks)
        for index in range(purchases.n_chunks):
            yield self.score_partition(
                purchases.chunk(index),
                day,
                contacts=None if contacts is None else groups[index],
                context=context,
            )

    def score(
        self,
        purchases: PurchaseLog | pd.DataFrame,
        as_of: str | pd.Timestamp,
        contacts: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The scored contact table at ``as_of`` with the frozen parts (prospects included)."""
        return self.score_partition(purchases, as_of, contacts=contacts)

    def evaluate(
        self,
        purchases: PurchaseLog | pd.DataFrame,
        as_of: str | pd.Timestamp,
        holdout_days: int,
    ) -> PipelineEvaluation:
        """Holdout evaluation of copies of this pipeline's models (not of the fitted parts).

        Purchases: BG/NBD fitted up to ``as_of - holdout_days`` against the last
        ``holdout_days``. Churn: the temporal evaluation at ``as_of``. The result's
        ``metrics`` have flat names ready for MLflow (``holdout_rmse``, ``churn_roc_auc``,
        ``churn_roc_auc_high_value``...). Both run on the churn sample of contacts
        (``churn_sample_contacts``; every contact when there are no more), the data the
        churn classifier trains on. Works before :meth:`fit` too: nothing is stored.
        """
        if not isinstance(holdout_days, int | np.integer) or holdout_days < 1:
            raise InputError(f"holdout_days={holdout_days!r}: use a whole number of days >= 1.")
        from clvcast.churn.evaluation import evaluate_churn
        from clvcast.models.evaluation import evaluate_holdout

        day = parse_as_of(as_of)
        log, _ = self.sample_purchases(purchases, day)
        holdout = evaluate_holdout(
            log, day - pd.Timedelta(days=holdout_days), day, forecaster=self._forecaster()
        )
        churn = evaluate_churn(log, day, self._churn_model())
        metrics = {f"holdout_{key}": float(value) for key, value in holdout.metrics.items()}
        for (population, score), row in churn.metrics.iterrows():
            suffix = "" if population == "all" else "_high_value"
            name = "churn" if score == "classifier" else f"churn_baseline_{score}"
            for metric in ("roc_auc", "pr_auc", "brier"):
                if pd.notna(row[metric]):
                    metrics[f"{name}_{metric}{suffix}"] = float(row[metric])
        metrics["churn_drift_concordance"] = float(churn.drift_concordance)
        return PipelineEvaluation(metrics=metrics, holdout=holdout, churn=churn)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save atomically as a clvcast model file: JSON and skops in a zip, which
        :meth:`load` reads without running code from the file (:mod:`clvcast.model_file`)."""
        check_is_fitted(self, "forecaster_")
        from clvcast import __version__
        from clvcast.model_file import save_model_file

        return save_model_file(self, path, {"clvcast_version": __version__})

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trust_model_file: bool = False) -> CLVPipeline:
        """Load a pipeline saved by :meth:`save`; one clear error for anything else.

        Pickle (joblib) files of earlier clvcast versions can run code when loaded: they load only
        with ``trust_model_file=True`` (CLI: ``--trust-model-file``), with a warning.
        """
        from clvcast.model_file import load_model_file

        loaded = load_model_file(path, trust_pickle=trust_model_file)
        if isinstance(loaded, dict):  # an old joblib payload, trusted by the caller
            pipeline = cls.__new__(cls)
            pipeline.__dict__.update(loaded["pipeline"])
            return _with_parts(pipeline)
        if not isinstance(loaded, cls):
            raise InputError(f"{path} holds a {type(loaded).__name__}, not a clvcast pipeline.")
        return _with_parts(loaded)


# The settings of pipelines saved before the pipeline was built from its parts: part, and
# the part's parameter for each.
_FLAT_SETTINGS = {
    "monetary_basis": ("scorer", "monetary_basis"),
    "horizon_days": ("forecaster", "horizon_days"),
    "discount_rate_monthly": ("forecaster", "discount_rate_monthly"),
    "penalizer": ("forecaster", "penalizer"),
    "churn_horizon_days": ("churn_model", "horizon_days"),
    "churn_cutoffs": ("churn_model", "n_cutoffs"),
    "churn_spacing_days": ("churn_model", "spacing_days"),
}


def _with_parts(pipeline: CLVPipeline) -> CLVPipeline:
    """A pipeline loaded from a file of an earlier clvcast (flat settings such as
    ``horizon_days``) rebuilt with its parts; the fitted parts are unchanged."""
    state = pipeline.__dict__
    if "forecaster" in state:
        return pipeline
    parts: dict[str, dict] = {"scorer": {}, "forecaster": {}, "churn_model": {}}
    for old, (part, parameter) in _FLAT_SETTINGS.items():
        if old in state:
            parts[part][parameter] = state.pop(old)
    state["scorer"] = RFMScorer(**parts["scorer"])
    state["forecaster"] = CLVForecaster(**parts["forecaster"])
    state["churn_model"] = ChurnModel(**parts["churn_model"])
    state.setdefault("churn_sample_contacts", DEFAULT_CHURN_SAMPLE_CONTACTS)
    return pipeline


def _contacts_by_chunk(contacts: pd.DataFrame | None, n_chunks: int) -> list[pd.DataFrame]:
    """Rows of the contacts table per chunk, by the hash that chunks the purchases."""
    if contacts is None:
        return [None] * n_chunks
    chunk = chunk_of(contacts["contact_id"], n_chunks)
    return [contacts.loc[chunk == index].reset_index(drop=True) for index in range(n_chunks)]
