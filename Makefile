# One entry point for everything. `make test` works from a fresh clone:
# it creates .venv and installs the pinned dependencies from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/dev.lock | cksum | cut -d' ' -f1)

HYPOTHESIS_PROFILE ?= ci
export HYPOTHESIS_PROFILE

.PHONY: all venv test test-deep check demo flash clean

all: test

$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# requirements/*.lock from pyproject.toml (pip's resolver, hashes of the files
# it picks for this platform); a test keeps the pins of both equal
.PHONY: lock
lock: $(STAMP)
	$(PY) requirements/lock.py

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

# the image is a prerequisite: tests/chip needs build/needle-pen.uf2 (cached:
# a no-op when its inputs have not changed, docs/hardware.md)
# The tests run on both cores (pytest-xdist): a file stays whole on one
# worker (--dist loadfile), so the tests of a file that share one booted
# pen (tests/chip) keep their order. PYTEST_WORKERS=0 runs them in-process.
PYTEST_WORKERS ?= 2
PYTEST_PAR := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

test: $(STAMP) check firmware $(NPM_STAMP)
	$(PY) -m pytest -q $(PYTEST_PAR)

# deeper property runs, and tests/chip/test_image.py's second full image build
# at another path (NEEDLE_PEN_DEEP=1)
test-deep: $(STAMP) firmware
	HYPOTHESIS_PROFILE=deep NEEDLE_PEN_DEEP=1 $(PY) -m pytest -q $(PYTEST_PAR)

demo: $(STAMP)
	$(PY) -m sim.demo

# the DESIGN §7 table; writes bench/results.json and prints the change since the last run.
# With PORT=... the loop-pass figures of a connected pen instead, timed by the
# pen itself (bench/board.py; KEY_FILE=... also runs the needles in service
# mode; BENCH_S=seconds of running, default 10)
.PHONY: bench
bench: $(STAMP) $(NPM_STAMP)
	$(if $(PORT),$(PY) -m bench.board --port $(PORT) $(if $(KEY_FILE),--key-file $(KEY_FILE)) $(if $(BENCH_S),--seconds $(BENCH_S)),$(PY) -m bench)

# ---- the firmware image: `make firmware` -> build/needle-pen.uf2 (+ .elf, .json)
# tools/build_image.py (CPython stdlib only, no venv needed) does the build;
# docs/hardware.md explains sources, cache and timings. Options:
#   VENDOR=DIR         the vendored archives (default ../shared/vendor)
#   MICROPY_SRC=DIR    an extracted MicroPython tree with submodules instead
#   PICOTOOL_SRC=DIR   picotool sources (with MICROPY_SRC, without archives)
#   IMAGE_CACHE=DIR    the cache (default $${XDG_CACHE_HOME:-~/.cache}/needle-pen)
IMAGE_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
IMAGE_ARGS := -j $(IMAGE_JOBS) $(if $(VENDOR),--vendor $(VENDOR)) $(if $(MICROPY_SRC),--micropy-src $(MICROPY_SRC)) \
	$(if $(PICOTOOL_SRC),--picotool-src $(PICOTOOL_SRC)) $(if $(IMAGE_CACHE),--cache $(IMAGE_CACHE))

.PHONY: firmware toolchain
firmware: toolchain
	$(PYTHON) tools/build_image.py $(IMAGE_ARGS)

# the Debian toolchain: installed with apt-get (after apt-get update) when
# a piece is missing and make runs as root (CI), otherwise the one line to
# run is printed and the build fails
toolchain:
	$(PYTHON) tools/build_image.py --toolchain

# puts the image on a board: picotool (or a copy to the RPI-RP2 drive) when a
# board is in BOOTSEL mode, else `penctl deploy` over PORT; then verifies the
# version with `penctl info`. FLASH_ARGS=--dry-run prints the plan only.
flash: $(STAMP) firmware
	$(PY) tools/flash_image.py $(if $(PORT),--port $(PORT)) $(FLASH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis node_modules
