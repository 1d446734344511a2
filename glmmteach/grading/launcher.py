"""Sandbox launcher, run as a script (as root) inside `unshare --mount`, before any student code.

It hands the kernel its connection file, then rebuilds the filesystem view. Every top-level folder that is not
part of the system (/tmp, /home, /root, /work, ...) is replaced by an empty tmpfs, and only what the kernel needs
is mounted back at its own path: the Python installation, the glmmteach package, its data and the kernel's own
folder. So no copy of a solution, another student's folder or the grader's files is visible, wherever it lies.
Then it drops to the sandbox uid and becomes the kernel. No glmmteach imports here: it runs with ``python -I``.

Usage: ``python -I launcher.py CONFIG_JSON CONNECTION_FILE [KERNEL_ARGS...]``
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile


def main() -> None:
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


if __name__ == "__main__":
    main()
