#!/usr/bin/env bash
# Re-execute lesson notebooks in place, storing their outputs (what nbval compares a fresh run with).
#   scripts/execute_lessons.sh lessons/07_crossover_glmm.ipynb [...]
# Then check them under other OpenBLAS kernels: scripts/check_kernels.sh lessons/07_crossover_glmm.ipynb
set -euo pipefail
cd "$(dirname "$0")/.."
for lesson in "$@"; do
    start=$(date +%s)
    PYTHONHASHSEED=0 .venv/bin/jupyter execute --inplace --timeout=1800 "$lesson"
    echo "$lesson: executed in $(( $(date +%s) - start )) s"
done
