"""The lessons' bookkeeping helpers: values kept for the book, warnings shown once and wrapped."""

from __future__ import annotations

import sys
import warnings

import pytest

from glmmteach.booktools import PAGE_WIDTH, record, shown_warnings


def test_warnings_are_shown_once_and_wrapped(capsys: pytest.CaptureFixture) -> None:
    message = "a flat likelihood ridge " * 12
    with shown_warnings() as caught:
        for _ in range(3):
            warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn("another one", RuntimeWarning, stacklevel=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(caught) == 4  # all of them are handed over
    assert sum(line.startswith("UserWarning: ") for line in lines) == 1
    assert sum(line.startswith("RuntimeWarning: another one") for line in lines) == 1
    assert max(len(line) for line in lines) <= PAGE_WIDTH
    assert len(lines) > 2  # the long message was wrapped, not cut


def test_record_without_the_book_tools_does_nothing(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    """A reader running a copied lesson has no myst_nb: the hidden record() cells must still run."""
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes `import myst_nb` raise ImportError
    record("some_value", 1.5)
    assert capsys.readouterr().out == ""
