"""Benchmark: train and predict end to end on a large purchase log, on one machine.

Generates N transactions for M contacts (default 100M for 10M) to one Parquet file, in
blocks of simulated fading customers (``clvcast.churn.simulate``, one seed and id prefix per
block, about N / M purchases per contact), then times, each in a fresh process started by
``bench_predict.py``'s launcher (wall time, the command's own peak RSS, CPU seconds):

1. ``clvcast train --transactions data.parquet --as-of DATE --holdout-days 90
   --chunk-contacts C --save model.model --json --verbose`` (summary where the chunk files
   lie, BG/NBD and Gamma-Gamma on the compressed rows, the churn classifier on a sample of
   ``--churn-sample-contacts`` contacts, holdout evaluation on that sample);
2. ``clvcast predict --model model.model --transactions data.parquet --as-of DATE
   --output scored.parquet --chunk-contacts C --json --verbose`` (scored chunk by chunk,
   the Parquet file written chunk by chunk).

Each step's time comes from the commands' ``--verbose`` lines; rows per second are
transaction rows over the step's time. Side by side, plain lifetimes on the first
``--lifetimes-rows`` rows (default 10M): ``summary_data_from_transaction_data`` and a
``BetaGeoFitter`` fit, against clvcast's ``read_transactions`` + ``summarize`` and
``BetaGeoModel`` on the same rows, in one worker process per side.

``--sample-sizes 50000,250000`` also trains on the same data with each churn sample size
and prints the holdout churn metrics of each, to show where a larger sample stops helping.

Run (from the repository root, with the project's virtualenv)::

    python benchmarks/bench_scale.py [--transactions 100000000] [--contacts 10000000]
        [--chunk-contacts 1000000] [--lifetimes-rows 10000000] [--sample-sizes ...]
        [--folder DIR] [--keep] [--json out.json]

It needs free disk of about twice the Parquet file (the chunk files) in ``--folder``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_predict  # the launcher that measures a command's own peak RSS

AS_OF = "2024-06-30"
SEED = 20241123
BLOCK_CONTACTS = 500_000
DEFAULT_ROWS_PER_CONTACT = 13.46  # the simulator's mean at its default rate scale
MB = 1024 * 1024


def generate(rows: int, contacts: int, path: Path) -> dict[str, object]:
    """Write about ``rows`` transactions of ``contacts`` simulated contacts to ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clvcast.churn.simulate import simulate_fading_transactions

    started = time.perf_counter()
    per_contact = rows / contacts
    scale = (1.0 / 45.0) * max(per_contact - 1.0, 0.1) / (DEFAULT_ROWS_PER_CONTACT - 1.0)
    written, writer = 0, None
    try:
        for block in range(math.ceil(contacts / BLOCK_CONTACTS)):
            size = min(BLOCK_CONTACTS, contacts - block * BLOCK_CONTACTS)
            frame, _ = simulate_fading_transactions(
                size, seed=SEED + block, rate_scale=scale, id_prefix=f"c{block:04d}-"
            )
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            written += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return {
        "rows": written,
        "contacts": contacts,
        "file_mb": round(path.stat().st_size / MB, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _clvcast(*args: str) -> list[str]:
    return [sys.executable, "-m", "clvcast", *args]


def _steps(stderr: str, folder: Path) -> dict[str, float]:
    """Step times from --verbose lines, with the work folder left out of the names."""
    found = re.findall(r"^clvcast: (.+): done in ([0-9.]+) s$", stderr, re.M)
    return {name.replace(f"{folder}/", ""): float(seconds) for name, seconds in found}


def run_clvcast(folder: Path, name: str, command: list[str]) -> dict[str, object]:
    result = bench_predict.run_command(command, folder, name)
    result["summary"] = bench_predict._last_json(result.pop("stdout"))
    result["steps"] = _steps(result.pop("stderr"), folder)
    return result


def train(folder: Path, data: Path, chunk: int, sample: int, name: str) -> dict[str, object]:
    return run_clvcast(
        folder,
        name,
        _clvcast(
            "train",
            "--transactions",
            str(data),
            "--as-of",
            AS_OF,
            "--holdout-days",
            "90",
            "--chunk-contacts",
            str(chunk),
            "--churn-sample-contacts",
            str(sample),
            "--work-dir",
            str(folder),
            "--tracking-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--save",
            str(folder / f"{name}.model"),
            "--json",
            "--verbose",
        ),
    )


def predict(
    folder: Path, data: Path, chunk: int, model: Path, engine: str = "local"
) -> dict[str, object]:
    return run_clvcast(
        folder,
        f"predict-{engine}",
        _clvcast(
            "predict",
            "--engine",
            engine,
            "--model",
            str(model),
            "--transactions",
            str(data),
            "--as-of",
            AS_OF,
            "--chunk-contacts",
            str(chunk),
            "--work-dir",
            str(folder),
            "--output",
            str(folder / f"scored-{engine}.parquet"),
            "--scored-at",
            "2024-07-01T00:00:00",
            "--json",
            "--verbose",
        ),
    )


def spark_check(folder: Path, rows: int, chunk: int) -> dict[str, object]:
    """Predict the same data with both engines (Spark in local mode) and compare the tables."""
    import numpy as np
    import pandas as pd

    data = folder / "spark-check.parquet"
    generated = generate(rows, max(1, rows // 10), data)
    train(folder, data, chunk, 100_000, "spark-check-model")
    model = folder / "spark-check-model.model"
    runs = {engine: predict(folder, data, chunk, model, engine) for engine in ("local", "spark")}
    local = pd.read_parquet(folder / "scored-local.parquet")
    spark = pd.read_parquet(folder / "scored-spark.parquet")
    local = local.sort_values("contact_id", ignore_index=True)
    spark = spark.sort_values("contact_id", ignore_index=True)
    worst, unequal = 0.0, []
    for column in local.columns:
        a, b = local[column], spark[column]
        if pd.api.types.is_float_dtype(a):
            x, y = a.to_numpy(float), b.to_numpy(float)
            both = np.isfinite(x) & np.isfinite(y)
            scale = np.maximum(np.abs(x[both]), 1e-300)
            worst = max(worst, float(np.max(np.abs(x[both] - y[both]) / scale, initial=0.0)))
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                unequal.append(column)
        elif not a.astype(str).equals(b.astype(str)):
            unequal.append(column)
    return {
        "rows": generated["rows"],
        "contacts": len(local),
        "same_contacts": local["contact_id"].astype(str).tolist()
        == spark["contact_id"].astype(str).tolist(),
        "max_relative_difference": worst,
        "unequal_columns": unequal,
        "local_seconds": runs["local"]["seconds"],
        "spark_seconds": runs["spark"]["seconds"],
    }


# --- lifetimes side by side (worker processes) ------------------------------------------


def worker(side: str, data: Path, rows: int, report: Path) -> None:
    """Summary and BG/NBD fit on the first ``rows`` rows, timed, in this process."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(data)
    batches, taken = [], 0
    for batch in file.iter_batches(batch_size=1_000_000):
        batches.append(batch)
        taken += batch.num_rows
        if taken >= rows:
            break
    import pyarrow as pa

    frame = pa.Table.from_batches(batches).slice(0, rows).combine_chunks().to_pandas()
    times = {}
    # Imports first: the timings are of the work, not of loading the libraries.
    if side == "lifetimes":
        from lifetimes import BetaGeoFitter
        from lifetimes.utils import summary_data_from_transaction_data

        started = time.perf_counter()
        summary = summary_data_from_transaction_data(
            frame, "contact_id", "date", "amount", observation_period_end=AS_OF, freq="D"
        )
        times["summary"] = time.perf_counter() - started
        started = time.perf_counter()
        BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        times["fit BG/NBD"] = time.perf_counter() - started
    else:
        from clvcast.data import read_transactions
        from clvcast.models import BetaGeoModel
        from clvcast.summary import summarize

        # The same input as lifetimes' function: the raw rows (summarize sums same-day rows).
        started = time.perf_counter()
        summary = summarize(frame, AS_OF)
        times["summary"] = time.perf_counter() - started
        started = time.perf_counter()
        BetaGeoModel().fit(summary)
        times["fit BG/NBD"] = time.perf_counter() - started
        started = time.perf_counter()
        read_transactions(frame, as_of=AS_OF)  # validation, which lifetimes does not do
        times["read_transactions"] = time.perf_counter() - started
    report.write_text(json.dumps({"rows": len(frame), "times": times}), encoding="utf-8")


def side_by_side(folder: Path, data: Path, rows: int) -> dict[str, object]:
    results = {}
    for side in ("clvcast", "lifetimes"):
        report = folder / f"worker-{side}.json"
        command = [sys.executable, __file__, "--worker", side, str(data), str(rows), str(report)]
        measured = bench_predict.run_command(command, folder, f"worker-{side}")
        results[side] = {
            **json.loads(report.read_text(encoding="utf-8")),
            "seconds": measured["seconds"],
            "peak_rss_mb": measured["peak_rss_mb"],
        }
    return results


# --- printing ------------------------------------------------------------------------------


def _line(name: str, seconds: float, rows: int, rss: float | None = None) -> str:
    rate = f"{rows / seconds:>12,.0f}" if seconds else " " * 12
    memory = f"{rss:>10,.0f}" if rss is not None else ""
    return f"{name:<62} {seconds:>8.1f} {rate} {memory}"


def print_run(name: str, result: dict[str, object], rows: int) -> None:
    print(_line(f"clvcast {name} (whole command)", result["seconds"], rows, result["peak_rss_mb"]))
    for step, seconds in result["steps"].items():
        print(_line(f"  {step}"[:62], seconds, rows))


def run_main(args: argparse.Namespace, folder: Path, report: dict[str, object]) -> None:
    """Generate, train, predict, compare with lifetimes and the churn sample sizes."""
    data = folder / "transactions.parquet"
    generated = generate(args.transactions, args.contacts, data)
    report["data"] = generated
    rows = generated["rows"]
    print(
        f"data: {rows:,} transactions, {args.contacts:,} contacts, "
        f"{generated['file_mb']} MB Parquet (generated in {generated['seconds']} s)"
    )
    trained = train(folder, data, args.chunk_contacts, args.churn_sample_contacts, "train")
    scored = predict(folder, data, args.chunk_contacts, folder / "train.model")
    report["train"], report["predict"] = trained, scored
    total = trained["seconds"] + scored["seconds"]
    peak = max(trained["peak_rss_mb"], scored["peak_rss_mb"])
    print()
    print(f"{'stage':<62} {'seconds':>8} {'rows/s':>12} {'peak MB':>10}")
    print_run("train", trained, rows)
    print_run("predict", scored, rows)
    print(_line("train + predict", total, rows, peak))
    met = total < 300 and peak < 8 * 1024
    verdict = ("yes" if met else "no") if rows >= 95_000_000 else "not this size"
    print(
        f"bar: 100M transactions / 10M contacts under 5 minutes with peak under 8 GiB: "
        f"{verdict} ({total / 60:.1f} min, {peak / 1024:.2f} GiB = "
        f"{peak * MB / 1e9:.2f} GB for {rows:,} rows)"
    )
    metrics = trained["summary"].get("metrics", {})
    churn = {k: v for k, v in metrics.items() if k.startswith("churn_roc_auc")}
    print(f"holdout churn ROC-AUC (sample {args.churn_sample_contacts:,}): {churn}")

    if args.lifetimes_rows:
        compared = side_by_side(folder, data, min(args.lifetimes_rows, rows))
        report["side_by_side"] = compared
        print()
        print(f"side by side on the first {compared['clvcast']['rows']:,} rows:")
        for step in ("summary", "fit BG/NBD"):
            ours = compared["clvcast"]["times"][step]
            theirs = compared["lifetimes"]["times"][step]
            print(
                f"  {step:<12} clvcast {ours:8.2f} s   lifetimes {theirs:8.2f} s   "
                f"{theirs / ours:6.1f}x"
            )
        for side in ("clvcast", "lifetimes"):
            print(f"  peak RSS {side}: {compared[side]['peak_rss_mb']:,.0f} MB")

    sizes = [int(size) for size in args.sample_sizes.split(",") if size]
    if sizes:
        report["sample_sizes"] = {}
        print()
        print("churn sample size -> holdout metrics (same data):")
        for size in sizes:
            run = train(folder, data, args.chunk_contacts, size, f"train-sample-{size}")
            found = run["summary"].get("metrics", {})
            keep = ("churn_roc_auc", "churn_roc_auc_high_value", "churn_brier", "holdout_rmse")
            chosen = {k: round(found[k], 4) for k in keep if k in found}
            report["sample_sizes"][size] = {**chosen, "seconds": run["seconds"]}
            print(f"  {size:>9,} contacts: {chosen}, train {run['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--launch"]:
        return bench_predict.launch(Path(argv[1]), argv[2:])
    if argv[:1] == ["--worker"]:
        worker(argv[1], Path(argv[2]), int(argv[3]), Path(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000_000)
    parser.add_argument("--contacts", type=int, default=10_000_000)
    parser.add_argument("--chunk-contacts", type=int, default=1_000_000)
    parser.add_argument("--churn-sample-contacts", type=int, default=100_000)
    parser.add_argument("--lifetimes-rows", type=int, default=10_000_000)
    parser.add_argument("--sample-sizes", default="", help="e.g. 50000,250000")
    parser.add_argument(
        "--spark-rows",
        type=int,
        default=0,
        help="also predict this many transactions with --engine spark (local mode) and "
        "compare with the local engine's table (e.g. 1000000)",
    )
    parser.add_argument("--skip-main", action="store_true", help="only the extra checks")
    parser.add_argument(
        "--folder", default=None, help="work folder, made if missing (default: a temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)

    if args.folder is not None:
        Path(args.folder).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.folder))
    report: dict[str, object] = {"versions": bench_predict._versions()}
    try:
        print(
            f"machine: {bench_predict.platform.machine()}, cpu_count={bench_predict.os.cpu_count()}"
        )
        print("versions:", ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
        if not args.skip_main:
            run_main(args, folder, report)
        if args.spark_rows:
            checked = spark_check(folder, args.spark_rows, args.chunk_contacts)
            report["spark_check"] = checked
            print()
            print(
                f"Spark local mode vs local engine on {checked['rows']:,} transactions "
                f"({checked['contacts']:,} contacts): same contacts {checked['same_contacts']}, "
                f"max relative difference {checked['max_relative_difference']:.2e}, "
                f"unequal columns {checked['unequal_columns'] or 'none'}; predict "
                f"{checked['local_seconds']:.1f} s local, {checked['spark_seconds']:.1f} s Spark"
            )
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
