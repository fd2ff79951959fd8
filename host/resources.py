"""Where the files that come with needle-pen are, in a checkout and when
installed from the wheel: the firmware tree, the simulator's device code,
its scenarios and the tools deploy runs.

The wheel carries ``firmware/`` (every file under it) and ``tools/`` (the
firmware tools: compile_firmware.py, manifest.py) as top-level folders next
to ``host/`` and ``sim/``, laid out exactly as in the repository. So the
one root below holds in both cases, and the paths that code running under
MicroPython computes by itself (sim/device/runner.py puts
``../../firmware`` on its path) hold too. Everything that needs one of
these files asks this module, which names a missing file in one line
instead of a FileNotFoundError deep inside.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = "needle-pen"


class ResourceError(Exception):
    """A file that comes with needle-pen is missing (a broken installation)."""


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ResourceError(
            f"this needle-pen installation lacks {what} (expected {path}); reinstall needle-pen from its wheel"
        )
    return path


def firmware_dir() -> Path:
    """The firmware tree (main.py, boot.py, pen/, boards/)."""
    _need(ROOT / "firmware" / "pen" / "version.py", "the firmware")
    return ROOT / "firmware"


def sim_device_dir() -> Path:
    return _need(ROOT / "sim" / "device" / "runner.py", "the simulator's device code").parent


def scenarios_dir() -> Path:
    return _need(ROOT / "sim" / "scenarios", "the scenarios")


def tool(name: str) -> Path:
    """tools/NAME.py (compile_firmware, manifest)."""
    return _need(ROOT / "tools" / f"{name}.py", f"tools/{name}.py")


def firmware_version() -> str:
    text = (firmware_dir() / "pen" / "version.py").read_text()
    m = re.search(r'FIRMWARE_VERSION\s*=\s*"([^"]+)"', text)
    if not m:
        raise ResourceError("cannot read FIRMWARE_VERSION from firmware/pen/version.py")
    return m.group(1)


def package_version() -> str:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def version_line(prog: str) -> str:
    """`penctl --version` / `pensim --version`."""
    try:
        fw = firmware_version()
    except ResourceError:
        fw = "missing"
    return f"{prog} {package_version()} (needle-pen; firmware {fw}; from {ROOT})"
