"""The sandbox a submitted notebook runs in: bubblewrap (``bwrap``), for root and for any user.

Each notebook's process (:mod:`~glmmteach.grading.child`) runs in its own bubblewrap container
(:func:`bwrap_command`):

* its own PID, network, IPC, UTS and cgroup namespaces; the notebook's process is the namespace's PID 1
  (``--as-pid-1``), so when it ends, or is killed at the time limit, the kernel kills every process it started,
  forked or detached; ``--die-with-parent`` does the same if the grader dies; a fresh ``/proc`` shows only
  the sandbox's own processes (not the grader's command line, working folder or environment);
* no network (only a loopback device), a new session (no terminal to type into), a clean environment;
* a file system built from nothing: read-only ``/usr`` and the system library links, a few files of ``/etc``
  (the dynamic linker's cache, time zone, fonts), read-only the Python installation (``sys.base_prefix``,
  ``sys.prefix``), the glmmteach package and its data; small private ``/tmp`` and ``/dev/shm``; and the run's
  working folder, itself a small tmpfs into which only the request, the data files and the two files the
  notebook records into are mounted from the grader's temporary folder. The instructor's source, the key
  store, the gradebook, other submissions and the grader's own files are not mounted at all, and
  :func:`check_hidden` refuses a source, submissions, output or key-store folder that overlaps what is
  mounted;
* limits, set by the notebook's process on itself before any of its code runs (:func:`sandbox_limits`):
  address space, processes and threads, file size, CPU time, no core files; the tmpfs sizes bound what it can
  write; the runner bounds the outputs it keeps.

``RLIMIT_NPROC`` counts the processes of a user id. For an ordinary user the sandbox has its own user namespace
(``--unshare-user``, nested ones forbidden), and since Linux 5.14 the count is kept per user namespace, so the
limit holds per sandbox without counting the instructor's other processes. As root, bwrap runs privileged with
no user namespace and keeps only ``CAP_SETUID``/``CAP_SETGID``, which the notebook's process uses at once to
become an unused uid of its own (:func:`claimed_uid`), losing every capability: an extra layer, whose process
count is the sandbox's alone, and every process of that uid is killed after the run.

:func:`glmmteach.grading.runner.sandbox_problem` probes the whole set-up once (with the runner, which uses this
module; this module imports nothing of the runner's); where bwrap is missing or fails, grading refuses to run
unless the instructor passes ``--no-sandbox``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import GradingError

PACKAGE = Path(__file__).resolve().parent.parent  # the glmmteach package folder
CHILD = Path(__file__).resolve().parent / "child.py"  # the program that runs a notebook's cells
KERNEL_MEMORY_BYTES = 6 * 2**30  # address-space limit of a notebook's process
MAX_PROCESSES = 256  # processes and threads in one sandbox
MAX_FILE_BYTES = 64 * 2**20  # per file written; also bounds the two recording files on the grader's disk
TMP_BYTES = 128 * 2**20  # the sandbox's private /tmp and /dev/shm (memory-backed)
WORK_BYTES = 256 * 2**20  # the sandbox's working folder (memory-backed)
SANDBOX_UID_BASE = 61_000  # as root, sandboxes run as uids from here on, skipping any that has an account
UID_LOCK_DIR = Path("/run/glmmteach-sandbox-uids")
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts", "mime.types",
             "matplotlibrc")


@dataclass(frozen=True)
class Sandbox:
    """Run a notebook in bubblewrap; as root, under ``uid`` (an id of its own), else as the grader's user."""

    uid: int | None = None


def exposed_paths() -> list[str]:
    """The folders a sandbox sees read-only besides the system: Python, the glmmteach package and its data."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, PACKAGE)}
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    data = importlib.util.find_spec("glmmteach.data")
    if data is not None and data.submodule_search_locations:
        paths |= {os.path.realpath(p) for p in data.submodule_search_locations}
    paths = {p for p in paths if not (p == "/usr" or p.startswith("/usr/"))}
    return sorted(p for p in paths if not any(p != q and Path(p).is_relative_to(q) for q in paths))


def mounted_paths() -> list[str]:
    """Every host path a sandbox sees (read-only): the system folders, a few files of /etc, Python, glmmteach."""
    system = [f"/{name}" for name in SYSTEM_LINKS if os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]
    etc = [f"/etc/{name}" for name in ETC_FILES if os.path.exists(f"/etc/{name}")]
    return ["/usr", *system, *etc, *exposed_paths()]


def check_hidden(folders: list[Path]) -> None:
    """Refuse when a folder that must stay invisible (source, submissions, output, key store) would be mounted."""
    for folder in folders:
        real = Path(os.path.realpath(folder))
        for path in mounted_paths():
            if real.is_relative_to(path):  # (a mounted folder inside one of them shows only itself)
                raise GradingError(f"{folder} lies in {path}, which the sandbox shows to every submission; "
                                   "keep the source, submissions and output folders apart from the Python "
                                   "installation and the glmmteach package")


def bwrap_command(workdir: Path, files: dict[str, bool], payload: list[str], env: dict[str, str], info_fd: int,
                  *, as_root: bool) -> list[str]:
    """The ``bwrap`` command line that runs ``payload`` in ``workdir``.

    Inside the sandbox ``workdir`` is a small private tmpfs (so a submission cannot fill the grader's disk) into
    which the grader's own ``files`` of that folder are mounted, writable or not (name -> writable): the
    request, the data, and the files the notebook records into.

    As root, bwrap runs privileged without a user namespace and keeps only the capabilities to change user, which
    the payload (:mod:`~glmmteach.grading.child`) uses at once to become the sandbox uid; otherwise bwrap makes a
    user namespace (and forbids nested ones) and the payload keeps the grader's uid, with no capabilities.
    """
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--as-pid-1", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox",
            "--info-fd", str(info_fd)]
    if as_root:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/dev/shm",
             "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    made = {"/", "/usr", "/tmp", "/proc", "/dev", "/etc"}
    for path in [*exposed_paths(), str(workdir)]:
        for parent in reversed(Path(path).parents):  # bwrap would make them 0700: the sandbox uid must pass
            if str(parent) not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        if path == str(workdir):
            args += ["--perms", "1777", "--size", str(WORK_BYTES), "--tmpfs", path]
            for name, writable in files.items():
                args += ["--bind" if writable else "--ro-bind", str(workdir / name), str(workdir / name)]
        else:
            args += ["--ro-bind", path, path]
    args.append("--clearenv")
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *payload]


def sandbox_limits(timeout: float) -> dict[str, int]:
    """Resource limits the notebook's process sets on itself (names of :mod:`resource` constants)."""
    return {"RLIMIT_AS": KERNEL_MEMORY_BYTES, "RLIMIT_NPROC": MAX_PROCESSES, "RLIMIT_FSIZE": MAX_FILE_BYTES,
            "RLIMIT_CORE": 0, "RLIMIT_CPU": int(timeout) + 30}




def kill_group(pid: int) -> None:
    """Kill a process group (an unsandboxed notebook's process is the leader of its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    """Wait until process ``pid`` has exited (gone or a zombie); a PID 1 exits only after its namespace."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def kill_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (root's extra layer: nothing may outlive a run)."""
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


@contextlib.contextmanager
def claimed_uid() -> Iterator[int]:
    """An unused user id for one sandbox (root only), held until the sandbox is gone.

    A uid is claimed by an exclusive ``flock`` on ``UID_LOCK_DIR/<uid>``, which the system releases if the
    grader dies, so concurrent graders (and parallel jobs) never share a uid, and so never kill each other's
    processes when they clean up. Ids that belong to an account, or under which a process still runs, are skipped.
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


def private_folder(prefix: str, sandbox: Sandbox | None) -> Path:
    """A fresh temporary folder, owned by the sandbox's uid when there is one (mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if sandbox is not None and sandbox.uid is not None:
        os.chown(folder, sandbox.uid, sandbox.uid)
    return folder
