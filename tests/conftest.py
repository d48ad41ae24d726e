"""Shared fixtures: CDNOW from lifetimes (real data) and generated purchase logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvcast.data import cdnow_purchase_log, load_cdnow_master


@pytest.fixture(scope="session", autouse=True)
def postgres_database_per_worker():
    """Under pytest-xdist (``make test``), each worker writes to a fresh PostgreSQL database
    of its own, so that one worker's staging tables never meet another's checks."""
    url = os.environ.get("CLVCAST_TEST_POSTGRES_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        yield
        return
    import sqlalchemy

    name = f"clvcast_test_{worker}"
    server = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    os.environ["CLVCAST_TEST_POSTGRES_URL"] = url.rsplit("/", 1)[0] + "/" + name
    yield
    os.environ["CLVCAST_TEST_POSTGRES_URL"] = url


@pytest.fixture(scope="session")
def cdnow_raw() -> pd.DataFrame:
    return load_cdnow_master()


@pytest.fixture(scope="session")
def cdnow_log():
    return cdnow_purchase_log()


def generate_transactions(
    n_contacts: int = 500, seed: int = 7, start: str = "2022-01-01", days: int = 600
) -> pd.DataFrame:
    """Transactions with string ids in shuffled order, times of day and same-day repeats.

    Each contact gets a first purchase day, a Poisson number of later purchase days, and on
    some days a second order line; amounts are lognormal. Rows are shuffled.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, days // 2, n_contacts)
    rows = []
    for contact in range(n_contacts):
        repeat = rng.poisson(rng.gamma(0.8, 2.5))
        later = rng.integers(first[contact], days, repeat)
        purchase_days = np.concatenate([[first[contact]], later])
        for day in purchase_days:
            lines = 1 + int(rng.random() < 0.15)
            for _ in range(lines):
                rows.append(
                    (
                        f"id-{contact:05d}",
                        day,
                        rng.integers(0, 86_400),
                        round(float(rng.lognormal(3.2, 0.6)), 2),
                    )
                )
    frame = pd.DataFrame(rows, columns=["contact_id", "day", "second", "amount"])
    frame["date"] = (
        pd.Timestamp(start)
        + pd.to_timedelta(frame["day"], unit="D")
        + pd.to_timedelta(frame["second"], unit="s")
    )
    frame = frame[["contact_id", "date", "amount"]]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def transactions() -> pd.DataFrame:
    return generate_transactions()


@pytest.fixture(scope="session")
def cdnow_sample_log():
    """The 2,357-customer CDNOW sample (Fader, Hardie & Lee 2005) as a purchase log."""
    from importlib import resources

    from clvcast.data import read_transactions

    path = resources.files("lifetimes.datasets").joinpath("CDNOW_sample.txt")
    raw = pd.read_csv(
        str(path),
        sep=r"\s+",
        header=None,
        dtype={"date": str},
        names=["customer", "contact_id", "date", "cds", "amount"],
    )
    return read_transactions(raw, date_format="%Y%m%d")


def run_inprocess(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``clvcast ARGS`` in this process (``clvcast.cli.main``), output captured as text.

    The same code path as the console script without a process start (2-3 s of imports
    each): for the many tests of one-line errors. The wiring itself (entry point, exit
    codes of a real process) is proved by the tests that use :func:`run_clvcast`.
    """
    import contextlib
    import io

    from clvcast.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def run_clvcast(
    *args: object,
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m clvcast ARGS`` in a fresh process, output captured as text; ``env``
    adds to (or overrides) this process's environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "clvcast", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


# An order-line export written for Excel: every order id a text formula, and one order
# cancelled two days later.
FORMULA_ORDER_IDS = (
    "InvoiceNo,CustomerID,InvoiceDate,Quantity,UnitPrice\n"
    '"=""536379""",12346,2011-01-18 10:01,10,2.5\n'
    '"=""C536379""",12346,2011-01-20 10:17,-10,2.5\n'
    '"=""536380""",12347,2011-01-19 10:01,3,4.0\n'
    '"=""536381""",12347,2011-02-19 10:01,3,4.0\n'
)
FORMULA_ORDER_OPTIONS = {
    "contact_col": "CustomerID",
    "date_col": "InvoiceDate",
    "quantity_col": "Quantity",
    "price_col": "UnitPrice",
    "order_col": "InvoiceNo",
}

# A Shopify orders export: an order's total on its first line only, the other item lines
# without it (tests of both engines).
SHOPIFY_ORDERS = """Name,Email,Financial Status,Total,Created at,Lineitem quantity,Lineitem name
#1001,ann@example.com,paid,35.00,2023-01-05 10:22:13 +0100,1,Shirt
#1001,ann@example.com,,,2023-01-05 10:22:13 +0100,1,Socks
#1002,bob@example.com,paid,20.00,2023-01-06 23:40:00 +0100,1,Cap
#1003,ann@example.com,paid,45.00,2023-03-01 00:30:00 +0100,1,Coat
#1003,ann@example.com,,,2023-03-01 00:30:00 +0100,3,Pins
"""
SHOPIFY = {"contact_col": "Email", "date_col": "Created at", "amount_col": "Total"}
