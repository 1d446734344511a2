"""Executing a notebook: a worker process drives one kernel (sandboxed or not) and collects the answers."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from .sandbox import KERNEL_MEMORY_BYTES, LAUNCHER, PACKAGE, Sandbox, kill_group, kill_uid, sandbox_view

ANSWERS_MARKER = "GLMMTEACH-ANSWERS:"
MAX_ANSWERS_TEXT = 2_000_000
MAX_OUTPUT_BYTES = 20 * 2**20
EXTRACT_SECONDS = 20
STARTUP_SECONDS = 30

EXTRACT_CODE = textwrap.dedent(f"""\
    import json as _gt_json
    from glmmteach.checks import answers_to_json as _gt_answers_to_json
    _gt_results = getattr(globals().get("checks"), "results", None)
    print({ANSWERS_MARKER!r} + _gt_json.dumps({{
        "answers": _gt_answers_to_json(globals().get("answers")),
        "results": {{str(k): bool(v) for k, v in _gt_results.items()}} if isinstance(_gt_results, dict) else {{}},
    }}))
    """)


@dataclass
class Execution:
    """What running one notebook produced."""

    status: str  # ok | incomplete | error | timeout
    answers: dict[str, Any] = field(default_factory=dict)
    results: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: NotebookNode | None = None


def _kernel_env(workdir: Path) -> dict[str, str]:
    """A small environment for a kernel: none of the grader's variables, home in its own folder."""
    package_parent = str(PACKAGE.parent)
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
                             "limits": limits, **sandbox_view(workdir)})
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, "-I", str(LAUNCHER), config, "{connection_file}"]
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
        code = f"from glmmteach.grading.runner import _worker_main; _worker_main({str(private / 'request.json')!r})"
        worker_env = dict(os.environ, PYTHONPATH=_kernel_env(workdir)["PYTHONPATH"])
        worker = subprocess.Popen([sys.executable, "-c", code], env=worker_env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, worker_stderr = worker.communicate(timeout=timeout + EXTRACT_SECONDS + STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            kill_group(worker.pid)
            worker.communicate()
            return Execution("timeout", errors=["the notebook overran its time limit"],
                             seconds=time.monotonic() - started)
        finally:
            pid_file = private / "kernel.pid"
            if pid_file.is_file():
                kill_group(int(pid_file.read_text()))
            if sandbox is not None:
                kill_uid(sandbox.uid)
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
