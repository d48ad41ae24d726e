"""When do two threads pay for the churn booster? Fit time on 1 and on every core, by rows.

Fits the ``booster`` scorer's ``HistGradientBoostingClassifier`` (clvcast's settings) on
snapshot-shaped data of growing size, with one OpenMP thread and with every usable core, in
one process and one run. Run it on a quiet machine and once with the cores busy
(``--busy`` starts one spinning process per core beside it) to see both sides of
``THREADS_MIN_ROWS`` in :mod:`clvcast.churn.model`.

    python benchmarks/bench_churn_threads.py [--busy]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from clvcast.churn.features import FEATURE_COLUMNS
from clvcast.churn.model import ChurnModel, usable_cores

SIZES = (25_000, 100_000, 250_000, 500_000, 1_000_000)


def _spin() -> None:
    while True:
        pass


def _data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.lognormal(size=(rows, len(FEATURE_COLUMNS)))
    logit = 1.5 - 0.8 * np.log(X[:, 0]) + 0.5 * np.log(X[:, 1]) + rng.logistic(size=rows)
    return X, (logit > 0).astype(int)


def _fit_seconds(X: np.ndarray, y: np.ndarray, threads: int) -> float:
    model = ChurnModel()
    booster = HistGradientBoostingClassifier(
        max_iter=model.max_iter,
        learning_rate=model.learning_rate,
        max_leaf_nodes=model.max_leaf_nodes,
        min_samples_leaf=model.min_samples_leaf,
        early_stopping=False,
        random_state=0,
    )
    with threadpool_limits(limits=threads, user_api="openmp"):
        started = time.perf_counter()
        booster.fit(X, y)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="keep every core busy meanwhile")
    args = parser.parse_args()
    cores = usable_cores()
    spinners = []
    if args.busy:
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
        for spinner in spinners:
            spinner.start()
    try:
        print(f"{'rows':>10}{'1 thread s':>12}{f'{cores} threads s':>14}{'speed-up':>10}")
        for rows in SIZES:
            X, y = _data(rows)
            one = _fit_seconds(X, y, 1)
            many = _fit_seconds(X, y, cores)
            print(f"{rows:>10,}{one:>12.2f}{many:>14.2f}{one / many:>10.2f}", flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()


if __name__ == "__main__":
    main()
