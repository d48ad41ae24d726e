"""CSV text made in Arrow (clvcast.csv_text) is byte for byte what pandas' to_csv writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvcast.csv_text import csv_bytes, fixed_cells, float_cells
from clvcast.output import _with_timestamps_as_text, write_table


def pandas_csv(table: pd.DataFrame, header: bool = True) -> bytes:
    return table.to_csv(index=False, date_format="%Y-%m-%d", header=header).encode("utf-8")


def awkward_floats(size: int, seed: int) -> np.ndarray:
    """Floats of every magnitude Python's repr writes differently: tiny ones with an
    exponent, plain decimals, whole numbers up to and past 1e16, huge ones, signed zeros,
    infinities and NaN."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.random(size),
        rng.random(size) * 1e-6,
        rng.random(size) * 2e-4,
        np.exp(rng.normal(0.0, 25.0, size)),
        -np.exp(rng.normal(0.0, 10.0, size)),
        np.round(rng.normal(0.0, 1e6, size)),
        np.round(np.exp(rng.normal(30.0, 5.0, size))),
        [0.0, -0.0, 1e-4, 1e-5, 9.999999999999999e-5, 1e10, 9999999999.999998, 1e16, 1e15],
        [9.999999999999998e15, 5e-324, 1.7976931348623157e308, np.inf, -np.inf, np.nan],
    ]
    return np.concatenate([np.asarray(p, dtype=float) for p in parts])


def test_float_cells_are_pythons_repr_at_every_magnitude():
    numbers = awkward_floats(20_000, seed=3)
    cells = float_cells(numbers).to_pylist()
    assert cells == [repr(float(v)) for v in numbers]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_float_cells_match_repr_for_any_float(values):
    assert float_cells(np.array(values, dtype=float)).to_pylist() == [repr(v) for v in values]


def edge_table(size: int = 3_000, seed: int = 5) -> pd.DataFrame:
    """Every column type csv_text writes, with missing values and text that needs quotes."""
    rng = np.random.default_rng(seed)
    floats = awkward_floats(size, seed)[: size * 2]
    words = np.array(
        ["plain", "a,b", 'say "hi"', "two\nlines", "carriage\rreturn", " space ", "", "José"],
        dtype=object,
    )
    text = words[rng.integers(0, len(words), len(floats))]
    text[::17] = None
    days = pd.Timestamp("1998-06-30") + pd.to_timedelta(rng.integers(-900, 900, len(floats)), "D")
    days = pd.Series(days).where(rng.random(len(floats)) > 0.05)
    counts = pd.array(rng.integers(-5, 10**12, len(floats)), dtype="Int64")
    counts[::13] = pd.NA
    flags = pd.array(rng.random(len(floats)) > 0.5, dtype="boolean")
    flags[::11] = pd.NA
    return pd.DataFrame(
        {
            "contact_id": pd.array([f"id-{i:06d}" for i in range(len(floats))], dtype="str"),
            "label, with comma": pd.array(text, dtype="str"),
            "note": pd.Series(text, dtype=object),
            "value": floats,
            'quoted "name"': rng.normal(0.0, 1.0, len(floats)),
            "count": counts,
            "small": rng.integers(0, 200, len(floats)).astype(np.uint8),
            "plain int": rng.integers(-(2**40), 2**40, len(floats)),
            "flag": rng.random(len(floats)) > 0.3,
            "maybe": flags,
            "day": days.astype("datetime64[ns]"),
            "empty": pd.Series([None] * len(floats), dtype=object),
        }
    )


def test_every_handled_column_type_is_written_as_pandas_writes_it():
    table = edge_table()
    assert csv_bytes(table) == pandas_csv(table)
    assert csv_bytes(table, header=False) == pandas_csv(table, header=False)
    assert csv_bytes(table.iloc[0:0]) == pandas_csv(table.iloc[0:0])


def test_the_cdnow_contact_table_is_written_as_pandas_writes_it(cdnow_raw, tmp_path):
    from clvcast.jobs import forecast

    table = forecast(cdnow_raw, as_of="1998-06-30").table
    assert len(table) > 20_000
    assert csv_bytes(table) is not None  # every column of the table on the Arrow path
    written = write_table(table, tmp_path / "contacts.csv")
    assert written.read_bytes() == pandas_csv(table)


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["a", "b", "a"], dtype="category"),
        pd.Series([1, "two", 3.5], dtype=object),
        pd.Series(pd.to_timedelta([1, 2, 3], unit="D")),
        pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02", None]).tz_localize("UTC")),
        pd.Series(pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00", None])),
        pd.Series(np.array([0.1, 0.2, 0.3], dtype=np.float32)),
        pd.Series(np.array([2**64 - 1, 1, 2], dtype=np.uint64)),
    ],
    ids=["category", "mixed objects", "timedelta", "zoned", "time of day", "float32", "uint64"],
)
def test_other_column_types_are_left_to_pandas(column, tmp_path):
    table = pd.DataFrame({"contact_id": ["x", "y", "z"], "other": column})
    assert csv_bytes(table) is None
    written = write_table(table, tmp_path / "table.csv")
    assert written.read_bytes() == pandas_csv(_with_timestamps_as_text(table))


@pytest.mark.parametrize("decimals", [0, 2, 4])
def test_fixed_cells_are_pythons_fixed_point_format(decimals):
    with np.errstate(over="ignore", invalid="ignore"):  # the huge ones stay as they are
        numbers = np.round(awkward_floats(20_000, seed=decimals), decimals) + 0.0
    cells = fixed_cells(numbers, decimals).to_pylist()
    assert cells == [f"{v:.{decimals}f}" for v in numbers]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50),
    st.integers(0, 4),
)
def test_fixed_cells_match_python_for_any_float(values, decimals):
    numbers = np.array(values, dtype=float)
    expected = [f"{v:.{decimals}f}" for v in numbers]
    assert fixed_cells(numbers, decimals).to_pylist() == expected


def marketing_cell(value: object, column: str, whole_column: bool) -> str:
    """The marketing format of one cell, written out in Python (marketing's rules, cell by
    cell, as they were before the cells were made in Arrow)."""
    from clvcast.marketing import _decimals

    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, pd.Timestamp):
        if value.tz is None and value == value.normalize():
            return value.strftime("%Y-%m-%d")
        return value.isoformat()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        decimals = _decimals(column)
        if decimals is None:
            return f"{value:.0f}" if whole_column else repr(float(value))
        return f"{np.round(value, decimals) + 0.0:.{decimals}f}"
    return str(value)


def test_marketing_cells_follow_the_rules_cell_by_cell():
    from clvcast.marketing import marketing_frame

    table = edge_table(size=400).rename(columns={"value": "clv_12m", 'quoted "name"': "p_alive"})
    table["total_spend"] = table["p_alive"] * 1e4
    table["whole"] = np.round(table["clv_12m"].clip(-1e12, 1e12).fillna(0.0))
    table["scored_at"] = pd.Timestamp("2026-12-04 10:00", tz="Europe/Madrid")
    frame = marketing_frame(table)
    for column in frame.columns:
        values = table[column].astype(object)
        present = table[column].dropna()
        whole_column = (
            pd.api.types.is_float_dtype(table[column])
            and bool(np.isfinite(present).all())
            and bool((present == np.round(present)).all())
        )
        expected = [marketing_cell(v, column, whole_column) for v in values]
        assert frame[column].tolist() == expected, column


def test_text_that_pandas_keeps_in_several_arrow_chunks(tmp_path):
    """pd.concat leaves Arrow-backed text in chunks, as the chunked predict does."""
    ids = pd.concat(
        [pd.Series(["a", "b,c"], dtype="str"), pd.Series(['d"e', None], dtype="str")],
        ignore_index=True,
    )
    table = pd.DataFrame({"contact_id": ids, "clv_12m": [1.5, 2.0, None, -0.25]})
    assert csv_bytes(table) == pandas_csv(table)
    written = write_table(table, tmp_path / "marketing.csv", "marketing")
    assert written.read_text(encoding="utf-8-sig").splitlines() == [
        "contact_id,clv_12m",
        "a,1.50",
        '"b,c",2.00',
        '"d""e",',
        ",-0.25",
    ]


def test_a_table_is_written_block_by_block_with_the_same_bytes(monkeypatch, tmp_path):
    """Small blocks, and one block whose object column is not text (pandas writes that
    block): the file is still pandas' whole file, header once, BOM once."""
    monkeypatch.setattr("clvcast.output.CSV_BLOCK_ROWS", 7)
    table = edge_table(size=30).head(40).reset_index(drop=True)
    mixed = table["note"].astype(object)
    mixed.iloc[30] = 12.5  # a float among the strings of the fifth block
    table["note"] = mixed
    written = write_table(table, tmp_path / "blocks.csv")
    assert written.read_bytes() == pandas_csv(table)
    marketing = write_table(table, tmp_path / "blocks_marketing.csv", "marketing")
    monkeypatch.setattr("clvcast.output.CSV_BLOCK_ROWS", 1_000)
    one_block = write_table(table, tmp_path / "one_block_marketing.csv", "marketing")
    assert marketing.read_bytes() == one_block.read_bytes()
    assert marketing.read_bytes().count(b"\xef\xbb\xbf") == 1


def test_times_of_day_are_written_as_iso_text_each_distinct_time_once(tmp_path):
    scored_at = pd.Series(
        pd.to_datetime(["2026-12-04 10:00:00", None, "2026-12-04 10:00:00", "2026-12-05 08:30:15"])
    ).dt.tz_localize("Europe/Madrid")
    table = pd.DataFrame({"contact_id": ["a", "b", "c", "d"], "scored_at": scored_at})
    written = write_table(table, tmp_path / "scored.csv")
    expected = table.assign(scored_at=scored_at.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    assert written.read_bytes() == pandas_csv(expected)
    assert written.read_text().splitlines()[1:] == [
        "a,2026-12-04T10:00:00",
        "b,",
        "c,2026-12-04T10:00:00",
        "d,2026-12-05T08:30:15",
    ]
