"""Maximum-likelihood fitting with documented retry steps, and row compression.

lifetimes fits often stop with ``ConvergenceError`` or a "precision loss" flag on parameters
that have in fact converged (lifetimes issues #419, #258, #262, #396). clvcast judges
convergence by the gradient itself and, when a step fails, tries the next one:

1. ``lbfgs``: L-BFGS-B with the analytic gradient from lifetimes' own start (log-params 0.1),
   restarted from where it stopped when it stopped short of a small gradient.
2. ``multistart``: L-BFGS-B from a few spread starts; the best converged one wins.
3. ``nelder-mead``: derivative-free Nelder-Mead, then an L-BFGS-B polish.
4. ``penalized``: step 1 with a small penalizer (``1e-3``), which regularises degenerate
   data; the estimate then differs from the unpenalized optimum, and a warning says so.

The step that worked is recorded on the fitted model (``fit_step_``, ``fit_attempts_``).
BLAS thread pools are capped to one thread around the optimiser: numpy and scipy ship
separate OpenBLAS pools that fight on small machines and slow such loops a hundredfold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from clvcast.errors import ModelError, ModelWarning
from clvcast.whole_numbers import whole_number_codes

Objective = Callable[..., tuple[float, np.ndarray]]

GRADIENT_TOLERANCE = 1e-6  # max |d objective / d log-param| accepted as converged
RETRY_PENALIZER = 1e-3
LBFGS_RESTARTS = 2  # restarts of an L-BFGS-B run that stopped before its gradient was small
_LOG_PARAM_LIMIT = 25.0  # exp(25) ~ 7e10: beyond this a parameter is running away


@dataclass
class FitResult:
    """Where the optimiser ended and how it got there."""

    log_params: np.ndarray
    objective: float
    gradient_norm: float
    step: str
    penalizer: float
    attempts: list[dict[str, object]] = field(default_factory=list)


def _run_lbfgs(objective: Objective, start: np.ndarray, args: tuple) -> tuple[np.ndarray, float]:
    """L-BFGS-B from ``start``, restarted from where it stopped while the gradient is not
    yet near zero and the objective still falls (at most :data:`LBFGS_RESTARTS` times).

    On a flat likelihood (millions of contacts, a parameter near 0) L-BFGS-B can stop on
    its relative-reduction test with the gradient still at 1e-3. A restart from that point,
    with a fresh curvature memory, finishes the same descent: measured on 2.8M contacts it
    converged in 25 evaluations to the optimum that the ``multistart`` step reached in about
    220 (three starts).
    """
    point, value = np.asarray(start, dtype=float), np.inf
    for run in range(1 + LBFGS_RESTARTS):
        result = minimize(
            objective,
            point,
            args=args,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
        )
        if run and not float(result.fun) < value:
            break  # the restart found nothing lower: keep where the last run ended
        point, value = np.asarray(result.x, dtype=float), float(result.fun)
        if _verdict(point, value, np.asarray(result.jac, dtype=float))[0] != "gradient":
            break  # converged, or not finite or running away: more descent cannot help
    return point, value


def _run_nelder_mead(
    objective: Objective, start: np.ndarray, args: tuple
) -> tuple[np.ndarray, float]:
    result = minimize(
        lambda p, *a: objective(p, *a)[0],
        start,
        args=args,
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12},
    )
    return _run_lbfgs(objective, np.asarray(result.x, dtype=float), args)


def _verdict(log_params: np.ndarray, value: float, gradient: np.ndarray) -> tuple[str, str]:
    """(kind, reason) of a point where the optimiser stopped. Kinds: ``converged``,
    ``not finite``, ``runaway`` and ``gradient`` (finite and in range, but the gradient is
    not yet near zero: a descent that stopped short)."""
    norm = float(np.max(np.abs(gradient)))
    if not np.all(np.isfinite(log_params)) or not np.isfinite(value):
        return "not finite", "parameters or likelihood are not finite"
    if np.any(np.abs(log_params) > _LOG_PARAM_LIMIT):
        return "runaway", "a parameter runs away to 0 or infinity"
    if norm > GRADIENT_TOLERANCE:
        return "gradient", f"gradient {norm:.1e} is not near zero"
    return "converged", "converged"


def _assess(
    objective: Objective, log_params: np.ndarray, args: tuple
) -> tuple[bool, float, float, str]:
    value, gradient = objective(log_params, *args)
    norm = float(np.max(np.abs(gradient)))
    kind, reason = _verdict(log_params, value, gradient)
    return kind == "converged", value, norm, reason


def minimize_with_retries(
    objective: Objective,
    data_args: tuple,
    *,
    n_params: int,
    penalizer: float,
    model: str,
    spread_starts: Sequence[Sequence[float]] = (),
) -> FitResult:
    """Minimise ``objective(log_params, *data_args, penalizer)`` following the retry steps.

    Raises :class:`~clvcast.errors.ModelError` naming every step tried when none converges.
    """
    default = np.full(n_params, 0.1)
    attempts: list[dict[str, object]] = []

    def attempt(step: str, runner, starts, step_penalizer: float) -> FitResult | None:
        args = (*data_args, step_penalizer)
        best: FitResult | None = None
        for start in starts:
            # numpy's floating-point warnings off while the optimiser tries far-off points;
            # np.errstate is the calling thread's own, where warnings.catch_warnings would
            # change the whole process's filters, also for threads working meanwhile.
            with np.errstate(all="ignore"):
                try:
                    log_params, _ = runner(objective, np.asarray(start, dtype=float), args)
                except (FloatingPointError, ValueError, np.linalg.LinAlgError) as exc:
                    attempts.append({"step": step, "converged": False, "reason": str(exc)})
                    continue
                ok, value, norm, reason = _assess(objective, log_params, args)
            attempts.append(
                {
                    "step": step,
                    "converged": ok,
                    "objective": value,
                    "gradient": norm,
                    "reason": reason,
                }
            )
            if ok and (best is None or value < best.objective):
                best = FitResult(log_params, value, norm, step, step_penalizer)
        if best is not None:
            best.attempts = attempts
        return best

    with threadpool_limits(limits=1, user_api="blas"):
        for step, runner, starts, step_penalizer in (
            ("lbfgs", _run_lbfgs, [default], penalizer),
            ("multistart", _run_lbfgs, [np.asarray(s) for s in spread_starts], penalizer),
            ("nelder-mead", _run_nelder_mead, [default], penalizer),
            ("penalized", _run_lbfgs, [default], max(penalizer, RETRY_PENALIZER)),
        ):
            result = attempt(step, runner, starts, step_penalizer)
            if result is not None:
                if step == "penalized" and penalizer < RETRY_PENALIZER:
                    warnings.warn(
                        f"{model}: the fit converged only with penalizer {RETRY_PENALIZER:g}; "
                        "its parameters are regularised, not the plain maximum likelihood.",
                        ModelWarning,
                        stacklevel=3,
                    )
                return result
    tried = "; ".join(f"{a['step']}: {a['reason']}" for a in attempts)
    raise ModelError(
        f"{model} did not converge after every retry step ({tried}). Check the data "
        "(enough repeat buyers, a long enough history) or pass a penalizer such as 0.01."
    )


# compress_rows' result: the unique rows (one array per column), their counts, each row's code.
CompressedRows = tuple[list[np.ndarray], np.ndarray, np.ndarray]


def compress_rows(*columns: np.ndarray) -> CompressedRows:
    """Unique rows of parallel columns, their counts, and each input row's unique-row code.

    Fitting and scoring on unique (frequency, recency, T) rows with counts as weights gives
    the same likelihood and predictions as on every contact, at a fraction of the cost:
    whole-day data of millions of contacts has far fewer distinct rows.

    Unique rows come in order of first occurrence; ``uniques[i][codes]`` is column ``i``.
    Each column gets integer codes (:func:`_column_codes`), and the column codes are combined
    into one integer key per row that is factorised in turn (re-factorised on the way if the
    key could overflow).
    """
    columns = tuple(np.asarray(col) for col in columns)
    key = np.zeros(len(columns[0]), dtype=np.int64)
    n_keys = 1
    for col in columns:
        col_codes, n_codes = _column_codes(col)
        if n_keys * n_codes >= 2**62:
            key, key_uniques = pd.factorize(key)
            n_keys = len(key_uniques)
        key = key * n_codes + col_codes
        n_keys *= n_codes
    codes, _ = pd.factorize(key)
    counts = np.bincount(codes)
    first = np.full(len(counts), -1, dtype=np.int64)
    # first occurrence of each code: assign in reverse so the earliest index wins
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    uniques = [col[first] for col in columns]
    return uniques, counts.astype(float), codes


def _column_codes(col: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values (equal values, equal codes) and how many codes
    there may be: ``value - minimum`` for whole days in a narrow range
    (:func:`~clvcast.whole_numbers.whole_number_codes`), else ``pd.factorize`` (hashing:
    15-25 ms for a column of 850k contacts, three times per fit and per prediction)."""
    whole = whole_number_codes(col)
    if whole is not None:
        col_codes, _, span = whole
        return col_codes, span
    col_codes, col_uniques = pd.factorize(col, use_na_sentinel=False)
    return col_codes, len(col_uniques)


def hessian_from_gradient(
    objective: Objective, log_params: np.ndarray, args: tuple, step: float = 1e-5
) -> np.ndarray:
    """Hessian of the objective in log-parameters by central differences of the gradient."""
    n = len(log_params)
    hessian = np.empty((n, n))
    for i in range(n):
        shift = np.zeros(n)
        shift[i] = step
        upper = objective(log_params + shift, *args)[1]
        lower = objective(log_params - shift, *args)[1]
        hessian[:, i] = (upper - lower) / (2 * step)
    return (hessian + hessian.T) / 2


def standard_errors(
    objective: Objective,
    log_params: np.ndarray,
    args: tuple,
    n_contacts: float,
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Covariance and standard errors of ``params`` (delta method from log space).

    The objective is a mean over ``n_contacts``, so the observed information is
    ``n_contacts * H``. ``params`` are the reported parameters (a rescaled parameter has the
    same log-space variance). Returns NaNs when the Hessian is singular.
    """
    hessian = hessian_from_gradient(objective, log_params, args)
    try:
        inverse = np.linalg.inv(hessian * n_contacts)
    except np.linalg.LinAlgError:
        nan = np.full((len(params), len(params)), np.nan)
        return nan, np.full(len(params), np.nan)
    covariance = inverse * np.outer(params, params)
    with np.errstate(invalid="ignore"):
        errors = np.sqrt(np.diag(covariance))
    return covariance, errors


def parameter_table(params: pd.Series, errors: pd.Series) -> pd.DataFrame:
    """Parameters with standard errors and 95% intervals, as lifetimes' ``summary`` shows them."""
    frame = pd.DataFrame({"coef": params, "se(coef)": errors})
    frame["lower 95% bound"] = frame["coef"] - 1.96 * frame["se(coef)"]
    frame["upper 95% bound"] = frame["coef"] + 1.96 * frame["se(coef)"]
    return frame
