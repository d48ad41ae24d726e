"""Benchmark: BG/NBD + Gamma-Gamma fit and per-contact scoring, clvcast vs lifetimes.

Measures, on the same synthetic customer summary and in one run, for each size (1M and 10M
contacts by default), with time in days on both sides:

- lifetimes 0.11.3, written as a user would:

  - fit BG/NBD: ``BetaGeoFitter().fit(frequency, recency, T)``
  - fit Gamma-Gamma: ``GammaGammaFitter().fit(frequency[f > 0], monetary_value[f > 0])``
  - score: ``conditional_expected_number_of_purchases_up_to_time(365, ...)``,
    ``conditional_probability_alive(...)`` and ``customer_lifetime_value(bgf, ...,
    time=12, discount_rate=0.01, freq="D")`` (twelve 30-day months, so 360 days);

- clvcast: ``CLVForecaster(horizon_days=360, month_days=30, discount_rate_monthly=0.01)``,
  whose ``fit(summary)`` fits both models (the two fits are timed separately by wrapping
  ``BetaGeoModel.fit`` and ``GammaGammaModel.fit``) and whose ``predict(summary)`` is the
  score stage (360-day purchases, P(alive), expected order value, CLV over 12 x 30 days).
  Expected purchases over 365 days (``bgnbd_.expected_purchases(365, summary)``, to compare
  with lifetimes' 365-day column) are timed as an extra stage outside the total.

The parent draws the summary once per size with ``clvcast.models.simulate_summary`` (BG/NBD
and Gamma-Gamma parameters in days, hidden columns dropped, recency floored to whole days as
in a summary of daily data) and writes it to a Parquet file in a temporary folder. Each side
then runs in its own fresh child process (this script in ``--worker`` mode): it loads the
Parquet file with pandas (not timed), times each stage with ``time.perf_counter``, reports its
peak RSS (``ru_maxrss``) and the peak over the loaded data, and writes its parameters (JSON)
and predictions (Parquet). The parent then checks:

1. parameters: clvcast's r, alpha, a, b, p, q, v within 1e-4 relative of lifetimes';
2. formulas: clvcast's module functions (``bgnbd.expected_purchases``,
   ``bgnbd.probability_alive``, ``forecast.discounted_expected_purchases``,
   ``gamma_gamma.expected_order_value``) evaluated at *lifetimes'* parameters equal lifetimes'
   predictions within 1e-6 relative;
3. plumbing: clvcast's ``predict`` output equals the same module functions at clvcast's own
   parameters within 1e-9 relative (row compression and index alignment are exact);

and reports, for information, how far clvcast's own predictions are from lifetimes' (they
differ only through the parameters). Relative differences are ``|c - l| / max(|l|, 1e-12)``:
the floor only matters for values below 1e-12, which are then compared absolutely.

Run (from the repository root, with the project's virtualenv)::

    python benchmarks/bench_models.py [--sizes 1000000,10000000] [--json out.json]
                                      [--skip-lifetimes-above N] [--repeat 1]

With ``--repeat N`` each side runs N times, each in a fresh process, and the run with the
shortest fit + score is kept (the others' totals are in the JSON output): other processes on a
small machine add noise.

lifetimes needs several minutes and about 4 GB at 10M contacts. The script prints the
machine's cpu count, the library versions and, per size, a table of seconds per stage, peak
RSS, peak RSS over the loaded data and the lifetimes / clvcast ratios, then the checks.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

SEED = 20240611
BGNBD = (0.25, 40.0, 0.8, 2.5)  # r, alpha (days), a, b
GAMMA_GAMMA = (6.0, 3.5, 15.0)  # p, q, v
HORIZON_DAYS, MONTH_DAYS, MONTHS, DISCOUNT = 360, 30, 12, 0.01  # lifetimes' 12 x 30 days
PURCHASE_DAYS = 365  # the expected-purchases horizon a lifetimes user asks for
SUMMARY_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
BGNBD_PARAMS, GG_PARAMS = ("r", "alpha", "a", "b"), ("p", "q", "v")
SIDES = ("lifetimes", "clvcast")  # display order; clvcast runs first (fails fast)
STAGES = ("fit_bgnbd", "fit_gamma_gamma", "score")
PARAM_RTOL, PREDICTION_RTOL, PLUMBING_RTOL, FLOOR = 1e-4, 1e-6, 1e-9, 1e-12
SPEEDUP_TARGET, SECONDS_TARGET, PEAK_MB_TARGET = 10.0, 30.0, 6 * 1024
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# data generation (parent)
# --------------------------------------------------------------------------------------------


def generate(contacts: int, path: Path, seed: int = SEED) -> dict[str, object]:
    """Write a simulated customer summary (frequency, recency, T, monetary_value) as Parquet."""
    from clvcast.models import simulate_summary

    summary = simulate_summary(contacts, bgnbd=BGNBD, gamma_gamma=GAMMA_GAMMA, seed=seed)
    summary = summary[SUMMARY_COLUMNS]  # drop the hidden true_* / alive columns
    # whole days, as in a summary of daily data; floor keeps recency <= T and 0 stays 0
    summary["recency"] = np.floor(summary["recency"].to_numpy())
    summary.to_parquet(path)

    x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    return {
        "contacts": contacts,
        "repeat_buyers": int(np.count_nonzero(x > 0)),
        "distinct_rows": int(len(np.unique(_row_keys(x, t_x, T)))),
        "max_frequency": int(x.max()),
        "max_T": int(T.max()),
        "file_mb": round(path.stat().st_size / MB, 1),
    }


def _row_keys(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """One int64 per (frequency, recency, T) row; all three are whole numbers of days."""
    span = int(T.max()) + 1
    return (x.astype(np.int64) * span + t_x.astype(np.int64)) * span + T.astype(np.int64)


# --------------------------------------------------------------------------------------------
# worker (child process, one side)
# --------------------------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


class _Stages:
    """Seconds per stage, and the process's peak RSS when each stage ended."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb_after: dict[str, float] = {}

    def run(self, stage: str, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        self.record(stage, time.perf_counter() - started)
        return result

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = seconds
        self.peak_mb_after[stage] = _peak_kib() / 1024


def _run_lifetimes(summary, stages: _Stages):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    frequency, recency, T = summary["frequency"], summary["recency"], summary["T"]
    monetary_value = summary["monetary_value"]
    bgf = stages.run("fit_bgnbd", BetaGeoFitter().fit, frequency, recency, T)

    def fit_gamma_gamma():
        repeat = frequency > 0
        return GammaGammaFitter().fit(frequency[repeat], monetary_value[repeat])

    ggf = stages.run("fit_gamma_gamma", fit_gamma_gamma)

    def score():
        return {
            f"purchases_{PURCHASE_DAYS}d": bgf.conditional_expected_number_of_purchases_up_to_time(
                PURCHASE_DAYS, frequency, recency, T
            ),
            "p_alive": bgf.conditional_probability_alive(frequency, recency, T),
            "clv": ggf.customer_lifetime_value(
                bgf,
                frequency,
                recency,
                T,
                monetary_value,
                time=MONTHS,
                discount_rate=DISCOUNT,
                freq="D",
            ),
        }

    predictions = stages.run("score", score)
    params = {**bgf.params_.to_dict(), **ggf.params_.to_dict()}
    return params, predictions, {}


def _timed_method(cls, name: str, stages: _Stages, stage: str) -> None:
    """Replace ``cls.name`` by a wrapper that records its run time as ``stage``."""
    original = getattr(cls, name)

    @functools.wraps(original)
    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            stages.record(stage, time.perf_counter() - started)

    setattr(cls, name, timed)


def _run_clvcast(summary, stages: _Stages):
    from clvcast.models import BetaGeoModel, CLVForecaster, GammaGammaModel, prediction_columns

    # CLVForecaster.fit fits the two models; time each of them inside the public call
    _timed_method(BetaGeoModel, "fit", stages, "fit_bgnbd")
    _timed_method(GammaGammaModel, "fit", stages, "fit_gamma_gamma")
    forecaster = CLVForecaster(
        horizon_days=HORIZON_DAYS, month_days=MONTH_DAYS, discount_rate_monthly=DISCOUNT
    )
    started = time.perf_counter()
    forecaster.fit(summary)
    stages.seconds["fit_total"] = time.perf_counter() - started
    predicted = stages.run("score", forecaster.predict, summary)
    purchases_365 = stages.run(
        "extra_purchases_365d", forecaster.bgnbd_.expected_purchases, PURCHASE_DAYS, summary
    )

    purchases, p_alive, order_value, clv = prediction_columns(HORIZON_DAYS)
    predictions = {
        f"purchases_{PURCHASE_DAYS}d": purchases_365,
        "p_alive": predicted[p_alive],
        "clv": predicted[clv],
        f"purchases_{HORIZON_DAYS}d": predicted[purchases],
        "expected_order_value": predicted[order_value],
    }
    params = {**forecaster.bgnbd_.params_.to_dict(), **forecaster.gamma_gamma_.params_.to_dict()}
    details = {
        "bgnbd_fit_step": forecaster.bgnbd_.fit_step_,
        "gamma_gamma_fit_step": forecaster.gamma_gamma_.fit_step_,
        "bgnbd_rows_fitted": forecaster.bgnbd_.n_rows_fitted_,
        "gamma_gamma_rows_fitted": forecaster.gamma_gamma_.n_rows_fitted_,
    }
    return params, predictions, details


def worker(side: str, data: Path) -> None:
    import pandas as pd

    runner = {"lifetimes": _run_lifetimes, "clvcast": _run_clvcast}[side]
    if side == "lifetimes":  # import the library before measuring the loaded RSS
        import lifetimes  # noqa: F401
    else:
        import clvcast.models  # noqa: F401
    rss_start = _rss_kib()
    summary = pd.read_parquet(data)
    rss_loaded = _rss_kib()

    stages = _Stages()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params, predictions, details = runner(summary, stages)
    peak = _peak_kib()

    frame = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in predictions.items()})
    frame.to_parquet(data.parent / f"predictions_{side}.parquet", index=False)
    fit_score = sum(stages.seconds[s] for s in STAGES)
    print(
        json.dumps(
            {
                "side": side,
                "seconds": {**stages.seconds, "fit_and_score": fit_score},
                "peak_rss_mb_after_stage": stages.peak_mb_after,
                "rss_start_mb": rss_start / 1024,
                "rss_loaded_mb": rss_loaded / 1024,
                "peak_rss_mb": peak / 1024,
                "peak_over_loaded_mb": (peak - rss_loaded) / 1024,
                "params": {k: float(v) for k, v in params.items()},
                "rows": len(summary),
                "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
                **details,
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# checks (parent)
# --------------------------------------------------------------------------------------------


def _max_relative(values: np.ndarray, reference: np.ndarray) -> float:
    """max |values - reference| / max(|reference|, FLOOR); NaN if any value is not finite."""
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(reference))):
        return float("nan")
    return float(np.max(np.abs(values - reference) / np.maximum(np.abs(reference), FLOOR)))


def _within(differences: dict[str, float], tolerance: float) -> bool:
    """True if every difference is at most ``tolerance`` (a NaN difference fails)."""
    return all(value <= tolerance for value in differences.values())


def _formulas(params: dict[str, float], summary, inverse: np.ndarray, first: np.ndarray):
    """clvcast's module functions at ``params``, on unique (x, t_x, T) rows then expanded."""
    from clvcast.models.bgnbd import expected_purchases, probability_alive
    from clvcast.models.forecast import discounted_expected_purchases
    from clvcast.models.gamma_gamma import expected_order_value

    bgnbd = tuple(params[k] for k in BGNBD_PARAMS)
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    ux, utx, uT = x[first], t_x[first], T[first]
    total, discounted = discounted_expected_purchases(
        bgnbd, ux, utx, uT, horizon=HORIZON_DAYS, month=MONTH_DAYS, discount_rate=DISCOUNT
    )
    m = np.where(x > 0, summary["monetary_value"].to_numpy(dtype=float), 0.0)
    order_value = expected_order_value(tuple(params[k] for k in GG_PARAMS), x, m)
    return {
        f"purchases_{PURCHASE_DAYS}d": expected_purchases(bgnbd, PURCHASE_DAYS, ux, utx, uT)[
            inverse
        ],
        "p_alive": probability_alive(bgnbd, x, t_x, T),
        "clv": order_value * discounted[inverse],
        f"purchases_{HORIZON_DAYS}d": total[inverse],
        "expected_order_value": order_value,
    }


def check(folder: Path, results: dict[str, dict]) -> dict[str, object]:
    """Compare parameters and predictions; see the module docstring for the three checks."""
    import pandas as pd

    summary = pd.read_parquet(folder / "data.parquet", columns=SUMMARY_COLUMNS)
    keys = _row_keys(*(summary[c].to_numpy() for c in ("frequency", "recency", "T")))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    clvcast = pd.read_parquet(folder / "predictions_clvcast.parquet")
    checks: dict[str, object] = {}

    own = _formulas(results["clvcast"]["params"], summary, inverse, first)
    plumbing = {c: _max_relative(clvcast[c].to_numpy(), own[c]) for c in clvcast.columns}
    checks["plumbing"] = {"max_relative": plumbing, "ok": _within(plumbing, PLUMBING_RTOL)}

    if "lifetimes" in results:
        lt_params, cv_params = results["lifetimes"]["params"], results["clvcast"]["params"]
        differences = {
            k: abs(cv_params[k] - lt_params[k]) / abs(lt_params[k])
            for k in BGNBD_PARAMS + GG_PARAMS
        }
        checks["params"] = {
            "max_relative": differences,
            "ok": _within(differences, PARAM_RTOL),
        }
        lifetimes = pd.read_parquet(folder / "predictions_lifetimes.parquet")
        at_lifetimes_params = _formulas(lt_params, summary, inverse, first)
        strict = {
            c: _max_relative(at_lifetimes_params[c], lifetimes[c].to_numpy())
            for c in lifetimes.columns
        }
        checks["formulas"] = {"max_relative": strict, "ok": _within(strict, PREDICTION_RTOL)}
        checks["own_fit_vs_lifetimes"] = {
            c: _max_relative(clvcast[c].to_numpy(), lifetimes[c].to_numpy())
            for c in lifetimes.columns
        }
    checks["ok"] = all(v["ok"] for v in checks.values() if isinstance(v, dict) and "ok" in v)
    return checks


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("clvcast", "lifetimes", "pandas", "numpy", "scipy", "autograd", "pyarrow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _run_side(side: str, data: Path) -> dict[str, object]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{side} worker failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _print_table(results: dict[str, dict]) -> dict[str, float]:
    columns = [
        ("fit BG/NBD", "fit_bgnbd"),
        ("fit GG", "fit_gamma_gamma"),
        ("score", "score"),
        ("fit+score", "fit_and_score"),
    ]
    header = f"{'side':<22}" + "".join(f"{name:>12}" for name, _ in columns)
    header += f"{'peak RSS (MB)':>16}{'over loaded (MB)':>18}"
    print(header)
    print("-" * len(header))
    for side in SIDES:
        if side in results:
            r = results[side]
            row = f"{side:<22}" + "".join(f"{r['seconds'][key]:>11.2f}s" for _, key in columns)
            print(row + f"{r['peak_rss_mb']:>16.0f}{r['peak_over_loaded_mb']:>18.0f}")
    if "lifetimes" not in results:
        return {}
    lt, cv = results["lifetimes"], results["clvcast"]
    ratios = {key: _ratio(lt["seconds"][key], cv["seconds"][key]) for _, key in columns}
    ratios["peak_rss_mb"] = _ratio(lt["peak_rss_mb"], cv["peak_rss_mb"])
    ratios["peak_over_loaded_mb"] = _ratio(lt["peak_over_loaded_mb"], cv["peak_over_loaded_mb"])
    row = f"{'lifetimes / clvcast':<22}" + "".join(f"{ratios[key]:>11.1f}x" for _, key in columns)
    print(row + f"{ratios['peak_rss_mb']:>15.1f}x{ratios['peak_over_loaded_mb']:>17.1f}x")
    return ratios


def _print_checks(checks: dict[str, object]) -> None:
    def line(values: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.1e}" for k, v in values.items())

    if "params" in checks:
        p = checks["params"]
        print(f"parameters within {PARAM_RTOL:g}: {'yes' if p['ok'] else 'NO'}")
        print(f"  max relative difference: {line(p['max_relative'])}")
        f = checks["formulas"]
        print(
            f"clvcast formulas at lifetimes' parameters within {PREDICTION_RTOL:g} of "
            f"lifetimes: {'yes' if f['ok'] else 'NO'}"
        )
        print(f"  max relative difference: {line(f['max_relative'])}")
    p = checks["plumbing"]
    print(
        f"clvcast predict() within {PLUMBING_RTOL:g} of its formulas at its own parameters: "
        f"{'yes' if p['ok'] else 'NO'}"
    )
    print(f"  max relative difference: {line(p['max_relative'])}")
    if "own_fit_vs_lifetimes" in checks:
        print("clvcast's own predictions vs lifetimes' (differ through the parameters only):")
        print(f"  max relative difference: {line(checks['own_fit_vs_lifetimes'])}")


def _targets(results: dict[str, dict], ratios: dict[str, float]) -> dict[str, bool]:
    cv = results["clvcast"]
    met = {
        f"clvcast fit+score under {SECONDS_TARGET:g} s": cv["seconds"]["fit_and_score"]
        < SECONDS_TARGET,
        f"clvcast peak RSS under {PEAK_MB_TARGET / 1024:g} GB": cv["peak_rss_mb"] < PEAK_MB_TARGET,
    }
    if ratios:
        met[f"clvcast >= {SPEEDUP_TARGET:g}x faster end to end"] = (
            ratios["fit_and_score"] >= SPEEDUP_TARGET
        )
    print("targets: " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in met.items()))
    return met


def run_size(contacts: int, run_lifetimes: bool, repeat: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="bench_models_"))
    try:
        data = folder / "data.parquet"
        started = time.perf_counter()
        info = generate(contacts, data)
        print(
            f"\n=== {contacts:,} contacts: {info['repeat_buyers']:,} repeat buyers, "
            f"{info['distinct_rows']:,} distinct (frequency, recency, T) rows, max frequency "
            f"{info['max_frequency']}, max T {info['max_T']} days, parquet {info['file_mb']} MB "
            f"(generated in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        results = {}
        for side in ("clvcast", "lifetimes") if run_lifetimes else ("clvcast",):
            runs = [_run_side(side, data) for _ in range(repeat)]
            totals = [run["seconds"]["fit_and_score"] for run in runs]
            results[side] = {**min(runs, key=lambda run: run["seconds"]["fit_and_score"])}
            results[side]["all_fit_and_score"] = totals
            print(
                f"  {side}: done, fit+score " + ", ".join(f"{t:.2f}" for t in totals) + " s",
                flush=True,
            )
        checks = check(folder, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print()
    ratios = _print_table(results)
    cv = results["clvcast"]
    print(
        f"(not in the total: clvcast expected purchases over {PURCHASE_DAYS} days "
        f"{cv['seconds']['extra_purchases_365d']:.2f} s; RSS after loading the data: "
        + ", ".join(f"{side} {results[side]['rss_loaded_mb']:.0f} MB" for side in results)
        + ")"
    )
    print(f"clvcast fit steps: BG/NBD {cv['bgnbd_fit_step']}, GG {cv['gamma_gamma_fit_step']}")
    for side, r in results.items():
        for message in r["warnings"]:
            print(f"  warning ({side}): {message[:160]}")
    _print_checks(checks)
    targets = _targets(results, ratios)
    if not run_lifetimes:
        print("(lifetimes skipped at this size: no ratios, parameter or formula check)")
    return {
        "data": info,
        "results": results,
        "ratios_lifetimes_over_clvcast": ratios,
        "checks": checks,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000000,10000000", help="contacts per run, comma-separated"
    )
    parser.add_argument(
        "--skip-lifetimes-above",
        type=int,
        default=None,
        metavar="N",
        help="run only clvcast for sizes above N contacts",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="fresh runs per side; fastest fit+score kept"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(args.worker, args.data)
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.repeat < 1:
        raise SystemExit(f"--repeat must be at least 1, got {args.repeat}")
    if not sizes or min(sizes) < 1000:
        raise SystemExit(f"--sizes needs contact counts of at least 1000, got {args.sizes!r}")
    versions = _versions()
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"machine: {platform.machine()}, cpu_count={cpus} (usable {usable}), {platform.system()}")
    print("versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()))
    print(
        f"model: BG/NBD (r, alpha, a, b) = {BGNBD}, Gamma-Gamma (p, q, v) = {GAMMA_GAMMA}, "
        f"days; CLV over {MONTHS} x {MONTH_DAYS} days at {DISCOUNT:.0%} a month; seed {SEED}"
    )

    runs = {}
    for contacts in sizes:
        skip = args.skip_lifetimes_above is not None and contacts > args.skip_lifetimes_above
        runs[str(contacts)] = run_size(contacts, run_lifetimes=not skip, repeat=args.repeat)
    equal = all(run["checks"]["ok"] for run in runs.values())
    print(f"\nall checks passed: {'yes' if equal else 'NO'}")

    if args.json:
        report = {
            "seed": SEED,
            "bgnbd": BGNBD,
            "gamma_gamma": GAMMA_GAMMA,
            "cpu_count": cpus,
            "usable_cpus": usable,
            "versions": versions,
            "repeat": args.repeat,
            "runs": runs,
            "all_checks_passed": equal,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
