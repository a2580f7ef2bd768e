# Two commands do all the set-up on a fresh machine:
#   make demo   -- installs into .venv, then runs the whole pipeline on the embedded digits
#   make test   -- installs into .venv, then runs ruff and the test suite
# Both install the optional `export` extra (anndata, pyarrow) so the export round trips
# are tested, not skipped.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch must be installed before the project: a bare `torch`
# requirement would otherwise pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
DEMO ?= demo-output

.PHONY: setup example demo test test-slow lint browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml plugins/vaekit-zoo/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,export]" -e plugins/vaekit-zoo
	touch $@

# The example plugin (test components, a logger that writes example-log.csv into every
# run) is for the test suite and for reading, not for a user's install: only the test
# targets add it.
example: $(VENV)/.example

$(VENV)/.example: $(VENV)/.installed plugins/vaekit-example/pyproject.toml
	$(BIN)/pip install --quiet -e plugins/vaekit-example
	touch $@

demo: setup
	bash scripts/demo.sh "$(DEMO)"

lint: setup
	$(BIN)/ruff check vaekit tests plugins benchmarks datasets
	$(BIN)/ruff format --check vaekit tests plugins benchmarks datasets

test: setup example lint
	$(BIN)/python -m pytest -q

# Debian's chromium for the report's browser test (root only; never fails, the test skips)
browser:
	bash scripts/install-browser.sh

test-slow: setup example
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(DEMO)
