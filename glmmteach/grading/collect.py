"""``glmmteach collect ZIP DIR``: an LMS bulk download unpacked into one folder per student.

Understood names (the download's own):

* **Canvas** ("Download Submissions"): ``<name>_<canvas user id>_<submission id>_<file>``, with ``_late``
  (``_LATE_`` for groups) after the name when Canvas marked the submission late, e.g.
  ``smithjane_late_123456_7890123_tiny.ipynb``;
* **Moodle** ("Download all submissions"): ``<Full Name>_<participant id>_assignsubmission_file_/<file>``
  (the folder form; also with the file name joined by ``_`` to that prefix, or without the trailing ``_``).

A student is found on the roster (``--students``: ``canvas_id`` for Canvas, ``name`` for Moodle, case and
spaces aside); without a roster the folder is named after the LMS's name. What cannot be placed (another
name form, a name the roster does not know, a file of another kind, two files for one place) is reported and
not written. Nothing outside ``DIR`` is written whatever an entry's name holds (``..``, absolute paths), entries
are read with a size cap, and existing files in ``DIR`` are never overwritten. ``DIR/submission-times.csv``
records each file's time as the zip holds it (its entry's date, which the LMS sets to the submission time; a
zip holds no time zone, so it is read as UTC, or as ``zone``) and the LMS's late flag, for the late policy of
``grade --course`` (edit the file, or pass ``grade --times``, where the LMS's own times differ).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path, PurePosixPath

from .errors import GradingError
from .export import csv_text, read_records, write_atomic
from .late import TIMES_FILE, TIMES_HEADER
from .scoring import MAX_SUBMISSION_BYTES

CANVAS = re.compile(r"^(?P<name>[^_/]+?)(?P<late>_late|_LATE_)?_(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>[^/]+)$")
MOODLE = re.compile(r"^(?P<name>[^/]+?)_(?P<pid>\d+)_assignsubmission_file_?(?:/|_)(?P<file>[^/]+)$")
MAX_TOTAL_BYTES = 4 * 2**30  # a zip bomb stops here


@dataclass
class Placed:
    student: str
    filename: str
    when: datetime
    late: bool


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _folder_name(name: str) -> str:
    """A folder name from an LMS display name (no roster): letters, digits and . _ - only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"


def place(entry: str, roster: list[dict[str, str]]) -> tuple[str, str, bool] | str:
    """(student folder, file name, LMS late flag) for a zip entry name, or why it cannot be placed."""
    by_canvas = {row.get("canvas_id", ""): row["student"] for row in roster if row.get("canvas_id")}
    by_name = {_key(row.get("name", "")): row["student"] for row in roster if row.get("name")}
    canvas, moodle = CANVAS.match(entry), MOODLE.match(entry)
    if moodle:
        match, student = moodle, by_name.get(_key(moodle["name"]))
        if roster and student is None:
            return f"Moodle name {moodle['name']!r} is not on the roster (its 'name' column)"
        late = False
    elif canvas:
        match, student = canvas, by_canvas.get(canvas["uid"])
        if roster and student is None:
            return f"Canvas user id {canvas['uid']} is not on the roster (its 'canvas_id' column)"
        late = canvas["late"] is not None
    else:
        return "not named as Canvas or Moodle name their downloads"
    filename = PurePosixPath(match["file"]).name
    if not filename.lower().endswith(".ipynb") or filename.startswith("."):
        return f"{filename!r} is not a notebook"
    return student or _folder_name(match["name"]), filename, late


def collect(archive: Path, folder: Path, *, roster: list[dict[str, str]] | None = None,
            zone: tzinfo = UTC) -> tuple[list[Placed], list[str]]:
    """Unpack ``archive`` into ``folder/<student>/<file>``; the files placed and what could not be placed."""
    try:
        bundle = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise GradingError(f"cannot read the LMS download {archive}: {exc}") from exc
    placed: dict[tuple[str, str], Placed] = {}
    problems: list[str] = []
    total = 0
    with bundle:
        for info in bundle.infolist():
            if info.is_dir():
                continue
            where = place(info.filename, roster or [])
            if isinstance(where, str):
                problems.append(f"{info.filename!r}: {where}; not placed")
                continue
            student, filename, late = where
            target = folder / student / filename
            if (student, filename) in placed or target.exists():
                problems.append(f"{info.filename!r}: {student}/{filename} is placed already; not placed again")
                continue
            if info.file_size > MAX_SUBMISSION_BYTES or total + info.file_size > MAX_TOTAL_BYTES:
                problems.append(f"{info.filename!r}: larger than {MAX_SUBMISSION_BYTES // 2**20} MB; not placed")
                continue
            with bundle.open(info) as handle:
                data = handle.read(MAX_SUBMISSION_BYTES + 1)  # the stated size may lie
            if len(data) > MAX_SUBMISSION_BYTES:
                problems.append(f"{info.filename!r}: larger than {MAX_SUBMISSION_BYTES // 2**20} MB; not placed")
                continue
            total += len(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            placed[(student, filename)] = Placed(student, filename, datetime(*info.date_time, tzinfo=zone), late)
    rows = sorted(placed.values(), key=lambda p: (p.student, p.filename))
    times = folder / TIMES_FILE
    earlier = [r for r in read_records(times) if (r.get("student"), r.get("notebook")) not in placed] \
        if times.is_file() else []  # the times of an earlier collect into DIR are kept
    lines = [[r.get(c, "") for c in TIMES_HEADER] for r in earlier]
    lines += [[p.student, p.filename, p.when.isoformat(), "yes" if p.late else ""] for p in rows]
    write_atomic(times, csv_text(TIMES_HEADER, sorted(lines)))
    return rows, problems
