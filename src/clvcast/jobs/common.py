"""What the jobs share: progress steps, settings, inputs and the preflight of outputs."""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.data import ReadOptions, read_contacts, source_name
from clvcast.data.chunks import DEFAULT_CHURN_SAMPLE_CONTACTS
from clvcast.engines import EngineSettings
from clvcast.errors import InputError
from clvcast.limits import check_limits

Progress = Callable[[str], None]
Transactions = str | os.PathLike[str] | pd.DataFrame

DEFAULT_EXPERIMENT = "clvcast"
DEFAULT_MODEL_NAME = "clvcast"


class _Steps:
    """Long steps as progress lines: ``message ...`` then ``message: done in 1.2 s``."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def note(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    @contextlib.contextmanager
    def __call__(self, message: str) -> Iterator[None]:
        started = time.perf_counter()
        self.note(f"{message} ...")
        yield
        self.note(f"{message}: done in {time.perf_counter() - started:.1f} s")


def import_meanwhile(modules: tuple[str, ...]) -> threading.Thread | None:
    """Start importing ``modules`` on a thread, and return at once.

    A job reads its input first, in DuckDB, which works on every core without holding the
    GIL, and only then needs its heavy libraries (SciPy for the models: about 0.25 s of
    every ``clvcast forecast``). Imported meanwhile, they are there when the job gets to
    them: its own ``import`` statement waits for the thread if it has not finished yet.
    Start it only after the job's own imports for the read are done, so that the reading
    thread imports nothing the other one does (Python's import locks keep two threads that
    need one module apart, but two that each hold what the other needs would stop with an
    error). An import that fails here is left for the job's own ``import`` to raise, in its
    place, with the usual message.
    """
    if not modules:
        return None

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the job's own import raises it, in place
                return

    thread = threading.Thread(target=load, name="clvcast-imports")
    thread.start()
    return thread


@dataclass(frozen=True)
class TrainConfig:
    """What to train: the pipeline's settings, the holdout and the churn sample.

    ``holdout_days`` (None = no evaluation): the forecast and the churn model are
    evaluated on copies trained up to ``as_of - holdout_days`` against the last
    ``holdout_days``; the champion rule needs these metrics. Limits: :mod:`clvcast.limits`.
    """

    horizon_days: float = 365.0
    discount_rate_monthly: float = 0.01
    churn_horizon_days: int = 90
    monetary_basis: str = "total"
    penalizer: float = 0.0
    holdout_days: int | None = None
    churn_sample_contacts: int = DEFAULT_CHURN_SAMPLE_CONTACTS

    def check(self) -> None:
        from clvcast.rfm import check_monetary_basis

        check_limits(
            horizon_days=self.horizon_days,
            discount_rate_monthly=self.discount_rate_monthly,
            churn_horizon_days=self.churn_horizon_days,
            penalizer=self.penalizer,
            holdout_days=self.holdout_days,
            churn_sample_contacts=self.churn_sample_contacts,
        )
        check_monetary_basis(self.monetary_basis)

    def pipeline(self) -> Any:
        """A new, unfitted :class:`~clvcast.pipeline.CLVPipeline` with these settings."""
        from clvcast.churn import ChurnModel
        from clvcast.models import CLVForecaster
        from clvcast.pipeline import CLVPipeline
        from clvcast.rfm import RFMScorer

        return CLVPipeline(
            scorer=RFMScorer(monetary_basis=self.monetary_basis),
            forecaster=CLVForecaster(
                horizon_days=self.horizon_days,
                discount_rate_monthly=self.discount_rate_monthly,
                penalizer=self.penalizer,
            ),
            churn_model=ChurnModel(horizon_days=self.churn_horizon_days),
            churn_sample_contacts=self.churn_sample_contacts,
        )


def _engine(
    engine: str, spark_master: str | None, chunk_contacts: int, work_dir: str | None
) -> EngineSettings:
    settings = EngineSettings(engine, spark_master, chunk_contacts, work_dir)
    settings.check()
    return settings


def _contacts(
    contacts: Transactions | None, read: ReadOptions, id_col: str | None
) -> pd.DataFrame | None:
    """The contacts table, read like the transactions (separator, encoding, id case)."""
    if contacts is None:
        return None
    from clvcast.contact_table import check_contact_attributes

    table = read_contacts(
        contacts,
        contact_col=id_col or read.contact_col,
        sep=read.sep,
        encoding=read.encoding,
        id_case=read.id_case,
    )
    check_contact_attributes(table)
    return table


def check_not_an_input(output: str | os.PathLike[str], inputs: dict[str, object]) -> None:
    """Refuse an output path that is one of the job's input files (it would replace it).

    ``inputs`` maps each input's option name (``transactions``...) to its value; values
    that are not paths (DataFrames, ``models:/`` URIs, None) are skipped.
    """
    target = Path(output).expanduser().resolve()
    for option, value in inputs.items():
        if not isinstance(value, str | os.PathLike) or not str(value):
            continue
        text = str(value)
        if "://" in text or text.startswith(("models:", "runs:")):
            continue
        source = Path(text).expanduser().resolve()
        same = source == target
        if not same and source.exists() and target.exists():
            same = os.path.samefile(source, target)
        if same:
            raise InputError(
                f"the output {output} is the --{option.replace('_', '-')} input file; writing "
                "it would replace the input. Write the output to another path."
            )


def check_output_file(path: str | os.PathLike[str], inputs: dict[str, object]) -> None:
    """A table file that can be written (format known, folder exists and is writable,
    not a folder) and is none of the inputs."""
    from clvcast.atomic import check_writable
    from clvcast.output import table_format

    table_format(str(path))
    check_not_an_input(path, inputs)
    check_writable(path)


def _check_plots_folder(folder: str | os.PathLike[str] | None) -> None:
    if folder is not None and not Path(folder).is_dir():
        raise InputError(f"--plots {folder}: folder does not exist; create it first.")


def save_figures(figures: dict[str, Any], folder: str | os.PathLike[str]) -> list[Path]:
    """Write each Figure as ``folder/name`` (PNG, atomically); return the paths."""
    from clvcast.atomic import atomic_path

    written = []
    for name, figure in figures.items():
        path = Path(folder) / name
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
        written.append(path)
    return written


def _source_name(transactions: Transactions, read: ReadOptions | None = None) -> str:
    """The input's name for run parameters and tags: the file name, or ``read.name``."""
    if read is not None and read.name:
        return read.name
    return source_name(transactions)


def load(model: Any, store: Any = None, *, trust_model_file: bool = False) -> Any:
    """A :class:`~clvcast.pipeline.LoadedModel` from a URI, a model file path, a fitted
    pipeline or a LoadedModel."""
    from clvcast.pipeline import CLVPipeline, LoadedModel, is_mlflow_reference, load_model_file

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, CLVPipeline):
        return LoadedModel(model, "pipeline", "memory", "in memory")
    if not is_mlflow_reference(str(model)):  # a model file: no MLflow import (1.5 s)
        return load_model_file(str(model), trust_model_file=trust_model_file)
    from clvcast.tracking import load_model

    return load_model(str(model), store, trust_model_file=trust_model_file)
