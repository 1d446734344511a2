"""Install the venv's Jupyter kernel ("python3", in the venv's sys-prefix) that the book build and nbval use.

The kernel is started with ``--IPKernelApp.log_level=ERROR``: Jupyter's executors talk to it over TCP on the
loopback, and ipykernel 7 warns about that once per kernel start (27 copies in a book build, burying real
messages). Errors of the kernel itself still show; warnings of lesson code are cell outputs and are unaffected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

QUIET = "--IPKernelApp.log_level=ERROR"


def main() -> None:
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
                   check=True, capture_output=True)
    spec_file = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    if QUIET not in spec["argv"]:
        spec["argv"].append(QUIET)
    spec_file.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
