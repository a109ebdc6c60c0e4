# Two entry points, as in README: `make demo` trains the default WAE, `make test` runs the tests.
# Both create .venv with the pinned CPU build of PyTorch (see README for GPU machines).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test demo test lint docs clean

EXAMPLE_PLUGIN := plugins/wae-toolkit-energy

$(VENV)/.installed: pyproject.toml constraints.txt $(EXAMPLE_PLUGIN)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e . -e $(EXAMPLE_PLUGIN)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/wae run

test: install-test
	$(PY) -m pytest -q

lint: install-test
	$(PIP) install -q ruff mypy
	$(VENV)/bin/ruff check wae_toolkit tests benchmarks docs/*.py $(EXAMPLE_PLUGIN)
	$(VENV)/bin/ruff format --check wae_toolkit tests benchmarks docs/*.py $(EXAMPLE_PLUGIN)
	$(VENV)/bin/mypy wae_toolkit

# The documentation site: regenerate the CLI reference, then build strictly into site/.
docs: install-test
	$(PY) docs/gen_cli_reference.py
	$(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) runs site .pytest_cache
