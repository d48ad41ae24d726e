"""The main jobs in Python: :func:`train`, :func:`predict` and :func:`report`, and the
contact tables of the exploring commands (:func:`rfm`, :func:`forecast`, :func:`churn`).

Whatever the ``clvcast`` command line does, a notebook does with the same code: the CLI
only parses its arguments, calls one of these functions and prints the result. Each job:

- takes its inputs as paths or DataFrames, and checks every input, output and setting
  before any work, so that a bad one fails with nothing written;
- reads through :mod:`clvcast.engines` (``engine="local"`` or ``"spark"``);
- talks to MLflow through an explicit :class:`~clvcast.tracking.MlflowStore`, never
  MLflow's process-wide settings;
- reports long steps through ``progress`` (a callable taking one line of text; the CLI
  passes its own), and prints nothing;
- returns a result object with everything the CLI prints.

Example::

    import clvcast

    trained = clvcast.train("orders.csv", as_of="1998-06-30", alias="champion")
    scored = clvcast.predict("models:/clvcast@champion", "orders.csv", as_of="1998-06-30",
                             output="scored.parquet")
"""

from clvcast.jobs.common import TrainConfig, check_not_an_input, check_output_file, load
from clvcast.jobs.demo import DemoResult, demo
from clvcast.jobs.reporting import ReportResult, report
from clvcast.jobs.scoring import PredictResult, parse_scored_at, predict
from clvcast.jobs.tables import TableResult, churn, forecast, rfm
from clvcast.jobs.training import TrainResult, train

__all__ = [
    "DemoResult",
    "PredictResult",
    "ReportResult",
    "TableResult",
    "TrainConfig",
    "TrainResult",
    "check_not_an_input",
    "check_output_file",
    "churn",
    "demo",
    "forecast",
    "load",
    "parse_scored_at",
    "predict",
    "report",
    "rfm",
    "train",
]
