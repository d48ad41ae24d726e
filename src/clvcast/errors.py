"""The clvcast error family.

Every error a user can cause is a :class:`ClvcastError`. Its message says what is wrong,
where (column, row count, example values) and what to do. The CLI catches this family once
and turns it into one line on stderr and a non-zero exit code; anything else is a bug.
"""

from __future__ import annotations


class ClvcastError(Exception):
    """Base class of every error clvcast raises on purpose."""

    exit_code = 1


class InputError(ClvcastError, ValueError):
    """The input data or an argument is unusable as given (CLI exit code 2)."""

    exit_code = 2


class ModelError(ClvcastError):
    """A model cannot be fitted or used on the data it was given."""


class NotFittedError(ClvcastError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (the same bases as scikit-learn's, so code that
    catches ValueError or AttributeError for it keeps working)."""


class RFMWarning(UserWarning):
    """RFM scores had to deviate from five equal bins (too few distinct values)."""


class DataQualityWarning(UserWarning):
    """The input is usable but something in it deserves a look."""


class ModelWarning(UserWarning):
    """A model was fitted, but its estimates are weak in a way that changes what its scores mean."""


class OutputWarning(UserWarning):
    """Something about the outputs the user should know, such as leftovers removed."""


WARNINGS = (RFMWarning, DataQualityWarning, ModelWarning, OutputWarning)
