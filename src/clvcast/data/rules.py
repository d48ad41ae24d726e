"""The ingestion rules' messages and report bookkeeping, shared by the DuckDB and Spark engines.

Both engines check the same things in the same order; this module says the same thing when
they find them, so a message or a report field changes in one place.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvcast.data.dates import number_date_hint, padded_date_hint
from clvcast.data.report import (
    REASON_AMOUNT_RANGE,
    REASON_BAD_AMOUNT,
    REASON_BAD_DATE,
    REASON_FIELD_COUNT,
    REASON_MISSING_AMOUNT,
    REASON_MISSING_CONTACT,
    REASON_MISSING_DATE,
    REASON_OTHER_CURRENCY,
    REASON_STATUS,
    IngestionReport,
    counted,
    listed,
    one_line,
)
from clvcast.errors import DataQualityWarning, InputError

if TYPE_CHECKING:
    from clvcast.data.ingest import ReadOptions

# Problems of a row, checked in this order (the first that applies counts); code = index + 1.
PROBLEMS = (
    REASON_MISSING_CONTACT,
    REASON_MISSING_DATE,
    REASON_BAD_DATE,
    REASON_MISSING_AMOUNT,
    REASON_BAD_AMOUNT,
    REASON_AMOUNT_RANGE,
    REASON_STATUS,
    REASON_OTHER_CURRENCY,
)
GUEST_CHECKOUT = 1  # the problem code of a row without a contact id: dropped, never refused
NOT_A_PURCHASE = PROBLEMS.index(REASON_STATUS) + 1  # see clvcast.data.statuses
OTHER_CURRENCY = PROBLEMS.index(REASON_OTHER_CURRENCY) + 1  # see currency_to_keep
# Problems that are dropped, never refused.
ALWAYS_DROPPED = (GUEST_CHECKOUT, NOT_A_PURCHASE, OTHER_CURRENCY)

# --status-col, --refund-col, --currency-col none: no column holds that (every row is a
# purchase, the amounts are as written, they are in one currency).
NO_COLUMN = "none"


def named_column(option: str | None) -> str | None:
    """The column a --*-col option names, or None (not given, or ``none``)."""
    return None if option in (None, NO_COLUMN) else option


def columns_named(
    columns: Iterable[str], names: Iterable[str], but: Iterable[str | None] = ()
) -> list[str]:
    """The ``columns`` whose name, in lower case with '_' as ' ', is one of ``names``
    (:data:`~clvcast.data.statuses.STATUS_COLUMN_NAMES`, ...), other than those in ``but``."""
    known, taken = set(names), set(but)
    return [
        c
        for c in columns
        if c not in taken and " ".join(c.lower().replace("_", " ").split()) in known
    ]


def option_columns(
    columns: Iterable[str],
    option: str | None,
    names: Iterable[str],
    but: Iterable[str | None] = (),
) -> list[str]:
    """The columns a --status-col or --currency-col ``option`` has read: the one it names,
    none with ``none``, else those named like one of ``names`` (see :func:`columns_named`)."""
    if option is None:
        return columns_named(columns, names, but)
    column = named_column(option)
    return [] if column is None else [column]


# Column names (lower case, '_' as ' ') that hold money refunded on an order whose amount
# column still holds the whole order: Shopify's "Refunded Amount" beside "Total",
# WooCommerce's "Refund Amount" beside "Order Total", and the same in the languages of
# clvcast.data.statuses. A partly refunded order was read at its whole amount without a
# word.
REFUND_COLUMN_NAMES = (
    "refunded amount", "refund amount", "amount refunded", "total refunded", "refunded total",
    "refund total", "order refund", "refunds",
    "importe reembolsado", "total reembolsado", "valor reembolsado", "valor estornado",
    "montant remboursé", "montant rembourse", "erstatteter betrag", "erstattungsbetrag",
    "importo rimborsato", "kwota zwrotu", "terugbetaald bedrag",
)  # fmt: skip


def unread_refunds(
    name: str, column: str, amount_label: str, rows: int, money: float
) -> InputError:
    """The refusal of an input whose ``column`` holds refunds (on ``rows`` rows, ``money``
    in all) that the amounts may still include, when no --refund-col says what they are."""
    return InputError(
        f"transactions ({name}): column '{column}' holds refunds on {counted(rows, 'row')} "
        f"({money:,.2f} in all) that the amounts in '{amount_label}' may still include; pass "
        f"--refund-col '{column}' to take them off the amounts, or --refund-col "
        f"{NO_COLUMN} to read the amounts as written."
    )


# Column names (lower case, '_' as ' ') that say which currency a row's amount is in:
# Shopify's and WooCommerce's "Currency", and the same in the languages of
# clvcast.data.statuses. A shop that sells in several currencies had its EUR, USD and PLN
# amounts added up as one.
CURRENCY_COLUMN_NAMES = (
    "currency", "currency code", "order currency", "moneda", "divisa", "moeda", "devise",
    "währung", "wahrung", "valuta", "waluta", "munteenheid",
)  # fmt: skip


def currency_to_keep(
    name: str, column: str, counts: dict[str, int], currency: str | None
) -> str | None:
    """The currency whose rows are read when ``column`` holds several (``counts`` of rows
    by currency, upper case): ``currency`` (--currency), which must be one of them; None
    when the column holds one currency or none. Amounts in several currencies without
    --currency are refused: clvcast converts none, and their sum means nothing."""
    if len(counts) < 2:
        return None
    listed = ", ".join(
        f"{n:,} {c}" for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    top = max(counts, key=lambda c: counts[c])
    if currency is None:
        raise InputError(
            f"transactions ({name}): column '{column}' holds amounts in {len(counts)} "
            f"currencies ({listed} rows), which do not add up and which clvcast does not "
            f"convert; convert them to one currency first, pass --currency {top} to read "
            f"only the {top} rows (the others dropped and counted), or --currency-col "
            f"{NO_COLUMN} if the amounts are in one currency already."
        )
    if currency.upper() not in counts:
        raise InputError(
            f"transactions ({name}): --currency {currency} is none of the currencies in "
            f"column '{column}' ({listed} rows); pass one of them, such as --currency {top}."
        )
    return currency.upper()


def checked_together(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check of what the options must settle (a status, refund or currency
    column) and return their results; their refusals, if any, are raised as one line,
    so that one run names every option the input needs, not one per run."""
    results, refusals = [], []
    for check in checks:
        try:
            results.append(check())
        except InputError as refusal:
            refusals.append(str(refusal))
            results.append(None)
    if len(refusals) == 1:
        raise InputError(refusals[0])
    if refusals:
        prefix = refusals[0].split(": ", 1)[0] + ": "
        rest = (refusal.removeprefix(prefix).rstrip(".") for refusal in refusals[1:])
        raise InputError(refusals[0].rstrip(".") + "".join(f"; also {r}" for r in rest) + ".")
    return results


BAD_AMOUNT = PROBLEMS.index(REASON_BAD_AMOUNT) + 1  # its amount is not a number: see amount_hint
BAD_DATE = PROBLEMS.index(REASON_BAD_DATE) + 1  # its date reads in no format: see problem_hint
MISSING_AMOUNT = PROBLEMS.index(REASON_MISSING_AMOUNT) + 1  # see order_line_hint


# Thousands separators of amounts (--thousands): the characters each stands for; a space
# is also the no-break spaces that French and Polish spreadsheets write, an apostrophe
# also the typographic one (Swiss amounts: 1'234.50, 1’234.50).
THOUSANDS = {",": ",", ".": ".", " ": " \u00a0\u202f", "'": "'\u2019"}
# --thousands on the command line: its choices, as the characters they name.
THOUSANDS_CHOICES = {",": ",", ".": ".", "space": " ", "apostrophe": "'"}


def amount_text_sql(
    text: str, decimal: str, thousands: str | None, matches, currency: str | None = None
) -> str:
    """SQL (DuckDB and Spark alike) of an amount's text as a number's text, or NULL.

    ``text`` is the trimmed text; ``matches(sql, pattern)`` is the engine's whole-text regular
    expression test (``pattern`` may hold an apostrophe, which both engines' literals write
    as two). With ``thousands`` only the separator between groups of three digits is
    taken out ("1,23" with ``thousands=","`` is unparseable, not 123); with
    ``decimal=","`` the comma is the decimal mark and a dot outside groups is unparseable.
    ``currency`` (a sign or code, such as € or EUR) is taken out wherever it stands, with
    the spaces around it, in any case ("eur" too); any other currency leaves the amount
    unparseable. Negative amounts in accounting notation are read as negative
    (:func:`_signed`).
    """
    text = number_text_sql(text, currency)
    point = "[.]" if decimal == "." else ","
    if thousands is None:
        if decimal == ".":
            return text
        return f"CASE WHEN contains({text}, '.') THEN NULL ELSE replace({text}, ',', '.') END"
    group = "[.]" if thousands == "." else f"[{THOUSANDS[thousands]}]"
    pattern = f"^[-+]?([0-9]{{1,3}}({group}[0-9]{{3}})+|[0-9]+)({point}[0-9]*)?$"
    plain = text
    for character in THOUSANDS[thousands]:
        plain = f"replace({plain}, '{character.replace(chr(39), chr(39) * 2)}', '')"
    if decimal == ",":
        plain = f"replace({plain}, ',', '.')"
    return f"CASE WHEN {matches(text, pattern)} THEN {plain} ELSE NULL END"


def number_text_sql(text: str, currency: str | None = None) -> str:
    """SQL (DuckDB and Spark alike) of an amount's trimmed ``text`` as a signed number's
    text, separators left as written: ``currency`` taken out (see :func:`amount_text_sql`)
    and accounting notation as a leading minus (:func:`_signed`)."""
    if currency is not None:
        for written in dict.fromkeys((currency, currency.upper(), currency.lower())):
            text = f"replace({text}, {_sql_text(written)}, '')"
        text = f"trim(replace({text}, '\u00a0', ' '))"
    return _signed(text)


# Amounts in currencies without cents (Chilean and Colombian pesos, forints, rupiahs, dong,
# whole euros in a German sheet) are written with a dot between thousands: "12.990" is
# 12,990 pesos, which a decimal point reads as 12.99, and "990" stays 990. When every dot
# of a column's amounts is followed by groups of three digits, the column is refused until
# --thousands . or --decimal . says which it is (see check_dotted_thousands).
DOTTED_THOUSANDS = r"[-+]?[1-9][0-9]{0,2}([.][0-9]{3})+"
DOTS_AS_THOUSANDS, DOTS_OTHERWISE = 1, 2  # what amount_shape_sql says of a text


def decimal_mark(decimal: str | None, thousands: str | None) -> str:
    """The decimal mark amounts are read with: the one given, else ',' when the dot
    separates thousands, else '.'."""
    if decimal is not None:
        return decimal
    return "," if thousands == "." else "."


def amount_shape_sql(text: str, currency: str | None, matches) -> str:
    """SQL (DuckDB and Spark alike) of what an amount's trimmed ``text`` says of its dots,
    once ``currency`` and accounting notation are out (:func:`number_text_sql`):
    :data:`DOTS_AS_THOUSANDS` when it reads as :data:`DOTTED_THOUSANDS`,
    :data:`DOTS_OTHERWISE` when it has another dot or a comma, 0 when it has neither."""
    text = number_text_sql(text, currency)
    return (
        f"CASE WHEN {matches(text, DOTTED_THOUSANDS)} THEN {DOTS_AS_THOUSANDS} "
        f"WHEN {text} LIKE '%.%' OR {text} LIKE '%,%' THEN {DOTS_OTHERWISE} ELSE 0 END"
    )


def check_dotted_thousands(
    name: str, column: str, shapes: dict[int, int], examples: Callable[[], list[str]]
) -> None:
    """Refuse the amounts of ``column`` when every one with a dot or a comma reads as
    :data:`DOTTED_THOUSANDS` (``shapes``: rows by :func:`amount_shape_sql`); ``examples``
    gives two of them."""
    if not shapes.get(DOTS_AS_THOUSANDS) or shapes.get(DOTS_OTHERWISE):
        return
    shown = " and ".join(f'"{value}"' for value in examples()[:2])
    raise InputError(
        f"transactions ({name}): every amount with a dot in column '{column}' has groups of "
        f"three digits after it ({shown}): dots between thousands, as amounts in pesos, "
        "forints or rupiahs are written (12.990 = 12990), or decimal points (12.990 = "
        "12.99)? Pass --thousands . for the first, --decimal . for the second."
    )


def _signed(text: str) -> str:
    """SQL (DuckDB and Spark alike) of an amount's text with a negative amount in accounting
    notation written with a leading minus: "(3.00)", as spreadsheets and accounting exports
    write it, and "3.00-", as SAP does, are "-3.00". They were refused as unparseable. So is
    the minus sign U+2212 ("\u22123.00"), which spreadsheets in Nordic and other locales write."""
    text = f"replace({text}, '\u2212', '-')"
    inner = f"trim(substring({text}, 2, length({text}) - 2))"
    before = f"trim(substring({text}, 1, length({text}) - 1))"
    return (
        f"(CASE WHEN {text} LIKE '(%)' THEN concat('-', {inner}) "
        f"WHEN {text} LIKE '_%-' THEN concat('-', {before}) ELSE {text} END)"
    )


def _sql_text(value: str) -> str:
    """A SQL string literal of ``value``, a currency that :func:`check_currency` let pass
    (no quote or backslash, which DuckDB and Spark escape differently)."""
    return f"'{value}'"


def check_currency(currency: str | None) -> None:
    """One clear error for a --currency that is not a sign or code alone (digits,
    separators, spaces or quotes in it)."""
    if currency is not None and not _CURRENCY_TEXT.fullmatch(currency):
        raise InputError(f"--currency {currency!r}: use the sign or code alone, such as € or EUR.")


_CURRENCY_TEXT = re.compile(r"[^0-9.,\s+\-'\\]+")


def order_line_hint(count: int, lines_of_priced_orders: int) -> str:
    """The end of the message about ``count`` rows without an amount when every one of them
    is another line of an order (same contact and order id) whose amount is on a line of
    its own, as Shopify's orders export writes an order with several items; else ""."""
    if not count or lines_of_priced_orders != count:
        return ""
    return (
        "; each is another line of an order whose amount is on one of its other lines (as "
        "Shopify's orders export writes them), so dropping them reads every order whole"
    )


def problem_hint(code: int, values: Iterable[object], options: ReadOptions, every: bool) -> str:
    """The end of the message about rows with problem ``code``, from their example
    ``values`` as read with ``options``: what the amounts or dates look like and the option
    that reads them (:func:`amount_hint`, :func:`~clvcast.data.dates.number_date_hint`,
    :func:`~clvcast.data.dates.padded_date_hint`), or "". ``every``: no row of the column
    was readable, so for dates the layout is not one clvcast knows."""
    values = [value for value in values if value is not None]
    if code == BAD_DATE and any(str(value).strip() == options.date_col for value in values):
        return (
            "; they repeat the header line, as files joined with their headers do, so "
            "dropping them loses nothing"
        )
    if code == BAD_AMOUNT:
        decimal = decimal_mark(options.decimal, options.thousands)
        return amount_hint(values, decimal, options.thousands, options.currency)
    if code == BAD_DATE:
        hint = number_date_hint(values) or padded_date_hint(values, options.date_format)
        if not hint and every and options.date_format is None:
            hint = (
                "; no date layout that clvcast knows reads them: pass --date-format with "
                "theirs, in strftime codes (such as '%d %b %Y %H:%M')"
            )
        return hint
    return ""


# Contact ids that shops write for "no customer": WooCommerce's 0 for a guest checkout,
# and the placeholders of other exports. Read as an id, one of them becomes one customer
# with every guest's orders, the most frequent buyer of the shop. MySQL writes \N where a
# value is missing (a Magento export's guest orders).
PLACEHOLDER_IDS = (
    "0", "-1", "guest", "unknown", "anonymous", "none", "null", "nan", "n/a", "-", "\\n",
)  # fmt: skip
# A placeholder id is refused when it holds this many rows and this share of them at least
# (below both it changes nothing that matters and may be a real customer numbered 0).
PLACEHOLDER_ROWS, PLACEHOLDER_SHARE = 10, 0.005
NO_GUEST_ID = "none"  # --guest-id none: every id is a customer


def guest_ids(guest_id: str | None) -> tuple[str, ...]:
    """The ids (lower case) that --guest-id makes guest checkouts: none for None or ``none``."""
    if guest_id is None or guest_id.strip().lower() == NO_GUEST_ID:
        return ()
    return (guest_id.strip().lower(),)


def placeholder_id(name: str, column: str, contact: str, rows: int, total: int) -> InputError:
    """The refusal of a placeholder id that holds a share of the rows (see above)."""
    return InputError(
        f"transactions ({name}): contact id '{contact}' in column '{column}' holds {rows:,} "
        f"of {total:,} rows ({rows / total:.1%}), as guest checkouts do in shop exports "
        f"(WooCommerce writes 0); pass --guest-id '{contact}' to drop them as guest "
        f"checkouts, or --guest-id {NO_GUEST_ID} if it is one customer."
    )


def is_placeholder_heavy(rows: int, total: int) -> bool:
    return rows >= PLACEHOLDER_ROWS and rows >= PLACEHOLDER_SHARE * total


def case_twins(name: str, column: str, count: int, first: str, second: str) -> str:
    return (
        f"transactions ({name}): {count:,} contact ids in column '{column}' differ from "
        f"another only in upper/lower case (for example '{first}' and '{second}'), so one "
        "customer may count as two; pass --id-case lower (id_case='lower') if they are "
        "the same."
    )


def shown_value(value: object) -> str:
    """A cell as the examples of a refused row show it: quoted, or ``empty`` (a missing
    value, which read as "None" before)."""
    return "empty" if value is None else f'"{value}"'


# Currency signs and codes an amount may carry: the signs, the signs written in letters
# (Polish zł, Nordic kr, Czech Kč, Hungarian Ft, Romanian lei, Brazil's R$) and the codes of
# the markets clvcast's users sell in, Latin America's among them.
_CURRENCY = re.compile(
    r"R\$|[€$£¥₹₽₩¢]|\b(?:zł|kr|kč|ft|lei)(?!\w)|\b(?:EUR|USD|GBP|PLN|CHF|SEK|NOK|DKK|CZK|HUF|"
    r"RON|JPY|CAD|AUD|BRL|MXN|ARS|CLP|COP|PEN|UYU)\b",
    re.IGNORECASE,
)
_COMMA_LAST = re.compile(r"\s*[-+]?[\d.\s']*\d,(\d+)\s*")  # 12,50  1.234,56  1,234
_THOUSANDS = re.compile(r"\s*[-+]?\d{1,3}(?:,\d{3})+\.\d+\s*")  # 1,234.50
# 1'234.50  1’234,50 (Swiss: apostrophes between groups of three digits)
_APOSTROPHE_GROUPS = re.compile(r"\s*[-+]?\d{1,3}(?:['\u2019]\d{3})+(?:([.,])\d+)?\s*")
# 1.234,56  1 234,56  1 234 (groups of three digits after a dot or a space, then a comma)
_GROUPS_BEFORE_COMMA = re.compile(
    r"\s*[-+]?\d{1,3}([.\s\u00a0\u202f])\d{3}(?:\1\d{3})*(?:,\d+)?\s*"
)


def _currency_shown(sign: str) -> str:
    """A currency as a hint names it: a code in upper case (eur: EUR), a sign in letters in
    lower case (ZŁ: zł), other signs as written (R$, €)."""
    if len(sign) == 3 and sign.isascii() and sign.isalpha():
        return sign.upper()
    return sign.lower() if sign.isalpha() else sign


def amount_hint(
    values: Iterable[object],
    decimal: str,
    thousands: str | None = None,
    currency: str | None = None,
) -> str:
    """What unparseable amounts look like, as the end of their message ("" when nothing is
    recognised), from the example ``values`` as read: a currency sign or code (one: the
    option that reads it; several: refused), thousands
    separators ("1,234.50", "1.234,56", "1 234,56": the options that read them), or
    decimal commas (with ``decimal='.'``). A comma before exactly three digits ("1,234")
    may be either, and the hint says both."""
    texts = [str(value) for value in values if value is not None]
    found = {_currency_shown(sign) for text in texts for sign in _CURRENCY.findall(text)}
    others = sorted(found - {_currency_shown(currency)} if currency else found)
    if len(others) == 1 and currency is None:
        # The one currency, and what the numbers need once it is out: both options at once.
        numbers = _number_hint(
            [_CURRENCY.sub("", text).strip() for text in texts], decimal, thousands
        )
        also = f", and{numbers[1:]}" if numbers else ""
        return f"; the amounts carry the currency {others[0]}: pass --currency {others[0]}{also}"
    if others:
        given = f" besides --currency {currency}" if currency else ""
        return (
            f"; the amounts carry the currencies {', '.join(others)}{given}: clvcast reads "
            "one (--currency) and converts none; export the amounts in one currency"
        )
    texts = [_CURRENCY.sub("", text).strip() for text in texts] if currency else texts
    return _number_hint(texts, decimal, thousands)


def _number_hint(texts: list[str], decimal: str, thousands: str | None) -> str:
    """The part of :func:`amount_hint` on the numbers themselves: separators and commas."""
    if thousands is None:
        for text in texts:
            if match := _APOSTROPHE_GROUPS.fullmatch(text):
                comma = "--decimal , " if match.group(1) == "," and decimal == "." else ""
                return (
                    "; the amounts have apostrophes between thousands: pass "
                    f"{comma}--thousands apostrophe"
                )
            if match := _GROUPS_BEFORE_COMMA.fullmatch(text):
                name = "." if match.group(1) == "." else "space"
                comma = "" if decimal == "," else "--decimal , "
                shown = "'.'" if name == "." else "spaces"
                return (
                    f"; the amounts have decimal commas and {shown} between thousands: pass "
                    f"{comma}--thousands {name}"
                )
        if decimal == "." and any(_THOUSANDS.fullmatch(text) for text in texts):
            return "; the amounts have ',' between thousands: pass --thousands ,"
    commas = [match for text in texts if (match := _COMMA_LAST.fullmatch(text))]
    if decimal == "." and any(len(match.group(1)) != 3 for match in commas):
        return "; the amounts look like decimal commas: pass --decimal ,"
    if decimal == "." and commas:
        return (
            "; the commas may be decimal commas (pass --decimal ,) or thousands "
            "separators (pass --thousands ,)"
        )
    return ""


def check_amount_columns(name: str, columns: list[str], amount_col: str, quantity_col) -> None:
    """A missing amount column in an order-line export names the options that read it."""
    if quantity_col is not None or amount_col in columns:
        return
    quantity = [c for c in columns if c.lower() in ("quantity", "qty", "lineitem quantity")]
    price = [c for c in columns if "price" in c.lower()]
    if quantity and price:
        raise InputError(
            f"transactions ({name}) has no column '{amount_col}' but has '{quantity[0]}' "
            f"and '{price[0]}': pass --quantity-col {quantity[0]} --price-col {price[0]} "
            "(amount = quantity x price), or --amount-col for an amount column."
        )


EARLIEST_PLAUSIBLE = "1970-01-01"


def implausible_dates(
    report: IngestionReport,
    early: int,
    earliest: object,
    late: int,
    latest: object,
    last_year: int | None,
) -> None:
    """Note and warn about usable rows dated before 1970 or after the as-of year + 1: kept,
    but more often a misread date or a placeholder (1900-01-01) than a real purchase."""
    found = []
    if early:
        found.append(
            f"{counted(early, 'row')} {_be(early)} dated before 1970 (earliest {earliest})"
        )
    if late and last_year is not None:
        found.append(
            f"{counted(late, 'row')} {_be(late)} dated after {last_year} (latest {latest})"
        )
    for text in found:
        message = f"transactions ({report.source}): {text}; check the date column and its format"
        report.notes.append(text + "; check the date column and its format")
        warnings.warn(message, DataQualityWarning, 4)


def no_rows(name: str) -> InputError:
    return InputError(f"transactions ({name}) has no rows; nothing to model.")


def skipped_lines_shown(examples: list[tuple[int, str]], total: int) -> str:
    """'line 3: "c2,2024-01-02,20,50", line 9: "c3"' of (line number, line as written)."""
    return listed(
        [f"line {line:,}: {shown_value(one_line(text))}" for line, text in examples], total
    )


def skipped_lines(report: IngestionReport, total: int, shown: str, decimal: str | None) -> None:
    """Count the CSV lines that --drop-invalid dropped for their number of fields, with a
    note that shows the first ones. With ``decimal`` (an amount such as "20,50" that its
    unquoted decimal comma split) the dropped lines are likely purchases with cents, a bias
    of the monetary value, so the note is a warning too."""
    report.dropped[REASON_FIELD_COUNT] = total
    note = (
        f"{counted(total, 'line')} with another number of fields than the header dropped "
        f"(--drop-invalid): {shown}"
    )
    if decimal:
        note += (
            f'; amounts with a decimal comma such as "{decimal}" split in two where they are '
            "not quoted, so these are likely purchases: export the file with such values in "
            "quotes rather than dropping them"
        )
        warnings.warn(f"transactions ({report.source}): {note}", DataQualityWarning, 4)
    report.notes.append(note)


def only_skipped_lines(name: str, total: int, shown: str) -> InputError:
    """Every line of a CSV had another number of fields than its header."""
    return InputError(
        f"transactions ({name}): all {counted(total, 'line')} have another number of fields "
        f"than the header ({shown}); pass --sep if the separator is not the header's, or "
        "export the file with values that hold the separator in quotes."
    )


def problem_rows(count: int, reason: str, column: str, shown: str) -> str:
    """One part of :func:`invalid_rows`: "N rows with REASON in column 'C' (examples)"."""
    return f"{counted(count, 'row')} with {reason} in column '{column}' ({shown})"


def invalid_rows(name: str, found: list[str]) -> InputError:
    """``found``: one "N rows with REASON in column 'C' (examples)" part per problem."""
    return InputError(
        f"transactions ({name}): "
        + "; ".join(found)
        + ". Fix the data, or pass invalid='drop' (CLI: --drop-invalid) to drop and count them."
    )


def _be(count: int) -> str:
    return "is" if count == 1 else "are"


def _duplicates(count: int) -> str:
    """ "1 row is an exact duplicate", "2 rows are exact duplicates"."""
    if count == 1:
        return "1 row is an exact duplicate"
    return f"{count:,} rows are exact duplicates"


def duplicate_rows(name: str, count: int, examples: str) -> InputError:
    return InputError(
        f"transactions ({name}): {_duplicates(count)} of an earlier row "
        f"({examples}). Remove them, or pass duplicates='keep' or 'drop'."
    )


def duplicates_kept_note(count: int) -> str:
    return (
        f"{_duplicates(count)} of an earlier row; kept as separate "
        "order lines (duplicates='drop' removes them)"
    )


def nonpositive_rows(name: str, count: int, column: str, examples: str) -> InputError:
    return InputError(
        f"transactions ({name}): {counted(count, 'row')} {'has' if count == 1 else 'have'} "
        f"an amount <= 0 in column "
        f"'{column}' ({examples}). Pass nonpositive='drop' "
        "or 'net' (CLI: --nonpositive) to say how refunds and zero amounts count."
    )


def refund_excess_note(excess: object, contacts: int) -> str:
    return (
        f"refunds of {counted(contacts, 'contact')} exceeded all their earlier purchases by "
        f"{float(excess):,.2f} in total; the excess was dropped"
    )


def finish_report(
    report: IngestionReport,
    *,
    days: int,
    rows: int,
    netted: int,
    contacts: int,
    all_contacts: int,
    first: object,
    last: object,
    as_of: pd.Timestamp | None = None,
) -> None:
    """Fill in the purchase-day counts, or refuse a log with nothing left in it; warn when
    ``as_of`` lies long after the log's last purchase (:func:`late_as_of`)."""
    if days == 0:
        raise InputError(
            f"transactions ({report.source}): no usable purchase is left after the drops "
            f"({report.dropped}); check the as-of date and the amount column."
        )
    report.purchase_days = int(days)
    report.rows_merged = int(rows) - int(days)
    report.rows_netted = int(netted)
    report.contacts = int(contacts)
    report.contacts_without_purchase = int(all_contacts) - report.contacts
    report.first_date = pd.Timestamp(first)
    report.last_date = pd.Timestamp(last)
    late_as_of(report, as_of)


# An as-of date this many days or more after the log's last purchase, and more than a tenth
# of the log's span after it, is more often a wrong --as-of or a cut export than a shop
# where no one bought for months: the models read the gap as every contact's silence.
LATE_AS_OF_DAYS = 90


def late_as_of(report: IngestionReport, as_of: pd.Timestamp | None) -> None:
    """Note and warn when the as-of date lies long after the log's last purchase day."""
    if as_of is None or report.last_date is None or report.first_date is None:
        return
    gap = (pd.Timestamp(as_of).normalize() - report.last_date.normalize()).days
    span = (report.last_date - report.first_date).days
    if gap < LATE_AS_OF_DAYS or gap <= span / 10:
        return
    last = report.last_date.date()
    text = (
        f"the as-of date {pd.Timestamp(as_of).date()} is {gap:,} days after the last purchase "
        f"({last}), and the models read those days as every contact's silence (lower P(alive) "
        f"and forecasts); check --as-of (the log ends on {last}) and that the export is whole"
    )
    report.notes.append(text)
    warnings.warn(f"transactions ({report.source}): {text}", DataQualityWarning, 4)
