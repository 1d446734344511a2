r"""Release exercise notebooks to students and grade their submissions, without a server or database.

**Instructor source notebooks** (``exercises/*.ipynb``) mark their cells:

* the cell tagged ``checks-setup`` creates ``answers``, ``record`` and ``check``
  (:class:`glmmteach.checks.ExerciseChecks`); release and grading rewrite it;
* a cell whose metadata holds ``{"glmmteach": {"question": {...}}}`` defines a question (fields of
  :class:`glmmteach.checks.QuestionSpec`: ``id``, ``points``, ``kind``, ``shape``, ``rtol``, ``atol``,
  ``options``, ``labels``);
* cells tagged ``solution`` hold solutions: in a code cell the lines between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (or the whole cell, without markers) are replaced by ``raise NotImplementedError()``;
  a markdown cell tagged ``solution`` (e.g. the book's ``{solution-start}`` / ``{solution-end}`` gates) is
  dropped.

**Key.** The answer key is what the solution notebook records when run (no value is typed in by hand). It is
computed by executing the source in a kernel, and lives only in the grader's memory.

**Release** runs every source notebook twice: once with form checks only, to compute the key and check that
every question is answered with a value of the right kind and shape; then with the public (hashed) key of the
student notebook, to check that every question is ``check``-ed and that each check accepts the solution. It
refuses (:class:`ReleaseError`) unless all of that holds and the student notebook's JSON contains neither a
solution line nor an answer value.

**Grading** runs each submitted notebook in a fresh kernel, in its own temporary folder, through a separate
worker process with a time limit. Cells run with ``allow_errors`` so that answers recorded before and after a
failing cell still count (status ``error``, or ``incomplete`` when the only errors are the unanswered
``NotImplementedError`` placeholders). A cell appended by the grader prints the ``answers`` dict as JSON; the
grader parses it as untrusted data (numbers, strings, lists only) and scores it in its own process against
the key, so replacing ``check`` or writing files earns nothing. Outputs beyond ``MAX_OUTPUT_BYTES`` are
dropped; the time limit includes the kernel's start.

**Sandbox.** When the grader runs as root (and ``unshare`` works), each kernel runs

* under an unused user id of its own (``SANDBOX_UID_BASE + n``): files outside its folder are read-only to it,
  other kernels are out of reach, and every process it leaves behind is killed afterwards;
* in a private mount namespace whose file system shows only the system folders, the Python installation, the
  glmmteach package and data, and its own folder; every other top-level folder (``/tmp``, ``/home``,
  ``/root``, ``/work``, ...) is an empty tmpfs, and the source and submissions folders are covered even if
  they lie under a system folder. So no copy of a solution, nor another student's work, is readable;
* with a private ``/proc`` (``hidepid=2``: it sees only its own processes, not the grader's command line), a
  private ``/dev/shm``, and limits on processes, file size, memory and CPU time.

Without root, kernels run as the grader's user in a fresh temporary folder with a minimal environment, and
the grader warns that they are not confined.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import csv
import fcntl
import io
import json
import math
import os
import platform
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from .checks import (
    ExactMatcher,
    Feedback,
    QuestionSpec,
    diagnose,
    make_public_key,
    solution_range_problem,
    validate_answer_form,
)

SOLUTION_TAG = "solution"
SETUP_TAG = "checks-setup"
META = "glmmteach"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"
ANSWERS_MARKER = "GLMMTEACH-ANSWERS:"
MAX_ANSWERS_TEXT = 2_000_000
MAX_OUTPUT_BYTES = 20 * 2**20
EXTRACT_SECONDS = 20
STARTUP_SECONDS = 30
KERNEL_MEMORY_BYTES = 6 * 2**30  # address-space limit of a sandboxed kernel
SANDBOX_UID_BASE = 61_000  # sandbox kernels run as uids from here on, skipping any that has an account
UID_LOCK_DIR = Path("/run/glmmteach-sandbox-uids")

EXTRACT_CODE = textwrap.dedent(f"""\
    import json as _gt_json
    from glmmteach.checks import answers_to_json as _gt_answers_to_json
    _gt_results = getattr(globals().get("checks"), "results", None)
    print({ANSWERS_MARKER!r} + _gt_json.dumps({{
        "answers": _gt_answers_to_json(globals().get("answers")),
        "results": {{str(k): bool(v) for k, v in _gt_results.items()}} if isinstance(_gt_results, dict) else {{}},
    }}))
    """)

SETUP_CODE = textwrap.dedent("""\
    from glmmteach.checks import ExerciseChecks

    checks = ExerciseChecks.{constructor}({arguments})
    answers, record, check = checks.answers, checks.record, checks.check
    """)


class GradingError(RuntimeError):
    """An exercise source, a release or a grading run cannot proceed; the message says why."""


class ReleaseError(GradingError):
    """The solution notebooks do not pass their own checks, so nothing is released."""


# ---------------------------------------------------------------------------------------------------------
# Source notebooks


@dataclass
class Exercise:
    """One instructor source notebook and its questions."""

    path: Path
    notebook: NotebookNode
    specs: list[QuestionSpec]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def data_files(self) -> list[Path]:
        """Files the notebook reads from its own folder (notebook metadata ``glmmteach.data``)."""
        names = self.notebook.metadata.get(META, {}).get("data", [])
        return [self.path.parent / name for name in names]


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def load_exercise(path: Path) -> Exercise:
    """Read a source notebook and its question specs, naming the problem on bad input."""
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported the same way
        raise GradingError(f"{path}: not a valid notebook ({exc})") from exc
    specs: list[QuestionSpec] = []
    for index, cell in enumerate(notebook.cells):
        question = cell.get("metadata", {}).get(META, {}).get("question")
        if question is not None:
            try:
                specs.append(QuestionSpec.from_dict(question))
            except ValueError as exc:
                raise GradingError(f"{path}, cell {index}: {exc}") from exc
    ids = [s.id for s in specs]
    if not specs:
        raise GradingError(f"{path}: no cell defines a question (metadata glmmteach.question)")
    if len(set(ids)) != len(ids):
        raise GradingError(f"{path}: question ids repeat: {ids}")
    setup_cells = [c for c in notebook.cells if SETUP_TAG in _tags(c)]
    if len(setup_cells) != 1 or setup_cells[0].cell_type != "code":
        raise GradingError(f"{path}: needs exactly one code cell tagged {SETUP_TAG!r}")
    exercise = Exercise(path, notebook, specs)
    missing = [str(p) for p in exercise.data_files if not p.is_file()]
    if missing:
        raise GradingError(f"{path}: data files listed in metadata glmmteach.data not found: {missing}")
    return exercise


def load_exercises(source_dir: Path) -> list[Exercise]:
    """All source notebooks of a folder, sorted by file name."""
    if not source_dir.is_dir():
        raise GradingError(f"source folder {source_dir} does not exist")
    paths = sorted(source_dir.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"no .ipynb notebooks in {source_dir}")
    return [load_exercise(p) for p in paths]


def _setup_source(exercise: Exercise, key: dict[str, Any] | None) -> str:
    if key is None:
        specs = json.dumps([s.to_dict() for s in exercise.specs])
        return SETUP_CODE.format(constructor="from_specs", arguments=f"{exercise.name!r}, {specs!r}").rstrip()
    return SETUP_CODE.format(constructor="from_key", arguments=repr(json.dumps(key))).rstrip()


def strip_solution(source: str) -> str:
    """Replace the solution lines of a code cell by the placeholder (keeping their indentation)."""
    if BEGIN_SOLUTION not in source:
        return PLACEHOLDER
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN_SOLUTION):
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + placeholder for placeholder in PLACEHOLDER.splitlines())
            inside = True
        elif stripped.startswith(END_SOLUTION):
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GradingError(f"{BEGIN_SOLUTION!r} without {END_SOLUTION!r} in:\n{source}")
    return "\n".join(out)


_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{exercise\}(?P<title>[^\n]*)\n(?P<body>.*?)^\1\s*$", re.S | re.M)


def _plain_markdown(source: str) -> str:
    """Turn the book's ``{exercise}`` directives into plain Markdown for Jupyter."""

    def replace(match: re.Match[str]) -> str:
        body = "\n".join(line for line in match["body"].splitlines() if not re.match(r"^:\w[\w-]*:", line))
        title = match["title"].strip()
        return f"**Exercise{': ' + title if title else ''}.** " + body.strip() + "\n"

    return _DIRECTIVE.sub(replace, source)


def _with_setup(exercise: Exercise, key: dict[str, Any] | None, *, keep_solutions: bool) -> NotebookNode:
    notebook = copy.deepcopy(exercise.notebook)
    cells = []
    for cell in notebook.cells:
        tags = _tags(cell)
        if SETUP_TAG in tags:
            cell.source = _setup_source(exercise, key)
        elif SOLUTION_TAG in tags and not keep_solutions:
            if cell.cell_type != "code":
                continue
            cell.source = strip_solution(cell.source)
        if not keep_solutions:
            cell.metadata.pop(META, None)
            if tags:
                cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG]
                if not cell.metadata["tags"]:
                    del cell.metadata["tags"]
            if cell.cell_type == "markdown":
                cell.source = _plain_markdown(cell.source)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    notebook.cells = cells
    if not keep_solutions:
        notebook.metadata.pop(META, None)
    return notebook


def student_notebook(exercise: Exercise, key: dict[str, Any]) -> NotebookNode:
    """The released notebook: solutions replaced by placeholders, outputs cleared, instructor metadata gone."""
    return _with_setup(exercise, key, keep_solutions=False)


def solution_notebook(exercise: Exercise, key: dict[str, Any] | None = None) -> NotebookNode:
    """The source with its solutions, set up with form checks (no key) or with a public key."""
    return _with_setup(exercise, key, keep_solutions=True)


# ---------------------------------------------------------------------------------------------------------
# Executing a notebook: a worker process drives one kernel.


@dataclass
class Sandbox:
    """How to confine a student's kernel: run it as ``uid`` with ``hidden`` folders masked."""

    uid: int
    hidden: list[str]


@dataclass
class Execution:
    """What running one notebook produced."""

    status: str  # ok | incomplete | error | timeout
    answers: dict[str, Any] = field(default_factory=dict)
    results: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: NotebookNode | None = None


# Runs (as root) inside `unshare --mount`, before any student code: hands the kernel its connection file, then
# rebuilds the filesystem view. Every top-level folder that is not part of the system (/tmp, /home, /root,
# /work, ...) is replaced by an empty tmpfs, and only what the kernel needs is mounted back at its own path: the
# Python installation, the glmmteach package, its data and the kernel's own folder. So no copy of a solution,
# another student's folder or the grader's files is visible, wherever it lies. Then it drops to the sandbox uid
# and becomes the kernel. No glmmteach imports here.
_LAUNCHER = textwrap.dedent("""\
    import json, os, resource, shutil, subprocess, sys, tempfile
    config, connection, extra = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
    uid, workdir = config["uid"], config["workdir"]
    local = os.path.join(workdir, ".kernel-connection.json")
    shutil.copyfile(connection, local)
    os.chown(local, uid, uid)
    os.chmod(local, 0o600)
    def mount(*args):
        subprocess.run(["mount", *args], check=True)
    stage_root = tempfile.mkdtemp(prefix="glmmteach-stage-", dir=config["stage"])
    staged = []
    for number, path in enumerate(config["expose"]):
        stage = os.path.join(stage_root, str(number))
        os.mkdir(stage)
        mount("--rbind", path, stage)
        staged.append((path, stage))
    for root in config["mask"]:
        mount("-t", "tmpfs", "-o", "mode=755,size=64k", "glmmteach-masked", root)
    for path, stage in staged:
        os.makedirs(path, exist_ok=True)
        mount("--move", stage, path)
        os.rmdir(stage)
    os.rmdir(stage_root)
    if config["stage"] == "/dev/shm":  # a private /dev/shm: no channel to other kernels
        mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "glmmteach-shm", "/dev/shm")
    for path in config["hidden"]:
        if os.path.isdir(path):
            mount("-t", "tmpfs", "-o", "ro,size=4k,mode=555", "glmmteach-hidden", path)
    if config["private_proc"]:  # other users' processes (the grader's command line) become invisible
        mount("-t", "proc", "-o", "hidepid=2", "proc", "/proc")
    for limit, value in config["limits"].items():
        resource.setrlimit(getattr(resource, limit), (value, value))
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.chdir(workdir)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", local, *extra])
    """)
SYSTEM_FOLDERS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                  "usr", "var"}


def _sandbox_view(workdir: Path) -> dict[str, Any]:
    """Which folders a sandboxed kernel sees: the masked top-level folders and the paths mounted back."""
    import importlib.util

    package = Path(__file__).resolve().parent
    expose = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, package, workdir)}
    expose.add(os.path.dirname(os.path.realpath(sys.executable)))
    data = importlib.util.find_spec("glmmteach.data")
    if data is not None and data.submodule_search_locations:
        expose |= {os.path.realpath(p) for p in data.submodule_search_locations}
    expose = {p for p in expose if not any(p != q and Path(p).is_relative_to(q) for q in expose)}
    mask = [f"/{name}" for name in sorted(os.listdir("/"))
            if name not in SYSTEM_FOLDERS and os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]
    mask += [path for path in ("/var/tmp", "/var/lib", "/run/user") if os.path.isdir(path)]
    stage = "/dev/shm" if os.path.isdir("/dev/shm") else "/run"
    # Since Linux 5.8 every proc mount has its own options; before, hidepid would change the host's /proc.
    release = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
    return {"expose": sorted(expose), "mask": mask, "stage": stage, "private_proc": release >= (5, 8)}


def _kernel_env(workdir: Path) -> dict[str, str]:
    """A small environment for a kernel: none of the grader's variables, home in its own folder."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": package_parent,
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    return env


def _collect_errors(notebook: NotebookNode) -> list[str]:
    errors = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{output.get('ename', '?')}: {str(output.get('evalue', ''))[:200]}")
    return errors


def _parse_extracted(outputs: Sequence[Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Answers and check results from the extraction cell's output, as untrusted JSON data."""
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"
                   and o.get("name") == "stdout")[:MAX_ANSWERS_TEXT]
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith(ANSWERS_MARKER)), None)
    if line is None:
        return {}, {}

    def reject_constant(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    try:
        payload = json.loads(line[len(ANSWERS_MARKER):], parse_constant=reject_constant)
    except (ValueError, RecursionError):
        return {}, {}
    if not isinstance(payload, dict):
        return {}, {}
    answers = payload.get("answers")
    results = payload.get("results")
    clean_answers = {k: v for k, v in answers.items() if isinstance(k, str) and _plain_json(v, depth=0)} \
        if isinstance(answers, dict) else {}
    clean_results = {k: v for k, v in results.items() if isinstance(k, str) and isinstance(v, bool)} \
        if isinstance(results, dict) else {}
    return clean_answers, clean_results


def _plain_json(value: Any, depth: int) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= 10_000
    if isinstance(value, list) and depth < 8:
        return all(_plain_json(v, depth + 1) for v in value)
    return False


def _execute(request: dict[str, Any]) -> dict[str, Any]:
    """Run one notebook (in the worker process) and return a JSON-able summary."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    notebook = nbformat.read(request["notebook"], as_version=4)
    workdir = Path(request["workdir"])
    sandbox = request.get("sandbox")
    if sandbox:
        spec_dir = Path(request["private"]) / "kernels" / "glmmteach-sandbox"
        spec_dir.mkdir(parents=True)
        limits = {"RLIMIT_NPROC": 512, "RLIMIT_FSIZE": 512 * 2**20, "RLIMIT_AS": KERNEL_MEMORY_BYTES,
                  "RLIMIT_CPU": int(request["timeout"]) + STARTUP_SECONDS + EXTRACT_SECONDS}
        config = json.dumps({"uid": sandbox["uid"], "hidden": sandbox["hidden"], "workdir": str(workdir),
                             "limits": limits, **_sandbox_view(workdir)})
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, "-c", _LAUNCHER, config, "{connection_file}"]
        (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python",
                                                          "display_name": "glmmteach sandbox"}))
        specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
        manager = AsyncKernelManager(kernel_name="glmmteach-sandbox", kernel_spec_manager=specs)
    else:
        manager = AsyncKernelManager(kernel_name="python3")

    class BoundedClient(NotebookClient):
        """Keeps at most MAX_OUTPUT_BYTES of a submission's outputs, so a flood of prints cannot exhaust memory."""

        output_bytes = 0

        def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
                   cell_index: int) -> NotebookNode | None:
            self.output_bytes += len(json.dumps(msg.get("content", {}), default=str))
            if self.output_bytes > MAX_OUTPUT_BYTES:
                return None
            return super().output(outs, msg, display_id, cell_index)

    extract = nbformat.v4.new_code_cell(EXTRACT_CODE)
    notebook.cells.append(extract)
    client = BoundedClient(notebook, km=manager, allow_errors=True, interrupt_on_timeout=True,
                           startup_timeout=60, record_timing=False,
                           resources={"metadata": {"path": str(workdir)}})
    deadline = time.monotonic() + request["timeout"]
    status = "ok"
    notes: list[str] = []
    answers: dict[str, Any] = {}
    results: dict[str, bool] = {}
    with client.setup_kernel(env=_kernel_env(workdir), cwd=str(workdir)):
        process = getattr(manager.provisioner, "process", None)
        if process is not None:  # lets the grader kill the kernel if this worker has to be killed
            (Path(request["private"]) / "kernel.pid").write_text(str(process.pid))
        for index, cell in enumerate(notebook.cells[:-1]):
            if cell.cell_type != "code":
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = "timeout"
                break
            client.timeout = max(1, math.ceil(remaining))
            try:
                client.execute_cell(cell, index)
            except (CellTimeoutError, DeadKernelError) as exc:
                status = "timeout" if time.monotonic() >= deadline else "error"
                notes.append("the kernel died" if isinstance(exc, DeadKernelError) else "a cell overran the limit")
                break
            if time.monotonic() >= deadline:
                status = "timeout"
                break
        truncated = client.output_bytes > MAX_OUTPUT_BYTES
        if status != "error":
            client.output_bytes = 0  # the answers line always gets through
            client.timeout = EXTRACT_SECONDS
            try:
                client.execute_cell(extract, len(notebook.cells) - 1)
                answers, results = _parse_extracted(extract.outputs)
            except (CellTimeoutError, DeadKernelError):
                pass
    notebook.cells.pop()
    errors = _collect_errors(notebook)
    if status == "ok" and errors:
        status = "incomplete" if all(e.startswith("NotImplementedError") for e in errors) else "error"
    if truncated:
        notes.append(f"outputs beyond {MAX_OUTPUT_BYTES // 2**20} MB were dropped")
    errors += notes
    return {"status": status, "answers": answers, "results": results, "errors": errors,
            "notebook": nbformat.writes(notebook)}


def _worker_main(request_path: str) -> None:
    """Entry point of the worker process: ``python -c "...; _worker_main(path)"``."""
    request = json.loads(Path(request_path).read_text())
    try:
        summary = _execute(request)
    except Exception as exc:  # noqa: BLE001 - reported as the notebook's status, never kills the run
        summary = {"status": "error", "answers": {}, "results": {}, "errors": [f"grader: {exc!r}"],
                   "notebook": None}
    Path(request["result"]).write_text(json.dumps(summary))


def _kill_group(pid: int) -> None:
    """Kill a process group (a worker or a kernel, both leaders of their own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (what a sandboxed kernel may have left behind)."""
    for _ in range(5):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        if not found:
            return
        time.sleep(0.1)


def sandbox_available() -> bool:
    """True when kernels can run under their own uid in a private mount namespace (root, ``unshare``)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--", "true"], capture_output=True)
    return probe.returncode == 0


def execute_notebook(notebook: NotebookNode, *, timeout: float, data_files: Iterable[Path] = (),
                     sandbox: Sandbox | None = None) -> Execution:
    """Run a notebook in a fresh kernel in its own temporary folder, in a worker process, within ``timeout``.

    The folder holds a copy of the notebook and of ``data_files`` only. The worker is killed (and, in a
    sandbox, every process of the sandbox uid) if it overruns the limit by more than the extraction grace.
    """
    started = time.monotonic()
    private = Path(tempfile.mkdtemp(prefix="glmmteach-grader-"))
    workdir = Path(tempfile.mkdtemp(prefix="glmmteach-run-"))
    try:
        nbformat.write(notebook, private / "notebook.ipynb")
        shutil.copyfile(private / "notebook.ipynb", workdir / "notebook.ipynb")
        for path in data_files:
            shutil.copyfile(path, workdir / path.name)
        if sandbox is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, sandbox.uid, sandbox.uid)
            os.chmod(workdir, 0o700)
        request = {"notebook": str(private / "notebook.ipynb"), "workdir": str(workdir),
                   "private": str(private), "result": str(private / "result.json"), "timeout": timeout,
                   "sandbox": None if sandbox is None else {"uid": sandbox.uid, "hidden": sandbox.hidden}}
        (private / "request.json").write_text(json.dumps(request))
        code = f"from glmmteach.grading import _worker_main; _worker_main({str(private / 'request.json')!r})"
        worker_env = dict(os.environ, PYTHONPATH=_kernel_env(workdir)["PYTHONPATH"])
        worker = subprocess.Popen([sys.executable, "-c", code], env=worker_env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, worker_stderr = worker.communicate(timeout=timeout + EXTRACT_SECONDS + STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(worker.pid)
            worker.communicate()
            return Execution("timeout", errors=["the notebook overran its time limit"],
                             seconds=time.monotonic() - started)
        finally:
            pid_file = private / "kernel.pid"
            if pid_file.is_file():
                _kill_group(int(pid_file.read_text()))
            if sandbox is not None:
                _kill_uid(sandbox.uid)
        result_path = private / "result.json"
        if not result_path.is_file():
            detail = worker_stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            return Execution("error", errors=[f"the grader's worker process failed: {detail[0]}"],
                             seconds=time.monotonic() - started)
        summary = json.loads(result_path.read_text())
        executed = nbformat.reads(summary["notebook"], as_version=4) if summary.get("notebook") else None
        return Execution(summary["status"], summary["answers"], summary["results"], summary["errors"],
                         time.monotonic() - started, executed)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Keys and release


def _answer_problems(exercise: Exercise, answers: dict[str, Any]) -> list[str]:
    problems = []
    for spec in exercise.specs:
        value = answers.get(spec.id)
        problem = validate_answer_form(spec, value) or (
            None if value is None else solution_range_problem(spec, value))
        if problem is None and spec.kind != "choice" and spec.atol == 0:
            flat = value if isinstance(value, list) else [value]
            while flat and isinstance(flat[0], list):
                flat = [x for row in flat for x in row]
            if any(x == 0 for x in flat):
                problem = "the answer has a zero element: give the question an 'atol'"
        if problem is not None:
            problems.append(f"{spec.id}: {problem}")
    return problems


def compute_key(exercise: Exercise, timeout: float = 600) -> dict[str, Any]:
    """Run the solution notebook (form checks only) and return its answers, the key; GradingError if unfit."""
    run = execute_notebook(solution_notebook(exercise), timeout=timeout, data_files=exercise.data_files)
    if run.status != "ok":
        detail = "; ".join(run.errors) or "no details"
        raise ReleaseError(f"{exercise.filename}: the solution notebook did not run cleanly "
                           f"(status {run.status}: {detail})")
    problems = _answer_problems(exercise, run.answers)
    if problems:
        raise ReleaseError(f"{exercise.filename}: the solution's answers fail their checks: "
                           + "; ".join(problems))
    return {s.id: run.answers[s.id] for s in exercise.specs}


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


def solution_lines(exercise: Exercise) -> list[str]:
    """The non-trivial lines of the solution code (what a released notebook must not contain)."""
    lines = []
    for cell in exercise.notebook.cells:
        if SOLUTION_TAG not in _tags(cell) or cell.cell_type != "code":
            continue
        source = cell.source
        if BEGIN_SOLUTION in source:
            source = "\n".join(re.findall(rf"{re.escape(BEGIN_SOLUTION)}.*?\n(.*?){re.escape(END_SOLUTION)}",
                                          source, re.S))
        lines += [ln.strip() for ln in source.splitlines()
                  if ln.strip() and not ln.strip().startswith("#") and len(ln.strip()) > 8]
    return lines


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


# ---------------------------------------------------------------------------------------------------------
# Grading


def score_answer(spec: QuestionSpec, expected: Any, value: Any) -> Feedback:
    """Score one answer (JSON data from a submission) against the key, in the grader's process."""
    return diagnose(spec, value, ExactMatcher(spec, expected))


@dataclass
class GradeRow:
    student: str
    notebook: str
    status: str
    feedback: list[Feedback]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0  # for the progress log only; the gradebook stays repeatable
    executed: NotebookNode | None = None

    @property
    def total(self) -> float:
        return sum(f.points for f in self.feedback)

    @property
    def max_points(self) -> float:
        return sum(f.max_points for f in self.feedback)


def _format_points(points: float) -> str:
    return f"{points:g}"


def grade_submission(exercise: Exercise, key: dict[str, Any], student: str, path: Path, *, timeout: float,
                     sandbox: Sandbox | None) -> GradeRow:
    """Grade one student's notebook; every failure becomes a status, never an exception."""

    def zero(message: str) -> list[Feedback]:
        return [Feedback(s.id, False, message, 0.0, s.points) for s in exercise.specs]

    if path.is_symlink() or path.parent.is_symlink():
        # a link could point at the instructor's source, which the grader (not the kernel) would read
        return GradeRow(student, exercise.filename, "invalid-notebook",
                        zero("the submission is a symbolic link, not a notebook file."), ["symbolic link"])
    if not path.is_file():
        return GradeRow(student, exercise.filename, "missing", zero("not submitted."))
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an invalid notebook
        return GradeRow(student, exercise.filename, "invalid-notebook",
                        zero("the notebook file could not be read as a notebook."), [str(exc)[:300]])
    for cell in notebook.cells:  # outputs in a submission are never trusted; run from a clean slate
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    run = execute_notebook(notebook, timeout=timeout, data_files=exercise.data_files, sandbox=sandbox)
    feedback = [score_answer(s, key[s.id], run.answers.get(s.id)) for s in exercise.specs]
    return GradeRow(student, exercise.filename, run.status, feedback, run.errors, run.seconds, run.notebook)


@contextlib.contextmanager
def claimed_uid() -> Iterator[int]:
    """An unused user id for one sandboxed kernel, held until the kernel is gone.

    A uid is claimed by an exclusive ``flock`` on ``UID_LOCK_DIR/<uid>``, which the system releases if the
    grader dies, so concurrent graders (and parallel jobs) never share a uid, and so never kill each other's
    kernels when they clean up. Ids that belong to an account, or under which a process still runs, are skipped.
    """
    UID_LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    busy = _process_uids()
    for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + 10_000):
        if uid in busy or _has_account(uid):
            continue
        handle = open(UID_LOCK_DIR / str(uid), "w")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield uid
        finally:
            handle.close()
        return
    raise GradingError(f"no free sandbox uid in {SANDBOX_UID_BASE}..{SANDBOX_UID_BASE + 9_999}")


def _process_uids() -> set[int]:
    uids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError):
                uids.add(os.stat(f"/proc/{entry}").st_uid)
    return uids


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def write_gradebook(rows: list[GradeRow], exercises: list[Exercise], path: Path) -> None:
    """CSV with one row per student and notebook; question columns are ``notebook:question``."""
    columns = [f"{ex.name}:{s.id}" for ex in exercises for s in ex.specs]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "notebook", *columns, "total", "max", "status"])
    for row in sorted(rows, key=lambda r: (r.student, r.notebook)):
        stem = Path(row.notebook).stem
        points = {f"{stem}:{f.question}": _format_points(f.points) for f in row.feedback}
        writer.writerow([row.student, row.notebook, *(points.get(c, "") for c in columns),
                         _format_points(row.total), _format_points(row.max_points), row.status])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue())


STATUS_TEXT = {
    "ok": "ran without errors",
    "incomplete": "ran; some questions still raise NotImplementedError",
    "error": "a cell raised an error, or the kernel died; the answers the kernel still held were graded",
    "timeout": "stopped at the time limit; answers recorded before that were graded",
    "missing": "not submitted",
    "invalid-notebook": "the file is not a valid notebook",
}


def write_feedback(rows: list[GradeRow], folder: Path) -> list[Path]:
    """One Markdown feedback file per student."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[GradeRow]] = {}
    for row in sorted(rows, key=lambda r: (r.student, r.notebook)):
        by_student.setdefault(row.student, []).append(row)
    paths = []
    for student, student_rows in by_student.items():
        lines = [f"# Feedback for {student}", ""]
        for row in student_rows:
            lines += [f"## {row.notebook}: {_format_points(row.total)} / {_format_points(row.max_points)}", "",
                      f"Status: {row.status} ({STATUS_TEXT.get(row.status, row.status)}).", ""]
            lines += [f"- {f.question} ({_format_points(f.points)}/{_format_points(f.max_points)}): {f.message}"
                      for f in row.feedback]
            if row.errors:
                distinct = list(dict.fromkeys(row.errors))[:10]
                lines += ["", "Errors:", *(f"- `{e}`" for e in distinct)]
            lines.append("")
        path = folder / f"{student}.md"
        path.write_text("\n".join(lines))
        paths.append(path)
    return paths


def grade(source_dir: Path, submissions_dir: Path, out: Path, *, timeout: float = 300, jobs: int = 1,
          sandbox: bool | None = None, log: Callable[[str], None] = print) -> list[GradeRow]:
    """Grade every student's notebooks.

    Writes the gradebook CSV ``out`` and, beside it, ``feedback/<student>.md`` and the executed notebooks
    ``executed/<student>/<notebook>``.
    """
    exercises = load_exercises(source_dir)
    if not submissions_dir.is_dir():
        raise GradingError(f"submissions folder {submissions_dir} does not exist")
    use_sandbox = sandbox_available() if sandbox is None else sandbox
    if use_sandbox and not sandbox_available():
        raise GradingError("the sandbox needs root and a working `unshare --mount`")
    if not use_sandbox:
        log("warning: kernels are not sandboxed (that needs root and `unshare`): they run as your user and can "
            "read or change anything you can")
    hidden = sorted({str(p.resolve()) for p in (source_dir, submissions_dir)})
    package = Path(__file__).resolve().parent
    if any(package.is_relative_to(h) for h in hidden):
        raise GradingError("the source, submissions and output folders must not contain the glmmteach package")
    keys: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for exercise, key in zip(exercises, pool.map(lambda ex: compute_key(ex, timeout=600), exercises), strict=True):
            keys[exercise.filename] = key
    students = sorted(p.name for p in submissions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    jobs_list = [(student, ex) for student in students for ex in exercises]
    rows: list[GradeRow] = []

    def run(student: str, exercise: Exercise) -> GradeRow:
        path = submissions_dir / student / exercise.filename
        try:
            if not use_sandbox:
                return grade_submission(exercise, keys[exercise.filename], student, path, timeout=timeout,
                                        sandbox=None)
            with claimed_uid() as uid:
                return grade_submission(exercise, keys[exercise.filename], student, path, timeout=timeout,
                                        sandbox=Sandbox(uid, hidden))
        except Exception as exc:  # noqa: BLE001 - one bad submission never stops the run
            specs = exercise.specs
            return GradeRow(student, exercise.filename, "error",
                            [Feedback(s.id, False, "could not be graded.", 0.0, s.points) for s in specs],
                            [f"grader: {exc!r}"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, student, ex) for student, ex in jobs_list]
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            row = future.result()
            rows.append(row)
            log(f"[{done}/{len(futures)}] {row.student}/{row.notebook}: {row.status}, "
                f"{_format_points(row.total)}/{_format_points(row.max_points)} ({row.seconds:.1f} s)")
    write_gradebook(rows, exercises, out)
    write_feedback(rows, out.parent / "feedback")
    for row in rows:  # what each submission printed, for the instructor to look into
        if row.executed is not None:
            target = out.parent / "executed" / row.student / row.notebook
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(row.executed, target)
    return sorted(rows, key=lambda r: (r.student, r.notebook))
