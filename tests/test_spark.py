"""The Spark engine (local[2]) gives the local engine's purchase log, summary and scores.

Skipped, saying why, only when Java is missing; `make test` installs Java when it can
(scripts/java.sh), and in CI (CI=true) a missing Java fails instead of skipping.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from clvcast.data import (
    REASON_FIELD_COUNT,
    REASON_ORDER_CANCELLED,
    read_transactions,
    sample_contacts,
)
from clvcast.data.chunks import chunk_of
from clvcast.data.ingest import ReadOptions
from clvcast.data.simulate import online_retail_lines
from clvcast.errors import DataQualityWarning, InputError
from clvcast.pipeline import CLVPipeline
from clvcast.summary import summarize
from conftest import (
    FORMULA_ORDER_IDS,
    FORMULA_ORDER_OPTIONS,
    SHOPIFY,
    SHOPIFY_ORDERS,
    run_clvcast,
    run_inprocess,
)

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'clvcast[spark]'")
from clvcast.spark.session import java_available, job_session, spark_session

if not java_available():
    if os.environ.get("CI") == "true":
        pytest.fail("Java is missing in CI: scripts/java.sh should have installed it")
    pytest.skip("Java is missing: the Spark tests need Java 17+", allow_module_level=True)

from clvcast.spark.engine import (
    partition_column,
    read_transactions_spark,
    sample_spark,
    score_spark,
    summary_spark,
    summary_to_pandas,
)

AS_OF = "1998-06-30"


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def cdnow_file(cdnow_raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("spark") / "cdnow.parquet"
    cdnow_raw.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def both(spark, cdnow_file):
    options = ReadOptions(date_format="%Y%m%d", as_of=AS_OF, name="cdnow")
    local = read_transactions(cdnow_file, date_format="%Y%m%d", as_of=AS_OF, name="cdnow")
    purchases, report = read_transactions_spark(spark, cdnow_file, options)
    return local, purchases.cache(), report


def _spark_log(purchases) -> pd.DataFrame:
    frame = purchases.orderBy("contact_id", "date").toPandas()
    frame["contact_id"] = frame["contact_id"].astype(str)
    frame["date"] = frame["date"].astype("datetime64[us]")
    return frame


def _same_as_local(spark, path, **options):
    """The local engine's purchase log of ``path`` read with ``options``, once the Spark
    engine gave the same log and the same report."""
    local = read_transactions(path, **options)
    purchases, report = read_transactions_spark(spark, path, ReadOptions(**options))
    pd.testing.assert_frame_equal(_spark_log(purchases), local.purchases, check_dtype=False)
    assert report.to_dict() == local.report.to_dict()
    return local


def _refusals(spark, path, **options) -> tuple[str, str]:
    """The messages the local and the Spark engine refuse ``path`` with."""
    with pytest.raises(InputError) as local:
        read_transactions(path, **options)
    with pytest.raises(InputError) as remote:
        read_transactions_spark(spark, path, ReadOptions(**options))
    return str(local.value), str(remote.value)


def test_spark_reads_the_same_purchase_log(both):
    local, purchases, report = both
    pd.testing.assert_frame_equal(_spark_log(purchases), local.purchases, check_dtype=False)
    assert report.to_dict() == local.report.to_dict()


def test_spark_applies_the_same_policies(spark, tmp_path):
    rows = [
        ("a", "2024-01-01", "50"),
        ("a", "2024-01-01", "-20"),
        ("a", "2024-01-01", "-20"),
        ("b", "2024-01-02T23:30:00-02:00", "30"),
        ("b", "yesterday", "5"),
        ("  ", "2024-01-03", "1"),
        ("c", "2024-01-04", "12,50"),
        ("c", "2024-02-04", "7"),
        ("c", "2024-02-04", "7"),  # a duplicate after the as-of day of the second policies
    ]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=["contact_id", "date", "amount"]).to_csv(path, index=False)
    for policies in (
        {"invalid": "drop", "nonpositive": "net", "duplicates": "keep"},
        {"invalid": "drop", "nonpositive": "drop", "duplicates": "drop", "as_of": "2024-01-31"},
    ):
        _same_as_local(spark, path, **policies)
    with pytest.raises(Exception, match="unparseable date"):
        read_transactions_spark(spark, path, ReadOptions())


def test_spark_reads_unix_times_and_names_their_format_as_the_local_engine(spark, tmp_path):
    stamps = pd.to_datetime(["2024-01-01 08:00", "2024-01-01 23:30", "2024-02-03 12:00"])
    seconds = (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    frame = pd.DataFrame({"contact_id": ["a", "a", "b"], "date": seconds, "amount": 10.0})
    path = tmp_path / "events.parquet"
    frame.to_parquet(path, index=False)
    options = {"date_format": "unix", "timezone": "Europe/Madrid"}
    local = _same_as_local(spark, path, **options)
    assert len(local.purchases) == 3  # 23:30 UTC is the next day in Madrid
    with pytest.raises(Exception, match="look like Unix times in seconds"):
        read_transactions_spark(spark, path, ReadOptions())


def test_spark_reads_day_numbers_from_the_day_they_count_from(spark, tmp_path):
    frame = pd.DataFrame({"contact_id": ["a", "a", "b"], "date": [1, 447, 711], "amount": 10.0})
    path = tmp_path / "days.parquet"
    frame.to_parquet(path, index=False)
    local = _same_as_local(spark, path, date_format="days-since:2019-12-31")
    assert local.purchases["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2020-01-01", "2021-03-22", "2021-12-11"
    ]  # fmt: skip
    with pytest.raises(Exception, match="days-since:YYYY-MM-DD"):
        read_transactions_spark(spark, path, ReadOptions())


def test_spark_takes_zoned_timestamps_in_the_zone_the_file_names(spark, tmp_path):
    stamps = pd.to_datetime(["2024-03-01 23:00", "2024-07-05 00:30"]).tz_localize("Europe/Madrid")
    frame = pd.DataFrame({"contact_id": ["a", "b"], "date": stamps, "amount": 10.0})
    path = tmp_path / "zoned.parquet"
    frame.to_parquet(path, index=False)
    for options in ({}, {"timezone": "UTC"}):
        local = _same_as_local(spark, path, **options)
    assert local.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-01", "07-04"]


def test_spark_names_shopify_item_lines_as_the_local_engine(spark, tmp_path):
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY_ORDERS)
    local, remote = _refusals(spark, path, **SHOPIFY, order_col="Name")
    assert "another line of an order" in remote
    assert remote.split(";")[1] == local.split(";")[1]


def _status_export(path, column: str, statuses: list) -> None:
    """Six orders of three contacts, with ``statuses`` in ``column``, as a CSV at ``path``."""
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "b", "c", "c"],
            "date": pd.date_range("2024-01-01", periods=6).strftime("%Y-%m-%d"),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
            column: statuses,
        }
    )
    frame.to_csv(path, index=False)


def test_spark_reads_order_statuses_as_the_local_engine(spark, tmp_path):
    statuses = ["paid", "refunded", "wc-Cancelled ", None, "partially_refunded", "Pending"]
    path = tmp_path / "orders.csv"
    _status_export(path, "Financial Status", statuses)
    local, remote = _refusals(spark, path)
    assert remote == local
    for status_col in ("Financial Status", "none"):
        log = _same_as_local(spark, path, status_col=status_col)  # the notes too
    read = _same_as_local(spark, path, status_col="Financial Status")
    assert any("(1 pending) were read as purchases" in note for note in read.report.notes)
    assert not any("not paid" in note for note in log.report.notes)


def test_spark_reads_magento_statuses_as_the_local_engine(spark, tmp_path):
    written = ["complete", "order_refunded", "closed", "\\N", "exchange", "pending_paypal"]
    path = tmp_path / "magento.csv"
    _status_export(path, "status", written)
    local, remote = _refusals(spark, path)
    assert "(1 closed, 1 exchange rows;" in local
    assert remote == local
    read = _same_as_local(
        spark,
        path,
        status_col="status",
        not_purchase_statuses="closed",
        purchase_statuses="exchange",
    )
    assert read.purchases["amount"].tolist() == [10.0, 40.0, 50.0, 60.0]


def test_spark_reads_accounting_negatives_as_the_local_engine(spark, tmp_path):
    amounts = ["12,50 €", "(2,50 €)", "€ 1.020,00", "30,00", "\u22125,25", "7,00- €"]
    frame = pd.DataFrame({"contact_id": list("aaabbc"), "date": "2024-01-05", "amount": amounts})
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False, sep=";")
    options = {"decimal": ",", "thousands": ".", "currency": "€", "nonpositive": "net"}
    local = _same_as_local(spark, path, **options)
    assert local.purchases["amount"].tolist() == [1030.0, 24.75]


def test_spark_reads_thousands_separators_as_the_local_engine(spark, tmp_path):
    amounts = ["1.234,56 €", "12,50", "€ 1.234.567,8", "1,23", "12.34 EUR", "1\u202f234,5"]
    frame = pd.DataFrame({"contact_id": list("abcdef"), "date": "2024-01-05", "amount": amounts})
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False, sep=";")
    for thousands in (".", " "):
        options = {"decimal": ",", "thousands": thousands, "currency": "€", "invalid": "drop"}
        local = _same_as_local(spark, path, **options)
    assert local.purchases["amount"].tolist() == [12.5, 1.23, 1234.5]  # b, d, f with spaces
    here, remote = _refusals(spark, path)
    assert remote.split(";")[-1] == here.split(";")[-1]


def test_spark_reads_guest_ids_as_the_local_engine(spark, tmp_path):
    ids = [str(i % 30 + 1) if i % 7 else "0" for i in range(140)]  # 0: WooCommerce's guests
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta([i * 3 % 200 for i in range(140)], "D")
    path = tmp_path / "woo.csv"
    pd.DataFrame({"Customer User": ids, "date": days, "amount": 10.0}).to_csv(path, index=False)
    base = {"contact_col": "Customer User"}
    local, remote = _refusals(spark, path, **base)
    assert remote == local
    for guest_id in ("0", "none"):
        _same_as_local(spark, path, **base, guest_id=guest_id)


def test_spark_reads_order_lines_refunds_and_ids_as_the_local_engine(spark, tmp_path):
    export = online_retail_lines(300, seed=7)
    lines = export.lines.copy()
    # Refunds days later without an order (net-contact) and ids differing only in case.
    lines.loc[lines.index[:40:4], "InvoiceNo"] = "R" + lines["InvoiceNo"].iloc[:40:4]
    lines.loc[lines.index[:40:4], "Quantity"] *= -1
    lines["CustomerID"] = lines["CustomerID"].map(lambda v: None if v != v else f"C{int(v)}")
    lines.loc[lines.index[1::7], "CustomerID"] = lines["CustomerID"].iloc[1::7].str.lower()
    path = tmp_path / "online_retail.csv"
    lines.to_csv(path, index=False)
    base = {
        "contact_col": "CustomerID",
        "date_col": "InvoiceDate",
        "quantity_col": "Quantity",
        "price_col": "UnitPrice",
        "order_col": "InvoiceNo",
    }
    for policies in ({"nonpositive": "net-contact"}, {"nonpositive": "drop", "id_case": "lower"}):
        with warnings.catch_warnings(record=True) as local_warnings:
            warnings.simplefilter("always")
            local = read_transactions(path, **base, **policies)
        with warnings.catch_warnings(record=True) as spark_warnings:
            warnings.simplefilter("always")
            purchases, report = read_transactions_spark(
                spark, path, ReadOptions(**base, **policies)
            )
        pd.testing.assert_frame_equal(_spark_log(purchases), local.purchases, check_dtype=False)
        assert report.to_dict() == local.report.to_dict()
        assert report.rows_netted > 0
        twins = [str(w.message) for w in local_warnings if "upper/lower" in str(w.message)]
        assert twins == [str(w.message) for w in spark_warnings if "upper/lower" in str(w.message)]
        assert len(twins) == (policies.get("id_case") != "lower")


def test_spark_summary_equals_the_local_summary(both):
    local, purchases, _ = both
    expected = summarize(local, AS_OF)
    pd.testing.assert_frame_equal(summary_to_pandas(summary_spark(purchases, AS_OF)), expected)


def test_spark_samples_the_same_contacts(both):
    local, purchases, report = both
    sample, size = sample_spark(purchases, 6000, report.contacts)
    expected, expected_size = sample_contacts(local.purchases, 6000)
    assert size == expected_size
    pd.testing.assert_frame_equal(sample, expected, check_dtype=False)


def test_spark_scores_equal_the_local_engine(spark, both):
    local, purchases, report = both
    pipeline = CLVPipeline().fit(local, AS_OF)
    contacts = pd.DataFrame({"contact_id": ["00001", "prospect-9"], "email": ["a@x", "b@x"]})
    scored = score_spark(spark, pipeline, purchases, AS_OF, contacts=contacts, groups=3)
    result = scored.toPandas().sort_values("contact_id", ignore_index=True)
    expected = pipeline.score(local, AS_OF, contacts=contacts)
    expected = expected.sort_values("contact_id", ignore_index=True)
    assert list(result.columns) == list(expected.columns)
    assert_same_table(result, expected)


def _naive(values: pd.Series) -> pd.Series:
    """Timestamps in microseconds, zoned ones (scored_at) as naive UTC."""
    if getattr(values.dtype, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[us]")


def assert_same_table(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal values column by column: numbers to 1e-9 relative, dates and text exactly."""
    assert len(result) == len(expected)
    for column in expected.columns:
        left, right = result[column], expected[column]
        if pd.api.types.is_bool_dtype(right):
            assert left.astype(bool).tolist() == right.astype(bool).tolist(), column
        elif pd.api.types.is_numeric_dtype(right):
            np.testing.assert_allclose(
                left.astype(float).to_numpy(), right.astype(float).to_numpy(), rtol=1e-9
            )
        elif pd.api.types.is_datetime64_any_dtype(right):
            assert _naive(pd.to_datetime(left)).equals(_naive(right)), column
        else:
            as_text = [None if pd.isna(v) else str(v) for v in left]
            assert as_text == [None if pd.isna(v) else str(v) for v in right], column


def test_cli_train_and_predict_with_spark_equal_local(spark, cdnow_raw, tmp_path):
    # The first 4,000 CDNOW customers: the whole commands twice each. Three run in this
    # process, where the Spark engine borrows the running session (and leaves it running);
    # Spark's predict runs as a fresh process, which starts and stops a session of its own.
    small = tmp_path / "cdnow_small.parquet"
    cdnow_raw[cdnow_raw["contact_id"].astype(str) <= "04000"].to_parquet(small, index=False)
    common = ["--transactions", str(small), "--date-format", "%Y%m%d", "--as-of", AS_OF]
    outputs = {}
    for engine in ("local", "spark"):
        (tmp_path / engine).mkdir()
        model = tmp_path / engine / "clvcast.model"  # the model name comes from the file
        extra = ["--engine", engine, "--spark-master", "local[2]"]
        train = [*common, "--save", str(model), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
        done = run_inprocess("train", *train, *extra, "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outputs[engine] = tmp_path / f"{engine}.parquet"
        predict = [*common, "--model", str(model), "--output", str(outputs[engine])]
        predict += ["--scored-at", "2024-01-01T00:00:00"]
        runner = run_clvcast if engine == "spark" else run_inprocess
        done = runner("predict", *predict, *extra, "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    local = pd.read_parquet(outputs["local"]).sort_values("contact_id", ignore_index=True)
    spark = pd.read_parquet(outputs["spark"]).sort_values("contact_id", ignore_index=True)
    assert list(spark.columns) == list(local.columns)
    assert_same_table(spark, local)
    # A refused input in a process of its own is clvcast's one line, not a Java stack trace
    # per failed task from Spark's log before it (only the JVM's own notice of its
    # incubator module is left, which no setting turns off).
    bad = tmp_path / "bad.csv"
    bad.write_text("contact_id,date,amount\na,20240101,10\nb,20240102,20,50\n")
    args = ["--transactions", str(bad), "--date-format", "%Y%m%d", "--as-of", AS_OF]
    args += [
        "--model",
        str(tmp_path / "spark" / "clvcast.model"),
        "--output",
        str(tmp_path / "bad.parquet"),
    ]
    done = run_clvcast("predict", *args, *extra, cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "incubator modules" not in line]
    assert len(lines) == 1 and lines[0].startswith(
        "clvcast: error: transactions file bad.csv: 1 line"
    )


def test_a_job_borrows_the_running_session_and_leaves_it_running(spark):
    with job_session(None) as borrowed:
        assert borrowed is spark
    with job_session("local[2]") as borrowed:
        assert borrowed is spark
    assert spark.range(3).count() == 3  # still running
    with (
        pytest.raises(InputError, match="already running in this process"),
        job_session("local[1]"),
    ):
        pass


def test_both_engines_partition_contacts_by_the_same_function(spark, cdnow_raw):
    ids = pd.Series([*cdnow_raw["contact_id"].drop_duplicates().head(500), "ana@x.com", "é-1"])
    frame = spark.createDataFrame(pd.DataFrame({"contact_id": ids}))
    for parts in (1, 3, 7, 64):
        on_spark = frame.select(partition_column(parts).alias("part")).toPandas()["part"]
        assert on_spark.tolist() == chunk_of(ids, parts).tolist(), parts
    assert chunk_of(ids, 7).nunique() == 7  # the ids spread over every part


def test_spark_reads_numbers_run_together_as_the_local_engine(spark, tmp_path):
    """%Y%m%d reads only zero-padded values (1997111 may be 1 November or 11 January)."""
    frame = pd.DataFrame(
        {"contact_id": list("aabb"), "date": ["19970105", "1997111", "19970301", "19970412"]}
    ).assign(amount=[10.0, 20.0, 30.0, 40.0])
    path = tmp_path / "ymd.csv"
    frame.to_csv(path, index=False)
    for date_format in ("%Y%m%d", None):
        local, remote = _refusals(spark, path, date_format=date_format)
        assert "1 November or 11 January" in local
        assert remote.split(";")[1] == local.split(";")[1]
    log = _same_as_local(spark, path, date_format="%Y%m%d", invalid="drop")
    assert len(log.purchases) == 3


def test_spark_reads_statuses_in_the_shops_language_as_the_local_engine(spark, tmp_path):
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "b", "c", "c", "d"],
            "date": pd.date_range("2024-01-01", periods=7).strftime("%Y-%m-%d"),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
            "Estado del pedido": [
                "Entregado",
                "CANCELADO",
                " Reembolsado",
                "Annulé",
                "Zwrócone",
                None,
                "wc-checkout-draft",
            ],
        }
    )
    path = tmp_path / "pedidos.csv"
    frame.to_csv(path, index=False)
    local, remote = _refusals(spark, path)
    assert "1 annulé, 1 cancelado, 1 checkout-draft, 1 reembolsado, 1 zwrócone" in local
    assert remote == local
    log = _same_as_local(spark, path, status_col="Estado del pedido")
    assert log.purchases["amount"].tolist() == [10.0, 60.0]


def test_spark_reads_refunds_as_the_local_engine(spark, tmp_path):
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "b", "c"],
            "date": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
            "Total": ["35.00", "20.00", "45.00", "30.00", "12.00"],
            "Refunded Amount": ["", "5.00", "0.00", "-30.00", "abc"],
        }
    )
    path = tmp_path / "orders_export.csv"
    frame.to_csv(path, index=False)
    base = {"amount_col": "Total", "invalid": "drop"}
    local, remote = _refusals(spark, path, **base)
    assert "holds refunds on 2 rows (35.00 in all)" in local
    assert remote == local
    for refund_col in ("Refunded Amount", "none"):
        _same_as_local(spark, path, **base, refund_col=refund_col)
    netted = read_transactions(path, **base, refund_col="Refunded Amount")
    assert netted.purchases["amount"].tolist() == [35.0, 15.0, 45.0]  # c's refund unreadable


def test_spark_reads_several_currencies_as_the_local_engine(spark, tmp_path):
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "b", "c", "c"],
            "date": pd.date_range("2024-01-01", periods=6).strftime("%Y-%m-%d"),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
            "Currency": ["EUR", "usd", " eur", None, "PLN", "EUR"],
        }
    )
    path = tmp_path / "orders.csv"
    frame.to_csv(path, index=False)
    for currency in (None, "GBP"):
        local, remote = _refusals(spark, path, currency=currency)
        assert remote == local
    for options in ({"currency": "EUR"}, {"currency_col": "none"}):
        log = _same_as_local(spark, path, **options)
    assert log.purchases["amount"].sum() == 210.0
    assert read_transactions(path, currency="EUR").purchases["amount"].tolist() == [
        10.0,
        30.0,
        40.0,
        60.0,
    ]


def test_spark_reads_swiss_thousands_as_the_local_engine(spark, tmp_path):
    amounts = ["1'234.50", "12.50", "1\u2019234\u2019567.8", "1'23", "CHF 2'000"]
    frame = pd.DataFrame({"contact_id": list("abcde"), "date": "2024-01-05", "amount": amounts})
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False, sep=";")
    options = {"thousands": "'", "currency": "CHF", "invalid": "drop"}
    local = _same_as_local(spark, path, **options)
    assert local.purchases["amount"].tolist() == [1234.5, 12.5, 1234567.8, 2000.0]  # not 1'23


def test_spark_refuses_status_refund_and_currency_in_one_line_as_the_local_engine(spark, tmp_path):
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "b", "a"],
            "date": ["2024-01-05", "2024-01-06", "2024-03-01"],
            "Total": [35.0, 20.0, 45.0],
            "Financial Status": ["paid", "partially_refunded", "refunded"],
            "Refunded Amount": [None, 5.0, 45.0],
            "Currency": ["EUR", "EUR", "USD"],
        }
    )
    path = tmp_path / "orders_export.csv"
    frame.to_csv(path, index=False)
    local, remote = _refusals(spark, path, amount_col="Total")
    assert local.count("; also ") == 2
    assert remote == local


def test_spark_refuses_lines_with_another_number_of_fields_as_the_local_engine(spark, tmp_path):
    """Spark's default CSV mode kept "20" of an unquoted "20,50" and went on without a word;
    both engines now refuse the file with the same line. Under --drop-invalid the local
    engine drops and counts the line; Spark's mode that drops such lines would not count
    them, so it refuses and says so."""
    path = tmp_path / "split.csv"
    path.write_text(
        "contact_id,date,amount\na,2024-01-05,10.50\na,2024-02-05,20,50\nb,2024-03-05,5.00\n"
    )
    local, remote = _refusals(spark, path)
    named = (
        "transactions file split.csv: 1 line with another number of fields than the header's "
        '3 (line 3: 4 fields, "a,2024-02-05,20,50"): an amount with a decimal comma such as '
        '"20,50" splits in two where it is not quoted. Export the file with such values in '
        "quotes, "
    )
    assert remote == named + "or pass --sep if ',' is not its separator."
    assert local == named + (
        "pass --sep if ',' is not its separator, or pass --drop-invalid to drop and count "
        "such lines."
    )
    with pytest.raises(InputError) as refused:
        read_transactions_spark(spark, path, ReadOptions(invalid="drop"))
    assert str(refused.value) == remote + (
        " --drop-invalid drops and counts such lines with the local engine, not with "
        "--engine spark."
    )
    with pytest.warns(DataQualityWarning, match="likely purchases"):
        dropped = read_transactions(path, invalid="drop").report.dropped
    assert dropped == {REASON_FIELD_COUNT: 1}
    path.write_text(
        'contact_id,date,amount\na,2024-01-05,10.50\na,2024-02-05,"20.50"\nb,2024-03-05,5.00\n'
    )
    assert _same_as_local(spark, path).purchases["amount"].tolist() == [10.5, 20.5, 5.0]
    # A separator at the end of every line but the header's: no value is split
    path.write_text(
        "contact_id,date,amount\na,2024-01-05,10.50,\na,2024-02-05,20.50,\nb,2024-03-05,5.00,\n"
    )
    assert _same_as_local(spark, path).purchases["amount"].tolist() == [10.5, 20.5, 5.0]


def test_spark_reads_bigquery_and_rfc_2822_stamps_as_the_local_engine(spark, tmp_path):
    # (the stamp, its day in Madrid)
    for stamp, day in (("2024-01-05 23:30:00 UTC", 6), ("Mon, 05 Feb 2024 10:00:00 GMT", 5)):
        frame = pd.DataFrame({"contact_id": ["a", "b"], "date": [stamp, stamp], "amount": 1.0})
        path = tmp_path / "stamps.csv"
        frame.to_csv(path, index=False)
        log = _same_as_local(spark, path, timezone="Europe/Madrid")
        assert log.purchases["date"].dt.day.tolist() == [day, day]


def test_spark_refuses_amounts_whose_dots_may_separate_thousands_as_the_local_engine(
    spark, tmp_path
):
    path = tmp_path / "chile.csv"
    path.write_text(
        "contact_id,date,amount\nA,2024-01-05,12.990\nA,2024-02-05,990\nB,2024-03-05,129.990\n"
    )
    for message in _refusals(spark, path):
        assert "every amount with a dot in column 'amount'" in message
        assert "Pass --thousands . for the first" in message
    log = _same_as_local(spark, path, thousands=".")
    assert log.purchases["amount"].tolist() == [12990.0, 990.0, 129990.0]


def test_spark_reads_ids_written_as_spreadsheet_text_formulas_as_the_local_engine(spark, tmp_path):
    # Also the doubled quotes inside quotes (RFC 4180): with Spark's default escape, the
    # backslash, the field "=""00123""" was the id '"=""00123"""'.
    path = tmp_path / "export.csv"
    path.write_text('contact_id,date,amount\n"=""00123""",2024-01-05,10.50\n 00456 ,2024-03-05,5\n')
    assert _same_as_local(spark, path).purchases["contact_id"].tolist() == ["00123", "00456"]
    path.write_text(FORMULA_ORDER_IDS)  # order ids too: a cancellation still finds its order
    assert _same_as_local(spark, path, **FORMULA_ORDER_OPTIONS).report.dropped == {
        REASON_ORDER_CANCELLED: 2
    }
