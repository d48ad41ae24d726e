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

import contextlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clvcast import __version__
from clvcast.data import read_transactions
from clvcast.errors import ClvcastError, InputError
from clvcast.pipeline import CLVPipeline

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
    """The tracking URI to use: argument, then ``MLFLOW_TRACKING_URI``, then ``mlruns/``."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    DEFAULT_STORE_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE_DIR / 'mlflow.db').resolve()}"


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it if needed; a SQLite store keeps its artifacts beside
    the database file (``<folder>/artifacts``) rather than in the working directory."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
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
    """What :func:`log_training_run` did."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "registered_model": self.model_name,
            "version": self.version,
            "alias": self.alias,
            "alias_moved": self.alias_moved,
            "alias_reason": self.alias_reason,
            "tracking_uri": self.tracking_uri,
            "params": self.params,
            "metrics": self.metrics,
        }


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
    params = {f"pipeline.{k}": v for k, v in pipeline.get_params().items()}
    params.update(extra)
    return {k: ("" if v is None else v) for k, v in params.items()}


def log_training_run(
    pipeline: CLVPipeline,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Any],
    input_example: pd.DataFrame,
    experiment: str = DEFAULT_EXPERIMENT,
    register_as: str | None = DEFAULT_MODEL_NAME,
    alias: str | None = None,
    force_alias: bool = False,
    tracking_uri: str | None = None,
) -> TrainingRun:
    """Log one run: params, metrics, artifacts and the pyfunc model; register and alias it.

    ``artifacts`` maps artifact file names to content: a matplotlib Figure (saved as PNG),
    a DataFrame (CSV), a dict (JSON) or text.
    """
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        experiment_id = _experiment_id(client, experiment, uri)
    except MlflowException as exc:
        raise TrackingError(f"cannot use the MLflow store {uri}: {_first_line(exc)}") from exc
    all_params = _flat_params(pipeline, params)
    # MLflow prints "View run at ..." links to stdout for server stores; library code must
    # not print (and `--json` output must stay JSON), so its chatter is captured.
    with (
        contextlib.redirect_stdout(io.StringIO()),
        tempfile.TemporaryDirectory() as folder,
        mlflow.start_run(experiment_id=experiment_id) as run,
    ):
        mlflow.log_params(all_params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if pd.notna(v)})
        for name, content in artifacts.items():
            _log_artifact(Path(folder), name, content)
        model_file = pipeline.save(Path(folder) / MODEL_ARTIFACT)
        example = input_example.reset_index(drop=True)
        as_of = str(pipeline.as_of_.date())
        output = ClvcastPyfuncModel()
        output.pipeline = pipeline
        signature = mlflow.models.infer_signature(
            example, output.predict(None, example, {"as_of": as_of}), params={"as_of": as_of}
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ClvcastPyfuncModel(),
            artifacts={"pipeline": str(model_file)},
            signature=signature,
            pip_requirements=[f"clvcast=={__version__}"],
        )
        run_id = run.info.run_id
    version = None
    moved, reason = False, "not registered"
    if register_as:
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints progress lines there
            registered = mlflow.register_model(info.model_uri, register_as)
        version = str(registered.version)
        reason = "no alias asked for"
        if alias:
            moved, reason = champion_decision(client, register_as, alias, metrics)
            if force_alias and not moved:
                moved, reason = True, f"forced ({reason})"
            if moved:
                client.set_registered_model_alias(register_as, alias, version)
    return TrainingRun(
        run_id=run_id,
        model_uri=f"models:/{register_as}/{version}" if version else info.model_uri,
        model_name=register_as,
        version=version,
        alias=alias,
        alias_moved=moved,
        alias_reason=reason,
        tracking_uri=uri,
        metrics=dict(metrics),
        params=all_params,
    )


def _log_artifact(folder: Path, name: str, content: Any) -> None:
    path = folder / name
    if hasattr(content, "savefig"):
        content.savefig(path, dpi=110, format="png")
    elif isinstance(content, pd.DataFrame):
        content.to_csv(path)
    elif isinstance(content, dict):
        path.write_text(json.dumps(content, indent=2, default=str))
    else:
        path.write_text(str(content))
    mlflow.log_artifact(str(path))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class LoadedModel:
    """A pipeline and where it came from (for the scored table's model columns)."""

    pipeline: CLVPipeline
    name: str
    version: str
    uri: str


MODEL_ARTIFACT = "pipeline.model"  # the safe model file inside the logged MLflow model


def load_model(
    model: str, tracking_uri: str | None = None, *, trust_model_file: bool = False
) -> LoadedModel:
    """Load a pipeline from ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/...``
    or a model file. Errors name the model, the alias or version, and what exists.

    From MLflow, the logged model's files are downloaded and its pipeline file is read by
    :meth:`CLVPipeline.load`, never through ``mlflow.pyfunc.load_model`` (which unpickles
    the wrapper): loading runs no code from the artifact store. Models logged by earlier
    clvcast versions hold a pickle and need ``trust_model_file=True`` (``--trust-model-file``).
    """
    if not model.startswith(("models:/", "runs:/")):
        if "://" in model or model.startswith(("models:", "runs:")):
            raise InputError(
                f"--model {model}: use models:/NAME@ALIAS, models:/NAME/VERSION, "
                "runs:/RUN_ID/model or the path of a model file."
            )
        pipeline = CLVPipeline.load(model, trust_model_file=trust_model_file)
        return LoadedModel(pipeline, Path(model).stem, "file", str(Path(model)))
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    name, version = _resolve_version(client, model)
    with tempfile.TemporaryDirectory(prefix="clvcast-model-") as folder:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # download progress bars
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=model, dst_path=folder, tracking_uri=uri
                    )
                )
        except MlflowException as exc:
            raise TrackingError(f"cannot load {model} from {uri}: {_first_line(exc)}") from exc
        files = sorted((local / "artifacts").glob("pipeline.*"))
        if not files:
            raise TrackingError(
                f"{model} in {uri} is not a clvcast model (no artifacts/pipeline file)."
            )
        pipeline = CLVPipeline.load(files[0], trust_model_file=trust_model_file)
    return LoadedModel(pipeline, name, version, model)


def _resolve_version(client: MlflowClient, model: str) -> tuple[str, str]:
    if model.startswith("runs:/"):
        return "run", model.removeprefix("runs:/").split("/")[0]
    reference = model.removeprefix("models:/").strip("/")
    name, _, rest = reference.partition("@") if "@" in reference else reference.partition("/")
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        known = [m.name for m in client.search_registered_models()]
        raise TrackingError(
            f"no registered model '{name}' in the MLflow store; registered: {known or 'none'}. "
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
