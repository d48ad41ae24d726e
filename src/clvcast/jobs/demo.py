"""demo: the main job on the CDNOW data that ships with lifetimes, start to end."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clvcast.data import ReadOptions, load_cdnow_master
from clvcast.jobs.common import Progress, TrainConfig
from clvcast.jobs.reporting import report
from clvcast.jobs.scoring import PredictResult, predict
from clvcast.jobs.training import TrainResult, train

DEMO_AS_OF = "1998-06-30"
DEMO_CONFIG = TrainConfig(holdout_days=180)
CHAMPION = "champion"


@dataclass
class DemoResult:
    """What :func:`demo` did and where its files are."""

    trained: TrainResult
    scored: PredictResult
    parquet: str
    csv: str
    report_path: Path


def demo(
    output_dir: str | os.PathLike[str] = "scored",
    *,
    store: Any = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Train on CDNOW with a 180-day holdout, register a version and alias it champion,
    batch-predict with ``models:/clvcast@champion`` to Parquet and CSV in ``output_dir``,
    and write the HTML report there. Saves a model file too when ``models/`` exists."""
    from clvcast.output import write_scored
    from clvcast.tracking import MlflowStore

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    mlflow_store = MlflowStore.of(store)
    transactions = load_cdnow_master()
    read = ReadOptions(date_format="%Y%m%d", name="CDNOW_master.txt")
    save = Path("models") / "clvcast.model" if Path("models").is_dir() else None
    trained = train(
        transactions,
        as_of=DEMO_AS_OF,
        config=DEMO_CONFIG,
        read=read,
        store=mlflow_store,
        alias=CHAMPION,
        save=save,
        progress=progress,
    )
    scored = predict(
        f"models:/{trained.model_name}@{CHAMPION}",
        transactions,
        as_of=DEMO_AS_OF,
        read=read,
        store=mlflow_store,
        progress=progress,
    )
    parquet = write_scored(scored.table, str(out / "cdnow_contacts.parquet"))
    csv = write_scored(scored.table, str(out / "cdnow_contacts.csv"))
    made = report(
        f"models:/{trained.model_name}/{scored.model_version}",
        output=out / "report",
        scored=scored.table,
        evaluation=trained.evaluation,
        store=mlflow_store,
        progress=progress,
    )
    return DemoResult(trained, scored, parquet, csv, made.path)
