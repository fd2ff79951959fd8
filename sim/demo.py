"""make demo: a virtual pen in MicroPython and a technician's session
through penctl, start to finish, without hardware."""

from __future__ import annotations

import os
import subprocess
import sys

from sim.pen import SimulatedPen


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def penctl(port: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "host.cli", "--port", port, *args]
    print("$ penctl " + " ".join(args), flush=True)
    r = subprocess.run(cmd, text=True, capture_output=True)
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.stdout.write(r.stderr)


def main() -> int:
    step("starting a simulated pen (firmware in MicroPython)")
    with SimulatedPen(runtime=os.environ.get("PEN_RUNTIME", "micropython"), speed=1.0) as pen:
        print(f"pen on {pen.port}")
        step("identify the pen")
        penctl(pen.port, "info")
        step("scalp treatment settings: 1.5 mm, 100 Hz")
        penctl(pen.port, "set", "depth", "1.5")
        penctl(pen.port, "set", "rate", "100")
        penctl(pen.port, "set", "depth", "2.6")
        pen.advance(1500)
        penctl(pen.port, "status")
        step("trigger pressed, pen vertical on the skin")
        pen.set_contact(True)
        pen.press_trigger()
        pen.advance(1500)
        penctl(pen.port, "status")
        t = pen.truth()
        print(f"world: {t['stroke_hz']:.1f} strokes/s, needle depth {t['needle_depth_mm']:.2f} mm")
        step("pen tilted to 25 degrees: the drive stops")
        pen.set_tilt(25)
        pen.advance(100)
        penctl(pen.port, "status")
        pen.release_trigger()
    return 0


if __name__ == "__main__":
    sys.exit(main())
