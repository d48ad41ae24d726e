"""The contacts whose marketing-facing columns changed since the previous scored table.

Tools that sync through an API (a CDP, a reverse-ETL job, Klaviyo's profile import) want
the rows that changed, not every contact every week. A contact is in the changes when:

- it is new (not in the previous table): ``change = "new"``;
- it is gone (in the previous table only): ``change = "removed"``, with its id and no
  other values;
- any of :data:`COMPARED_COLUMNS` differs (a missing value differs from a present one):
  ``change = "changed"``;
- its CLV (every ``clv_*`` column) moved by more than the tolerance: more than
  ``clv_tolerance`` (default 10%) of the previous value *and* more than
  :data:`CLV_FLOOR` (1.00 in the shop's currency). Week to week every CLV drifts a little
  as time passes; a sync wants the moves a segment or a threshold could notice.

The rows carry every column of the scored table (the current values) plus ``change``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from clvcast.errors import InputError
from clvcast.text_ids import isin_ids

COMPARED_COLUMNS = (
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
    "rfm_group",
    "rfm_segment",
    "high_value",
    "churn_risk_band",
)
DEFAULT_CLV_TOLERANCE = 0.10
CLV_FLOOR = 1.0


def check_clv_tolerance(value: float) -> float:
    """A relative tolerance in [0, 1), or one clear error."""
    if not 0 <= value < 1:
        raise InputError(f"--clv-tolerance {value}: use a fraction from 0 to below 1, e.g. 0.05.")
    return float(value)


def values_differ(before: pd.Series, after: pd.Series) -> np.ndarray:
    """Element-wise "not the same value", a missing value differing from a present one.
    Numbers compare as numbers (a score read back from CSV as 5.0 equals 5), the rest as
    text."""
    missing_before, missing_after = before.isna().to_numpy(), after.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(before) and pd.api.types.is_numeric_dtype(after):
        old = before.to_numpy(dtype=float, na_value=np.nan)
        new = after.to_numpy(dtype=float, na_value=np.nan)
        same = old == new
    else:
        same = (before.astype("string") == after.astype("string")).fillna(False).to_numpy(bool)
    return ~(same | (missing_before & missing_after))


def by_contact(previous: pd.DataFrame) -> pd.DataFrame:
    """A previous scored table indexed by its contact ids as text: what
    :func:`changed_rows` and :func:`removed_rows` compare against (made once per run)."""
    return previous.assign(contact_id=previous["contact_id"].astype(str)).set_index("contact_id")


def changed_rows(
    before: pd.DataFrame, current: pd.DataFrame, clv_tolerance: float = DEFAULT_CLV_TOLERANCE
) -> pd.DataFrame:
    """The rows of ``current`` (a scored table or one chunk of it) that are new or changed
    against ``before`` (the previous table, :func:`by_contact`; see the module docstring),
    with a ``change`` column."""
    ids = current["contact_id"].astype(str)
    known = isin_ids(ids, before.index)
    aligned = before.reindex(ids.to_numpy())
    changed = np.zeros(len(current), dtype=bool)
    for column in COMPARED_COLUMNS:
        if column in current.columns and column in aligned.columns:
            changed |= values_differ(
                aligned[column].reset_index(drop=True), current[column].reset_index(drop=True)
            )
    for column in (c for c in current.columns if str(c).startswith("clv_")):
        if column not in aligned.columns:
            continue
        old = aligned[column].to_numpy(dtype=float, na_value=np.nan)
        new = current[column].to_numpy(dtype=float, na_value=np.nan)
        moved = np.abs(new - old) > np.maximum(clv_tolerance * np.abs(old), CLV_FLOOR)
        changed |= np.where(np.isnan(old) | np.isnan(new), np.isnan(old) != np.isnan(new), moved)
    pick = changed | ~known
    result = current.loc[pick].copy()
    result["change"] = np.where(known[pick], "changed", "new")
    return result


def removed_rows(before: pd.DataFrame, seen: pd.Series, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """The contacts of ``before`` (:func:`by_contact`) that are not in ``seen`` (the ids of
    the current table): their id, ``change = "removed"`` and empty values in the other
    columns, named with their types by ``dtypes`` (the current table's).

    The empty columns have the current table's types (booleans and whole numbers their
    nullable kinds), so that the changes table, these rows after the changed ones, keeps
    them: untyped empty columns made every column of a million changed rows Python objects
    (4.3 s), and CSV then wrote dates as ``2024-07-07 00:00:00``.
    """
    ids = before.index.to_series(index=None)
    gone = ids[~isin_ids(ids, seen)].sort_values(kind="stable").to_numpy()
    index = pd.RangeIndex(len(gone))
    result = pd.DataFrame(
        {name: pd.Series(index=index, dtype=_nullable(dtype)) for name, dtype in dtypes.items()}
    )
    result["contact_id"] = gone
    result["change"] = "removed"
    return result


def _nullable(dtype: Any) -> Any:
    """``dtype``, or the type of its kind that holds a missing value (NumPy's booleans and
    integers hold none)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype):
        return "Int64"
    return dtype
