"""isin_ids answers as pandas' isin does, on Arrow-backed and plain text ids."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvcast.text_ids import isin_ids


def test_isin_ids_equals_pandas_isin():
    rng = np.random.default_rng(5)
    ids = pd.Series([f"{i:05d}" for i in rng.integers(0, 2_000, 5_000)], dtype="str")
    ids[::97] = None  # missing ids are never members
    candidates = pd.Index([f"{i:05d}" for i in rng.integers(0, 2_000, 700)])
    expected = ids.isin(candidates).to_numpy()
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(isin_ids(ids, candidates), expected)
    np.testing.assert_array_equal(isin_ids(ids.astype(object), set(candidates)), expected)
    np.testing.assert_array_equal(isin_ids(pd.Index(ids), candidates.to_numpy()), expected)
    assert not isin_ids(ids, []).any()
    assert isin_ids(pd.Series([], dtype="str"), candidates).shape == (0,)
