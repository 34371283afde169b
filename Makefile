# steplens: `make demo` sets everything up and starts the demo; `make test` sets up and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The PostgreSQL run of the suite; CI sets REQUIRE_POSTGRES=1 so that an unreachable server fails it.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/steplens

.PHONY: demo test setup setup-dev lint clean gpu-wheels

$(VENV)/.stamp-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[tool,worker]"
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-base pyproject.toml
	$(PY) -m pip install -q -e ".[tool,worker,dev]"
	touch $@

# The local .env (generated secret key, debug on, SQLite): plain `manage.py ...` commands then run.
.env:
	$(PY) scripts/local_env.py

setup: $(VENV)/.stamp-base .env

setup-dev: $(VENV)/.stamp-dev .env
	bash scripts/ensure_chromium.sh

demo: setup
	bash scripts/demo.sh

test: setup-dev
	bash scripts/test.sh

lint: setup-dev
	$(VENV)/bin/ruff check .

# The packages the device tool's GPU machine lacks (Python 3.12, no registry), at the versions
# installed here, as wheels in .whl/ for scripts/gpu_measurements.sh (carry=[".whl"]).
GPU_WHEELS := trl datasets dill multiprocess transformers tokenizers regex
gpu-wheels: setup-dev
	rm -rf .whl && mkdir -p .whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $$($(PY) -c 'import sys; from importlib.metadata import version; print(*(f"{n}=={version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
