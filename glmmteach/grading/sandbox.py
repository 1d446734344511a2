"""Confining a student's kernel (as root): its own uid, a private mount namespace, limits; cleaning up after it."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import platform
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GradingError

PACKAGE = Path(__file__).resolve().parent.parent  # the glmmteach package folder
LAUNCHER = Path(__file__).resolve().parent / "launcher.py"  # run with `python -I` inside `unshare --mount`
KERNEL_MEMORY_BYTES = 6 * 2**30  # address-space limit of a sandboxed kernel
SANDBOX_UID_BASE = 61_000  # sandbox kernels run as uids from here on, skipping any that has an account
UID_LOCK_DIR = Path("/run/glmmteach-sandbox-uids")


@dataclass
class Sandbox:
    """How to confine a student's kernel: run it as ``uid`` with ``hidden`` folders masked."""

    uid: int
    hidden: list[str]


SYSTEM_FOLDERS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                  "usr", "var"}


def sandbox_view(workdir: Path) -> dict[str, Any]:
    """Which folders a sandboxed kernel sees: the masked top-level folders and the paths mounted back."""
    expose = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, PACKAGE, workdir)}
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


def kill_group(pid: int) -> None:
    """Kill a process group (a worker or a kernel, both leaders of their own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int) -> None:
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
