"""BG/NBD, Gamma-Gamma and CLV: published CDNOW numbers, lifetimes equality, recovery, errors."""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary, load_cdnow_summary_data_with_monetary_value

import clvcast
from clvcast.contact_table import build_contact_table
from clvcast.cores import map_in_order, meanwhile
from clvcast.errors import DataQualityWarning, InputError, ModelError, ModelWarning, NotFittedError
from clvcast.models import (
    BetaGeoModel,
    CLVForecaster,
    GammaGammaModel,
    likelihood,
    simulate_summary,
)
from clvcast.models.bgnbd import expected_purchases
from clvcast.models.fitting import compress_rows, minimize_with_retries
from clvcast.summary import summarize

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # weeks, FHL 2005
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie, note 025
HARDIE_EXPECTED_SPEND = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]


def relative(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.fixture(scope="module")
def weekly_sample():
    return load_cdnow_summary(index_col=[0])


@pytest.fixture(scope="module")
def master_summary(cdnow_log):
    """CDNOW master at 1998-06-30 in days, with string ids in shuffled order."""
    summary = summarize(cdnow_log.purchases, "1998-06-30")
    return summary.sample(frac=1.0, random_state=3)


@pytest.fixture(scope="module")
def master_forecaster(master_summary):
    return CLVForecaster(horizon_days=360, month_days=30).fit(master_summary)


def test_bgnbd_reproduces_published_cdnow_estimates(weekly_sample):
    model = BetaGeoModel().fit(weekly_sample, time_unit_days=7)
    for name, value in PUBLISHED_BGNBD.items():
        assert model.params_[name] == pytest.approx(value, rel=0.01), name
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    assert model.fit_step_ == "lbfgs"
    assert model.n_rows_fitted_ < model.n_contacts_  # fitted on compressed rows


def test_bgnbd_conditional_expectation_matches_hardie(weekly_sample):
    model = BetaGeoModel().fit(weekly_sample, time_unit_days=7)
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert model.expected_purchases(39 * 7, one).iloc[0] == pytest.approx(1.226, abs=5e-4)


def test_bgnbd_equals_plain_lifetimes_fit(weekly_sample, master_summary, master_forecaster):
    for summary, unit, ours in (
        (weekly_sample, 7, BetaGeoModel().fit(weekly_sample, time_unit_days=7)),
        (master_summary, 1, master_forecaster.bgnbd_),
    ):
        plain = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        assert relative(ours.params_.values, plain.params_.values) < 1e-4
        assert ours.time_unit_days_ == unit
        # Standard errors as lifetimes reports them (diagonal of its variance matrix).
        assert relative(ours.standard_errors_.values, plain.standard_errors_.values) < 1e-3


def test_gamma_gamma_reproduces_published_estimates_and_spend():
    data = load_cdnow_summary_data_with_monetary_value()
    model = GammaGammaModel().fit(data)
    for name, value in PUBLISHED_GG.items():
        assert model.params_[name] == pytest.approx(value, rel=0.02), name
    assert model.log_likelihood_ == pytest.approx(-4055.92, abs=0.01)
    assert model.n_repeat_buyers_ == 946
    spend = model.expected_order_value(data).head(10).to_numpy()
    np.testing.assert_allclose(spend, HARDIE_EXPECTED_SPEND, atol=0.011)


def test_gamma_gamma_equals_plain_lifetimes_fit(master_summary, master_forecaster):
    repeat = master_summary[master_summary["frequency"] > 0]
    plain = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    assert relative(master_forecaster.gamma_gamma_.params_.values, plain.params_.values) < 1e-4


def test_predictions_equal_lifetimes_methods_with_same_parameters(
    master_summary, master_forecaster
):
    # String ids in shuffled order: the index-alignment pitfall of lifetimes PR #428.
    bgf = master_forecaster.bgnbd_.to_lifetimes()
    ggf = master_forecaster.gamma_gamma_.to_lifetimes()
    f, r, T, m = (master_summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    ours = master_forecaster.predict(master_summary)
    assert ours.index.equals(master_summary.index)
    theirs_purchases = bgf.conditional_expected_number_of_purchases_up_to_time(360, f, r, T)
    assert relative(ours["predicted_purchases_360d"], theirs_purchases) < 1e-6
    assert relative(ours["p_alive"], bgf.conditional_probability_alive(f, r, T)) < 1e-6
    assert (
        relative(ours["expected_order_value"], ggf.conditional_expected_average_profit(f, m)) < 1e-6
    )
    clv = ggf.customer_lifetime_value(bgf, f, r, T, m, time=12, discount_rate=0.01, freq="D")
    assert relative(ours["clv_360d"], clv.to_numpy()) < 1e-6


def test_default_horizon_is_365_days(master_summary, master_forecaster):
    fitted = CLVForecaster()
    fitted.bgnbd_, fitted.gamma_gamma_ = master_forecaster.bgnbd_, master_forecaster.gamma_gamma_
    year = fitted.predict(master_summary)
    assert list(year.columns) == [
        "predicted_purchases_12m",
        "p_alive",
        "expected_order_value",
        "clv_12m",
    ]
    direct = master_forecaster.bgnbd_.expected_purchases(365, master_summary)
    np.testing.assert_allclose(year["predicted_purchases_12m"], direct, rtol=1e-12)
    shorter = master_forecaster.predict(master_summary)
    assert (year["predicted_purchases_12m"] >= shorter["predicted_purchases_360d"]).all()


def test_new_and_one_time_buyers_get_finite_forecasts(master_forecaster):
    fresh = pd.DataFrame(
        {
            "frequency": [0, 0, 3],
            "recency": [0.0, 0.0, 40.0],
            "T": [0.0, 200.0, 41.0],
            "monetary_value": [0.0, 0.0, 25.0],
        },
        index=["bought today", "one-timer", "recent repeat"],
    )
    forecast = master_forecaster.predict(fresh)
    assert np.isfinite(forecast.to_numpy()).all()
    assert forecast.loc["bought today", "p_alive"] == 1.0
    population_mean = master_forecaster.gamma_gamma_.population_mean_
    assert forecast.loc["one-timer", "expected_order_value"] == pytest.approx(population_mean)
    # Someone who bought today expects more than someone silent for 200 days.
    assert (
        forecast.loc["bought today", "predicted_purchases_360d"]
        > forecast.loc["one-timer", "predicted_purchases_360d"]
    )


def test_a_forecast_that_is_not_a_number_is_refused(master_forecaster, master_summary):
    broken = copy.deepcopy(master_forecaster)
    # Parameters no fit returns (alpha = 0 divides by zero for a contact with T = 0),
    # standing in for any formula that meets a case it cannot compute.
    broken.bgnbd_.params_ = broken.bgnbd_.params_.copy()
    broken.bgnbd_.params_["alpha"] = 0.0
    fresh = pd.DataFrame(
        {"frequency": [0, 2], "recency": [0.0, 30.0], "T": [0.0, 90.0],
         "monetary_value": [0.0, 20.0]},
        index=["bought today", "repeat"],
    )  # fmt: skip
    refusal = r"not a finite number for 1 of 2 contacts \(first: 'bought today'"
    with np.errstate(all="ignore"), pytest.raises(ModelError, match=refusal):
        broken.predict(fresh)
    assert np.isfinite(master_forecaster.predict(master_summary).to_numpy()).all()


def test_heavy_buyers_do_not_overflow(master_forecaster):
    params = master_forecaster.bgnbd_.params_tuple()
    x = np.array([500.0, 1_000.0, 2_000.0, 5_000.0])
    t_x = np.array([699.0, 699.0, 699.0, 699.0])
    T = np.full(4, 700.0)
    values = expected_purchases(params, 365.0, x, t_x, T)
    assert np.isfinite(values).all()
    # Buying x times in 700 days gives about x * 365 / 700 a year, a little less because
    # even a heavy buyer may still drop out (posterior dropout ~ a / (a + b + x) per purchase).
    ratio = values / (x * 365 / 700)
    assert ((ratio > 0.7) & (ratio < 1.0)).all(), ratio
    assert (np.diff(values) > 0).all()
    bgf = master_forecaster.bgnbd_.to_lifetimes()
    with np.errstate(all="ignore"):
        theirs = bgf.conditional_expected_number_of_purchases_up_to_time(365, x, t_x, T)
    finite = np.isfinite(theirs)
    assert relative(values[finite], theirs[finite]) < 1e-6


def test_one_time_buyers_get_a_forecast_when_a_plus_b_is_below_one():
    # A calibration fit of 100,000 simulated contacts gave these parameters. With a + b < 1
    # the hypergeometric term of a one-time buyer is negative for a young contact, and the
    # log-space formula (lifetimes') gave NaN. The expectation by direct integration: a
    # one-time buyer is alive, buys at a rate ~ Gamma(r, alpha + T) and drops out with
    # p ~ Beta(a, b) after each purchase, so E[X(t)] = E_p[(1 - ((alpha+T) / (alpha+T+pt))^r) / p].
    from scipy import integrate, special

    params = (0.612957, 44.076828, 0.006077, 0.193636)
    r, alpha, a, b = params
    T, t = np.array([0.0, 5.0, 23.0, 200.0]), 90.0
    ours = expected_purchases(params, t, np.zeros(4), np.zeros(4), T)
    for T_i, value in zip(T, ours, strict=True):

        def rate(p, T_i=T_i):
            if p == 0:  # the limit at p = 0
                return r * t / (alpha + T_i)
            return (1 - ((alpha + T_i) / (alpha + T_i + p * t)) ** r) / p

        integral, _ = integrate.quad(rate, 0, 1, weight="alg", wvar=(a - 1, b - 1), limit=200)
        assert value == pytest.approx(integral / special.beta(a, b), rel=1e-9)
    assert (np.diff(ours) < 0).all()  # the longer the silence, the fewer purchases


@pytest.mark.parametrize("seed", [11, 12])
def test_fit_recovers_known_parameters(seed):
    true_bgnbd = {"r": 0.25, "alpha": 40.0, "a": 0.8, "b": 2.5}
    true_gg = {"p": 6.0, "q": 3.5, "v": 15.0}
    summary = simulate_summary(
        40_000, tuple(true_bgnbd.values()), tuple(true_gg.values()), seed=seed
    )
    forecaster = CLVForecaster().fit(summary)
    # Maximum likelihood is consistent and asymptotically normal: each estimate lies within
    # 4 standard errors of the truth unless the fit is wrong (chance ~ 6e-5 per parameter).
    for model, truth in ((forecaster.bgnbd_, true_bgnbd), (forecaster.gamma_gamma_, true_gg)):
        for name, value in truth.items():
            estimate, error = model.params_[name], model.standard_errors_[name]
            assert abs(estimate - value) < 4 * error, (name, estimate, error)
            assert error < 0.15 * value  # and the data pin it down


def test_summary_in_weeks_without_unit_warns(weekly_sample):
    plain = weekly_sample.copy()
    plain.attrs = {}
    with pytest.warns(DataQualityWarning, match="time_unit_days=7"):
        BetaGeoModel().fit(plain)


def test_too_little_data_warns_with_numbers_and_errors_below_floor():
    summary = simulate_summary(
        300, (0.25, 40.0, 0.8, 2.5), (6.0, 3.5, 15.0), seed=2, max_age_days=120
    )
    with pytest.warns(DataQualityWarning, match=r"300 contacts \(advised: 500\+\)"):
        BetaGeoModel().fit(summary)
    with pytest.raises(ModelError, match="at least 20 contacts"):
        BetaGeoModel().fit(summary.head(1))
    no_repeat = summary.assign(frequency=0, recency=0.0)
    with pytest.raises(ModelError, match="0 repeat buyers") as info:
        BetaGeoModel().fit(no_repeat)
    assert "customer_unique_id" not in str(info.value)  # 300 contacts: too few to say
    # Thousands of contacts and not one repeat buyer: ids made anew for every order.
    every_order = pd.concat([no_repeat] * 2, ignore_index=True)
    with pytest.raises(ModelError, match=r"new for every order.*\(Olist: customer_unique_id\)"):
        BetaGeoModel().fit(every_order)
    with pytest.raises(ModelError, match="at least 5 repeat buyers"):
        GammaGammaModel().fit(no_repeat)


def test_gamma_gamma_of_equal_spend_is_that_spend_not_a_fit(tmp_path):
    """Repeat buyers who all spend the same (every amount 1.0 in an export without revenue,
    or one price): there is no spread of spend to fit. Every contact's expected order value
    is that amount, with one warning, in the model file and the lifetimes adapter too. A
    penalized fit made the BTYDplus grocery log's 1.0 into 1.08 for one-time buyers."""
    from clvcast.model_file import load_model_file, save_model_file

    summary = simulate_summary(2_000, (0.3, 40.0, 0.8, 2.5), seed=1)
    repeat = (summary["frequency"] > 0).to_numpy()
    # a price's day totals averaged in floating point: equal up to their last bits
    rounding = np.where(np.arange(len(summary)) % 2 == 0, 1.0, 1.0 + 2e-16)
    for price in (1.0, 19.99):
        summary["monetary_value"] = np.where(repeat, price * rounding, 0.0)
        with pytest.warns(DataQualityWarning, match=f"same amount per purchase day, {price:g},"):
            model = GammaGammaModel().fit(summary)
        assert model.fit_step_ == "constant spend" and model.n_repeat_buyers_ == repeat.sum()
        assert model.population_mean_ == pytest.approx(price, rel=1e-12)
        np.testing.assert_allclose(model.expected_order_value(summary), price, rtol=1e-12)
        fitter = model.to_lifetimes()
        spend = fitter.conditional_expected_average_profit(
            summary["frequency"], summary["monetary_value"]
        )
        np.testing.assert_allclose(spend, price, rtol=1e-12)
        path = save_model_file(model, tmp_path / "spend.model", {})
        loaded = load_model_file(path)
        np.testing.assert_allclose(loaded.expected_order_value(summary), price, rtol=1e-12)
    # a spread of a hundredth of a percent is spend to learn: the model is fitted
    summary["monetary_value"] = np.where(repeat, 20.0 * (1 + 1e-4 * (rounding > 1)), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelWarning)
        assert GammaGammaModel().fit(summary).fit_step_ != "constant spend"


def _spend_at_the_edges() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """5,000 simulated contacts and, for their repeat buyers, mean order values from each
    edge of the Gamma-Gamma model (both with a population mean of 20):

    - fixed spend per contact: a contact always spends its own mu, mu ~ inverse-gamma
      with shape 4 and scale 60 (a plan or a basket per contact);
    - alike contacts: every order value Gamma(3, rate 0.15), the same for every contact,
      so ``x m`` is Gamma(3 x, 0.15)."""
    summary = simulate_summary(5_000, (0.3, 40.0, 0.8, 2.5), seed=1)
    x = summary["frequency"].to_numpy(dtype=float)
    x = x[x > 0]
    rng = np.random.default_rng(0)
    return summary, {
        "fixed": 60.0 / rng.gamma(4.0, 1.0, len(x)),
        "alike": rng.gamma(3.0 * x, 1.0 / 0.15) / x,
    }


def test_edge_fits_are_the_limit_models_maximum_likelihood():
    """Each edge fit is the maximum of its limit model's likelihood, computed here with
    scipy.stats (inverse-gamma means; gamma totals), and finds the simulated parameters."""
    from scipy import stats
    from scipy.optimize import minimize

    from clvcast.models.likelihood import prepare_gamma_gamma_data
    from clvcast.models.spend_edges import alike_contacts_fit, fixed_spend_fit

    summary, means = _spend_at_the_edges()
    x = summary["frequency"].to_numpy(dtype=float)
    x = x[x > 0]

    def fixed_ll(log_params, m):  # q, scale
        q, scale = np.exp(log_params)
        return stats.invgamma.logpdf(m, q, scale=scale).sum()

    def alike_ll(log_params, m):  # p, rate; the density of m = (x m) / x
        p, rate = np.exp(log_params)
        return (stats.gamma.logpdf(x * m, p * x, scale=1 / rate) + np.log(x)).sum()

    for name, fit_edge, ll, truth in (
        ("fixed", fixed_spend_fit, fixed_ll, (4.0, 60.0)),
        ("alike", alike_contacts_fit, alike_ll, (3.0, 0.15)),
    ):
        m = means[name]
        edge = fit_edge(prepare_gamma_gamma_data(x, m, np.ones(len(x))))
        best = minimize(
            lambda t, ll=ll, m=m: -ll(t, m),
            np.log(truth),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
        )
        assert edge.objective == pytest.approx(best.fun / len(x), abs=1e-9), name
        p, q, _ = np.exp(edge.log_params)
        shape = q if name == "fixed" else p  # the parameter the edge keeps finite
        np.testing.assert_allclose(shape, truth[0], rtol=0.1, err_msg=name)


def test_gamma_gamma_at_an_edge_of_its_parameter_space():
    """Spend fixed per contact, or alike across contacts: the likelihood is largest with a
    parameter at infinity, the optimiser's steps fail, and the penalized fit biased the
    population mean (21.1 and 22.3 for a true 20). The edge fit wins instead."""
    from types import SimpleNamespace

    from clvcast.console import format_models

    summary, means = _spend_at_the_edges()
    bgnbd = BetaGeoModel().fit(summary)
    repeat = summary["frequency"] > 0
    x = summary.loc[repeat, "frequency"].to_numpy(dtype=float)
    for name, step, meaning in (
        ("fixed", "edge: fixed spend per contact", "its own mean"),
        ("alike", "edge: alike contacts", "mean of all repeat purchase days"),
    ):
        summary.loc[repeat, "monetary_value"] = means[name]
        with pytest.warns(ModelWarning, match=f"largest at an edge .*{meaning}"):
            model = GammaGammaModel().fit(summary)
        assert model.fit_step_ == step and model.penalizer_used_ == 0.0
        assert model.population_mean_ == pytest.approx(20.0, rel=0.02), name
        expected = model.expected_order_value(summary)[repeat].to_numpy()
        if name == "fixed":  # a repeat buyer's own mean
            np.testing.assert_allclose(expected, means[name], rtol=1e-9)
        else:  # the mean of every repeat purchase day, for everyone
            pooled = np.dot(x, means[name]) / x.sum()
            np.testing.assert_allclose(expected, pooled, rtol=1e-9)
            assert model.population_mean_ == pytest.approx(pooled, rel=1e-12)
        assert model.standard_errors_.isna().all()
        printed = format_models(SimpleNamespace(bgnbd_=bgnbd, gamma_gamma_=model))
        assert "Gamma-Gamma at an edge on" in printed and "inf" in printed
        assert "1e+12" not in printed and "nan" not in printed  # no stand-in numbers shown


def test_inconsistent_summaries_are_refused(master_summary):
    broken = master_summary.copy()
    broken.iloc[0, broken.columns.get_loc("recency")] = broken["T"].iloc[0] + 5
    with pytest.raises(InputError, match="recency > T"):
        BetaGeoModel().fit(broken)
    with pytest.raises(InputError, match="needs columns"):
        BetaGeoModel().fit(master_summary.drop(columns=["T"]))
    refunds = master_summary.copy()
    repeat = refunds.index[refunds["frequency"] > 0][:3]
    refunds.loc[repeat, "monetary_value"] = -5.0
    with pytest.raises(InputError, match="3 repeat buyers have a monetary_value <= 0"):
        GammaGammaModel().fit(refunds)


def test_spend_frequency_correlation_is_checked(master_summary):
    correlated = master_summary.copy()
    repeat = correlated["frequency"] > 0
    correlated.loc[repeat, "monetary_value"] = 10.0 + 5.0 * correlated.loc[repeat, "frequency"]
    with pytest.warns(DataQualityWarning, match="correlation among"):
        model = GammaGammaModel().fit(correlated)
    assert model.frequency_monetary_correlation_ > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        GammaGammaModel().fit(master_summary)  # CDNOW: correlation 0.07, no warning


def test_retry_steps_are_recorded_and_exhausted():
    def bowl(log_params, center, penalizer):
        # Undefined (NaN) around lifetimes' default start, a plain bowl elsewhere.
        if np.all(np.abs(log_params - 0.1) < 0.5):
            return float("nan"), np.full_like(log_params, np.nan)
        diff = log_params - center
        return float(diff @ diff), 2 * diff

    result = minimize_with_retries(
        bowl,
        (np.array([1.0, 2.0]),),
        n_params=2,
        penalizer=0.0,
        model="test",
        spread_starts=[(3.0, 3.0)],
    )
    assert result.step == "multistart"
    np.testing.assert_allclose(result.log_params, [1.0, 2.0], atol=1e-6)
    assert result.attempts[0]["step"] == "lbfgs" and not result.attempts[0]["converged"]

    def hopeless(log_params, penalizer):
        return float("nan"), np.full_like(log_params, np.nan)

    with pytest.raises(ModelError, match="did not converge after every retry step"):
        minimize_with_retries(hopeless, (), n_params=2, penalizer=0.0, model="test")


def test_an_lbfgs_run_that_stops_short_is_restarted_where_it_stopped(
    monkeypatch, master_summary, master_forecaster
):
    """An L-BFGS-B run that ends with a large gradient (as on millions of whole-day
    contacts) is continued from its end point, not abandoned for the multistart step."""
    import scipy.optimize
    from scipy.optimize import minimize as scipy_minimize

    import clvcast.models.fitting as fitting

    runs = []

    def first_run_stops_early(*args, **kwargs):
        runs.append(1)
        if len(runs) == 1:  # the first run stops after 3 iterations, far from the optimum
            kwargs["options"] = {**kwargs["options"], "maxiter": 3}
        return scipy_minimize(*args, **kwargs)

    # fitting imports SciPy's optimiser when a step needs it: patched where it comes from
    monkeypatch.setattr(scipy.optimize, "minimize", first_run_stops_early)
    model = BetaGeoModel().fit(master_summary)
    assert model.fit_step_ == "lbfgs" and len(model.fit_attempts_) == 1
    assert len(runs) == 2  # one restart was enough
    expected = master_forecaster.bgnbd_.params_
    np.testing.assert_allclose(model.params_.to_numpy(), expected.to_numpy(), rtol=1e-5)

    runs.clear()
    monkeypatch.setattr(fitting, "LBFGS_RESTARTS", 0)
    without_restart = BetaGeoModel().fit(master_summary)
    assert without_restart.fit_step_ == "multistart"  # what happened before restarts


@pytest.fixture
def small_pilot(monkeypatch):
    """The pilot step on small data: a sample of 2,000 contacts from 8,000 contacts on."""
    import clvcast.models.fitting as fitting

    monkeypatch.setattr(fitting, "PILOT_CONTACTS", 2_000)
    monkeypatch.setattr(fitting, "PILOT_MIN_CONTACTS", 8_000)
    return fitting


def _counting(monkeypatch, module, name):
    """Replace ``module.name`` (an objective) by one that records each evaluation's rows."""
    rows = []
    objective = getattr(module, name)

    def counted(log_params, data, penalizer=0.0):
        rows.append(len(data.weights))
        return objective(log_params, data, penalizer)

    monkeypatch.setattr(module, name, counted)
    return rows


def test_pilot_weights_are_a_systematic_sample_of_contacts(small_pilot):
    assert small_pilot.pilot_weights(np.ones(7_999)) is None  # below the least size
    weights = np.random.default_rng(5).integers(1, 4, size=20_000).astype(float)
    sample = small_pilot.pilot_weights(weights)
    assert sample.sum() == 2_000 and (sample <= weights).all()
    # Every row holds its share of the picks, give or take one contact.
    share = np.cumsum(weights) * 2_000 / weights.sum()
    assert np.abs(np.cumsum(sample) - share).max() <= 1
    # Many contacts on few rows: a sample would keep most rows, so no pilot.
    assert small_pilot.pilot_weights(np.full(5_000, 10.0)) is None


def test_the_pilot_step_ends_where_plain_lbfgs_does_in_fewer_evaluations(monkeypatch, small_pilot):
    """BG/NBD and Gamma-Gamma on 60,000 simulated contacts: the pilot's sample fit and a
    few quasi-Newton steps on all of them reach the optimum of the L-BFGS-B run from
    lifetimes' start (the step 1 of smaller data), with far fewer evaluations on all rows."""
    import clvcast.models.bgnbd as bgnbd_module
    import clvcast.models.gamma_gamma as gamma_gamma_module

    summary = simulate_summary(60_000, (0.25, 40.0, 0.8, 2.5), (6.0, 3.5, 15.0), seed=21)
    bgnbd_rows = _counting(monkeypatch, bgnbd_module, "bgnbd_objective")
    gg_rows = _counting(monkeypatch, gamma_gamma_module, "gamma_gamma_objective")
    piloted = CLVForecaster().fit(summary)
    every = {"bgnbd": max(bgnbd_rows), "gg": max(gg_rows)}
    full_evaluations = {
        "bgnbd": bgnbd_rows.count(every["bgnbd"]),
        "gg": gg_rows.count(every["gg"]),
    }
    assert piloted.bgnbd_.fit_step_ == "pilot" and piloted.gamma_gamma_.fit_step_ == "pilot"
    assert min(bgnbd_rows) < every["bgnbd"] / 4 and min(gg_rows) < every["gg"] / 4

    bgnbd_rows.clear()
    gg_rows.clear()
    monkeypatch.setattr(small_pilot, "PILOT_MIN_CONTACTS", 10**12)
    plain = CLVForecaster().fit(summary)
    assert plain.bgnbd_.fit_step_ == "lbfgs" and plain.gamma_gamma_.fit_step_ == "lbfgs"
    assert len(bgnbd_rows) > 2 * full_evaluations["bgnbd"]
    assert len(gg_rows) > 2 * full_evaluations["gg"]
    for ours, theirs in (
        (piloted.bgnbd_, plain.bgnbd_),
        (piloted.gamma_gamma_, plain.gamma_gamma_),
    ):
        assert relative(ours.params_.to_numpy(), theirs.params_.to_numpy()) < 1e-6
        assert relative(ours.standard_errors_.to_numpy(), theirs.standard_errors_.to_numpy()) < 1e-4
        assert ours.log_likelihood_ == pytest.approx(theirs.log_likelihood_, rel=1e-12)


def test_a_flat_likelihood_fails_the_pilot_and_fits_as_without_it(monkeypatch, small_pilot):
    """Almost no dropout: a runs towards 0 and the sample's likelihood is flat there (its
    Hessian's least curvature 6e-12 of its largest). A descent from the sample's optimum
    could stop on the flat at a lower likelihood, so the pilot step fails and the fit is the
    one made without a pilot."""
    summary = simulate_summary(40_000, (0.5, 10.0, 1e-4, 10.0), (6.0, 3.5, 15.0), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model's own warning about no dropout
        piloted = BetaGeoModel().fit(summary)
        monkeypatch.setattr(small_pilot, "PILOT_MIN_CONTACTS", 10**12)
        plain = BetaGeoModel().fit(summary)
    assert piloted.fit_attempts_[0] == {
        "step": "pilot",
        "converged": False,
        "reason": "the sample's likelihood is flat in some direction",
    }
    assert piloted.fit_step_ == plain.fit_step_ == "lbfgs"
    np.testing.assert_array_equal(piloted.params_.to_numpy(), plain.params_.to_numpy())


def test_the_pilot_sample_does_not_depend_on_the_contacts_order(small_pilot):
    """The BG/NBD sample is drawn from the rows in (x, t_x, T) order: the same contacts in
    another order give the same fit, bit for bit."""
    summary = simulate_summary(30_000, (0.25, 40.0, 0.8, 2.5), (6.0, 3.5, 15.0), seed=8)
    first = BetaGeoModel().fit(summary)
    shuffled = BetaGeoModel().fit(summary.sample(frac=1.0, random_state=1))
    assert first.fit_step_ == "pilot"
    np.testing.assert_array_equal(first.params_.to_numpy(), shuffled.params_.to_numpy())


@pytest.mark.parametrize(
    "params",
    [
        (2.4, 7.0, 0.6, 4.0),
        (1.3, 10.0, 0.15, 3.3),
        (2.0, 2.6, 0.35, 7.3),
        (1.3, 1.0, 0.06, 0.3),
        (2.9, 3.4, 1.0, 13.6),
        (0.25, 3.0, 0.07, 2.0),
    ],
)
def test_the_sample_fit_reaches_the_lbfgs_optimum_from_lifetimes_start(params):
    """The pilot's sample fit: quasi-Newton steps from lifetimes' start with the identity as
    first curvature end at L-BFGS-B's optimum. On five of these six simulated logs the
    descent ran away (to a spurious likelihood of -1e19 or less, far off) before steps were
    bounded to a factor e per parameter."""
    from clvcast.models import fitting

    summary = simulate_summary(5_000, params, seed=3)
    x, t_x, T = (summary[column].to_numpy(dtype=float) for column in ("frequency", "recency", "T"))
    (ux, utx, uT), weights, _ = compress_rows(x, t_x, T)
    scale = 1.0 / T.max()
    args = (likelihood.prepare_bgnbd_data(ux, utx * scale, uT * scale, weights), 0.0)
    start = np.full(4, 0.1)
    with np.errstate(all="ignore"):
        theirs, their_value, _ = fitting._run_lbfgs(likelihood.bgnbd_objective, start, args)
        ours, our_value, gradient = fitting._run_quasi_newton(
            likelihood.bgnbd_objective, start, np.eye(4), args, steps=fitting.SAMPLE_STEPS
        )
    assert fitting._verdict(ours, our_value, gradient)[0] == "converged"
    assert our_value == pytest.approx(their_value, abs=1e-12)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


PILOT_IMPORTS = """
import sys
from clvcast.models import fitting
from clvcast.models import CLVForecaster
from clvcast.models.simulate import simulate_summary
fitting.PILOT_CONTACTS, fitting.PILOT_MIN_CONTACTS = 2_000, int(sys.argv[1])
forecaster = CLVForecaster().fit(simulate_summary(20_000, (0.25, 40.0, 0.8, 2.5), (6.0, 3.5, 15.0)))
print(forecaster.bgnbd_.fit_step_, forecaster.gamma_gamma_.fit_step_, "scipy.optimize" in sys.modules)
"""


def test_a_fit_that_takes_the_pilot_step_needs_no_scipy_optimiser():
    """SciPy's optimiser (0.2 s of imports) loads only for the steps after the pilot."""
    import subprocess

    def steps_and_import(least_contacts: int) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", PILOT_IMPORTS, str(least_contacts)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        return done.stdout.split()

    assert steps_and_import(8_000) == ["pilot", "pilot", "False"]
    assert steps_and_import(10**12) == ["lbfgs", "lbfgs", "True"]


def test_forward_difference_standard_errors_match_central_ones(master_summary):
    """Standard errors from the fit's own gradient and one evaluation a parameter, against
    central differences (two a parameter) at the same point."""
    from clvcast.models.fitting import hessian_from_gradient

    model = BetaGeoModel().fit(master_summary)
    x, t_x, T = model._columns(master_summary)
    (ux, utx, uT), weights, _ = compress_rows(x, t_x, T)
    scale = 1.0 / T.max()
    data = likelihood.prepare_bgnbd_data(ux, utx * scale, uT * scale, weights)
    log_params = np.log(model.params_.to_numpy() * np.array([1.0, scale, 1.0, 1.0]))
    _, gradient = likelihood.bgnbd_objective(log_params, data)
    central = hessian_from_gradient(likelihood.bgnbd_objective, log_params, (data, 0.0))
    forward = hessian_from_gradient(
        likelihood.bgnbd_objective, log_params, (data, 0.0), gradient=gradient
    )

    def errors(hessian):
        return np.sqrt(np.diag(np.linalg.inv(hessian * weights.sum())))

    assert relative(errors(forward), errors(central)) < 1e-4
    assert relative(model.standard_errors_.to_numpy(), errors(forward) * model.params_) < 1e-9


def test_compress_rows_round_trip():
    x = np.array([0, 1, 0, 1, 2])
    t = np.array([0.0, 5.0, 0.0, 5.0, 7.0])
    (ux, ut), counts, codes = compress_rows(x, t)
    np.testing.assert_array_equal(ux[codes], x)
    np.testing.assert_array_equal(ut[codes], t)
    assert counts.sum() == len(x) and len(ux) == 3
    assert list(zip(ux, ut, counts, strict=True)) == [(0, 0.0, 2.0), (1, 5.0, 2.0), (2, 7.0, 1.0)]


@pytest.mark.parametrize(
    "column",
    [
        pytest.param(lambda r, n: r.integers(0, 400, n).astype(float), id="whole days"),
        pytest.param(lambda r, n: r.integers(-5, 5, n), id="integers"),
        pytest.param(lambda r, n: r.integers(0, 40, n) / 7.0, id="weeks"),
        pytest.param(lambda r, n: r.integers(0, 3, n) * 1e12, id="wide span"),
        pytest.param(
            lambda r, n: np.where(r.random(n) < 0.1, np.nan, r.integers(0, 9, n)), id="NaN"
        ),
        pytest.param(
            lambda r, n: np.where(r.random(n) < 0.5, -0.0, r.integers(0, 3, n)), id="minus zero"
        ),
    ],
)
def test_compress_rows_matches_factorising_every_column(column):
    # Whole-number columns get their codes by subtraction: the unique rows, counts and codes
    # must be exactly those of factorising every column.
    rng = np.random.default_rng(7)
    n = 5_000
    columns = (rng.integers(0, 30, n).astype(float), column(rng, n), rng.integers(0, 5, n))

    key = np.zeros(n, dtype=np.int64)
    for col in columns:
        col_codes, col_uniques = pd.factorize(col, use_na_sentinel=False)
        key = key * len(col_uniques) + col_codes
    expected_codes, _ = pd.factorize(key)

    uniques, counts, codes = compress_rows(*columns)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(counts, np.bincount(expected_codes).astype(float))
    for unique, col in zip(uniques, columns, strict=True):
        np.testing.assert_array_equal(unique[codes], col)


def test_bgnbd_fit_does_not_depend_on_the_order_of_the_contacts(master_summary):
    # A log scored in chunks fits the snapshot's BG/NBD on its contacts chunk by chunk, not
    # in id order: the unique rows are sorted, so the sums and the fit are the same.
    shuffled = master_summary.sample(frac=1.0, random_state=3)
    assert not shuffled.index.equals(master_summary.index)
    in_order = BetaGeoModel().fit(master_summary)
    reordered = BetaGeoModel().fit(shuffled)
    assert in_order.params_.equals(reordered.params_)
    assert in_order.log_likelihood_ == reordered.log_likelihood_
    pd.testing.assert_frame_equal(in_order.summary, reordered.summary)


def test_map_in_order_spreads_runs_over_threads_and_keeps_the_order():
    both_running = threading.Barrier(2, timeout=120)  # only to fail, never to time a test
    threads_seen = set()

    def work(item: int) -> int:
        threads_seen.add(threading.get_ident())
        if item in (0, 3):  # the first item of each thread's run: both must run at once
            both_running.wait()
        return item * item

    assert map_in_order(work, list(range(6)), threads=2) == [i * i for i in range(6)]
    assert len(threads_seen) == 2
    assert map_in_order(lambda item: -item, [1, 2, 3], threads=8) == [-1, -2, -3]
    assert map_in_order(lambda item: -item, [], threads=2) == []


def test_fit_predict_is_fit_then_predict(master_summary):
    """fit_predict finds the distinct rows once for the fit and the forecast; the parameters
    and every forecast value are those of fit, then predict."""
    together = CLVForecaster(horizon_days=180)
    forecast = together.fit_predict(master_summary)
    apart = CLVForecaster(horizon_days=180).fit(master_summary)
    pd.testing.assert_frame_equal(forecast, apart.predict(master_summary))
    assert together.bgnbd_.params_.equals(apart.bgnbd_.params_)
    assert together.bgnbd_.n_rows_fitted_ == apart.bgnbd_.n_rows_fitted_
    assert together.gamma_gamma_.params_.equals(apart.gamma_gamma_.params_)


def test_fits_leave_the_process_warning_filters_alone(master_summary, monkeypatch):
    """The RFM scores are made on a thread while the models fit: a fit that changed the
    process's warning filters for the optimiser's whole run (warnings.catch_warnings) could
    undo or leak the filters of the other thread. clvcast's fitting code silences numpy's
    floating-point warnings with np.errstate, which is the calling thread's own. (pandas
    itself enters catch_warnings for a moment in some calls; that is pandas' own.)"""
    callers = []

    class Recorder(warnings.catch_warnings):
        def __enter__(self):
            callers.append(Path(sys._getframe(1).f_code.co_filename).resolve())
            return super().__enter__()

    monkeypatch.setattr(warnings, "catch_warnings", Recorder)
    CLVForecaster().fit_predict(master_summary)
    assert callers, "the recorder saw nothing: it no longer watches catch_warnings"
    package = Path(clvcast.__file__).resolve().parent
    assert not [caller for caller in callers if caller.is_relative_to(package)]


def test_meanwhile_works_on_another_thread_and_hands_back_its_result_or_error():
    caller = threading.get_ident()
    started = threading.Event()

    def work() -> int:
        started.set()
        return threading.get_ident()

    wait = meanwhile(work)
    assert started.wait(timeout=120)  # only to fail, never to time a test
    assert wait() != caller

    def failing() -> None:
        raise InputError("the work's own error")

    with pytest.raises(InputError, match="the work's own error"):
        meanwhile(failing)()
    assert not [t for t in threading.enumerate() if t.name == "clvcast-meanwhile"]


def test_contact_table_scores_rfm_while_the_models_fit_and_gets_the_same_table(master_summary):
    """An unfitted forecaster is fitted while the RFM scores are made on a thread; the table
    is the one made step after step (with the same forecaster already fitted)."""
    fitted = CLVForecaster().fit(master_summary)
    in_turn = build_contact_table(None, "1998-06-30", summary=master_summary, forecaster=fitted)
    together = build_contact_table(
        None, "1998-06-30", summary=master_summary, forecaster=CLVForecaster()
    )
    pd.testing.assert_frame_equal(together.table, in_turn.table)
    assert together.forecaster.bgnbd_.params_.equals(fitted.bgnbd_.params_)
    assert together.scorer.to_dict() == in_turn.scorer.to_dict()


def test_contact_table_raises_the_rfm_error_first_and_leaves_no_thread(master_summary):
    """Errors come in the order of the steps done one after the other: the RFM step's
    error before the fit's, and the fit's when the RFM step is fine."""
    from clvcast.rfm import RFMScorer

    bad_forecaster = CLVForecaster(horizon_days=-1)
    with pytest.raises(NotFittedError):  # the scorer given has no boundaries
        build_contact_table(
            None,
            "1998-06-30",
            summary=master_summary,
            scorer=RFMScorer(),
            forecaster=bad_forecaster,
        )
    with pytest.raises(InputError, match="horizon_days=-1"):
        build_contact_table(None, "1998-06-30", summary=master_summary, forecaster=bad_forecaster)
    assert not [t for t in threading.enumerate() if t.name == "clvcast-meanwhile"]


def test_map_in_order_keeps_its_helper_threads_and_survives_nesting_errors_and_fork():
    """The helper threads start once per process (a fit calls this once per evaluation); a
    call from a helper runs on that thread, a helper's error reaches the caller, and a
    forked child, which has none of its parent's threads, gets helpers of its own."""
    import multiprocessing

    seen: list[tuple[str, int]] = []

    def where(item: int) -> int:
        thread = threading.current_thread()
        seen.append((thread.name, thread.ident))
        return item

    assert map_in_order(where, [0, 1], threads=2) == [0, 1]
    assert map_in_order(where, [0, 1], threads=2) == [0, 1]
    helpers = {entry for entry in seen if entry[0].startswith("clvcast-cores")}
    assert len(helpers) == 1 and len(seen) == 4  # the same helper thread both times

    def nested(item: int) -> list[int]:
        return map_in_order(lambda inner: inner + item, [10, 20, 30, 40], threads=2)

    outcome: list[object] = []
    caller = threading.Thread(
        target=lambda: outcome.append(map_in_order(nested, [0, 1], 2)), daemon=True
    )
    caller.start()
    caller.join(timeout=120)  # only to fail instead of hanging, never to time the test
    assert not caller.is_alive(), "map_in_order called from a helper thread deadlocked"
    assert outcome == [[[10, 20, 30, 40], [11, 21, 31, 41]]]

    def fails_on_the_helper(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return item

    with pytest.raises(ValueError, match="item 3"):
        map_in_order(fails_on_the_helper, list(range(4)), threads=2)

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(
        target=lambda: results.put(map_in_order(lambda item: item * 2, [1, 2, 3], threads=2)),
        daemon=True,
    )
    child.start()
    try:
        assert results.get(timeout=120) == [2, 4, 6]  # a child without helpers would hang
    finally:
        child.join(timeout=120)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


@pytest.mark.parametrize("objective", ["bgnbd", "gamma_gamma"])
def test_objectives_are_the_same_bit_for_bit_on_one_thread_and_on_two(objective, monkeypatch):
    # Enough rows for the threaded path (at least ROW_THREADS_MIN_BLOCKS blocks), with an
    # uneven last block; each block's sums are added in block order on any number of threads.
    rows = likelihood.ROW_BLOCK * likelihood.ROW_THREADS_MIN_BLOCKS + 12_345
    rng = np.random.default_rng(7)
    x = rng.poisson(2.0, rows).astype(float)
    weights = rng.integers(1, 5, rows).astype(float)
    if objective == "bgnbd":
        T = rng.uniform(30.0, 500.0, rows).round()
        t_x = np.where(x > 0, (T * rng.uniform(0.0, 1.0, rows)).round(), 0.0)
        data = likelihood.prepare_bgnbd_data(x, t_x, T, weights)
        function, log_params = likelihood.bgnbd_objective, np.log([0.24, 4.4, 0.79, 2.4])
    else:
        x = x + 1.0
        data = likelihood.prepare_gamma_gamma_data(x, rng.gamma(2.0, 20.0, rows), weights)
        function, log_params = likelihood.gamma_gamma_objective, np.log([6.2, 3.7, 15.0])
    calls = []
    real_map = likelihood.map_in_order

    def spy(work, items, threads):
        calls.append(threads)
        return real_map(work, items, threads)

    monkeypatch.setattr(likelihood, "map_in_order", spy)
    results = {}
    for cores in (1, 2):
        monkeypatch.setattr(likelihood, "usable_cores", lambda cores=cores: cores)
        results[cores] = function(log_params, data)
    assert calls == [2]  # one core: the plain loop; two: the threads
    value_one, gradient_one = results[1]
    value_two, gradient_two = results[2]
    assert np.isfinite(value_one) and value_one == value_two
    np.testing.assert_array_equal(gradient_one, gradient_two)


def test_fitted_models_pickle_without_data_or_lambdas(tmp_path, master_forecaster, master_summary):
    path = tmp_path / "forecaster.joblib"
    joblib.dump(master_forecaster, path)
    loaded = joblib.load(path)
    pd.testing.assert_frame_equal(
        loaded.predict(master_summary), master_forecaster.predict(master_summary)
    )
    assert path.stat().st_size < 50_000  # parameters only, no contact data


def test_lifetimes_objects_and_plots_work(master_forecaster, master_summary):
    import matplotlib

    matplotlib.use("Agg")
    from lifetimes.plotting import plot_frequency_recency_matrix, plot_period_transactions

    sample = master_summary.head(2_000)
    bgf = master_forecaster.bgnbd_.to_lifetimes(sample)
    assert bgf.summary.shape == (4, 4)
    plot_frequency_recency_matrix(bgf, T=500)
    plot_period_transactions(bgf)
    ggf = master_forecaster.gamma_gamma_.to_lifetimes(sample)
    assert ggf.conditional_expected_average_profit().notna().all()


def test_bad_settings_are_refused(master_summary):
    with pytest.raises(InputError, match="horizon_days=0"):
        CLVForecaster(horizon_days=0).fit(master_summary)
    with pytest.raises(InputError, match="discount_rate_monthly=-2"):
        CLVForecaster(discount_rate_monthly=-2).fit(master_summary)


def test_bgnbd_without_dropout_says_so_in_words(tmp_path):
    # Customers who never leave (dropout ~ Beta(0.001, 50)): the dropout part of BG/NBD is
    # not pinned down and P(alive) is about 1 for everyone, as on UCI Online Retail.
    from clvcast.data import read_transactions
    from clvcast.errors import ModelWarning
    from clvcast.models.simulate import simulate_transactions

    transactions = simulate_transactions(
        3_000, (0.3, 40.0, 0.001, 50.0), (6.0, 4.0, 15.0), end="2023-12-31"
    )
    summary = summarize(read_transactions(transactions).purchases, "2023-12-31")
    with pytest.warns(ModelWarning, match="almost no sign of customers leaving") as caught:
        BetaGeoModel().fit(summary)
    message = str(caught[0].message)
    assert "b = " in message and "±" in message and "use churn_risk" in message
    # Real data with dropout do not trigger it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelWarning)
        BetaGeoModel().fit(load_cdnow_summary(), time_unit_days=7)

    # Through the CLI: the warning once, no raw numpy or pandas warning.
    from conftest import run_clvcast

    path = tmp_path / "steady.csv"
    transactions.to_csv(path, index=False)
    result = run_clvcast(
        "forecast",
        "--transactions",
        path,
        "--as-of",
        "2023-12-31",
        "--output",
        tmp_path / "out.csv",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("almost no sign of customers leaving") == 1
    assert "RuntimeWarning" not in result.stderr and "encountered" not in result.stderr


def test_a_fit_without_uncertainty_has_the_same_parameters_and_no_errors(master_summary):
    # A churn snapshot's BG/NBD is used for its predictions only: no standard errors, and no
    # warning resting on them (here the dropout part is weak and would warn).
    from clvcast.errors import ModelWarning
    from clvcast.models.simulate import simulate_transactions

    full = BetaGeoModel().fit(master_summary)
    bare = BetaGeoModel().fit(master_summary, uncertainty=False)
    pd.testing.assert_series_equal(bare.params_, full.params_)
    assert full.standard_errors_.notna().all() and bare.standard_errors_.isna().all()
    assert bare.covariance_.isna().all().all()
    steady = simulate_transactions(
        3_000, (0.3, 40.0, 0.001, 50.0), (6.0, 4.0, 15.0), end="2023-12-31"
    )
    summary = summarize(steady, "2023-12-31")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelWarning)
        BetaGeoModel().fit(summary, uncertainty=False)
    with pytest.warns(ModelWarning, match="almost no sign of customers leaving"):
        BetaGeoModel().fit(summary)


def test_gamma_gamma_with_equal_amounts_gives_no_raw_warning():
    summary = simulate_summary(2_000, (0.3, 40.0, 0.8, 2.5), seed=1)
    summary["monetary_value"] = np.where(summary["frequency"] > 0, 1.0, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Equal order values may not support a fit; the point here is the warnings.
        with contextlib.suppress(ModelError):
            GammaGammaModel().fit(summary)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
