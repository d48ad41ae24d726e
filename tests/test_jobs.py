"""The main jobs in Python (clvcast.train / predict / report): the same results as the CLI,
no process-wide MLflow state, horizon-aware figures and columns, and a fresh folder."""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import threading
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import clvcast
from clvcast.data import ReadOptions, load_cdnow_master
from clvcast.errors import InputError
from clvcast.jobs import TrainConfig
from clvcast.limits import ParameterError
from clvcast.tracking import MlflowStore, TrackingError
from conftest import run_inprocess

AS_OF = "1998-06-30"
READ = ReadOptions(date_format="%Y%m%d")


@pytest.fixture(scope="module")
def cdnow_file(tmp_path_factory):
    """The first 5,000 CDNOW customers as a CSV file, as a shop exports them."""
    folder = tmp_path_factory.mktemp("jobs")
    raw = load_cdnow_master()
    path = folder / "orders.csv"
    raw[raw["contact_id"] <= "05000"].to_csv(path, index=False)
    return path


@pytest.fixture
def tracking_uri_kept(monkeypatch):
    """MLflow's process-wide tracking URI, set to a sentinel that every clvcast call must
    leave alone, and afterwards unset again: setting it back to what ``get_tracking_uri()``
    said would pin MLflow's default (``mlflow.db`` in the working directory, the checkout),
    and a later test of the same process then made that file there."""
    from mlflow.tracking._tracking_service import utils

    sentinel = "sqlite:///sentinel-never-used.db"
    monkeypatch.setattr(utils, "_tracking_uri", sentinel)
    assert mlflow.get_tracking_uri() == sentinel
    return sentinel


def test_the_python_flow_of_the_issue_works_in_an_empty_folder(
    cdnow_file, tmp_path, monkeypatch, tracking_uri_kept
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lines: list[str] = []
    trained = clvcast.train(
        str(cdnow_file),
        as_of=AS_OF,
        read=READ,
        register_as="clvcast",
        alias="champion",
        progress=lines.append,
    )
    assert trained.version == "1" and trained.alias_moved
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # the default store, ./mlruns
    assert not (tmp_path / "models").exists()  # no local copy unless asked
    assert any(line.startswith("fitting RFM bins") for line in lines)
    assert any(line.endswith(" s") and "done in" in line for line in lines)
    scored = clvcast.predict(
        "models:/clvcast@champion",
        str(cdnow_file),
        as_of=AS_OF,
        read=READ,
        output="scored.parquet",
    )
    table = pd.read_parquet(tmp_path / "scored.parquet")
    assert scored.contacts == len(table) == table["contact_id"].nunique()
    assert set(table["model_version"]) == {"1"}
    assert mlflow.get_tracking_uri() == tracking_uri_kept
    # The version carries its description and tags; the run its name.
    client = MlflowClient(tracking_uri=trained.tracking_uri)
    version = client.get_model_version("clvcast", "1")
    assert version.tags["as_of"] == AS_OF and version.tags["data_file"] == "orders.csv"
    assert version.tags["contacts"] == str(trained.pipeline.training_["contacts"])
    assert "orders.csv" in version.description
    assert client.get_run(trained.run_id).info.run_name == f"clvcast-{AS_OF}"


def test_failed_calls_leave_mlflow_settings_alone(tmp_path, tracking_uri_kept, cdnow_file):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    MlflowClient(tracking_uri=other).search_experiments()  # an empty store
    with pytest.raises(
        TrackingError, match=f"no registered model 'nope' in the MLflow store {other}"
    ):
        clvcast.predict("models:/nope@champion", cdnow_file, as_of=AS_OF, read=READ, store=other)
    assert mlflow.get_tracking_uri() == tracking_uri_kept
    with pytest.raises(TrackingError):
        MlflowStore(other).load("runs:/0123456789abcdef/model")
    assert mlflow.get_tracking_uri() == tracking_uri_kept


def test_loading_from_a_store_that_is_not_there_makes_none(tmp_path, monkeypatch, cdnow_file):
    """A model asked of a SQLite store that does not exist is refused with the store's path;
    MLflow would make an empty database (and the default ``mlruns`` folder) first."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    missing = tmp_path / "mlruns" / "mlflow.db"
    with pytest.raises(TrackingError, match=f"no MLflow store at {missing}"):
        clvcast.predict("models:/clvcast@champion", cdnow_file, as_of=AS_OF, read=READ)
    with pytest.raises(TrackingError, match="no MLflow store at .*elsewhere.db"):
        MlflowStore(f"sqlite:///{tmp_path / 'elsewhere.db'}").load("runs:/0123456789abcdef/model")
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_refused_training_leaves_no_store(tmp_path, monkeypatch):
    """Input refused for its data, or a store that cannot be written: nothing is made,
    not even the default store's empty database, and the store is checked first."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bad = tmp_path / "orders.csv"
    bad.write_text("contact_id,date,amount\na,2024-01-01,x\n")
    with pytest.raises(InputError, match="unparseable amount"):
        clvcast.train(str(bad), as_of="2024-06-30")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["orders.csv"]
    nowhere = f"sqlite:///{tmp_path / 'no-such-folder' / 'mlflow.db'}"
    with pytest.raises(TrackingError, match="no-such-folder does not exist"):
        clvcast.train(str(bad), as_of="2024-06-30", store=nowhere)  # before reading the data
    # A URI MLflow cannot open (an unknown scheme; MLflow 3 also refuses file: stores) is
    # one line, not an internal error.
    with pytest.raises(TrackingError, match="cannot use the MLflow store foo://bar: .*foo://bar"):
        clvcast.train(str(bad), as_of="2024-06-30", store="foo://bar")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root may write anywhere
        with pytest.raises(TrackingError, match="is not writable"):
            clvcast.train(str(bad), as_of="2024-06-30", store=f"sqlite:///{locked / 'm.db'}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["locked", "orders.csv"]


def test_cli_and_python_jobs_write_the_same_tables(cdnow_file, tmp_path):
    as_of = "1998-03-31"
    python_dir, cli_dir = tmp_path / "python", tmp_path / "cli"
    python_dir.mkdir(), cli_dir.mkdir()
    config = TrainConfig(holdout_days=90)
    trained = clvcast.train(
        cdnow_file,
        as_of=as_of,
        config=config,
        read=READ,
        store=f"sqlite:///{python_dir / 'm.db'}",
        save=python_dir / "models" / "clvcast.model",  # a folder that does not exist yet
    )
    stamp = "2024-01-01T00:00:00"
    clvcast.predict(
        trained.saved, cdnow_file, as_of=AS_OF, read=READ, output=python_dir / "s.parquet",
        scored_at=stamp,
    )  # fmt: skip
    common = ["--transactions", cdnow_file, "--date-format", "%Y%m%d"]
    done = run_inprocess(
        "train", *common, "--as-of", as_of, "--holdout-days", "90", "--json",
        "--tracking-uri", f"sqlite:///{cli_dir / 'm.db'}", "--save", cli_dir / "clvcast.model",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["metrics"] == pytest.approx(trained.metrics)
    done = run_inprocess(
        "predict", *common, "--as-of", AS_OF, "--model", cli_dir / "clvcast.model",
        "--output", cli_dir / "s.parquet", "--scored-at", stamp, "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ours = pd.read_parquet(python_dir / "s.parquet")
    theirs = pd.read_parquet(cli_dir / "s.parquet")
    pd.testing.assert_frame_equal(ours, theirs)


def test_train_with_a_180_day_horizon_names_everything_by_it(cdnow_file, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'm.db'}"
    done = run_inprocess(
        "train", "--transactions", cdnow_file, "--date-format", "%Y%m%d", "--as-of", AS_OF,
        "--horizon-days", "180", "--holdout-days", "90", "--tracking-uri", tracking,
        "--alias", "champion", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    client = MlflowClient(tracking_uri=tracking)
    files = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"clv_distribution.png", "frequency_recency_matrix.png", "report.html"} <= files
    html = Path(client.download_artifacts(run["run_id"], "report.html", str(tmp_path))).read_text()
    # The run's figure files are the pictures the report shows (drawn once, from the data).
    for name in ("frequency_recency_matrix.png", "churn_roc.png"):
        png = Path(client.download_artifacts(run["run_id"], name, str(tmp_path))).read_bytes()
        assert f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}" in html
    assert "180 days" in html and "clv_180d" in html
    assert client.get_model_version("clvcast", run["version"]).tags["horizon_days"] == "180"
    scored = clvcast.predict(
        "models:/clvcast@champion", cdnow_file, as_of=AS_OF, read=READ, store=tracking
    )
    assert {"clv_180d", "predicted_purchases_180d"} <= set(scored.table.columns)
    assert "clv_12m" not in scored.table.columns


def test_limits_live_in_the_library_and_the_cli_names_the_option(cdnow_file, tmp_path, monkeypatch):
    # train opens its MLflow store (by default ./mlruns) before it reads: in a folder of
    # its own, so that the refused Spark call below leaves nothing in the checkout
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=r"holdout_days=0: use a whole number >= 1"):
        TrainConfig(holdout_days=0).check()
    with pytest.raises(ParameterError, match="chunk_contacts=10"):
        clvcast.predict("m.model", cdnow_file, as_of=AS_OF, chunk_contacts=10)
    common = ["--transactions", cdnow_file, "--as-of", AS_OF, "--save", tmp_path / "m.model"]
    for option, value in (("--holdout-days", "0"), ("--churn-sample-contacts", "10")):
        done = run_inprocess("train", *common, option, value)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"clvcast: error: {option} {value}: use a whole number >= "
            f"{1 if option == '--holdout-days' else 1000}."
        )
    with pytest.raises(InputError, match="the Spark engine reads files"):
        clvcast.train(load_cdnow_master(), as_of=AS_OF, engine="spark")


def test_predict_returns_the_table_and_migrations_without_writing(cdnow_file, tmp_path):
    pipeline = clvcast.train(
        cdnow_file, as_of="1998-05-31", read=READ, store=f"sqlite:///{tmp_path / 'm.db'}",
        register_as=None,
    ).pipeline  # fmt: skip
    before = clvcast.predict(pipeline, cdnow_file, as_of="1998-05-31", read=READ)
    after = clvcast.predict(pipeline, cdnow_file, as_of=AS_OF, read=READ, previous=before.table)
    assert before.output is None and after.output is None
    assert len(after.table) == after.contacts and after.migrations is not None
    changed = before.table.merge(after.table, on="contact_id", suffixes=("_0", "_1"))
    moved = changed["rfm_segment_0"] != changed["rfm_segment_1"]
    assert set(after.migrations["contact_id"]) >= set(changed.loc[moved, "contact_id"])
    # nothing was written but the MLflow store (its database and artifacts)
    assert {path.name for path in tmp_path.iterdir()} <= {"m.db", "artifacts"}


def test_import_meanwhile_loads_the_modules_on_its_own_thread(tmp_path, monkeypatch):
    from clvcast.jobs.common import import_meanwhile

    (tmp_path / "clvcast_prefetched.py").write_text(
        "import threading\nLOADED_ON = threading.current_thread().name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "clvcast_prefetched", raising=False)
    thread = import_meanwhile(("clvcast_prefetched",))
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert sys.modules["clvcast_prefetched"].LOADED_ON == "clvcast-imports"
    monkeypatch.delitem(sys.modules, "clvcast_prefetched")
    assert import_meanwhile(()) is None  # nothing to import: no thread


def test_a_failed_import_meanwhile_is_left_for_the_job_to_raise(tmp_path, monkeypatch):
    """No traceback from the thread: the job's own import raises the error in its place."""
    from clvcast.jobs.common import import_meanwhile

    (tmp_path / "clvcast_broken_library.py").write_text("raise ImportError('no such library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    uncaught = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    thread = import_meanwhile(("clvcast_broken_library",))
    thread.join(timeout=120)
    assert uncaught == []
    assert "clvcast_broken_library" not in sys.modules
    with pytest.raises(ImportError, match="no such library"):
        importlib.import_module("clvcast_broken_library")


def test_contacts_whose_ids_are_written_another_way_are_refused(cdnow_file, tmp_path):
    """CDNOW's ids have leading zeros ("00001"); a CRM export that lost them ("1") matched
    none: every buyer was scored without its attributes and every contact was added as a
    prospect, without a word. The same for upper and lower case, which --id-case settles."""
    from clvcast.jobs import rfm

    ids = pd.read_csv(cdnow_file, dtype=str)["contact_id"].drop_duplicates().to_numpy()
    crm = pd.DataFrame({"contact_id": ids, "email": [f"{i}@example.com" for i in ids]})
    out = tmp_path / "scored.parquet"
    lost_zeros = crm.assign(contact_id=crm["contact_id"].str.lstrip("0"))
    with pytest.raises(
        InputError,
        match="4,9[0-9]{2} of the contacts table.s 5,000 ids match the transactions. only when written without leading zeros",
    ):
        rfm(str(cdnow_file), as_of=AS_OF, read=READ, contacts=lost_zeros, output=out)
    upper = pd.DataFrame({"contact_id": ["C" + i for i in ids], "email": crm["email"]})
    lower_log = tmp_path / "lower.csv"
    log = pd.read_csv(cdnow_file, dtype=str)
    log.assign(contact_id="c" + log["contact_id"]).to_csv(lower_log, index=False)
    with pytest.raises(InputError, match="only when written in lower case.*--id-case lower"):
        rfm(str(lower_log), as_of=AS_OF, read=READ, contacts=upper, output=out)
    assert not out.exists()
    # As written, with prospects besides the buyers: joined, no refusal.
    prospects = pd.DataFrame({"contact_id": ["p1", "p2"], "email": ["a@x.org", "b@x.org"]})
    table = rfm(str(cdnow_file), as_of=AS_OF, read=READ, contacts=pd.concat([crm, prospects])).table
    assert table["email"].notna().all() and len(table) == 5_002
    assert {"p1", "p2"} <= set(table.loc[table["rfm_group"] == "prospect", "contact_id"])
    lower = ReadOptions(date_format="%Y%m%d", id_case="lower")
    table = rfm(str(lower_log), as_of=AS_OF, read=lower, contacts=upper).table
    assert table["email"].notna().all() and len(table) == 5_000
