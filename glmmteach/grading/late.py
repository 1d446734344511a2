"""The course file (which sets are graded, their weights and deadlines, the late policy) and late penalties.

A course file is TOML::

    [late]
    per_day = 0.10      # fraction of a set's points lost per day late (a part of a day counts as a day)
    cap = 0.50          # at most this fraction is lost
    grace_minutes = 15  # submissions this close after the deadline are on time

    [sets.01_crossover_glm]     # a source notebook's name without .ipynb
    weight = 2                  # its share of the course percentage (default 1)
    deadline = 2026-10-01T23:59:00+02:00

    [sets.02_glmm_likelihood]
    graded = false              # practice: graded for feedback, kept out of totals and LMS files

    [[extensions]]
    student = "s1234567"
    days = 3
    set = "01_crossover_glm"    # optional: without it, every deadline of the student moves

Sets the file does not name are practice sets. Submission times come from ``glmmteach collect`` (its
``submission-times.csv``) or a CSV of the same columns: ``student``, ``notebook``, ``submitted`` (ISO 8601 with
a time zone; a time without one is refused, since it could be read in two zones).
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import GradingError
from .export import read_records

DAY = timedelta(days=1)


@dataclass(frozen=True)
class SetPolicy:
    graded: bool = True
    weight: float = 1.0
    deadline: datetime | None = None


@dataclass(frozen=True)
class Course:
    sets: dict[str, SetPolicy]
    per_day: float = 0.0
    cap: float = 1.0
    grace: timedelta = timedelta(0)
    extensions: dict[tuple[str, str | None], timedelta] = field(default_factory=dict)

    def graded(self, name: str) -> bool:
        return name in self.sets and self.sets[name].graded

    def deadline(self, name: str, student: str) -> datetime | None:
        """The deadline of set ``name`` for ``student``, with their extensions (one for every set, one for it)."""
        policy = self.sets.get(name)
        if policy is None or policy.deadline is None:
            return None
        return (policy.deadline + self.extensions.get((student, None), timedelta(0))
                + self.extensions.get((student, name), timedelta(0)))

    def late_days(self, name: str, student: str, submitted: datetime | None) -> int:
        """Whole days (a part of a day counts as one) after the deadline and the grace period; 0 if on time."""
        deadline = self.deadline(name, student)
        if deadline is None or submitted is None or submitted <= deadline + self.grace:
            return 0
        return math.ceil((submitted - deadline) / DAY)

    def penalty(self, days: int) -> float:
        """The fraction of the points lost for ``days`` days late."""
        return min(self.cap, self.per_day * days)


def _number(table: dict[str, Any], key: str, default: float, where: str, low: float, high: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise GradingError(f"course file: {where}.{key} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _aware(value: Any, where: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise GradingError(f"course file: {where} must be a date and time with a time zone "
                           f"(e.g. 2026-10-01T23:59:00+02:00), got {value!r}")
    return value


def read_course(path: Path) -> Course:
    """Read and check a course file; :class:`GradingError` naming the entry at fault."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GradingError(f"cannot read the course file {path}: {exc}") from exc
    unknown = sorted(set(data) - {"late", "sets", "extensions"})
    if unknown:
        raise GradingError(f"course file {path}: unknown section(s) {unknown} (known: late, sets, extensions)")
    late = data.get("late", {})
    sets = {}
    for name, table in data.get("sets", {}).items():
        if not isinstance(table, dict) or set(table) - {"graded", "weight", "deadline"}:
            raise GradingError(f"course file: sets.{name} may hold graded, weight and deadline only")
        if not isinstance(table.get("graded", True), bool):
            raise GradingError(f"course file: sets.{name}.graded must be true or false")
        deadline = table.get("deadline")
        sets[name] = SetPolicy(table.get("graded", True), _number(table, "weight", 1.0, f"sets.{name}", 0, 1e6),
                               None if deadline is None else _aware(deadline, f"sets.{name}.deadline"))
    extensions: dict[tuple[str, str | None], timedelta] = {}
    for number, entry in enumerate(data.get("extensions", []), start=1):
        where = f"extensions entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("student"), str):
            raise GradingError(f"course file: {where} needs a student")
        name = entry.get("set")
        if name is not None and name not in sets:
            raise GradingError(f"course file: {where}: no set {name!r} in [sets]")
        extensions[(entry["student"], name)] = timedelta(days=_number(entry, "days", 0, where, 0, 365))
    return Course(sets, _number(late, "per_day", 0.0, "late", 0, 1), _number(late, "cap", 1.0, "late", 0, 1),
                  timedelta(minutes=_number(late, "grace_minutes", 0, "late", 0, 10_000)), extensions)


TIMES_FILE = "submission-times.csv"  # written by `glmmteach collect` into the submissions folder
TIMES_HEADER = ["student", "notebook", "submitted", "lms_late"]


def read_times(path: Path) -> dict[tuple[str, str], datetime]:
    """Submission times (``student``, ``notebook``, ``submitted`` ISO 8601 with a time zone) by student and
    notebook file name."""
    times = {}
    try:
        lines = read_records(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GradingError(f"cannot read the submission times {path}: {exc}") from exc
    for number, line in enumerate(lines, start=2):
        text = (line.get("submitted") or "").strip()
        try:
            when = datetime.fromisoformat(text)
        except ValueError as exc:
            raise GradingError(f"{path.name}, line {number}: submitted {text!r} is not an ISO 8601 time") from exc
        if when.tzinfo is None:
            raise GradingError(f"{path.name}, line {number}: submitted {text!r} has no time zone (add +00:00 or Z)")
        notebook = (line.get("notebook") or "").strip()
        times[((line.get("student") or "").strip(), notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb")] \
            = when
    return times
