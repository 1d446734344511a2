"""Bookkeeping for the course's pages: values kept for the text, warnings shown once.

Course tooling, not part of the fitting engine. A lesson records each number its prose quotes with
:func:`record` (in cells the rendered page hides), and shows the warnings of a fit with
:func:`shown_warnings`, once each and wrapped to the page's width.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PAGE_WIDTH = 88  # characters of a code-cell line or output line that fit the page without scrolling


def record(name: str, value: Any) -> None:
    """Keep a computed value for the text of the page (``{glue:text}`name```) and the book's checks.

    Floats are kept to 8 significant digits, far beyond what any text shows, so that the stored
    outputs do not depend on the last bits of floating-point arithmetic.
    """
    from myst_nb import glue  # imported here: only the book needs myst_nb

    value = value.item() if hasattr(value, "item") else value
    glue(name, float(f"{value:.8g}") if isinstance(value, float) else value, display=False)


@contextmanager
def shown_warnings(width: int = PAGE_WIDTH) -> Iterator[list[warnings.WarningMessage]]:
    """Print each distinct warning raised inside the block once, wrapped to ``width`` characters.

    Yields the list of caught warnings, so a page can also test what was raised.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    seen: set[tuple[str, str]] = set()
    for warning in caught:
        key = (warning.category.__name__, str(warning.message))
        if key in seen:
            continue
        seen.add(key)
        text = f"{key[0]}: {key[1]}"
        print(textwrap.fill(text, width=width, subsequent_indent="    ", break_on_hyphens=False))
