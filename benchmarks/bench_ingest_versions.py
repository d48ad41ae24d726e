"""Benchmark: is ingestion slower after a change? One command, two versions of clvcast, one run.

Times the whole command ``clvcast rfm --transactions log.parquet --as-of ... --output
rfm.parquet`` (read, check and aggregate the purchase log, summary, RFM table, write) in
fresh processes, for this working tree and for an earlier git revision (checked out with
``git worktree`` into a temporary folder and put first on ``PYTHONPATH``), alternating the
two so that a busy moment of the machine hits both alike. The input is
``bench_summary.py``'s synthetic log (10M rows, 1M contacts by default), written once.

Run (from the repository root, with the project's virtualenv)::

    python benchmarks/bench_ingest_versions.py [--baseline 146ba2a] [--rows 10000000] [--runs 3]

It prints wall and CPU seconds (user + system) per run and the medians, and
checks that both versions wrote the same contacts and scores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_summary import AS_OF, generate

ROOT = Path(__file__).resolve().parents[1]


def _run(src: Path, data: Path, out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one ``clvcast rfm`` process using the code in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "clvcast", "rfm", "--transactions", str(data)]
    command += ["--as-of", AS_OF, "--output", str(out), "--quiet"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="146ba2a", help="git revision to compare with")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clvcast-bench-") as folder:
        tmp = Path(folder)
        data = tmp / "log.parquet"
        generate(args.rows, args.contacts, data)
        baseline = tmp / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
            check=True,
            capture_output=True,
        )
        sides = {f"baseline {args.baseline}": baseline / "src", "this tree": ROOT / "src"}
        results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        try:
            for run in range(args.runs):
                for side, src in sides.items():
                    out = tmp / f"{side.split()[0]}.parquet"
                    results[side].append(_run(src, data, out))
                    wall, cpu = results[side][-1]
                    print(f"run {run + 1} {side:>20}: {wall:6.2f} s wall {cpu:6.2f} s CPU")
            tables = [pd.read_parquet(tmp / f"{side.split()[0]}.parquet") for side in sides]
            key = ["contact_id", "r_score", "f_score", "m_score", "total_spend"]
            same = (
                tables[0][key]
                .sort_values("contact_id", ignore_index=True)
                .equals(tables[1][key].sort_values("contact_id", ignore_index=True))
            )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)],
                check=False,
                capture_output=True,
            )
    print(
        f"\nclvcast rfm, {args.rows:,} rows / {args.contacts:,} contacts, Parquet, cpus: "
        f"{os.cpu_count()}; same contacts and scores: {same}"
    )
    print("| version | median wall s | median CPU s | runs (wall s) |")
    print("|---|---|---|---|")
    for side, runs in results.items():
        walls = [r[0] for r in runs]
        cpus = [r[1] for r in runs]
        shown = ", ".join(f"{w:.2f}" for w in walls)
        print(
            f"| {side} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} | {shown} |"
        )


if __name__ == "__main__":
    main()
