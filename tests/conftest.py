"""Shared test set-up: import paths for the firmware and the simulator's
device side, hypothesis profiles, and a factory for simulated pens."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "firmware", ROOT / "sim" / "device", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# bounded for `make test` (CI: 2 cores, 10 minutes); deeper for `make test-deep`
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, print_blob=True)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# penctl's default key file (host.auth.default_key_file) lives under
# $XDG_CONFIG_HOME: the tests get a folder of their own, so a technician's
# real key on the machine never changes what a test sees (and no test
# writes one there). Set before any test, so subprocesses inherit it.
_CONFIG_HOME = Path(tempfile.mkdtemp(prefix="needle-pen-tests-config-"))
os.environ["XDG_CONFIG_HOME"] = str(_CONFIG_HOME)
atexit.register(shutil.rmtree, _CONFIG_HOME, True)


@pytest.fixture(autouse=True)
def _config_home_per_test(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """... and each test a fresh one: a key that one test provisions at the
    default path must not be there for the next (xdist runs files in any
    order on a worker)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


RUNTIMES = ["micropython", "cpython"]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fast_pen(runtime: str) -> Iterator[object]:
    """A virtual pen running as fast as it can, on each runtime."""
    from sim import SimulatedPen

    with SimulatedPen(runtime=runtime, speed=0) as pen:
        yield pen
