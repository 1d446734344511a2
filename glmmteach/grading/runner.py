"""Executing a notebook: one Python process runs its cells in a sandbox; the grader reads what it recorded.

:func:`execute_notebook` copies the notebook's code and data into a fresh temporary folder, starts
:mod:`glmmteach.grading.child` there (inside bubblewrap, see :mod:`glmmteach.grading.sandbox`), and waits for
it with a deadline: at the limit it kills the sandbox's PID 1, which takes every process of the sandbox with
it. The grader never reads a pipe that the notebook's processes could hold open: the child's output goes to a
file in its own folder, and the answers and outputs are JSON Lines files there (format in the child's
docstring), read once, after the sandbox is dead, with size caps, and parsed as untrusted data (numbers,
strings and lists only; a line that does not parse is skipped). So a time-out, a process that ignores
interrupts, ``os._exit``, a crash or an unconvertible value loses nothing that was recorded before it, and a
process left behind cannot change anything afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from .sandbox import (
    CHILD,
    Sandbox,
    bwrap_command,
    claimed_uid,
    kill_group,
    kill_uid,
    private_folder,
    sandbox_limits,
    wait_gone,
)

MAX_OUTPUT_BYTES = 20 * 2**20  # outputs kept per notebook
MAX_ANSWERS_BYTES = 8 * 2**20  # of answers.jsonl read by the grader
STARTUP_SECONDS = 30  # at most, for the sandbox to report that it started (a loaded machine is slow)
REQUEST_FILE, ANSWERS_FILE, OUTPUTS_FILE, LOG_FILE = "request.json", "answers.jsonl", "outputs.jsonl", ".log"


@dataclass
class Execution:
    """What running one notebook produced."""

    status: str  # ok | incomplete | error | timeout
    answers: dict[str, Any] = field(default_factory=dict)
    results: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: NotebookNode | None = None
    problems: dict[str, str] = field(default_factory=dict)  # answers recorded but not gradable, and why
    stopped: str = ""  # why the notebook did not run to its end (time limit, process died), if it did not


def child_env(workdir: Path) -> dict[str, str]:
    """A small environment for the notebook: none of the grader's variables, home in its own folder."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _read_untrusted(path: Path, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a regular file the notebook could have written (no links, no FIFOs)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b"", False
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b"", False
        data = handle.read(limit + 1)
    return data[:limit], len(data) > limit


def _json_lines(data: bytes) -> Iterable[dict[str, Any]]:
    def reject(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    for line in data.split(b"\n"):
        try:
            document = json.loads(line, parse_constant=reject)
        except (ValueError, RecursionError):  # also integers of more than 4300 digits
            continue
        if isinstance(document, dict):
            yield document


def _plain_json(value: Any, depth: int = 0) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < 2**1023
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= 10_000
    if isinstance(value, list) and depth < 8:
        return all(_plain_json(v, depth + 1) for v in value)
    return False


def _question(key: Any) -> str | None:
    return key if isinstance(key, str) and 0 < len(key) <= 100 else None


def parse_answers(data: bytes) -> tuple[dict[str, Any], dict[str, str], dict[str, bool]]:
    """Answers, answer problems and check results from ``answers.jsonl`` (see the child's docstring)."""
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    results: dict[str, bool] = {}
    for document in _json_lines(data):
        if "snapshot" in document:
            snapshot, noted, checked = document["snapshot"], document.get("problems"), document.get("results")
            if not isinstance(snapshot, dict):
                continue
            answers = {q: v for q, v in snapshot.items() if _question(q) and _plain_json(v)}
            problems = ({q: v[:300] for q, v in noted.items() if _question(q) and isinstance(v, str)}
                        if isinstance(noted, dict) else {})
            if isinstance(checked, dict):
                results = {q: v for q, v in checked.items() if _question(q) and isinstance(v, bool)}
        elif _question(document.get("record")):
            qid = document["record"]
            if isinstance(document.get("problem"), str):
                problems[qid] = document["problem"][:300]
                answers.pop(qid, None)
            elif "value" in document and _plain_json(document["value"]):
                answers[qid] = document["value"]
                problems.pop(qid, None)
        if len(answers) + len(problems) > 1000:
            break
    return answers, problems, results


@dataclass
class _Progress:
    """What ``outputs.jsonl`` says about the run."""

    outputs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    last_started: int | None = None
    done: bool = False
    truncated: bool = False


def _clean_output(output: Any) -> dict[str, Any] | None:
    """An nbformat output rebuilt from the expected fields, or None if ``output`` is not one."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        if output.get("name") in ("stdout", "stderr") and isinstance(output.get("text"), str):
            return {"output_type": "stream", "name": output["name"], "text": output["text"]}
    elif kind in ("display_data", "execute_result"):
        data, metadata = output.get("data"), output.get("metadata", {})
        if isinstance(data, dict) and isinstance(metadata, dict) and all(isinstance(k, str) for k in data):
            clean = {"output_type": kind, "data": data, "metadata": metadata}
            if kind == "execute_result":
                count = output.get("execution_count")
                clean["execution_count"] = count if isinstance(count, int) else None
            return clean
    elif kind == "error":
        trace = output.get("traceback")
        if (isinstance(output.get("ename"), str) and isinstance(output.get("evalue"), str)
                and isinstance(trace, list) and all(isinstance(line, str) for line in trace)):
            return {"output_type": "error", "ename": output["ename"], "evalue": output["evalue"], "traceback": trace}
    return None


def parse_outputs(data: bytes, code_cells: set[int]) -> _Progress:
    progress = _Progress()
    for document in _json_lines(data):
        if document.get("done") is True:
            progress.done = True
        elif document.get("truncated") is True:
            progress.truncated = True
        elif isinstance(document.get("start"), int) and document["start"] in code_cells:
            progress.last_started = document["start"]
            if isinstance(document.get("count"), int):
                progress.counts[document["start"]] = document["count"]
        elif isinstance(document.get("cell"), int) and document["cell"] in code_cells:
            output = _clean_output(document.get("output"))
            if output is not None:
                cell = progress.outputs.setdefault(document["cell"], [])
                previous = cell[-1] if cell else None
                if (previous is not None and output.get("output_type") == "stream"
                        and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
                    previous["text"].append(output["text"])  # joined once below: `+=` here is quadratic
                else:
                    if output.get("output_type") == "stream":
                        output["text"] = [output["text"]]
                    cell.append(output)
    for cell in progress.outputs.values():
        for output in cell:
            if output.get("output_type") == "stream":
                output["text"] = "".join(output["text"])
    return progress


def _collect_errors(notebook: NotebookNode) -> list[str]:
    errors = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{output.get('ename', '?')}: {str(output.get('evalue', ''))[:200]}")
    return errors


def _read_info(fd: int, seconds: float) -> int | None:
    """The sandbox's PID 1 (as the grader sees it), from bwrap's ``--info-fd``."""
    data = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        with contextlib.suppress(ValueError):
            pid = json.loads(data).get("child-pid")
            return pid if isinstance(pid, int) and pid > 1 else None
    return None


def _start(workdir: Path, sandbox: Sandbox | None, timeout: float) -> tuple[subprocess.Popen, int | None]:
    """Start the notebook's process (in bubblewrap unless ``sandbox`` is None); its PID 1, or None."""
    log = os.open(workdir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    if sandbox is not None and sandbox.uid is not None:
        os.fchown(log, sandbox.uid, sandbox.uid)
    payload = [sys.executable, "-I", str(CHILD), str(workdir)]
    try:
        if sandbox is None:
            process = subprocess.Popen(payload, cwd=workdir, env=child_env(workdir), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, start_new_session=True)
            return process, process.pid
        as_root = sandbox.uid is not None
        if as_root:
            payload.append(str(sandbox.uid))
        # the request read-only; the data (the notebook's own copies) and the recording files writable
        files = {path.name: path.name != REQUEST_FILE for path in workdir.iterdir() if path.name != LOG_FILE}
        info_read, info_write = os.pipe()
        try:
            command = bwrap_command(workdir, files, payload, child_env(workdir), info_write, as_root=as_root)
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       pass_fds=(info_write,), start_new_session=True)
            os.close(info_write)
            info_write = -1
            return process, _read_info(info_read, min(STARTUP_SECONDS, timeout))
        finally:
            os.close(info_read)
            if info_write >= 0:
                os.close(info_write)
    finally:
        os.close(log)


def _stop(process: subprocess.Popen, pid1: int | None, sandbox: Sandbox | None) -> None:
    """Kill the notebook's processes and wait until they are really gone.

    In a sandbox, killing its PID 1 makes the kernel kill every other process of the namespace, and PID 1
    finishes exiting only when they are gone; bwrap exits after its PID 1, so once bwrap has exited nothing of
    the sandbox is left. A PID is only signalled while bwrap (its parent) runs, so it cannot have been reused.
    """
    if process.poll() is None:  # the time limit: still running
        if pid1 is not None and sandbox is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid1, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
            if pid1 is not None and sandbox is not None:
                wait_gone(pid1)
    if sandbox is None:  # unconfined: whatever stayed in the notebook's session (a process may have left it)
        kill_group(process.pid)
    elif sandbox.uid is not None:
        kill_uid(sandbox.uid)


def _describe_end(progress: _Progress, timed_out: bool, returncode: int | None, cells: list[int]) -> tuple[str, str]:
    """Why the notebook stopped before its end: the note for the instructor and a short form for each question."""
    where = "" if progress.last_started is None else (
        f" in cell {progress.last_started} (code cell {cells.index(progress.last_started) + 1} of {len(cells)})")
    if timed_out:
        return (f"stopped at the time limit{where}; the answers recorded before that were graded",
                f"the notebook stopped at the time limit{where}")
    if returncode is not None and returncode > 128:  # bwrap reports a PID 1 killed by signal N as 128 + N
        returncode = 128 - returncode
    how = f"exit status {returncode}" if returncode is not None and returncode >= 0 else f"signal {-returncode}"
    if progress.last_started is None:
        return f"the notebook's Python process did not start ({how})", "the notebook did not start"
    return (f"the notebook's Python process died{where} ({how}: os._exit, a crash, or the memory limit); "
            "the answers recorded before that were graded", f"the notebook's process died{where}")


def execute_notebook(notebook: NotebookNode, *, timeout: float, data_files: Iterable[Path] = (),
                     sandbox: Sandbox | None = None) -> Execution:
    """Run a notebook's code cells in a fresh process, in its own temporary folder, within ``timeout`` seconds.

    The folder holds the code and copies of ``data_files`` only. With a ``sandbox`` the process runs in
    bubblewrap; without one it runs as the grader's user (trusted notebooks: the instructor's solutions).
    """
    started = time.monotonic()
    workdir = private_folder("glmmteach-run-", sandbox)
    try:
        cells = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        request = {"cells": [[index, notebook.cells[index].source] for index in cells],
                   "limits": sandbox_limits(timeout) if sandbox is not None else {"RLIMIT_CORE": 0},
                   "max_output_bytes": MAX_OUTPUT_BYTES, "quiet": sandbox is not None}
        (workdir / REQUEST_FILE).write_text(json.dumps(request))
        for path in data_files:
            shutil.copyfile(path, workdir / path.name)
        for name in (ANSWERS_FILE, OUTPUTS_FILE):
            (workdir / name).touch(mode=0o600)
        if sandbox is not None and sandbox.uid is not None:
            for path in workdir.iterdir():
                os.chown(path, sandbox.uid, sandbox.uid)
        process, pid1 = _start(workdir, sandbox, timeout)
        timed_out = False
        try:
            process.wait(timeout=max(0.1, timeout - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _stop(process, pid1, sandbox)
        # From here on no process of the notebook exists: what the files hold is final.
        recorded, answers_cut = _read_untrusted(workdir / ANSWERS_FILE, MAX_ANSWERS_BYTES)
        answers, problems, results = parse_answers(recorded)
        data, cut = _read_untrusted(workdir / OUTPUTS_FILE, MAX_OUTPUT_BYTES + 2**20)
        progress = parse_outputs(data, set(cells))
        executed = nbformat.from_dict(json.loads(nbformat.writes(notebook)))
        for index in cells:
            executed.cells[index].outputs = [nbformat.from_dict(o) for o in progress.outputs.get(index, [])]
            executed.cells[index].execution_count = progress.counts.get(index)
        errors = _collect_errors(executed)
        stopped = ""
        # The runner decides whether the notebook finished: not timed out and its process exited normally.
        # The notebook's own code can write a "done" line too, so that line alone proves nothing.
        if progress.done and not timed_out and process.returncode == 0:
            status = "ok" if not errors else (
                "incomplete" if all(e.startswith("NotImplementedError") for e in errors) else "error")
        else:
            status = "timeout" if timed_out else "error"
            note, stopped = _describe_end(progress, timed_out, process.returncode, cells)
            errors.append(note)
            if pid1 is None and sandbox is not None:
                log, _ = _read_untrusted(workdir / LOG_FILE, 2000)
                errors.append("the sandbox did not start: " + log.decode(errors="replace").strip()[-300:])
        if progress.truncated or cut:
            errors.append(f"outputs beyond {MAX_OUTPUT_BYTES // 2**20} MB were dropped")
        if answers_cut:
            errors.append(f"recorded answers beyond {MAX_ANSWERS_BYTES // 2**20} MB were not read")
        return Execution(status, answers, results, errors, time.monotonic() - started, executed, problems, stopped)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def probe_sandbox(sandbox: Sandbox) -> str | None:
    """Run a one-cell notebook in the sandbox; None if it recorded its answer, else what went wrong."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("answers = {'probe': 1}")]
    run = execute_notebook(notebook, timeout=60, sandbox=sandbox)
    if run.status == "ok" and run.answers == {"probe": 1}:
        return None
    return f"a trial run in bubblewrap failed ({run.status}: {'; '.join(run.errors)[:400]})"


@functools.cache
def sandbox_problem() -> str | None:
    """Why no sandbox can be used here (bwrap missing or failing a trial run), or None when it works."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (`bwrap`) is not installed"
    with contextlib.ExitStack() as stack:
        sandbox = Sandbox(stack.enter_context(claimed_uid()) if os.geteuid() == 0 else None)
        return probe_sandbox(sandbox)


def sandbox_available() -> bool:
    """True when submissions can run in bubblewrap on this machine (see :func:`sandbox_problem`)."""
    return sandbox_problem() is None
