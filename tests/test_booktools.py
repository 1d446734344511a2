"""The lessons' bookkeeping helpers: values kept for the book, warnings shown once and wrapped."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmteach.booktools import ESTIMATE_DIGITS, PAGE_WIDTH, SE_DIGITS, record, shown_warnings, signif, to_mc_error


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


def test_signif_rounds_to_significant_digits_elementwise() -> None:
    # the crossover's Laplace SE of trt under two OpenBLAS kernels: equal at the digits the method determines
    assert signif(3.105675605, SE_DIGITS) == signif(3.105675378, SE_DIGITS) == 3.106
    assert signif(-0.21844234, ESTIMATE_DIGITS) == -0.218442
    assert signif(7, 2) == 7  # integers (counts) are exact
    rounded = signif(np.array([1.23456789e-5, 0.0, np.inf, 123456.7]), 4)
    assert rounded.tolist() == [1.235e-05, 0.0, np.inf, 123500.0]
    series = signif(pd.Series([1.234567, 2.0], index=["a", "b"]), 3)
    assert series.to_dict() == {"a": 1.23, "b": 2.0}


def test_monte_carlo_values_are_rounded_to_their_error() -> None:
    assert to_mc_error(0.9003, 0.021) == 0.9
    assert to_mc_error(0.9473, 0.0071) == 0.947
    with pytest.raises(ValueError, match="positive"):
        to_mc_error(0.5, 0.0)
