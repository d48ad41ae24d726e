"""predict: score every contact with a model version and write the scored table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clvcast.data import IngestionReport, ReadOptions, parse_as_of
from clvcast.data.chunks import DEFAULT_CHUNK_CONTACTS
from clvcast.engines import scored_tables, with_as_of
from clvcast.errors import InputError
from clvcast.jobs.common import (
    Progress,
    Transactions,
    _contacts,
    _engine,
    _Steps,
    check_output_file,
    load,
)


@dataclass
class PredictResult:
    """What :func:`predict` did: the scored table (or where it was written) and migrations."""

    model_uri: str
    model_name: str
    model_version: str
    as_of: str
    scored_at: pd.Timestamp
    contacts: int
    prospects: int
    report: IngestionReport
    table: pd.DataFrame | None = field(default=None, repr=False)
    output: str | None = None
    migrations: pd.DataFrame | None = field(default=None, repr=False)
    migrations_output: str | None = None
    migration_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary ``clvcast predict --json`` prints."""
        return {
            "model": self.model_uri,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "as_of": self.as_of,
            "contacts": self.contacts,
            "prospects": self.prospects,
            "output": self.output,
            "migrations": self.migration_rows,
            "migrations_output": self.migrations_output,
            "scored_at": str(self.scored_at),
        }


def parse_scored_at(value: Any) -> pd.Timestamp:
    """The scored-at stamp as a naive UTC timestamp, to the second (now when None)."""
    if value is None or value == "":
        return pd.Timestamp.now("UTC").tz_localize(None).floor("s")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"--scored-at {value!r} is not a timestamp; use ISO 8601, e.g. 2024-07-01T06:00:00Z."
        ) from exc
    if pd.isna(stamp):
        raise InputError(f"--scored-at {value!r} is not a timestamp; use ISO 8601.")
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    return stamp.floor("s")


def predict(
    model: Any,
    transactions: Transactions,
    *,
    as_of: Any,
    contacts: Transactions | None = None,
    contacts_id_col: str | None = None,
    read: ReadOptions | None = None,
    output: str | os.PathLike[str] | None = None,
    table: str | None = None,
    previous: str | os.PathLike[str] | pd.DataFrame | None = None,
    previous_table: str | None = None,
    engine: str = "local",
    spark_master: str | None = None,
    chunk_contacts: int = DEFAULT_CHUNK_CONTACTS,
    work_dir: str | None = None,
    store: Any = None,
    scored_at: Any = None,
    trust_model_file: bool = False,
    progress: Progress | None = None,
) -> PredictResult:
    """Score every contact with a model and write (or return) the scored table.

    Parameters
    ----------
    model
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``, a model
        file, a fitted :class:`~clvcast.pipeline.CLVPipeline` or a loaded model.
    transactions, contacts
        Paths or DataFrames; contacts without purchases become prospects.
    output, table
        A ``.parquet``/``.csv`` path or a database URL (with ``table``); None returns the
        table in ``result.table`` instead.
    previous, previous_table
        The previous run's scored table (path, URL or DataFrame): the RFM migrations
        since then go next to the output (``<output>_migrations``) or to
        ``result.migrations``.
    scored_at
        The run's timestamp (default now, UTC).
    trust_model_file
        Allow an old pickle model file (can run code; see :mod:`clvcast.model_file`).

    Every output, the previous table and the settings are checked before any work.
    """
    from clvcast.output import (
        check_sql_target,
        is_sql_url,
        migrations_target,
        read_scored,
        write_scored,
        write_scored_chunks,
    )
    from clvcast.rfm import MIGRATION_INPUT_COLUMNS, check_scored_table, rfm_migrations

    settings = _engine(engine, spark_master, chunk_contacts, work_dir)
    read = with_as_of(read, as_of)
    inputs = {
        "transactions": transactions,
        "contacts": contacts,
        "previous": previous,
        "model": model if isinstance(model, str | os.PathLike) else None,
    }
    if output is not None:
        output = str(output)
        if is_sql_url(output):
            check_sql_target(output, table, migrations=previous is not None)
        else:
            check_output_file(output, inputs)
            if previous is not None:
                check_output_file(migrations_target(output, None)[0], inputs)
    previous_frame = None
    if previous is not None:
        previous_frame = (
            previous
            if isinstance(previous, pd.DataFrame)
            else read_scored(str(previous), previous_table or table)
        )
        check_scored_table(previous_frame, "previous")
    stamp = parse_scored_at(scored_at)
    steps = _Steps(progress)
    with steps(f"loading {model if isinstance(model, str) else 'the model'}"):
        loaded = load(model, store, trust_model_file=trust_model_file)
    table_contacts = _contacts(contacts, read, contacts_id_col)
    counts = {"contacts": 0, "prospects": 0}
    slim: list[pd.DataFrame] = []  # the columns migrations compare, part by part
    kept: list[pd.DataFrame] = []  # the whole table, when it is returned

    def stamped(tables: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in tables:
            part["model_name"] = loaded.name
            part["model_version"] = loaded.version
            part["scored_at"] = stamp
            counts["contacts"] += len(part)
            counts["prospects"] += int((part["rfm_group"] == "prospect").sum())
            if previous_frame is not None:
                slim.append(part[[*MIGRATION_INPUT_COLUMNS]])
            if output is None:
                kept.append(part)
            yield part

    where = None
    with scored_tables(
        loaded.pipeline,
        transactions,
        read,
        settings,
        contacts=table_contacts,
        step=steps,
        note=steps.note,
    ) as (report, tables):
        if output is None:
            with steps("scoring every contact"):
                for _ in stamped(tables):
                    pass
        else:
            with steps(f"scoring every contact and writing {output}"):
                where, _ = write_scored_chunks(stamped(tables), output, table)
    result = PredictResult(
        model_uri=loaded.uri,
        model_name=loaded.name,
        model_version=loaded.version,
        as_of=str(parse_as_of(as_of).date()),
        scored_at=stamp,
        contacts=counts["contacts"],
        prospects=counts["prospects"],
        report=report,
        output=where,
    )
    if output is None:
        result.table = pd.concat(kept, ignore_index=True) if kept else None
    if previous_frame is not None:
        current = pd.concat(slim, ignore_index=True) if slim else None
        migrations = rfm_migrations(previous_frame, current)
        result.migration_rows = len(migrations)
        if output is None:
            result.migrations = migrations
        else:
            target, table_name = migrations_target(output, table)
            result.migrations_output = write_scored(migrations, target, table_name)
    return result
