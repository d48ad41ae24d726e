"""Real shop exports read right or refused with one line: dates, CSV dialects, ids, order
lines, refunds, time zones.

Every file here is generated in code, shaped like the exports that were misread before:
European day/month dates, semicolon CSVs with decimal commas and a BOM, Latin-1 text,
mixed-case emails, float ids, Online Retail order lines with cancellations days later,
Shopify refunds days after the order and a Madrid shop's late-evening orders.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from clvcast.data import (
    REASON_FIELD_COUNT,
    REASON_MISSING_CONTACT,
    REASON_NET_NONPOSITIVE,
    REASON_NONPOSITIVE,
    REASON_ORDER_CANCELLED,
    REASON_OTHER_CURRENCY,
    REASON_REFUNDED_PURCHASE,
    REASON_STATUS,
    REASON_UNMATCHED_REFUND,
    read_contacts,
    read_transactions,
    statuses,
)
from clvcast.data.dates import infer_date_format
from clvcast.data.inputs import parse_as_of
from clvcast.data.simulate import online_retail_lines
from clvcast.errors import DataQualityWarning, InputError
from conftest import (
    FORMULA_ORDER_IDS,
    FORMULA_ORDER_OPTIONS,
    SHOPIFY,
    SHOPIFY_ORDERS,
    run_clvcast,
    run_inprocess,
)


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


@pytest.mark.parametrize("layout", ["%Y.%m.%d.", "%Y.%m.%d. %H:%M"])
def test_hungarian_dates_with_their_closing_dot_are_inferred(layout):
    """Hungarian software writes 15 March 2024 as "2024.03.15." (the dot closes the date);
    it was refused as having no known layout."""
    orders = _orders()
    log = read_transactions(orders.assign(date=orders["date"].dt.strftime(layout)))
    _assert_log(log, orders)
    assert log.report.date_format == f"{layout} (inferred from every value)"


@pytest.mark.parametrize(
    ("layout", "named"),
    [
        ("%Y.%m.%d", "year.month.day"),
        ("%Y/%m/%d %H:%M", "year/month/day"),
        ("%Y-%m-%d", "ISO 8601"),
    ],
)
def test_year_first_dates_are_named_by_the_mark_they_use(layout, named):
    """pandas reads "2024.03.15" and "2024/03/15" as ISO 8601, and the report said "ISO
    8601": a user comparing the report with the file found another layout."""
    orders = _orders()
    log = read_transactions(orders.assign(date=orders["date"].dt.strftime(layout)))
    _assert_log(log, orders)
    assert log.report.date_format == f"{named} (inferred from every value)"


def test_one_format_per_column_never_per_row():
    values = pd.Series(["2022-09-03", "2022-09-25", "25/09/2022"], dtype="string")
    assert infer_date_format(values) == "ISO8601"  # the odd row is unparseable, not re-read
    log = read_transactions(
        pd.DataFrame({"contact_id": ["a", "a", "b"], "date": values, "amount": 1.0}),
        invalid="drop",
    )
    assert log.report.dropped == {"unparseable date": 1}


@pytest.mark.parametrize(
    "layout",
    ["%d-%b-%Y", "%b %d, %Y %I:%M:%S %p", "%d %B %Y %H:%M", "%m/%d/%Y %I:%M %p"],
    ids=["05-Jan-2023", "Magento", "5 January 2023", "US 12-hour clock"],
)
def test_month_names_and_12_hour_clocks_are_inferred(layout):
    """Layouts with month names and AM/PM were refused as unparseable dates, with no word
    of --date-format; they are now inferred like the numeric ones."""
    orders = _orders()
    stamps = orders["date"] + pd.Timedelta(hours=13, minutes=5)  # 1:05 PM: the clock matters
    log = read_transactions(orders.assign(date=stamps.dt.strftime(layout)))
    _assert_log(log, orders)
    assert log.report.date_format == f"{layout} (inferred from every value)"


@pytest.fixture
def today_2024(monkeypatch):
    """Date inference as on 31 December 2024: which two-digit-year readings lie in the
    future must not depend on the day the suite runs."""
    from clvcast.data import dates

    monkeypatch.setattr(dates, "latest_plausible_day", lambda: datetime.date(2025, 1, 1))


@pytest.mark.parametrize(
    "layout",
    ["%y/%m/%d", "%y.%m.%d", "%d/%m/%y", "%d.%m.%y", "%y-%m-%d", "%d-%m-%y", "%m-%d-%y"],
    ids=["Japan", "Korea", "UK", "Germany", "Sweden", "Netherlands", "US"],
)
def test_two_digit_years_are_read_where_they_are_written(tmp_path, today_2024, layout):
    """A Japanese export writes 5 January 2024 as "24/01/05". No layout read the year first,
    and "%d/%m/%y" reads every such value (as 24 January 2005), so the whole log moved
    by years with only a warning about the few dated in the 2030s. A reading that puts a
    purchase after today is now ruled out, which leaves the year where it is written, first
    or last; German short dates ("15.03.24") were not read at all, nor were two-digit years
    between dashes ("24-03-15", "15-03-24", "03-15-24")."""
    orders = _orders()  # 2022-2023, days up to 28: "23/11/28" read the other way is in 2028
    path = tmp_path / "short.csv"
    orders.assign(date=orders["date"].dt.strftime(layout)).to_csv(path, index=False)
    log = read_transactions(path)
    _assert_log(log, orders)
    assert log.report.date_format == f"{layout} (inferred from every value)"


def test_two_digit_years_that_read_either_way_are_refused_with_the_options(tmp_path, today_2024):
    """A short German export of March and April 2024 ("15.03.24"): read year first it is
    March 2015 and April 2016, in the past too, so nothing tells the two apart."""
    frame = pd.DataFrame(
        {"contact_id": ["a", "a", "b"], "date": ["15.03.24", "16.04.24", "20.04.24"], "amount": 5.0}
    )
    path = tmp_path / "short.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "rfm.csv"
    bad = run_inprocess("rfm", "--transactions", path, "--as-of", "2024-06-30", "--output", out)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert '"15.03.24"' in bad.stderr
    assert "--date-format %d.%m.%y if the year comes last" in bad.stderr
    assert "--date-format %y.%m.%d if it comes first" in bad.stderr
    assert not out.exists()
    for settled in (["--date-format", "%d.%m.%y"], ["--dayfirst"]):  # the day before the month
        ok = run_inprocess(
            "rfm", "--transactions", path, "--as-of", "2024-06-30", "--output", out, *settled
        )
        assert ok.returncode == 0, ok.stderr
        assert pd.read_csv(out)["last_purchase"].tolist() == ["2024-04-16", "2024-04-20"]


def test_a_12_hour_clock_does_not_settle_day_and_month():
    orders = _orders(max_day=12)
    text = (orders["date"] + pd.Timedelta(hours=9)).dt.strftime("%m/%d/%Y %I:%M %p")
    with pytest.raises(InputError, match="pass --date-format %d/%m/%Y %I:%M %p"):
        read_transactions(orders.assign(date=text))


def test_a_column_no_known_layout_reads_names_date_format():
    frame = pd.DataFrame(
        {"contact_id": ["a", "b"], "date": ["5th of Jan 2023", "1st of Feb 2023"], "amount": 1.0}
    )
    with pytest.raises(InputError, match="no date layout that clvcast knows.*--date-format"):
        read_transactions(frame)
    with pytest.raises(InputError) as one_bad:  # one junk value: the layout is known
        read_transactions(frame.assign(date=["2023-01-05", "n/a"]))
    assert "--date-format" not in str(one_bad.value)
    log = read_transactions(frame, date_format="%dst of %b %Y", invalid="drop")
    assert log.report.dropped == {"unparseable date": 1}  # "5th" is not "%dst"


def test_a_header_repeated_by_joined_files_is_named_so(tmp_path):
    """Monthly exports joined with `cat` repeat the header as a row: it was refused as a
    bare unparseable date "date"."""
    orders = _orders(20)
    path = tmp_path / "joined.csv"
    orders[:10].to_csv(path, index=False)
    with path.open("a") as joined:
        orders[10:].to_csv(joined, index=False)
    with pytest.raises(InputError, match=r"row 11: \"date\"\); they repeat the header line"):
        read_transactions(path)
    log = read_transactions(path, invalid="drop")
    _assert_log(log, orders)
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


@pytest.mark.parametrize(
    ("amounts", "hint"),
    [
        (["12,50", "7,99"], "look like decimal commas: pass --decimal ,"),
        (["1,234", "2,000"], "may be decimal commas .* or thousands separators"),
        (["1,234.50", "2,000"], "have ',' between thousands: pass --thousands ,"),
        (["1.234,50", "7,99"], "decimal commas and '.' between thousands: pass --decimal , --th"),
        (["1\u00a0234,50", "7,99"], "decimal commas and spaces between thousands: pass --deci"),
        (["1'234.50", "7.99"], "apostrophes between thousands: pass --thousands apostrophe"),
        (["1\u2019234,50", "7,99"], "apostrophes between thousands: pass --decimal , --thou"),
        (["€10.50", "$12"], r"carry the currencies \$, €: clvcast reads one \(--currency\)"),
        (["12.50 EUR", "7.99"], "carry the currency EUR: pass --currency EUR"),
        (["1 234,56 zł", "12,00 zł"], "currency zł: pass --currency zł, and .*--thousands space"),
        (["R$ 1.234,56", "7,99"], r"currency R\$: pass --currency R\$, and .*--thousands \."),
        (["abc", "n/a"], r"\(row 1: \"abc\", row 2: \"n/a\"\)\. Fix"),  # no hint
    ],
    ids=[
        "decimal commas",
        "comma before three digits",
        "thousands",
        "German",
        "French",
        "Swiss",
        "Swiss typographic, decimal commas",
        "sign",
        "code",
        "zloty",
        "real",
        "junk",
    ],
)
def test_unreadable_amounts_get_the_hint_of_what_they_look_like(tmp_path, amounts, hint):
    """The hint reads the example values themselves: it said 'decimal commas' for any two
    bad amounts, from the comma that joins the examples in the message."""
    path = tmp_path / "shop.csv"
    rows = [f'c{i},2024-03-0{i + 1},"{amount}"' for i, amount in enumerate(amounts)]
    path.write_text("contact_id,date,amount\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=hint) as info:
        read_transactions(path)
    assert "\n" not in str(info.value)
    if hint.startswith(("carry", "have ','")):  # unambiguous: no decimal-comma advice
        assert "decimal" not in str(info.value)


@pytest.mark.parametrize(
    ("decimal", "thousands", "written"),
    [
        (".", ",", "{:,.2f}"),
        (",", ".", "GERMAN"),
        (",", " ", "FRENCH"),
        (".", "'", "SWISS"),
    ],
    ids=["1,234.56", "1.234,56", "1 234,56", "1'234.56"],
)
def test_thousands_separators_read_with_their_option(tmp_path, decimal, thousands, written):
    """Spreadsheets write amounts of a thousand or more with separators; there was no way
    to read them but to export the file again."""
    orders = _orders()
    orders["amount"] = (orders["amount"] * 97).round(2)  # most of them 1,000 or more
    us = orders["amount"].map("{:,.2f}".format)
    text = {
        "{:,.2f}": us,
        "GERMAN": us.str.replace(",", "X").str.replace(".", ",").str.replace("X", "."),
        "FRENCH": us.str.replace(",", "\u202f").str.replace(".", ","),
        # Swiss, both apostrophes (Excel writes the typographic one in some locales)
        "SWISS": us.str.replace(",", "'").where(
            orders.index % 2 == 0, us.str.replace(",", "\u2019")
        ),
    }[written]
    path = tmp_path / "export.csv"
    orders.assign(amount=text).to_csv(path, index=False, sep=";")
    log = read_transactions(path, decimal=decimal, thousands=thousands)
    _assert_log(log, orders)


def test_thousands_separators_are_taken_only_between_groups_of_three():
    frame = pd.DataFrame(
        {
            "contact_id": list("abcdef"),
            "date": "2024-01-05",
            "amount": ["1,234.5", "12,345,678", "1,23", "12,3456", "1234.5", ",123"],
        }
    )
    log = read_transactions(frame, thousands=",", invalid="drop")
    assert log.purchases["amount"].tolist() == [1234.5, 12345678.0, 1234.5]
    assert log.report.dropped == {"unparseable amount": 3}  # 1,23  12,3456  ,123 — not 123
    with pytest.raises(InputError, match="thousands=',' is also the decimal mark"):
        read_transactions(frame, decimal=",", thousands=",")


def _pesos(orders: pd.DataFrame, currency: str = "") -> pd.Series:
    """Whole pesos as a Chilean shop writes them: "12.990", "990", "1.290.000"."""
    whole = orders["amount"].astype("int64")
    return currency + whole.map("{:,}".format).str.replace(",", ".")


def test_amounts_whose_every_dot_may_separate_thousands_are_refused(tmp_path):
    """A Chilean shop writes 12,990 pesos as "12.990" and 990 pesos as "990": read with a
    decimal point, the first was 12.99 and the second 990, without a word, so the biggest
    spenders scored lowest. With no --decimal or --thousands, a column whose every dot is
    followed by groups of three digits is refused; each option reads it its own way."""
    orders = _orders()
    orders["amount"] = (orders["amount"] * 300).round(0)  # whole pesos, most over 1,000
    path = tmp_path / "chile.csv"
    orders.assign(amount=_pesos(orders)).to_csv(path, index=False)
    out = tmp_path / "rfm.csv"
    bad = run_inprocess("rfm", "--transactions", path, "--as-of", "2024-06-30", "--output", out)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "every amount with a dot in column 'amount' has groups of three digits" in bad.stderr
    assert "Pass --thousands . for the first, --decimal . for the second." in bad.stderr
    assert not out.exists()
    _assert_log(read_transactions(path, thousands="."), orders)  # --thousands .: 12.990 = 12990
    as_decimals = read_transactions(path, decimal=".")  # --decimal .: 12.990 = 12.99
    assert as_decimals.purchases["amount"].max() < orders["amount"].max() / 10
    # The same behind a currency sign, and in a DataFrame of text.
    signed = orders.assign(amount=_pesos(orders, "$"))
    with pytest.raises(InputError, match="every amount with a dot"):
        read_transactions(signed, currency="$")
    _assert_log(read_transactions(signed, currency="$", thousands="."), orders)


def test_amounts_with_other_decimals_are_read_with_a_decimal_point_as_before(tmp_path):
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "b", "c"],
            "date": ["2024-01-05", "2024-02-05", "2024-03-05", "2024-03-06"],
            "amount": ["12.990", "1.500", "7.25", "990"],  # 7.25: the dots are decimal points
        }
    )
    assert read_transactions(frame).purchases["amount"].tolist() == [12.99, 1.5, 7.25, 990.0]
    numbers = frame.assign(amount=[12.99, 1.5, 7.25, 990.0])  # typed amounts: no question
    assert read_transactions(numbers).purchases["amount"].tolist() == [12.99, 1.5, 7.25, 990.0]


def test_negative_amounts_in_accounting_notation_are_read_as_negative(tmp_path):
    """Accounting exports write a refund as "(3.00)" and SAP as "3.00-": both were refused as
    unparseable amounts. They now read as negative amounts, with the refund policies of any
    other (dropped and counted by default, netted with --nonpositive net), whatever the
    decimal mark, thousands separator or currency."""
    frame = pd.DataFrame(
        {
            "contact_id": ["a", "a", "a", "b", "b", "c"],
            "date": ["2024-01-05", "2024-01-05", "2024-02-01", "2024-01-07", "2024-01-07", "2024-03-01"],
            "amount": ["12.50", "(2.50)", "20.00", "30.00", "( 5.25 )", "7.00-"],
        }
    )  # fmt: skip
    dropped = read_transactions(frame)
    assert dropped.purchases["amount"].tolist() == [12.5, 20.0, 30.0]
    assert dropped.report.dropped == {REASON_NONPOSITIVE: 3}
    netted = read_transactions(frame, nonpositive="net")
    assert netted.purchases["amount"].tolist() == [10.0, 20.0, 24.75]
    german = frame.assign(
        amount=["12,50 €", "(2,50 €)", "€ 1.020,00", "30,00", "(5,25)", "7,00- €"]
    )
    path = tmp_path / "export.csv"
    german.to_csv(path, index=False, sep=";")
    log = read_transactions(path, decimal=",", thousands=".", currency="€", nonpositive="net")
    assert log.purchases["amount"].tolist() == [10.0, 1020.0, 24.75]
    for unreadable in ("(2.50", "-", "(-)"):
        with pytest.raises(InputError, match="unparseable amount"):
            read_transactions(frame.assign(amount=["1.00"] * 5 + [unreadable]))


def test_the_unicode_minus_sign_reads_as_a_minus(tmp_path):
    """Spreadsheets in Swedish, Norwegian and other locales write negative numbers with the
    minus sign U+2212, not the hyphen: "\u22121 234,50 kr" was refused as unparseable."""
    path = tmp_path / "ordrar.csv"
    path.write_text(
        "contact_id;date;amount\n"
        "a;2024-01-05;1 234,50 kr\n"
        "a;2024-01-05;\u2212234,50 kr\n"
        "b;2024-01-07;\u22125,00\n",
        encoding="utf-8",
    )
    options = {"decimal": ",", "thousands": " ", "currency": "kr"}
    log = read_transactions(path, nonpositive="net", **options)
    assert log.purchases["amount"].tolist() == [1000.0]
    assert log.report.dropped == {REASON_NET_NONPOSITIVE: 1}


def test_amounts_in_one_currency_read_with_currency_and_others_stay_refused(tmp_path):
    """Spreadsheets format amounts as money ("1.234,56 €"); there was no way to read them
    but to export the file again. --currency takes out the one currency the shop sells in;
    an amount in another is refused, never converted or summed with the rest."""
    orders = _orders()
    orders["amount"] = (orders["amount"] * 31).round(2)
    german = orders["amount"].map("{:,.2f}".format).str.replace(",", "X")
    german = german.str.replace(".", ",").str.replace("X", ".")
    written = [f"{a}\u00a0€" if i % 3 else f"€ {a}" for i, a in enumerate(german)]
    path = tmp_path / "export.csv"
    orders.assign(amount=written).to_csv(path, index=False, sep=";")
    both = "carry the currency €: pass --currency €, and .* pass --decimal , --thousands ."
    with pytest.raises(InputError, match=both):  # every option it needs, in one message
        read_transactions(path)
    with pytest.raises(InputError, match="pass --decimal , --thousands ."):
        read_transactions(path, currency="€")
    _assert_log(read_transactions(path, currency="€", decimal=",", thousands="."), orders)
    mixed = orders.assign(
        amount=[f"{a:.2f} eur" if i % 2 else f"${a:.2f}" for i, a in enumerate(orders["amount"])]
    )
    with pytest.raises(InputError, match=r"carry the currencies \$ besides --currency EUR"):
        read_transactions(mixed, currency="EUR")
    log = read_transactions(mixed, currency="EUR", invalid="drop")  # "eur" read as EUR
    assert log.report.dropped["unparseable amount"] == len(orders) // 2
    with pytest.raises(InputError, match="--currency '12 €': use the sign or code alone"):
        read_transactions(mixed, currency="12 €")


def test_excel_unicode_text_utf16_reads_without_an_encoding(tmp_path):
    """Excel's "Unicode text" export is UTF-16 with a byte-order mark, tab-separated: the
    mark says what the file is, so it reads as the UTF-8 file does (the message suggested
    latin-1, which would read every second byte as a NUL)."""
    orders = _orders()
    orders["contact_id"] = orders["contact_id"].str.replace("c", "jörg", regex=False)
    lines = ["contact_id\tdate\tamount"] + [
        f"{row.contact_id}\t{row.date:%Y-%m-%d}\t{row.amount}" for row in orders.itertuples()
    ]
    path = tmp_path / "export.txt"
    path.write_bytes("\n".join(lines).encode("utf-16"))  # with its byte-order mark
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    _assert_log(read_transactions(path), orders)
    contacts = tmp_path / "contacts.txt"
    contacts.write_bytes("contact_id\temail\njörg001\tj@example.com\n".encode("utf-16"))
    assert read_contacts(contacts).to_dict("list") == {
        "contact_id": ["jörg001"],
        "email": ["j@example.com"],
    }


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


def _written_with(orders: pd.DataFrame, path, lines: dict[int, str]) -> None:
    """``orders`` as a CSV with the data lines at the given 0-based positions replaced."""
    text = orders.to_csv(index=False).splitlines()
    for position, line in lines.items():
        text[position + 1] = line
    path.write_text("\n".join(text) + "\n")


@pytest.mark.parametrize("position", [5, 30_000])  # within DuckDB's sniffed lines, and beyond
def test_lines_with_another_number_of_fields_are_named(tmp_path, position):
    """An unquoted decimal comma ("20,50" in a comma-separated file) splits an amount in
    two. DuckDB's sniffer took such a line for the header, or named only "Error when
    sniffing file", or "CSV Error on Line: N"; now one line names the lines and why."""
    orders = _orders(40_000)
    path = tmp_path / "export.csv"
    _written_with(
        orders, path, {position: "c001,2023-03-01,20,50", position + 7: "c002,2023-03-02"}
    )
    with pytest.raises(InputError) as refused:
        read_transactions(path)
    message = str(refused.value)
    assert message.startswith("transactions file export.csv: 2 lines with another number")
    assert f'line {position + 2:,}: 4 fields, "c001,2023-03-01,20,50"' in message
    assert f'line {position + 9:,}: 2 fields, "c002,2023-03-02"' in message
    assert 'decimal comma such as "20,50" splits in two' in message
    assert "\n" not in message and "sniff" not in message


@pytest.mark.parametrize("position", [5, 30_000])  # within DuckDB's sniffed lines, and beyond
def test_drop_invalid_drops_and_counts_lines_with_another_number_of_fields(tmp_path, position):
    """Under --drop-invalid a line whose fields cannot be told apart is dropped, counted and
    shown by its line number; it was refused even then, so a file a user could not export
    again could not be read at all. The other lines are read as without it."""
    orders = _orders(40_000)
    path = tmp_path / "export.csv"
    broken = {position: "c001,2023-03-01,20,50", position + 7: "c002,2023-03-02"}
    _written_with(orders, path, broken)
    with pytest.warns(DataQualityWarning, match='decimal comma such as "20,50"'):
        log = read_transactions(path, invalid="drop")
    assert log.report.dropped == {REASON_FIELD_COUNT: 2}
    assert log.report.rows_read == len(orders)
    note = next(n for n in log.report.notes if "number of fields" in n)
    assert note.startswith("2 lines with another number of fields than the header dropped")
    assert f'line {position + 2:,}: "c001,2023-03-01,20,50"' in note
    assert f'line {position + 9:,}: "c002,2023-03-02"' in note
    kept = orders.drop(index=list(broken)).reset_index(drop=True)
    _assert_log(log, kept)


def test_rows_after_a_dropped_line_are_named_by_their_place_in_the_file(tmp_path):
    """A refused row's number counts the lines that --drop-invalid skipped before it: the
    refund at data row 12 (line 13) is named as row 12, not row 10."""
    orders = _orders(40)
    orders.loc[11, "amount"] = -5.0
    path = tmp_path / "export.csv"
    _written_with(orders, path, {2: "c001,2023-03-01,20,50", 6: "c002,2023-03-02,1,2,3"})
    with pytest.raises(InputError) as refused:
        read_transactions(path, invalid="drop", nonpositive="error")
    assert 'row 12: "-5.0"' in str(refused.value)


def test_a_file_whose_every_line_has_another_number_of_fields_is_refused(tmp_path):
    """Nothing left to read is a refusal that names the lines, not an empty model."""
    path = tmp_path / "split.csv"
    path.write_text("contact_id,date,amount\nA,2024-01-05,10,50\nB,2024-03-05,5,00\n")
    with pytest.raises(InputError) as refused:
        read_transactions(path, invalid="drop")
    assert str(refused.value) == (
        "transactions (split.csv): all 2 lines have another number of fields than the header "
        '(line 2: "A,2024-01-05,10,50", line 3: "B,2024-03-05,5,00"); pass --sep if the '
        "separator is not the header's, or export the file with values that hold the "
        "separator in quotes."
    )


def test_a_quote_that_is_never_closed_is_named_by_its_line(tmp_path):
    """A stray quote at the start of a value ("3) made every later line part of that value:
    DuckDB refused the file with "Error when sniffing file" and a hint at --sep, with or
    without --drop-invalid. Now the line of the quote is named."""
    path = tmp_path / "quote.csv"
    path.write_text(
        'contact_id,date,amount\nc1,2024-01-01,10.5\nc5,2024-01-07,"3\nc6,2024-01-08,4\n'
    )
    expected = (
        'transactions file quote.csv: a quote (") opens a value in line 3 ("c5,2024-01-07,"3") '
        "and is never closed, so every line after it reads as part of that value. A quote "
        'inside a value must be doubled (""): export the file so, or remove the stray quote.'
    )
    for invalid in ("error", "drop"):
        with pytest.raises(InputError) as refused:
            read_transactions(path, invalid=invalid)
        assert str(refused.value) == expected
    # A quote inside a value that is not quoted is read as written, as before
    path.write_text('contact_id,date,product,amount\nc1,2024-01-01,12" pizza,10.5\n')
    assert read_transactions(path).purchases["amount"].tolist() == [10.5]


def test_a_split_line_over_two_lines_is_named_by_its_first_line_on_one_line(tmp_path):
    """A quoted value may hold a line break; a record over two lines with a field too many
    is named by the line it starts on, its break written as \\n (the refusal was two lines)."""
    path = tmp_path / "multi.csv"
    path.write_text(
        'contact_id,date,amount\nc1,2024-01-01,10.5\nc3,"Paris\nFrance",4,5\nc4,2024-01-03,3\n'
    )
    with pytest.raises(InputError) as refused:
        read_transactions(path)
    message = str(refused.value)
    assert "\n" not in message
    assert 'line 3: 4 fields, "c3,Paris\\nFrance,4,5"' in message
    with pytest.warns(DataQualityWarning):
        log = read_transactions(path, invalid="drop")
    assert 'line 3: "c3,"Paris\\nFrance",4,5"' in log.report.notes[0]
    assert log.report.dropped == {REASON_FIELD_COUNT: 1}


def test_a_last_line_with_one_field_more_is_not_taken_for_the_header(tmp_path):
    """DuckDB's sniffer read the file from its last line, a line of four fields, as the
    header of an empty table: the refusal named the columns 'B', '2024-03-05', '5', '00'."""
    path = tmp_path / "short.csv"
    path.write_text("contact_id,date,amount\nA,2024-01-05,10.50\nB,2024-03-05,5,00\n")
    out = tmp_path / "rfm.csv"
    common = ["rfm", "--transactions", path, "--as-of", "2024-06-30", "--output", out]
    refused = run_inprocess(*common)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip().splitlines() == [
        "clvcast: error: transactions file short.csv: 1 line with another number of fields "
        'than the header\'s 3 (line 3: 4 fields, "B,2024-03-05,5,00"): an amount with a '
        'decimal comma such as "5,00" splits in two where it is not quoted. Export the file '
        "with such values in quotes, pass --sep if ',' is not its separator, or pass "
        "--drop-invalid to drop and count such lines."
    ]
    dropped = run_inprocess(*common, "--drop-invalid")
    assert dropped.returncode == 0, dropped.stderr
    assert "1 row dropped: line with another number of fields than the header" in dropped.stdout
    assert 'line 3: "B,2024-03-05,5,00"' in dropped.stdout
    assert "likely purchases" in dropped.stderr
    assert pd.read_csv(out)["contact_id"].tolist() == ["A"]
    path.write_text('contact_id,date,amount\nA,2024-01-05,"10,50"\nB,2024-03-05,"5,00"\n')
    quoted = run_inprocess(*common, "--decimal", ",", "-q")
    assert quoted.returncode == 0, quoted.stderr
    assert pd.read_csv(out)["total_spend"].tolist() == [10.5, 5.0]


# --- ids --------------------------------------------------------------------------------


def test_ids_written_as_spreadsheet_text_formulas_are_the_text_inside(tmp_path):
    """Exports meant for Excel write ids with leading zeros as ="00123" (so that Excel
    keeps the zeros): the scored table held the id '="00123"', which no CRM contact has."""
    path = tmp_path / "export.csv"
    path.write_text(
        'contact_id,date,amount\n"=""00123""",2024-01-05,10.50\n'
        '"=""00123""",2024-02-05,20.00\n"=""00456""",2024-03-05,5.00\n'
    )
    log = read_transactions(path)
    assert log.purchases["contact_id"].astype(str).tolist() == ["00123", "00123", "00456"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text('contact_id,email\n"=""00123""",a@x.com\n00456,b@x.com\n')
    assert read_contacts(contacts)["contact_id"].tolist() == ["00123", "00456"]


def test_order_ids_written_as_text_formulas_still_match_their_cancellations(tmp_path):
    """Written ="C536379", a cancellation's order id began with '=', not 'C': the cancelled
    order stayed a purchase (25.00 for 12346) and the cancellation counted as a refund."""
    path = tmp_path / "export.csv"
    path.write_text(FORMULA_ORDER_IDS)
    log = read_transactions(path, **FORMULA_ORDER_OPTIONS)
    assert log.report.dropped == {REASON_ORDER_CANCELLED: 2}
    assert log.purchases["contact_id"].astype(str).tolist() == ["12347", "12347"]
    assert log.purchases["amount"].tolist() == [12.0, 12.0]


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


# --- order lines and refunds ------------------------------------------------------------

ONLINE_RETAIL = {
    "contact_col": "CustomerID",
    "date_col": "InvoiceDate",
    "quantity_col": "Quantity",
    "price_col": "UnitPrice",
    "order_col": "InvoiceNo",
}


def _accounted(report) -> bool:
    parts = report.purchase_days + report.rows_merged + report.rows_netted + report.rows_dropped
    return report.rows_read == parts


def test_online_retail_lines_give_the_hand_computed_net(tmp_path):
    export = online_retail_lines(1_500, seed=3)
    path = tmp_path / "online_retail.csv"
    export.lines.to_csv(path, index=False)
    log = read_transactions(path, **ONLINE_RETAIL)
    got = log.purchases.reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got[["contact_id", "date"]], export.expected[["contact_id", "date"]], check_dtype=False
    )
    np.testing.assert_allclose(got["amount"], export.expected["amount"], rtol=1e-12)
    report = log.report
    assert report.dropped[REASON_MISSING_CONTACT] == export.guest_lines
    assert report.dropped[REASON_NONPOSITIVE] == export.unmatched_cancellations
    assert report.dropped[REASON_ORDER_CANCELLED] > 0 and report.rows_netted > 0
    assert report.date_format.startswith("%m/%d/%Y %H:%M")
    assert _accounted(report)
    # Without the order id, cancellations days later cannot be netted: spend is overstated.
    unlinked = read_transactions(path, **{**ONLINE_RETAIL, "order_col": None})
    assert unlinked.purchases["amount"].sum() > export.expected["amount"].sum() + 100


def test_lines_of_one_order_are_one_order_on_its_first_day():
    lines = pd.DataFrame(
        {
            "order": ["#1001", "#1001", "#1002"],
            "email": ["ana@shop.com"] * 3,
            "date": ["2024-01-09 23:58", "2024-01-10 00:01", "2024-01-10 12:00"],
            "qty": [1, 2, 1],
            "price": ["10.00", "5.00", "7.50"],
        }
    )
    options = {"contact_col": "email", "quantity_col": "qty", "price_col": "price"}
    log = read_transactions(lines, order_col="order", **options)
    assert log.purchases["amount"].tolist() == [20.0, 7.5]
    assert log.purchases["date"].dt.day.tolist() == [9, 10]
    assert log.report.rows_merged == 1
    with pytest.raises(InputError, match="quantity_col and price_col go together"):
        read_transactions(lines, contact_col="email", quantity_col="qty")
    with pytest.raises(InputError, match="--quantity-col qty --price-col price"):
        read_transactions(lines, contact_col="email")


def _shopify_orders(n_customers: int = 80, seed: int = 5) -> pd.DataFrame:
    """Orders and refunds days later, each refund at most what the customer spent before."""
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(n_customers):
        spent = 0.0
        day = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        for order in range(int(rng.integers(1, 6))):
            total = float(np.round(rng.gamma(2.0, 30.0) + 1, 2))
            rows.append((f"#{customer}-{order}", f"c{customer}@shop.com", day, total))
            spent += total
            if rng.random() < 0.4:
                refund = float(np.round(min(spent, total * rng.uniform(0.2, 1.0)), 2))
                later = day + pd.Timedelta(days=int(rng.integers(1, 20)))
                rows.append((f"#{customer}-{order}r", f"c{customer}@shop.com", later, -refund))
                spent -= refund
            day += pd.Timedelta(days=int(rng.integers(5, 90)))
    return pd.DataFrame(rows, columns=["Name", "Email", "Created at", "Total"])


def test_shopify_refunds_days_later_net_against_earlier_purchases():
    orders = _shopify_orders()
    options = {"contact_col": "Email", "date_col": "Created at", "amount_col": "Total"}
    log = read_transactions(orders, nonpositive="net-contact", **options)
    # Every refund is at most what came before it, so spend is exactly the net.
    net = orders.groupby("Email")["Total"].sum()
    spend = log.purchases.groupby("contact_id")["amount"].sum()
    np.testing.assert_allclose(spend.reindex(net.index, fill_value=0), net, atol=1e-9)
    assert log.report.rows_netted > 0 and _accounted(log.report)
    # Netting within the same day only leaves the refunds out: spend is overstated.
    same_day = read_transactions(orders, nonpositive="net", **options)
    assert same_day.purchases["amount"].sum() > net.sum() + 100


def test_refunds_take_the_latest_purchase_first_and_spill_over():
    rows = [
        ("a", "2024-01-01", 100.0),
        ("a", "2024-01-05", 20.0),
        ("a", "2024-01-07", -100.0),  # removes the 20 of Jan 5, then 80 from Jan 1
        ("b", "2024-01-02", -15.0),  # nothing before it: dropped and counted
        ("b", "2024-01-03", 40.0),
        ("c", "2024-01-01", 30.0),
        ("c", "2024-01-04", -30.0),  # refunded in full: the purchase is removed
        ("c", "2024-01-09", 12.0),
    ]
    log = read_transactions(
        pd.DataFrame(rows, columns=["contact_id", "date", "amount"]), nonpositive="net-contact"
    )
    assert log.purchases[["contact_id", "amount"]].values.tolist() == [
        ["a", 20.0],
        ["b", 40.0],
        ["c", 12.0],
    ]
    assert log.purchases["date"].dt.day.tolist() == [1, 3, 9]
    assert log.report.dropped == {REASON_REFUNDED_PURCHASE: 3, REASON_UNMATCHED_REFUND: 1}
    assert log.report.rows_netted == 1  # a's refund stays netted into Jan 1
    assert _accounted(log.report)


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


def _as_numbers(orders: pd.DataFrame, date_format: str) -> pd.Series:
    """The orders' dates as an export writes them in one of the number formats."""
    stamps = orders["date"] + pd.Timedelta(hours=9, minutes=30)  # a time of day, not midnight
    if date_format == "excel":
        return (stamps - pd.Timestamp("1899-12-30")) / pd.Timedelta(days=1)
    seconds = (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return seconds * {"unix": 1, "unix-ms": 1000, "unix-us": 1_000_000}[date_format]


@pytest.mark.parametrize("date_format", ["unix", "unix-ms", "unix-us", "excel"])
def test_dates_written_as_numbers_read_with_their_format_and_are_never_guessed(
    tmp_path, date_format
):
    """Unix times and spreadsheet serial days were refused as unparseable dates with no
    word of what they were; now the message names the format that reads them, and with it
    the log is the one the same orders give with ISO dates, from CSV, Parquet (integer or
    float column) and a DataFrame."""
    orders = _orders()
    numbers = orders.assign(date=_as_numbers(orders, date_format))
    path = tmp_path / "events.csv"
    numbers.to_csv(path, index=False)
    numbers.to_parquet(tmp_path / "events.parquet")
    unit = {"unix": "seconds", "unix-ms": "milliseconds", "unix-us": "microseconds"}
    shown = f"Unix times in {unit[date_format]}" if date_format in unit else "spreadsheet"
    with pytest.raises(InputError, match=f"look like {shown}.*: pass --date-format {date_format}"):
        read_transactions(path)
    for source in (path, tmp_path / "events.parquet", numbers):
        log = read_transactions(source, date_format=date_format)
        _assert_log(log, orders)
        assert log.report.date_format.startswith(shown)


def test_unix_times_are_instants_taken_to_the_shops_zone():
    """A Unix time is an instant in UTC: 23:30 UTC is the next day in Madrid, as for
    timestamps with an offset."""
    late = (pd.Timestamp("2024-03-01 23:30") - pd.Timestamp("1970-01-01")).total_seconds()
    frame = pd.DataFrame({"contact_id": ["a"], "date": [int(late)], "amount": [10.0]})
    utc = read_transactions(frame, date_format="unix")
    madrid = read_transactions(frame, date_format="unix", timezone="Europe/Madrid")
    assert utc.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-01"]
    assert madrid.purchases["date"].dt.strftime("%m-%d").tolist() == ["03-02"]
    assert any("Europe/Madrid" in note for note in madrid.report.notes)


def test_day_numbers_are_read_from_the_day_they_count_from(tmp_path):
    """dunnhumby's "The Complete Journey" numbers its days (1 to 711) from a date it does not
    write: such a column was refused with a hint about %Y%m%d that did not apply ("447"
    could be 1 November?). The message now names --date-format days-since:DATE, which reads
    them, day 0 being that date, from CSV, Parquet integers and a DataFrame."""
    orders = _orders()
    numbers = orders.assign(date=(orders["date"] - pd.Timestamp("2019-12-31")).dt.days)
    assert numbers["date"].between(700, 1500).all()
    path = tmp_path / "days.csv"
    numbers.to_csv(path, index=False)
    numbers.to_parquet(tmp_path / "days.parquet")
    with pytest.raises(InputError, match="unparseable date") as refused:
        read_transactions(path)
    assert "day numbers counted from a date, pass --date-format days-since:YYYY-MM-DD" in str(
        refused.value
    )
    assert "%Y%m%d" not in str(refused.value)
    for source in (path, tmp_path / "days.parquet", numbers):
        log = read_transactions(source, date_format="days-since:2019-12-31")
        _assert_log(log, orders)
        assert log.report.date_format == "day numbers since 2019-12-31 (day 1: 2020-01-01)"
    with pytest.raises(InputError, match="days-since: takes the day before day 1 as YYYY-MM-DD"):
        read_transactions(path, date_format="days-since:31/12/2019")


@pytest.mark.parametrize(
    "values",
    [
        ["123456", "234567"],
        ["1700000000", "12"],
        ["44927", "2024-01-01"],
        ["99999999999"],
        ["447", "45352"],
    ],
    ids=["six digits", "mixed lengths", "mixed with text", "eleven digits", "day and serial"],
)
def test_numbers_that_fit_no_date_format_get_no_hint(values):
    from clvcast.data.dates import number_date_hint

    assert number_date_hint(values) == ""


def test_numbers_run_together_are_read_only_zero_padded(tmp_path):
    """%Y%m%d read 1997111 as 1 November 1997 without a word, though 11 January is as
    likely (and 1997011 as 1 January): a format that runs numbers together now reads only
    values of the width it writes. Such values are refused with what is wrong, whether the
    format is given or inferred; the padded ones give the log of the same orders."""
    orders = _orders()
    written = orders.assign(date=orders["date"].dt.strftime("%Y%m%d"))
    padded = tmp_path / "padded.csv"
    written.to_csv(padded, index=False)
    for date_format in ("%Y%m%d", None):
        _assert_log(read_transactions(padded, date_format=date_format), orders)
    short = written.copy()
    short.loc[[3, 7], "date"] = ["1997111", "2023015"]
    path = tmp_path / "short.csv"
    short.to_csv(path, index=False)
    for date_format in ("%Y%m%d", None):
        with pytest.raises(
            InputError,
            match=r'2 rows with unparseable date.*"1997111".*%Y%m%d needs 8 digits, months and '
            r"days zero-padded.*1 November or 11 January",
        ):
            read_transactions(path, date_format=date_format)
    kept = read_transactions(path, date_format="%Y%m%d", invalid="drop")
    assert kept.report.rows_read == len(orders)
    _assert_log(kept, orders.drop(index=[3, 7]))


@pytest.mark.parametrize(
    ("date_format", "width"),
    [("%Y%m%d", 8), ("%d%m%Y", 8), ("%Y%m%d %H:%M", 14), ("%y%m%d", 6), ("%Y-%m-%d", None),
     ("%d%b%Y", None), ("%Y%m%d%z", None)],
)  # fmt: skip
def test_padded_width_only_where_numbers_run_together(date_format, width):
    from clvcast.data.dates import padded_width

    assert padded_width(date_format) == width


def test_a_date_format_without_strftime_codes_is_refused_with_the_choices(tmp_path):
    with pytest.raises(
        InputError,
        match="'unixx' has no strftime code.*unix, unix-ms, unix-us, excel or days-since:",
    ):
        read_transactions(_orders(), date_format="unixx")


def test_shopify_item_lines_without_the_total_are_named_as_lines_of_their_orders(tmp_path):
    """Shopify writes an order's total on its first line only: the other lines were refused
    as 'missing amount' with nothing to say they are parts of orders that have one."""
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY_ORDERS)
    with pytest.raises(InputError, match="2 rows with missing amount.*another line of an order"):
        read_transactions(path, **SHOPIFY, order_col="Name")
    log = read_transactions(path, **SHOPIFY, order_col="Name", invalid="drop")
    assert log.purchases["amount"].tolist() == [35.0, 45.0, 20.0]  # ann's two orders, bob's
    # 00:30 at +01:00 is 1 March where the shop is: the day as written.
    assert log.purchases["date"].dt.strftime("%m-%d").tolist() == ["01-05", "03-01", "01-06"]
    # A line without an amount whose order has none elsewhere gets no such hint.
    path.write_text(SHOPIFY_ORDERS + "#1004,carl@example.com,,,2023-03-02 09:00:00 +0100,1,Belt\n")
    with pytest.raises(InputError, match="3 rows with missing amount") as info:
        read_transactions(path, **SHOPIFY, order_col="Name")
    assert "another line of an order" not in str(info.value)


def test_orders_a_status_column_marks_as_not_purchases_are_refused_until_settled(tmp_path):
    """A Shopify export lists refunded and voided orders with their totals, a WooCommerce
    one cancelled and failed orders: they were read as purchases without a word. A status
    column with such statuses now stops the read until --status-col says what they are."""
    orders = _orders(40)
    statuses = ["paid", "refunded", "paid", "voided", "partially_refunded"] * 8
    export = orders.assign(**{"Financial Status": statuses})
    path = tmp_path / "orders_export.csv"
    export.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"'Financial Status' marks .*8 refunded, 8 voided") as e:
        read_transactions(path)
    assert "--status-col 'Financial Status'" in str(e.value) and "none" in str(e.value)
    log = read_transactions(path, status_col="Financial Status")
    kept = export["Financial Status"].isin(["paid", "partially_refunded"])
    _assert_log(log, orders[kept.to_numpy()])
    assert log.report.dropped[REASON_STATUS] == 16
    every = read_transactions(path, status_col="none")
    _assert_log(every, orders)
    # WooCommerce writes "wc-cancelled" and "wc-failed" in a column "Order Status".
    woo = orders.assign(
        **{"Order Status": ["wc-completed", "wc-cancelled", "WC-Failed ", None] * 10}
    )
    with pytest.raises(InputError, match=r"'Order Status' marks .*10 cancelled, 10 failed"):
        read_transactions(woo)
    assert read_transactions(woo, status_col="Order Status").report.dropped[REASON_STATUS] == 20
    # A status column with no such status reads as before.
    _assert_log(read_transactions(orders.assign(status="completed")), orders)
    with pytest.raises(InputError, match="missing column 'Sttus' for the order status"):
        read_transactions(woo, status_col="Sttus")


def test_unpaid_orders_are_read_as_purchases_and_counted_in_a_note():
    """Pending, on-hold and authorised orders were read as purchases without a word: most are
    paid later (bank transfers, cash on delivery), some never are. They are still read, and
    the report now counts them, in the column a status column is found in or the one
    --status-col names; --status-col none reads no status."""
    orders = _orders(40)
    shopify = orders.assign(
        **{"Financial Status": ["paid", "pending", "authorized", "paid", " Pending"] * 8}
    )
    log = read_transactions(shopify)
    _assert_log(log, orders)
    assert (
        "24 rows with column 'Financial Status' saying the order was not paid yet "
        "(8 authorized, 16 pending) were read as purchases: most are paid later, some never are "
        "(--status-col 'Financial Status' --not-purchase-statuses 'authorized,pending' drops them)"
    ) in log.report.notes
    woo = orders.assign(
        **{"Order Status": ["wc-completed", "wc-cancelled", "wc-on-hold", "wc-pending", ""] * 8}
    )
    read = read_transactions(woo, status_col="Order Status")
    _assert_log(read, orders[(woo["Order Status"] != "wc-cancelled").to_numpy()])
    assert any(
        "(8 on-hold, 8 pending) were read as purchases" in n
        and n.endswith("(--not-purchase-statuses 'on-hold,pending' drops them)")
        for n in read.report.notes
    )
    # Done as the note says, the unpaid orders are dropped and counted.
    dropped = read_transactions(
        shopify, status_col="Financial Status", not_purchase_statuses="authorized,pending"
    )
    assert dropped.report.dropped[REASON_STATUS] == 24
    assert not any("not paid" in note for note in dropped.report.notes)
    unread = read_transactions(shopify, status_col="none")
    assert not any("not paid" in note for note in unread.report.notes)
    assert not any("not paid" in note for note in read_transactions(orders).report.notes)


@pytest.mark.parametrize(
    ("column", "statuses", "marked"),
    [
        ("Estado", ["Pago aceptado", "Cancelado", "Entregado", "Reembolsado", "Error en pago"],
         "8 cancelado, 8 error en pago, 8 reembolsado"),  # PrestaShop in Spanish
        ("Situação", ["Pago", "Cancelado", "Entregue", "Estornado", "Pago"],
         "8 cancelado, 8 estornado"),  # a Brazilian shop
        ("État de la commande", ["Livré", "Annulé", "Livré", "Remboursée", "Paiement accepté"],
         "8 annulé, 8 remboursée"),
        ("Bestellstatus", ["Abgeschlossen", "Storniert", "Offen", "Rückerstattet", "Bezahlt"],
         "8 rückerstattet, 8 storniert"),  # Shopware in German
        ("Status zamówienia", ["Zrealizowane", "Anulowane", "Wysłane", "Zwrócone", "Opłacone"],
         "8 anulowane, 8 zwrócone"),  # a Polish shop
        ("Stato ordine", ["Completato", "Annullato", "Spedito", "Rimborsato", "Pagato"],
         "8 annullato, 8 rimborsato"),
        ("order_status", ["delivered", "canceled", "shipped", "unavailable", "invoiced"],
         "8 canceled, 8 unavailable"),  # Olist: orders that could not be filled
        ("Order Status", ["wc-completed", "wc-checkout-draft", "wc-processing", "wc-on-hold",
                          "wc-completed"], "8 checkout-draft"),  # WooCommerce's block checkout
        ("Financial Status", ["paid", "expired", "authorized", "paid", "pending"],
         "8 expired"),  # Shopify: the authorisation ran out, nothing was paid
    ],
    ids=["es", "pt", "fr", "de", "pl", "it", "olist", "woocommerce draft", "shopify expired"],
)  # fmt: skip
def test_statuses_in_the_shops_language_are_refused_until_settled(column, statuses, marked):
    """The statuses were English words only: a Spanish PrestaShop export's "Cancelado" and
    "Reembolsado" orders were read as purchases without a word. Statuses and status column
    names in the languages of the shops clvcast's users sell in are now read like English
    ones (case and accents as the export writes them)."""
    orders = _orders(40)
    export = orders.assign(**{column: statuses * 8})
    with pytest.raises(InputError, match=f"'{column}' marks orders as not purchases .{marked} "):
        read_transactions(export)
    log = read_transactions(export, status_col=column)
    kept = [status.lower().removeprefix("wc-") not in marked for status in statuses * 8]
    assert log.report.dropped[REASON_STATUS] == 8 * (marked.count(",") + 1) == 40 - sum(kept)
    _assert_log(log, orders[kept])


# A Magento export as Kaggle's "Pakistan's largest e-commerce dataset" writes it: the status
# as Magento's codes, "\\N" where MySQL had no value.
MAGENTO_STATUSES = [
    "complete", "canceled", "order_refunded", "refund", "closed", "received", "cod",
    "holded", "pending_paypal", "fraud", "exchange", "\\N", "complete", "paid", "processing",
    "payment_review", "complete", "canceled", "complete", "closed",
]  # fmt: skip
MAGENTO_NOT_PURCHASES = {"canceled", "order_refunded", "refund", "fraud", "closed", "exchange"}


def test_magento_statuses_that_do_not_say_what_the_order_is_are_refused_until_settled():
    """A Magento export's "order_refunded", "refund" and "fraud" orders, and its "closed"
    ones (refunded in full, in Magento), were read as purchases without a word: only whole
    statuses on a list were known. Statuses are now read by their words too, and a status
    that says neither purchase nor not ("closed" means completed in other tools, "exchange")
    stops the read with one line naming both options, with --status-col."""
    orders = _orders(40)
    export = orders.assign(status=MAGENTO_STATUSES * 2)
    with pytest.raises(InputError, match=r"'status' holds order statuses that do not say") as e:
        read_transactions(export)
    message = str(e.value)
    assert "(4 closed, 2 exchange rows; 'closed': Magento closes an order refunded" in message
    assert "pass --status-col 'status' with --not-purchase-statuses 'closed,exchange'" in message
    assert "--purchase-statuses 'closed,exchange'" in message and "--status-col none" in message
    # Named as the message says: the statuses that are not purchases are dropped and counted.
    log = read_transactions(
        export, status_col="status", not_purchase_statuses=["closed", "Exchange"]
    )
    kept = ~export["status"].isin(MAGENTO_NOT_PURCHASES)
    _assert_log(log, orders[kept.to_numpy()])
    assert log.report.dropped[REASON_STATUS] == 2 * 8
    assert any(
        "8 rows with column 'status' saying the order was not paid yet (2 cod, 2 holded, "
        "2 payment_review, 2 pending_paypal)" in note
        for note in log.report.notes
    )
    # The user may say the other thing; then only the statuses that say so are dropped.
    kept_closed = read_transactions(
        export,
        status_col="status",
        purchase_statuses=["closed"],
        not_purchase_statuses=["exchange"],
    )
    assert kept_closed.report.dropped[REASON_STATUS] == 2 * 8 - 4
    with pytest.raises(InputError, match="'closed' is in both --purchase-statuses and --not-p"):
        read_transactions(export, purchase_statuses=["closed"], not_purchase_statuses=["CLOSED"])
    with pytest.raises(InputError, match="but none is read; pass --status-col 'status'"):
        read_transactions(export, status_col="none", not_purchase_statuses=["closed"])


def test_a_status_column_of_codes_is_read_once_the_user_says_which_are_not_purchases():
    """A column of numbers (PrestaShop's state ids) says nothing clvcast can read: found by
    its name it is left alone, named by --status-col it is refused until the codes are said."""
    orders = _orders(40)
    export = orders.assign(status=[2, 4, 5, 6, 7] * 8)
    _assert_log(read_transactions(export), orders)  # no known status: not a status column
    with pytest.raises(InputError, match=r"\(8 2, 8 4, 8 5, 8 6, 8 7 rows\); pass --not-purch"):
        read_transactions(export, status_col="status")
    log = read_transactions(
        export, status_col="status", not_purchase_statuses="6, 7", purchase_statuses=["2", "4", "5"]
    )
    _assert_log(log, orders[(export["status"] < 6).to_numpy()])
    # A Brazilian address's state is no status either.
    _assert_log(read_transactions(orders.assign(Estado=["SP", "RJ", "MG", "BA"] * 10)), orders)


@pytest.mark.parametrize(
    ("written", "meaning"),
    [
        ("Order Cancelled", statuses.NOT_A_PURCHASE),
        ("Cancelled by customer", statuses.NOT_A_PURCHASE),
        ("order_refunded", statuses.NOT_A_PURCHASE),
        ("Suspected Fraud", statuses.NOT_A_PURCHASE),
        ("Return requested", statuses.NOT_A_PURCHASE),
        ("Pedido cancelado", statuses.NOT_A_PURCHASE),
        ("partially_refunded", statuses.PURCHASE),
        ("Partial return", statuses.PURCHASE),
        ("Payment accepted", statuses.PURCHASE),
        ("On backorder (paid)", statuses.PURCHASE),
        ("In Bearbeitung", statuses.PURCHASE),
        ("In Process", statuses.PURCHASE),  # Kaggle's "Sample Sales Data"
        ("Awaiting check payment", statuses.UNPAID),
        ("On backorder (not paid)", statuses.UNPAID),
        ("pending_paypal", statuses.UNPAID),
        ("wc-on-hold", statuses.UNPAID),
        ("closed", statuses.UNKNOWN),
        ("exchange", statuses.UNKNOWN),
        ("Disputed", statuses.UNKNOWN),
        ("Resolved", statuses.UNKNOWN),
    ],
)
def test_a_status_is_read_by_its_words(written, meaning):
    assert statuses.status_meaning(statuses.status_key(written)) == meaning


def test_a_status_that_stands_for_none_is_no_status():
    assert [statuses.status_key(s) for s in ("\\N", " NULL ", "", "-", "n/a")] == [None] * 5
    assert statuses.status_key("WC-Order_Refunded!") == "order refunded"


@pytest.mark.parametrize(
    ("columns", "hints"),
    [
        (["item_id", "status", "created_at", "price", "grand_total", "increment_id",
          "discount_amount", "Customer ID"],
         ["'contact_id' for the contact id (did you mean 'Customer ID'?)",
          "(did you mean 'created_at'?)", "(did you mean 'grand_total'?)"]),  # Magento
        (["Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "Customer ID", "amount"],
         ["(did you mean 'Customer ID'?)", "(did you mean 'InvoiceDate'?)"]),  # Online Retail II
        (["ORDERNUMBER", "SALES", "ORDERDATE", "STATUS", "CUSTOMERNAME"],
         ["(did you mean 'CUSTOMERNAME'?)", "(did you mean 'ORDERDATE'?)",
          "(did you mean 'SALES'?)"]),  # Kaggle's "Sample Sales Data"
    ],
    ids=["magento", "online retail", "sample sales"],
)  # fmt: skip
def test_a_missing_column_is_offered_as_exports_name_it(columns, hints):
    """By spelling alone, a Magento export's "discount_amount" was offered for the amount and
    "increment_id" for the contact id, and "Customer ID" was never offered."""
    frame = pd.DataFrame([["1"] * len(columns)], columns=columns)
    with pytest.raises(InputError) as info:
        read_transactions(frame)
    for hint in hints:
        assert hint in str(info.value)
    assert "discount_amount'?" not in str(info.value)


def _refunded_orders(n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders and their Shopify-like export: 'Total' is the whole order and 'Refunded
    Amount' what was given back: blank or 0.00 for most, part of it for every fifth order,
    all of it (written negative, as some exports do) for every tenth."""
    orders = _orders(n)
    refunds = np.zeros(n)
    refunds[1::5] = np.round(orders["amount"].to_numpy()[1::5] / 4, 2)
    refunds[3::10] = -orders["amount"].to_numpy()[3::10]
    written = ["" if i % 2 == 0 and r == 0 else f"{r:.2f}" for i, r in enumerate(refunds)]
    export = orders.assign(**{"Refunded Amount": written})
    return export, orders.assign(amount=orders["amount"] - np.abs(refunds))


def test_refunds_the_amounts_still_include_are_refused_until_settled():
    """Shopify's 'Total' stays the whole order after a refund, written beside it as
    'Refunded Amount': a partly refunded order was read at its whole amount without a word.
    Such a column holding refunds now stops the read until --refund-col says what it is;
    with it the refunds are taken off, and an order refunded in full goes with the amounts
    <= 0 (dropped and counted)."""
    export, net = _refunded_orders()
    refunded = export["Refunded Amount"].replace("", "0").astype(float).abs()
    money = f"{refunded.sum():,.2f}"
    with pytest.raises(
        InputError,
        match=rf"column 'Refunded Amount' holds refunds on 12 rows \({money} in all\) that the "
        r"amounts in 'amount' may still include; pass --refund-col 'Refunded Amount' .* or "
        r"--refund-col none",
    ):
        read_transactions(export)
    log = read_transactions(export, refund_col="Refunded Amount")
    kept = net["amount"] > 0
    assert int((~kept).sum()) == 4
    _assert_log(log, net[kept])
    assert log.report.dropped[REASON_NONPOSITIVE] == 4
    _assert_log(read_transactions(export, refund_col="none"), _orders(40))
    # An unreadable refund makes the amount unreadable, never 0.
    export.loc[6, "Refunded Amount"] = "n/a"
    with pytest.raises(InputError, match=r"unparseable amount in column 'amount - Refunded Amount' "
                       r"\(row 7: \"[0-9.]+ - n/a\"\)"):  # fmt: skip
        read_transactions(export, refund_col="Refunded Amount")
    # A refund column of zeros and blanks reads as before.
    _assert_log(read_transactions(_orders(40).assign(refunds="0.00")), _orders(40))


def test_amounts_in_several_currencies_are_refused_until_currency_picks_one():
    """A shop selling in EUR, USD and PLN exports each order's currency beside its total:
    the amounts were added up as one currency without a word. Several currencies in a
    currency column now stop the read; --currency reads only its rows (the others dropped
    and counted, a blank currency read); one currency in the column changes nothing."""
    orders = _orders(60)
    currencies = ["EUR", "eur ", "USD", "EUR", "PLN", ""] * 10
    export = orders.assign(Currency=currencies)
    with pytest.raises(
        InputError,
        match=r"column 'Currency' holds amounts in 3 currencies \(30 EUR, 10 PLN, 10 USD rows\)"
        r".*convert them to one currency first, pass --currency EUR .*--currency-col none",
    ):
        read_transactions(export)
    with pytest.raises(InputError, match=r"--currency GBP is none of the currencies"):
        read_transactions(export, currency="GBP")
    log = read_transactions(export, currency="eur")
    kept = [c.strip().upper() in ("EUR", "") for c in currencies]
    _assert_log(log, orders[kept])
    assert log.report.dropped[REASON_OTHER_CURRENCY] == 20
    _assert_log(read_transactions(orders.assign(currency="PLN")), orders)
    # Amounts in one currency already (the column says where the order was placed):
    # --currency-col none reads every row; a column named otherwise is named by the option.
    _assert_log(read_transactions(export, currency_col="none"), orders)
    other_name = orders.assign(**{"Divisa del pedido": currencies})
    _assert_log(read_transactions(other_name), orders)  # not a currency column's name
    log = read_transactions(other_name, currency_col="Divisa del pedido", currency="EUR")
    _assert_log(log, orders[kept])


def _woocommerce(n: int = 400, guests_every: int = 9) -> pd.DataFrame:
    """An order export where 0 stands for every guest checkout, as WooCommerce writes it."""
    orders = _orders(n)
    ids = pd.Series([str(i % 80 + 1) for i in range(n)])
    ids[::guests_every] = "0"
    return orders.assign(**{"Customer User": ids})


def test_a_placeholder_id_holding_many_orders_is_refused_until_guest_id_says_what_it_is():
    """WooCommerce writes 0 for every guest checkout: read as an id it made one customer of
    all guests, the shop's most frequent buyer, without a word."""
    export = _woocommerce()
    guests = int((export["Customer User"] == "0").sum())
    with pytest.raises(InputError, match=f"id '0' .* holds {guests} of 400 rows .* --guest-id '0'"):
        read_transactions(export, contact_col="Customer User")
    dropped = read_transactions(export, contact_col="Customer User", guest_id="0")
    assert dropped.report.dropped == {REASON_MISSING_CONTACT: guests}
    assert "0" not in set(dropped.purchases["contact_id"])
    kept = read_transactions(export, contact_col="Customer User", guest_id="none")
    assert kept.report.dropped == {}
    assert kept.purchases["contact_id"].value_counts().index[0] == "0"
    # Typed as integers (Parquet, pandas) the same.
    numbers = export.assign(**{"Customer User": export["Customer User"].astype(int)})
    with pytest.raises(InputError, match="--guest-id '0'"):
        read_transactions(numbers, contact_col="Customer User")
    # MySQL's \N for a missing id (a Magento export's guest orders) the same.
    mysql = export.assign(**{"Customer User": export["Customer User"].replace("0", "\\N")})
    with pytest.raises(InputError, match=r"--guest-id '\\N'"):
        read_transactions(mysql, contact_col="Customer User")
    mysql_guests = read_transactions(mysql, contact_col="Customer User", guest_id="\\N")
    assert mysql_guests.report.dropped == {REASON_MISSING_CONTACT: guests}
    # A customer numbered 0 with a few orders, as any other, is read as one.
    few = _woocommerce(guests_every=200)
    assert read_transactions(few, contact_col="Customer User").report.dropped == {}


# --- through the CLI ---------------------------------------------------------------------


def test_cli_reads_an_online_retail_export(tmp_path):
    export = online_retail_lines(400, seed=4)
    path = tmp_path / "online_retail.csv"
    export.lines.to_csv(path, index=False)
    out = tmp_path / "rfm.csv"
    args = ["--contact-col", "CustomerID", "--date-col", "InvoiceDate"]
    args += ["--quantity-col", "Quantity", "--price-col", "UnitPrice", "--order-col", "InvoiceNo"]
    ok = run_clvcast("rfm", "--transactions", path, "--as-of", "2013-01-01", "--output", out, *args)
    assert ok.returncode == 0, ok.stderr
    assert f"{export.guest_lines:,} rows dropped: no contact id (guest checkout)" in ok.stdout
    assert "refund rows netted against a kept purchase" in ok.stdout
    table = pd.read_csv(out, dtype={"contact_id": str})
    spend = table.set_index("contact_id")["total_spend"].sort_index()
    want = export.expected.groupby("contact_id")["amount"].sum().sort_index()
    np.testing.assert_allclose(spend.reindex(want.index), want, rtol=1e-9)


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
    assert "dates read as year/month/day (inferred" in ok.stdout
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


def test_a_spreadsheet_total_row_is_named_with_its_empty_date(tmp_path):
    """A sheet's 'Total' line has no date: the message shows the cell as empty (it read
    'row 3: "None"', a value nobody wrote)."""
    path = tmp_path / "sheet.csv"
    path.write_text("contact_id,date,amount\na,2024-01-05,10\nb,2024-02-05,20\nTotal,,30\n")
    with pytest.raises(
        InputError, match=r"1 row with missing date in column 'date' \(row 3: empty\)"
    ):
        read_transactions(path)
    log = read_transactions(path, invalid="drop")
    assert sorted(log.purchases["contact_id"]) == ["a", "b"]


def _refused_in_one_line_then_read(common: list, out, option: str, settle: list, report: str):
    """The command refuses in one line naming ``option`` and writes nothing; with
    ``settle`` it reads, and its report shows ``report``."""
    bad = run_clvcast(*common)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert option in bad.stderr and not out.exists()
    ok = run_clvcast(*common, *settle)
    assert ok.returncode == 0, ok.stderr
    assert report in ok.stdout


def _status_export() -> pd.DataFrame:
    statuses = ["paid", "paid", "paid", "paid", "refunded"] * 10
    return _orders(50).assign(**{"Financial Status": statuses})


def _currency_export() -> pd.DataFrame:
    return _orders(50).assign(Currency=["EUR", "EUR", "USD", "EUR", "EUR"] * 10)


@pytest.mark.parametrize(
    ("export", "extra", "option", "settle", "report"),
    [
        (_status_export, [], "--status-col 'Financial Status'",
         ["--status-col", "Financial Status"], "10 rows dropped: order status not a purchase"),
        (_woocommerce, ["--contact-col", "Customer User"], "--guest-id '0'",
         ["--guest-id", "0"], "no contact id (guest checkout)"),
        (lambda: _refunded_orders(50)[0], [], "--refund-col 'Refunded Amount'",
         ["--refund-col", "Refunded Amount"], "5 rows dropped: non-positive amount"),
        (_currency_export, [], "--currency EUR", ["--currency", "EUR"],
         "10 rows dropped: amount in another currency than --currency"),
    ],
    ids=["status", "guest placeholder", "refunds", "currencies"],
)  # fmt: skip
def test_cli_refuses_in_one_line_until_the_option_settles_it(
    tmp_path, export, extra, option, settle, report
):
    path = tmp_path / "orders_export.csv"
    export().to_csv(path, index=False)
    out = tmp_path / "rfm.csv"
    common = ["rfm", "--transactions", path, *extra, "--as-of", "2024-06-30", "--output", out]
    _refused_in_one_line_then_read(common, out, option, settle, report)


def test_cli_reads_swiss_amounts_with_thousands_apostrophe(tmp_path):
    path = tmp_path / "bestellungen.csv"
    path.write_text("contact_id;date;amount\na;2024-01-05;1'234.50\nb;2024-01-06;CHF 1\u2019000\n")
    out = tmp_path / "rfm.csv"
    common = ["rfm", "--transactions", path, "--as-of", "2024-06-30", "--output", out, "-q"]
    refused = run_inprocess(*common, "--currency", "CHF")
    assert refused.returncode == 2 and "--thousands apostrophe" in refused.stderr
    done = run_inprocess(*common, "--currency", "CHF", "--thousands", "apostrophe")
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(out)["total_spend"].tolist() == [1234.5, 1000.0]


def test_status_refund_and_currency_columns_are_refused_in_one_line(tmp_path):
    """A Shopify export of a shop selling in two currencies has all three: the refusals
    came one per run; now one line names every option, and with them the input reads."""
    export, net = _refunded_orders(40)
    export["Financial Status"] = ["paid", "partially_refunded", "paid", "refunded"] * 10
    export["Currency"] = ["EUR"] * 35 + ["USD"] * 5
    path = tmp_path / "orders_export.csv"
    export.to_csv(path, index=False)
    with pytest.raises(InputError) as refused:
        read_transactions(path)
    message = str(refused.value)
    assert "\n" not in message and message.count("transactions (orders_export.csv)") == 1
    for option in ("--status-col 'Financial Status'", "--refund-col 'Refunded Amount'",
                   "--currency EUR"):  # fmt: skip
        assert option in message
    settled = {"status_col": "Financial Status", "refund_col": "Refunded Amount"}
    log = read_transactions(path, **settled, currency="EUR")
    kept = (export["Financial Status"] != "refunded") & (export["Currency"] == "EUR")
    kept &= net["amount"] > 0
    _assert_log(log, net[kept.to_numpy()])
