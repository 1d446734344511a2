# Two entry points, both usable on a fresh machine with Python 3.11:
#   make book   build the course (creates .venv, installs glmmteach, fetches MathJax, runs every lesson)
#   make test   run the whole test suite (builds the book first: the render tests look at it)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
export PYTHONHASHSEED = 0

.PHONY: book test env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# glmmteach is installed editable, so only a change of pyproject.toml (dependencies, package data) needs
# a reinstall: `make test` right after `make book` installs nothing.
# pip's own output goes to $(VENV)/pip.log and is shown only when the install fails.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing glmmteach and its dependencies into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/python -m pip install -e ".[book,test]" > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log; echo "pip install failed (log above)"; exit 1; }
	$(BIN)/python scripts/install_kernel.py
	touch $@

env: $(STAMP)

# -q: Sphinx's status lines stay out (warnings and errors still show); glmmteach.bookbuild prints one
# line per notebook with its execution time.
book: env
	bash scripts/fetch_mathjax.sh
	@start=$$(date +%s); $(BIN)/jupyter-book build . -q --warningiserror --keep-going \
		&& echo "book built in $$(( $$(date +%s) - start )) s: _build/html/index.html"

test: book
	$(BIN)/pytest tests lessons --ignore=tests/grading_fixtures --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -rs --durations=15

clean:
	rm -rf _build _mathjax_dist

# The whole book as one PDF (_build/pdf/glmmteach-course.pdf): a single-page HTML build from the stored
# outputs (no lesson runs again), printed by headless Chromium; see scripts/build_pdf.sh.
.PHONY: pdf
pdf: env
	bash scripts/build_pdf.sh
