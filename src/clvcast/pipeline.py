"""The fitted whole: from a purchase log to the contact table marketing tools import.

:class:`CLVPipeline` is the fitted whole (frozen RFM bins, BG/NBD + Gamma-Gamma, churn
classifier) with ``fit``, ``score``, ``evaluate``, ``save`` and ``load``; its model file
holds parameters and configuration only, no contact data. The table itself is assembled by
:func:`clvcast.contact_table.build_contact_table` (importable from here too).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from clvcast.churn.evaluation import ChurnEvaluation
from clvcast.churn.features import SnapshotContext, SnapshotSeries, snapshot_context
from clvcast.churn.model import ChurnModel
from clvcast.contact_table import (  # noqa: F401  (the table's names, importable from here)
    BATCH_COLUMNS,
    CHURN_COLUMNS,
    SCORED_COLUMNS,
    ContactTable,
    build_contact_table,
    check_contact_attributes,
    rfm_contact_table,
)
from clvcast.cores import usable_cores
from clvcast.data import ChunkedPurchaseLog, PurchaseLog, parse_as_of, sample_contacts
from clvcast.data.chunks import DEFAULT_CHURN_SAMPLE_CONTACTS, chunk_of
from clvcast.errors import InputError
from clvcast.estimator import Estimator, check_fitted, clone
from clvcast.limits import check_limits
from clvcast.models.evaluation import HoldoutEvaluation
from clvcast.models.forecast import CLVForecaster
from clvcast.rfm import RFMScorer
from clvcast.summary import (
    Purchases,
    purchases_source,
    summarize,
    summarize_by_chunk,
)

# Chunks scored at once by CLVPipeline.score_in_chunks: two cores' worth, one on one core
# (the cores this process may run on: a CPU affinity mask counts).
CHUNK_SCORING_THREADS = min(2, usable_cores())


def in_order_on_threads(
    work: Callable[[int], pd.DataFrame], n: int, threads: int
) -> Iterator[pd.DataFrame]:
    """``work(0), ..., work(n - 1)``, yielded in that order, with up to ``threads`` of them
    running at once on threads (one thread: plainly one after the other).

    The work must release the GIL for most of its time (numpy, DuckDB, scikit-learn's
    trees) and share nothing it writes. A new item starts only when the next result is
    asked for, so at most ``threads`` results exist at a time, counting the one the caller
    holds. An item's exception is raised in order; items not yet started are cancelled and
    the running ones finish before this generator ends.
    """
    check_limits(threads=threads)
    threads = int(threads)
    if threads == 1 or n <= 1:
        for index in range(n):
            yield work(index)
        return
    # BLAS pools are process-wide: items that cap them while others run would restore each
    # other's settings out of order, so they stay at one thread until every item is done.
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clvcast-chunk") as pool,
    ):
        pending: deque[Future[pd.DataFrame]] = deque()
        started = 0
        try:
            while started < n or pending:
                while started < n and len(pending) < threads:
                    pending.append(pool.submit(work, started))
                    started += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@dataclass
class PipelineEvaluation:
    """What :meth:`CLVPipeline.evaluate` returns: flat metrics (for MLflow and the champion
    rule) and the two evaluations behind them (tables and figures)."""

    metrics: dict[str, float]
    holdout: HoldoutEvaluation
    churn: ChurnEvaluation


class CLVPipeline(Estimator):
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

    def _part(self, name: str) -> Estimator:
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
        snapshots: SnapshotSeries | None = None,
    ) -> CLVPipeline:
        """Fit from the customer summary at ``as_of`` and the churn sample's purchases.

        :meth:`fit` computes both and calls this; an engine that computes them elsewhere
        (Spark) calls it directly, so the fitting is the same code on every engine.
        ``snapshots`` (:meth:`churn_snapshots` of ``churn_log``) shares the churn snapshots
        with an :meth:`evaluate` of the same log.
        """
        check_limits(churn_sample_contacts=self.churn_sample_contacts)
        day = parse_as_of(as_of)
        self.scorer_ = clone(self._part("scorer")).fit(summary)
        self.forecaster_ = self._forecaster().fit(summary)
        self.churn_model_ = self._churn_model().fit(churn_log, day, snapshots=snapshots)
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

    def churn_snapshots(
        self, churn_log: pd.DataFrame, as_of: str | pd.Timestamp, *, one_row_per_day: bool = False
    ) -> SnapshotSeries:
        """The churn snapshots of ``churn_log`` up to ``as_of``, to pass to both
        :meth:`evaluate` and :meth:`fit_summary`: the churn evaluation trains one churn
        horizon earlier, so the two share most snapshots and one trained candidate, each
        computed once.
        ``one_row_per_day``: the log has one row per contact and day (ingestion's)."""
        horizon = self._part("churn_model").horizon_days
        return SnapshotSeries.up_to(
            churn_log, parse_as_of(as_of), horizon, one_row_per_day=one_row_per_day
        )

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
        summary: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The scored rows of the contacts in ``purchases`` (and the prospects of
        ``contacts``) with the frozen parts: the one scoring function behind :meth:`score`,
        :meth:`score_in_chunks` and the Spark engine's tasks.

        ``context`` (:meth:`partition_context` of the whole population) makes a part's rows
        equal those of scoring every contact at once; without it the part is the population.
        ``summary`` is the summary of ``purchases`` at ``as_of`` when the caller has it.
        """
        check_fitted(self, "forecaster_")
        return build_contact_table(
            purchases,
            as_of,
            contacts=contacts,
            scorer=self.scorer_,
            forecaster=self.forecaster_,
            churn_model=self.churn_model_,
            churn_context=context,
            summary=summary,
        ).table

    def score_in_chunks(
        self,
        purchases: ChunkedPurchaseLog,
        as_of: str | pd.Timestamp,
        contacts: pd.DataFrame | None = None,
        *,
        threads: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The scored table chunk by chunk: one DataFrame per chunk of contacts, in order.

        The snapshot's population-level parts are fitted once on the summary of every
        contact first (:meth:`partition_context`), so the rows equal those of :meth:`score`
        on the whole log; each chunk is sorted by contact id and followed by its prospects
        (contacts of ``contacts`` without purchases, assigned to chunks by the same hash as
        purchases).

        ``threads`` chunks are scored at once (default :data:`CHUNK_SCORING_THREADS`: two,
        or one on a single core), so memory holds that many chunks, one of them possibly
        already yielded, and the summary of every contact (a chunk's summary is its rows).
        Scoring a chunk alone keeps about 1.5 of two cores busy: its boosted trees run on
        both, but its features, forecasts and table run on one.
        """
        check_fitted(self, "forecaster_")
        day = parse_as_of(as_of)
        if purchases.in_memory:
            yield self.score_partition(purchases.frame, day, contacts=contacts)
            return
        # The summary of every contact, chunk after chunk: each chunk's summary is its slice
        # (no second summary of every chunk file), and the context fitted on it equals that
        # of the contacts in id order (the BG/NBD fit does not depend on the rows' order).
        summary, starts = summarize_by_chunk(purchases, day)
        context = self.partition_context(summary)
        groups = _contacts_by_chunk(contacts, purchases.n_chunks)

        def score(index: int) -> pd.DataFrame:
            return self.score_partition(
                purchases.chunk(index),
                day,
                contacts=None if contacts is None else groups[index],
                context=context,
                summary=summary.iloc[starts[index] : starts[index + 1]],
            )

        workers = CHUNK_SCORING_THREADS if threads is None else threads
        yield from in_order_on_threads(score, purchases.n_chunks, workers)

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
        *,
        snapshots: SnapshotSeries | None = None,
    ) -> PipelineEvaluation:
        """Holdout evaluation of copies of this pipeline's models (not of the fitted parts).

        Purchases: BG/NBD fitted up to ``as_of - holdout_days`` against the last
        ``holdout_days``. Churn: the temporal evaluation at ``as_of``. The result's
        ``metrics`` have flat names ready for MLflow (``holdout_rmse``, ``churn_roc_auc``,
        ``churn_roc_auc_high_value``...). Both run on the churn sample of contacts
        (``churn_sample_contacts``; every contact when there are no more), the data the
        churn classifier trains on. Works before :meth:`fit` too: nothing is stored.
        ``snapshots``: :meth:`churn_snapshots` of the same sample, shared with the fit.
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
        churn = evaluate_churn(log, day, self._churn_model(), snapshots=snapshots)
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
        check_fitted(self, "forecaster_")
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


@dataclass
class LoadedModel:
    """A pipeline and where it came from (for the scored table's model columns)."""

    pipeline: CLVPipeline
    name: str
    version: str
    uri: str


def is_mlflow_reference(model: str) -> bool:
    """True for ``models:/...`` and ``runs:/...`` (loaded through :mod:`clvcast.tracking`),
    False for the path of a model file; InputError for any other URI."""
    if model.startswith(("models:/", "runs:/")):
        return True
    if "://" in model or model.startswith(("models:", "runs:")):
        raise InputError(
            f"--model {model}: use models:/NAME@ALIAS, models:/NAME/VERSION, "
            "runs:/RUN_ID/model or the path of a model file."
        )
    return False


def load_model_file(path: str, *, trust_model_file: bool = False) -> LoadedModel:
    """The pipeline saved in the model file ``path``, named after the file. Needs no MLflow:
    importing it takes about 1.5 s, which a batch job scoring with a file does not pay."""
    pipeline = CLVPipeline.load(path, trust_model_file=trust_model_file)
    return LoadedModel(pipeline, Path(path).stem, "file", str(Path(path)))


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


def _rows_by_chunk(ids: pd.Index | pd.Series, n_chunks: int) -> list[np.ndarray]:
    """Positions of each chunk's ids in ``ids``, in their order there (chunks by the hash
    that chunks the purchases)."""
    chunk = chunk_of(pd.Series(ids), n_chunks).to_numpy()
    order = np.argsort(chunk, kind="stable")
    bounds = np.searchsorted(chunk[order], np.arange(n_chunks + 1))
    return [order[bounds[index] : bounds[index + 1]] for index in range(n_chunks)]


def _contacts_by_chunk(contacts: pd.DataFrame | None, n_chunks: int) -> list[pd.DataFrame]:
    """Rows of the contacts table per chunk, by the hash that chunks the purchases."""
    if contacts is None:
        return [None] * n_chunks
    rows = _rows_by_chunk(contacts["contact_id"], n_chunks)
    return [contacts.iloc[part].reset_index(drop=True) for part in rows]
