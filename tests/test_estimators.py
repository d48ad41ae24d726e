"""The scikit-learn contract, checked the same way on every clvcast estimator: clone, every
parameter settable, ``fit`` returns self, NotFittedError before ``fit``, fitted state ending
in ``_``, a joblib round trip that predicts the same, and a clvcast model file for the pipeline."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from clvcast.churn import ChurnModel
from clvcast.errors import NotFittedError
from clvcast.models import BetaGeoModel, CLVForecaster, GammaGammaModel
from clvcast.pipeline import CLVPipeline
from clvcast.rfm import RFMScorer
from clvcast.summary import summarize

AS_OF = pd.Timestamp("1998-06-30")


@pytest.fixture(scope="module")
def data(cdnow_log):
    """The first 3,000 CDNOW customers: their purchases and summary."""
    purchases = cdnow_log.purchases
    purchases = purchases[purchases["contact_id"] <= "03000"].reset_index(drop=True)
    return purchases, summarize(purchases, AS_OF)


@dataclass
class Case:
    """One estimator: how to build, fit and use it, and a parameter to set."""

    name: str
    make: Any
    fit: Any  # (estimator, purchases, summary) -> fit's return value
    use: Any  # (fitted estimator, purchases, summary) -> a DataFrame or Series
    parameter: tuple[str, Any]


CASES = [
    Case(
        "RFMScorer",
        lambda: RFMScorer(),
        lambda e, p, s: e.fit(s),
        lambda e, p, s: e.transform(s),
        ("monetary_basis", "average"),
    ),
    Case(
        "BetaGeoModel",
        lambda: BetaGeoModel(),
        lambda e, p, s: e.fit(s),
        lambda e, p, s: e.p_alive(s),
        ("penalizer", 0.001),
    ),
    Case(
        "GammaGammaModel",
        lambda: GammaGammaModel(),
        lambda e, p, s: e.fit(s),
        lambda e, p, s: e.expected_order_value(s),
        ("penalizer", 0.001),
    ),
    Case(
        "CLVForecaster",
        lambda: CLVForecaster(),
        lambda e, p, s: e.fit(s),
        lambda e, p, s: e.predict(s),
        ("horizon_days", 180.0),
    ),
    Case(
        "ChurnModel",
        lambda: ChurnModel(n_cutoffs=3, n_threads=1),
        lambda e, p, s: e.fit(p, AS_OF),
        lambda e, p, s: e.score(p, AS_OF),
        ("spacing_days", 21),
    ),
    Case(
        "CLVPipeline",
        lambda: CLVPipeline(churn_model=ChurnModel(n_cutoffs=3, n_threads=1)),
        lambda e, p, s: e.fit(p, AS_OF),
        lambda e, p, s: e.score(p, AS_OF),
        ("forecaster__horizon_days", 180.0),
    ),
]


@pytest.fixture(scope="module")
def fitted(data):
    """Each estimator fitted once, with what fit returned."""
    purchases, summary = data
    made = {}
    for case in CASES:
        estimator = case.make()
        made[case.name] = (estimator, case.fit(estimator, purchases, summary))
    return made


def _plain(params: dict) -> dict:
    """Parameters without the parts themselves (a clone has copies; their parameters are
    listed one by one)."""
    return {k: v for k, v in params.items() if not hasattr(v, "get_params")}


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        pd.testing.assert_series_equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_clone_and_every_parameter_settable(case):
    estimator = case.make()
    params = estimator.get_params()
    copy = clone(estimator)
    assert copy is not estimator and _plain(copy.get_params()) == _plain(params)
    name, value = case.parameter
    assert estimator.set_params(**{name: value}) is estimator
    assert estimator.get_params()[name] == value
    for key, current in params.items():  # each parameter round-trips through set_params
        if key != name:
            assert clone(estimator).set_params(**{key: current}).get_params()[key] == current


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_not_fitted_before_fit(case, data):
    purchases, summary = data
    with pytest.raises(NotFittedError):
        case.use(case.make(), purchases, summary)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fit_returns_self_and_learns_state_ending_in_underscore(case, fitted):
    estimator, returned = fitted[case.name]
    assert returned is estimator
    learned = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    assert learned, f"{case.name} stores no fitted attribute ending in _"
    assert not set(learned) & set(estimator.get_params())  # parameters stay as given


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_joblib_round_trip_predicts_the_same(case, fitted, data):
    purchases, summary = data
    estimator, _ = fitted[case.name]
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    _same(case.use(estimator, purchases, summary), case.use(loaded, purchases, summary))


def test_the_pipeline_model_file_round_trip_predicts_the_same(fitted, data, tmp_path):
    purchases, summary = data
    pipeline, _ = fitted["CLVPipeline"]
    loaded = CLVPipeline.load(pipeline.save(tmp_path / "p.model"))
    _same(pipeline.score(purchases, AS_OF), loaded.score(purchases, AS_OF))
    evaluation = pipeline.evaluate(purchases, AS_OF, 90)  # returns, stores nothing
    assert np.isfinite(evaluation.metrics["holdout_rmse"])
    assert not any("evaluation" in key for key in vars(pipeline))


def test_a_model_file_with_the_earlier_flat_settings_loads_with_its_parts(fitted, data, tmp_path):
    """Format 2 files (clvcast before the pipeline was built from its parts) kept the
    settings flat on the pipeline: they load, and score the same."""
    import json
    import zipfile

    purchases, _ = data
    pipeline, _ = fitted["CLVPipeline"]
    new = pipeline.save(tmp_path / "new.model")
    with zipfile.ZipFile(new) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(files["model.json"])
    items = dict(document["state"]["state"]["__items__"])
    for part in ("scorer", "forecaster", "churn_model"):
        del items[part]
    items.update(horizon_days=365.0, churn_horizon_days=90, churn_cutoffs=3, monetary_basis="total")
    document["state"]["state"]["__items__"] = [[k, v] for k, v in items.items()]
    document["format_version"] = 2
    files["model.json"] = json.dumps(document).encode()
    old = tmp_path / "old.model"
    with zipfile.ZipFile(old, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    loaded = CLVPipeline.load(old)
    assert loaded.churn_model.n_cutoffs == 3 and loaded.forecaster.horizon_days == 365.0
    assert loaded.get_params()["churn_model__horizon_days"] == 90
    _same(pipeline.score(purchases, AS_OF), loaded.score(purchases, AS_OF))
