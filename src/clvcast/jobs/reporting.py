"""report: the HTML report of a model version."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data import ReadOptions
from clvcast.engines import with_as_of
from clvcast.errors import InputError, ModelWarning
from clvcast.jobs.common import (
    Progress,
    Transactions,
    _contacts,
    _source_name,
    _Steps,
    load,
)
from clvcast.limits import check_limits


@dataclass
class ReportResult:
    """What :func:`report` wrote."""

    path: Path
    model_name: str
    model_version: str


def report(
    model: Any,
    *,
    output: str | os.PathLike[str],
    scored: str | os.PathLike[str] | pd.DataFrame | None = None,
    transactions: Transactions | None = None,
    as_of: Any = None,
    contacts: Transactions | None = None,
    contacts_id_col: str | None = None,
    read: ReadOptions | None = None,
    holdout_days: int | None = None,
    evaluation: Any = None,
    title: str | None = None,
    currency: str | None = None,
    store: Any = None,
    trust_model_file: bool = False,
    progress: Progress | None = None,
) -> ReportResult:
    """A self-contained HTML report of a model (and its figures as PNG) in ``output``.

    The report shows ``scored`` (a scored table, path or DataFrame) or scores
    ``transactions`` at ``as_of`` itself; ``holdout_days`` adds the holdout evaluation
    (or pass ``evaluation``, what :meth:`~clvcast.pipeline.CLVPipeline.evaluate` or
    :func:`~clvcast.jobs.train` returned).
    """
    from clvcast.data import read_transactions
    from clvcast.html_report import write_report
    from clvcast.output import read_scored

    if scored is None and transactions is None:
        raise InputError("clvcast report needs --scored PATH or --transactions PATH --as-of DATE.")
    if (transactions is not None or holdout_days) and not (
        transactions is not None and as_of is not None
    ):
        raise InputError("--transactions and --as-of go together (and --holdout-days needs them).")
    check_limits(holdout_days=holdout_days)
    steps = _Steps(progress)
    with steps(f"loading {model if isinstance(model, str) else 'the model'}"):
        loaded = load(model, store, trust_model_file=trust_model_file)
    purchase_log, table_contacts = None, None
    if transactions is not None:
        read = with_as_of(read, as_of)
        purchase_log = read_transactions(transactions, **asdict(read))
        table_contacts = _contacts(contacts, read, contacts_id_col)
    if scored is not None:
        table = scored if isinstance(scored, pd.DataFrame) else read_scored(str(scored))
        versions = set(table.get("model_version", pd.Series(dtype=str)).dropna().astype(str))
        if versions and versions != {loaded.version}:
            warnings.warn(
                f"{_source_name(scored)} was scored with version(s) {sorted(versions)}, the "
                f"report's model is version {loaded.version}",
                ModelWarning,
                stacklevel=2,
            )
    else:
        with steps("scoring every contact"):
            table = loaded.pipeline.score(purchase_log, as_of, contacts=table_contacts)
    if holdout_days:
        with steps(f"evaluating on a {holdout_days}-day holdout"):
            evaluation = loaded.pipeline.evaluate(purchase_log, as_of, holdout_days)
    with steps(f"writing the report to {output}"):
        path = write_report(
            loaded.pipeline,
            table,
            output,
            evaluation=evaluation,
            title=title,
            model_name=loaded.name,
            model_version=loaded.version,
            currency=currency,
        )
    return ReportResult(path, loaded.name, loaded.version)
