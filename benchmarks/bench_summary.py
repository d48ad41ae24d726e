"""Benchmark: per-contact summary (frequency, recency, T, monetary_value), clvcast vs lifetimes.

Measures, on the same synthetic purchase log and in one run:

- lifetimes: ``lifetimes.utils.summary_data_from_transaction_data(transactions, "contact_id",
  "date", monetary_value_col="amount", observation_period_end=AS_OF, freq="D")``
- clvcast: ``clvcast.summary.summarize(transactions, AS_OF)`` (one DuckDB query).

The parent process generates N transactions with a seeded numpy generator (string contact ids,
timestamps over about two years with several purchases on one day for some contacts, lognormal
amounts) and writes them once to a Parquet file in a temporary folder. Each side then runs in its
own fresh child process (this script in ``--worker`` mode), so peak memory of one side does not
pollute the other: the child loads the Parquet file with pandas, records its RSS after the load,
times the summary call with ``time.perf_counter`` and reports its peak RSS (``ru_maxrss``) and
the peak over the loaded data. Both children write their four result columns, and the parent
checks they are equal (same contacts, ``np.allclose`` with ``rtol=1e-9``).

Run (from the repository root, with the project's virtualenv)::

    python benchmarks/bench_summary.py [--rows 10000000] [--contacts 1000000] [--json out.json]

It prints the machine's cpu count, the library versions and a table with seconds, peak RSS,
peak RSS over the loaded data and the lifetimes / clvcast ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

AS_OF = "2024-12-15"
START = np.datetime64("2023-01-01T00:00:00", "s")
END = np.datetime64("2025-01-01T00:00:00", "s")  # exclusive; rows after AS_OF are ignored
SEED = 20240607
SIDES = ("lifetimes", "clvcast")
RESULT_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# data generation (parent)
# --------------------------------------------------------------------------------------------


def generate(rows: int, contacts: int, path: Path, seed: int = SEED) -> dict[str, object]:
    """Write a synthetic purchase log (contact_id, date, amount) to ``path`` as Parquet.

    Every contact buys at least once; the other rows go to contacts with heavy-tailed weights,
    so frequent buyers often buy twice on the same day (summed into one purchase day).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if contacts < 1 or rows < contacts:
        raise SystemExit(f"need 1 <= contacts <= rows, got contacts={contacts}, rows={rows}")
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.5, size=contacts) + 0.05
    weights /= weights.sum()
    extra = rng.choice(contacts, size=rows - contacts, p=weights)
    contact_index = np.concatenate([np.arange(contacts), extra])
    rng.shuffle(contact_index)

    span = int((END - START) / np.timedelta64(1, "s"))
    seconds = rng.integers(0, span, size=rows)
    dates = (START + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")
    amounts = np.round(rng.lognormal(mean=3.5, sigma=0.8, size=rows), 2)

    width = max(7, len(str(contacts - 1)))
    names = pa.array([f"c{i:0{width}d}" for i in range(contacts)], type=pa.string())
    contact_ids = pa.DictionaryArray.from_arrays(
        pa.array(contact_index.astype(np.int32)), names
    ).cast(pa.string())
    table = pa.table(
        {"contact_id": contact_ids, "date": pa.array(dates), "amount": pa.array(amounts)}
    )
    pq.write_table(table, path)

    days = dates.astype("datetime64[D]")
    keep = days <= np.datetime64(AS_OF, "D")
    order = np.lexsort((days[keep], contact_index[keep]))
    pairs_c, pairs_d = contact_index[keep][order], days[keep][order]
    same_day = int(np.count_nonzero((pairs_c[1:] == pairs_c[:-1]) & (pairs_d[1:] == pairs_d[:-1])))
    return {
        "rows": rows,
        "contacts": contacts,
        "rows_after_as_of": int(rows - np.count_nonzero(keep)),
        "same_day_repeat_rows": same_day,
        "file_mb": round(path.stat().st_size / MB, 1),
    }


# --------------------------------------------------------------------------------------------
# worker (child process, one side)
# --------------------------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _summary_function(side: str):
    if side == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        def run(transactions):
            return summary_data_from_transaction_data(
                transactions,
                "contact_id",
                "date",
                monetary_value_col="amount",
                observation_period_end=AS_OF,
                freq="D",
            )

        return run
    if side == "clvcast":
        from clvcast.summary import summarize

        def run(transactions):
            return summarize(transactions, AS_OF)

        return run
    raise SystemExit(f"unknown side {side!r}; choose one of {SIDES}")


def worker(side: str, data: Path, repeat: int) -> None:
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")  # lifetimes' deprecation noise is not what we measure
    run = _summary_function(side)  # import the library before measuring the loaded RSS
    rss_start = _rss_kib()
    transactions = pd.read_parquet(data)
    rss_loaded = _rss_kib()

    times = []
    for _ in range(repeat):
        result = None  # free the previous result before the next call
        started = time.perf_counter()
        result = run(transactions)
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    out = result[RESULT_COLUMNS].astype("float64")
    out.index = out.index.astype(str)
    out.index.name = "contact_id"
    out.to_parquet(data.parent / f"result_{side}.parquet")
    print(
        json.dumps(
            {
                "side": side,
                "seconds": min(times),
                "all_seconds": times,
                "rss_start_mb": rss_start / 1024,
                "rss_loaded_mb": rss_loaded / 1024,
                "peak_rss_mb": peak / 1024,
                "peak_over_loaded_mb": (peak - rss_loaded) / 1024,
                "input_rows": len(transactions),
                "result_rows": len(result),
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("clvcast", "pandas", "lifetimes", "duckdb", "numpy", "pyarrow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _run_side(side: str, data: Path, repeat: int) -> dict[str, object]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--data",
        str(data),
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{side} worker failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _compare(folder: Path) -> tuple[bool, str]:
    import pandas as pd

    left = pd.read_parquet(folder / "result_lifetimes.parquet").sort_index()
    right = pd.read_parquet(folder / "result_clvcast.parquet").sort_index()
    if len(left) != len(right) or not np.array_equal(
        left.index.to_numpy(dtype=str), right.index.to_numpy(dtype=str)
    ):
        return False, f"different contacts ({len(left)} vs {len(right)} rows)"
    bad = [
        column
        for column in RESULT_COLUMNS
        if not np.allclose(left[column].to_numpy(), right[column].to_numpy(), rtol=1e-9, atol=0)
    ]
    if bad:
        worst = {c: float(np.max(np.abs(left[c].to_numpy() - right[c].to_numpy()))) for c in bad}
        return False, f"columns differ: {worst} (max abs difference)"
    return True, f"{len(left):,} contacts, 4 columns, rtol=1e-9"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="transactions (10,000,000)")
    parser.add_argument("--contacts", type=int, default=None, help="contact ids (rows / 10)")
    parser.add_argument("--repeat", type=int, default=1, help="calls per side; best time kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(args.worker, args.data, max(1, args.repeat))
        return 0

    contacts = args.contacts if args.contacts is not None else max(1, args.rows // 10)
    versions = _versions()
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"machine: {platform.machine()}, cpu_count={cpus} (usable {usable}), {platform.system()}")
    print("versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()))

    folder = Path(tempfile.mkdtemp(prefix="bench_summary_"))
    try:
        data = folder / "transactions.parquet"
        started = time.perf_counter()
        info = generate(args.rows, contacts, data)
        print(
            f"data: {info['rows']:,} rows, {info['contacts']:,} contacts, "
            f"{info['same_day_repeat_rows']:,} same-day repeat rows, "
            f"{info['rows_after_as_of']:,} rows after as-of {AS_OF}, "
            f"parquet {info['file_mb']} MB (generated in {time.perf_counter() - started:.1f} s)"
        )
        results = {}
        for side in SIDES:
            results[side] = _run_side(side, data, max(1, args.repeat))
            print(f"  {side}: done in {results[side]['seconds']:.2f} s", flush=True)
        equal, detail = _compare(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    lt, cv = results["lifetimes"], results["clvcast"]
    ratios = {
        "seconds": _ratio(lt["seconds"], cv["seconds"]),
        "peak_rss_mb": _ratio(lt["peak_rss_mb"], cv["peak_rss_mb"]),
        "peak_over_loaded_mb": _ratio(lt["peak_over_loaded_mb"], cv["peak_over_loaded_mb"]),
    }
    print()
    header = f"{'side':<22}{'seconds':>10}{'peak RSS (MB)':>16}{'peak over loaded (MB)':>24}"
    print(header)
    print("-" * len(header))
    for side in SIDES:
        r = results[side]
        print(
            f"{side:<22}{r['seconds']:>10.2f}{r['peak_rss_mb']:>16.0f}"
            f"{r['peak_over_loaded_mb']:>24.0f}"
        )
    print(
        f"{'lifetimes / clvcast':<22}{ratios['seconds']:>9.1f}x{ratios['peak_rss_mb']:>15.1f}x"
        f"{ratios['peak_over_loaded_mb']:>23.1f}x"
    )
    print(
        f"(RSS after loading the data: lifetimes {lt['rss_loaded_mb']:.0f} MB, "
        f"clvcast {cv['rss_loaded_mb']:.0f} MB)"
    )
    print(f"results equal: {'yes' if equal else 'no'} ({detail})")

    if args.json:
        report = {
            "as_of": AS_OF,
            "seed": SEED,
            "data": info,
            "repeat": max(1, args.repeat),
            "cpu_count": cpus,
            "usable_cpus": usable,
            "versions": versions,
            "results": results,
            "ratios_lifetimes_over_clvcast": ratios,
            "results_equal": equal,
            "comparison": detail,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
