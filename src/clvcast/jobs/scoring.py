"""predict: score every contact with a model version and write the scored table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clvcast.changes import DEFAULT_CLV_TOLERANCE
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
    # Side tables (migrations, changes, audiences, audience_changes): rows, and where each
    # was written, or the tables themselves when nothing is written.
    side_rows: dict[str, int] = field(default_factory=dict)
    side_outputs: dict[str, str] = field(default_factory=dict)
    side_tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)
    # audience -> {"members": n} (and "entered", "left" with a previous table)
    audiences: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def migrations(self) -> pd.DataFrame | None:
        """The migrations table, when it was returned rather than written."""
        return self.side_tables.get("migrations")

    @property
    def migration_rows(self) -> int | None:
        return self.side_rows.get("migrations")

    @property
    def migrations_output(self) -> str | None:
        return self.side_outputs.get("migrations")

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
            "rows": dict(self.side_rows),
            "outputs": dict(self.side_outputs),
            "audiences": dict(self.audiences),
            "notes": list(self.notes),
            "scored_at": self.scored_at.isoformat(),
        }


def parse_scored_at(value: Any) -> pd.Timestamp:
    """The scored-at stamp in UTC, with its zone, to the second (now when None).

    A stamp without a zone is taken as UTC. Parquet and SQL keep the zone (a timestamp with
    time zone); CSV writes it as ISO 8601 (the ``marketing`` format with its offset).
    """
    if value is None or value == "":
        return pd.Timestamp.now("UTC").floor("s")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"--scored-at {value!r} is not a timestamp; use ISO 8601, e.g. 2024-07-01T06:00:00Z."
        ) from exc
    if pd.isna(stamp):
        raise InputError(f"--scored-at {value!r} is not a timestamp; use ISO 8601.")
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
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
    csv_format: str = "default",
    audiences: str | os.PathLike[str] | dict[str, str] | None = None,
    changed_only: bool = False,
    clv_tolerance: float = DEFAULT_CLV_TOLERANCE,
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
        tables in ``result.table`` and ``result.side_tables`` instead.
    previous, previous_table
        The previous run's scored table (path, URL or DataFrame): the RFM migrations
        since then go next to the output (``<output>.migrations.<ext>``, with the contact's
        attributes and current CLV and churn risk).
    csv_format
        ``default`` (lossless) or ``marketing`` (:mod:`clvcast.marketing`), for every CSV
        file this run writes.
    audiences
        A YAML file (or a mapping) of audience name -> condition (:mod:`clvcast.audiences`):
        members go to ``<output>.audiences.<ext>``, and with ``previous`` who entered and
        left to ``<output>.audience_changes.<ext>``.
    changed_only, clv_tolerance
        With ``previous``: the new, changed and removed contacts (:mod:`clvcast.changes`)
        go to ``<output>.changes.<ext>``, for tools that sync changes; the output itself
        stays the whole table, the next run's ``previous``.
    scored_at
        The run's timestamp (default now, UTC).
    trust_model_file
        Allow an old pickle model file (can run code; see :mod:`clvcast.model_file`).

    Every output, the previous table, the audiences and the settings are checked before any
    work.
    """
    from clvcast.changes import check_clv_tolerance
    from clvcast.jobs.side_tables import SideTables, load_checked_audiences, previous_membership
    from clvcast.marketing import check_csv_format
    from clvcast.models.forecast import prediction_columns
    from clvcast.output import (
        check_sql_target,
        is_sql_url,
        read_scored,
        side_target,
        write_scored,
        write_scored_chunks,
    )
    from clvcast.rfm import check_scored_table

    settings = _engine(engine, spark_master, chunk_contacts, work_dir)
    read = with_as_of(read, as_of)
    check_csv_format(csv_format)
    check_clv_tolerance(clv_tolerance)
    if changed_only and previous is None:
        raise InputError("--changed-only needs --previous, the last run's scored table.")
    sides = [
        *(["migrations"] if previous is not None else []),
        *(["changes"] if changed_only else []),
        *(["audiences"] if audiences is not None else []),
        *(["audience_changes"] if audiences is not None and previous is not None else []),
    ]
    inputs = {
        "transactions": transactions,
        "contacts": contacts,
        "previous": previous,
        "model": model if isinstance(model, str | os.PathLike) else None,
        "audiences": audiences if isinstance(audiences, str | os.PathLike) else None,
    }
    if output is not None:
        output = str(output)
        if is_sql_url(output):
            check_sql_target(output, table, sides=sides)
        else:
            check_output_file(output, inputs)
            for side in sides:
                check_output_file(side_target(output, None, side)[0], inputs)
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
    attributes = [] if table_contacts is None else [str(c) for c in table_contacts.columns[1:]]
    notes: list[str] = []
    checked, previous_members = [], None
    if audiences is not None:
        horizon = prediction_columns(loaded.pipeline.horizon_days)
        checked = load_checked_audiences(
            audiences, horizon, table_contacts, previous_frame is not None, notes
        )
        if previous_frame is not None:
            previous_members = previous_membership(
                checked, previous_frame, previous, previous_table or table, notes
            )
    side = SideTables(
        previous=previous_frame,
        attributes=attributes,
        changed_only=changed_only,
        clv_tolerance=clv_tolerance,
        audiences=checked,
        previous_members=previous_members,
        notes=notes,
    )
    counts = {"contacts": 0, "prospects": 0}
    kept: list[pd.DataFrame] = []  # the whole table, when it is returned

    def stamped(tables: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in tables:
            part["model_name"] = loaded.name
            part["model_version"] = loaded.version
            part["scored_at"] = stamp
            counts["contacts"] += len(part)
            counts["prospects"] += int((part["rfm_group"] == "prospect").sum())
            side.observe(part)
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
                where, _ = write_scored_chunks(stamped(tables), output, table, csv_format)
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
        notes=side.notes,
    )
    if output is None:
        result.table = pd.concat(kept, ignore_index=True) if kept else None
    finished = side.finish()
    result.audiences = side.counts
    for name, frame in finished.items():
        result.side_rows[name] = len(frame)
        if output is None:
            result.side_tables[name] = frame
            continue
        target, table_name = side_target(output, table, name)
        with steps(f"writing {name}"):
            result.side_outputs[name] = write_scored(frame, target, table_name, csv_format)
    return result
