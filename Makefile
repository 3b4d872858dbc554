# The two commands a new user runs: `make demo` and `make test`. Both create .venv and install.
# The distribution's Python 3.11 where it can make a venv: an optimized build with libpython
# linked in, where a default pyenv build is neither (--enable-shared, no --enable-optimizations)
# and a whole first rescore of the scoring benchmark took 6-12% more CPU on it (BENCHMARKS.md,
# Scoring). Else python3.11 on PATH.
SYSTEM_PYTHON := /usr/bin/python3.11
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import ensurepip, venv' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3.11)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench-ingest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/expansion demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest

clean:
	rm -rf var .pytest_cache
