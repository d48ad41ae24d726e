"""The CLI as a user runs it: a subprocess, exit codes, one-line errors, no partial output."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

from clvcast.cli import main
from conftest import run_clvcast, run_inprocess

clvcast = functools.partial(run_clvcast, timeout=300)
inprocess = run_inprocess  # for the error cases: no process start per case


@pytest.fixture
def files(tmp_path, transactions):
    path = tmp_path / "transactions.csv"
    transactions.to_csv(path, index=False)
    contacts = pd.DataFrame(
        {
            "contact_id": ["id-00000", "id-00001", "never-bought"],
            "email": ["a@example.com", "b@example.com", "p@example.com"],
            "newsletter": ["yes", "no", "yes"],
        }
    )
    contacts_path = tmp_path / "contacts.csv"
    contacts.to_csv(contacts_path, index=False)
    return path, contacts_path


def test_rfm_writes_contact_table_with_prospects(files, tmp_path):
    transactions, contacts = files
    out = tmp_path / "contacts_scored.parquet"
    temporary = tmp_path / "tmp"  # the process's temporary directory
    temporary.mkdir()
    result = clvcast(
        "rfm",
        "--transactions",
        str(transactions),
        "--contacts",
        str(contacts),
        "--as-of",
        "2023-06-30",
        "--output",
        str(out),
        "--save-boundaries",
        str(tmp_path / "b.json"),
        env={"TMPDIR": str(temporary)},
    )
    assert result.returncode == 0, result.stderr
    # DuckDB's spill folder is removed before the process ends, not left behind
    assert list(temporary.iterdir()) == []
    assert "Ingestion report for transactions.csv" in result.stdout
    assert "R5 = last purchase 0-" in result.stdout
    table = pd.read_parquet(out)
    assert list(table.columns[:4]) == ["contact_id", "email", "newsletter", "as_of"]
    prospect = table.set_index("contact_id").loc["never-bought"]
    assert prospect["rfm_segment"] == "prospect" and prospect["orders"] == 0
    assert pd.isna(prospect["r_score"])
    assert table.set_index("contact_id").loc["id-00000", "email"] == "a@example.com"
    assert table["contact_id"].is_unique
    assert (tmp_path / "b.json").exists()


def test_rfm_reapplies_saved_boundaries_and_writes_csv(files, tmp_path):
    transactions, _ = files
    boundaries = tmp_path / "b.json"
    first = clvcast(
        "rfm",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        str(tmp_path / "a.csv"),
        "--save-boundaries",
        str(boundaries),
    )
    assert first.returncode == 0, first.stderr
    second = clvcast(
        "rfm",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        str(tmp_path / "b.csv"),
        "--boundaries",
        str(boundaries),
        "-q",
    )
    assert second.returncode == 0 and second.stdout == ""
    a = pd.read_csv(tmp_path / "a.csv")
    b = pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert a["as_of"].iloc[0] == "2023-06-30"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--contact-col", "customer"], "missing column 'customer' for the contact id"),
        (["--as-of", "soon"], "as-of date 'soon' is not a date"),
        (["--nonpositive", "error"], None),  # generated data has no refunds: succeeds
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(files, tmp_path, extra, expected):
    transactions, _ = files
    out = tmp_path / "out.parquet"
    args = [
        "rfm",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        str(out),
        *extra,
    ]
    result = inprocess(*args)
    if expected is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clvcast: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_bad_rows_are_refused_without_partial_output(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("contact_id,date,amount\na,2024-01-01,10\nb,not a date,5\n")
    out = tmp_path / "out.csv"
    out.write_text("previous output\n")
    result = inprocess(
        "rfm", "--transactions", str(data), "--as-of", "2024-02-01", "--output", str(out)
    )
    assert result.returncode == 2
    assert "1 row with unparseable date in column 'date'" in result.stderr
    assert out.read_text() == "previous output\n"  # untouched
    assert list(tmp_path.glob(".out.csv*")) == []  # no temporary left behind
    dropped = inprocess(
        "rfm",
        "--transactions",
        str(data),
        "--as-of",
        "2024-02-01",
        "--output",
        str(out),
        "--drop-invalid",
    )
    assert dropped.returncode == 0, dropped.stderr
    assert "1 row dropped: unparseable date" in dropped.stdout


def test_missing_file_unwritable_folder_and_bad_extension(files, tmp_path):
    transactions, _ = files
    base = ["rfm", "--as-of", "2023-06-30"]
    missing = inprocess(
        *base, "--transactions", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")
    )
    assert missing.returncode == 2 and "transactions file not found" in missing.stderr
    no_folder = inprocess(
        *base,
        "--transactions",
        str(transactions),
        "--output",
        str(tmp_path / "no" / "such" / "o.csv"),
    )
    assert no_folder.returncode == 2 and "does not exist" in no_folder.stderr
    bad_ext = inprocess(
        *base, "--transactions", str(transactions), "--output", str(tmp_path / "o.xlsx")
    )
    assert bad_ext.returncode == 2 and "use .parquet or .csv" in bad_ext.stderr
    for result in (missing, no_folder, bad_ext):
        assert "Traceback" not in result.stderr


def test_unwritable_output_folder_fails_before_the_work(files):
    # /proc refuses new files even to root, so this holds in CI, which runs as root.
    if not Path("/proc").is_dir():
        pytest.skip("needs Linux /proc as a folder nobody can write to")
    transactions, _ = files
    result = clvcast(
        "rfm",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        "/proc/o.csv",
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "clvcast: error: cannot write /proc/o.csv: folder /proc is not writable ("
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_argparse_errors_and_help():
    result = clvcast("rfm")
    assert result.returncode == 2 and "required" in result.stderr
    helped = clvcast("rfm", "--help")
    assert helped.returncode == 0 and "--nonpositive" in helped.stdout
    assert clvcast("--help").returncode == 0


def test_demo_runs_on_cdnow(tmp_path):
    # in a folder of its own: the demo's MLflow store (./mlruns) and model file (./models)
    # belong to the working directory, and a test must leave the checkout as it found it
    result = clvcast("demo", "--output-dir", str(tmp_path / "scored"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "69,659 rows read" in result.stdout
    table = pd.read_parquet(tmp_path / "scored" / "cdnow_contacts.parquet")
    assert len(table) == 23_502
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()


def test_internal_errors_are_one_line_too(monkeypatch, capsys, files, tmp_path):
    import clvcast.contact_table

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(clvcast.contact_table, "build_contact_table", broken)
    transactions, _ = files
    code = main(
        [
            "rfm",
            "--transactions",
            str(transactions),
            "--as-of",
            "2023-06-30",
            "--output",
            str(tmp_path / "o.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (
        "clvcast: internal error: RuntimeError: boom (run again with "
        "--verbose for the traceback and report it)"
    )


def test_forecast_on_raw_cdnow_master_with_holdout(tmp_path):
    from clvcast.data import cdnow_master_path

    out = tmp_path / "forecast.csv"
    result = clvcast(
        "forecast",
        "--transactions",
        str(cdnow_master_path()),
        "--date-format",
        "%Y%m%d",
        "--contact-col",
        "customer_id",
        "--amount-col",
        "dollar_value",
        "--as-of",
        "1998-06-30",
        "--holdout-days",
        "273",
        "--output",
        str(out),
    )
    assert result.returncode == 2  # whitespace-separated .txt is not CSV: a clear error
    assert "clvcast: error:" in result.stderr and "Traceback" not in result.stderr

    from clvcast.data import load_cdnow_master

    raw = tmp_path / "cdnow.csv"
    load_cdnow_master().to_csv(raw, index=False)  # raw: 80 zero amounts included
    figures = tmp_path / "figures"
    figures.mkdir()
    args = f"--transactions {raw} --date-format %Y%m%d --as-of 1998-06-30 --holdout-days 273"
    result = clvcast("forecast", *args.split(), "--output", str(out), "--plots", str(figures))
    assert result.returncode == 0, result.stderr
    pngs = sorted(path.name for path in figures.glob("*.png"))
    assert len(pngs) == 7 and "calibration_vs_holdout.png" in pngs
    assert all((figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    assert "80 rows dropped: non-positive amount" in result.stdout
    assert "Holdout evaluation: calibration to 1997-09-30, holdout 273 days" in result.stdout
    assert "      7+" in result.stdout
    table = pd.read_csv(out)
    assert len(table) == 23_502
    for column in ("predicted_purchases_12m", "p_alive", "expected_order_value", "clv_12m"):
        assert table[column].notna().all() and (table[column] >= 0).all()
    assert table["p_alive"].max() <= 1.0
    ranked = table["clv_12m"].sort_values(ascending=False)
    top_fifth = ranked.head(len(ranked) // 5).sum() / ranked.sum()
    assert f"the top 20% of contacts hold {top_fifth:.0%} of the predicted value" in result.stdout


def test_forecast_prospects_have_zero_forecasts(files, tmp_path):
    transactions, contacts = files
    out = tmp_path / "f.parquet"
    result = clvcast(
        "forecast",
        "--transactions",
        str(transactions),
        "--contacts",
        str(contacts),
        "--as-of",
        "2023-06-30",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out).set_index("contact_id")
    # 0, not empty: "clv_12m < 100" includes prospects (docs/scored-table.md)
    assert table.loc["never-bought", "clv_12m"] == 0
    assert table.loc["never-bought", "predicted_purchases_12m"] == 0
    assert pd.isna(table.loc["never-bought", "p_alive"])
    assert table.loc["id-00000", "clv_12m"] >= 0
    assert table.columns[-6:].tolist() == [
        "predicted_purchases_12m",
        "p_alive",
        "expected_order_value",
        "clv_12m",
        "high_value",
        "r_drop_date",
    ]
    assert not table.loc["never-bought", "high_value"]
    assert pd.isna(table.loc["never-bought", "r_drop_date"])


def test_forecast_bad_options(files, tmp_path):
    transactions, _ = files
    base = [
        "forecast",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        str(tmp_path / "f.csv"),
    ]
    bad = inprocess(*base, "--holdout-days", "0")
    assert bad.returncode == 2 and "--holdout-days 0" in bad.stderr
    long = inprocess(*base, "--holdout-days", "5000")
    assert long.returncode == 2 and "a holdout of 5,000 days before 2023-06-30" in long.stderr
    rate = inprocess(*base, "--discount-rate-monthly", "-3")
    assert rate.returncode == 2 and "--discount-rate-monthly -3: use a number >= 0" in rate.stderr
    assert not (tmp_path / "f.csv").exists()


def test_churn_command_on_cdnow(tmp_path):
    from clvcast.data import load_cdnow_master

    raw = tmp_path / "cdnow.parquet"
    master = load_cdnow_master()
    # The first 8,000 customers: the whole command as a user runs it, at a third of the cost.
    master[master["contact_id"] <= "08000"].to_parquet(raw, index=False)
    out = tmp_path / "churn.csv"
    figures = tmp_path / "figures"
    figures.mkdir()
    args = f"--transactions {raw} --date-format %Y%m%d --as-of 1998-03-31 --horizon-days 90"
    result = clvcast("churn", *args.split(), "--output", str(out), "--plots", str(figures))
    assert result.returncode == 0, result.stderr
    assert "Churn evaluation: trained up to 1997-12-31" in result.stdout
    assert "high value  classifier" in result.stdout
    table = pd.read_csv(out)
    assert {
        "churn_risk",
        "churn_risk_band",
        "expected_drift_date",
        "r_drop_date",
        "high_value",
    } <= set(table.columns)
    assert set(table["churn_risk_band"]) <= {"low", "medium", "high"}
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "churn_calibration.png",
        "churn_risk_by_segment.png",
        "churn_roc.png",
    ]


def test_churn_bad_options(files, tmp_path):
    transactions, _ = files
    base = [
        "churn",
        "--transactions",
        str(transactions),
        "--as-of",
        "2023-06-30",
        "--output",
        str(tmp_path / "c.csv"),
    ]
    short = inprocess(*base[:4], "2022-01-20", *base[5:])
    assert short.returncode == 2 and "history is too short" in short.stderr
    bad = inprocess(*base, "--horizon-days", "0")
    assert bad.returncode == 2 and "--horizon-days 0" in bad.stderr
    plots = inprocess(*base, "--plots", str(tmp_path / "missing"))
    assert plots.returncode == 2 and "--plots" in plots.stderr
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize(
    ("chosen", "expected"), [(None, "system"), ("mimalloc", "mimalloc")], ids=["default", "user's"]
)
def test_rfm_gives_arrow_malloc_unless_the_user_chose_a_pool(files, tmp_path, chosen, expected):
    # Arrow's default pool (mimalloc) gives freed memory back at once: every command that
    # reads a purchase log takes the C library's malloc, unless ARROW_DEFAULT_MEMORY_POOL
    # says otherwise.
    transactions, _ = files
    script = (
        "from clvcast.cli import main; import pyarrow as pa; "
        f"code = main(['rfm', '--transactions', {str(transactions)!r}, '--as-of', "
        f"'2023-06-30', '--output', {str(tmp_path / 'out.parquet')!r}, '-q']); "
        "print(code, pa.default_memory_pool().backend_name)"
    )
    assert _run_with(script, "ARROW_DEFAULT_MEMORY_POOL", chosen)[-2:] == ["0", expected]


def _run_with(script: str, variable: str, value: str | None) -> list[str]:
    """The words ``script`` prints, run by a fresh Python with the environment ``variable``
    set to ``value`` (unset for None)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != variable}
    if value:
        env[variable] = value
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


NUMPY_PAGES = """
import clvcast.cli as cli

def report(argv=None):
    import numpy as np
    print(np._core.multiarray._get_madvise_hugepage())
    return 0

cli.main = report
cli.console_main()
"""


@pytest.mark.parametrize(("chosen", "expected"), [(None, "False"), ("1", "True")])
def test_the_command_gives_numpy_small_pages_unless_the_user_chose(chosen, expected):
    # NumPy's 2 MB pages are slow to first touch on virtual machines that back memory
    # lazily: the clvcast command turns them off, unless NUMPY_MADVISE_HUGEPAGE says
    # otherwise. main() itself (notebooks, tests) leaves the process's NumPy alone.
    assert _run_with(NUMPY_PAGES, "NUMPY_MADVISE_HUGEPAGE", chosen) == [expected]
