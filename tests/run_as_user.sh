#!/usr/bin/env bash
# Prepare an ordinary user who can run the glmmteach grader, for the tests that grade as that user.
#
#   tests/run_as_user.sh USER VENV          (as root)
#
# Creates USER (useradd -m) if missing, and a virtual environment VENV owned by USER, built with the system's
# /usr/bin/python3.11 (root's own Python may live where other users cannot read it), with glmmteach installed
# from this checkout (a copy: the user cannot write here). VENV is kept between runs; only glmmteach is
# reinstalled when its sources changed. Prints VENV/bin/python on success. Exit status 3 (and a reason on
# stderr) when this cannot be done here: not root, no useradd, no python3.11.
set -euo pipefail
user="$1"
venv="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
python=/usr/bin/python3.11

[ "$(id -u)" = 0 ] || { echo "needs root (to create and become an ordinary user)" >&2; exit 3; }
command -v useradd > /dev/null || { echo "useradd is not available" >&2; exit 3; }
[ -x "$python" ] || { echo "$python is not installed" >&2; exit 3; }
"$python" -c "import venv, ensurepip" 2> /dev/null || { echo "$python has no venv/ensurepip" >&2; exit 3; }
id "$user" > /dev/null 2>&1 || useradd -m "$user"

stamp="$(cd "$repo" && cat pyproject.toml glmmteach/*.py glmmteach/grading/*.py | sha256sum | cut -c1-16)"
if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    install -d -o "$user" -m 0755 "$venv"
    runuser -u "$user" -- "$python" -m venv "$venv" >&2
fi
if [ "$(cat "$venv/.glmmteach-stamp" 2> /dev/null)" != "$stamp" ]; then
    copy="$(mktemp -d /tmp/glmmteach-src-XXXXXX)"
    (cd "$repo" && cp -r pyproject.toml README.md glmmteach data "$copy/")
    rm -rf "$copy"/glmmteach/__pycache__ "$copy"/glmmteach/grading/__pycache__
    chown -R "$user" "$copy"
    # the first time this downloads glmmteach's dependencies: no package index, no test (exit 3)
    if ! runuser -u "$user" -- "$venv/bin/python" -m pip install --quiet "$copy" > "$copy.log" 2>&1; then
        echo "pip could not install glmmteach for $user: $(tail -3 "$copy.log")" >&2
        rm -rf "$copy" "$copy.log"
        exit 3
    fi
    rm -rf "$copy" "$copy.log"
    echo "$stamp" > "$venv/.glmmteach-stamp"
fi
echo "$venv/bin/python"
