#!/usr/bin/env bash
# make pdf: the whole book as one PDF, _build/pdf/glmmteach-course.pdf.
#
# 1. A single-page HTML build of the book (jupyter-book --builder singlehtml, into _build/singlehtml; the page is
#    copied to _build/singlehtml/glmmteach-course.html, where its relative links resolve) from
#    the notebooks' stored outputs: a copy of _config.yml with execution off is passed with --config, so no
#    lesson runs again (nbval, in `make test`, proves that the stored outputs equal a fresh run).
# 2. Headless Chromium prints that page to PDF once MathJax has typeset it (the virtual-time budget lets
#    the page's scripts run to the end before printing), with no network access.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-.venv/bin}"
OUT_DIR="_build/pdf"
PDF="$OUT_DIR/glmmteach-course.pdf"
# Virtual milliseconds the page may run before it is printed (MathJax typesets a few thousand formulas).
BUDGET_MS="${PDF_TIME_BUDGET_MS:-120000}"

CHROMIUM=""
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" > /dev/null; then CHROMIUM="$(command -v "$name")"; break; fi
done
if [ -z "$CHROMIUM" ]; then
    echo "make pdf needs Chromium (apt-get install chromium)" >&2
    exit 1
fi

bash scripts/fetch_mathjax.sh
mkdir -p "$OUT_DIR"
CONFIG="$OUT_DIR/_config_no_execution.yml"
"$BIN/python" - "$CONFIG" <<'PY'
import sys
import yaml

with open("_config.yml", encoding="utf-8") as handle:
    config = yaml.safe_load(handle)
config.setdefault("execute", {})["execute_notebooks"] = "off"
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    yaml.safe_dump(config, handle, sort_keys=False, allow_unicode=True)
PY

start=$(date +%s)
"$BIN/jupyter-book" build . -q --builder singlehtml --config "$CONFIG" --warningiserror --keep-going
echo "single-page HTML built in $(( $(date +%s) - start )) s (_build/singlehtml)"

# Sphinx writes the single page at the root document's path (lessons/intro.html) but makes every link in it
# relative to the output folder itself (_static/, _images/, mathjax/): a copy at the top prints with its
# styles, figures and MathJax.
ROOT_DOC=$("$BIN/python" -c 'import yaml; print(yaml.safe_load(open("_toc.yml", encoding="utf-8"))["root"])')
PAGE="_build/singlehtml/glmmteach-course.html"
# Citations link to the page's own file ("lessons/intro.html#id8"): in the PDF they become links within it.
sed "s|href=\"$ROOT_DOC.html#|href=\"#|g" "_build/singlehtml/$ROOT_DOC.html" > "$PAGE"

start=$(date +%s)
PROFILE="$(mktemp -d)"
trap 'rm -rf "$PROFILE"' EXIT
rm -f "$PDF"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --disable-component-update --disable-sync --disable-extensions --user-data-dir="$PROFILE" \
    --host-resolver-rules="MAP * ~NOTFOUND" --run-all-compositor-stages-before-draw \
    --virtual-time-budget="$BUDGET_MS" --no-pdf-header-footer \
    --print-to-pdf="$PDF" "file://$PWD/$PAGE" 2> "$OUT_DIR/chromium.log" \
    || { tail -20 "$OUT_DIR/chromium.log"; echo "Chromium failed (log: $OUT_DIR/chromium.log)" >&2; exit 1; }
[ -s "$PDF" ] || { echo "Chromium wrote no PDF (log: $OUT_DIR/chromium.log)" >&2; exit 1; }
pages=$(pdfinfo "$PDF" 2> /dev/null | awk '/^Pages:/ {print $2}' || true)
echo "PDF printed in $(( $(date +%s) - start )) s: $PDF (${pages:-?} pages)"
