"""Train -> register -> alias -> predict, outputs (files, SQLite, PostgreSQL), atomicity."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy

from clvcast.churn.simulate import simulate_fading_transactions
from clvcast.data import load_cdnow_master
from clvcast.errors import InputError, ModelWarning
from clvcast.output import write_scored, write_sql, write_table, write_table_chunks
from clvcast.pipeline import SCORED_COLUMNS, CLVPipeline
from clvcast.rfm import rfm_migrations
from conftest import run_clvcast, run_inprocess

CONTRACT = [*SCORED_COLUMNS[:1], *SCORED_COLUMNS[1:], "model_name", "model_version", "scored_at"]


clvcast = run_clvcast


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clvcast: error: "), result.stderr
    assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    (folder / "models").mkdir()
    raw = load_cdnow_master()
    raw.to_parquet(folder / "cdnow.parquet", index=False)
    contacts = pd.DataFrame(
        {"contact_id": ["00001", "00003", "99999"], "email": ["a@x.org", "c@x.org", "new@x.org"]}
    )
    contacts.to_csv(folder / "contacts.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(workdir):
    tracking = f"sqlite:///{workdir / 'mlruns.db'}"
    result = clvcast(
        "train",
        "--transactions",
        "cdnow.parquet",
        "--date-format",
        "%Y%m%d",
        "--as-of",
        "1998-06-30",
        "--holdout-days",
        "180",
        "--alias",
        "champion",
        "--tracking-uri",
        tracking,
        "--save",
        "models/cdnow.model",
        "--json",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), tracking


def predict(workdir, tracking, *extra: str, runner=None) -> subprocess.CompletedProcess:
    return (runner or clvcast)(
        "predict",
        "--transactions",
        "cdnow.parquet",
        "--date-format",
        "%Y%m%d",
        "--as-of",
        "1998-06-30",
        "--tracking-uri",
        tracking,
        *extra,
        cwd=workdir,
    )


def test_train_logs_run_registers_and_aliases(trained):
    run, tracking = trained
    assert run["version"] == "1" and run["registered_model"] == "clvcast"
    assert run["alias_moved"] and run["model_uri"] == "models:/clvcast/1"
    for metric in (
        "holdout_rmse",
        "holdout_baseline_rmse",
        "churn_roc_auc",
        "churn_baseline_bgnbd_no_purchase_roc_auc",
        "bgnbd_log_likelihood",
        "data_contacts",
    ):
        assert metric in run["metrics"], metric
    assert run["params"]["pipeline.churn_model__horizon_days"] == 90
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {
        "rfm_boundaries.json",
        "ingestion_report.json",
        "churn_roc.png",
        "calibration_vs_holdout.png",
    } <= artifacts


def test_predict_by_alias_version_and_file_agree_with_python_api_and_lifetimes(trained, workdir):
    _, tracking = trained
    fixed = ["--scored-at", "2026-01-01T00:00:00"]
    by_alias = predict(
        workdir,
        tracking,
        "--model",
        "models:/clvcast@champion",
        "--output",
        "alias.parquet",
        *fixed,
    )
    assert by_alias.returncode == 0, by_alias.stderr
    by_version = predict(
        workdir, tracking, "--model", "models:/clvcast/1", "--output", "version.parquet", *fixed
    )
    assert by_version.returncode == 0, by_version.stderr
    by_file = predict(
        workdir,
        tracking,
        "--model",
        "models/cdnow.model",
        "--output",
        "file.csv",
        *fixed,
        "--json",
    )
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout)["contacts"] == 23_502

    alias = pd.read_parquet(workdir / "alias.parquet")
    version = pd.read_parquet(workdir / "version.parquet")
    pd.testing.assert_frame_equal(alias, version)
    assert list(alias.columns) == CONTRACT
    assert (alias["model_version"] == "1").all() and (alias["model_name"] == "clvcast").all()

    pipeline = CLVPipeline.load(workdir / "models" / "cdnow.model")
    from clvcast.data import cdnow_purchase_log

    api = pipeline.score(cdnow_purchase_log(as_of="1998-06-30"), "1998-06-30")
    numeric = [
        "predicted_purchases_12m",
        "p_alive",
        "expected_order_value",
        "clv_12m",
        "churn_risk",
    ]
    np.testing.assert_allclose(
        alias[numeric].to_numpy(float), api[numeric].to_numpy(float), rtol=1e-12
    )
    from_file = pd.read_csv(workdir / "file.csv", dtype={"contact_id": str})
    np.testing.assert_allclose(
        from_file[numeric].to_numpy(float), alias[numeric].to_numpy(float), rtol=1e-9
    )

    # The same parameters in lifetimes give the same numbers.
    bgf = pipeline.forecaster_.bgnbd_.to_lifetimes()
    ggf = pipeline.forecaster_.gamma_gamma_.to_lifetimes()
    f, r, T, m = (alias[c].astype(float) for c in ("frequency", "recency", "T", "monetary_value"))
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(365, f, r, T)
    np.testing.assert_allclose(alias["predicted_purchases_12m"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        alias["p_alive"], bgf.conditional_probability_alive(f, r, T), rtol=1e-6
    )
    np.testing.assert_allclose(
        alias["expected_order_value"], ggf.conditional_expected_average_profit(f, m), rtol=1e-6
    )


def test_rerun_gives_the_same_table(trained, workdir):
    _, tracking = trained
    fixed = ["--model", "models/cdnow.model", "--scored-at", "2026-01-01T00:00:00"]
    for name in ("again1.parquet", "again2.parquet"):
        assert predict(workdir, tracking, *fixed, "--output", name).returncode == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(workdir / "again1.parquet"), pd.read_parquet(workdir / "again2.parquet")
    )


def test_predict_with_contacts_previous_and_sqlite(trained, workdir):
    _, tracking = trained
    earlier = clvcast(
        "predict",
        "--transactions",
        "cdnow.parquet",
        "--date-format",
        "%Y%m%d",
        "--as-of",
        "1998-03-31",
        "--model",
        "models/cdnow.model",
        "--output",
        "march.parquet",
        cwd=workdir,
    )
    assert earlier.returncode == 0, earlier.stderr
    url = f"sqlite:///{workdir / 'scores.db'}"
    result = predict(
        workdir,
        tracking,
        "--model",
        "models/cdnow.model",
        "--contacts",
        "contacts.csv",
        "--output",
        url,
        "--table",
        "contacts_scored",
        "--previous",
        "march.parquet",
    )
    assert result.returncode == 0, result.stderr
    engine = sqlalchemy.create_engine(url)
    table = pd.read_sql_table("contacts_scored", engine)
    assert len(table) == 23_503  # every buyer and the one prospect
    prospect = table.set_index("contact_id").loc["99999"]
    assert prospect["rfm_segment"] == "prospect" and pd.isna(prospect["p_alive"])
    # a prospect's forecast is 0, so "clv_12m < 100" includes it (docs/scored-table.md)
    assert prospect["clv_12m"] == 0 and prospect["predicted_purchases_12m"] == 0
    assert table.set_index("contact_id").loc["00003", "email"] == "c@x.org"
    migrations = pd.read_sql_table("contacts_scored_migrations", engine)
    engine.dispose()
    assert len(migrations) > 0 and set(migrations["change"]) <= {"changed", "new", "gone"}
    trigger = migrations[
        migrations["m_score_to"].isin([4, 5])
        & (migrations["r_score_from"] == 5)
        & (migrations["r_score_to"] == 4)
    ]
    assert len(trigger) > 0  # the classic campaign trigger is a plain filter
    assert "Wrote" in result.stdout and "RFM migrations" in result.stdout


def test_migrations_list_only_changes():
    previous = pd.DataFrame(
        {
            "contact_id": ["a", "b", "c"],
            "as_of": pd.Timestamp("2024-01-01"),
            "r_score": [5, 3, 2],
            "f_score": [4, 3, 1],
            "m_score": [5, 2, 1],
            "rfm_cell": ["R5F4M5", "R3F3M2", "R2F1M1"],
            "rfm_group": ["loyal", "recurring", "x"],
            "rfm_segment": ["champions", "need attention", "hibernating"],
        }
    )
    current = previous.copy()
    current["as_of"] = pd.Timestamp("2024-02-01")
    current.loc[0, ["r_score", "rfm_cell", "rfm_segment"]] = [4, "R4F4M5", "loyal customers"]
    current = pd.concat([current.iloc[:2], current.iloc[:1].assign(contact_id="d")])
    current["high_value"] = [True, False, True]
    result = rfm_migrations(previous, current).set_index("contact_id")
    assert result.loc["a", "change"] == "changed"
    assert (result.loc["a", "r_score_from"], result.loc["a", "r_score_to"]) == (5, 4)
    assert result.loc["c", "change"] == "gone" and result.loc["d", "change"] == "new"
    assert "b" not in result.index


def test_bad_arguments_give_one_clear_line(trained, workdir):
    _, tracking = trained
    base = ["--output", "bad.parquet"]

    def bad(*extra: str) -> subprocess.CompletedProcess:
        return predict(workdir, tracking, *extra, runner=run_inprocess)

    one_line_error(
        bad("--model", "models:/nosuch@champion", *base),
        "no registered model 'nosuch'",
    )
    one_line_error(
        bad("--model", "models:/clvcast@gold", *base),
        "has no alias 'gold'; its aliases: ['champion']",
    )
    one_line_error(
        bad("--model", "models:/clvcast/42", *base),
        "has no version '42'; versions: [1]",
    )
    one_line_error(bad("--model", "models/none.model", *base), "model file not found")
    (workdir / "foreign.joblib").write_bytes(b"not a pickle at all")
    one_line_error(
        bad("--model", "foreign.joblib", *base),
        "is not a clvcast model file",
    )
    one_line_error(
        bad(
            "--model",
            "models/cdnow.model",
            "--output",
            "nosuchdb://x/y",
            "--table",
            "t",
        ),
        "is not a usable SQLAlchemy URL",
    )
    one_line_error(
        bad("--model", "models/cdnow.model", "--output", "sqlite:///x.db"),
        "a SQL output needs a table name: pass --table NAME",  # not "--table None"
    )
    one_line_error(
        bad("--model", "models/cdnow.model", "--output", "/proc/scores.parquet"),
        "is not writable",
    )
    assert not (workdir / "bad.parquet").exists()


def test_saved_pipeline_format_is_checked(tmp_path):
    old = tmp_path / "old.joblib"
    joblib.dump({"format": "clvcast.pipeline", "format_version": 0, "pipeline": {}}, old)
    with pytest.raises(InputError, match="loading it runs any code stored in it"):
        CLVPipeline.load(old)
    trusted = pytest.warns(ModelWarning, match="pickle model file")
    with trusted, pytest.raises(InputError, match="pipeline format 0"):
        CLVPipeline.load(old, trust_model_file=True)
    other = tmp_path / "other.joblib"
    joblib.dump({"something": 1}, other)
    with pytest.warns(ModelWarning), pytest.raises(InputError, match="not a clvcast model file"):
        CLVPipeline.load(other, trust_model_file=True)
    newer = tmp_path / "newer.model"
    with zipfile.ZipFile(newer, "w") as archive:
        archive.writestr("model.json", json.dumps({"format": "clvcast.model", "format_version": 9}))
    with pytest.raises(InputError, match="model format 9"):
        CLVPipeline.load(newer)


class _Payload:
    """Pickles into a call that writes ``marker``: what a crafted model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


def _crafted_zip(path: Path, state: dict, estimator: bytes | None = None) -> None:
    document = {"format": "clvcast.model", "format_version": 2, "state": state}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps(document))
        if estimator is not None:
            archive.writestr("estimator-0.skops", estimator)


def test_crafted_model_files_cannot_run_code(trained, workdir, tmp_path):
    import mlflow
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    _, tracking = trained
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.joblib"
    joblib.dump(_Payload(marker), evil)
    # 1. A pickle given as --model: refused, nothing runs.
    one_line_error(
        predict(workdir, tracking, "--model", str(evil), "--output", "x.parquet"),
        "--trust-model-file",
    )
    # 2. Zip files that name a class outside clvcast, or an estimator with untrusted types.
    outside = tmp_path / "outside.model"
    _crafted_zip(outside, {"__object__": "os.system", "state": {"__items__": []}})
    with pytest.raises(InputError, match="damaged clvcast model file"):
        CLVPipeline.load(outside)
    untrusted = tmp_path / "untrusted.model"
    transformer = FunctionTransformer(os.system)
    _crafted_zip(untrusted, {"__skops__": "estimator-0.skops"}, skops.io.dumps(transformer))
    with pytest.raises(InputError, match="types clvcast does not trust"):
        CLVPipeline.load(untrusted)
    # 3. Through MLflow: a run and a registered version whose files are crafted pickles.
    bundle = tmp_path / "model"
    (bundle / "artifacts").mkdir(parents=True)
    joblib.dump(_Payload(marker), bundle / "artifacts" / "pipeline.model")
    joblib.dump(_Payload(marker), bundle / "python_model.pkl")
    (bundle / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: os\n")
    mlflow.set_tracking_uri(tracking)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(bundle), artifact_path="model")
    with contextlib.redirect_stderr(io.StringIO()):
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "crafted")
    for uri in (f"runs:/{run.info.run_id}/model", "models:/crafted/1"):
        one_line_error(
            predict(workdir, tracking, "--model", uri, "--output", "x.parquet"),
            "loading it runs any code stored in it",
        )
    assert not marker.exists()
    assert not (workdir / "x.parquet").exists()


def test_champion_rule(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from clvcast.tracking import champion_decision

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    client.create_registered_model("m")
    assert champion_decision(client, "m", "champion", {})[0]  # nobody holds it yet
    with mlflow.start_run() as run:
        mlflow.log_metrics({"holdout_rmse": 1.0, "churn_roc_auc": 0.8})
    version = client.create_model_version("m", "file:///nowhere", run_id=run.info.run_id)
    client.set_registered_model_alias("m", "champion", version.version)
    assert champion_decision(client, "m", "champion", {"holdout_rmse": 0.9, "churn_roc_auc": 0.81})[
        0
    ]
    assert champion_decision(client, "m", "champion", {"holdout_rmse": 1.0, "churn_roc_auc": 0.8})[
        0
    ]
    moved, reason = champion_decision(
        client, "m", "champion", {"holdout_rmse": 1.2, "churn_roc_auc": 0.85}
    )
    assert not moved and "holdout_rmse 1.2000 vs 1.0000" in reason
    moved, reason = champion_decision(client, "m", "champion", {"churn_roc_auc": 0.9})
    assert not moved and "--holdout-days" in reason


def test_champion_rule_refuses_a_version_that_loses_to_its_own_baseline(tmp_path):
    from mlflow.tracking import MlflowClient

    from clvcast.tracking import MAX_AGGREGATE_ERROR_PCT, champion_decision

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    client.create_registered_model("m")  # no champion yet: only the version's own numbers
    loses = {"churn_roc_auc": 0.739, "churn_baseline_bgnbd_no_purchase_roc_auc": 0.750}
    moved, reason = champion_decision(client, "m", "champion", loses)
    assert not moved
    assert "ranks worse than BG/NBD's own P(no purchase) on all contacts" in reason
    assert "0.7390 vs 0.7500" in reason and "--force-alias" in reason
    high_value = {
        "churn_roc_auc": 0.80,
        "churn_baseline_bgnbd_no_purchase_roc_auc": 0.79,
        "churn_roc_auc_high_value": 0.76,
        "churn_baseline_bgnbd_no_purchase_roc_auc_high_value": 0.77,
    }
    moved, reason = champion_decision(client, "m", "champion", high_value)
    assert not moved and "high-value contacts" in reason and "all contacts" not in reason
    off = {"holdout_aggregate_error_pct": MAX_AGGREGATE_ERROR_PCT + 12.0}
    moved, reason = champion_decision(client, "m", "champion", off)
    assert not moved and f"+{MAX_AGGREGATE_ERROR_PCT + 12:.1f}%" in reason
    # A scorer that is the baseline ties with it, and a small error is fine.
    tie = {
        "churn_roc_auc": 0.75,
        "churn_baseline_bgnbd_no_purchase_roc_auc": 0.75,
        "holdout_aggregate_error_pct": -8.0,
    }
    assert champion_decision(client, "m", "champion", tie)[0]


@pytest.fixture
def small_table():
    transactions, _ = simulate_fading_transactions(300, seed=3)
    return transactions


def test_failed_file_write_keeps_the_old_file(tmp_path, small_table):
    for name in ("scores.parquet", "scores.csv"):
        target = tmp_path / name
        write_table(small_table, target)
        before = target.read_bytes()

        def chunks():
            yield small_table.head(5)  # written, then the next chunk fails
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            write_table_chunks(chunks(), target)
        assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.parquet"]


def test_chunks_write_the_same_file_as_one_table(tmp_path, small_table):
    pieces = [small_table.iloc[:1000], small_table.iloc[1000:3000], small_table.iloc[3000:]]
    for suffix in (".parquet", ".csv"):
        whole, chunked = tmp_path / f"whole{suffix}", tmp_path / f"chunked{suffix}"
        write_table(small_table, whole)
        assert write_table_chunks(iter(pieces), chunked) == len(small_table)
        if suffix == ".csv":
            assert chunked.read_text() == whole.read_text()
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole))


def test_killed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "big.csv"
    target.write_text("contact_id,clv\nold,1\n")
    code = (
        "import numpy as np, pandas as pd; from clvcast.output import write_table;"
        "n = 30_000_000; t = pd.DataFrame({'a': np.arange(n), 'b': np.arange(n) * 0.5});"
        f"print('go', flush=True); write_table(t, {str(target)!r})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "go"
    time.sleep(1.0)  # well inside the ~minute-long CSV write
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert target.read_text() == "contact_id,clv\nold,1\n"


def sql_write_is_atomic(url: str, small_table: pd.DataFrame, monkeypatch) -> None:
    write_sql(small_table, url, "scores")
    engine = sqlalchemy.create_engine(url)
    before = pd.read_sql_table("scores", engine)
    assert len(before) == len(small_table)
    original = pd.DataFrame.to_sql

    def half(self, name, con, **kwargs):
        original(self.head(10), name, con, **kwargs)  # some rows land, then it fails
        raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("connection lost"))

    monkeypatch.setattr(pd.DataFrame, "to_sql", half)
    with pytest.raises(InputError, match="connection lost"):
        write_sql(small_table.head(50), url, "scores")
    monkeypatch.undo()
    after = pd.read_sql_table("scores", engine)
    pd.testing.assert_frame_equal(before, after)
    names = sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()
    assert [n for n in names if n.startswith("scores")] == ["scores"]  # no staging left


def test_sqlite_write_is_atomic(tmp_path, small_table, monkeypatch):
    sql_write_is_atomic(f"sqlite:///{tmp_path / 's.db'}", small_table, monkeypatch)


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("CLVCAST_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the PostgreSQL tests: scripts/postgres.sh did not start")
        pytest.skip("no PostgreSQL server: run the suite with `make test`")
    return url


def test_postgresql_write_is_atomic(postgres_url, small_table, monkeypatch):
    sql_write_is_atomic(postgres_url, small_table, monkeypatch)


def test_predict_to_postgresql(trained, workdir, postgres_url):
    _, tracking = trained
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")  # as users type it
    result = predict(
        workdir,
        tracking,
        "--model",
        "models:/clvcast@champion",
        "--output",
        plain,
        "--table",
        "clv_scores",
    )
    assert result.returncode == 0, result.stderr
    engine = sqlalchemy.create_engine(postgres_url)
    table = pd.read_sql_table("clv_scores", engine)
    engine.dispose()
    assert len(table) == 23_502 and list(table.columns) == CONTRACT
    expected = pd.read_parquet(workdir / "alias.parquet")
    merged = table.merge(expected, on="contact_id", suffixes=("", "_file"))
    np.testing.assert_allclose(merged["clv_12m"], merged["clv_12m_file"], rtol=1e-12)


def test_write_scored_dispatches(tmp_path, small_table):
    assert write_scored(small_table, str(tmp_path / "a.csv")).endswith("a.csv")
    where = write_scored(small_table, f"sqlite:///{tmp_path / 'b.db'}", "t")
    assert where.endswith("table t")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on loopback with its own SQLite store and artifact folder."""
    import socket
    import urllib.request

    folder = tmp_path_factory.mktemp("server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'db.sqlite'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.mark.slow
def test_train_and_predict_against_an_mlflow_server(mlflow_server, tmp_path):
    transactions, _ = simulate_fading_transactions(3_000, seed=8)
    transactions.to_parquet(tmp_path / "t.parquet", index=False)
    trained = clvcast(
        "train",
        "--transactions",
        "t.parquet",
        "--as-of",
        "2024-06-30",
        "--holdout-days",
        "90",
        "--alias",
        "champion",
        "--register-as",
        "shop",
        "--tracking-uri",
        mlflow_server,
        "--save",
        "m.model",
        "--json",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    run = json.loads(trained.stdout)
    assert run["tracking_uri"] == mlflow_server and run["alias_moved"]
    scored = clvcast(
        "predict",
        "--model",
        "models:/shop@champion",
        "--tracking-uri",
        mlflow_server,
        "--transactions",
        "t.parquet",
        "--as-of",
        "2024-06-30",
        "--output",
        "s.parquet",
        "--json",
        cwd=tmp_path,
    )
    assert scored.returncode == 0, scored.stderr
    summary = json.loads(scored.stdout)
    assert summary["model_name"] == "shop" and summary["model_version"] == run["version"]
    table = pd.read_parquet(tmp_path / "s.parquet")
    assert table["contact_id"].nunique() == 3_000


def test_report_command(trained, workdir):
    _, tracking = trained
    scored = predict(
        workdir, tracking, "--model", "models/cdnow.model", "--output", "for_report.parquet", "-q"
    )
    assert scored.returncode == 0, scored.stderr
    result = clvcast(
        "report",
        "--model",
        "models/cdnow.model",
        "--scored",
        "for_report.parquet",
        "--output",
        "report",
        "--tracking-uri",
        tracking,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    html = (workdir / "report" / "report.html").read_text()
    assert "<script" not in html and "R5 = last purchase" in html
    assert len(list((workdir / "report").glob("*.png"))) >= 10
    missing = clvcast("report", "--model", "models/cdnow.model", "--output", "r2", cwd=workdir)
    one_line_error(missing, "needs --scored PATH or --transactions")
