"""`pensim serve --runtime rp2040` prints the pty's path first, as with the
other runtimes, and serves the emulated chip until told to quit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.chip.conftest import need_chip


def test_chip_pensim_serve_rp2040_prints_port_first() -> None:
    need_chip()
    pensim = Path(sys.executable).parent / "pensim"
    with subprocess.Popen(
        [str(pensim), "serve", "--runtime", "rp2040", "--speed", "max"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as p:
        assert p.stdout is not None and p.stdin is not None
        first = p.stdout.readline()
        assert first.startswith("PORT /dev/"), first
        assert Path(first.split()[1]).exists()
        p.stdin.write("truth\n")
        p.stdin.flush()
        assert '"runtime": "rp2040"' in p.stdout.readline()
        p.stdin.write("quit\n")
        p.stdin.flush()
        assert p.wait(timeout=60) == 0
