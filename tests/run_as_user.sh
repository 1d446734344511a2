#!/usr/bin/env bash
# Prepare an ordinary user who can run the glmmteach grader, for the tests that grade as that user.
#
#   tests/run_as_user.sh USER VENV [BUILD_PYTHON]          (as root)
#
# Creates USER (useradd -m) if missing, and a virtual environment VENV owned by USER, built with the system's
# /usr/bin/python3.11 (root's own Python may live where other users cannot read it), with glmmteach installed
# from a wheel built once from this checkout: everything pyproject.toml ships (the package and each folder of
# its package-dir: data, lessons, exercises) is copied to a scratch folder and built there, so the checkout
# gets no build/ or egg-info. BUILD_PYTHON (a Python with setuptools and wheel, e.g. the test run's own)
# builds it without a package index; without it the user's pip builds it in an isolated environment.
# VENV is kept between runs; glmmteach is reinstalled only when what it ships changed. Prints VENV/bin/python
# on success. Exit status 3 (and a reason on stderr) when this cannot be done here: not root, no useradd, no
# python3.11 or its venv module. Any other failure (pip's own error printed in full) is exit status 1.
set -euo pipefail
user="$1"
venv="$2"
builder="${3:-}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
python=/usr/bin/python3.11

[ "$(id -u)" = 0 ] || { echo "needs root (to create and become an ordinary user)" >&2; exit 3; }
command -v useradd > /dev/null || { echo "useradd is not available" >&2; exit 3; }
[ -x "$python" ] || { echo "$python is not installed" >&2; exit 3; }
"$python" -c "import venv, ensurepip" 2> /dev/null \
    || { echo "$python has no venv/ensurepip (Debian: apt-get install python3.11-venv)" >&2; exit 3; }
id "$user" > /dev/null 2>&1 || useradd -m "$user"

# What the wheel is built from: pyproject.toml, README.md, glmmteach/ and each package-dir folder.
shipped="$(cd "$repo" && "$python" -c '
import tomllib
setup = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]
print("\n".join(["pyproject.toml", "README.md", "glmmteach", *sorted(set(setup.get("package-dir", {}).values()))]))
')"
mapfile -t shipped <<< "$shipped"
stamp="$(cd "$repo" && find "${shipped[@]}" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' \
    -not -path '*/.ipynb_checkpoints/*' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-16)"

if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    install -d -o "$user" -m 0755 "$venv"
    runuser -u "$user" -- "$python" -m venv "$venv" >&2
fi
if [ "$(cat "$venv/.glmmteach-stamp" 2> /dev/null)" != "$stamp" ]; then
    scratch="$(mktemp -d /tmp/glmmteach-src-XXXXXX)"
    trap 'rm -rf "$scratch"' EXIT
    mkdir "$scratch/src" "$scratch/dist"
    (cd "$repo" && cp -r "${shipped[@]}" "$scratch/src/")
    find "$scratch/src" \( -name __pycache__ -o -name .ipynb_checkpoints \) -prune -exec rm -rf {} +
    chmod -R a+rX "$scratch"
    log="$scratch/pip.log"
    if [ -n "$builder" ]; then
        build=("$builder" -m pip wheel --no-deps --no-build-isolation -w "$scratch/dist" "$scratch/src")
    else
        chown -R "$user" "$scratch"
        build=(runuser -u "$user" -- "$venv/bin/python" -m pip wheel --no-deps -w "$scratch/dist" "$scratch/src")
    fi
    if ! "${build[@]}" > "$log" 2>&1; then
        echo "could not build the glmmteach wheel from $repo (${build[*]}):" >&2
        cat "$log" >&2
        exit 1
    fi
    wheel="$(ls "$scratch"/dist/glmmteach-*.whl)"
    chmod a+r "$wheel"
    # the first time this downloads glmmteach's dependencies into the user's environment; then the wheel
    # replaces the glmmteach installed before (same version number, so pip would keep the old one)
    pip=(runuser -u "$user" -- "$venv/bin/python" -m pip install --disable-pip-version-check)
    if ! { "${pip[@]}" "$wheel" && "${pip[@]}" --force-reinstall --no-deps "$wheel"; } > "$log" 2>&1; then
        echo "pip could not install glmmteach for $user from $(basename "$wheel"):" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "$stamp" > "$venv/.glmmteach-stamp"
fi
echo "$venv/bin/python"
