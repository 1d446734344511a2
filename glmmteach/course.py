"""Copy the course (lesson notebooks, exercise notebooks, data) into a folder of the reader's choosing.

    glmmteach copy-course DIR [--force]

The lessons and exercises ship inside the package (``glmmteach/lessons``, ``glmmteach/exercises`` in an
installed wheel; the repository's ``lessons/`` and ``exercises/`` folders in a checkout), like the data
(``glmmteach.data``). The copy is the reader's own: running or editing it never touches the installed
package. Graded exercise sets (notebook metadata ``glmmteach.graded``) are the instructor's: their sources
hold the solutions, so neither the wheel nor the copy carries them (students get them from a release).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nbformat

from .bookbuild import is_graded
from .exceptions import GlmmteachError

PACKAGE_DIR = Path(__file__).resolve().parent
# What a reader gets: the notebooks and the pages they link to, the data with its provenance.
# The exercises' README.md is the instructor's (release and grade commands, sets students do not get):
# students get STUDENTS.md under that name instead.
STUDENT_README = ("README.md", "STUDENTS.md")
COURSE_PATTERNS = {
    "lessons": ("*.ipynb", "*.md"),
    "exercises": ("*.ipynb", "*.md"),
    "data": ("*.csv", "*.md", "ohio_counties/*", "lme4_practice/*"),
}


class CourseCopyError(GlmmteachError):
    """The course could not be copied (missing sources, or a target folder that is in the way)."""


@dataclass(frozen=True)
class CopiedCourse:
    """Where the course went, and how many files of each kind were written."""

    target: Path
    counts: dict[str, int]


def course_source(part: str) -> Path:
    """Folder holding one part of the course (``lessons``, ``exercises`` or ``data``).

    An installed wheel carries the lessons and exercises inside the package; a checkout (or an
    editable install) has them at the repository root, next to the package.
    """
    if part not in COURSE_PATTERNS:
        raise CourseCopyError(f"unknown course part {part!r}; expected one of {sorted(COURSE_PATTERNS)}")
    if part == "data":
        candidates = [Path(str(resources.files("glmmteach.data")))]
    else:
        candidates = [PACKAGE_DIR / part, PACKAGE_DIR.parent / part]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.ipynb" if part != "data" else "*.csv")):
            return folder
    raise CourseCopyError(
        f"the course's {part} were not found (looked in {', '.join(map(str, candidates))}); "
        "is glmmteach installed from a complete wheel or checkout?"
    )


def graded_exercise(path: Path) -> bool:
    """True for the source of a graded exercise set (it holds solutions that stay with the instructor)."""
    return path.suffix == ".ipynb" and path.parent.name == "exercises" and is_graded(
        nbformat.read(path, as_version=4))


def _course_files() -> dict[str, list[tuple[Path, Path]]]:
    """For each part, (source file, path relative to the part's folder in the copy)."""
    files: dict[str, list[tuple[Path, Path]]] = {}
    for part, patterns in COURSE_PATTERNS.items():
        source = course_source(part)
        found = sorted({path for pattern in patterns for path in source.glob(pattern)
                        if path.is_file() and not graded_exercise(path)})
        pairs = [(path, path.relative_to(source)) for path in found]
        if part == "exercises":
            instructor, student = STUDENT_README
            pairs = [(path, Path(instructor) if path.name == student else relative)
                     for path, relative in pairs if path.name != instructor]
        files[part] = pairs
    return files


def copy_course(target: Path | str, *, force: bool = False) -> CopiedCourse:
    """Copy the lessons, exercises and data into ``target/lessons``, ``target/exercises``, ``target/data``.

    ``target`` may not exist yet, or be an empty folder. A folder with anything in it is refused unless
    ``force`` is true; then the course's files are written over any files of the same name and
    nothing else in the folder is touched.
    """
    target = Path(target).expanduser()
    if target.exists() and not target.is_dir():
        raise CourseCopyError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise CourseCopyError(
            f"{target} is not empty; choose a new or empty folder, or pass --force to write the "
            "course's files into it (files of the same name are replaced, nothing else is touched)"
        )
    files = _course_files()
    try:
        for part, pairs in files.items():
            for source, relative in pairs:
                destination = target / part / relative
                if destination.is_dir():
                    raise CourseCopyError(f"{destination} is a folder; cannot write the file {relative} there")
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
    except OSError as exc:
        raise CourseCopyError(f"could not copy the course into {target}: {exc}") from exc
    return CopiedCourse(target=target, counts={part: len(pairs) for part, pairs in files.items()})


def add_subcommand(commands: argparse._SubParsersAction) -> None:
    """Register ``copy-course`` on the ``glmmteach`` command line."""
    parser = commands.add_parser(
        "copy-course",
        help="copy the lesson and exercise notebooks and the data into a folder, to run them locally",
    )
    parser.add_argument("directory", type=Path, help="folder to create (or an empty one)")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that is not empty (same-named files are replaced)")
    parser.set_defaults(run=run_subcommand)


def run_subcommand(args: argparse.Namespace) -> int:
    """Run ``glmmteach copy-course``; print what was copied and the next step."""
    try:
        copied = copy_course(args.directory, force=args.force)
    except CourseCopyError as exc:
        print(f"glmmteach copy-course: {exc}", file=sys.stderr, flush=True)
        return 1
    summary = ", ".join(f"{count} {part} files" for part, count in copied.counts.items())
    print(f"copied {summary} to {copied.target}")
    print(f"start Jupyter there, for example: jupyter lab {copied.target}")
    return 0
