"""Runs a notebook's code cells in one Python process and records what they produce as soon as they produce it.

The runner (:mod:`glmmteach.grading.runner`) starts this file as a script, normally inside the sandbox as the
sandbox's PID 1 (so that everything the notebook starts dies when it ends)::

    python -I child.py WORKDIR [UID]

(``UID`` when the grader is root: the process first becomes that user, losing every capability.)
``WORKDIR`` (the only writable folder) holds ``request.json`` from the runner: the code cells
(``[[cell_index, source], ...]``), resource limits and the output budget. The cells run one after the other in
an IPython ``InteractiveShell`` (magics and rich display work as in Jupyter, with no kernel, no ZMQ and no
connection file). Nothing is sent back through a pipe: this process appends JSON Lines to two files in
``WORKDIR``, writing each line with one ``write`` call as the event happens, and the grader reads them once,
after the whole sandbox is dead, as untrusted data (the notebook's own code can write anything there; it can
only spoil its own result).

**Recording format** (``answers.jsonl``)::

    {"record": QID, "value": JSON}        an answer stored with record()/check() or answers[QID] = value
    {"record": QID, "problem": TEXT}      an answer that cannot be graded (too large, not convertible)
    {"snapshot": {QID: JSON}, "problems": {QID: TEXT}, "results": {QID: bool}}
                                          after every cell: the notebook's whole ``answers`` dict and the
                                          results of ``check`` (it replaces what came before)

``record``/``check`` store into ``checks.answers``; after each cell, a plain ``answers`` dict in the notebook
(and ``checks.answers`` when it is the same object) is replaced by a :class:`RecordingDict` with the same
items, whose item assignment writes a ``record`` line at once. So an answer is on disk from the moment it is
recorded, whatever happens to the process later (a time-out, ``os._exit``, a crash, a killed process).
Values are converted with :func:`glmmteach.checks.answer_to_json`; a value whose JSON exceeds
``MAX_ANSWER_CHARS`` or that holds an integer beyond the range of a float gets a ``problem`` line instead.

**Outputs** (``outputs.jsonl``)::

    {"start": CELL_INDEX, "count": N}     a cell starts (N: its execution count)
    {"cell": CELL_INDEX, "output": OUT}   one nbformat output (stream, display_data, execute_result, error)
    {"truncated": true}                   the output budget is spent; later outputs are dropped
    {"done": true}                        every cell ran

No glmmteach import happens before the student's first cell except :mod:`glmmteach.checks` (for the
conversion), which the notebook imports anyway.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

REQUEST_FILE = "request.json"
ANSWERS_FILE = "answers.jsonl"
OUTPUTS_FILE = "outputs.jsonl"
MAX_ANSWER_CHARS = 100_000  # JSON characters of one answer; a course answer is a few numbers
MAX_FLOAT_INT = 2**1023  # integers beyond a float's range cannot be compared with the key
STREAM_FLUSH_SECONDS = 0.2


class JsonLines:
    """Appends one JSON document per line to a file, one ``write`` call each (never raises)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, document: dict[str, Any]) -> None:
        try:
            data = (json.dumps(document, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError, RecursionError):
            return
        for _ in range(2):
            try:
                os.write(self.fd, data)
                return
            except OSError:  # the notebook closed or replaced the descriptor: open the file again
                try:
                    self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                except OSError:
                    return


def _too_large_int(data: Any) -> int | None:
    """Digits of the first integer in ``data`` (JSON data) that a float cannot hold, or None."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= MAX_FLOAT_INT:
            return int(item.bit_length() * 0.30103) + 1
    return None


def convert(value: Any) -> tuple[Any, str | None]:
    """An answer as JSON data, or None and why it cannot be graded."""
    from glmmteach.checks import answer_to_json

    try:
        data = answer_to_json(value)
    except Exception as exc:  # noqa: BLE001 - any failure of an odd object becomes the answer's message
        return None, f"the value recorded could not be converted for grading ({type(exc).__name__})."
    digits = _too_large_int(data)
    if digits is not None:
        return None, f"the value recorded is too large to grade (an integer of about {digits:,} digits)."
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return None, f"the value recorded could not be converted for grading ({type(exc).__name__})."
    if len(text) > MAX_ANSWER_CHARS:
        return None, (f"the value recorded is too large to grade ({len(text):,} characters as data, at most "
                      f"{MAX_ANSWER_CHARS:,}); record the few numbers the question asks for.")
    return data, None


class Recorder:
    """Writes answers to ``answers.jsonl`` as they are recorded, and the whole dict after every cell."""

    def __init__(self, path: str) -> None:
        self.lines = JsonLines(path)

    def record(self, question: Any, value: Any) -> None:
        data, problem = convert(value)
        qid = str(question)[:100]
        self.lines.write({"record": qid, "problem": problem} if problem else {"record": qid, "value": data})

    def snapshot(self, namespace: dict[str, Any]) -> None:
        answers = namespace.get("answers")
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        if isinstance(answers, dict):
            for question, value in list(dict.items(answers))[:1000]:
                data, problem = convert(value)
                if problem:
                    problems[str(question)[:100]] = problem
                else:
                    values[str(question)[:100]] = data
        raw_results = getattr(namespace.get("checks"), "results", None)
        results = ({str(k)[:100]: bool(v) for k, v in list(raw_results.items())[:1000]}
                   if isinstance(raw_results, dict) else {})
        self.lines.write({"snapshot": values, "problems": problems, "results": results})


RECORDER: Recorder | None = None


class RecordingDict(dict):
    """The notebook's ``answers``: every assignment is also written to ``answers.jsonl`` at once."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if RECORDER is not None:
            RECORDER.record(key, value)


def record_answers_as_stored(namespace: dict[str, Any]) -> None:
    """Swap a plain ``answers`` dict (and ``checks.answers`` if it is the same dict) for a RecordingDict."""
    answers = namespace.get("answers")
    if type(answers) is not dict:
        return
    recording = RecordingDict(answers)
    namespace["answers"] = recording
    checks = namespace.get("checks")
    if getattr(checks, "answers", None) is answers:
        try:
            checks.answers = recording
        except Exception:  # noqa: BLE001, S110 - a read-only attribute: the snapshot after each cell still counts
            pass


class Outputs:
    """Collects a cell's outputs and appends them to ``outputs.jsonl``, within a byte budget."""

    def __init__(self, path: str, budget: int) -> None:
        self.lines = JsonLines(path)
        self.budget = budget
        self.used = 0
        self.truncated = False
        self.cell = -1
        self.pending: tuple[str, list[str]] | None = None  # stream text not yet written
        self.last_flush = time.monotonic()

    def start(self, cell: int, count: int) -> None:
        self.flush()
        self.cell = cell
        self.lines.write({"start": cell, "count": count})

    def add(self, output: dict[str, Any]) -> None:
        self.flush()
        self._emit(output)

    def _emit(self, output: dict[str, Any]) -> None:
        try:
            size = len(json.dumps(output, default=str))
        except (ValueError, RecursionError):
            return
        if self.truncated or self.used + size > self.budget:
            if not self.truncated:
                self.truncated = True
                self.lines.write({"truncated": True})
            return
        self.used += size
        try:
            self.lines.write({"cell": self.cell, "output": json.loads(json.dumps(output, default=str))})
        except (ValueError, RecursionError):
            pass

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.pending is not None and self.pending[0] != name:
            self.flush()
        if self.pending is None:
            self.pending = (name, [])
        self.pending[1].append(text)
        if time.monotonic() - self.last_flush > STREAM_FLUSH_SECONDS or sum(map(len, self.pending[1])) > 2**16:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.pending is None:
            return
        name, parts = self.pending
        self.pending = None
        self._emit({"output_type": "stream", "name": name, "text": "".join(parts)})


class CaptureStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of the notebook."""

    def __init__(self, outputs: Outputs, name: str) -> None:
        self.outputs, self._name = outputs, name

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"<{self._name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.outputs.stream(self._name, text)
        return len(text)


def _safe_text(value: Any) -> str:
    try:
        return str(value)[:10_000]
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails
        return "<unprintable>"


def make_shell(outputs: Outputs) -> Any:
    """An IPython shell whose displays, results and tracebacks become notebook outputs."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data: dict, metadata: dict | None = None, source: Any = None, *,  # noqa: ARG002
                    transient: dict | None = None, update: bool = False, **kwargs: Any) -> None:  # noqa: ARG002
            outputs.add({"output_type": "display_data", "data": data, "metadata": metadata or {}})

        def clear_output(self, wait: bool = False) -> None:
            pass

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: dict, md_dict: dict | None = None) -> None:
            outputs.add({"output_type": "execute_result", "data": format_dict, "metadata": md_dict or {},
                         "execution_count": self.prompt_count})

    class Shell(InteractiveShell):
        displayhook_class = Type(Hook)
        display_pub_class = Type(Publisher)

        def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
            outputs.add({"output_type": "error", "ename": _safe_text(getattr(etype, "__name__", etype)),
                         "evalue": _safe_text(evalue), "traceback": [_safe_text(line) for line in stb[:200]]})

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    return Shell.instance(config=config)


def main() -> None:
    global RECORDER
    workdir = sys.argv[1]
    if len(sys.argv) > 2:  # started as root (with only the capabilities to do this): become the sandbox uid
        uid = int(sys.argv[2])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.chdir(workdir)
    with open(REQUEST_FILE) as handle:
        request = json.load(handle)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized file gets an error, not a dead process
    for name, value in request["limits"].items():
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)  # a limit is never raised
        resource.setrlimit(limit, (value, value))
    if request.get("quiet"):  # the log file outside the sandbox was for bwrap's messages: nothing more goes there
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the glmmteach package's folder
    RECORDER = Recorder(ANSWERS_FILE)
    outputs = Outputs(OUTPUTS_FILE, int(request["max_output_bytes"]))
    shell = make_shell(outputs)
    sys.stdout, sys.stderr = CaptureStream(outputs, "stdout"), CaptureStream(outputs, "stderr")
    for index, source in request["cells"]:
        outputs.start(index, shell.execution_count)
        shell.run_cell(source, store_history=True)
        outputs.flush()
        record_answers_as_stored(shell.user_ns)
        RECORDER.snapshot(shell.user_ns)
    outputs.lines.write({"done": True})
    os._exit(0)  # no atexit handler or leftover thread of the notebook's may hold the process


if __name__ == "__main__":
    main()
