"""Calibration/holdout evaluation of the forecasts, as numbers (lifetimes #438, #407).

Fit on the purchases up to ``calibration_end``, predict each contact's purchases in the
holdout (``calibration_end``, ``observation_end``], and compare with what happened:

- per contact: actual and predicted holdout purchases, the naive baseline, order values;
- aggregate: MAE, RMSE, bias and total % error for the model and the baseline
  ("repeat the calibration rate": ``frequency_cal / T_cal * holdout days``);
- by calibration frequency 0, 1, ..., 6, 7+: contacts, actual and predicted mean purchases
  (the table of the BTYD walkthrough);
- tracking: cumulative repeat purchases per day, actual vs expected;
- optionally the same numbers for MBG/NBD and Pareto/NBD (lifetimes fitters) to pick a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clvcast.data import parse_as_of
from clvcast.errors import InputError
from clvcast.estimator import clone
from clvcast.models.bgnbd import expected_purchases_new_contact
from clvcast.models.fitting import compress_rows
from clvcast.models.forecast import CLVForecaster
from clvcast.summary import calibration_holdout, purchases_frame
from clvcast.text_ids import isin_ids

FREQUENCY_BUCKETS = ("0", "1", "2", "3", "4", "5", "6", "7+")


@dataclass
class HoldoutEvaluation:
    """The result of :func:`evaluate_holdout`."""

    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    contacts: pd.DataFrame
    metrics: dict[str, float]
    by_frequency: pd.DataFrame
    tracking: pd.DataFrame
    forecaster: CLVForecaster
    comparison: pd.DataFrame | None = field(default=None)

    @property
    def holdout_days(self) -> int:
        return int((self.observation_end - self.calibration_end).days)

    def format(self) -> str:
        """A short report, as the CLI prints it."""
        m = self.metrics
        lines = [
            f"Holdout evaluation: calibration to {self.calibration_end.date()}, holdout "
            f"{self.holdout_days} days to {self.observation_end.date()}, "
            f"{int(m['contacts']):,} contacts",
            f"  {'':<28}{'BG/NBD':>12}{'baseline':>12}",
            f"  {'total holdout purchases':<28}{m['predicted_total']:>12,.0f}"
            f"{m['baseline_total']:>12,.0f}   actual {m['actual_total']:,.0f}",
            f"  {'aggregate error %':<28}{m['aggregate_error_pct']:>12.1f}"
            f"{m['baseline_aggregate_error_pct']:>12.1f}",
            f"  {'MAE per contact':<28}{m['mae']:>12.3f}{m['baseline_mae']:>12.3f}",
            f"  {'RMSE per contact':<28}{m['rmse']:>12.3f}{m['baseline_rmse']:>12.3f}",
            f"  {'bias per contact':<28}{m['bias']:>12.3f}{m['baseline_bias']:>12.3f}",
        ]
        if np.isfinite(m.get("order_value_mae", np.nan)):
            lines.append(
                f"  {'order value MAE':<28}{m['order_value_mae']:>12.2f}"
                f"{m['order_value_baseline_mae']:>12.2f}   "
                f"({int(m['order_value_contacts']):,} repeat buyers with holdout orders)"
            )
        lines.append("  mean holdout purchases by calibration frequency:")
        lines.append(f"    {'x':>4}{'contacts':>10}{'actual':>10}{'BG/NBD':>10}{'baseline':>10}")
        for bucket, row in self.by_frequency.iterrows():
            lines.append(
                f"    {bucket:>4}{int(row['contacts']):>10,}{row['actual_mean']:>10.3f}"
                f"{row['predicted_mean']:>10.3f}{row['baseline_mean']:>10.3f}"
            )
        if self.comparison is not None:
            lines.append("  model comparison on the same split (best holdout RMSE first):")
            for name, row in self.comparison.iterrows():
                lines.append(
                    f"    {name:<12} log-lik {row['log_likelihood']:>12,.1f}  "
                    f"MAE {row['mae']:.3f}  RMSE {row['rmse']:.3f}  "
                    f"aggregate error {row['aggregate_error_pct']:+.1f}%"
                )
            if models_agree(self.comparison):
                lines.append(
                    "    the models' holdout errors agree within 1%: they differ in how "
                    "customers drop out, so the data show little dropout to tell them apart "
                    "(a short history, or customers who rarely leave); choose by simplicity."
                )
        return "\n".join(lines)


def models_agree(comparison: pd.DataFrame, tolerance: float = 0.01) -> bool:
    """Whether every model's holdout RMSE and MAE are within ``tolerance`` (relative)."""
    spread = comparison[["rmse", "mae"]].agg(lambda c: (c.max() - c.min()) / c.min())
    return bool(len(comparison) > 1 and (spread <= tolerance).all())


def _errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    difference = predicted - actual
    total = actual.sum()
    return {
        "mae": float(np.mean(np.abs(difference))),
        "rmse": float(np.sqrt(np.mean(difference**2))),
        "bias": float(np.mean(difference)),
        "aggregate_error_pct": float(100 * (predicted.sum() - total) / total) if total else np.nan,
    }


def _frequency_bucket(frequency: pd.Series) -> pd.Series:
    return frequency.clip(upper=7).astype(int).astype(str).replace("7", "7+")


def evaluate_holdout(
    purchases: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp,
    *,
    forecaster: CLVForecaster | None = None,
    compare_models: bool = False,
) -> HoldoutEvaluation:
    """Fit a copy of ``forecaster`` on the calibration period and score the holdout.

    ``purchases`` is a purchase log (``contact_id``, ``date``, ``amount``). Contacts whose
    first purchase is after ``calibration_end`` are not in the evaluation.
    """
    purchases = purchases_frame(purchases)
    cal_end = parse_as_of(calibration_end)
    obs_end = parse_as_of(observation_end)
    first = pd.Timestamp(purchases["date"].min()) if len(purchases) else None
    if first is not None and cal_end < first.normalize():
        days = (obs_end - cal_end).days
        history = (obs_end - first.normalize()).days
        raise InputError(
            f"a holdout of {days:,} days before {obs_end.date()} starts before the first "
            f"purchase ({first.date()}), so the models would have no history to learn "
            f"from; choose a holdout well within the {history:,} days of history "
            "(holdout_days; CLI --holdout-days)."
        )
    split = calibration_holdout(purchases, cal_end, obs_end)
    summary = split[["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal"]]
    summary = summary.rename(columns=lambda c: c.removesuffix("_cal"))
    summary.attrs["time_unit_days"] = 1.0
    model = clone(forecaster) if forecaster is not None else CLVForecaster()
    model.fit(summary, time_unit_days=1.0)
    holdout_days = float((obs_end - cal_end).days)

    actual = split["frequency_holdout"].to_numpy(dtype=float)
    predicted = model.bgnbd_.expected_purchases(holdout_days, summary).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(summary["T"] > 0, summary["frequency"] / summary["T"], 0.0)
    baseline = rate * holdout_days
    contacts = split.copy()
    contacts["predicted_holdout"] = predicted
    contacts["baseline_holdout"] = baseline
    contacts["p_alive_cal"] = model.bgnbd_.p_alive(summary).to_numpy()
    contacts["expected_order_value"] = model.gamma_gamma_.expected_order_value(summary)

    metrics: dict[str, float] = {
        "contacts": float(len(split)),
        "repeat_buyers_cal": float((summary["frequency"] > 0).sum()),
        "holdout_days": holdout_days,
        "actual_total": float(actual.sum()),
        "predicted_total": float(predicted.sum()),
        "baseline_total": float(baseline.sum()),
    }
    metrics.update(_errors(predicted, actual))
    metrics.update({f"baseline_{k}": v for k, v in _errors(baseline, actual).items()})
    spend = (split["frequency_holdout"] > 0) & (split["frequency_cal"] > 0)
    held = split.loc[spend, "monetary_value_holdout"].to_numpy()
    metrics["order_value_contacts"] = float(spend.sum())
    metrics["order_value_mae"] = (
        float(np.mean(np.abs(contacts.loc[spend, "expected_order_value"].to_numpy() - held)))
        if spend.any()
        else np.nan
    )
    metrics["order_value_baseline_mae"] = (
        float(np.mean(np.abs(split.loc[spend, "monetary_value_cal"].to_numpy() - held)))
        if spend.any()
        else np.nan
    )
    metrics["bgnbd_log_likelihood"] = model.bgnbd_.log_likelihood_
    metrics["gamma_gamma_log_likelihood"] = model.gamma_gamma_.log_likelihood_

    buckets = _frequency_bucket(split["frequency_cal"])
    present = set(buckets.unique())  # not set(buckets): a Python loop over every contact
    by_frequency = (
        pd.DataFrame(
            {"bucket": buckets, "actual": actual, "predicted": predicted, "baseline": baseline}
        )
        .groupby("bucket")
        .agg(
            contacts=("actual", "size"),
            actual_mean=("actual", "mean"),
            predicted_mean=("predicted", "mean"),
            baseline_mean=("baseline", "mean"),
        )
        .reindex([b for b in FREQUENCY_BUCKETS if b in present])
    )
    by_frequency.index.name = "frequency_cal"

    tracking = tracking_table(purchases, model, cal_end, obs_end)
    comparison = (
        compare_purchase_models(summary, model, actual, holdout_days) if compare_models else None
    )
    return HoldoutEvaluation(
        calibration_end=cal_end,
        observation_end=obs_end,
        contacts=contacts,
        metrics=metrics,
        by_frequency=by_frequency,
        tracking=tracking,
        forecaster=model,
        comparison=comparison,
    )


def tracking_table(
    purchases: pd.DataFrame,
    forecaster: CLVForecaster,
    calibration_end: pd.Timestamp,
    observation_end: pd.Timestamp,
) -> pd.DataFrame:
    """Daily repeat purchases, actual and expected, of the contacts who bought by calibration end.

    Expected repeat purchases by day ``d`` sum ``E[X(d - first purchase)]`` (BG/NBD's
    unconditional expectation, eq. 9) over those contacts, grouped by first purchase day.
    Columns: ``actual``, ``expected`` (per day), ``actual_cumulative``, ``expected_cumulative``
    and ``holdout`` (True after calibration end).
    """
    log = purchases[purchases["date"] <= observation_end]
    first = log.groupby("contact_id")["date"].transform("min")
    cohort_of = log.groupby("contact_id")["date"].min()
    cohort_of = cohort_of[cohort_of <= calibration_end]
    repeat = log[(log["date"] > first) & isin_ids(log["contact_id"], cohort_of.index)]
    days = pd.date_range(cohort_of.min(), observation_end, freq="D")
    actual = repeat.groupby("date").size().reindex(days, fill_value=0).to_numpy(dtype=float)
    cohorts = cohort_of.value_counts()
    ages = (days.to_numpy()[:, None] - cohorts.index.to_numpy()[None, :]) / np.timedelta64(1, "D")
    params = forecaster.bgnbd_.params_tuple()
    unit = forecaster.bgnbd_.time_unit_days_
    expected_by_cohort = np.where(
        ages >= 0, expected_purchases_new_contact(params, np.maximum(ages, 0) / unit), 0.0
    )
    expected_cumulative = expected_by_cohort @ cohorts.to_numpy(dtype=float)
    table = pd.DataFrame(
        {
            "actual": actual,
            "expected": np.diff(expected_cumulative, prepend=0.0),
            "actual_cumulative": np.cumsum(actual),
            "expected_cumulative": expected_cumulative,
            "holdout": days > calibration_end,
        },
        index=pd.Index(days, name="date"),
    )
    return table


def compare_purchase_models(
    summary: pd.DataFrame, forecaster: CLVForecaster, actual: np.ndarray, holdout_days: float
) -> pd.DataFrame:
    """BG/NBD (clvcast) next to MBG/NBD and Pareto/NBD (lifetimes) on the same split.

    The lifetimes fitters are fitted on the compressed rows (``weights=``), which gives the
    same estimates as on every contact. Log-likelihoods are in days, comparable across the
    three (each has four parameters). Rows are sorted by holdout RMSE.
    """
    import warnings

    from lifetimes import ModifiedBetaGeoFitter, ParetoNBDFitter

    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    (ux, utx, uT), weights, codes = compress_rows(x, t_x, T)
    scale = 1.0 / T.max()
    correction = float(np.dot(weights, ux) * np.log(scale))
    bgnbd = forecaster.bgnbd_
    rows = {
        "BG/NBD": (
            bgnbd.log_likelihood_,
            bgnbd.expected_purchases(holdout_days, summary).to_numpy(),
        )
    }
    for name, fitter in (("MBG/NBD", ModifiedBetaGeoFitter()), ("Pareto/NBD", ParetoNBDFitter())):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitter.fit(ux.astype(int), utx, uT, weights=weights.astype(int))
                predicted = fitter.conditional_expected_number_of_purchases_up_to_time(
                    holdout_days, ux, utx, uT
                )[codes]
        except Exception:  # lifetimes raises ConvergenceError and plain errors alike
            continue
        # lifetimes divides the weighted sum by weights.sum() (MBG/NBD) or .mean() (Pareto/NBD)
        per = weights.mean() if name == "Pareto/NBD" else weights.sum()
        log_likelihood = -fitter._negative_log_likelihood_ * per + correction
        rows[name] = (log_likelihood, np.asarray(predicted, dtype=float))
    table = pd.DataFrame(
        {
            name: {"log_likelihood": ll, **_errors(predicted, actual)}
            for name, (ll, predicted) in rows.items()
        }
    ).T
    table.index.name = "model"
    return table.sort_values("rmse")
