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

# MicroPython stubs for type-checking firmware/ (rp2) and sim/device/ (unix
# port), pinned, each installed as the site-packages of a stub-only
# "interpreter" under .venv/mpstubs/ and kept OUT of the CPython venv's
# site-packages (tools/pyright/*.json explain the set-up).
MPSTUBS := $(VENV)/mpstubs
MPSTUBS_STDLIB := micropython-stdlib-stubs==1.29.0.post2
MPSTUBS_RP2 := micropython-rp2-rpi-pico-stubs==1.29.0.post1
MPSTUBS_UNIX := micropython-unix-stubs==1.29.0.post1
MPSTUBS_STAMP := $(MPSTUBS)/.installed-$(shell echo '$(MPSTUBS_STDLIB) $(MPSTUBS_RP2) $(MPSTUBS_UNIX)' | cksum | cut -d' ' -f1)
LINT_DIRS := host sim tests tools firmware
# `ruff format --check` is part of `make check`; RUFF_FORMAT_CHECK=0 skips it
# (e.g. while merging branches, before one `ruff format $(LINT_DIRS)`)
RUFF_FORMAT_CHECK ?= 1

$(MPSTUBS_STAMP): | $(STAMP)
	rm -rf $(MPSTUBS)
	$(PY) -m pip install --quiet --no-deps --target $(MPSTUBS)/rp2/lib/site-packages $(MPSTUBS_STDLIB) $(MPSTUBS_RP2)
	$(PY) -m pip install --quiet --no-deps --target $(MPSTUBS)/unix/lib/site-packages $(MPSTUBS_STDLIB) $(MPSTUBS_UNIX)
	touch $@

.PHONY: mpstubs
mpstubs: $(MPSTUBS_STAMP)

# static checks, ~10 s: mpy-cross on every MicroPython file, ruff lint and
# format, basedpyright strict on host/ sim/ tools/ (pyproject
# [tool.basedpyright]), basedpyright on firmware/ against the rp2 stubs and
# on sim/device/ against the unix-port stubs, and the module allow-list
check: $(STAMP) $(MPSTUBS_STAMP)
	$(PY) tools/compile_firmware.py --check
	$(VENV)/bin/ruff check $(LINT_DIRS)
ifneq ($(RUFF_FORMAT_CHECK),0)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)
endif
	$(VENV)/bin/basedpyright
	$(VENV)/bin/basedpyright -p tools/pyright/firmware.json
	$(VENV)/bin/basedpyright -p tools/pyright/sim_device.json
	$(PY) tools/check_imports.py

# the virtual Pico (tests/chip, make bench): rp2040js from package-lock.json
# (npm ci, exact versions) under node from Debian; as root the Makefile
# installs nodejs/npm with apt-get, otherwise it prints the line to run.
# tests/chip run the UF2 of `make firmware` (or $$NEEDLE_PEN_UF2).
NPM_STAMP := node_modules/.installed-$(shell cksum package-lock.json | cut -d' ' -f1)

$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm; \
	  else echo "node and npm are missing: sudo apt-get install -y nodejs npm"; exit 1; fi; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: node
node: $(NPM_STAMP)

test: $(STAMP) check $(NPM_STAMP)
	$(PY) -m pytest -q

test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m sim.demo

# the DESIGN §7 table; writes bench/results.json and prints the change since the last run
.PHONY: bench
bench: $(STAMP) $(NPM_STAMP)
	$(PY) -m bench

flash: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make flash PORT=/dev/ttyACM0"; exit 2; }
	$(VENV)/bin/penctl --port $(PORT) deploy

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis node_modules
