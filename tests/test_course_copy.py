"""`glmmteach copy-course DIR`: the lessons, exercises and data land in a folder of the reader's choosing.

Tested as a reader uses it: through the command line, into new, empty, non-empty and impossible
targets, and once from a freshly built wheel installed outside the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from glmmteach.cli import main
from glmmteach.course import CourseCopyError, copy_course, graded_exercise

REPO = Path(__file__).resolve().parents[1]


def repo_files(part: str, patterns: tuple[str, ...]) -> set[str]:
    return {str(path.relative_to(REPO / part)) for pattern in patterns
            for path in (REPO / part).glob(pattern) if path.is_file()}


def practice_exercises() -> set[str]:
    """The exercise files a reader may have: all but the graded sets' sources (they hold solutions), and the
    students' README (STUDENTS.md, copied as README.md) instead of the instructor's."""
    return {name for name in repo_files("exercises", ("*.ipynb", "*.md"))
            if not graded_exercise(REPO / "exercises" / name) and name != "STUDENTS.md"}


def copied_files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_copies_lessons_exercises_and_data(tmp_path: Path) -> None:
    target = tmp_path / "my course"  # a space in the name, and a folder that does not exist yet
    copied = copy_course(target)
    assert copied_files(target / "lessons") == repo_files("lessons", ("*.ipynb", "*.md"))
    assert copied_files(target / "exercises") == practice_exercises()
    assert not (target / "exercises" / "01_crossover_glm.ipynb").exists()  # graded: its solutions stay out
    assert copied_files(target / "data") == repo_files("data", ("*.csv", "*.md", "ohio_counties/*", "lme4_practice/*"))
    assert (target / "lessons" / "07_crossover_glmm.ipynb").read_bytes() == (
        REPO / "lessons" / "07_crossover_glmm.ipynb").read_bytes()
    assert copied.counts["lessons"] == len(repo_files("lessons", ("*.ipynb", "*.md")))


def test_wheel_leaves_out_exactly_the_graded_sets() -> None:
    """pyproject's exclude list names every graded set's source and nothing else."""
    excluded = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "exclude-package-data"]["glmmteach.exercises"])
    graded = {path.name for path in (REPO / "exercises").glob("*.ipynb") if graded_exercise(path)}
    assert graded and excluded == graded


def test_command_line_copies_and_says_what_next(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "course"
    target.mkdir()  # an existing empty folder is fine
    assert main(["copy-course", str(target)]) == 0
    out = capsys.readouterr().out
    assert "lessons files" in out and f"jupyter lab {target}" in out
    assert (target / "exercises" / "02_glmm_likelihood.ipynb").is_file()


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["copy-course", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    assert copied_files(tmp_path) == {"notes.txt"}  # nothing written


def test_force_writes_into_a_folder_and_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "01_motivation.ipynb").write_text("an old edited copy")
    assert main(["copy-course", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "lessons" / "01_motivation.ipynb").read_bytes() == (
        REPO / "lessons" / "01_motivation.ipynb").read_bytes()


def test_target_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "course"
    target.write_text("a file")
    with pytest.raises(CourseCopyError, match="is not a folder"):
        copy_course(target, force=True)


def test_unwritable_target_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() == 0:  # root writes through permission bits; nobody can create folders in /proc
        target = Path("/proc") / f"glmmteach-course-{os.getpid()}"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "course"
    assert main(["copy-course", str(target)]) == 1
    assert "could not copy the course" in capsys.readouterr().err


@pytest.mark.slow
def test_wheel_ships_the_course(tmp_path: Path) -> None:
    """Build a wheel, install it outside the repository, and copy the course from it."""
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copyfile(REPO / name, source / name)
    for name in ("glmmteach", "data", "lessons", "exercises"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, cwd=tmp_path,
                   capture_output=True)
    (wheel,) = wheels.glob("glmmteach-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "glmmteach/lessons/07_crossover_glmm.ipynb" in names
    assert "glmmteach/exercises/02_glmm_likelihood.ipynb" in names
    shipped = {name.removeprefix("glmmteach/exercises/") for name in names
               if name.startswith("glmmteach/exercises/")} - {"__init__.py"}
    assert shipped == practice_exercises() | {"STUDENTS.md"}, "the wheel must carry exactly the practice sets"
    assert "glmmteach/data/ohio_counties/fe_2007_39_county.shp" in names
    assert "glmmteach/data/lme4_practice/reference.json" in names  # lesson 20's stored lme4 output

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a wheel is a zip of the installed tree
    target = tmp_path / "reader"
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = ("import glmmteach, sys; from glmmteach.cli import main; "
              f"assert glmmteach.__file__.startswith({str(site)!r}), glmmteach.__file__; "
              f"sys.exit(main(['copy-course', {str(target)!r}]))")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env, capture_output=True)
    assert copied_files(target / "lessons") == repo_files("lessons", ("*.ipynb", "*.md"))
    assert (target / "data" / "crossover.csv").is_file()


def test_students_get_a_readme_written_for_them(tmp_path: Path) -> None:
    copy_course(tmp_path / "course")
    readme = (tmp_path / "course" / "exercises" / "README.md").read_text(encoding="utf-8")
    assert readme == (REPO / "exercises" / "STUDENTS.md").read_text(encoding="utf-8")
    assert "glmmteach release" not in readme and "glmmteach grade" not in readme
    assert not (tmp_path / "course" / "exercises" / "STUDENTS.md").exists()
    # every practice set copied is in the students' table, and no graded one
    copied = {path.name for path in (tmp_path / "course" / "exercises").glob("*.ipynb")}
    listed = set(re.findall(r"`(\d\d_\w+\.ipynb)`", readme))
    assert listed == copied
