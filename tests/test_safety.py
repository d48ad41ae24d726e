"""Nothing lost, nothing executed: the fault-injection battery of issue 16.

Every case here once lost data, overwrote an input, or ended in "internal error". Each test
runs the command as a user would (``clvcast.cli.main`` in-process: the same code path as
the console script, without a process start per case) and checks the one-line message,
the exit code and that no output was written or changed. Crafted model files are in
``test_batch.py`` (they need the MLflow store trained there).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

from clvcast import cli
from clvcast.churn import ChurnModel
from clvcast.churn.simulate import simulate_fading_transactions
from clvcast.errors import InputError, OutputWarning
from clvcast.output import STAGING_PREFIX, write_sql, write_table
from clvcast.pipeline import CLVPipeline

AS_OF = "2024-12-31"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A folder with a purchase log, a contacts table, a model file and a scored table."""
    folder = tmp_path_factory.mktemp("shop")
    transactions, _ = simulate_fading_transactions(400, seed=11)
    transactions.to_csv(folder / "orders.csv", index=False)
    as_of = str(pd.to_datetime(transactions["date"]).max().date())
    ids = sorted(transactions["contact_id"].astype(str).unique())[:50]
    pd.DataFrame({"contact_id": ids, "newsletter": "subscribed"}).to_csv(
        folder / "contacts.csv", index=False
    )
    pipeline = CLVPipeline(churn_model=ChurnModel(n_cutoffs=3, spacing_days=30)).fit(
        transactions, as_of
    )
    pipeline.save(folder / "model.model")
    return folder, as_of


def clvcast(capsys, *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str, text: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith("clvcast: warning:")]
    assert len(lines) == 1 and lines[0].startswith("clvcast: error: "), err
    assert text in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err


def predict_args(shop_folder, as_of, *extra):
    return [
        "predict",
        "--transactions",
        shop_folder / "orders.csv",
        "--as-of",
        as_of,
        "--model",
        shop_folder / "model.model",
        "-q",
        *extra,
    ]


# --- 1. SQL writes that cannot destroy ------------------------------------------------------


def _tables(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sorted(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def sql_writes_cannot_destroy(url: str, monkeypatch) -> None:
    name = "t" * 63  # the longest name PostgreSQL keeps
    table = pd.DataFrame({"contact_id": [f"c{i}" for i in range(500)], "clv": 1.5})
    write_sql(table, url, name)
    write_sql(table.head(400), url, name)  # replaced, not appended
    engine = sqlalchemy.create_engine(url)
    assert len(pd.read_sql_table(name, engine)) == 400
    original_to_sql = pd.DataFrame.to_sql

    def insert_fails(self, table_name, con, **kwargs):
        original_to_sql(self.head(3), table_name, con, **kwargs)
        raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("disk full"))

    original_execute = sqlalchemy.engine.Connection.execute

    def rename_fails(self, statement, *args, **kwargs):
        if "RENAME" in str(statement):
            raise sqlalchemy.exc.OperationalError("ALTER", {}, Exception("lock timeout"))
        return original_execute(self, statement, *args, **kwargs)

    for step, (target, patch) in {
        "insert": (pd.DataFrame, ("to_sql", insert_fails)),
        "swap": (sqlalchemy.engine.Connection, ("execute", rename_fails)),
    }.items():
        monkeypatch.setattr(target, *patch)
        with pytest.raises(InputError, match="the old table is unchanged"):
            write_sql(table.head(10), url, name)
        monkeypatch.undo()
        assert len(pd.read_sql_table(name, engine)) == 400, step
        mine = [t for t in _tables(url) if t == name or t.startswith(STAGING_PREFIX)]
        assert mine == [name], step  # and no staging table left behind
    engine.dispose()
    with pytest.raises(InputError, match="at most 63 characters"):
        write_sql(table, url, "t" * 64)


def test_sqlite_writes_cannot_destroy(tmp_path, monkeypatch):
    sql_writes_cannot_destroy(f"sqlite:///{tmp_path / 'scores.db'}", monkeypatch)


def test_postgresql_writes_cannot_destroy(monkeypatch):
    url = os.environ.get("CLVCAST_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the PostgreSQL tests: scripts/postgres.sh did not start")
        pytest.skip("no PostgreSQL server: run the suite with `make test`")
    sql_writes_cannot_destroy(url, monkeypatch)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{"t" * 63}"'))
    engine.dispose()


# --- 2. and 3. outputs that are inputs, checks before writing ---------------------------------


def test_an_output_that_is_an_input_is_refused(shop, capsys):
    folder, as_of = shop
    orders = folder / "orders.csv"
    before = orders.read_bytes()
    for output_of in (orders, folder / "contacts.csv"):
        code, _, err = clvcast(
            capsys, "rfm", "--transactions", orders, "--contacts", folder / "contacts.csv",
            "--as-of", as_of, "--output", output_of, "-q",
        )  # fmt: skip
        assert code == 2
        one_line(err, "writing it would replace the input")
    code, _, err = clvcast(capsys, *predict_args(folder, as_of, "--output", orders))
    assert code == 2 and "--transactions input file" in err
    assert orders.read_bytes() == before


def test_a_bad_previous_table_fails_before_the_output_is_replaced(shop, capsys, tmp_path):
    folder, as_of = shop
    output = tmp_path / "scores.parquet"
    output.write_bytes(b"the old output")
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"contact_id": ["a"], "score": [1]}).to_parquet(bad)
    code, _, err = clvcast(
        capsys, *predict_args(folder, as_of, "--output", output, "--previous", bad)
    )
    assert code == 2
    one_line(err, "the previous scored table has no column(s)")
    assert output.read_bytes() == b"the old output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "scores.parquet"]


# --- 5. every failure a clear line ---------------------------------------------------------


def test_failures_once_internal_errors_are_one_line(shop, capsys, tmp_path, monkeypatch):
    folder, as_of = shop
    rfm = ["rfm", "--transactions", folder / "orders.csv", "--as-of", as_of, "-q"]
    (tmp_path / "a_folder").mkdir()
    clashing = tmp_path / "contacts_as_of.csv"
    pd.DataFrame({"contact_id": ["x"], "as_of": ["2020-01-01"]}).to_csv(clashing, index=False)
    out = tmp_path / "out.csv"
    cases = {
        "output is a folder": ([*rfm, "--output", tmp_path / "a_folder"], "extension"),
        "bad date format": ([*rfm, "--output", out, "--date-format", "%Q-%d"], "bad directive"),
        "scored-at": (
            predict_args(folder, as_of, "--output", out, "--scored-at", "notatime"),
            "is not a timestamp",
        ),
        "contacts as_of (rfm)": (
            [*rfm, "--output", out, "--contacts", clashing],
            "with the name of a column clvcast writes",
        ),
        "contacts as_of (predict)": (
            predict_args(folder, as_of, "--output", out, "--contacts", clashing),
            "with the name of a column clvcast writes",
        ),
    }
    for case, (args, text) in cases.items():
        code, _, err = clvcast(capsys, *args)
        assert code == 2, case
        one_line(err, text)
    assert not out.exists()

    # The environment failing under a write: one line, exit 1, the old output intact.
    out.write_text("old\n")

    def disk_full(table, path, *, first):  # half the file written, then the disk is full
        Path(path).write_text("contact_id,partial\n")
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    def no_memory(*args, **kwargs):
        raise MemoryError

    for failure, text in ((disk_full, "No space left on device"), (no_memory, "out of memory")):
        monkeypatch.setattr("clvcast.output._write_csv", failure)
        code, _, err = clvcast(capsys, *rfm, "--output", out)
        monkeypatch.undo()
        assert code == 1
        one_line(err, text)
        assert out.read_text() == "old\n"
    sqlite = f"sqlite:///{tmp_path / 'scores.db'}"
    original = pd.DataFrame.to_sql

    def sqlite_full(self, *args, **kwargs):
        original(self.head(2), *args, **kwargs)
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(pd.DataFrame, "to_sql", sqlite_full)
    code, _, err = clvcast(capsys, *predict_args(folder, as_of, "--output", sqlite, "--table", "s"))
    monkeypatch.undo()
    assert code == 2
    one_line(err, "database or disk is full")
    assert _tables(sqlite) == []


# --- 6. leftovers of killed runs ----------------------------------------------------------


def test_leftovers_of_killed_runs_are_removed_and_reported(tmp_path):
    target = tmp_path / "scores.csv"
    dead = tmp_path / ".scores.csv.999999999.abc123.tmp"  # no such process
    dead.write_text("half a table")
    alive = tmp_path / f".scores.csv.{os.getppid()}.def456.tmp"  # a running writer's
    alive.write_text("being written")
    with pytest.warns(OutputWarning, match="removed 1 temporary file"):
        write_table(pd.DataFrame({"contact_id": ["a"]}), target)
    assert not dead.exists() and alive.exists()

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = sqlalchemy.create_engine(url)
    old = f"{STAGING_PREFIX}{int(time.time()) - 7 * 3600}_0123abcd"
    recent = f"{STAGING_PREFIX}{int(time.time()) - 60}_4567abcd"  # maybe a parallel run
    for name in (old, recent):
        pd.DataFrame({"x": [1]}).to_sql(name, engine, index=False)
    engine.dispose()
    with pytest.warns(OutputWarning, match=f"dropped 1 staging table.*{old}"):
        write_sql(pd.DataFrame({"contact_id": ["a"]}), url, "scores")
    assert _tables(url) == sorted([recent, "scores"])


# --- 7. oddities are named, not swallowed ----------------------------------------------------


def test_oddities_are_named(tmp_path, capsys):
    def run(text: str, *extra: str) -> tuple[int, str, str]:
        path = tmp_path / "odd.csv"
        path.write_text(text)
        args = ["rfm", "--transactions", path, "--as-of", AS_OF, "--output", tmp_path / "o.csv"]
        return clvcast(capsys, *args, *extra)

    code, _, err = run("")
    assert code == 2
    one_line(err, "is empty")
    sheet = tmp_path / "orders.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    args = ["rfm", "--transactions", sheet, "--as-of", AS_OF, "--output", tmp_path / "o.csv"]
    code, _, err = clvcast(capsys, *args)
    assert code == 2
    one_line(err, "has extension '.xlsx'; use .csv, .tsv or .parquet. Save the sheet as CSV")
    code, _, err = run("contact_id,date,amount,amount\na,2024-01-01,1,2\n")
    one_line(err, "two columns named 'amount' (columns 3 and 4)")
    # A spreadsheet saved as CSV ends its header with empty names: no option can name them,
    # so none is read, and they make nothing ambiguous.
    code, out, _ = run("contact_id,date,amount,,\na,2024-01-01,1,,\nb,2024-01-02,5,,\n")
    assert code == 0 and "2 purchase days kept" in out
    code, _, err = run("contact_id,date,amount\na,2024-01-01,1e308\nb,2024-01-02,5\n")
    one_line(err, "amount out of range")
    code, out, err = run("contact_id,date,amount\na,1900-01-01,3\na,2024-01-01,1\nb,2024-01-02,5\n")
    assert code == 0
    assert "note: 1 row is dated before 1970 (earliest 1900-01-01)" in out
    assert "clvcast: warning: transactions (odd.csv): 1 row is dated before 1970" in err


def test_an_as_of_date_long_after_the_last_purchase_is_named(cdnow_raw, tmp_path, capsys):
    """CDNOW ends on 1998-06-30; scored at 2001-06-30 (a wrong --as-of, or a cut export),
    its three years without a purchase read as every contact's silence, without a word."""
    path = tmp_path / "cdnow.csv"
    cdnow_raw.to_csv(path, index=False)
    args = [
        "rfm",
        "--transactions",
        path,
        "--date-format",
        "%Y%m%d",
        "--output",
        tmp_path / "o.csv",
    ]
    code, out, err = clvcast(capsys, *args, "--as-of", "2001-06-30")
    assert code == 0
    assert "is 1,096 days after the last purchase (1998-06-30)" in out  # the report's note
    assert "check --as-of (the log ends on 1998-06-30)" in err  # and the warning
    for as_of in ("1998-09-27", "1998-06-30"):  # 89 days later, or the log's last day
        code, out, err = clvcast(capsys, *args, "--as-of", as_of)
        assert code == 0 and "after the last purchase" not in out + err
