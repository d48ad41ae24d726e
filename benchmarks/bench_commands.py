"""Benchmark: whole commands, clvcast against the lifetimes script a user would write instead.

A user times the command they run, from file to file, start-up included. Each case here runs
two fresh processes on the same input file, in one run of this script:

- **clvcast**: the ``clvcast`` command (``rfm``, ``forecast``, ``--help``);
- **lifetimes**: a plain Python script doing the same work with pandas and lifetimes (the
  scripts are below, in :data:`SCRIPTS`): read the file, ``summary_data_from_transaction_data``,
  quintile scores with ``pd.qcut`` or BG/NBD + Gamma-Gamma with 12-month CLV, write Parquet
  (CSV with pandas' ``to_csv`` in the ``-csv`` case).

For each process it prints wall seconds (a monotonic clock around the child), CPU seconds
(user + system of the child, from ``os.wait4``) and peak RSS (the child's ``ru_maxrss``), and
the lifetimes / clvcast ratios (above 1: clvcast is faster or smaller); with ``--repeat N``
the two sides run N times each, alternated, and the figures are medians.

``--floor`` adds a third process to the ``rfm`` cases on Parquet: one DuckDB statement
that makes the same table from the same file and checks nothing (no pandas, no pyarrow; see
``SCRIPTS["rfm-floor"]``), with the lifetimes / floor ratios on its line. No command that
checks its input can beat that process, so it shows which bars the hardware allows.

The ``clvcast`` command gives its NumPy the kernel's 4 KB pages (see
:func:`clvcast.cli.console_main`); the lifetimes script runs with NumPy's default (2 MB pages
for large arrays), as a user would run it. On a machine where fresh 2 MB pages are slow,
part of the ratio is that setting, not the code: ``--same-numpy-pages`` runs the script
with ``NUMPY_MADVISE_HUGEPAGE=0`` too. The inputs are
generated here (seeded): purchase logs with string ids and timestamps (as
``bench_summary.py`` makes them), CDNOW as lifetimes ships it, and a line-item export shaped
like UCI Online Retail (``clvcast.data.simulate.online_retail_lines``).

Run from the repository root with the project's virtualenv::

    python benchmarks/bench_commands.py                 # start-up, CDNOW, 400k lines, 5M, 1M contacts
    python benchmarks/bench_commands.py --cases rfm-20m  # the larger ones by name
    python benchmarks/bench_commands.py --cases forecast-1m-csv  # the 1M case to CSV
    python benchmarks/bench_commands.py --repeat 5      # medians of five alternated runs
    python benchmarks/bench_commands.py --same-numpy-pages  # the script with 4 KB pages too
    python benchmarks/bench_commands.py --cases rfm-5m --floor  # and the unchecked floor
    python benchmarks/bench_commands.py --list
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

AS_OF = "2024-06-30"
MB = 1024 * 1024

# The lifetimes scripts: what a user writes with lifetimes and pandas for the same outputs.
SCRIPTS = {
    "import": "import lifetimes  # the floor of any lifetimes script\n",
    "rfm": """
import sys
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data

source, as_of, output = sys.argv[1:4]
date_format = sys.argv[4] if len(sys.argv) > 4 else None
if source.endswith(".parquet"):
    log = pd.read_parquet(source)
else:
    log = pd.read_csv(source, dtype={"contact_id": str, "date": str})
log["date"] = pd.to_datetime(log["date"], format=date_format)
log = log[log["amount"] > 0]
summary = summary_data_from_transaction_data(
    log, "contact_id", "date", monetary_value_col="amount", observation_period_end=as_of, freq="D"
)
spend = log[log["date"] <= as_of].groupby("contact_id")["amount"].sum()
summary["total_spend"] = spend
summary["r_score"] = pd.qcut(-summary["recency"].rank(method="first"), 5, labels=False) + 1
summary["f_score"] = pd.qcut(summary["frequency"].rank(method="first"), 5, labels=False) + 1
summary["m_score"] = pd.qcut(summary["total_spend"].rank(method="first"), 5, labels=False) + 1
if output.endswith(".csv"):
    summary.reset_index().to_csv(output, index=False)
else:
    summary.reset_index().to_parquet(output)
""",
    "forecast": """
import sys
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

source, as_of, output = sys.argv[1:4]
date_format = sys.argv[4] if len(sys.argv) > 4 else None
log = pd.read_parquet(source) if source.endswith(".parquet") else pd.read_csv(source)
log["date"] = pd.to_datetime(log["date"], format=date_format)
log = log[log["amount"] > 0]
summary = summary_data_from_transaction_data(
    log, "contact_id", "date", monetary_value_col="amount", observation_period_end=as_of, freq="D"
)
bgf = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
repeat = summary[summary["frequency"] > 0]
ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
summary["predicted_purchases_12m"] = bgf.conditional_expected_number_of_purchases_up_to_time(
    365, summary["frequency"], summary["recency"], summary["T"]
)
summary["p_alive"] = bgf.conditional_probability_alive(
    summary["frequency"], summary["recency"], summary["T"]
)
summary["clv_12m"] = ggf.customer_lifetime_value(
    bgf, summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"],
    time=12, discount_rate=0.01, freq="D",
)
if output.endswith(".csv"):
    summary.reset_index().to_csv(output, index=False)
else:
    summary.reset_index().to_parquet(output)
""",
    # Not a lifetimes script: the floor under any checked command on these cores. One DuckDB
    # statement from the Parquet file to the same table (contact-day sums, the summary,
    # quintiles by ntile, DuckDB's own Parquet writer) that checks nothing and imports
    # neither pandas nor pyarrow. A bar below this process cannot be met by any command
    # that checks its input.
    "rfm-floor": """
import sys
import duckdb

source, as_of, output = sys.argv[1:4]
duckdb.execute(f\"\"\"
COPY (
  WITH daily AS (
    SELECT contact_id, CAST(date AS DATE) AS day, SUM(amount) AS amount
    FROM read_parquet('{source}')
    WHERE amount > 0 AND CAST(date AS DATE) <= DATE '{as_of}'
    GROUP BY ALL),
  summary AS (
    SELECT contact_id, COUNT(*) - 1 AS frequency,
           date_diff('day', MIN(day), MAX(day)) AS recency,
           date_diff('day', MIN(day), DATE '{as_of}') AS T,
           COALESCE((SUM(amount) - arg_min(amount, day)) / NULLIF(COUNT(*) - 1, 0), 0)
               AS monetary_value,
           SUM(amount) AS total_spend
    FROM daily GROUP BY contact_id)
  SELECT *, ntile(5) OVER (ORDER BY recency DESC) AS r_score,
         ntile(5) OVER (ORDER BY frequency) AS f_score,
         ntile(5) OVER (ORDER BY total_spend) AS m_score
  FROM summary
) TO '{output}' (FORMAT parquet)\"\"\")
""",
    "online-retail": """
import sys
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import ConvergenceError, summary_data_from_transaction_data

source, as_of, output = sys.argv[1:4]
lines = pd.read_csv(source, dtype={"InvoiceNo": str}, encoding="utf-8")
lines = lines.dropna(subset=["CustomerID"])
lines = lines[~lines["InvoiceNo"].str.startswith("C") & (lines["Quantity"] > 0)]
lines["contact_id"] = lines["CustomerID"].astype(int).astype(str)
lines["date"] = pd.to_datetime(lines["InvoiceDate"], format="%m/%d/%Y %H:%M")
lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
summary = summary_data_from_transaction_data(
    lines, "contact_id", "date", monetary_value_col="amount", observation_period_end=as_of,
    freq="D",
)


def fit(fitter, *columns):
    # lifetimes raises ConvergenceError when BFGS stops on precision loss (its Gamma-Gamma
    # does on this export with numpy 2.4 at 0.001); its message says to raise the penalizer.
    for penalizer in (0.001, 0.01, 0.1):
        try:
            return fitter(penalizer_coef=penalizer).fit(*columns)
        except ConvergenceError:
            pass
    raise ConvergenceError("no penalizer worked")


bgf = fit(BetaGeoFitter, summary["frequency"], summary["recency"], summary["T"])
repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
ggf = fit(GammaGammaFitter, repeat["frequency"], repeat["monetary_value"])
summary["predicted_purchases_12m"] = bgf.conditional_expected_number_of_purchases_up_to_time(
    365, summary["frequency"], summary["recency"], summary["T"]
)
summary["p_alive"] = bgf.conditional_probability_alive(
    summary["frequency"], summary["recency"], summary["T"]
)
summary["clv_12m"] = ggf.customer_lifetime_value(
    bgf, summary["frequency"], summary["recency"], summary["T"],
    summary["monetary_value"].clip(lower=0.01), time=12, discount_rate=0.01, freq="D",
)
if output.endswith(".csv"):
    summary.reset_index().to_csv(output, index=False)
else:
    summary.reset_index().to_parquet(output)
""",
}


@dataclass
class Case:
    """One comparison: the input it needs and the two commands, built in ``folder``."""

    name: str
    what: str
    make_input: object  # (folder) -> path of the input file
    clvcast: object  # (folder, input) -> argv
    lifetimes: object  # (folder, input) -> argv
    floor: object = None  # (folder, input) -> argv of the unchecked DuckDB process, or None


def _clvcast() -> list[str]:
    return [sys.executable, "-m", "clvcast"]


def _script(folder: Path, name: str) -> str:
    path = folder / f"lifetimes_{name.replace('-', '_')}.py"
    path.write_text(SCRIPTS[name])
    return str(path)


def _log(rows: int, contacts: int):
    def make(folder: Path) -> Path:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_summary import generate  # the same synthetic purchase logs

        path = folder / f"log_{rows}_{contacts}.parquet"
        if not path.exists():
            generate(rows, contacts, path)
        return path

    return make


def _cdnow(folder: Path) -> Path:
    from clvcast.data import load_cdnow_master

    path = folder / "cdnow.csv"
    load_cdnow_master()[["contact_id", "date", "amount"]].to_csv(path, index=False)
    return path


def _online_retail(folder: Path) -> Path:
    import pandas as pd

    from clvcast.data.simulate import ONLINE_RETAIL_DATE_FORMAT, online_retail_lines

    export = online_retail_lines(100_000, n_customers=4_400, seed=1)
    lines = export.lines.copy()
    lines["InvoiceDate"] = pd.to_datetime(lines["InvoiceDate"], format=ONLINE_RETAIL_DATE_FORMAT)
    lines["InvoiceDate"] = lines["InvoiceDate"].dt.strftime(ONLINE_RETAIL_DATE_FORMAT)
    path = folder / "online_retail.csv"
    lines.to_csv(path, index=False)
    return path


RETAIL_OPTIONS = [
    "--contact-col", "CustomerID", "--date-col", "InvoiceDate", "--quantity-col", "Quantity",
    "--price-col", "UnitPrice", "--order-col", "InvoiceNo", "--date-format", "%m/%d/%Y %H:%M",
]  # fmt: skip


def _table_case(
    name: str,
    what: str,
    make,
    command: str,
    script: str,
    as_of: str,
    fmt=None,
    suffix=".parquet",
    floor: bool = False,
):
    extra = ["--date-format", fmt] if fmt else []

    def ours(folder: Path, source: Path) -> list[str]:
        return [*_clvcast(), command, "--transactions", str(source), "--as-of", as_of, *extra,
                "--output", str(folder / f"{name}_clvcast{suffix}"), "--quiet"]  # fmt: skip

    def theirs(folder: Path, source: Path) -> list[str]:
        argv = [sys.executable, _script(folder, script), str(source), as_of]
        return [*argv, str(folder / f"{name}_lifetimes{suffix}"), *([fmt] if fmt else [])]

    def unchecked(folder: Path, source: Path) -> list[str]:
        output = str(folder / f"{name}_floor{suffix}")
        return [sys.executable, _script(folder, "rfm-floor"), str(source), as_of, output]

    return Case(name, what, make, ours, theirs, unchecked if floor else None)


CASES = {
    "help": Case(
        "help",
        "start-up: clvcast --help vs import lifetimes",
        lambda folder: folder,
        lambda folder, _: [*_clvcast(), "--help"],
        lambda folder, _: [sys.executable, _script(folder, "import")],
    ),
    "rfm-cdnow": _table_case(
        "rfm-cdnow",
        "rfm, CDNOW master CSV (69,659 rows)",
        _cdnow,
        "rfm",
        "rfm",
        "1998-06-30",
        "%Y%m%d",
    ),  # fmt: skip
    "forecast-retail": Case(
        "forecast-retail",
        "forecast, UCI-shaped line-item export (about 400k lines)",
        _online_retail,
        lambda folder, source: [
            *_clvcast(),
            "forecast",
            "--transactions",
            str(source),
            *RETAIL_OPTIONS,
            "--as-of",
            "2012-12-31",
            "--output",
            str(folder / "retail_clvcast.parquet"),
            "-q",
        ],  # fmt: skip
        lambda folder, source: [
            sys.executable,
            _script(folder, "online-retail"),
            str(source),
            "2012-12-31",
            str(folder / "retail_lifetimes.parquet"),
        ],  # fmt: skip
    ),
    "rfm-5m": _table_case(
        "rfm-5m",
        "rfm, 5M rows / 500k contacts",
        _log(5_000_000, 500_000),
        "rfm",
        "rfm",
        AS_OF,
        floor=True,
    ),
    "forecast-1m": _table_case(
        "forecast-1m",
        "forecast, 2.6M rows / 1M contacts",
        _log(2_600_000, 1_000_000),
        "forecast",
        "forecast",
        AS_OF,
    ),
    # The same, written to CSV on both sides (the script with pandas' to_csv)
    "forecast-1m-csv": _table_case(
        "forecast-1m-csv",
        "forecast, 2.6M rows / 1M contacts, to CSV",
        _log(2_600_000, 1_000_000),
        "forecast",
        "forecast",
        AS_OF,
        suffix=".csv",
    ),
    "rfm-20m": _table_case(
        "rfm-20m",
        "rfm, 20M rows / 2M contacts",
        _log(20_000_000, 2_000_000),
        "rfm",
        "rfm",
        AS_OF,
        floor=True,
    ),
}
DEFAULT_CASES = ["help", "rfm-cdnow", "forecast-retail", "rfm-5m", "forecast-1m"]


def make_input(key: str, folder: Path) -> Path:
    """The case's input file, made in a child process: this process stays small, because
    Linux keeps a process's peak RSS across exec, so a child forked from a large parent would
    report the parent's memory as its own peak."""
    done = subprocess.run(
        [sys.executable, __file__, "--make", key, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def run_process(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``argv`` to its end (with ``env`` added to this process's environment): wall and
    CPU seconds and peak RSS of that process."""
    environment = {**os.environ, **(env or {})}
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=cwd, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{error[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss * 1024 / MB,
    }


def median_row(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs of one side (the runs themselves for one run)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--work-dir", default=None, help="folder for the inputs and outputs")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this many times, alternated, and print the medians (and the "
        "range of wall seconds): a machine whose speed drifts moves both sides alike",
    )
    parser.add_argument(
        "--same-numpy-pages",
        action="store_true",
        help="run the lifetimes script with NUMPY_MADVISE_HUGEPAGE=0, the setting the clvcast "
        "command gives itself",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="in the rfm cases on Parquet, also run the floor: one DuckDB statement that "
        "makes the same table and checks nothing (the least any checked command can take)",
    )
    parser.add_argument("--make", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.make:
        print(CASES[args.make[0]].make_input(Path(args.make[1])))
        return 0
    if args.list:
        for case in CASES.values():
            print(f"{case.name:<16} {case.what}")
        return 0
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    script_env = {"NUMPY_MADVISE_HUGEPAGE": "0"} if args.same_numpy_pages else {}
    if args.same_numpy_pages:
        print("the lifetimes script runs with NUMPY_MADVISE_HUGEPAGE=0, as clvcast does")
    header = (
        f"{'case':<16} {'side':<10} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}   "
        f"lifetimes/clvcast: wall  cpu  peak"
    )
    print(header)
    if args.work_dir is not None:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clvcast-bench-", dir=args.work_dir) as name:
        folder = Path(name)
        for key in args.cases:
            case = CASES[key]
            source = make_input(key, folder)
            floor = args.floor and case.floor is not None
            runs: dict[str, list[dict[str, float]]] = {"clvcast": [], "lifetimes": []}
            runs.update({"floor": []} if floor else {})
            for _ in range(args.repeat):  # alternated: drift moves both sides alike
                runs["clvcast"].append(run_process(case.clvcast(folder, source), folder))
                script = case.lifetimes(folder, source)
                runs["lifetimes"].append(run_process(script, folder, script_env))
                if floor:
                    runs["floor"].append(run_process(case.floor(folder, source), folder))
            medians = {side: median_row(side_runs) for side, side_runs in runs.items()}
            ours, theirs = medians["clvcast"], medians["lifetimes"]
            for side, row in medians.items():
                walls = sorted(run["wall"] for run in runs[side])
                spread = f"  ({walls[0]:.2f}-{walls[-1]:.2f})" if len(walls) > 1 else ""
                print(
                    f"{case.name:<16} {side:<10} {row['wall']:>8.2f} {row['cpu']:>8.2f} "
                    f"{row['peak_mb']:>8.0f}",
                    end="",
                )
                against = {"lifetimes": ours, "floor": row}.get(side)
                if against is not None:  # the floor's line: lifetimes / floor
                    print(
                        f"   {theirs['wall'] / against['wall']:>22.2f}x "
                        f"{theirs['cpu'] / against['cpu']:.2f}x "
                        f"{theirs['peak_mb'] / against['peak_mb']:.2f}x",
                        end="",
                    )
                print(spread, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
