"""Model files that load without running code from the file.

A pickle (joblib) file can make its reader run any code, so a model file handed to
``--model``, or fetched from an MLflow artifact store, would have to be trusted like a
program. clvcast's model file is a zip archive instead:

- ``model.json``: a header (format, version, the clvcast version that wrote it) and the
  fitted state, in JSON with tags for the few non-JSON types (tuples, timestamps, Series,
  DataFrames, numeric arrays, non-finite floats) and for clvcast's own fitted classes;
- ``estimator-N.skops``: each fitted scikit-learn estimator (the churn classifier), in
  ``skops.io``'s format.

Loading builds objects only of the classes in :data:`ALLOWED_CLASSES` (clvcast's own,
by name, from clvcast's installed code) and loads the skops files with an explicit list of
trusted types (:data:`TRUSTED_ESTIMATOR_TYPES`): nothing in the file is executed. A file of
another kind is refused with one line. Pickle (joblib) model files of earlier clvcast versions load only
with ``trust_pickle=True`` (CLI: ``--trust-model-file``) and a warning.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvcast.atomic import atomic_path
from clvcast.errors import InputError, ModelWarning

MODEL_FORMAT = "clvcast.model"
MODEL_FORMAT_VERSION = 3  # 1: the joblib pickle; 2: the pipeline's settings were flat
READABLE_FORMAT_VERSIONS = (2, 3)
STATE_FILE = "model.json"
MAX_STATE_BYTES = 64 * 1024**2

# clvcast's fitted classes a model file may contain: (module, class name).
ALLOWED_CLASSES = frozenset(
    {
        ("clvcast.pipeline", "CLVPipeline"),
        ("clvcast.rfm", "RFMScorer"),
        ("clvcast.rfm", "ScoreBins"),
        ("clvcast.models.forecast", "CLVForecaster"),
        ("clvcast.models.bgnbd", "BetaGeoModel"),
        ("clvcast.models.gamma_gamma", "GammaGammaModel"),
        ("clvcast.churn.model", "ChurnModel"),
    }
)
# Types beyond skops' own safe defaults that the churn scorers need.
TRUSTED_ESTIMATOR_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "clvcast.churn.model.logistic_inputs",
]


def save_model_file(obj: Any, path: str | os.PathLike[str], header: dict[str, Any]) -> Path:
    """Write ``obj`` (a fitted pipeline) to ``path`` atomically, in the safe format."""
    estimators: dict[str, bytes] = {}
    document = {**header, "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION}
    document["state"] = _encode(obj, estimators)
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        archive.writestr(STATE_FILE, json.dumps(document, allow_nan=False), zipfile.ZIP_DEFLATED)
        for name, data in estimators.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
    return Path(path)


def load_model_file(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """The object saved by :func:`save_model_file`, built without running code from the file.

    Raises :class:`~clvcast.errors.InputError` (one line) for a missing file, a file of
    another kind, a newer format, or a pickle file without ``trust_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file not found: {path}.")
    if not zipfile.is_zipfile(path):
        return _load_pickle(path, trust_pickle)
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(STATE_FILE)
            if info.file_size > MAX_STATE_BYTES:
                raise InputError(f"{path} is not a clvcast model file (its state is too large).")
            document = json.loads(archive.read(STATE_FILE))
            _check_header(path, document)
            estimators = {
                name: archive.read(name) for name in archive.namelist() if name != STATE_FILE
            }
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(_not_a_model(path)) from exc
    try:
        return _decode(document["state"], estimators)
    except InputError:
        raise
    except Exception as exc:  # a damaged or hand-made file: never a traceback
        raise InputError(f"{path} is a damaged clvcast model file ({exc}); retrain it.") from exc


def _not_a_model(path: Path) -> str:
    return (
        f"{path} is not a clvcast model file; train one with `clvcast train` or CLVPipeline.save."
    )


def _check_header(path: Path, document: Any) -> None:
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise InputError(_not_a_model(path))
    version = document.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise InputError(
            f"{path} was saved in model format {version} (clvcast "
            f"{document.get('clvcast_version')}); this clvcast reads format "
            f"{MODEL_FORMAT_VERSION} (and {READABLE_FORMAT_VERSIONS[0]}). Retrain the model with this version."
        )


def _load_pickle(path: Path, trust_pickle: bool) -> Any:
    """An old joblib model file: loading it can run code stored in it, so only on request."""
    with open(path, "rb") as handle:
        start = handle.read(2)
    if start[:1] != b"\x80" and start[:1] not in (b"x", b"\x1f"):  # pickle, zlib, gzip
        raise InputError(_not_a_model(path))
    if not trust_pickle:
        raise InputError(
            f"{path} is a pickle (joblib) model file: loading it runs any code stored in it. "
            "If you made it yourself, pass --trust-model-file (trust_model_file=True) once "
            "and save it again in the safe format (clvcast train, or CLVPipeline.save)."
        )
    import joblib

    warnings.warn(
        f"{path} is a pickle model file, loaded because you trust it; save it again in the "
        "safe format (CLVPipeline.save) so that loading it cannot run code.",
        ModelWarning,
        2,
    )
    try:
        payload = joblib.load(path)
    except Exception as exc:  # joblib raises many kinds on foreign files
        raise InputError(f"{_not_a_model(path)} ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != "clvcast.pipeline":
        raise InputError(_not_a_model(path))
    if payload.get("format_version") != 1:
        raise InputError(
            f"{path} was saved in pipeline format {payload.get('format_version')}; this "
            "clvcast reads format 1 of pickle files. Retrain the model with this version."
        )
    return payload


# --- the tagged JSON ------------------------------------------------------------------------


def _encode(value: Any, estimators: dict[str, bytes]) -> Any:
    """``value`` as JSON, with tags for the types JSON lacks."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, estimators) for v in value]}
    if isinstance(value, list):
        return [_encode(v, estimators) for v in value]
    if isinstance(value, dict):
        return {
            "__items__": [
                [_encode(k, estimators), _encode(v, estimators)] for k, v in value.items()
            ]
        }
    if isinstance(value, pd.Timestamp):
        return {"__timestamp__": None if pd.isna(value) else value.isoformat()}
    if isinstance(value, pd.Series):
        return {
            "__series__": {
                "name": _encode(value.name, estimators),
                "dtype": str(value.dtype),
                "index": _encode(list(value.index), estimators),
                "values": _encode(value.tolist(), estimators),
            }
        }
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": {
                "index": _encode(list(value.index), estimators),
                "index_name": _encode(value.index.name, estimators),
                "columns": [
                    [
                        _encode(name, estimators),
                        str(value[name].dtype),
                        _encode(value[name].tolist(), estimators),
                    ]
                    for name in value.columns
                ],
            }
        }
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {
            "__array__": {
                "dtype": str(value.dtype),
                "shape": list(value.shape),
                "values": _encode(value.ravel().tolist(), estimators),
            }
        }
    kind = (type(value).__module__, type(value).__name__)
    if kind in ALLOWED_CLASSES:
        return {"__object__": ".".join(kind), "state": _encode(dict(vars(value)), estimators)}
    if type(value).__module__.startswith("sklearn."):
        import skops.io

        name = f"estimator-{len(estimators)}.skops"
        estimators[name] = skops.io.dumps(value)
        return {"__skops__": name}
    raise TypeError(f"cannot save a {kind[0]}.{kind[1]} in a clvcast model file")


_SAFE_DTYPES = ("int", "uint", "float", "bool", "object", "str", "string", "datetime64")


def _decode(value: Any, estimators: dict[str, bytes]) -> Any:
    """The inverse of :func:`_encode`; builds only allowed classes and trusted estimators."""
    if isinstance(value, list):
        return [_decode(v, estimators) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__object__", "state"}:
        return _build(value["__object__"], _decode(value["state"], estimators))
    if len(value) == 1:
        tag = next(iter(value))
        body = value[tag]
        if tag == "__float__":
            return float(body)
        if tag == "__tuple__":
            return tuple(_decode(v, estimators) for v in body)
        if tag == "__items__":
            return {_decode(k, estimators): _decode(v, estimators) for k, v in body}
        if tag == "__timestamp__":
            return pd.NaT if body is None else pd.Timestamp(body)
        if tag == "__series__":
            series = pd.Series(
                _decode(body["values"], estimators),
                index=_decode(body["index"], estimators),
                name=_decode(body["name"], estimators),
            )
            return series.astype(_dtype(body["dtype"]))
        if tag == "__frame__":
            columns = {
                _decode(name, estimators): pd.Series(_decode(values, estimators)).astype(
                    _dtype(dtype)
                )
                for name, dtype, values in body["columns"]
            }
            frame = pd.DataFrame(columns)
            frame.index = pd.Index(_decode(body["index"], estimators))
            frame.index.name = _decode(body["index_name"], estimators)
            return frame
        if tag == "__array__":
            data = np.array(_decode(body["values"], estimators), dtype=_dtype(body["dtype"]))
            return data.reshape(body["shape"])
        if tag == "__skops__":
            return _load_estimator(estimators[body])
    raise ValueError(f"unknown entry {sorted(value)[:3]}")


def _dtype(text: str) -> Any:
    if not text.startswith(_SAFE_DTYPES):
        raise ValueError(f"unexpected dtype {text!r}")
    return pd.api.types.pandas_dtype(text)


def _build(qualified: str, state: dict[str, Any]) -> Any:
    module, _, name = qualified.rpartition(".")
    if (module, name) not in ALLOWED_CLASSES:
        raise ValueError(f"class {qualified} is not allowed in a model file")
    cls = getattr(importlib.import_module(module), name)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _load_estimator(data: bytes) -> Any:
    import skops.io

    untrusted = [
        t for t in skops.io.get_untrusted_types(data=data) if t not in TRUSTED_ESTIMATOR_TYPES
    ]
    if untrusted:
        raise InputError(
            f"the model file holds an estimator with types clvcast does not trust "
            f"({', '.join(untrusted[:3])}); it was not loaded. Retrain the model."
        )
    return skops.io.loads(data, trusted=TRUSTED_ESTIMATOR_TYPES)
