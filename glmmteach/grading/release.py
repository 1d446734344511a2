"""Release: check every solution notebook against its own checks, then write the student notebooks."""

from __future__ import annotations

import concurrent.futures
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..checks import make_public_key
from .errors import GradingError, ReleaseError
from .notebooks import Exercise, load_exercises, solution_lines, solution_notebook, student_notebook
from .runner import execute_notebook
from .scoring import compute_key, score_answer


def _number_renderings(value: float) -> set[str]:
    """How an answer value could appear in a notebook's text, at several precisions."""
    found = {repr(value), str(value)}
    for digits in range(3, 17):
        found.add(f"{value:.{digits}g}")
        found.add(f"{value:.{digits}f}")
    # Short renderings ("0.56", "3") also occur in unrelated text; only long ones betray an answer.
    return {s for s in found if len(s.lstrip("-").replace(".", "").lstrip("0")) >= 4}


def leaked_values(text: str, key: dict[str, Any]) -> list[str]:
    """Answer values (at several precisions) that occur in ``text``."""
    leaks = []
    for qid, value in key.items():
        flat = value if isinstance(value, list) else [value]
        while flat and isinstance(flat[0], list):
            flat = [x for row in flat for x in row]
        for number in flat:
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                # a rendering counts where it stands as a number of its own, not inside a digest or longer number
                hits = sorted(s for s in _number_renderings(float(number))
                              if re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text))
                if hits:
                    leaks.append(f"{qid}: {hits[0]}")
    return leaks


@dataclass
class Released:
    exercise: Exercise
    key: dict[str, Any]
    notebook: NotebookNode


def prepare_release(exercise: Exercise, timeout: float = 600) -> Released:
    """Key, public key and student notebook for one exercise, after checking the solution passes its checks."""
    key = compute_key(exercise, timeout)
    public = make_public_key(exercise.name, exercise.specs, key)
    run = execute_notebook(solution_notebook(exercise, public), timeout=timeout, data_files=exercise.data_files)
    if run.status != "ok":
        raise ReleaseError(f"{exercise.filename}: the solution notebook failed with the released checks "
                           f"(status {run.status}: {'; '.join(run.errors)})")
    unchecked = [s.id for s in exercise.specs if s.id not in run.results]
    failed = [qid for qid, ok in sorted(run.results.items()) if not ok]
    if unchecked or failed:
        raise ReleaseError(f"{exercise.filename}: the solution does not pass its own checks "
                           f"(never checked: {unchecked}; check says wrong: {failed})")
    changed = [s.id for s in exercise.specs if not score_answer(s, key[s.id], run.answers.get(s.id)).correct]
    if changed:
        raise ReleaseError(f"{exercise.filename}: a second run of the solution gives different answers "
                           f"for {changed} (set random seeds)")
    notebook = student_notebook(exercise, public)
    text = nbformat.writes(notebook)
    leaks = leaked_values(text, key) + [f"solution line {ln!r}" for ln in solution_lines(exercise) if ln in text]
    if leaks:
        raise ReleaseError(f"{exercise.filename}: the student notebook would reveal: {'; '.join(leaks)}")
    return Released(exercise, key, notebook)


def release(source_dir: Path, out_dir: Path, *, timeout: float = 600, jobs: int = 1,
            log: Callable[[str], None] = print) -> list[Path]:
    """Check every solution notebook, then write the student notebooks (all or nothing)."""
    exercises = load_exercises(source_dir)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(prepare_release, ex, timeout): ex for ex in exercises}
        prepared: list[Released] = []
        failures: list[str] = []
        for future in concurrent.futures.as_completed(futures):
            try:
                prepared.append(future.result())
                log(f"checked {futures[future].filename}")
            except GradingError as exc:
                failures.append(str(exc))
    if failures:
        raise ReleaseError("release refused:\n  " + "\n  ".join(sorted(failures)))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for item in sorted(prepared, key=lambda r: r.exercise.filename):
        target = out_dir / item.exercise.filename
        nbformat.write(item.notebook, target)
        for path in item.exercise.data_files:
            shutil.copyfile(path, out_dir / path.name)
        written.append(target)
    return written
