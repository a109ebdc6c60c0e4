# Two entry points, as in README: `make demo` trains the default WAE, `make test` runs the tests.
# Both create .venv with the pinned CPU build of PyTorch (see README for GPU machines).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test demo test lint docs clean gpu-check

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

# The GPU check (docs/performance.md, "How the GPU figures are made"): the CUDA tests and the GPU
# benchmarks in one budgeted run, reports in $(GPU_OUT) (gpu_check.md, gpu_check.json, logs.txt).
# It runs with the Python already there (GPU_PYTHON, default .venv's, else python3) and never
# creates .venv: on a GPU machine first `bash benchmarks/gpu_setup.sh` (installs .whl/ into
# GPU_SITE and the project, offline), then `make gpu-check GPU_PYTHON=python3 GPU_SITE=/tmp/site`.
# Without a GPU it runs the CPU smoke sizes in under a minute (tests/test_gpu_check.py does).
# GPU_CHECK_ARGS passes more options, e.g. "--budget 240" or "--parts env,tests".
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_OUT ?= $(if $(OUT),$(OUT),gpu-check-out)
GPU_SITE ?=
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py --out "$(GPU_OUT)" $(if $(GPU_SITE),--site "$(GPU_SITE)") $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) runs site .pytest_cache gpu-check-out
