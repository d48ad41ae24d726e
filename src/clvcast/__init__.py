"""clvcast: customer-lifetime-value and purchase forecasting from a purchase log.

The main jobs are at the top: ``clvcast.train``, ``clvcast.predict`` and ``clvcast.report``
(:mod:`clvcast.jobs`), with ``clvcast.TrainConfig`` and ``clvcast.ReadOptions``. They are
imported on first use, so ``import clvcast`` stays light. The layers and the direction of
imports are in ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": "clvcast.jobs",
    "predict": "clvcast.jobs",
    "report": "clvcast.jobs",
    "TrainConfig": "clvcast.jobs",
    "ReadOptions": "clvcast.data",
}

__all__ = ["ReadOptions", "TrainConfig", "__version__", "predict", "report", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clvcast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
