"""make demo: a clinic technician's session with a virtual pen, start to
finish, without hardware.

The firmware runs in the real MicroPython interpreter on a simulated pen;
every step is a real `penctl` command on the pen's serial port. It ends with
the session's treatment record and a PNG plot of rate, depth, tilt and state.
Files go to out/demo/ (or $DEMO_OUT).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sim.simulated_pen import SimulatedPen

ROOT = Path(__file__).resolve().parent.parent
SPEED = 4.0  # simulated seconds per wall second: a 40 s treatment in ~10 s


class Demo:
    def __init__(self, pen: SimulatedPen, out: Path) -> None:
        self.pen = pen
        self.out = out
        self.key = out / "technician.key"
        self.env = dict(os.environ, PENCTL_PORT=pen.port)
        self.t0 = time.monotonic()
        self.failures = 0

    def step(self, title: str) -> None:
        print(f"\n[{time.monotonic() - self.t0:5.1f} s] == {title}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def penctl(self, *args: str, expect_fail: bool = False) -> str:
        shown = " ".join(args)
        print(f"$ penctl {shown}", flush=True)
        r = subprocess.run(
            [sys.executable, "-m", "host.cli", "--key-file", str(self.key), *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=60,
        )
        sys.stdout.write(r.stdout)
        if r.returncode:
            sys.stdout.write(r.stderr)
            if not expect_fail:
                self.failures += 1
                print(f"   !! unexpected failure (exit {r.returncode})", flush=True)
        elif expect_fail:
            self.failures += 1
            print("   !! this should have been refused", flush=True)
        return r.stdout

    def world(self) -> str:
        t = self.pen.truth()
        return (
            f"world: {t['stroke_hz']:.1f} strokes/s, needle stop at {t['needle_depth_mm']:.2f} mm, "
            f"tilt {t['tilt_deg']:.0f} deg"
        )


def main() -> int:
    out = Path(os.environ.get("DEMO_OUT", ROOT / "out" / "demo")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in ("technician.key", "session.csv", "session.png", "sessions.csv"):
        (out / old).unlink(missing_ok=True)
    runtime = os.environ.get("PEN_RUNTIME", "micropython")
    print(f"Starting a virtual pen: firmware in {runtime}, time x{SPEED:g}", flush=True)
    with SimulatedPen(runtime=runtime, speed=SPEED, trace=out / "session.csv", trace_interval_ms=10) as pen:
        d = Demo(pen, out)

        d.step("1. find the pen")
        d.penctl("ports")
        d.say(f"(a real pen shows up by its USB VID:PID; the virtual one is {pen.port}, given as PENCTL_PORT)")
        d.penctl("info")

        d.step("2. authenticate as the clinic's technician")
        d.say("factory step on a new pen: create a key file (mode 0600) and give the key to the pen once")
        d.penctl("auth", "--provision")
        d.penctl("auth")

        d.step("3. clinic limits (technician only)")
        d.penctl("limits", "set", "max_depth", "1.8")
        d.penctl("limits", "set", "max_tilt", "15")
        d.penctl("limits", "set", "max_session_min", "25")
        d.penctl("limits")

        d.step("4. the scalp treatment: 1.5 mm, 100 strokes/s")
        d.penctl("set", "depth", "1.5")
        d.penctl("set", "rate", "100")
        d.say("a value above the clinic limit is refused and nothing changes:")
        d.penctl("set", "depth", "2.0", expect_fail=True)
        pen.advance(1500)  # homing done, needle stop moved to 1.50 mm
        d.penctl("status")
        d.say(d.world())

        d.step("5. treatment: pen vertical on the scalp, trigger pressed")
        pen.set_contact(True)
        pen.press_trigger()
        pen.advance(8000)
        d.penctl("status")
        d.say(d.world())

        d.step("6. the pen is tilted to 25 degrees: the drive stops at once")
        pen.set_tilt(25.0)
        pen.advance(500)
        d.penctl("status")
        d.say(d.world())
        d.say("back to vertical, trigger released and pressed again to re-arm")
        pen.set_tilt(0.0)
        pen.release_trigger()
        pen.advance(600)
        pen.press_trigger()
        pen.advance(8000)
        d.say(d.world())
        pen.release_trigger()
        pen.set_contact(False)
        pen.advance(500)

        d.step("7. the session's treatment record")
        d.penctl("sessions", "--end", "--csv", str(out / "sessions.csv"))
        d.say(f"clinic records: {out / 'sessions.csv'}")
        d.penctl("log")

        d.step("8. plot of the session")
        png = pen.plot(out / "session.png", title="Scalp treatment: 1.5 mm, 100 Hz, one tilt")
        d.say(f"trace: {out / 'session.csv'}")
        d.say(f"plot:  {png}")
        failures = d.failures
    print(
        f"\ndemo finished in {time.monotonic() - d.t0:.1f} s"
        + (f", {failures} unexpected failures" if failures else "")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
