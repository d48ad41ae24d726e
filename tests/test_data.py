"""Ingestion: every bad-input case gets one clear error, and every row is accounted for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvcast.data import (
    REASON_AFTER_AS_OF,
    REASON_BAD_AMOUNT,
    REASON_BAD_DATE,
    REASON_DUPLICATE,
    REASON_MISSING_CONTACT,
    REASON_NET_NONPOSITIVE,
    REASON_NONPOSITIVE,
    ingest,
    parse_as_of,
    read_contacts,
    read_transactions,
    rules,
)
from clvcast.errors import InputError


def frame(rows, columns=("contact_id", "date", "amount")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def accounted(report) -> bool:
    return report.rows_read == (
        report.purchase_days + report.rows_merged + report.rows_netted + report.rows_dropped
    )


def test_cdnow_master_report_accounts_for_every_row(cdnow_log):
    report = cdnow_log.report
    assert report.rows_read == 69_659
    assert report.dropped == {REASON_NONPOSITIVE: 80}
    assert accounted(report)
    assert report.contacts == 23_570 - 68  # 68 contacts have no positive purchase at all
    assert report.contacts_without_purchase == 68
    assert report.first_date == pd.Timestamp("1997-01-01")
    assert report.last_date == pd.Timestamp("1998-06-30")
    assert any("255 rows are exact duplicates" in note for note in report.notes)


def test_purchase_log_has_one_row_per_contact_day(cdnow_log):
    purchases = cdnow_log.purchases
    assert list(purchases.columns) == ["contact_id", "date", "amount"]
    assert not purchases.duplicated(["contact_id", "date"]).any()
    assert (purchases["amount"] > 0).all()
    assert purchases["contact_id"].iloc[0] == "00001"  # leading zeros kept


def test_same_day_rows_are_summed_and_counted_as_merged():
    log = read_transactions(
        frame(
            [
                ("a", "2024-01-01 09:00", 10.0),
                ("a", "2024-01-01 18:30", 5.0),
                ("a", "2024-01-03", 7.0),
                ("b", "2024-01-02", 3.0),
            ]
        )
    )
    assert log.report.purchase_days == 3
    assert log.report.rows_merged == 1
    day = log.purchases.set_index(["contact_id", "date"])["amount"]
    assert day[("a", pd.Timestamp("2024-01-01"))] == 15.0


def test_missing_column_names_available_columns_and_close_match():
    bad = frame([("a", "2024-01-01", 1.0)], columns=("customer", "date", "amount"))
    with pytest.raises(InputError) as error:
        read_transactions(bad)
    message = str(error.value)
    assert "'contact_id'" in message
    assert "['customer', 'date', 'amount']" in message
    assert "--contact-col" in message


def test_configurable_column_names():
    data = frame(
        [("a", "2024-01-01", 1.0), ("a", "2024-02-01", 2.0)],
        columns=("customer", "ordered_at", "value"),
    )
    log = read_transactions(data, contact_col="customer", date_col="ordered_at", amount_col="value")
    assert log.report.purchase_days == 2


def test_empty_input_is_refused():
    with pytest.raises(InputError, match="has no rows"):
        read_transactions(frame([]))


def test_unparseable_dates_are_counted_with_examples():
    data = frame([("a", "2024-01-01", 1.0), ("b", "yesterday", 2.0), ("c", "2024-13-45", 3.0)])
    with pytest.raises(InputError) as error:
        read_transactions(data)
    message = str(error.value)
    assert f"2 rows with {REASON_BAD_DATE} in column 'date'" in message
    assert 'row 2: "yesterday"' in message and 'row 3: "2024-13-45"' in message
    assert "--drop-invalid" in message


def test_unparseable_amounts_are_counted_and_can_be_dropped():
    data = frame(
        [
            ("a", "2024-01-01", "12.5"),
            ("a", "2024-01-02", "12,50"),
            ("b", "2024-01-02", "n/a"),
            ("b", "2024-01-05", "4"),
        ]
    )
    with pytest.raises(InputError, match=f"2 rows with {REASON_BAD_AMOUNT} in column 'amount'"):
        read_transactions(data)
    log = read_transactions(data, invalid="drop")
    assert log.report.dropped == {REASON_BAD_AMOUNT: 2}
    assert accounted(log.report)


def test_rows_without_a_contact_id_are_guest_checkouts_dropped_and_counted():
    data = frame([("a", "2024-01-01", 1.0), (None, "2024-01-01", 2.0), ("  ", "2024-01-02", 3.0)])
    log = read_transactions(data)  # not an error, even with invalid="error"
    assert log.report.dropped == {REASON_MISSING_CONTACT: 2}
    assert "guest checkout" in log.report.format()
    assert log.report.contacts == 1
    assert accounted(log.report)


def test_ids_with_spaces_are_one_contact_and_a_blank_id_outranks_a_bad_date():
    """Text ids are trimmed once per distinct id, after the rows are checked: ' a ' and 'a'
    are one contact, and a row with a blank id and an unreadable date is a guest checkout
    (the first problem that applies counts), not a bad date that refuses the input."""
    data = frame(
        [
            ("a", "2024-01-01", 1.0),
            (" a ", "2024-01-02", 2.0),
            ("  ", "2024-13-45", 3.0),
            ("b", "2024-01-03", 4.0),
        ]
    )
    log = read_transactions(data)  # invalid="error" refuses a bad date on a row with an id
    assert log.report.dropped == {REASON_MISSING_CONTACT: 1}
    assert log.report.contacts == 2
    assert log.purchases["contact_id"].tolist() == ["a", "a", "b"]
    assert accounted(log.report)
    with pytest.raises(InputError, match=f"1 row with {REASON_BAD_DATE}"):
        read_transactions(frame([("a", "2024-01-01", 1.0), ("c", "2024-13-45", 3.0)]))


def test_float_contact_ids_lose_their_decimal_point():
    data = frame([(101.0, "2024-01-01", 1.0), (np.nan, "2024-01-02", 1.0)])
    log = read_transactions(data, invalid="drop")
    assert log.purchases["contact_id"].tolist() == ["101"]


def _days(log) -> list[str]:
    return log.purchases["date"].dt.strftime("%m-%d").tolist()


def test_offsets_give_the_day_as_written_unless_a_zone_is_chosen():
    """A timestamp with a UTC offset is a local time at that offset: its day is the one it
    writes. Converting to UTC by default moved late-evening orders of a shop west of UTC
    (and the first hour after midnight east of it) to another day, with only a note."""
    data = frame(
        [
            ("a", "2024-01-01T23:30:00-02:00", 1.0),  # 01:30 UTC on Jan 2
            ("a", "2024-01-05T10:00:00+01:00", 2.0),
        ]
    )
    log = read_transactions(data)
    assert _days(log) == ["01-01", "01-05"]
    assert any("the day as written" in note for note in log.report.notes)
    utc = read_transactions(data, timezone="UTC")
    assert _days(utc) == ["01-02", "01-05"]
    assert any("converted to UTC" in note for note in utc.report.notes)


def test_summer_and_winter_offsets_each_keep_their_clock():
    """Mixed offsets (a European shop's +01:00 in winter and +02:00 in summer) are read as
    instants by pandas; each gets its own offset back."""
    stamps = ["2024-01-05 00:30:00+01:00", "2024-07-05 00:30:00+0200", "2024-07-06 10:00Z"]
    data = frame([(c, stamp, 1.0) for c, stamp in zip("abc", stamps, strict=True)])
    assert _days(read_transactions(data)) == ["01-05", "07-05", "07-06"]
    assert _days(read_transactions(data, timezone="Europe/Madrid")) == ["01-05", "07-05", "07-06"]
    assert _days(read_transactions(data, timezone="UTC")) == ["01-04", "07-04", "07-06"]


def test_bigquery_utc_stamps_and_rfc_2822_dates_are_inferred():
    """BigQuery exports timestamps as "2024-01-05 23:30:00 UTC" (fractions of a second only
    where they are not zero), e-mail and HTTP tools as "Fri, 05 Jan 2024 23:30:00 +0100":
    both were refused with "no date layout that clvcast knows reads them"."""
    bigquery = [
        "2024-01-05 23:30:00 UTC",
        "2024-02-05 10:00:00.123456 UTC",
        "2024-03-05 01:00:00 GMT",
    ]
    data = frame([(c, stamp, 1.0) for c, stamp in zip("aab", bigquery, strict=True)])
    log = read_transactions(data)
    assert _days(log) == ["01-05", "02-05", "03-05"]
    assert log.report.date_format == "ISO 8601 (inferred from every value)"
    assert _days(read_transactions(data, timezone="Europe/Madrid")) == ["01-06", "02-05", "03-05"]
    rfc = [
        "Fri, 05 Jan 2024 23:30:00 +0100",
        "Mon, 05 Feb 2024 10:00:00 GMT",
        "Tue, 05 Mar 2024 00:30:00 +0200",
    ]
    log = read_transactions(frame([(c, day, 1.0) for c, day in zip("aab", rfc, strict=True)]))
    assert _days(log) == ["01-05", "02-05", "03-05"]
    assert log.report.date_format == "%a, %d %b %Y %H:%M:%S %z (inferred from every value)"


def test_tz_aware_column_is_taken_in_its_own_zone_or_converted(tmp_path):
    stamps = pd.to_datetime(["2024-03-01 23:00", "2024-03-05 01:00"]).tz_localize(
        "America/New_York"
    )
    data = pd.DataFrame({"contact_id": ["a", "a"], "date": stamps, "amount": [1.0, 2.0]})
    data.to_parquet(tmp_path / "zoned.parquet")
    for source in (data, tmp_path / "zoned.parquet"):  # the file keeps the zone's name
        log = read_transactions(source)
        assert _days(log) == ["03-01", "03-05"]
        assert any("America/New_York" in note for note in log.report.notes)
        assert _days(read_transactions(source, timezone="UTC")) == ["03-02", "03-05"]


def test_rows_after_as_of_are_dropped_and_counted():
    data = frame(
        [("a", "2024-01-01", 1.0), ("a", "2024-01-31 23:59", 1.0), ("a", "2024-02-01", 1.0)]
    )
    log = read_transactions(data, as_of="2024-01-31")
    assert log.report.dropped == {REASON_AFTER_AS_OF: 1}  # the as-of day itself is inclusive
    assert log.report.purchase_days == 2


def test_nonpositive_amounts_policy_drop_net_and_error():
    data = frame(
        [
            ("a", "2024-01-01", 50.0),
            ("a", "2024-01-01", -20.0),  # partial refund, same day
            ("a", "2024-01-05", 0.0),  # free order
            ("b", "2024-01-02", 30.0),
            ("b", "2024-01-02", -30.0),  # full refund, same day
        ]
    )
    dropped = read_transactions(data, nonpositive="drop")
    assert dropped.report.dropped == {REASON_NONPOSITIVE: 3}
    assert dropped.purchases["amount"].tolist() == [50.0, 30.0]

    netted = read_transactions(data, nonpositive="net")
    assert netted.purchases[["contact_id", "amount"]].values.tolist() == [["a", 30.0]]
    assert netted.report.dropped == {REASON_NET_NONPOSITIVE: 3}
    assert netted.report.rows_netted == 1  # a's partial refund, netted into its day
    assert accounted(netted.report)

    with pytest.raises(InputError, match="3 rows have an amount <= 0"):
        read_transactions(data, nonpositive="error")


def test_duplicates_policy_keep_drop_error():
    data = frame([("a", "2024-01-01", 10.0), ("a", "2024-01-01", 10.0), ("a", "2024-01-02", 1.0)])
    kept = read_transactions(data)
    assert kept.purchases["amount"].tolist() == [20.0, 1.0]
    assert "1 row is an exact duplicate" in kept.report.notes[0]
    dropped = read_transactions(data, duplicates="drop")
    assert dropped.report.dropped == {REASON_DUPLICATE: 1}
    assert dropped.purchases["amount"].tolist() == [10.0, 1.0]
    with pytest.raises(InputError, match="1 row is an exact duplicate"):
        read_transactions(data, duplicates="error")


@pytest.fixture(params=["row hashes", "grouped rows"])
def duplicate_path(request, monkeypatch):
    """Both ways of counting exact duplicates: by row hash in the suspect contact-days
    (inputs that fit DuckDB's memory), and by grouping every row by every column."""
    if request.param == "grouped rows":
        monkeypatch.setattr(ingest, "_HASH_PATH_BYTES_PER_ROW", 10**18)
    return request.param


def test_duplicates_are_whole_rows_on_or_before_the_as_of_day(duplicate_path):
    rows = [
        ("a", "2024-01-01", 10.0, "web"),
        ("a", "2024-01-01", 10.0, "web"),  # the one duplicate
        ("a", "2024-01-01", 5.0, "web"),  # a third line that day, not equal to the others
        ("b", "2024-01-03", 7.0, "web"),
        ("b", "2024-01-03", 8.0, "web"),
        ("d", "2024-01-05", 4.0, "web"),
        ("d", "2024-01-05", 4.0, "shop"),  # differs only in a column clvcast does not read
        ("c", "2024-03-01", 9.0, "web"),
        ("c", "2024-03-01", 9.0, "web"),  # repeated after the as-of day: the future
    ]
    data = frame(rows, columns=("contact_id", "date", "amount", "channel"))
    as_of = "2024-02-01"
    kept = read_transactions(data, as_of=as_of)
    assert kept.report.dropped == {REASON_AFTER_AS_OF: 2}
    assert [n for n in kept.report.notes if "duplicates" in n] == [rules.duplicates_kept_note(1)]
    assert kept.purchases["amount"].tolist() == [25.0, 15.0, 8.0]
    assert accounted(kept.report)

    dropped = read_transactions(data, as_of=as_of, duplicates="drop")
    assert dropped.report.dropped == {REASON_DUPLICATE: 1, REASON_AFTER_AS_OF: 2}
    assert dropped.purchases["amount"].tolist() == [15.0, 15.0, 8.0]
    assert accounted(dropped.report)
    with pytest.raises(InputError, match=r"1 row is an exact duplicate .*\(row 2: \"a\"\)"):
        read_transactions(data, as_of=as_of, duplicates="error")
    # Without an as-of day, the repeated future row is a duplicate too.
    assert rules.duplicates_kept_note(2) in read_transactions(data).report.notes

    # With refunds to net, the purchase days come from another pass: the same count.
    refund = frame([("b", "2024-01-03", -3.0, "web")], columns=data.columns)
    netted = read_transactions(pd.concat([data, refund]), as_of=as_of, nonpositive="net")
    assert rules.duplicates_kept_note(1) in netted.report.notes
    assert netted.purchases["amount"].tolist() == [25.0, 12.0, 8.0]
    assert accounted(netted.report)


@pytest.mark.parametrize("nonpositive", ["drop", "net", "net-contact"])
def test_contacts_are_counted_from_their_kept_purchase_days(nonpositive, duplicate_path):
    rows = [
        ("a", "2024-01-01", "10"),
        ("a", "2024-03-01", "5"),  # after the as-of day
        ("f", "2024-03-02", "8"),  # every row after the as-of day
        ("r", "2024-01-02", "-4"),  # only a refund
        ("n", "2024-01-03", "12"),
        ("n", "2024-01-03", "-12"),  # netted to zero the same day
        ("x", "2024-01-04", "oops"),  # only an unparseable amount
        ("b", "2024-01-05", "7"),
    ]
    log = read_transactions(
        frame(rows), as_of="2024-02-01", invalid="drop", nonpositive=nonpositive
    )
    buyers = log.purchases["contact_id"].nunique()
    assert buyers == (3 if nonpositive == "drop" else 2)  # a, b, and n unless netted away
    assert log.report.contacts == buyers
    assert log.report.contacts_without_purchase == 6 - buyers
    assert accounted(log.report)


def test_both_duplicate_counts_read_cdnow_alike(cdnow_raw, monkeypatch):
    by_hash = read_transactions(cdnow_raw, date_format="%Y%m%d", as_of="1998-03-31")
    monkeypatch.setattr(ingest, "_HASH_PATH_BYTES_PER_ROW", 10**18)
    grouped = read_transactions(cdnow_raw, date_format="%Y%m%d", as_of="1998-03-31")
    assert by_hash.report.to_dict() == grouped.report.to_dict()
    assert any("exact duplicates" in note for note in by_hash.report.notes)
    pd.testing.assert_frame_equal(by_hash.purchases, grouped.purchases)


def test_unknown_policy_is_refused():
    with pytest.raises(InputError, match="nonpositive='refund'"):
        read_transactions(frame([("a", "2024-01-01", 1.0)]), nonpositive="refund")


def test_nothing_left_after_drops_is_an_error():
    with pytest.raises(InputError, match="no usable purchase"):
        read_transactions(frame([("a", "2024-02-01", 1.0)]), as_of="2024-01-01")


def test_csv_and_parquet_read_the_same(tmp_path, transactions):
    csv = tmp_path / "t.csv"
    parquet = tmp_path / "t.parquet"
    transactions.to_csv(csv, index=False)
    transactions.to_parquet(parquet, index=False)
    from_csv = read_transactions(csv).purchases
    from_parquet = read_transactions(parquet).purchases
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_exact=False, rtol=1e-12)
    assert read_transactions(csv).report.source == "t.csv"


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_transactions(tmp_path / "nope.csv")
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    with pytest.raises(InputError, match="use .csv, .tsv or .parquet"):
        read_transactions(other)


def test_a_damaged_parquet_file_is_refused_with_a_parquet_hint(tmp_path, transactions):
    good = tmp_path / "good.parquet"
    transactions.to_parquet(good, index=False)
    data = bytearray(good.read_bytes())
    damaged, cut = tmp_path / "damaged.parquet", tmp_path / "cut.parquet"
    for position in range(4, 2_004):  # the first pages, after the magic bytes
        data[position] ^= 0x5A
    damaged.write_bytes(bytes(data))
    cut.write_bytes(good.read_bytes()[: len(data) // 2])  # no footer: not Parquet at all
    with pytest.raises(InputError, match="damaged.parquet.*looks damaged: export it again"):
        read_transactions(damaged)
    with pytest.raises(InputError, match="cannot read transactions file cut.parquet"):
        read_transactions(cut)
    csv = tmp_path / "t.csv"
    transactions.to_csv(csv, index=False)
    assert len(read_transactions(good).purchases) == len(read_transactions(csv).purchases)


def test_parse_as_of():
    assert parse_as_of("1998-06-30") == pd.Timestamp("1998-06-30")
    assert parse_as_of("1998-06-30 17:45") == pd.Timestamp("1998-06-30")
    with pytest.raises(InputError, match="is not a date"):
        parse_as_of("last tuesday")


def test_contacts_table_checks_ids():
    contacts = read_contacts(pd.DataFrame({"contact_id": [1, 2], "email": ["a@x", "b@x"]}))
    assert contacts["contact_id"].tolist() == ["1", "2"]
    with pytest.raises(InputError, match="appear more than once"):
        read_contacts(pd.DataFrame({"contact_id": ["a", "a"], "email": ["x", "y"]}))
    with pytest.raises(InputError, match="no value in column 'contact_id'"):
        read_contacts(pd.DataFrame({"contact_id": ["a", None]}))
    with pytest.raises(InputError, match="missing column 'contact_id'"):
        read_contacts(pd.DataFrame({"id": ["a"]}))


def test_a_contacts_file_line_with_a_split_value_is_named(tmp_path):
    """pandas' own message was "Error tokenizing data. C error: Expected 3 fields in line 3,
    saw 4", which says neither which value nor why."""
    path = tmp_path / "contacts.csv"
    path.write_text("contact_id,email,city\na,a@x.com,Lyon\nb,b@x.com,Paris, France\n")
    with pytest.raises(InputError) as refused:
        read_contacts(path)
    assert str(refused.value) == (
        "contacts file contacts.csv: 1 line with another number of fields than the header's 3 "
        '(line 3: 4 fields, "b,b@x.com,Paris, France"): a value that holds the separator is '
        "not quoted, or a line is cut short. Export the file with such values in quotes, or "
        "pass --sep if ',' is not its separator."
    )


def test_report_formats_and_serialises(cdnow_log):
    text = cdnow_log.report.format()
    assert "69,659 rows read" in text and "80 rows dropped" in text
    as_dict = cdnow_log.report.to_dict()
    assert as_dict["rows_dropped"] == 80 and as_dict["first_date"] == "1997-01-01"
    table = cdnow_log.report.to_frame()
    assert table["rows"].sum() == 69_659


def test_examples_name_the_right_rows_of_a_large_csv(tmp_path):
    # Large enough for DuckDB to read the file in parallel chunks: the row numbers in the
    # message must still be the file's data rows.
    rows = 300_000
    data = pd.DataFrame(
        {
            "contact_id": [f"c{i % 5000}" for i in range(rows)],
            "date": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows) % 300, "D"),
            "amount": np.round(1.0 + (np.arange(rows) % 97), 2),
        }
    )
    data["date"] = data["date"].dt.strftime("%Y-%m-%d")
    bad = [12, 150_001, 299_998]
    data.loc[bad, "date"] = ["soon", "later", "never"]
    path = tmp_path / "big.csv"
    data.to_csv(path, index=False)
    with pytest.raises(InputError) as error:
        read_transactions(path)
    message = str(error.value)
    assert 'row 13: "soon", row 150002: "later", row 299999: "never"' in message
    log = read_transactions(path, invalid="drop")
    assert log.report.dropped == {REASON_BAD_DATE: 3}
    assert accounted(log.report)
    assert log.report.purchase_days == len(
        data.drop(index=bad).drop_duplicates(["contact_id", "date"])
    )
