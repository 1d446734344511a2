"""Shared by the tests that read a lesson's recorded values from its stored notebook.

A lesson records a value with ``glmmteach.booktools.record`` (``myst_nb.glue(name, value, display=False)``);
the stored notebook then holds a ``display_data`` output with the value's repr under the MIME type
``application/papermill.record/text/plain`` and the name in ``metadata.scrapbook.name`` (what
``pytest --nbval`` proves equal to a fresh run).
"""

from __future__ import annotations

import ast
import json
import math
from functools import cache
from pathlib import Path

RECORD_MIME = "application/papermill.record/text/plain"


@cache
def recorded_values(notebook: Path) -> dict[str, object]:
    """The values recorded in the stored ``notebook``, by name."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    values: dict[str, object] = {}
    for cell in cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get(RECORD_MIME)
            if name is None or text is None:
                continue
            text = "".join(text) if isinstance(text, list) else text
            values[name] = ast.literal_eval(text)
    return values


def rounding(value: float, digits: int) -> float:
    """The most that keeping ``value`` to ``digits`` significant digits (``record(..., digits=...)``) moves it.

    A test comparing a recorded value holds it to this much more than its own tolerance, never less.
    """
    if value == 0 or not math.isfinite(value):
        return 0.0
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
