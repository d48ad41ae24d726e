"""Accuracy on real purchase logs: churn risk and forecasts against what really happened.

For each data set the model is trained on the history up to an as-of date only and scored
there; the truth is what each contact did in the next H days. Per data set and population
(all contacts, high-value contacts = M score 4-5 at the as-of date) it prints

- ROC-AUC of clvcast's ``churn_risk``, of BG/NBD's P(no purchase in H) and of recency;
- Brier score of ``churn_risk`` and of BG/NBD, the mean risk and the realised churn rate;
- the scorer the churn model chose on its own validation snapshot;
- the purchase forecast's holdout MAE, RMSE and aggregate error (BG/NBD fitted up to as-of);

and checks the bars of issue 11: churn AUC >= the better of BG/NBD and recency (both
populations), Brier <= BG/NBD's, |mean risk - churn rate| <= 0.03, and expected drift dates
that agree with the risk (never "drifting already" below 0.5; within H exactly below 0.5).

Data: every ``*.csv`` of ``--data DIR`` (columns contact_id, date, amount), and the two CDNOW
logs shipped with lifetimes: CDNOW_master (as-of 1998-03-31, H = 90) and the 2,357-customer
BTYD sample CDNOW_sample (as-of = last date - 90, H = 90). The default split of a CSV is H = 90 days
and as-of = its last date - H; ``--horizon NAME=DAYS`` and ``--as-of NAME=DATE`` override it
(NAME = file name without .csv).

    python benchmarks/bench_accuracy.py --data ../shared/data --horizon apparel=180
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from clvcast.churn import ChurnModel
from clvcast.churn.features import SnapshotSeries
from clvcast.churn.model import HIGH_VALUE_M_SCORES
from clvcast.data import read_transactions
from clvcast.data.cdnow import load_cdnow_master
from clvcast.models.evaluation import evaluate_holdout

MEAN_RISK_TOLERANCE = 0.03


@dataclass
class DataSet:
    name: str
    purchases: pd.DataFrame
    as_of: pd.Timestamp
    horizon_days: int


def _pairs(items: list[str], kind: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--{kind} {item!r}: use NAME=VALUE")
        pairs[name] = value
    return pairs


def load_data_sets(
    folder: Path | None, horizons: dict[str, str], as_ofs: dict[str, str], cdnow: bool
) -> list[DataSet]:
    sets = []
    if cdnow:
        log = read_transactions(load_cdnow_master(), date_format="%Y%m%d", name="CDNOW_master")
        horizon = int(horizons.get("cdnow_master", 90))
        as_of = pd.Timestamp(as_ofs.get("cdnow_master", "1998-03-31"))
        sets.append(DataSet("cdnow_master", log.purchases, as_of, horizon))
        sample = pd.read_csv(
            resources.files("lifetimes.datasets").joinpath("CDNOW_sample.txt"),
            sep=r"\s+",
            header=None,
            names=["contact_id", "sample_id", "date", "cds", "amount"],
            dtype={"contact_id": str, "date": str},
        )
        log = read_transactions(
            sample[["contact_id", "date", "amount"]], date_format="%Y%m%d", name="CDNOW_sample"
        )
        horizon = int(horizons.get("cdnow_sample", 90))
        last = log.purchases["date"].max()
        as_of = pd.Timestamp(as_ofs.get("cdnow_sample", last - pd.Timedelta(days=horizon)))
        sets.append(DataSet("cdnow_sample", log.purchases, as_of, horizon))
    for path in sorted(folder.glob("*.csv")) if folder else []:
        log = read_transactions(path)
        horizon = int(horizons.get(path.stem, 90))
        last = log.purchases["date"].max()
        as_of = pd.Timestamp(as_ofs.get(path.stem, last - pd.Timedelta(days=horizon)))
        sets.append(DataSet(path.stem, log.purchases, as_of, horizon))
    return sets


def evaluate(data: DataSet) -> dict[str, object]:
    started = time.perf_counter()
    purchases, day, horizon = data.purchases, data.as_of, data.horizon_days
    history = purchases.loc[purchases["date"] <= day]
    future = SnapshotSeries(purchases, horizon)  # labels: the true next H days
    features, _ = future.features(day)
    labels = future.labels(day).to_numpy()
    model = ChurnModel(horizon_days=horizon).fit(history, day)
    scored = model.score(history, day).reindex(features.index)
    risk = scored["churn_risk"].to_numpy()
    fit_seconds = time.perf_counter() - started
    scores = {
        "clvcast": risk,
        "bgnbd": features["bgnbd_no_purchase"].to_numpy(),
        "recency": features["days_since_last_purchase"].to_numpy(dtype=float),
    }
    high = features["m_score"].isin(HIGH_VALUE_M_SCORES).to_numpy()
    row: dict[str, object] = {
        "data": data.name,
        "as_of": str(day.date()),
        "H": horizon,
        "contacts": len(labels),
        "churn_rate": float(labels.mean()),
        "scorer": model.scorer_,
        "seconds": fit_seconds,
    }
    for population, mask in (("all", np.ones(len(labels), bool)), ("hv", high)):
        for name, values in scores.items():
            row[f"auc_{name}_{population}"] = roc_auc_score(labels[mask], values[mask])
    row["brier_clvcast"] = brier_score_loss(labels, risk)
    row["brier_bgnbd"] = brier_score_loss(labels, scores["bgnbd"])
    row["mean_risk"] = float(risk.mean())
    holdout = evaluate_holdout(purchases, day, day + pd.Timedelta(days=horizon))
    row["forecast_mae"] = holdout.metrics["mae"]
    row["forecast_rmse"] = holdout.metrics["rmse"]
    row["forecast_aggregate_error_pct"] = holdout.metrics["aggregate_error_pct"]
    row["drift_agrees"] = drift_agrees_with_risk(scored, day, horizon)
    row["bars"] = check_bars(row)
    return row


def drift_agrees_with_risk(scored: pd.DataFrame, day: pd.Timestamp, horizon: int) -> bool:
    """No "drifting already" with a risk below 0.5; a date within H exactly when risk < 0.5."""
    drifting = scored["expected_drift_date"] == day
    low = scored["churn_risk"] < 0.5
    within = scored["expected_drift_date"] <= day + pd.Timedelta(days=horizon)
    return bool(not (drifting & low).any() and (within == (low | drifting)).all())


def check_bars(row: dict[str, object]) -> str:
    """'met', or the bars that fail."""
    failed = []
    for population in ("all", "hv"):
        ours = row[f"auc_clvcast_{population}"]
        best = max(row[f"auc_bgnbd_{population}"], row[f"auc_recency_{population}"])
        if ours < best:
            failed.append(f"AUC {population} {ours:.4f} < {best:.4f}")
    if row["brier_clvcast"] > row["brier_bgnbd"]:
        failed.append("Brier")
    if abs(row["mean_risk"] - row["churn_rate"]) > MEAN_RISK_TOLERANCE:
        failed.append("mean risk")
    if not row["drift_agrees"]:
        failed.append("drift dates disagree with risk")
    return "met" if not failed else "; ".join(failed)


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| data (contacts) | as-of, H | scorer | churn AUC all / high value | BG/NBD P(no purchase) "
        "| recency | Brier clvcast / BG/NBD | mean risk / churn rate | forecast MAE / RMSE / "
        "aggregate error | bars |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} ({r['contacts']:,}) | {r['as_of']}, {r['H']} | {r['scorer']} "
            f"| {r['auc_clvcast_all']:.4f} / {r['auc_clvcast_hv']:.4f} "
            f"| {r['auc_bgnbd_all']:.4f} / {r['auc_bgnbd_hv']:.4f} "
            f"| {r['auc_recency_all']:.4f} / {r['auc_recency_hv']:.4f} "
            f"| {r['brier_clvcast']:.4f} / {r['brier_bgnbd']:.4f} "
            f"| {r['mean_risk']:.3f} / {r['churn_rate']:.3f} "
            f"| {r['forecast_mae']:.3f} / {r['forecast_rmse']:.3f} / "
            f"{r['forecast_aggregate_error_pct']:+.1f}% | {r['bars']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder of purchase-log CSVs")
    parser.add_argument("--horizon", action="append", default=[], metavar="NAME=DAYS")
    parser.add_argument("--as-of", action="append", default=[], metavar="NAME=DATE")
    parser.add_argument("--no-cdnow", action="store_true", help="leave out the CDNOW logs")
    args = parser.parse_args()
    sets = load_data_sets(
        args.data, _pairs(args.horizon, "horizon"), _pairs(args.as_of, "as-of"), not args.no_cdnow
    )
    rows = []
    for data in sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the numbers are the output here
            row = evaluate(data)
        rows.append(row)
        print(
            f"{data.name}: scorer {row['scorer']}, AUC {row['auc_clvcast_all']:.4f} "
            f"(BG/NBD {row['auc_bgnbd_all']:.4f}), bars {row['bars']}, "
            f"{row['seconds']:.1f} s",
            flush=True,
        )
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
