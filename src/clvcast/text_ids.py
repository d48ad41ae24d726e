"""Membership tests on text contact ids, in Arrow.

pandas 3.1's ``isin`` on Arrow-backed strings first turns every candidate into a Python
scalar, one at a time: seconds for a million ids, and a churn model asks it at every
snapshot. pyarrow's ``is_in`` hashes both sides in C++. Ids are text everywhere in clvcast
(``contact_id`` is read as text), so that is the only case this module handles.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _as_text(values: pd.Series | pd.Index | np.ndarray | Iterable[str]) -> pa.Array:
    if isinstance(values, pd.Series | pd.Index):
        values = values.array
    elif isinstance(values, set | frozenset):
        values = list(values)
    array = pa.array(values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def isin_ids(
    values: pd.Series | pd.Index | np.ndarray, candidates: pd.Series | pd.Index | Iterable[str]
) -> np.ndarray:
    """Boolean array: whether each of ``values`` is one of ``candidates`` (missing: False),
    as ``values.isin(candidates)`` would say."""
    found = pc.is_in(_as_text(values), value_set=_as_text(candidates))
    return found.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
