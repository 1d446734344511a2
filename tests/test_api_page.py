"""The API page's examples (lessons/api.md) run, in order, as a reader runs them.

The book shows the page's ``python`` blocks as static code, so nothing else executes them: a renamed argument
or a block that uses another block's model would reach readers unnoticed. Every block runs here in one
namespace (the page's order: a block may use an earlier block's names), and the functions of the inference
and reporting chapter each have an example.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "lessons" / "api.md"
FENCE = re.compile(r"^```(\S*)\s*$")
# issue 16's functions: each is called in an example on the page
REPORTING_CALLS = ["glmmteach.bootstrap(", 'conf_int(method="profile"', 'conf_int(method="wald"', "gt.emmeans(",
                   "gt.contrast(", 'interval="confidence"', 'method="boot"', "allow_new_levels=True", "gt.bglmer(",
                   "gt.all_fit(", ".simulated_residuals(", "plots.plot_caterpillar(", ".tidy("]


def python_blocks() -> list[str]:
    blocks, current = [], None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line)
        if current is None and match and match.group(1) == "python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_every_reporting_function_has_an_example() -> None:
    code = "\n".join(python_blocks())
    missing = [call for call in REPORTING_CALLS if call not in code]
    assert not missing, f"lessons/api.md has no example calling {', '.join(missing)}"


@pytest.mark.slow
def test_the_examples_run_in_order() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {}
    blocks = python_blocks()
    assert len(blocks) >= 5
    for number, block in enumerate(blocks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the page's fits warn as the page says (badly scaled year, ...)
            try:
                exec(compile(block, f"lessons/api.md block {number + 1}", "exec"), namespace)  # noqa: S102
            except Exception as error:  # noqa: BLE001 - the failing block is named
                pytest.fail(f"lessons/api.md python block {number + 1} fails: {type(error).__name__}: {error}\n"
                            f"{block}")
        plt.close("all")
