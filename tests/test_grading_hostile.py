"""Hostile submissions graded for real: in bubblewrap, as the current user and (when root) as an ordinary user.

Each case gets its row with a clear status, only the points it earned (answers recorded before a time-out or a
crash included), and no file outside its sandbox changes: the source, every submission and the installed
glmmteach package are hashed before and after, and the gradebook is checked again after any process a
submission tried to leave behind would have acted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from grading_helpers import FIXTURE, RIGHT, WRONG, skip_security_test, submission

from glmmteach.grading import release
from glmmteach.grading.export import read_records
from glmmteach.grading.runner import sandbox_problem

pytestmark = [pytest.mark.grading, pytest.mark.slow]

TIMEOUT = 20  # seconds per notebook; the fixture runs in about 2 s
USER = "glmmgrader"
USER_VENV = Path(tempfile.gettempdir()) / "glmmteach-grader-venv"
REPO = Path(__file__).resolve().parents[1]
Q3_CELL_END = 9  # inserting a cell here puts it after the q3 cell of the released fixture


def hostile_notebooks(released: Path, root: Path) -> dict[str, str]:
    """Student name -> notebook text; the paths they attack are those of this grading run."""
    source, submissions, out = root / "source", root / "submissions", root / "out" / "gradebook.csv"
    attack_targets = [str(source / "tiny.ipynb"), str(submissions / "alice" / "tiny.ipynb"),
                      str(submissions / "alice"), str(source), str(out)]
    return {
        "alice": submission(released, RIGHT),
        # a perfect notebook that forks a child sleeping 400 s: graded at once, in full
        "forker": submission(released, RIGHT, {3: (
            "import os, time\nif os.fork() == 0:\n    time.sleep(400)\n    os._exit(0)")}),
        # ignores SIGINT and loops after recording q3 in the same cell
        "looper": submission(released, RIGHT[:2] + [
            RIGHT[2] + "\ncheck('q3', log_odds_by_period)\nimport signal\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", RIGHT[3]]),
        # the process dies after three answers
        "dier": submission(released, RIGHT, {Q3_CELL_END: "import os\nos._exit(1)"}),
        # looks for the key or the solutions everywhere it can think of
        "reader": submission(released, WRONG, {100: f"""
import glob, json, os, socket
found, seen = [], []
candidates = [{str(source / 'tiny.ipynb')!r}]
for pattern in ("/tmp/**/*.ipynb", "/home/*/*.ipynb", "/home/*/*/*.ipynb", "/root/*/*.ipynb", "/work/*/*/*.ipynb",
                "/work/*/*/*/*.ipynb", "/srv/**/*.ipynb", "/var/tmp/**/*.ipynb"):
    candidates += glob.glob(pattern, recursive=True)
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    seen.append(pid)
    for link in ("cwd", "root"):
        try:
            folder = os.readlink(f"/proc/{{pid}}/{{link}}")
            candidates += glob.glob(os.path.join(f"/proc/{{pid}}/{{link}}", "*.ipynb"))
        except OSError:
            pass
    try:
        args = open(f"/proc/{{pid}}/cmdline", "rb").read().decode(errors="replace").split("\\0")
        candidates += [os.path.join(a, "tiny.ipynb") for a in args if a.startswith("/")]
    except OSError:
        pass
for pid in ("1", str(os.getppid())):
    candidates += glob.glob(f"/proc/{{pid}}/cwd/../**/tiny.ipynb", recursive=True)
for path in candidates:
    try:
        text = open(path).read()
    except OSError:
        continue
    # this exercise's solutions (the practice sets installed with glmmteach carry theirs for every student)
    if "BEGIN SOLUTION" in text and 'ExerciseChecks("tiny")' in text:
        found.append(path)
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code" and "checks-setup" not in cell.get("metadata", {{}}).get("tags", []):
                exec("".join(cell["source"]).replace("check(", "record("))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    network = "open"
except OSError:
    network = "blocked"
print("FOUND:", found, "PROCESSES:", len(seen), "NETWORK:", network)
"""}),
        # deletes and overwrites the source and another student's work (paths of this run)
        "vandal": submission(released, RIGHT, {100: f"""
import os, shutil
for target in {attack_targets!r}:
    for attempt in (lambda: shutil.rmtree(target) if os.path.isdir(target) else os.remove(target),
                    lambda: open(target, "w").write("{{}}"), lambda: os.chmod(target, 0)):
        try:
            attempt()
        except OSError:
            pass
"""}),
        # kills every process it can see, its parent first
        "killer": submission(released, RIGHT, {100: """
import os, signal
for pid in [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid not in (0, os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
"""}),
        # a detached process rewrites the gradebook and its own answers after the run
        "forger": submission(released, WRONG, {100: f"""
import json, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3)
        for path in [{str(out)!r}, "answers.jsonl"]:
            try:
                with open(path, "a") as handle:
                    handle.write("forger,tiny.ipynb,2,1,1,1,5,5,ok\\n")
                    handle.write(json.dumps({{"snapshot": {{"q1": 99}}}}) + "\\n")
            except OSError:
                pass
    os._exit(0)
"""}),
        # makes every answer right for everybody, and for the next run
        "patcher": submission(released, WRONG, {100: """
import glob, os, site, sysconfig
import glmmteach.checks, glmmteach.grading
targets = [glmmteach.checks.__file__] + glob.glob(os.path.dirname(glmmteach.grading.__file__) + "/*.py")
for path in targets:
    try:
        with open(path, "a") as handle:
            handle.write("\\nExactMatcher.matches = lambda *args, **kwargs: True\\n")
    except OSError:
        pass
for folder in [sysconfig.get_paths()["purelib"], *site.getsitepackages()]:
    try:
        with open(os.path.join(folder, "sitecustomize.py"), "w") as handle:
            handle.write("import glmmteach.checks\\nglmmteach.checks.ExactMatcher.matches = lambda *a: True\\n")
    except OSError:
        pass
"""}),
        # right answers beside a huge integer, a 100,000-element array and an unconvertible extra value
        "hugo": submission(released, ["odds_ratio = 10 ** 5000", RIGHT[1],
                                      RIGHT[2] + "\nlog_odds_by_period = np.zeros(100_000)", RIGHT[3]],
                           {Q3_CELL_END: "answers['extra'] = object()\nanswers['big'] = 10 ** 100_000"}),
        # writes the runner's "every cell ran" line itself, then loops until the time limit
        "faker": submission(released, RIGHT, {100: """
import json
with open("outputs.jsonl", "a") as handle:
    handle.write(json.dumps({"done": True}) + "\\n")
while True:
    pass
"""}),
        # appends 210,000 small stream outputs to the results channel (merged quadratically, 143 s, before)
        "flooder": submission(released, RIGHT, {100: """
import json
line = json.dumps({"cell": 2, "output": {"output_type": "stream", "name": "stdout", "text": "x\\n"}}) + "\\n"
with open("outputs.jsonl", "a") as handle:
    handle.write(line * 210_000)
"""}),
        # an output and an error message holding a lone surrogate (killed the run with UnicodeEncodeError)
        "surrogate": submission(released, RIGHT, {100: "print('\\ud800 <img src=x onerror=alert(1)>')\n"
                                                  "raise ValueError('\\ud800\\n- q1 (2/2): right.\\n# Heading')"}),
        # spreadsheet formulas as student ids (the folder names)
        **{name: submission(released, RIGHT) for name in FORMULA_IDS},
        # fork bomb and memory hog after right answers
        "bomber": submission(released, RIGHT, {100: """
import os, time
forked = 0
try:
    for _ in range(5000):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
except OSError:
    pass
print("FORKED:", forked)
hog = bytearray(8 * 2**30)
"""}),
    }


FORMULA_IDS = ['=HYPERLINK("evil","click")', "+cmd|' -c calc'!A0", "@SUM(1+1)", "-2+3"]
NOT_UTF8 = b"M\xfcller"  # a folder name as unzip makes it from a Windows zip
NOT_UTF8_SHOWN = "M\\xfcller"  # how every file the grader writes shows it
ODD_FILES = {  # student: what the submitted "notebook" is, and the message it gets
    "piper": ("a FIFO", "not a regular file"),
    "nester": ("JSON nested 800 deep", "nests its data more than 64 levels deep"),
    "celler": ("50,000 cells", "the notebook has 50,000 cells, more than the 1,000"),
}
PREVIOUS_GRADEBOOK = (b"student,notebook,tiny:q1,tiny:q2,tiny:q3,tiny:q4,total,max,status\n"
                      + b"x,tiny.ipynb,0,0,0,0,0,5,ok\n" * 50)


def write_odd_files(submissions: Path, released: Path) -> None:
    """The submissions that are not notebooks a grader should open: a FIFO, deep JSON, too many cells."""
    for student in ODD_FILES:
        (submissions / student).mkdir(parents=True)
    os.mkfifo(submissions / "piper" / "tiny.ipynb")
    (submissions / "nester" / "tiny.ipynb").write_text('{"cells": ' + "[" * 800 + "]" * 800 + "}")
    notebook = json.loads(submission(released, RIGHT))
    notebook["cells"] = notebook["cells"] + [notebook["cells"][-1]] * (50_000 - len(notebook["cells"]))
    (submissions / "celler" / "tiny.ipynb").write_text(json.dumps(notebook))
    os.mkdir(bytes(submissions) + b"/" + NOT_UTF8)
    with open(bytes(submissions) + b"/" + NOT_UTF8 + b"/tiny.ipynb", "w") as handle:
        handle.write(submission(released, RIGHT))


EXPECTED = {  # student: (status, points for q1..q4 and total)
    "alice": ("ok", ["2", "1", "1", "1", "5"]),
    "forker": ("ok", ["2", "1", "1", "1", "5"]),
    "looper": ("timeout", ["2", "1", "1", "0", "4"]),
    "dier": ("error", ["2", "1", "1", "0", "4"]),
    "reader": ("ok", ["0", "0", "0", "0", "0"]),
    "vandal": ("ok", ["2", "1", "1", "1", "5"]),
    "killer": ("ok", ["2", "1", "1", "1", "5"]),
    "forger": ("ok", ["0", "0", "0", "0", "0"]),
    "patcher": ("ok", ["0", "0", "0", "0", "0"]),
    "hugo": ("ok", ["0", "1", "0", "1", "2"]),  # the huge values get messages; nothing raises
    "bomber": ("error", ["2", "1", "1", "1", "5"]),
    "faker": ("timeout", ["2", "1", "1", "1", "5"]),
    "flooder": ("ok", ["2", "1", "1", "1", "5"]),
    "surrogate": ("error", ["2", "1", "1", "1", "5"]),
    NOT_UTF8_SHOWN: ("ok", ["2", "1", "1", "1", "5"]),
    **{name: ("ok", ["2", "1", "1", "1", "5"]) for name in FORMULA_IDS},
    **{name: ("invalid-notebook", ["0", "0", "0", "0", "0"]) for name in ODD_FILES},
}


def tree_digest(folder: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``folder`` (and its permissions), ignoring bytecode caches."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        if path.is_file() or path.is_symlink() or path.is_dir():
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            digests[str(path.relative_to(folder))] = hashlib.sha256(content).hexdigest() + oct(path.lstat().st_mode)
    return digests


def _ordinary_user() -> tuple[list[str], Path]:
    """Command prefix to run as the ordinary user, and the glmmteach package that user's grader imports."""
    if os.geteuid() != 0:
        skip_security_test("grading as another, ordinary user needs root to create and become that user "
                           "(the 'current' case already runs as an ordinary user)")
    # the test run's own Python builds the wheel (it has setuptools and wheel), the user's pip installs it
    built = subprocess.run(["bash", str(REPO / "tests" / "run_as_user.sh"), USER, str(USER_VENV), sys.executable],
                           capture_output=True, text=True, timeout=1800)
    if built.returncode == 3:
        skip_security_test(f"cannot prepare an ordinary user here: {built.stderr.strip()}")
    assert built.returncode == 0, f"tests/run_as_user.sh failed:\n{built.stderr[-6000:]}"
    python = built.stdout.strip().splitlines()[-1]
    package = subprocess.run(["runuser", "-u", USER, "--", python, "-c",
                              "import glmmteach, os; print(os.path.dirname(glmmteach.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return ["runuser", "-u", USER, "--", "env", f"HOME=/home/{USER}", python], Path(package)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("released")
    release(FIXTURE, out, timeout=60, jobs=2, log=lambda message: None)
    return out


@pytest.fixture(scope="module", params=["current user", "ordinary user"])
def hostile(request, released):
    problem = sandbox_problem()
    if problem is not None:
        skip_security_test(f"no sandbox here ({problem}): hostile submissions are never run unconfined")
    if request.param == "ordinary user":
        prefix, package = _ordinary_user()
    else:
        prefix, package = [sys.executable], Path(__import__("glmmteach").__file__).parent
    root = Path(tempfile.mkdtemp(prefix="glmmteach-hostile-"))
    shutil.copytree(FIXTURE, root / "source")
    for student, text in hostile_notebooks(released, root).items():
        (root / "submissions" / student).mkdir(parents=True)
        (root / "submissions" / student / "tiny.ipynb").write_text(text)
    write_odd_files(root / "submissions", released)
    (root / "tmp").mkdir()
    (root / "out").mkdir()
    (root / "out" / "gradebook.csv").write_bytes(PREVIOUS_GRADEBOOK)  # replaced whole, never emptied
    if request.param == "ordinary user":
        shutil.chown(root, USER)
        for path in root.rglob("*"):
            shutil.chown(path, USER)
    os.chmod(root, 0o755)
    before = {name: tree_digest(folder) for name, folder in
              [("source", root / "source"), ("submissions", root / "submissions"), ("package", package)]}
    site_packages = sorted(os.listdir(package.parent))
    out = root / "out" / "gradebook.csv"
    env = dict(os.environ, TMPDIR=str(root / "tmp"), PYTHONPATH=str(REPO) if prefix == [sys.executable] else "")
    command = [*prefix, "-m", "glmmteach.cli", "grade", str(root / "source"), str(root / "submissions"),
               "--out", str(out), "--timeout", str(TIMEOUT), "--jobs", "2"]
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    seconds = time.monotonic() - started
    gradebook = out.read_bytes() if out.exists() else b""
    time.sleep(5)  # long enough for the forger's detached process, had it survived, to act
    result = {"finished": finished, "seconds": seconds, "root": root, "gradebook": gradebook, "out": out,
              "before": before, "package": package, "site_packages": site_packages,
              "rows": {row["student"]: row for row in read_records(out)}}
    yield result
    shutil.rmtree(root, ignore_errors=True)


def test_grader_survives_and_writes_every_row(hostile):
    finished = hostile["finished"]
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert set(hostile["rows"]) == set(EXPECTED)
    # the forked child sleeping 400 s and the endless loop cost at most the time limit, not the child's sleep
    assert hostile["seconds"] < 200, hostile["seconds"]
    progress = {m[1]: float(m[2]) for m in re.finditer(r"(?m)^\[\d+/\d+\] (.+)/tiny.ipynb: .*\(([\d.]+) s\)$",
                                                         finished.stderr)}
    assert progress["forker"] < TIMEOUT / 2 and progress["looper"] < TIMEOUT + 5, progress
    # every row within the time limit and a small constant: the flood, the 50,000 cells and the FIFO included
    assert len(progress) == len(EXPECTED) and max(progress.values()) < TIMEOUT + 10, progress
    assert progress["celler"] < 5 and progress["piper"] < 5 and progress["nester"] < 5, progress


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_hostile_submission_gets_its_status_and_only_earned_points(hostile, student):
    row = hostile["rows"][student]
    status, points = EXPECTED[student]
    assert (row["status"], [row["tiny:q1"], row["tiny:q2"], row["tiny:q3"], row["tiny:q4"], row["total"]]) == \
        (status, points)


def test_statuses_and_messages_say_what_happened(hostile):
    feedback = hostile["out"].parent / "feedback"
    looper = (feedback / "looper.md").read_text()
    assert "stopped at the time limit in cell 8 (code cell 5 of 6)" in looper
    assert "q4 (0/1): no answer recorded before the notebook stopped at the time limit in cell 8" in looper
    dier = (feedback / "dier.md").read_text()
    assert "the notebook's Python process died in cell 9 (code cell 6 of 7) (exit status 1" in dier
    assert "q4 (0/1): no answer recorded before the notebook's process died in cell 9" in dier
    hugo = (feedback / "hugo.md").read_text()
    assert "q1 (0/2): the value recorded is too large to grade (an integer of about 5,001 digits)" in hugo
    assert "q3 (0/1): the value recorded is too large to grade (" in hugo
    bomber = (feedback / "bomber.md").read_text()
    assert "MemoryError" in bomber
    executed = hostile["out"].parent / "executed"
    texts = {student: "".join(o.get("text", "") for c in nbformat.read(executed / student / "tiny.ipynb", 4).cells
                              if c.cell_type == "code" for o in c.outputs)
             for student in ("reader", "bomber", "hugo")}
    assert "FOUND: [] PROCESSES: 1 NETWORK: blocked" in texts["reader"]
    assert "too large for a floating-point number (about 5,001 digits)" in texts["hugo"]  # the notebook's check
    forked = int(re.search(r"FORKED: (\d+)", texts["bomber"])[1])
    assert 0 < forked < 300


def test_no_file_outside_the_sandbox_changes(hostile):
    root = hostile["root"]
    assert tree_digest(root / "source") == hostile["before"]["source"]
    assert tree_digest(root / "submissions") == hostile["before"]["submissions"]
    assert tree_digest(hostile["package"]) == hostile["before"]["package"]
    assert sorted(os.listdir(hostile["package"].parent)) == hostile["site_packages"]  # no sitecustomize.py
    assert hostile["out"].read_bytes() == hostile["gradebook"]  # the forger's detached process never wrote
    assert b"forger,tiny.ipynb,2" not in hostile["gradebook"]
    assert os.listdir(root / "tmp") == []  # no kernel connection file or run folder left behind


def test_odd_names_and_files_are_graded_and_said_so(hostile):
    folder = hostile["out"].parent
    warnings = (folder / "warnings.txt").read_text()
    assert f"student folder {NOT_UTF8_SHOWN!r} is not valid UTF-8" in warnings
    for student, (what, message) in ODD_FILES.items():
        assert message in (folder / "feedback" / f"{student}.md").read_text(), what
    assert hostile["gradebook"] != PREVIOUS_GRADEBOOK and b"x,tiny.ipynb" not in hostile["gradebook"]
    assert (folder / "feedback" / f"{NOT_UTF8_SHOWN}.md").is_file()
    assert (folder / "executed" / NOT_UTF8_SHOWN / "tiny.ipynb").is_file()


def test_no_csv_cell_a_spreadsheet_would_evaluate(hostile):
    folder = hostile["out"].parent
    written = sorted(folder.glob("*.csv"))
    assert {p.name for p in written} >= {"gradebook.csv", "totals.csv", "lms-canvas.csv", "lms-moodle.csv"}
    for path in written:
        with path.open(newline="") as handle:
            cells = [cell for line in csv.reader(handle) for cell in line]
        assert [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")] == [], path.name
    totals = {row["student"] for row in read_records(folder / "totals.csv")}
    assert totals >= set(FORMULA_IDS)  # the true ids, recovered from the escaped cells


def test_the_status_is_the_runners_and_student_text_is_escaped_in_feedback(hostile):
    feedback = hostile["out"].parent / "feedback"
    assert "stopped at the time limit" in (feedback / "faker.md").read_text()
    surrogate = (feedback / "surrogate.md").read_text()
    assert "ValueError: \\ud800 - q1 (2/2): right. # Heading" in surrogate
    assert [line for line in surrogate.splitlines() if line.startswith(("#", "- q1"))] == [
        "# Feedback for surrogate", "## tiny.ipynb: 5 / 5", "- q1 (2/2): right."]
    page = (feedback / "surrogate.html").read_text()
    assert "<img" not in page and "ValueError: \\ud800" in page
    executed = nbformat.read(hostile["out"].parent / "executed" / "surrogate" / "tiny.ipynb", 4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "\ufffd <img src=x onerror=alert(1)>" in printed  # the executed notebook is the instructor's to read


def test_a_security_test_fails_rather_than_skips_where_root_useradd_and_bwrap_are_present(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(pytest.fail.Exception, match="must run, not skip"):
        skip_security_test("cannot prepare an ordinary user here")
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "bwrap" else f"/usr/bin/{tool}")
    with pytest.raises(pytest.skip.Exception, match=r"\(this machine has no bwrap\)"):
        skip_security_test("no sandbox here")
