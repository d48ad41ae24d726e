"""MLflow: one run per training, a pyfunc model per run, registered versions and aliases.

The default store lives in the working directory, ``mlruns/mlflow.db`` (SQLite) with run
artifacts under ``mlruns/artifacts``, so it works with no server (MLflow 3.13+ refuses the
plain file store). ``MLFLOW_TRACKING_URI`` or an explicit ``tracking_uri`` (for example a
``http://`` MLflow server) overrides it.

The logged model is a ``mlflow.pyfunc`` model whose only artifact is the project's own
model file (:meth:`clvcast.pipeline.CLVPipeline.save`), so the same pipeline loads with or
without MLflow. Versions are addressed as ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``;
there are no stages. The ``champion`` alias moves to a new version only when (1) its churn
risk does not rank worse than its own BG/NBD baseline on the holdout (overall and on
high-value contacts), (2) its purchase forecast's holdout aggregate error is within
:data:`MAX_AGGREGATE_ERROR_PCT` percent, and (3) its holdout metrics are not worse than the
current champion's (purchase RMSE not higher, churn ROC-AUC not lower); ``force_alias``
overrides all three, and the reason is kept either way.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clvcast import __version__
from clvcast.data import read_transactions
from clvcast.errors import ClvcastError
from clvcast.pipeline import (
    CLVPipeline,
    LoadedModel,
    is_mlflow_reference,
    load_model_file,
)

log = logging.getLogger(__name__)

DEFAULT_STORE_DIR = Path("mlruns")
DEFAULT_MODEL_NAME = "clvcast"
DEFAULT_EXPERIMENT = "clvcast"
CHAMPION_ALIAS = "champion"
# (metric, direction): the champion rule compares these; +1 = higher is better.
CHAMPION_METRICS = (("holdout_rmse", -1), ("churn_roc_auc", +1))
_TOLERANCE = 1e-9
# A forecast that misses the holdout's total purchases by more than this is not trusted
# with the alias. On the real logs of benchmarks/bench_accuracy.py the 90/180-day error was
# +2.6% to +25.3% (README); beyond 30% the model misreads the data (a wrong as-of date, a
# shop that changed, a log with a gap).
MAX_AGGREGATE_ERROR_PCT = 30.0


class TrackingError(ClvcastError):
    """MLflow could not do what was asked (unknown model, alias or store)."""

    exit_code = 2


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: argument, then ``MLFLOW_TRACKING_URI``, then
    ``mlruns/mlflow.db`` in the working directory (made only when a run is logged there)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(DEFAULT_STORE_DIR / 'mlflow.db').resolve()}"


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").partition("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it if needed; a SQLite store keeps its artifacts beside
    the database file (``<folder>/artifacts``) rather than in the working directory."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    database = sqlite_database(uri)
    if database is not None:
        # a relative database path (sqlite:///mlruns.db) is relative to the working directory
        location = (database.resolve().parent / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


class ClvcastPyfuncModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: transactions in, scored contact table out.

    ``model_input`` has ``contact_id``, ``date`` and ``amount`` columns; ``params`` may give
    ``as_of`` (default: the last purchase date in the input).
    """

    def load_context(self, context: Any) -> None:
        self.pipeline = CLVPipeline.load(context.artifacts["pipeline"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        as_of = (params or {}).get("as_of") or str(pd.to_datetime(model_input["date"]).max())
        purchases = read_transactions(model_input, as_of=as_of).purchases
        return _plain_types(self.pipeline.score(purchases, as_of))


def _plain_types(table: pd.DataFrame) -> pd.DataFrame:
    """Nullable ints as floats and text as str, so MLflow schemas can describe the table."""
    result = table.copy()
    for column in result.columns:
        dtype = result[column].dtype
        if isinstance(dtype, pd.Int64Dtype):
            result[column] = result[column].astype("float64")
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            result[column] = result[column].astype(object).where(result[column].notna(), None)
    return result


@dataclass
class TrainingRun:
    """What :meth:`MlflowStore.log_training` did."""

    run_id: str
    model_uri: str
    model_name: str | None
    version: str | None
    alias: str | None
    alias_moved: bool
    alias_reason: str
    tracking_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def champion_decision(
    client: MlflowClient, name: str, alias: str, metrics: dict[str, float]
) -> tuple[bool, str]:
    """Whether ``alias`` may move to a version with ``metrics``, and why (one sentence)."""
    problems = own_problems(metrics)
    if problems:
        return False, "not moved: " + "; ".join(problems) + "; pass --force-alias to move it"
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return True, f"no version had alias '{alias}' yet"
    old = client.get_run(current.run_id).data.metrics
    missing = [m for m, _ in CHAMPION_METRICS if m not in metrics or m not in old]
    if missing:
        return False, (
            f"cannot compare with version {current.version} ({', '.join(missing)} missing: "
            "train with --holdout-days); pass --force-alias to move it anyway"
        )
    worse = []
    for metric, direction in CHAMPION_METRICS:
        if direction * (metrics[metric] - old[metric]) < -_TOLERANCE:
            worse.append(f"{metric} {metrics[metric]:.4f} vs {old[metric]:.4f}")
    if worse:
        return False, (
            f"kept on version {current.version}: the new version is worse on " + "; ".join(worse)
        )
    comparison = ", ".join(f"{m} {metrics[m]:.4f} vs {old[m]:.4f}" for m, _ in CHAMPION_METRICS)
    return True, f"not worse than version {current.version} ({comparison})"


def own_problems(metrics: dict[str, float]) -> list[str]:
    """Reasons a version is unfit for the alias on its own holdout, whatever the champion."""
    problems = []
    for suffix, population in (("", "all contacts"), ("_high_value", "high-value contacts")):
        ours = metrics.get(f"churn_roc_auc{suffix}")
        base = metrics.get(f"churn_baseline_bgnbd_no_purchase_roc_auc{suffix}")
        if ours is not None and base is not None and ours < base - _TOLERANCE:
            problems.append(
                f"its churn risk ranks worse than BG/NBD's own P(no purchase) on {population} "
                f"(holdout ROC-AUC {ours:.4f} vs {base:.4f})"
            )
    error = metrics.get("holdout_aggregate_error_pct")
    if error is not None and abs(error) > MAX_AGGREGATE_ERROR_PCT:
        problems.append(
            f"its forecast misses the holdout's total purchases by {error:+.1f}% "
            f"(limit {MAX_AGGREGATE_ERROR_PCT:.0f}%)"
        )
    return problems


def _flat_params(pipeline: CLVPipeline, extra: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's parameters (its parts' as ``pipeline.forecaster__horizon_days``) and
    ``extra``, as MLflow run parameters."""
    params = {
        f"pipeline.{k}": v
        for k, v in pipeline.get_params().items()
        if not hasattr(v, "get_params")  # a part: its parameters are listed one by one
    }
    params.update(extra)
    return {k: ("" if v is None else v) for k, v in params.items()}


class MlflowStore:
    """One MLflow tracking store (and its model registry), addressed explicitly.

    Every call goes through this store's own :class:`~mlflow.tracking.MlflowClient`: clvcast
    never sets MLflow's process-wide tracking URI nor touches ``sys.stdout``, so a notebook's
    own MLflow settings are the same after any clvcast call, failed ones included.
    ``uri`` defaults to ``MLFLOW_TRACKING_URI``, else ``mlruns/mlflow.db`` in the working
    directory.
    """

    def __init__(self, uri: str | None = None) -> None:
        self.uri = resolve_tracking_uri(uri)
        self._is_default = not uri and not os.environ.get("MLFLOW_TRACKING_URI")
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        """The store's MLflow client, opened on first use. Opening a SQLite store that is
        not there makes its database (and, for the default store, the ``mlruns`` folder):
        only a command that logs a run gets here with a new store (see
        :meth:`check_writable`, :meth:`existing_client`)."""
        return self._open()

    def _open(self) -> MlflowClient:
        if self._client is None:
            database = sqlite_database(self.uri)
            if database is not None and self._is_default:
                database.parent.mkdir(exist_ok=True)
            try:
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except MlflowException as exc:  # MLflow 3 refuses file:./mlruns stores, say
                raise TrackingError(
                    f"cannot use the MLflow store {self.uri}: {_first_line(exc)} Choose "
                    "another --tracking-uri (or MLFLOW_TRACKING_URI); the default is a SQLite "
                    "database in ./mlruns."
                ) from exc
        return self._client

    def existing_client(self) -> MlflowClient:
        """The client of a store that must hold something already (to load a model): a
        SQLite database that is not there is refused, not made empty (MLflow would make
        it, and its tables, in seconds, and then report that it holds no model)."""
        database = sqlite_database(self.uri)
        if self._client is None and database is not None and not database.is_file():
            raise TrackingError(
                f"no MLflow store at {database}: nothing was logged there. Train a model "
                "first (clvcast train), or point --tracking-uri (or MLFLOW_TRACKING_URI) at "
                "the store that holds it."
            )
        return self.client

    def check_writable(self) -> None:
        """Refuse now, before hours of work, a store a run could not be logged in; leave
        nothing behind. A SQLite database needs its folder (for the default store, a
        working directory to make ``mlruns`` in) and write access; any other store is
        opened, which checks its URI (a server is contacted only when a run is logged)."""
        database = sqlite_database(self.uri)
        if database is None:
            self._open()
            return
        if database.is_file():
            folder, what = database, "database"
        elif self._is_default and not database.parent.exists():
            folder, what = database.parent.parent, "working directory"
        else:
            folder, what = database.parent, "folder"
        if not folder.exists():
            raise TrackingError(
                f"cannot use the MLflow store {self.uri}: its folder {folder} does not exist. "
                "Create it, or choose another --tracking-uri."
            )
        if not os.access(folder, os.W_OK):
            raise TrackingError(
                f"cannot use the MLflow store {self.uri}: the {what} {folder} is not writable. "
                "Choose another --tracking-uri, or run from a folder you can write in."
            )

    def __repr__(self) -> str:
        return f"MlflowStore({self.uri!r})"

    @classmethod
    def of(cls, store: MlflowStore | str | None) -> MlflowStore:
        """``store`` itself, or the store at the tracking URI ``store`` (None: the default)."""
        return store if isinstance(store, cls) else cls(store)

    def log_training(
        self,
        pipeline: CLVPipeline,
        *,
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts: dict[str, Any],
        example: tuple[pd.DataFrame, pd.DataFrame] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        register_as: str | None = DEFAULT_MODEL_NAME,
        alias: str | None = None,
        force_alias: bool = False,
        version_tags: dict[str, str] | None = None,
        description: str | None = None,
    ) -> TrainingRun:
        """Log one run: params, metrics, artifacts and the pyfunc model; register and alias it.

        ``artifacts`` maps artifact file names to content: a matplotlib Figure (saved as
        PNG), bytes (written as they are), a DataFrame (CSV), a dict (JSON) or text.
        ``example`` (a few contacts' purchases and their scored rows) gives the pyfunc model
        its signature. The run is named ``run_name`` (default ``clvcast-<as-of>``); a
        registered version gets ``version_tags`` and ``description``.
        """
        client = self.client
        try:
            experiment_id = _experiment_id(client, experiment, self.uri)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot use the MLflow store {self.uri}: {_first_line(exc)}"
            ) from exc
        as_of = str(pipeline.as_of_.date())
        all_params = _flat_params(pipeline, params)
        run = client.create_run(experiment_id, run_name=run_name or f"clvcast-{as_of}")
        run_id = run.info.run_id
        try:
            client.log_batch(
                run_id,
                metrics=[
                    Metric(key, float(value), _now_ms(), 0)
                    for key, value in metrics.items()
                    if pd.notna(value)
                ],
                params=[Param(key, str(value)) for key, value in all_params.items()],
            )
            with tempfile.TemporaryDirectory(prefix="clvcast-run-") as folder:
                files = Path(folder) / "files"
                files.mkdir()
                for name, content in artifacts.items():
                    _write_artifact(files / name, content)
                client.log_artifacts(run_id, str(files))
                model_folder = Path(folder) / "model"
                _save_pyfunc(pipeline, model_folder, Path(folder), example, as_of)
                client.log_artifacts(run_id, str(model_folder), "model")
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        model_uri = f"runs:/{run_id}/model"
        version = None
        moved, reason = False, "not registered"
        if register_as:
            version = self._register(
                register_as, f"{run.info.artifact_uri}/model", run_id, version_tags, description
            )
            reason = "no alias asked for"
            if alias:
                moved, reason = champion_decision(client, register_as, alias, metrics)
                if force_alias and not moved:
                    moved, reason = True, f"forced ({reason})"
                if moved:
                    client.set_registered_model_alias(register_as, alias, version)
        return TrainingRun(
            run_id=run_id,
            model_uri=f"models:/{register_as}/{version}" if version else model_uri,
            model_name=register_as,
            version=version,
            alias=alias,
            alias_moved=moved,
            alias_reason=reason,
            tracking_uri=self.uri,
            metrics=dict(metrics),
            params=all_params,
        )

    def _register(
        self,
        name: str,
        source: str,
        run_id: str,
        tags: dict[str, str] | None,
        description: str | None,
    ) -> str:
        client = self.client
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        created = client.create_model_version(
            name,
            source,
            run_id=run_id,
            tags={key: str(value) for key, value in (tags or {}).items()},
            description=description,
        )
        return str(created.version)

    def load(self, model: str, *, trust_model_file: bool = False) -> LoadedModel:
        """The pipeline of ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or
        ``runs:/RUN_ID/model`` in this store (see :func:`load_model`)."""
        name, version = _resolve_version(self.existing_client(), model, self.uri)
        with tempfile.TemporaryDirectory(prefix="clvcast-model-") as folder:
            try:
                local = self._download(model, name, version, folder)
            except MlflowException as exc:
                raise TrackingError(
                    f"cannot load {model} from {self.uri}: {_first_line(exc)}"
                ) from exc
            files = sorted((local / "artifacts").glob("pipeline.*"))
            if not files:
                raise TrackingError(
                    f"{model} in {self.uri} is not a clvcast model (no artifacts/pipeline file)."
                )
            pipeline = CLVPipeline.load(files[0], trust_model_file=trust_model_file)
        return LoadedModel(pipeline, name, version, model)

    def _download(self, model: str, name: str, version: str, folder: str) -> Path:
        """The model's folder, downloaded through this store's client only."""
        if model.startswith("runs:/"):
            run_id, _, path = model.removeprefix("runs:/").partition("/")
            return Path(self.client.download_artifacts(run_id, path or "model", folder))
        source = self.client.get_model_version(name, version).source
        if source.startswith("models:/"):  # a logged model (MLflow 3's log_model)
            model_id = source.removeprefix("models:/").strip("/")
            source = self.client.get_logged_model(model_id).artifact_location
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=folder, tracking_uri=self.uri
            )
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _save_pyfunc(
    pipeline: CLVPipeline,
    destination: Path,
    scratch: Path,
    example: tuple[pd.DataFrame, pd.DataFrame] | None,
    as_of: str,
) -> None:
    """The pyfunc model folder: MLmodel, the wrapper as code (no pickle) and the safe
    pipeline file; with ``example`` (purchases in, their scored rows out), its signature
    and input example."""
    model_file = pipeline.save(scratch / MODEL_ARTIFACT)
    signature, input_example = None, None
    if example is not None and len(example[0]):
        purchases, scored = (frame.reset_index(drop=True) for frame in example)
        signature = mlflow.models.infer_signature(
            purchases, _plain_types(scored), params={"as_of": as_of}
        )
        input_example = (purchases, {"as_of": as_of})
    mlflow.pyfunc.save_model(
        path=str(destination),
        python_model=str(PYFUNC_MODEL_CODE),
        artifacts={"pipeline": str(model_file)},
        signature=signature,
        input_example=input_example,
        pip_requirements=[f"clvcast=={__version__}"],
    )


def _write_artifact(path: Path, content: Any) -> None:
    if isinstance(content, bytes):  # a file's contents as they are (a rendered PNG)
        path.write_bytes(content)
    elif hasattr(content, "savefig"):
        content.savefig(path, dpi=110, format="png")
    elif isinstance(content, pd.DataFrame):
        content.to_csv(path)
    elif isinstance(content, dict):
        path.write_text(json.dumps(content, indent=2, default=str))
    else:
        path.write_text(str(content))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


MODEL_ARTIFACT = "pipeline.model"  # the safe model file inside the logged MLflow model
# The pyfunc model's code (MLflow's models from code): logged as a file, never imported here.
PYFUNC_MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


def load_model(
    model: str,
    tracking_uri: MlflowStore | str | None = None,
    *,
    trust_model_file: bool = False,
) -> LoadedModel:
    """Load a pipeline from ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/...``
    or a model file. Errors name the model, the alias or version, and what exists.

    From MLflow (``tracking_uri``: a :class:`MlflowStore` or its URI), the logged
    model's files are downloaded and its pipeline file is read by :meth:`CLVPipeline.load`,
    never through ``mlflow.pyfunc.load_model`` (which unpickles the wrapper): loading runs no
    code from the artifact store. Models logged by earlier clvcast versions hold a pickle and
    need ``trust_model_file=True`` (``--trust-model-file``).
    """
    if not is_mlflow_reference(model):
        return load_model_file(model, trust_model_file=trust_model_file)
    return MlflowStore.of(tracking_uri).load(model, trust_model_file=trust_model_file)


def _resolve_version(client: MlflowClient, model: str, uri: str) -> tuple[str, str]:
    if model.startswith("runs:/"):
        return "run", model.removeprefix("runs:/").split("/")[0]
    reference = model.removeprefix("models:/").strip("/")
    name, _, rest = reference.partition("@") if "@" in reference else reference.partition("/")
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        known = [m.name for m in client.search_registered_models()]
        raise TrackingError(
            f"no registered model '{name}' in the MLflow store {uri}; registered: "
            f"{known or 'none'}. "
            "Train one with `clvcast train --register-as NAME`."
        ) from exc
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    if "@" in reference:
        try:
            return name, str(client.get_model_version_by_alias(name, rest).version)
        except MlflowException as exc:
            aliases = sorted(client.get_registered_model(name).aliases)
            raise TrackingError(
                f"model '{name}' has no alias '{rest}'; its aliases: {aliases or 'none'}, "
                f"versions: {versions}. Use models:/{name}/VERSION or set the alias with "
                "`clvcast train --alias`."
            ) from exc
    if not rest.isdigit() or int(rest) not in versions:
        raise TrackingError(f"model '{name}' has no version '{rest}'; versions: {versions}.")
    return name, rest
