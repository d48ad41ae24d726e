"""isin_ids answers as pandas' isin does, contact_codes as pandas' factorize and
all_distinct as pandas' duplicated, on Arrow-backed and plain text ids."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvcast.text_ids import all_distinct, contact_codes, isin_ids, same_ids


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


def test_contact_codes_equal_pandas_factorize():
    # CDNOW-like ids: runs of purchase days per contact, sorted as ingestion writes them
    # (the change-point path), then shuffled, with a missing id and as objects (factorized).
    rng = np.random.default_rng(9)
    runs = rng.integers(1, 6, 3_000)
    ids = pd.Series(np.repeat([f"{i:05d}" for i in range(3_000)], runs), dtype="str")
    for case in (ids, ids.sample(frac=1, random_state=1), ids.astype(object), ids[:1]):
        codes, uniques = contact_codes(case)
        expected_codes, expected_uniques = pd.factorize(case, sort=False)
        np.testing.assert_array_equal(codes, expected_codes)
        assert list(uniques) == list(expected_uniques)
    codes, uniques = contact_codes(ids)
    assert codes[-1] == 2_999 and len(uniques) == 3_000
    with_missing = ids.copy()
    with_missing[10] = None
    codes, _ = contact_codes(with_missing)
    np.testing.assert_array_equal(codes, pd.factorize(with_missing, sort=False)[0])
    assert codes[10] == -1


def test_same_ids_is_equality_position_by_position():
    ids = pd.Index([f"{i:05d}" for i in range(1_000)], dtype="str")
    assert same_ids(ids, ids)
    assert same_ids(ids, pd.Index(list(ids), dtype="str"))  # another index, same ids
    assert same_ids(ids, pd.Index(list(ids), dtype=object))
    assert not same_ids(ids, ids[::-1])
    assert not same_ids(ids, ids[:-1])
    changed = list(ids)
    changed[500] = "x"
    assert not same_ids(ids, pd.Index(changed, dtype="str"))
    missing = pd.Index([*ids[:-1], None], dtype="str")
    assert same_ids(missing, pd.Index(list(missing), dtype="str"))
    assert not same_ids(missing, ids)
    assert same_ids(pd.Index([], dtype="str"), pd.Index([], dtype="str"))


def test_all_distinct_equals_pandas_duplicated():
    """Sorted ids (the neighbour comparison), shuffled ones (hashed), a repeat at the
    start, the end or apart, missing ids (one missing is distinct, two are a repeat)."""
    distinct = pd.Series([f"{i:05d}" for i in range(2_000)], dtype="str")
    shuffled = distinct.sample(frac=1, random_state=3).reset_index(drop=True)
    cases = [distinct, shuffled, distinct.astype(object), distinct[:1], distinct[:0]]
    for at in (0, 1_000, 1_998):
        repeated = distinct.copy()
        repeated[at + 1] = repeated[at]  # neighbours in a sorted column
        cases += [repeated, repeated.sample(frac=1, random_state=at).reset_index(drop=True)]
    one_missing, two_missing = distinct.copy(), distinct.copy()
    one_missing[5] = None
    two_missing[[5, 700]] = None
    cases += [one_missing, two_missing]
    answers = [all_distinct(case) for case in cases]
    assert answers == [not case.duplicated().any() for case in cases]
    assert answers.count(False) == 7  # the six repeats and the two missing ids
