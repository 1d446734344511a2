#!/usr/bin/env bash
# Developer check, by hand only (never in tests or CI): re-execute lessons under other OpenBLAS kernels and
# compare every output with the one stored in the notebook (nbval, the same sanitiser as `make test`).
# A stored output that only one CPU reproduces fails here: the rule that prevents it is in
# glmmteach/booktools.py ("Stored outputs are mathematics, not machine").
#
#   scripts/check_kernels.sh [lessons/NN_name.ipynb ...]       (default: every lesson)
#   KERNELS="Haswell Sandybridge" scripts/check_kernels.sh ...  (default: Haswell Sandybridge Prescott)
#
# Haswell is also the kernel OpenBLAS runs on AMD Zen (EPYC). Prints one line per kernel and lesson and
# exits non-zero if any output differs; pytest's reports are kept in _build/kernel-check/.
set -uo pipefail
cd "$(dirname "$0")/.."
kernels=${KERNELS:-"Haswell Sandybridge Prescott"}
if [ $# -gt 0 ]; then lessons=("$@"); else lessons=(lessons/*.ipynb); fi
out=_build/kernel-check
mkdir -p "$out"
status=0
for kernel in $kernels; do
    arch=$(OPENBLAS_CORETYPE=$kernel .venv/bin/python -c \
        "import numpy, threadpoolctl; print(threadpoolctl.threadpool_info()[0].get('architecture'))")
    for lesson in "${lessons[@]}"; do
        name=$(basename "$lesson" .ipynb)
        start=$(date +%s)
        if OPENBLAS_CORETYPE=$kernel PYTHONHASHSEED=0 .venv/bin/pytest -q -p no:cacheprovider "$lesson" \
            --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
            > "$out/$kernel-$name.txt" 2>&1; then
            result="identical"
        else
            result="DIFFERS ($(grep -c '^FAILED' "$out/$kernel-$name.txt") cells; see $out/$kernel-$name.txt)"
            status=1
        fi
        echo "$kernel ($arch) $name: $result, $(( $(date +%s) - start )) s"
    done
done
exit $status
