# Two entry points, both usable on a fresh machine with Python 3.11:
#   make book   build the course (creates .venv, installs glmmteach, fetches MathJax, runs every lesson)
#   make test   run the whole test suite (builds the book first: the render tests look at it)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export PYTHONHASHSEED = 0

.PHONY: book test env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

env: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null

book: env
	bash scripts/fetch_mathjax.sh
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: book
	$(BIN)/pytest tests lessons --ignore=tests/grading_fixtures --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

clean:
	rm -rf _build _mathjax_dist
