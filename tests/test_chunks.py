"""Purchase logs in chunks of whole contacts: the results do not depend on the chunking."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from clvcast.data import (
    cdnow_purchase_log,
    read_transactions_in_chunks,
    sample_contacts,
)
from clvcast.data.chunks import chunk_of
from clvcast.data.ingest import ReadOptions
from clvcast.engines import EngineSettings, training_data
from clvcast.errors import InputError
from clvcast.pipeline import CLVPipeline, _rows_by_chunk, in_order_on_threads
from clvcast.summary import calibration_holdout, summarize, summarize_by_chunk
from conftest import run_clvcast

AS_OF = "1998-06-30"


@pytest.fixture(scope="module")
def chunked(cdnow_raw, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunks")
    return read_transactions_in_chunks(
        cdnow_raw,
        folder,
        chunk_contacts=5000,
        date_format="%Y%m%d",
        as_of=AS_OF,
        name="CDNOW_master.txt",
    )


@pytest.fixture(scope="module")
def whole():
    return cdnow_purchase_log(as_of=AS_OF)


def test_chunks_hold_whole_contacts_in_order(chunked, whole):
    assert chunked.n_chunks == 5 and not chunked.in_memory
    seen = []
    for index, chunk in enumerate(chunked.chunks()):
        ids = chunk["contact_id"]
        assert (chunk_of(ids, chunked.n_chunks) == index).all()
        assert chunk.equals(chunk.sort_values(["contact_id", "date"], ignore_index=True))
        seen.append(set(ids))
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == whole.report.contacts
    pd.testing.assert_frame_equal(chunked.as_purchase_log().purchases, whole.purchases)
    assert chunked.report.to_dict() == whole.report.to_dict()


def test_one_chunk_stays_in_memory(cdnow_raw, whole, tmp_path):
    log = read_transactions_in_chunks(cdnow_raw, tmp_path, date_format="%Y%m%d", as_of=AS_OF)
    assert log.in_memory and log.n_chunks == 1 and list(tmp_path.iterdir()) == []
    pd.testing.assert_frame_equal(log.frame, whole.purchases)


def test_summaries_read_the_chunk_files_in_place(chunked, whole):
    pd.testing.assert_frame_equal(summarize(chunked, AS_OF), summarize(whole, AS_OF))
    pd.testing.assert_frame_equal(
        calibration_holdout(chunked, "1997-09-30", AS_OF),
        calibration_holdout(whole, "1997-09-30", AS_OF),
    )
    # One chunk's file, read in place, gives that chunk's rows of the whole summary.
    everyone = summarize(whole, AS_OF)
    parts = [summarize(chunked.chunk_log(i), AS_OF) for i in range(chunked.n_chunks)]
    rows = _rows_by_chunk(everyone.index, chunked.n_chunks)  # what scoring in chunks takes
    for index, part in enumerate(parts):
        pd.testing.assert_frame_equal(part, summarize(chunked.chunk(index), AS_OF))
        pd.testing.assert_frame_equal(part, everyone.loc[part.index])
        pd.testing.assert_frame_equal(part, everyone.iloc[rows[index]])
        assert part.attrs == everyone.iloc[rows[index]].attrs == {"time_unit_days": 1.0}
    assert sum(len(part) for part in parts) == len(everyone)
    # Grouped on the chunk files' (chunk, rank) numbers: the same rows, chunk after chunk,
    # also at an earlier date that leaves some contacts of each chunk out.
    for day in (AS_OF, "1997-02-10"):
        by_chunk, starts = summarize_by_chunk(chunked, day)
        assert list(starts) == sorted(starts) and starts[-1] == len(by_chunk)
        pd.testing.assert_frame_equal(by_chunk.sort_index(), summarize(whole, day))
        for index in range(chunked.n_chunks):
            pd.testing.assert_frame_equal(
                by_chunk.iloc[starts[index] : starts[index + 1]],
                summarize(chunked.chunk_log(index), day),
            )
    assert len(summarize(whole, "1997-02-10")) < len(everyone)


def test_contact_sample_is_stable_and_keeps_whole_histories(chunked, whole):
    sample, size = sample_contacts(chunked, 6000)
    again, _ = sample_contacts(whole.purchases, 6000)
    pd.testing.assert_frame_equal(sample, again)  # same contacts chunked or not
    assert 5000 < size < 7000 and size == sample["contact_id"].nunique()
    histories = whole.purchases[whole.purchases["contact_id"].isin(sample["contact_id"])]
    pd.testing.assert_frame_equal(sample, histories.reset_index(drop=True))
    everything, total = sample_contacts(whole.purchases, 10**6)
    assert total == whole.report.contacts and everything is whole.purchases


def test_training_reads_the_summary_and_sample_without_chunk_files(cdnow_raw, whole, tmp_path):
    read = ReadOptions(date_format="%Y%m%d", as_of=AS_OF, name="CDNOW_master.txt")
    settings = EngineSettings(chunk_contacts=5000, work_dir=str(tmp_path))
    for size in (6000, 10**6):
        with training_data(cdnow_raw, read, settings, sample_size=size) as data:
            assert list(tmp_path.iterdir()) == []  # no chunk files
        expected, expected_size = sample_contacts(whole.purchases, size)
        pd.testing.assert_frame_equal(data.sample, expected)
        assert data.sample_contacts == expected_size
        pd.testing.assert_frame_equal(data.summary, summarize(whole, AS_OF))
        assert data.report.to_dict() == whole.report.to_dict()
    assert data.sample_contacts == whole.report.contacts  # the last size takes everyone


@pytest.fixture(scope="module")
def fitted_whole(whole):
    return CLVPipeline().fit(whole, AS_OF)


def test_pipeline_on_chunks_equals_the_pipeline_in_memory(chunked, whole, fitted_whole):
    on_chunks = CLVPipeline().fit(chunked, AS_OF)
    in_memory = fitted_whole
    assert on_chunks.training_ == in_memory.training_
    assert on_chunks.forecaster_.bgnbd_.params_.equals(in_memory.forecaster_.bgnbd_.params_)
    contacts = pd.DataFrame(
        {"contact_id": ["00001", "23570", "prospect-1", "prospect-2"], "email": list("abcd")}
    )
    parts = list(on_chunks.score_in_chunks(chunked, AS_OF, contacts=contacts))
    assert len(parts) == chunked.n_chunks
    one_by_one = list(on_chunks.score_in_chunks(chunked, AS_OF, contacts=contacts, threads=1))
    for part, alone in zip(parts, one_by_one, strict=True):  # same parts, same order
        pd.testing.assert_frame_equal(part, alone)
    scored = pd.concat(parts, ignore_index=True).sort_values("contact_id", ignore_index=True)
    expected = in_memory.score(whole, AS_OF, contacts=contacts)
    expected = expected.sort_values("contact_id", ignore_index=True)
    pd.testing.assert_frame_equal(scored, expected, check_exact=True)
    assert set(scored.loc[scored["rfm_group"] == "prospect", "contact_id"]) == {
        "prospect-1",
        "prospect-2",
    }


def test_chunks_are_worked_on_two_threads_and_come_back_in_order():
    both_running = threading.Barrier(2, timeout=120)  # only to fail, never to time a test
    started = []

    def work(index: int) -> pd.DataFrame:
        started.append(index)
        if index < 2:
            both_running.wait()  # items 0 and 1 must run at the same time to get past this
        if index == 3:
            raise ValueError("chunk 3 is broken")
        return pd.DataFrame({"index": [index]})

    results = in_order_on_threads(work, 8, threads=2)
    assert [next(results)["index"].item() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="chunk 3 is broken"):
        next(results)
    assert max(started) <= 4  # never more than two items ahead of the caller
    plain = in_order_on_threads(lambda index: pd.DataFrame({"index": [index]}), 3, threads=1)
    assert [frame["index"].item() for frame in plain] == [0, 1, 2]
    with pytest.raises(InputError, match="threads=0"):
        next(in_order_on_threads(work, 3, threads=0))


def test_work_folder_and_chunk_size_are_checked(cdnow_raw, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_transactions_in_chunks(cdnow_raw, tmp_path / "nope", date_format="%Y%m%d")
    with pytest.raises(InputError, match="chunk_contacts=0"):
        read_transactions_in_chunks(cdnow_raw, tmp_path, chunk_contacts=0, date_format="%Y%m%d")


def test_cli_predict_in_chunks_writes_the_same_table(cdnow_raw, tmp_path, fitted_whole):
    data = tmp_path / "cdnow.parquet"
    cdnow_raw.to_parquet(data, index=False)
    model = tmp_path / "model.model"
    fitted_whole.save(model)
    common = ["--model", str(model), "--transactions", str(data), "--date-format", "%Y%m%d"]
    common += ["--as-of", AS_OF, "--scored-at", "2024-01-01T00:00:00", "--quiet"]
    outputs = {}
    for name, extra in (("one", []), ("many", ["--chunk-contacts", "4000"])):
        outputs[name] = tmp_path / f"{name}.csv"
        done = run_clvcast("predict", *common, "--output", outputs[name], *extra, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    one = pd.read_csv(outputs["one"], dtype={"contact_id": str})
    many = pd.read_csv(outputs["many"], dtype={"contact_id": str})
    many = many.sort_values("contact_id", ignore_index=True)
    pd.testing.assert_frame_equal(many, one)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("clvcast-")] == []


def _shop_log(seed: int = 3) -> pd.DataFrame:
    """A generated log of 3,000 contacts; each case below adds rows that drop a contact."""
    rng = np.random.default_rng(seed)
    rows = 12_000
    return pd.DataFrame(
        {
            "contact_id": [f"c{i:04d}" for i in rng.integers(0, 3_000, rows)],
            "date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 150, rows), "D"),
            "amount": rng.gamma(2.0, 20.0, rows).round(2) + 0.01,
        }
    )


_LOST_CONTACT_CASES = {
    "clean": [],
    "guest checkout": [(None, "2024-02-01", 5.0)],
    "duplicates": [("c0001", "2024-01-02", 9.5), ("c0001", "2024-01-02", 9.5)],
    "only after the as-of day": [("late", "2024-07-01", 10.0)],
    "only refunds": [("refund", "2024-02-01", -10.0)],
    "only unparseable amounts": [("bad", "2024-02-01", float("nan"))],
}


@pytest.mark.parametrize("case", list(_LOST_CONTACT_CASES))
def test_contacts_are_those_with_purchases_whatever_was_dropped(case, tmp_path):
    extra = pd.DataFrame(_LOST_CONTACT_CASES[case], columns=["contact_id", "date", "amount"])
    extra["date"] = pd.to_datetime(extra["date"])
    log = pd.concat([_shop_log(), extra], ignore_index=True)
    chunked = read_transactions_in_chunks(
        log, tmp_path, chunk_contacts=1_000, as_of="2024-06-30", invalid="drop", duplicates="drop"
    )
    purchases = chunked.as_purchase_log().purchases
    buyers = set(purchases["contact_id"])
    named = set(log["contact_id"].dropna())
    assert chunked.report.contacts == len(buyers)
    assert chunked.report.contacts_without_purchase == len(named - buyers)
    assert chunked.n_chunks == -(-len(buyers) // 1_000)
    for index in range(chunked.n_chunks):  # every contact in its own chunk, none missing
        ids = chunked.chunk(index)["contact_id"]
        assert (chunk_of(ids, chunked.n_chunks) == index).all()
    assert sum(chunked.chunk(i)["contact_id"].nunique() for i in range(chunked.n_chunks)) == len(
        buyers
    )


def test_a_chunk_without_contacts_reads_as_an_empty_log(tmp_path):
    # 2,001 contacts make three chunks of at most 1,000; all of them hash to the first (with
    # hundreds of contacts per chunk an empty one is all but impossible; it must still read).
    candidates = pd.Series([f"shopper-{i}" for i in range(8_000)])
    first_chunk = candidates[chunk_of(candidates, 3) == 0].head(2_001).tolist()
    log = pd.DataFrame(
        {
            "contact_id": first_chunk * 2,
            "date": pd.to_datetime(["2024-03-01"] * 2_001 + ["2024-01-05"] * 2_001),
            "amount": np.arange(1.0, 4_003.0),
        }
    )
    chunked = read_transactions_in_chunks(log, tmp_path, chunk_contacts=1_000, as_of="2024-06-30")
    assert chunked.n_chunks == 3 and not chunked.in_memory
    full = chunked.chunk(0)
    assert set(full["contact_id"]) == set(first_chunk) and len(full) == 4_002
    assert full.equals(full.sort_values(["contact_id", "date"], ignore_index=True))
    for index in (1, 2):
        empty = chunked.chunk(index)
        assert empty.empty and empty.dtypes.equals(full.dtypes)
    pd.testing.assert_frame_equal(
        summarize(chunked, "2024-06-30"), summarize(chunked.chunk_log(0), "2024-06-30")
    )
