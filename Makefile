# One entry point for everything. `make test` works from a fresh clone:
# it creates .venv and installs the pinned dependencies from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HYPOTHESIS_PROFILE ?= ci
export HYPOTHESIS_PROFILE

.PHONY: all venv test test-deep check demo flash clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

check: $(STAMP)
	$(PY) tools/compile_firmware.py --check
	$(VENV)/bin/ruff check host sim tests tools firmware

test: $(STAMP) check
	$(PY) -m pytest -q

test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m sim.demo

# the DESIGN §7 table; writes bench/results.json and prints the change since the last run
.PHONY: bench
bench: $(STAMP)
	$(PY) -m bench

flash: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make flash PORT=/dev/ttyACM0"; exit 2; }
	$(VENV)/bin/penctl --port $(PORT) deploy

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
