"""Real shop exports read right or refused with one line: dates, CSV dialects, ids, time zones.

Every file here is generated in code, shaped like the exports that were misread before:
European day/month dates, semicolon CSVs with decimal commas and a BOM, Latin-1 text,
mixed-case emails, float ids and a Madrid shop's late-evening orders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvcast.data import read_contacts, read_transactions
from clvcast.data.dates import infer_date_format
from clvcast.data.inputs import parse_as_of
from clvcast.errors import DataQualityWarning, InputError
from conftest import run_clvcast


def _orders(n: int = 300, seed: int = 0, *, max_day: int = 28) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.to_datetime("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    days = days.where(days.day <= max_day, days - pd.to_timedelta(days.day - max_day, unit="D"))
    return pd.DataFrame(
        {
            "contact_id": [f"c{i % 60:03d}" for i in range(n)],
            "date": days,
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2) + 0.01,
        }
    )


def _expected(orders: pd.DataFrame) -> pd.DataFrame:
    """The purchase log the orders should give: one row per contact-day, amounts summed."""
    day = orders.assign(date=orders["date"].dt.normalize())
    return (
        day.groupby(["contact_id", "date"], as_index=False)["amount"]
        .sum()
        .sort_values(["contact_id", "date"], ignore_index=True)
    )


def _assert_log(log, orders: pd.DataFrame) -> None:
    got = log.purchases.assign(contact_id=lambda f: f["contact_id"].astype(str))
    want = _expected(orders)
    pd.testing.assert_frame_equal(
        got[["contact_id", "date"]].reset_index(drop=True),
        want[["contact_id", "date"]],
        check_dtype=False,
    )
    np.testing.assert_allclose(got["amount"], want["amount"], rtol=1e-9)


# --- dates ---------------------------------------------------------------------------


def test_day_first_export_is_refused_without_a_format_and_read_right_with_one(tmp_path):
    orders = _orders(max_day=12)  # every date reads as day/month and as month/day
    path = tmp_path / "europe.csv"
    orders.assign(date=orders["date"].dt.strftime("%d/%m/%Y")).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"--date-format %d/%m/%Y \(or --dayfirst\)") as info:
        read_transactions(path)
    assert "\n" not in str(info.value)
    _assert_log(read_transactions(path, dayfirst=True), orders)
    log = read_transactions(path, date_format="%d/%m/%Y")
    _assert_log(log, orders)
    assert "%d/%m/%Y" in log.report.format()
    # Month-first on purpose gives other days, and says so in the report.
    other = read_transactions(path, dayfirst=False, invalid="drop")
    assert other.report.date_format.startswith("%m/%d/%Y")


def test_day_first_dates_with_a_day_above_12_are_inferred_for_the_whole_column(tmp_path):
    orders = _orders()
    path = tmp_path / "europe.csv"
    orders.assign(date=orders["date"].dt.strftime("%d/%m/%Y")).to_csv(path, index=False)
    log = read_transactions(path)
    _assert_log(log, orders)  # "03/09/2022" is 3 September, like "25/09/2022"
    assert log.report.date_format == "%d/%m/%Y (inferred from every value)"


def test_one_format_per_column_never_per_row():
    values = pd.Series(["2022-09-03", "2022-09-25", "25/09/2022"], dtype="string")
    assert infer_date_format(values) == "ISO8601"  # the odd row is unparseable, not re-read
    log = read_transactions(
        pd.DataFrame({"contact_id": ["a", "a", "b"], "date": values, "amount": 1.0}),
        invalid="drop",
    )
    assert log.report.dropped == {"unparseable date": 1}


def test_as_of_accepts_only_iso_dates():
    assert parse_as_of("2024-05-01") == pd.Timestamp("2024-05-01")
    assert parse_as_of("2024-05-01T23:59:00+02:00") == pd.Timestamp("2024-05-01")
    for text in ("05/01/2024", "1 May 2024", "20240501"):
        with pytest.raises(InputError, match="use YYYY-MM-DD"):
            parse_as_of(text)


# --- CSV dialects ----------------------------------------------------------------------


def _european_csv(orders: pd.DataFrame) -> str:
    lines = ["contact_id;name;date;amount"]
    for row in orders.itertuples():
        amount = f"{row.amount:.2f}".replace(".", ",")
        lines.append(f"{row.contact_id};Göran;{row.date:%Y-%m-%d};{amount}")
    return "\n".join(lines) + "\n"


def test_semicolons_decimal_commas_and_a_bom(tmp_path):
    orders = _orders()
    path = tmp_path / "shop.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _european_csv(orders).encode("utf-8"))
    _assert_log(read_transactions(path, decimal=","), orders)  # separator detected
    _assert_log(read_transactions(path, sep=";", decimal=","), orders)
    with pytest.raises(InputError, match="pass --decimal ,"):
        read_transactions(path)


def test_latin1_file_gets_one_line_and_reads_with_its_encoding(tmp_path):
    orders = _orders()
    orders["contact_id"] = orders["contact_id"].str.replace("c", "jörg", regex=False)
    path = tmp_path / "latin.csv"
    path.write_bytes(_european_csv(orders).encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8.*--encoding latin-1") as info:
        read_transactions(path, decimal=",")
    assert "\n" not in str(info.value)
    log = read_transactions(path, decimal=",", encoding="latin-1")
    _assert_log(log, orders)
    assert log.purchases["contact_id"].str.startswith("jörg").all()


def test_header_in_one_column_names_the_separator(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("contact_id;date;amount\na;2024-01-01;1\n")
    with pytest.raises(InputError, match="one column.*--sep"):
        read_transactions(path, sep=",")


# --- ids --------------------------------------------------------------------------------


def test_mixed_case_emails_warn_and_merge_with_id_case_lower(tmp_path):
    orders = _orders()
    orders["contact_id"] = orders["contact_id"] + "@Shop.com"
    shouted = (orders.index // 60) % 2 == 0  # each customer written both ways
    orders.loc[shouted, "contact_id"] = orders.loc[shouted, "contact_id"].str.upper()
    with pytest.warns(DataQualityWarning, match=r"differ from another only in upper/lower case"):
        kept = read_transactions(orders)
    merged = read_transactions(orders, id_case="lower")
    assert merged.report.contacts == 60 < kept.report.contacts
    assert merged.purchases["contact_id"].str.islower().all()
    crm = pd.DataFrame({"contact_id": [f"C{i:03d}@SHOP.COM" for i in range(60)]})
    contacts = read_contacts(crm, id_case="lower")
    assert set(contacts["contact_id"]) == set(merged.purchases["contact_id"])


def test_float_ids_are_the_same_from_csv_parquet_and_dataframe(tmp_path):
    orders = _orders()
    orders["contact_id"] = (12_300 + orders.index % 60).astype(float)
    csv, parquet = tmp_path / "ids.csv", tmp_path / "ids.parquet"
    orders.to_csv(csv, index=False)  # written as "12346.0"
    assert "12300.0" in csv.read_text()
    orders.to_parquet(parquet)
    logs = [read_transactions(source) for source in (csv, parquet, orders)]
    ids = [log.purchases["contact_id"].astype(str).tolist() for log in logs]
    assert ids[0] == ids[1] == ids[2]
    assert ids[0][0] == "12300"
    unique = tmp_path / "contacts.csv"
    orders[["contact_id"]].drop_duplicates().to_csv(unique, index=False)
    assert read_contacts(unique)["contact_id"].iloc[0] == "12300"


# --- time zones ---------------------------------------------------------------------------


def test_madrid_late_evening_orders_land_on_the_local_day():
    stamps = ["2024-03-01T23:30:00+00:00", "2024-07-01T22:30:00Z", "2024-07-01T12:00:00+02:00"]
    frame = pd.DataFrame({"contact_id": ["a", "b", "c"], "date": stamps, "amount": 10.0})
    utc = read_transactions(frame)
    madrid = read_transactions(frame, timezone="Europe/Madrid")
    assert utc.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-01", "07-01", "07-01"]
    # 23:30 UTC is 00:30 in Madrid in winter (UTC+1); 22:30 UTC is 00:30 in summer (UTC+2).
    assert madrid.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-02", "07-02", "07-01"]
    # Timestamps typed with a zone (Parquet, pandas) are converted the same way.
    typed = frame.assign(date=pd.to_datetime(frame["date"], utc=True))
    assert (
        read_transactions(typed, timezone="Europe/Madrid")
        .purchases["date"]
        .equals(madrid.purchases["date"])
    )
    # Naive timestamps are already local.
    naive = frame.assign(date=["2024-03-01 23:30", "2024-07-01 22:30", "2024-07-01 12:00"])
    local = read_transactions(naive, timezone="Europe/Madrid")
    assert local.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-01", "07-01", "07-01"]
    with pytest.raises(InputError, match="time zone 'Mars/Olympus' is not known"):
        read_transactions(frame, timezone="Mars/Olympus")


# --- through the CLI ---------------------------------------------------------------------


def test_cli_reads_a_european_export_and_refuses_ambiguity_in_one_line(tmp_path):
    orders = _orders(max_day=12)
    path = tmp_path / "shop.csv"
    text = _european_csv(orders).replace("-", "/")  # dates 2022/01/05: year first, unambiguous
    path.write_bytes(text.encode("cp1252"))
    out = tmp_path / "rfm.csv"
    ok = run_clvcast(
        "rfm",
        "--transactions",
        path,
        "--as-of",
        "2024-06-30",
        "--output",
        out,
        "--decimal",
        ",",
        "--encoding",
        "cp1252",
    )
    assert ok.returncode == 0, ok.stderr
    assert "dates read as ISO 8601" in ok.stdout
    ambiguous = tmp_path / "ambiguous.csv"
    orders.assign(date=orders["date"].dt.strftime("%d/%m/%Y")).to_csv(ambiguous, index=False)
    refused = tmp_path / "refused.csv"
    bad = run_clvcast(
        "rfm", "--transactions", ambiguous, "--as-of", "2024-06-30", "--output", refused
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "--dayfirst" in bad.stderr
    assert "Traceback" not in bad.stderr and not refused.exists()
    fixed = run_clvcast(
        "rfm",
        "--transactions",
        ambiguous,
        "--as-of",
        "2024-06-30",
        "--output",
        refused,
        "--dayfirst",
    )
    assert fixed.returncode == 0, fixed.stderr
    as_of = run_clvcast(
        "rfm", "--transactions", ambiguous, "--as-of", "05/01/2024", "--output", refused
    )
    assert as_of.returncode == 2 and "use YYYY-MM-DD" in as_of.stderr
