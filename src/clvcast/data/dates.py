"""Dates of a purchase log: one format per column, inferred from all its values, never guessed.

A shop export writes every date of a column the same way, so the format is a property of
the column, not of a row. :func:`infer_date_format` tries ISO 8601 and the common day-first
and month-first layouts on *every* distinct value and keeps the one that reads them all:

- ISO 8601 (``2024-09-03``, ``2024-09-03T21:30:00+02:00``) and ``YYYYMMDD`` are unambiguous;
- when a day-first layout (``%d/%m/%Y``) and its month-first twin (``%m/%d/%Y``) both read
  every value and disagree on one, the column is ambiguous: it is refused with two example
  values and the options that settle it (``date_format`` or ``dayfirst``), because reading
  "03/09/2022" as 9 March when the shop meant 3 September moves purchases by months without a
  trace;
- when no layout reads every value, the one that reads most is used and the other values
  count as unparseable dates (with examples), never re-read row by row in another layout.

Time zones: values with a UTC offset are converted to the shop's zone (``timezone``, UTC by
default) before the day is taken; naive values are taken as local to it already.
"""

from __future__ import annotations

import datetime
import warnings

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
    "%Y/%m/%d",
    "%Y%m%d",
)
_TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S")
_DAY_FIRST = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y")
_MONTH_FIRST = {"%d/%m/%Y": "%m/%d/%Y", "%d-%m-%Y": "%m-%d-%Y", "%d/%m/%y": "%m/%d/%y"}


def _parse(values: pd.Series, date_format: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(values, errors="coerce", format=date_format)
        except (ValueError, TypeError):  # mixed UTC offsets: every value to UTC
            return pd.to_datetime(values, errors="coerce", format=date_format, utc=True)


def _candidates(dayfirst: bool | None) -> list[str]:
    layouts = []
    for layout in _DATE_LAYOUTS:
        if dayfirst is True and layout in _MONTH_FIRST.values():
            continue
        if dayfirst is False and layout in _DAY_FIRST:
            continue
        layouts += [layout + suffix for suffix in _TIME_SUFFIXES]
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
    for candidate in _candidates(dayfirst):
        count = int(_parse(sample, candidate).notna().sum())
        if count > best_count:
            best, best_count = candidate, count
        if count == len(sample):
            parsed = _parse(values, candidate)
            if parsed.notna().all():
                readers[candidate] = parsed
    if not readers:
        return best
    first = next(iter(readers))
    for day_first, month_first in _MONTH_FIRST.items():
        for suffix in _TIME_SUFFIXES:
            a, b = readers.get(day_first + suffix), readers.get(month_first + suffix)
            if a is None or b is None or a.equals(b):
                continue
            differ = values[(a != b).to_numpy()]
            shown = " and ".join(f'"{v}"' for v in differ.head(2))
            raise InputError(
                f"{what}dates such as {shown} read as day/month and as month/day alike; "
                f"pass --date-format {day_first + suffix} (or --dayfirst) if the day comes "
                f"first, --date-format {month_first + suffix} if the month does."
            )
    return first


def parse_dates(
    raw: pd.Series,
    date_format: str | None,
    notes: list[str],
    *,
    dayfirst: bool | None = None,
    timezone: str = "UTC",
    what: str = "",
) -> tuple[pd.Series, str | None]:
    """Parse to naive datetimes in the shop's ``timezone`` (see the module docstring).

    ``raw`` holds distinct values of one column (text or datetimes). Returns the datetimes
    and, for text, the format used as the ingestion report shows it (None for values that
    were datetimes already). Conversions between zones are added to ``notes``.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        notes.append(f"timestamps in time zone {raw.dt.tz} were converted to {timezone}")
        return raw.dt.tz_convert(timezone).dt.tz_localize(None), None
    if pd.api.types.is_datetime64_dtype(raw):
        return raw, None
    text = raw.astype("string").str.strip() if date_format is None else raw.astype("string")
    chosen = date_format or infer_date_format(text, dayfirst=dayfirst, what=what)
    parsed = _parse(text, chosen)
    shown = ("ISO 8601" if chosen == ISO else chosen) + (
        "" if date_format else " (inferred from every value)"
    )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        notes.append(f"timestamps with a UTC offset were converted to {timezone} before the day")
        parsed = parsed.dt.tz_convert(timezone).dt.tz_localize(None)
    return parsed, shown


def check_date_format(date_format: str | None) -> None:
    """One clear error for a strftime format with an unknown directive (``%Q``)."""
    if date_format is None:
        return
    try:
        datetime.datetime.strptime("", date_format)
    except ValueError as exc:
        if "directive" in str(exc) or "stray" in str(exc):
            raise InputError(
                f"--date-format {date_format!r}: {exc}; use strftime codes such as "
                "%Y-%m-%d or %d/%m/%Y %H:%M."
            ) from exc


def check_timezone(timezone: str) -> str:
    """``timezone`` if it is a known IANA zone name, else one clear error."""
    try:
        pd.Timestamp("2024-01-01", tz=timezone)
    except Exception as exc:
        raise InputError(
            f"time zone '{timezone}' is not known; use an IANA name such as Europe/Madrid."
        ) from exc
    return timezone
