#!/usr/bin/env bash
# Fetch MathJax 3 (not 4) once into a cache and copy the subset the book needs into
# _mathjax_dist/mathjax, which Sphinx copies to the site root (html_extra_path), so that
# math renders with no network access.  Idempotent: skips the download when cached.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR=".cache/mathjax"
DEST_DIR="_mathjax_dist/mathjax"
MATHJAX_VERSION="3.2.2"

if [ ! -f "$CACHE_DIR/node_modules/mathjax/es5/tex-chtml-full.js" ]; then
    mkdir -p "$CACHE_DIR"
    npm install --prefix "$CACHE_DIR" --no-audit --no-fund --no-save "mathjax@$MATHJAX_VERSION"
fi

SRC="$CACHE_DIR/node_modules/mathjax/es5"
# tex-chtml-full.js bundles every TeX extension, so nothing is loaded dynamically
# except the CHTML woff-v2 fonts.  It is installed under the name the config points at.
if [ ! -f "$DEST_DIR/tex-chtml.js" ] || ! cmp -s "$SRC/tex-chtml-full.js" "$DEST_DIR/tex-chtml.js"; then
    rm -rf "$DEST_DIR"
    mkdir -p "$DEST_DIR/output/chtml/fonts"
    cp "$SRC/tex-chtml-full.js" "$DEST_DIR/tex-chtml.js"
    cp -r "$SRC/output/chtml/fonts/woff-v2" "$DEST_DIR/output/chtml/fonts/"
    cp "$CACHE_DIR/node_modules/mathjax/LICENSE" "$DEST_DIR/LICENSE"
fi
echo "MathJax $MATHJAX_VERSION ready in $DEST_DIR"
