"""Where the work runs: ``local`` (DuckDB and pandas, in chunks) or ``spark`` (Apache Spark).

Both engines provide the same two operations, so a job never asks which one it has:

- :func:`training_data`: the ingestion report, the customer summary at the as-of date (one
  row of numbers per contact) and the purchases of the churn sample, on this machine;
  :meth:`~clvcast.pipeline.CLVPipeline.fit_summary` fits from them on either engine.
- :func:`scored_tables`: the ingestion report and the scored contact table as a stream of
  parts (one chunk or one Spark partition file at a time), for the output writers.

The Spark engine uses the Spark session already running in this process when there is one
(a notebook's) and leaves it running; otherwise it starts one and stops it at the end.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data import ChunkedPurchaseLog, IngestionReport, parse_as_of
from clvcast.data.chunks import read_transactions_in_chunks, sample_ingested
from clvcast.data.ingest import ReadOptions, ingested
from clvcast.errors import InputError
from clvcast.summary import summarize_view

ENGINES = ("local", "spark")
Step = Callable[[str], contextlib.AbstractContextManager]
Note = Callable[[str], None]


@dataclass
class TrainingData:
    """What training needs, on this machine, whatever the engine."""

    report: IngestionReport
    summary: pd.DataFrame
    sample: pd.DataFrame
    sample_contacts: int


@dataclass(frozen=True)
class EngineSettings:
    """Engine choice and its settings (the CLI's "large inputs" options)."""

    engine: str = "local"
    spark_master: str | None = None
    chunk_contacts: int = 1_000_000
    work_dir: str | None = None

    def check(self) -> None:
        from clvcast.limits import check_limits

        if self.engine not in ENGINES:
            raise InputError(f"engine={self.engine!r} is not known; use one of {list(ENGINES)}.")
        check_limits(chunk_contacts=self.chunk_contacts)
        if self.work_dir and not Path(self.work_dir).is_dir():
            raise InputError(f"work folder {self.work_dir} is not a folder; create it first.")


def _no_step(message: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _spark_path(transactions: object) -> str:
    if isinstance(transactions, pd.DataFrame):
        raise InputError(
            "the Spark engine reads files: pass the transactions as a path (CSV or Parquet), "
            "or use engine='local' for a DataFrame."
        )
    return str(transactions)


@contextlib.contextmanager
def chunked_log(
    transactions: object, read: ReadOptions, settings: EngineSettings, step: Step = _no_step
) -> Iterator[ChunkedPurchaseLog]:
    """The purchase log in chunks of ``settings.chunk_contacts`` contacts (files in a
    temporary folder under ``settings.work_dir``, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="clvcast-chunks-", dir=settings.work_dir) as folder:
        with step(f"reading and checking {_name(transactions)}"):
            log = read_transactions_in_chunks(
                transactions, folder, chunk_contacts=settings.chunk_contacts, **asdict(read)
            )
        yield log


def _name(transactions: object) -> str:
    return "the transactions" if isinstance(transactions, pd.DataFrame) else str(transactions)


@contextlib.contextmanager
def training_data(
    transactions: object,
    read: ReadOptions,
    settings: EngineSettings,
    *,
    sample_size: int,
    step: Step = _no_step,
) -> Iterator[TrainingData]:
    """The summary at ``read.as_of`` and the churn sample (at most about ``sample_size``
    contacts), read by the engine of ``settings``."""
    day = parse_as_of(read.as_of)
    if settings.engine == "spark":
        from clvcast.spark.engine import training_data_spark
        from clvcast.spark.session import job_session

        path = _spark_path(transactions)
        with (
            job_session(settings.spark_master) as spark,
            step(f"reading and summarising {path} with Spark"),
        ):
            data = training_data_spark(spark, path, read, day, sample_size)
            yield TrainingData(data.report, data.summary, data.sample, data.sample_contacts)
        return
    # Training needs the summary and the churn sample only: both are read where ingestion
    # left the purchase days, without the chunk files that scoring needs (at 100M rows their
    # join and ten sorted writes took 70-75 s in session 12). Ingestion at read.as_of dropped
    # (and counted) every later row already.
    with contextlib.ExitStack() as stack:
        with step(f"reading and checking {_name(transactions)}"):
            connection, report = stack.enter_context(ingested(transactions, read))
        with step("summarising the purchase log"):
            summary = summarize_view(connection, day)
            sample, size = sample_ingested(connection, report.contacts, sample_size)
    yield TrainingData(report, summary, sample, size)


@contextlib.contextmanager
def scored_tables(
    pipeline: Any,
    transactions: object,
    read: ReadOptions,
    settings: EngineSettings,
    *,
    contacts: pd.DataFrame | None = None,
    step: Step = _no_step,
    note: Note = lambda message: None,
) -> Iterator[tuple[IngestionReport, Iterator[pd.DataFrame]]]:
    """(ingestion report, the scored table part by part) at ``read.as_of``.

    Spark writes the scored table as Parquet parts into a temporary folder under
    ``settings.work_dir``; they are streamed from there, so every output kind and the atomic
    write work as with the local engine.
    """
    as_of = parse_as_of(read.as_of)
    if settings.engine == "spark":
        yield from _spark_scored(pipeline, transactions, read, settings, contacts, step)
        return
    with chunked_log(transactions, read, settings, step) as log:
        if log.n_chunks > 1:
            note(f"{log.report.contacts:,} contacts in {log.n_chunks} chunks")

        def tables() -> Iterator[pd.DataFrame]:
            for index, table in enumerate(pipeline.score_in_chunks(log, as_of, contacts)):
                if log.n_chunks > 1:
                    note(f"scored chunk {index + 1} of {log.n_chunks}")
                yield table

        yield log.report, tables()


def _spark_scored(pipeline, transactions, read, settings, contacts, step):
    import pyarrow.dataset

    from clvcast.spark.engine import read_transactions_spark, score_spark
    from clvcast.spark.session import job_session

    path = _spark_path(transactions)
    with job_session(settings.spark_master) as spark:
        with step(f"reading and checking {path} with Spark"):
            purchases, report = read_transactions_spark(spark, path, read)
        scored = score_spark(spark, pipeline, purchases, read.as_of, contacts=contacts)
        with tempfile.TemporaryDirectory(prefix="clvcast-spark-", dir=settings.work_dir) as folder:
            parts = Path(folder) / "scored"
            scored.write.parquet(str(parts))
            dataset = pyarrow.dataset.dataset(str(parts), format="parquet")

            def tables() -> Iterator[pd.DataFrame]:
                for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
                    table = fragment.to_table().to_pandas(types_mapper=_nullable_types)
                    if len(table):
                        yield table

            yield report, tables()


def _nullable_types(kind: Any) -> Any:
    """Arrow to pandas types as the local engine's table has them (nullable counts, text)."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return pd.Int64Dtype()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.StringDtype()
    return None


def with_as_of(read: ReadOptions | None, as_of: object) -> ReadOptions:
    """``read`` (default options) with the job's as-of date."""
    return replace(read or ReadOptions(), as_of=as_of)
