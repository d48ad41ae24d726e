"""Columns of whole numbers in a narrow range: counted and coded without hashing.

The summary's day columns (frequency, recency, T, days since the last purchase, orders)
hold whole numbers in a range of a few thousand. For such a column, ``value - minimum`` is
an integer code: equal values get equal codes, and ``np.bincount`` of the codes counts the
values in sorted order. That takes a few passes over the array, where ``pd.factorize``
hashes every value (15-30 ms for 850k contacts, 70 ms with ``sort=True`` on spends).
"""

from __future__ import annotations

import numpy as np

# A range up to this many values per row is coded by subtraction: the counts array
# stays within a few times the column's own size.
SPAN_PER_ROW = 4


def whole_number_codes(values: np.ndarray) -> tuple[np.ndarray, float, int] | None:
    """``(codes, minimum, span)`` when every value is a finite whole number and the span
    (maximum - minimum + 1) is at most ``SPAN_PER_ROW`` values per row: ``codes`` are
    ``value - minimum`` as int64, from 0 to ``span - 1``. None otherwise (NaN, infinities,
    fractions, a wide range or an empty or non-numeric array)."""
    if values.size == 0 or values.dtype.kind not in "iuf":
        return None
    low, high = values.min(), values.max()
    if values.dtype.kind == "f":
        if not (np.isfinite(low) and np.isfinite(high)):
            return None
        if not np.array_equal(values, np.floor(values)):
            return None
    span = int(high) - int(low) + 1
    if span > SPAN_PER_ROW * values.size + 1:
        return None
    return (values - low).astype(np.int64), low, span
