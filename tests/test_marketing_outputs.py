"""Scored tables for marketing tools: the marketing CSV, typed Parquet and SQL, prospects,
audiences with entered/left, changed rows only and migrations with context (CDNOW)."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy

import clvcast
from clvcast.audiences import kinds_of, load_audiences, parse_condition
from clvcast.changes import CLV_FLOOR, COMPARED_COLUMNS, DEFAULT_CLV_TOLERANCE
from clvcast.data import ReadOptions, load_cdnow_master, read_transactions
from clvcast.errors import InputError
from clvcast.output import read_scored, write_scored, write_table
from clvcast.pipeline import CLVPipeline
from conftest import run_inprocess

READ = ReadOptions(date_format="%Y%m%d")
MAY, JUNE = "1998-05-31", "1998-06-30"
AUDIENCES = """\
at_risk_vip: high_value and churn_risk_band == "high"
cheap_subscribers: newsletter == "subscribed" and clv_12m < 100 and predicted_purchases_12m < 1
vip_fading: m_score >= 4 and r_score_from == 5 and r_score_to == 4
opted_in_champions: opted_in and rfm_segment in ["champions", "loyal customers"]
"""
BTYD = ("frequency", "recency", "T", "monetary_value")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """CDNOW, a contacts table (accents, opt-in flags as text, two prospects), a pipeline
    fitted at the end of April 1998 and two predict runs a month apart."""
    folder = tmp_path_factory.mktemp("marketing")
    raw = load_cdnow_master()
    raw.to_parquet(folder / "cdnow.parquet", index=False)
    ids = sorted(raw["contact_id"].unique())
    contacts = pd.DataFrame(
        {
            "contact_id": [*ids, "P0001", "P0002"],
            "first_name": ["José" if i % 7 == 0 else "Ana" for i in range(len(ids) + 2)],
            "newsletter": np.where(np.arange(len(ids) + 2) % 3 == 0, "unsubscribed", "subscribed"),
            "opted_in": np.where(np.arange(len(ids) + 2) % 2 == 0, "true", "false"),
        }
    )
    contacts.to_csv(folder / "contacts.csv", index=False, encoding="utf-8")
    (folder / "audiences.yaml").write_text(AUDIENCES, encoding="utf-8")
    log = read_transactions(folder / "cdnow.parquet", date_format="%Y%m%d")
    pipeline = CLVPipeline().fit(log, "1998-04-30")
    common = {
        "contacts": folder / "contacts.csv",
        "read": READ,
        "audiences": folder / "audiences.yaml",
        "scored_at": "2024-07-01T06:00:00",
    }
    may = clvcast.predict(
        pipeline, folder / "cdnow.parquet", as_of=MAY, output=folder / "may.parquet", **common
    )
    june = clvcast.predict(
        pipeline,
        folder / "cdnow.parquet",
        as_of=JUNE,
        output=folder / "june.parquet",
        previous=folder / "may.parquet",
        changed_only=True,
        **common,
    )
    return {"folder": folder, "pipeline": pipeline, "may": may, "june": june}


def _scored(folder, name: str) -> pd.DataFrame:
    return read_scored(str(folder / name))


def test_parquet_and_sqlite_keep_types(shop, tmp_path):
    schema = pq.read_schema(shop["folder"] / "june.parquet")
    assert str(schema.field("as_of").type) == "date32[day]"
    assert str(schema.field("r_drop_date").type) == "date32[day]"
    assert str(schema.field("scored_at").type).endswith("tz=UTC]")  # a timestamp with zone
    assert str(schema.field("high_value").type) == "bool"
    assert str(schema.field("opted_in").type) == "bool"  # "true"/"false" text in the CRM export
    table = _scored(shop["folder"], "june.parquet")
    url = f"sqlite:///{tmp_path / 's.db'}"
    write_scored(table.head(50), url, "scores")
    engine = sqlalchemy.create_engine(url)
    columns = {c["name"]: c["type"] for c in sqlalchemy.inspect(engine).get_columns("scores")}
    engine.dispose()
    assert isinstance(columns["as_of"], sqlalchemy.DATE)
    assert isinstance(columns["high_value"], sqlalchemy.BOOLEAN)
    # Contact ids never repeat and the models' continuous outputs rarely do: no dictionary
    # page for them; the columns that repeat keep one.
    row_group = pq.ParquetFile(shop["folder"] / "june.parquet").metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: row_group.column(i).encodings
        for i in range(row_group.num_columns)
    }
    for column in ("contact_id", "predicted_purchases_12m", "p_alive", "clv_12m", "churn_risk"):
        assert not any("DICTIONARY" in e for e in encodings[column]), column
    for column in ("rfm_segment", "r_score", "as_of", "expected_order_value", "total_spend"):
        assert any("DICTIONARY" in e for e in encodings[column])
    # Minimum and maximum where a reader can skip row groups with them, not for the labels.
    statistics = {
        row_group.column(i).path_in_schema: row_group.column(i).is_stats_set
        for i in range(row_group.num_columns)
    }
    for column in ("contact_id", "clv_12m", "r_score", "last_purchase", "opted_in"):
        assert statistics[column], column
    for column in ("rfm_cell", "rfm_group", "rfm_segment", "churn_risk_band"):
        assert not statistics[column], column


def test_prospects_have_zero_forecasts_so_numeric_filters_include_them(shop):
    table = _scored(shop["folder"], "june.parquet").set_index("contact_id")
    prospects = table.loc[["P0001", "P0002"]]
    assert (prospects["rfm_group"] == "prospect").all()
    assert (prospects["clv_12m"] == 0).all() and (prospects["predicted_purchases_12m"] == 0).all()
    assert prospects["p_alive"].isna().all() and prospects["churn_risk"].isna().all()
    cheap = table[(table["newsletter"] == "subscribed") & (table["clv_12m"] < 100)]
    assert "P0001" in cheap.index or "P0002" in cheap.index


def _predict_june(shop, target, csv_format: str, *, with_contacts: bool = True, **options):
    """June's scores of the shop's contacts (with its prospects and attributes unless
    ``with_contacts`` is False), written to ``target`` in ``csv_format``."""
    return clvcast.predict(
        shop["pipeline"],
        shop["folder"] / "cdnow.parquet",
        as_of=JUNE,
        contacts=shop["folder"] / "contacts.csv" if with_contacts else None,
        read=READ,
        output=target,
        csv_format=csv_format,
        scored_at="2024-07-01T06:00:00",
        **options,
    )


@pytest.fixture(scope="module")
def marketing_csv(shop):
    target = shop["folder"] / "scores.csv"
    _predict_june(shop, target, "marketing")
    return target


def test_marketing_csv_follows_every_format_rule(marketing_csv, shop, tmp_path):
    rows = list(csv.DictReader(io.StringIO(marketing_csv.read_bytes().decode("utf-8-sig"))))
    header = list(rows[0])
    assert not set(BTYD) & set(header)
    assert {"orders", "days_since_last_purchase", "total_spend", "clv_12m"} <= set(header)
    money = re.compile(r"^-?\d+\.\d{2}$")
    probability = re.compile(r"^[01]\.\d{4}$")
    integer = re.compile(r"^\d+$")
    day = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    rules = {
        **dict.fromkeys(("total_spend", "expected_order_value", "clv_12m"), money),
        "predicted_purchases_12m": money,
        **dict.fromkeys(("p_alive", "churn_risk"), probability),
        **dict.fromkeys(("orders", "days_since_last_purchase", "r_score", "f_score"), integer),
        "m_score": integer,
        **dict.fromkeys(("as_of", "first_purchase", "last_purchase", "r_drop_date"), day),
        "expected_drift_date": day,
        **dict.fromkeys(("high_value", "opted_in"), re.compile(r"^(true|false)$")),
        "scored_at": re.compile(r"^2024-07-01T06:00:00\+00:00$"),
    }
    for column, rule in rules.items():
        values = [row[column] for row in rows if row[column] != ""]
        assert values, column
        bad = [v for v in values if not rule.match(v)]
        assert not bad, (column, bad[:3])
    by_id = {row["contact_id"]: row for row in rows}
    assert by_id["P0001"]["clv_12m"] == "0.00" and by_id["P0001"]["rfm_group"] == "prospect"
    assert by_id["P0001"]["p_alive"] == ""  # no model value: an empty field
    scored = _scored(shop["folder"], "june.parquet").set_index("contact_id")
    assert float(by_id["00003"]["clv_12m"]) == pytest.approx(
        scored.loc["00003", "clv_12m"], abs=0.005
    )
    default = tmp_path / "default.csv"
    write_table(scored.reset_index().head(5), default)
    assert not default.read_bytes().startswith(codecs.BOM_UTF8)  # default stays as it was
    assert "frequency" in default.read_text().splitlines()[0]


def _as_excel_reads(raw: bytes) -> str:
    """Excel takes a CSV as UTF-8 only when it starts with a byte-order mark; otherwise it
    uses the system code page (Windows-1252 in Western Europe and the Americas)."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8")
    return raw.decode("cp1252", errors="replace")


def test_marketing_csv_opens_in_excel_with_its_accents(marketing_csv, shop):
    text = _as_excel_reads(marketing_csv.read_bytes())
    names = {row["first_name"] for row in csv.DictReader(io.StringIO(text))}
    assert "José" in names
    plain = shop["folder"] / "plain.csv"  # without the mark, Excel garbles the name
    plain.write_bytes(marketing_csv.read_bytes()[len(codecs.BOM_UTF8) :])
    assert "JosÃ©" in _as_excel_reads(plain.read_bytes())


def _pandas_members(june: pd.DataFrame, may: pd.DataFrame) -> dict[str, set[str]]:
    merged = june.merge(
        may[["contact_id", "r_score"]], on="contact_id", how="left", suffixes=("", "_may")
    )
    return {
        "at_risk_vip": set(june.loc[june["high_value"] & (june["churn_risk_band"] == "high"),
                                    "contact_id"]),
        "cheap_subscribers": set(
            june.loc[
                (june["newsletter"] == "subscribed")
                & (june["clv_12m"] < 100)
                & (june["predicted_purchases_12m"] < 1),
                "contact_id",
            ]
        ),
        "vip_fading": set(
            merged.loc[
                (merged["m_score"] >= 4) & (merged["r_score_may"] == 5) & (merged["r_score"] == 4),
                "contact_id",
            ]
        ),
        "opted_in_champions": set(
            june.loc[
                june["opted_in"].fillna(False).astype(bool)
                & june["rfm_segment"].isin(["champions", "loyal customers"]),
                "contact_id",
            ]
        ),
    }  # fmt: skip


def test_audiences_members_entered_and_left_match_pandas(shop):
    folder = shop["folder"]
    may, june = _scored(folder, "may.parquet"), _scored(folder, "june.parquet")
    expected_june = _pandas_members(june, may)
    expected_may = _pandas_members(may, may.assign(r_score=pd.NA))  # no run before May
    members = pd.read_parquet(folder / "june.audiences.parquet")
    assert list(members.columns[:2]) == ["audience", "contact_id"]
    assert "first_name" in members.columns  # attributes, to match members in a tool
    first_run = pd.read_parquet(folder / "may.audiences.parquet")
    assert {"first_name", "opted_in"} <= set(first_run.columns)  # also without --previous
    for name, ids in expected_june.items():
        assert set(members.loc[members["audience"] == name, "contact_id"]) == ids, name
    assert len(expected_june["vip_fading"]) > 0 and len(expected_june["at_risk_vip"]) > 0
    events = pd.read_parquet(folder / "june.audience_changes.parquet")
    for name in expected_june:
        got = events[events["audience"] == name]
        entered = set(got.loc[got["event"] == "entered", "contact_id"])
        left = set(got.loc[got["event"] == "left", "contact_id"])
        assert entered == expected_june[name] - expected_may[name], name
        assert left == expected_may[name] - expected_june[name], name
    assert (events["event"] == "left").any() and (events["event"] == "entered").any()
    assert shop["may"].notes and "vip_fading" in shop["may"].notes[0]  # said, not silent


def test_entered_and_left_equals_an_outer_merge_of_the_memberships():
    """Entered and left, found by hashing (audience, id) pairs in Arrow, against pandas'
    outer merge of the two membership tables, row for row and in order: ids in several
    audiences, ids that are prefixes of others, an audience that empties, one that is new."""
    from clvcast.audiences import entered_and_left

    rng = np.random.default_rng(4)

    def members(audiences):
        parts = []
        for name in audiences:
            ids = rng.choice(3_000, size=int(rng.integers(1, 1_500)), replace=False)
            parts.append(pd.DataFrame({"audience": name, "contact_id": [f"c{i}" for i in ids]}))
        return pd.concat(parts, ignore_index=True).astype(str)

    previous, current = members(["a", "b", "gone"]), members(["a", "b", "new"])
    keys = ["audience", "contact_id"]
    merged = previous.merge(current, on=keys, how="outer", indicator=True)
    merged = merged[merged["_merge"] != "both"]
    merged["event"] = np.where(merged["_merge"] == "right_only", "entered", "left")
    expected = merged[[*keys, "event"]].sort_values(["audience", "event", "contact_id"])
    got = entered_and_left(previous, current)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
    assert set(got["audience"]) == {"a", "b", "gone", "new"}
    assert entered_and_left(current, current).empty


def test_changed_only_equals_the_pandas_diff_and_is_small(shop):
    folder = shop["folder"]
    may, june = _scored(folder, "may.parquet"), _scored(folder, "june.parquet")
    changes = pd.read_parquet(folder / "june.changes.parquet")
    merged = june.merge(may, on="contact_id", how="outer", suffixes=("", "_before"), indicator=True)
    both = merged["_merge"] == "both"
    differs = pd.Series(False, index=merged.index)
    for column in COMPARED_COLUMNS:
        now, before = merged[column].astype("string"), merged[f"{column}_before"].astype("string")
        differs |= (now != before).fillna(now.isna() != before.isna())
    old, new = merged["clv_12m_before"], merged["clv_12m"]
    differs |= (new - old).abs() > np.maximum(DEFAULT_CLV_TOLERANCE * old.abs(), CLV_FLOOR)
    differs |= old.isna() != new.isna()
    expected = {
        **dict.fromkeys(merged.loc[both & differs, "contact_id"], "changed"),
        **dict.fromkeys(merged.loc[merged["_merge"] == "left_only", "contact_id"], "new"),
        **dict.fromkeys(merged.loc[merged["_merge"] == "right_only", "contact_id"], "removed"),
    }
    got = dict(zip(changes["contact_id"], changes["change"], strict=True))
    assert got == expected
    assert shop["june"].side_rows["changes"] == len(changes)
    # much smaller than the full table (the CLI prints the count)
    assert 0 < len(changes) < 0.5 * len(june), f"{len(changes):,} of {len(june):,} rows"
    assert list(changes.columns) == [*june.columns, "change"]


def test_migrations_carry_attributes_and_current_values(shop):
    migrations = pd.read_parquet(shop["folder"] / "june.migrations.parquet")
    for column in ("first_name", "newsletter", "opted_in", "clv_12m", "churn_risk", "high_value"):
        assert column in migrations.columns, column
    june = _scored(shop["folder"], "june.parquet").set_index("contact_id")
    changed = migrations[migrations["change"] == "changed"].set_index("contact_id")
    np.testing.assert_allclose(changed["clv_12m"], june.loc[changed.index, "clv_12m"])
    trigger = migrations[
        (migrations["m_score_to"] >= 4)
        & (migrations["r_score_from"] == 5)
        & (migrations["r_score_to"] == 4)
    ]
    assert len(trigger) > 0 and trigger["first_name"].notna().all()


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('echo hi')",
        "contact_id.__class__",
        "clv_12m.__class__.__bases__",
        "open('x')",
        "(lambda: 1)()",
        "clv_12m * 2 > 10",
        "rfm_segment[0] == 'c'",
        "[c for c in ()]",
        "clv_12m > 'ten'",
    ],
)
def test_malicious_or_wrong_conditions_are_refused(condition):
    kinds = {"clv_12m": "number", "rfm_segment": "text", "contact_id": "text"}
    with pytest.raises(InputError, match="audience 'x'"):
        parse_condition("x", condition, kinds)


def test_three_valued_logic_like_sql():
    frame = pd.DataFrame(
        {"contact_id": ["a", "b", "c"], "band": ["high", None, "low"], "clv": [5.0, None, 500.0]}
    )
    audiences = load_audiences(
        {"not_high": "not band == 'high'", "small": "clv < 100", "either": "clv < 100 or band == 'low'"},
        kinds_of(frame),
    )  # fmt: skip
    found = {a.name: set(frame.loc[a.members(frame), "contact_id"]) for a in audiences}
    assert found == {"not_high": {"c"}, "small": {"a"}, "either": {"a", "c"}}


def test_label_values_that_never_occur_are_refused():
    """A segment, group, cell or band written as no scored table writes it would pick no
    one (or everyone, with !=), week after week: refused, with the labels and the
    nearest one. Labels that exist, orderings and other text columns are left alone."""
    from clvcast.rfm import label_values

    frame = pd.DataFrame({"rfm_segment": ["champions"], "rfm_cell": ["R5F5M5"], "city": ["x"]})
    labels = label_values()
    for condition, message in (
        (
            'rfm_segment == "Champions"',
            "rfm_segment is never 'Champions'; did you mean 'champions'?",
        ),
        ('rfm_segment != "vip"', "rfm_segment is never 'vip'; its values: about to sleep"),
        ("rfm_segment in ['champions', 'loyal']", "rfm_segment is never 'loyal'"),
        ("'R5F5M6' == rfm_cell", r"rfm_cell is never 'R5F5M6'; its values: .* \(125 in all\)"),
    ):
        with pytest.raises(InputError, match=message):
            load_audiences({"a": condition}, kinds_of(frame), labels)
    for condition in (
        "rfm_segment in ['champions', 'loyal customers', 'prospect']",
        "rfm_cell >= 'R4' and city == 'Madrid'",
    ):
        load_audiences({"a": condition}, kinds_of(frame), labels)
    load_audiences({"a": 'rfm_segment == "Champions"'}, kinds_of(frame))  # no labels given


def test_bad_audience_is_one_line_before_anything_is_written(shop, tmp_path):
    folder = shop["folder"]
    model = tmp_path / "m.model"
    shop["pipeline"].save(model)
    bad = tmp_path / "bad.yaml"
    for condition, problem in (
        ('vip: high_value and newsletr == "subscribed"', "unknown column 'newsletr'"),
        ('vip: churn_risk_band == "High"', "churn_risk_band is never 'High'; did you mean 'high'?"),
    ):
        bad.write_text(condition + "\n")
        result = run_inprocess(
            "predict", "--model", model, "--transactions", folder / "cdnow.parquet",
            "--date-format", "%Y%m%d", "--as-of", JUNE, "--contacts", folder / "contacts.csv",
            "--output", tmp_path / "out.csv", "--audiences", bad, "--format", "marketing",
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0], result.stderr
        assert sorted(os.listdir(tmp_path)) == ["bad.yaml", "m.model"]  # nothing written
    without = run_inprocess(
        "predict", "--model", model, "--transactions", folder / "cdnow.parquet",
        "--date-format", "%Y%m%d", "--as-of", JUNE, "--output", tmp_path / "out.csv",
        "--changed-only", cwd=tmp_path,
    )  # fmt: skip
    assert without.returncode == 2 and "--changed-only needs --previous" in without.stderr


@pytest.mark.parametrize("with_contacts", [True, False], ids=["prospects", "no-prospects"])
@pytest.mark.parametrize("csv_format", ["default", "marketing"])
def test_the_changes_csv_rows_are_the_scored_tables_rows(shop, tmp_path, csv_format, with_contacts):
    """The changes table joins the changed and new rows to the removed contacts' empty rows.
    Each changed row must be written as the scored table writes it, cell for cell: the join
    once made every column Python objects, and the CSV then wrote dates as "1998-06-30
    00:00:00" and, in a table without prospects (whole numbers not nullable), counts and
    scores as "22.0" and "5.0". A removed contact has its id and empty cells."""
    may = pd.read_parquet(shop["folder"] / "may.parquet")
    previous = tmp_path / "may.parquet"
    pd.concat([may, may.head(1).assign(contact_id="GONE-1")]).to_parquet(previous)
    target = tmp_path / "june.csv"
    _predict_june(
        shop,
        target,
        csv_format,
        previous=previous,
        changed_only=True,
        with_contacts=with_contacts,
    )

    def rows(path):
        text = path.read_bytes().decode("utf-8-sig")
        return list(csv.DictReader(io.StringIO(text)))

    scored = {row["contact_id"]: row for row in rows(target)}
    changes = rows(tmp_path / "june.changes.csv")
    assert {"changed", "removed"} <= {row["change"] for row in changes}
    assert "GONE-1" in {row["contact_id"] for row in changes if row["change"] == "removed"}
    for row in changes:
        cells = {column: value for column, value in row.items() if column != "change"}
        if row["change"] == "removed":
            assert not any(value for column, value in cells.items() if column != "contact_id")
        else:
            assert cells == scored[row["contact_id"]]
    if not with_contacts:  # the counts are NumPy integers in this table
        changed = [row for row in changes if row["change"] == "changed"]
        assert all(re.fullmatch(r"\d+", row["orders"]) for row in changed)
