"""Dates of a purchase log: one format per column, inferred from all its values, never guessed.

A shop export writes every date of a column the same way, so the format is a property of
the column, not of a row. :func:`infer_date_format` tries ISO 8601 and the common day-first
and month-first layouts (with a 24-hour or an AM/PM clock, or month names such as
"05-Jan-2023" and "Jan 5, 2023") on *every* distinct value and keeps the one that reads them
all:

- ISO 8601 (``2024-09-03``, ``2024-09-03T21:30:00+02:00``) and ``YYYYMMDD`` are unambiguous,
  the latter only zero-padded: a format that runs numbers together reads only values of the
  width it writes (:func:`padded_width`), since strptime reads 1997111 as 1 November 1997;
- when a day-first layout (``%d/%m/%Y``) and its month-first twin (``%m/%d/%Y``) both read
  every value and disagree on one, the column is ambiguous: it is refused with two example
  values and the options that settle it (``date_format`` or ``dayfirst``), because reading
  "03/09/2022" as 9 March when the shop meant 3 September moves purchases by months without a
  trace;
- two-digit years are read written last (``15/03/24``, ``15.03.24``) or first (``24/03/15``,
  as Japanese and Korean software writes 15 March 2024). Every day-first date of 2000-2031
  also reads year first, so a reading that dates a purchase after today is ruled out
  (read the wrong way round, "24/03/31" is 24 March 2031); when both readings remain and
  disagree, the column is refused like an ambiguous day and month;
- when no layout reads every value, the one that reads most is used and the other values
  count as unparseable dates (with examples), never re-read row by row in another layout.

Time zones: the day is the one the data writes unless ``timezone`` (the shop's zone) is
given. Naive values are local times already. Text with a UTC offset ("2024-01-05 00:30:00
+0100", as Shopify exports) is taken at the time it writes, its own offset's clock: converting
it to UTC by default moved every order placed in the first hour after a European midnight
to the day before. Instants with no clock of their own (Unix times, timestamps typed with a
zone in Parquet or DuckDB) are taken in UTC, noted. With ``timezone`` every value with an
offset or zone is converted to it first.

Numbers are dates only when the format says which numbers (:data:`NUMBER_FORMATS`): Unix
times in seconds, milliseconds or microseconds (instants, converted to the shop's zone like
values with an offset), spreadsheet serial day numbers, or day numbers counted from a date
the export does not write (``days-since:2019-12-31`` reads 1 as 1 January 2020: dunnhumby's
"The Complete Journey" numbers its days 1 to 711). They are never inferred: a column of
numbers may as well be order numbers, and a wrong unit moves every date by years. A column
that looks like them is refused with the format that reads it (:func:`number_date_hint`).
"""

from __future__ import annotations

import datetime
import re
import warnings
from collections.abc import Iterable

import pandas as pd

from clvcast.errors import InputError

ISO = "ISO8601"
SCREEN_VALUES = 5_000
_DATE_LAYOUTS = (
    # Date layouts tried after ISO 8601; _MONTH_FIRST pairs the ambiguous ones.
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%y/%m/%d",
    "%d.%m.%y",
    "%y.%m.%d",
    "%d-%m-%y",
    "%m-%d-%y",
    "%y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d.",  # Hungarian, with the closing dot ("2024.03.15" reads as ISO 8601)
    "%Y%m%d",
)
# Layouts with month names ("05-Jan-2023", "Jan 5, 2023"): never ambiguous.
# The last one is RFC 2822's, as e-mail and HTTP write dates ("Fri, 05 Jan 2024 23:30:00 +0100").
_NAMED_MONTH_LAYOUTS = (
    "%d-%b-%Y",
    "%d-%b-%y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%a, %d %b %Y",
)
_TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S %z")
_ZONED_SUFFIX = " %H:%M:%S %z"  # tried only when some value ends with an offset
_ENDS_WITH_OFFSET = r"(?:Z|[+-][0-9]{2}:?[0-9]{2})$"
_CLOCK_SUFFIXES = (" %I:%M %p", " %I:%M:%S %p")  # 12-hour clocks: "10:22 AM"
# A zone named after the time ("2024-01-05 23:30:00 UTC", as BigQuery exports timestamps,
# or "... GMT"): read as the offset +0000, inferred formats only.
_NAMED_UTC = re.compile(r"(?<=[\s0-9])(?:UTC|GMT)$")
_DAY_FIRST = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%d.%m.%y", "%d-%m-%y")
_MONTH_FIRST = {
    "%d/%m/%Y": "%m/%d/%Y",
    "%d-%m-%Y": "%m-%d-%Y",
    "%d/%m/%y": "%m/%d/%y",
    "%d-%m-%y": "%m-%d-%y",
}
# Two-digit years written last and their year-first twins ("24/03/15", as Japanese and
# Korean software writes 15 March 2024, "24-03-15" as Swedish short dates): every day-first
# date of 2000-2031 also reads year first, so a reading that puts a purchase after today is
# ruled out (latest_plausible_day); when both remain and disagree, the column is refused.
_YEAR_FIRST = {
    "%d/%m/%y": "%y/%m/%d",
    "%m/%d/%y": "%y/%m/%d",
    "%d.%m.%y": "%y.%m.%d",
    "%d-%m-%y": "%y-%m-%d",
    "%m-%d-%y": "%y-%m-%d",
}
# The pairs of layouts that can read one column two ways, and the refusal's way to settle it.
_READ_TWO_WAYS = (
    (
        _MONTH_FIRST,
        "read as day/month and as month/day alike; pass --date-format {0} (or --dayfirst) "
        "if the day comes first, --date-format {1} if the month does.",
    ),
    (
        _YEAR_FIRST,
        "read with the year last and with the year first alike; pass --date-format {0} if "
        "the year comes last, --date-format {1} if it comes first.",
    ),
)


# The --date-format names of dates written as numbers: (what the report calls them, the
# number's unit for pandas, the day it counts from, whether it is an instant in UTC).
NUMBER_FORMATS = {
    "unix": ("Unix times in seconds", "s", "unix", True),
    "unix-ms": ("Unix times in milliseconds", "ms", "unix", True),
    "unix-us": ("Unix times in microseconds", "us", "unix", True),  # GA4's event_timestamp
    "excel": ("spreadsheet serial day numbers (Excel, LibreOffice)", "D", "1899-12-30", False),
}


# The --date-format of day numbers counted from a date: "days-since:" and that date (the day
# before day 1, as YYYY-MM-DD).
DAYS_SINCE = "days-since:"


def number_format(date_format: str | None) -> tuple[str, str, str, bool] | None:
    """What :data:`NUMBER_FORMATS` holds for ``date_format`` (also ``days-since:DATE``), or
    None when it is not a format of dates written as numbers."""
    if date_format is None:
        return None
    if date_format in NUMBER_FORMATS:
        return NUMBER_FORMATS[date_format]
    if not date_format.startswith(DAYS_SINCE):
        return None
    origin = date_format.removeprefix(DAYS_SINCE)
    try:
        day = datetime.date.fromisoformat(origin)
    except ValueError:
        raise InputError(
            f"--date-format {date_format!r}: {DAYS_SINCE} takes the day before day 1 as "
            f"YYYY-MM-DD ({DAYS_SINCE}2019-12-31 reads 1 as 2020-01-01)."
        ) from None
    day_one = day + datetime.timedelta(days=1)
    return f"day numbers since {day} (day 1: {day_one})", "D", str(day), False


def _parse_numbers(values: pd.Series, date_format: str) -> pd.Series:
    """Dates written as numbers in ``date_format`` (see :func:`number_format`); text that
    is not a number, or a number beyond pandas' dates, reads as missing (unparseable)."""
    _, unit, origin, instant = number_format(date_format)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(numbers, unit=unit, origin=origin, utc=instant, errors="coerce")
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):  # some out of range
            within = numbers.where(numbers.abs() < _NUMBER_LIMITS[unit])
            return pd.to_datetime(within, unit=unit, origin=origin, utc=instant, errors="coerce")


# Numbers beyond these read as unparseable: pandas' dates end in 2262 (9.2e9 seconds).
_NUMBER_LIMITS = {"s": 9e9, "ms": 9e12, "us": 9e15, "D": 1e5}


# Numbers written one after the other (%Y%m%d) are told apart only by their widths: strptime
# reads 1997111 as 1 November 1997, though 11 January is as likely. A format that runs two
# numeric codes together reads a value only if it has the width strftime writes, every
# number zero-padded (19970111); the format's other codes must have fixed widths too.
_FIXED_WIDTH_CODES = "YmdHMSy"
_NUMBERS_RUN_TOGETHER = re.compile(f"%[{_FIXED_WIDTH_CODES}]%[{_FIXED_WIDTH_CODES}]")
_ANY_CODE = re.compile("%.")


def padded_width(date_format: str) -> int | None:
    """The width of every value of ``date_format`` when it runs numbers together (8 for
    ``%Y%m%d``), or None when a value's width may vary (separators between the numbers, or
    a code of varying width such as %b)."""
    if not _NUMBERS_RUN_TOGETHER.search(date_format):
        return None
    codes = _ANY_CODE.findall(date_format.replace("%%", ""))
    if any(code[1] not in _FIXED_WIDTH_CODES for code in codes):
        return None
    return len(datetime.datetime(2000, 1, 1).strftime(date_format))


def _parse(values: pd.Series, date_format: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(values, errors="coerce", format=date_format)
        except (ValueError, TypeError):  # mixed UTC offsets: every value to UTC
            parsed = pd.to_datetime(values, errors="coerce", format=date_format, utc=True)
    width = padded_width(date_format)
    if width is None:
        return parsed
    full = values.astype("string").str.len().eq(width).fillna(False).to_numpy(dtype=bool)
    return parsed.where(full)


_SEPARATORS = "/.-"  # what stands between a date layout's numbers


def _candidates(
    dayfirst: bool | None, letters: bool, zoned: bool, separators: str = _SEPARATORS
) -> list[str]:
    """The formats to try; month names and AM/PM only when some value has ``letters``, a
    UTC offset after the time only when some value ends with one (``zoned``), a layout
    with '/', '.' or '-' only when some value has it (``separators``): a format cannot read
    a value without what it asks for, so the others are not tried (0.05 s of 0.2 s on
    200,000 distinct timestamps)."""
    suffixes = tuple(s for s in _TIME_SUFFIXES if zoned or s != _ZONED_SUFFIX)
    suffixes += _CLOCK_SUFFIXES if letters else ()
    layouts = []
    for layout in _DATE_LAYOUTS + (_NAMED_MONTH_LAYOUTS if letters else ()):
        if any(mark in layout and mark not in separators for mark in _SEPARATORS):
            continue
        if dayfirst is True and layout in (*_MONTH_FIRST.values(), *_YEAR_FIRST.values()):
            continue
        if dayfirst is False and layout in _DAY_FIRST:
            continue
        layouts += [layout + suffix for suffix in suffixes]
    return [ISO, *layouts]


def infer_date_format(values: pd.Series, *, dayfirst: bool | None = None, what: str = "") -> str:
    """The one format that reads ``values`` (distinct, non-blank date texts).

    Raises :class:`InputError` when a day-first and a month-first layout both read every
    value differently (``dayfirst`` None only).
    """
    values = values.dropna()
    if values.empty:
        return ISO
    # Layouts are screened on a sample of the distinct values (timestamps can have millions)
    # and every value is then read by each layout that read the whole sample.
    sample = (
        values if len(values) <= SCREEN_VALUES else values.sample(SCREEN_VALUES, random_state=0)
    )
    best, best_count, readers = ISO, -1, {}
    letters = bool(sample.str.contains("[A-SU-Ya-z]", regex=True).any())  # not ISO's T and Z
    zoned = bool(sample.str.contains(_ENDS_WITH_OFFSET, regex=True).any())
    separators = "".join(m for m in _SEPARATORS if sample.str.contains(m, regex=False).any())
    for candidate in _candidates(dayfirst, letters, zoned, separators):
        count = int(_parse(sample, candidate).notna().sum())
        if count > best_count:
            best, best_count = candidate, count
        if count == len(sample):
            parsed = _parse(values, candidate)
            if parsed.notna().all():
                readers[candidate] = parsed
    if not readers:
        return best
    _rule_out_future_years(readers, latest_plausible_day())
    for pairs, settle in _READ_TWO_WAYS:
        for first, second in pairs.items():
            for suffix in _TIME_SUFFIXES + _CLOCK_SUFFIXES:
                pair = (first + suffix, second + suffix)
                _refuse_if_both_read(readers, values, pair, settle.format(*pair), what)
    return next(iter(readers))


def latest_plausible_day() -> datetime.date:
    """The latest day a purchase in an export can have: tomorrow (a day for time zones)."""
    return datetime.date.today() + datetime.timedelta(days=1)


def _rule_out_future_years(readers: dict[str, pd.Series], latest: datetime.date) -> None:
    """Drop from ``readers`` the two-digit-year readings that date a purchase after
    ``latest``, when another two-digit-year reading of the same clock dates none: read the
    wrong way round, "24/03/31" is 24 March 2031, which no export of today holds."""
    two_digit = set(_YEAR_FIRST) | set(_YEAR_FIRST.values())
    for suffix in _TIME_SUFFIXES + _CLOCK_SUFFIXES:
        group = [layout + suffix for layout in two_digit if layout + suffix in readers]
        future = {f for f in group if (readers[f] > pd.Timestamp(latest)).any()}
        if future and len(future) < len(group):
            for layout in future:
                del readers[layout]


def _refuse_if_both_read(
    readers: dict[str, pd.Series],
    values: pd.Series,
    pair: tuple[str, str],
    settle: str,
    what: str,
) -> None:
    """Refuse the column when both layouts of ``pair`` read every value and disagree on
    one: ``settle`` says which option settles it."""
    a, b = readers.get(pair[0]), readers.get(pair[1])
    if a is None or b is None or a.equals(b):
        return
    differ = values[(a != b).to_numpy()]
    shown = " and ".join(f'"{v}"' for v in differ.head(2))
    raise InputError(f"{what}dates such as {shown} {settle}")


# The zone of instants that carry no clock of their own when the shop's zone is not given.
INSTANT_ZONE = "UTC"


def instant_zone(what: str, timezone: str | None, written: str | None = None) -> tuple[str, str]:
    """The zone whose clock gives the day of ``what`` (instants), and the report's note:
    ``timezone`` when given, else the zone the column is ``written`` in (a pandas or
    pyarrow timestamp column keeps it), else UTC."""
    if timezone is not None:
        return timezone, f"{what} were converted to {timezone} before the day"
    if written is not None:
        return written, f"timestamps written in time zone {written} were taken in that zone"
    return (
        INSTANT_ZONE,
        f"{what} were taken in {INSTANT_ZONE} (pass --timezone for the shop's zone)",
    )


_OFFSET = re.compile(r"(?:Z|([+-])(\d{2}):?(\d{2})?)$")


def _offset_minutes(text: pd.Series) -> pd.Series:
    """The UTC offset each timestamp text ends with, in minutes ("Z": 0; none: missing)."""
    parts = text.str.extract(_OFFSET)
    minutes = parts[1].astype("float64") * 60 + parts[2].astype("float64").fillna(0)
    sign = parts[0].map({"+": 1.0, "-": -1.0}).astype("float64")
    utc = text.str.endswith("Z").fillna(False).astype(bool)
    return (sign * minutes).where(~utc, 0.0)


def _as_written(text: pd.Series, parsed: pd.Series) -> pd.Series:
    """Naive local times of timestamps with UTC offsets: each at the clock it writes."""
    if str(parsed.dt.tz) != "UTC":  # one offset for every value: its clock
        return parsed.dt.tz_localize(None)
    # Mixed offsets (summer and winter time) were read as UTC instants: add each one back.
    return parsed.dt.tz_localize(None) + pd.to_timedelta(_offset_minutes(text), unit="min")


def _iso_name(text: pd.Series) -> str:
    """How the report names dates that pandas read as ISO 8601: pandas also reads
    "2024.03.15", "2024/03/15" and "2024 03 15" that way, which the report must not call
    ISO 8601 (a user checking the report against the file would find another layout): they
    are named "year.month.day" and so on. The mark after the four-digit year says which; one
    slice of the distinct values, so a million distinct timestamps cost no regular
    expression."""
    marks = sorted(set(text.str.slice(4, 5).dropna().unique()) - set("0123456789"))
    if set(marks) <= {"-"}:
        return "ISO 8601"
    return " and ".join(f"year{mark}month{mark}day" for mark in marks)


def parse_dates(
    raw: pd.Series,
    date_format: str | None,
    notes: list[str],
    *,
    dayfirst: bool | None = None,
    timezone: str | None = None,
    what: str = "",
) -> tuple[pd.Series, str | None]:
    """Parse to naive local datetimes (see the module docstring on ``timezone``).

    ``raw`` holds distinct values of one column (text or datetimes). Returns the datetimes
    and, for text, the format used as the ingestion report shows it (None for values that
    were datetimes already). What was done with zones and offsets is added to ``notes``.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        zone, note = instant_zone("timestamps", timezone, str(raw.dt.tz))
        notes.append(note)
        return raw.dt.tz_convert(zone).dt.tz_localize(None), None
    if pd.api.types.is_datetime64_dtype(raw):
        return raw, None
    text = raw.astype("string").str.strip() if date_format is None else raw.astype("string")
    numbers = number_format(date_format)
    if numbers is not None:
        parsed = _parse_numbers(text, date_format)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            zone, note = instant_zone("Unix times", timezone)
            notes.append(note)
            parsed = parsed.dt.tz_convert(zone).dt.tz_localize(None)
        return parsed, numbers[0]
    if date_format is None:
        text = text.str.replace(_NAMED_UTC, "+0000", regex=True)
    chosen = date_format or infer_date_format(text, dayfirst=dayfirst, what=what)
    parsed = _parse(text, chosen)
    shown = (_iso_name(text) if chosen == ISO else chosen) + (
        "" if date_format else " (inferred from every value)"
    )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        if timezone is None:
            notes.append(
                "timestamps with a UTC offset were taken at the time they write, the day as "
                "written (pass --timezone to convert them to the shop's zone)"
            )
            parsed = _as_written(text, parsed)
        else:
            notes.append(
                f"timestamps with a UTC offset were converted to {timezone} before the day"
            )
            parsed = parsed.dt.tz_convert(timezone).dt.tz_localize(None)
    return parsed, shown


# What numbers of each format look like: (digits before any decimal point, lowest, highest),
# the range being 1973-2100 (Unix times) and 1954-2119 (serial days).
_NUMBER_SHAPES = {
    "unix": (range(9, 11), 1e8, 4.2e9),
    "unix-ms": (range(12, 14), 1e11, 4.2e12),
    "unix-us": (range(15, 17), 1e14, 4.2e15),
    "excel": (range(5, 6), 2e4, 8e4),
}
_NUMBER = re.compile(r"\s*(\d+)(?:\.\d*)?\s*")
# Numbers below this (Excel's serial days start at 2e4 in 1954) may count days from a date.
_DAY_NUMBERS_BELOW = 2e4


def number_date_hint(values: Iterable[object]) -> str:
    """The end of an unparseable-date message when the example ``values`` are all numbers of
    one of :data:`NUMBER_FORMATS` (its option), else ""."""
    texts = [str(value) for value in values if value is not None]
    matches = [_NUMBER.fullmatch(text) for text in texts]
    if not texts or not all(matches):
        return ""
    for name, (digits, low, high) in _NUMBER_SHAPES.items():
        if all(len(m.group(1)) in digits and low <= float(m.group(0)) <= high for m in matches):
            return f"; they look like {NUMBER_FORMATS[name][0]}: pass --date-format {name}"
    if all(float(m.group(0)) < _DAY_NUMBERS_BELOW for m in matches):
        return (
            f"; if they are day numbers counted from a date, pass --date-format "
            f"{DAYS_SINCE}YYYY-MM-DD with the day before day 1"
        )
    return ""


def padded_date_hint(values: Iterable[object], date_format: str | None) -> str:
    """The end of an unparseable-date message when the example ``values`` are numbers
    shorter than ``date_format`` writes its dates, else "". When the format was inferred,
    only values that look like a year, month and day run together (``1997111``) get it."""
    shown = date_format or "%Y%m%d"
    width = padded_width(shown)
    texts = [str(value).strip() for value in values if value is not None]
    if width is None or not texts or not all(t.isdigit() and len(t) < width for t in texts):
        return ""
    if date_format is None and not all(len(t) >= 6 and t[:2] in ("19", "20") for t in texts):
        return ""
    return (
        f'; {shown} needs {width} digits, months and days zero-padded: "{texts[0]}" could '
        "be read more than one way (1997111: 1 November or 11 January?), so none is guessed"
    )


def check_date_format(date_format: str | None) -> None:
    """One clear error for a strftime format with an unknown directive (``%Q``)."""
    if date_format is None or number_format(date_format) is not None:
        return
    if "%" not in date_format:
        raise InputError(
            f"--date-format {date_format!r} has no strftime code; use codes such as %Y-%m-%d "
            f"or %d/%m/%Y %H:%M, or one of {', '.join(NUMBER_FORMATS)} or "
            f"{DAYS_SINCE}YYYY-MM-DD for dates written as numbers."
        )
    try:
        datetime.datetime.strptime("", date_format)
    except ValueError as exc:
        if "directive" in str(exc) or "stray" in str(exc):
            raise InputError(
                f"--date-format {date_format!r}: {exc}; use strftime codes such as "
                "%Y-%m-%d or %d/%m/%Y %H:%M."
            ) from exc


def check_timezone(timezone: str | None) -> str | None:
    """``timezone`` if it is None or a known IANA zone name, else one clear error."""
    if timezone is None:
        return None
    try:
        pd.Timestamp("2024-01-01", tz=timezone)
    except Exception as exc:
        raise InputError(
            f"time zone '{timezone}' is not known; use an IANA name such as Europe/Madrid."
        ) from exc
    return timezone
