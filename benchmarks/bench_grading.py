"""Grading speed: seconds per notebook for the course's exercises, and the speed-up from ``--jobs 2``.

Grades N copies of the course's solutions (each exercise's solution notebook with the released checks, i.e. a
student who answered everything) with :func:`glmmteach.grading.grade`, once with one job and once with two,
and prints the wall time per notebook run. Every run of ``grade`` also executes each solution once to compute
the key; those runs are counted as notebooks too (they are real work of a grading run).

The peer, measured in the same run: the same solutions' code run by a bare ``python -c`` (no sandbox, no
IPython, no recording), one process per notebook, one at a time: the floor set by starting Python and importing
what the notebooks import. The ratio of the grader's per-notebook time to it is the cost of grading safely.

    python benchmarks/bench_grading.py [--copies 3] [--timeout 300] [--no-sandbox]

Timings depend on the machine's load: compare figures measured in the same run, and say how loaded the
machine was (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from glmmteach.checks import MANUAL_KINDS, make_public_key
from glmmteach.grading import compute_key, grade, load_exercises, solution_notebook
from glmmteach.grading.keys import KeyStore

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"


def submissions(folder: Path, copies: int, timeout: float) -> int:
    """``copies`` students who each submit every exercise's solution; returns the number of notebooks."""
    exercises = load_exercises(EXERCISES)
    for exercise in exercises:
        public = make_public_key(exercise.name, exercise.specs, compute_key(exercise, timeout))
        notebook = solution_notebook(exercise, public)
        for copy in range(copies):
            target = folder / f"student{copy:03d}" / exercise.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target)
    return copies * len(exercises)


def bare_python_seconds(copies: int) -> float:
    """Seconds per notebook for the solutions' code cells run by a bare Python process in the data's folder."""
    started = time.perf_counter()
    count = 0
    for exercise in load_exercises(EXERCISES):
        code = "\n".join(cell.source for cell in solution_notebook(exercise).cells if cell.cell_type == "code")
        with tempfile.TemporaryDirectory() as folder:
            for path in exercise.data_files:
                shutil.copyfile(path, Path(folder) / path.name)
            for _ in range(copies):
                subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, capture_output=True,
                               env=dict(os.environ, MPLBACKEND="Agg"))
                count += 1
    return (time.perf_counter() - started) / count


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: less sensitive to the load than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3, help="students, each submitting every exercise")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="glmmteach-bench-"))
    try:
        source = root / "source"
        shutil.copytree(EXERCISES, source)
        graded = submissions(root / "submissions", args.copies, args.timeout)
        runs = graded + len(load_exercises(source))  # plus the key runs
        print(f"{graded} submissions ({args.copies} per exercise) + {runs - graded} key runs; "
              f"sandbox: {'no' if args.no_sandbox else 'bubblewrap'}; {os.cpu_count()} CPUs; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        manual = {(ex.filename, s.id) for ex in load_exercises(source) for s in ex.specs if s.kind in MANUAL_KINDS}
        walls = {}
        for jobs in (1, 2):
            cpu_before = _children_cpu()
            started = time.perf_counter()
            # a fresh key store per run (two exercises have per-student variants: grade needs a store), so
            # each run computes its keys, as a first grading does
            keys = KeyStore.open(root / f"keys{jobs}", create=True).folder
            rows = grade(source, root / "submissions", root / f"out{jobs}" / "gradebook.csv", timeout=args.timeout,
                         jobs=jobs, sandbox=not args.no_sandbox, log=lambda message: None, keys_dir=keys)
            walls[jobs] = time.perf_counter() - started
            cpu = (_children_cpu() - cpu_before) / runs
            statuses = sorted({row.status for row in rows})
            full = all(f.points == f.max_points for row in rows for f in row.feedback
                       if (row.notebook, f.question) not in manual)
            per_row = statistics.median(row.seconds for row in rows)
            print(f"--jobs {jobs}: {walls[jobs]:6.1f} s wall, {walls[jobs] / runs:5.2f} s per notebook "
                  f"(median {per_row:.2f} s per submission run; {cpu:.2f} CPU s per notebook); statuses {statuses}, "
                  f"full marks (free text aside, marked by hand): {full}; "
                  f"load average after: {os.getloadavg()[0]:.2f}")
        bare = bare_python_seconds(args.copies)
        print(f"bare python -c per notebook (no sandbox, one at a time): {bare:.2f} s; grading --jobs 1 takes "
              f"{walls[1] / runs / bare:.2f}x that; load average: {os.getloadavg()[0]:.2f}")
        print(f"speed-up from --jobs 2: {walls[1] / walls[2]:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
