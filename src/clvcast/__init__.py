"""clvcast: customer-lifetime-value and purchase forecasting from a purchase log.

Layers (imports go down the list only): data -> summary -> rfm -> pipeline -> output/cli.
"""

from __future__ import annotations

__version__ = "0.1.0"
