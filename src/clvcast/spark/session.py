"""Starting Apache Spark for clvcast: a clear error when pyspark or Java is missing.

``pyspark`` is the optional extra ``clvcast[spark]``; Spark 4 runs on Java 17 or later.
Spark's own log is off (:data:`LOG_CONFIG`; ``CLVCAST_SPARK_LOG_LEVEL=warn`` shows it):
clvcast reports every error in one line, and a refused input printed a Java stack trace per
failed task before it. The session works in UTC (``spark.sql.session.timeZone``), like the
local engine, so a day is the same calendar day on both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clvcast.errors import InputError

DEFAULT_MASTER = "local[*]"
# Spark's log configuration for the sessions clvcast starts: quiet unless
# CLVCAST_SPARK_LOG_LEVEL says otherwise (see the file).
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


def java_available() -> bool:
    """True when a ``java`` command is on the PATH or under ``JAVA_HOME``."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return True
    return shutil.which("java") is not None


def spark_session(master: str | None = None, *, app_name: str = "clvcast") -> Any:
    """A SparkSession on ``master`` (default ``local[*]``: every core of this machine).

    Raises InputError, with what to install, when pyspark or Java is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as exc:
        raise InputError(
            "the Spark engine needs pyspark: pip install 'clvcast[spark]' (and Java 17+)."
        ) from exc
    if not java_available():
        raise InputError(
            "the Spark engine needs Java 17 or later: install a JDK (for example Debian's "
            "openjdk-17-jre-headless) or set JAVA_HOME."
        )
    # Python workers run clvcast's code: by default the interpreter running clvcast (a
    # cluster's executors need clvcast installed; set PYSPARK_PYTHON to their interpreter).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master or DEFAULT_MASTER)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        # No progress bar drawn on stderr over clvcast's own output when a stage runs long.
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * (os.cpu_count() or 1))))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", os.environ.get("CLVCAST_SPARK_DRIVER_MEMORY", "4g"))
        .config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
        )
    )
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j and Spark raise many kinds when the JVM cannot start
        raise InputError(f"cannot start Spark on {master or DEFAULT_MASTER}: {exc}") from exc


@contextlib.contextmanager
def job_session(master: str | None = None) -> Iterator[Any]:
    """The Spark session for one clvcast job: the one already running in this process (a
    notebook's, say), left running afterwards; else a new one on ``master``, stopped at the end.

    A running session on another master than the one asked for is refused (Spark keeps one
    session per process), with what to do.
    """
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        active = None
    else:
        active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if master is not None and master != running:
            raise InputError(
                f"a Spark session on {running} is already running in this process; stop it "
                f"first to use {master}, or leave the master out to use it."
            )
        yield active
        return
    session = spark_session(master)
    try:
        yield session
    finally:
        session.stop()
