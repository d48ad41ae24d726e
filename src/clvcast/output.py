"""Writing scored contact tables: Parquet or CSV by extension, or a SQL table; atomically.

A failed or interrupted write leaves the previous file or table as it was: files go through
:mod:`clvcast.atomic`, tables through a staging table swapped in one transaction. A write
first removes what killed writes left (temporary files, staging tables) and says so.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clvcast.atomic import atomic_path
from clvcast.csv_text import csv_buffers, each_time_once, has_time_of_day
from clvcast.errors import InputError, OutputWarning
from clvcast.marketing import (
    MARKETING_ENCODING,
    check_csv_format,
    marketing_frame,
)

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def table_format(path: str | os.PathLike[str]) -> str:
    """'parquet' or 'csv' from a file extension; InputError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise InputError(
            f"output {path} has extension '{suffix or '(none)'}'; use .parquet or .csv."
        )
    return TABLE_FORMATS[suffix]


def _with_timestamps_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns with a time of day (``scored_at``) as ISO text; dates stay dates."""
    timed = [
        column
        for column in table.columns
        if pd.api.types.is_datetime64_any_dtype(table[column]) and has_time_of_day(table[column])
    ]
    if not timed:
        return table
    result = table.copy()
    for column in timed:
        result[column] = _times_as_text(result[column])
    return result


def _times_as_text(values: pd.Series) -> pd.Series:
    """``values.dt.strftime("%Y-%m-%dT%H:%M:%S")``, each distinct time formatted once
    (:func:`~clvcast.csv_text.each_time_once`: 0.16 s against 1.6 s at 847k rows)."""
    texts = each_time_once(values, lambda times: list(times.strftime("%Y-%m-%dT%H:%M:%S")))
    return pd.Series(texts, index=values.index, name=values.name)


# Columns that hold calendar days: Parquet and SQL store them as dates (no time of day).
DATE_COLUMNS = (
    "as_of",
    "first_purchase",
    "last_purchase",
    "r_drop_date",
    "expected_drift_date",
    "as_of_from",
    "as_of_to",
)


def _arrow_table(table: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """``table`` as Arrow, its day columns as dates (Parquet DATE, not a timestamp), its
    time-zone-aware columns (``scored_at``) as timestamps with their zone."""
    zoned = {c: t.dtype.tz for c, t in table.items() if isinstance(t.dtype, pd.DatetimeTZDtype)}
    if zoned:  # pyarrow reads zoned columns through Series.values, deprecated in pandas 3.1
        naive = {c: table[c].dt.tz_convert("UTC").dt.tz_localize(None) for c in zoned}
        table = table.assign(**naive)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    for column, zone in zoned.items():
        index = arrow.schema.get_field_index(column)
        unit = arrow.schema.field(index).type.unit
        zoned_type = pa.timestamp(unit, tz=str(zone))
        arrow = arrow.set_column(index, column, arrow.column(index).cast(zoned_type))
    for column in DATE_COLUMNS:
        index = arrow.schema.get_field_index(column)
        if index >= 0 and pa.types.is_timestamp(arrow.schema.field(index).type):
            arrow = arrow.set_column(index, column, arrow.column(index).cast(pa.date32()))
    return arrow if schema is None else arrow.cast(schema)


def write_table(
    table: pd.DataFrame, path: str | os.PathLike[str], csv_format: str = "default"
) -> Path:
    """Write ``table`` (no index) to ``path`` as Parquet or CSV, atomically.

    CSV dates are written as ISO dates (YYYY-MM-DD) and missing values as empty fields;
    ``csv_format="marketing"`` writes the format of :mod:`clvcast.marketing`.
    """
    write_table_chunks([table], path, csv_format)
    return Path(path)


# Columns whose values rarely repeat get no dictionary page: it cannot shrink them, and
# trying costs time. The contact id never repeats (1M contacts: the file written in
# 0.38-0.44 s against 0.39-0.59 s, and 0.5% smaller). The models' continuous outputs take
# about one value per distinct (frequency, recency, T) row, more than a dictionary page
# holds, so the writer fills one and falls back to plain values: at 847k contacts
# (234k-341k distinct values each) predicted purchases, P(alive) and CLV took 0.034-0.055 s
# each with a dictionary against 0.023-0.025 s without, for a file 5% larger; on CDNOW the
# file is smaller without (0.12 MB against 0.14 MB a column). Every other column repeats a
# lot (days, counts, scores, labels, order values) and keeps Parquet's dictionary encoding.
_UNIQUE_COLUMN = "contact_id"
_CONTINUOUS_COLUMNS = frozenset({"p_alive", "churn_risk"})
_CONTINUOUS_PREFIXES = ("predicted_purchases_", "clv_")


def _dictionary_columns(arrow: pa.Table) -> list[str]:
    return [
        name
        for name in arrow.column_names
        if name != _UNIQUE_COLUMN
        and name not in _CONTINUOUS_COLUMNS
        and not name.startswith(_CONTINUOUS_PREFIXES)
    ]


# The label columns: a few values, nearly all of them in every row group, so their minimum
# and maximum can never let a reader skip one, and computing them over the text cost 0.07 s
# of the 0.44 s that writing 850k contacts took. Every other column keeps its statistics
# (a reader filtering on CLV, days or ids skips row groups with them).
_LABEL_COLUMNS = frozenset({"rfm_cell", "rfm_group", "rfm_segment", "churn_risk_band"})


def _statistics_columns(arrow: pa.Table) -> list[str]:
    return [name for name in arrow.column_names if name not in _LABEL_COLUMNS]


def write_table_chunks(
    tables: Iterable[pd.DataFrame], path: str | os.PathLike[str], csv_format: str = "default"
) -> int:
    """Write a table that arrives in chunks (same columns) to one Parquet or CSV file.

    Each chunk is appended as it comes (a Parquet row group, or CSV lines), so memory holds
    one chunk at a time; the file appears, complete, only when the last chunk is written.
    Returns the number of rows written.
    """
    check_csv_format(csv_format)
    kind = table_format(path)
    rows = 0
    with atomic_path(path) as temporary:
        writer = None
        try:
            for index, table in enumerate(tables):
                if kind == "parquet":
                    if writer is None:
                        arrow = _arrow_table(table)
                        writer = pq.ParquetWriter(
                            temporary,
                            arrow.schema,
                            use_dictionary=_dictionary_columns(arrow),
                            write_statistics=_statistics_columns(arrow),
                        )
                    else:
                        arrow = _arrow_table(table, writer.schema)
                    writer.write_table(arrow)
                elif csv_format == "marketing":
                    _write_csv(
                        marketing_frame(table),
                        temporary,
                        first=index == 0,
                        encoding=MARKETING_ENCODING if index == 0 else "utf-8",
                    )
                else:
                    _write_csv(_with_timestamps_as_text(table), temporary, first=index == 0)
                rows += len(table)
        finally:
            if writer is not None:
                writer.close()
    return rows


# Rows of CSV made and written at a time: memory holds one block's text (about 20 MB for a
# scored table), not the whole file's, as pandas' own writer does.
CSV_BLOCK_ROWS = 100_000


def _write_csv(
    table: pd.DataFrame, path: str | os.PathLike[str], *, first: bool, encoding: str = "utf-8"
) -> None:
    """``table`` as CSV lines (after a header when ``first``, else appended; ``utf-8-sig``
    starts the file with a byte-order mark), block by block: the bytes pandas writes, made
    in Arrow (:mod:`clvcast.csv_text`: 847k contacts in 1-3 s against 8-12 s), or by pandas
    for a block with a column type that module does not write."""
    with open(path, "wb" if first else "ab") as handle:
        if first and encoding == "utf-8-sig":
            handle.write(codecs.BOM_UTF8)
        for start in range(0, max(len(table), 1), CSV_BLOCK_ROWS):
            block = table.iloc[start : start + CSV_BLOCK_ROWS]
            header = first and start == 0
            buffers = csv_buffers(block, header=header)
            if buffers is None:
                text = block.to_csv(index=False, date_format="%Y-%m-%d", header=header)
                buffers = [text.encode("utf-8")]
            for buffer in buffers:
                handle.write(buffer)


# --- SQL targets -----------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def is_sql_url(target: str) -> bool:
    """True for SQLAlchemy URLs such as ``sqlite:///scores.db`` or ``postgresql://...``."""
    return "://" in str(target) and not str(target).startswith("file://")


def _engine(url: str):
    import sqlalchemy

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # the driver clvcast ships
    try:
        engine = sqlalchemy.create_engine(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise InputError(
            f"--output {url!r} is not a usable SQLAlchemy URL ({exc}); use for example "
            "sqlite:///scores.db or postgresql://user:password@host:5432/database."
        ) from exc
    except ModuleNotFoundError as exc:
        raise InputError(f"no database driver for {url.split('://')[0]}: {exc}.") from exc
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    return engine


def _transactional_ddl(engine) -> None:
    """Make SQLite's DDL part of the transaction (SQLAlchemy's recipe for pysqlite).

    Python's sqlite3 driver commits before DDL on its own, so without this the swap's
    ``DROP TABLE`` would be committed even if the ``RENAME`` after it failed, and the
    old table would be gone.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


def check_table_name(name: str | None, max_length: int = 63) -> str:
    """``name`` if it is a plain identifier the database can hold (``max_length``: the
    dialect's limit; PostgreSQL cuts longer names, which could make two names one)."""
    if not name:
        raise InputError(
            "a SQL output needs a table name: pass --table NAME (table_name=...), of letters, "
            "digits and _ (starting with a letter or _), at most 63 characters."
        )
    if not _IDENTIFIER.match(name):
        raise InputError(
            f"--table {name!r}: a SQL output needs a table name of letters, digits and _ "
            "(starting with a letter or _), at most 63 characters."
        )
    if len(name) > max_length:
        raise InputError(
            f"--table: the name {name!r} has {len(name)} characters; this database keeps "
            f"at most {max_length}. Use a shorter name."
        )
    return name


# Staging tables: clvcast_staging_<unix seconds>_<random>. The name never derives from the
# target's, so it always fits the identifier limit and a cleanup can only name a staging
# table; the time in it lets a later write drop the leftovers of killed runs.
STAGING_PREFIX = "clvcast_staging_"
_STAGING = re.compile(rf"^{STAGING_PREFIX}(\d+)_[0-9a-f]{{8}}$")
STALE_STAGING_SECONDS = 6 * 3600


def _staging_name() -> str:
    return f"{STAGING_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:8]}"


def _drop_stale_staging(engine) -> list[str]:
    """Drop staging tables of killed writes (older than :data:`STALE_STAGING_SECONDS`)."""
    import sqlalchemy

    now = time.time()
    stale = [
        name
        for name in sqlalchemy.inspect(engine).get_table_names()
        if (match := _STAGING.match(name)) and now - int(match.group(1)) > STALE_STAGING_SECONDS
    ]
    for name in stale:
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError), engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}"'))
    if stale:
        warnings.warn(
            f"dropped {len(stale)} staging table(s) left by interrupted writes: "
            + ", ".join(stale[:3]),
            OutputWarning,
            3,
        )
    return stale


def _bulk_insert(engine):
    """The fastest way the driver has to load rows, as a ``DataFrame.to_sql`` method.

    PostgreSQL: ``COPY ... FROM STDIN``. SQLite: one ``executemany`` on the driver's own
    cursor, without SQLAlchemy's per-row statement handling (3x faster at 1M rows). Other
    databases: pandas' default multi-row INSERT. pandas has already turned the values into
    the Python objects the driver stores (NaN to None, timestamps to datetimes).
    """
    dialect = engine.dialect.name

    def insert(pd_table, connection, keys, rows) -> None:
        name = '"' + pd_table.name.replace('"', '""') + '"'
        columns = ", ".join('"' + key.replace('"', '""') + '"' for key in keys)
        driver_connection = connection.connection.driver_connection
        if dialect == "postgresql":
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" for _ in keys)
        cursor = driver_connection.cursor()
        try:
            cursor.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", rows)
        finally:
            cursor.close()

    return insert if dialect in {"postgresql", "sqlite"} else None


def _with_dates_as_days(table: pd.DataFrame) -> pd.DataFrame:
    """Day columns as ``datetime.date`` values, which SQL DATE columns store as days."""
    days = [c for c in DATE_COLUMNS if c in table.columns]
    if not days:
        return table
    return table.assign(
        **{c: pd.Series(table[c].dt.date, index=table.index, dtype=object) for c in days}
    )


def write_sql(table: pd.DataFrame, url: str, table_name: str) -> str:
    """Replace table ``table_name`` with ``table`` atomically; returns the URL without password.

    See :func:`write_sql_chunks`.
    """
    return write_sql_chunks([table], url, table_name)[0]


def write_sql_chunks(tables: Iterable[pd.DataFrame], url: str, table_name: str) -> tuple[str, int]:
    """Replace table ``table_name`` with the rows of ``tables`` (chunks), atomically.

    The rows go to a staging table first, chunk by chunk; one transaction then drops the
    old table and renames the staging table (DDL is transactional in PostgreSQL and
    SQLite), so readers see the old table or the new one, and a failure leaves the old one
    in place. Returns the URL without password and the number of rows.
    """
    import sqlalchemy

    engine = _engine(url)
    check_table_name(table_name, engine.dialect.max_identifier_length or 63)
    shown = engine.url.render_as_string(hide_password=True)
    staging = _staging_name()
    driver_error = getattr(engine.dialect.dbapi, "Error", sqlalchemy.exc.SQLAlchemyError)
    rows = 0
    try:
        _drop_stale_staging(engine)
        for index, table in enumerate(tables):
            table = _with_dates_as_days(table)
            table.to_sql(
                staging,
                engine,
                index=False,
                if_exists="fail" if index == 0 else "append",
                chunksize=100_000,
                method=_bulk_insert(engine),
                dtype={c: sqlalchemy.Date() for c in DATE_COLUMNS if c in table.columns},
            )
            rows += len(table)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table_name}"'))
            connection.execute(sqlalchemy.text(f'ALTER TABLE "{staging}" RENAME TO "{table_name}"'))
    except (sqlalchemy.exc.SQLAlchemyError, driver_error) as exc:
        _drop_staging(engine, staging)
        message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise InputError(
            f"cannot write table {table_name} at {shown}: {message}; the old table is unchanged."
        ) from exc
    except BaseException:
        _drop_staging(engine, staging)
        raise
    finally:
        engine.dispose()
    return shown, rows


def _drop_staging(engine, staging: str) -> None:
    """Drop this write's staging table; the name is checked to be one, never the target."""
    import sqlalchemy

    if not _STAGING.match(staging):  # pragma: no cover - a guard, not a path
        raise AssertionError(f"refusing to drop {staging!r}: not a staging table")
    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError), engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{staging}"'))


def check_sql_target(url: str, table_name: str | None, *, sides: Iterable[str] = ()) -> None:
    """Fail before the work if the database cannot be reached or a name is unusable
    (the table's, and the side tables' of ``sides``, such as ``migrations``)."""
    import sqlalchemy

    check_table_name(table_name)
    engine = _engine(url)
    limit = engine.dialect.max_identifier_length or 63
    check_table_name(table_name, limit)
    for side in sides:
        check_table_name(side_target(url, table_name, side)[1], limit)
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        shown = engine.url.render_as_string(hide_password=True)
        raise InputError(f"cannot connect to {shown}: {message}") from exc
    finally:
        engine.dispose()


def write_scored(
    table: pd.DataFrame, target: str, table_name: str | None = None, csv_format: str = "default"
) -> str:
    """Write a scored table to a .parquet/.csv path or a SQL table; returns where."""
    return write_scored_chunks([table], target, table_name, csv_format)[0]


def write_scored_chunks(
    tables: Iterable[pd.DataFrame],
    target: str,
    table_name: str | None = None,
    csv_format: str = "default",
) -> tuple[str, int]:
    """Write a scored table arriving in chunks to a path or a SQL table, atomically.

    ``csv_format`` applies to CSV files (see :mod:`clvcast.marketing`). Returns where it
    went and the number of rows.
    """
    if is_sql_url(target):
        shown, rows = write_sql_chunks(tables, target, check_table_name(table_name))
        return f"{shown} table {table_name}", rows
    rows = write_table_chunks(tables, target, csv_format)
    return str(target), rows


def read_scored(source: str, table_name: str | None = None) -> pd.DataFrame:
    """Read a scored table back (an earlier run's output, for migrations)."""
    if is_sql_url(source):
        import sqlalchemy

        engine = _engine(source)
        try:
            return pd.read_sql_table(check_table_name(table_name), engine)
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
            raise InputError(f"cannot read table {table_name} from {source}: {exc}") from exc
        finally:
            engine.dispose()
    path = Path(source)
    if not path.is_file():
        raise InputError(f"previous scored table not found: {path}.")
    if table_format(path) == "parquet":
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, dtype={"contact_id": str}, encoding="utf-8-sig")
    for column in DATE_COLUMNS:  # dates, as Parquet DATE, SQL DATE or ISO text
        if column in table.columns:
            table[column] = pd.to_datetime(table[column]).astype("datetime64[ns]")
    return table


def side_target(target: str, table_name: str | None, side: str) -> tuple[str, str | None]:
    """Where a side table of an output goes (``side`` = migrations, changes, audiences,
    audience_changes): ``<output>.<side>.<ext>`` next to a file, or table
    ``<table>_<side>`` next to a SQL table."""
    if is_sql_url(target):
        return target, f"{table_name}_{side}"
    path = Path(target)
    return str(path.with_name(f"{path.stem}.{side}{path.suffix}")), None


def migrations_target(target: str, table_name: str | None) -> tuple[str, str | None]:
    """Where the migrations go: ``<output>.migrations.<ext>`` or table ``<table>_migrations``."""
    return side_target(target, table_name, "migrations")
