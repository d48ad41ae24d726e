"""The limits of every numeric setting, in one table, checked by the library.

scikit-learn keeps each estimator's parameter constraints in one table and checks them in
``fit``; clvcast does the same for the settings of the pipeline and the jobs, so Python and
the CLI refuse the same values with the same words. A refusal is a :class:`ParameterError`
naming the setting, its value and the rule; the CLI reports it under the option's name
(``--holdout-days 0: use a whole number >= 1.``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from clvcast.errors import InputError

# Contacts per chunk of the local engine: a chunk of 1M contacts is about 1 GB in memory.
DEFAULT_CHUNK_CONTACTS = 1_000_000
# Contacts whose histories train the churn classifier (benchmarks/bench_scale.py: on 1M
# contacts, 100,000 score a holdout ROC-AUC within 0.003 of 250,000 in a third of the time).
DEFAULT_CHURN_SAMPLE_CONTACTS = 100_000


class ParameterError(InputError):
    """A setting outside its limits (:data:`LIMITS`)."""

    def __init__(self, name: str, value: object, rule: str) -> None:
        super().__init__(f"{name}={value!r}: use {rule}.")
        self.name = name
        self.value = value
        self.rule = rule

    def as_option(self) -> str:
        """The message as the CLI says it, under the option's name."""
        return f"--{self.name.replace('_', '-')} {self.value}: use {self.rule}."


@dataclass(frozen=True)
class Limit:
    """``minimum <= value`` (``<`` when ``open_minimum``) and ``value <= maximum``."""

    minimum: float
    whole: bool = False
    maximum: float | None = None
    open_minimum: bool = False

    def rule(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"> {self.minimum:g}" if self.open_minimum else f">= {self.minimum:g}"
        high = f" and <= {self.maximum:g}" if self.maximum is not None else ""
        return f"{kind} {low}{high}"

    def allows(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.whole and not float(value).is_integer():
            return False
        if not math.isfinite(float(value)):
            return False
        if value < self.minimum or (self.open_minimum and value == self.minimum):
            return False
        return self.maximum is None or value <= self.maximum


LIMITS: dict[str, Limit] = {
    # the pipeline (CLVPipeline, TrainConfig)
    "horizon_days": Limit(0, open_minimum=True),
    "discount_rate_monthly": Limit(0, maximum=1),
    "churn_horizon_days": Limit(1, whole=True),
    "penalizer": Limit(0),
    "churn_cutoffs": Limit(1, whole=True),
    "churn_spacing_days": Limit(1, whole=True),
    # more rows cost time without better metrics, fewer make a noisy classifier
    "churn_sample_contacts": Limit(1000, whole=True),
    # the jobs
    "holdout_days": Limit(1, whole=True),
    # smaller chunks cost more in per-chunk overhead than they save in memory
    "chunk_contacts": Limit(1000, whole=True),
    "threads": Limit(1, whole=True),
}


def check_limits(**values: object) -> None:
    """Raise :class:`ParameterError` for the first value outside its limit (None passes)."""
    for name, value in values.items():
        limit = LIMITS[name]
        if value is not None and not limit.allows(value):
            raise ParameterError(name, value, limit.rule())
