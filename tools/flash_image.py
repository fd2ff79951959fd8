"""`make flash [PORT=...]`: put the pen's image on a board, then verify it.

1. A board in BOOTSEL mode (picotool sees it): `picotool load -x
   build/needle-pen.uf2` (-x: run it once loaded). Without picotool, the
   board's RPI-RP2 drive when it is mounted: the UF2 is copied onto it.
2. No board in BOOTSEL mode but PORT given: `penctl --port PORT deploy`,
   which copies the firmware as .mpy files over mpremote (docs/hardware.md:
   what that changes on a pen that runs the frozen image).
3. Verify with `penctl [--port PORT] info --json`: after a UF2, `image`
   must be the version in build/needle-pen.json; after a deploy, `fw` must
   be firmware/pen/version.py's (penctl deploy checks that itself too).

  flash_image.py [--port PORT] [--dry-run] [--assume bootsel|none|mount:DIR]

--dry-run prints the plan (every command line) and runs nothing. --assume
replaces the detection of the board's state (for tests and rehearsals).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
UF2 = BUILD / "needle-pen.uf2"
IMAGE_JSON = BUILD / "needle-pen.json"
MOUNT_GLOBS = ("/media/*/RPI-RP2", "/media/RPI-RP2", "/run/media/*/RPI-RP2", "/mnt/RPI-RP2")
VERIFY_WAIT_S = 20.0  # the board reboots and USB enumerates again


class FlashError(Exception):
    """A step failed; the message says which."""


@dataclass
class Step:
    what: str
    argv: list[str] = field(default_factory=lambda: list[str]())
    copy_to: Path | None = None

    def show(self) -> str:
        if self.copy_to is not None:
            return f"cp {shlex.quote(str(UF2))} {shlex.quote(str(self.copy_to))} && sync"
        return shlex.join(self.argv)


@dataclass
class Plan:
    how: str  # "picotool", "mount", "deploy"
    steps: list[Step]
    expect: dict[str, str]  # `info` fields and the values they must have

    def expected(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.expect.items())


def find_picotool() -> str | None:
    """picotool on PATH, else the one `make firmware` built in its cache."""
    exe = shutil.which("picotool")
    if exe:
        return exe
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    built = sorted(glob.glob(f"{base}/needle-pen/tree-*/tools/picotool/picotool/picotool"), key=os.path.getmtime)
    return built[-1] if built else None


def find_mount() -> Path | None:
    for pattern in MOUNT_GLOBS:
        for cand in sorted(glob.glob(pattern)):
            if (Path(cand) / "INFO_UF2.TXT").exists():
                return Path(cand)
    return None


def bootsel_present(picotool: str | None) -> bool:
    if picotool is None:
        return False
    try:
        r = subprocess.run([picotool, "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FlashError(f"{picotool} info: {e}") from None
    return r.returncode == 0


def image_version() -> str:
    try:
        return str(json.loads(IMAGE_JSON.read_text())["version"])
    except (OSError, ValueError, KeyError) as e:
        raise FlashError(f"no image: {IMAGE_JSON} ({e}); run `make firmware`") from None


def image_expect() -> dict[str, str]:
    # the flashed image, and its own (frozen) code running: files deployed
    # earlier stay in the filesystem across a UF2 and would shadow it
    return {"image": image_version(), "code": "frozen"}


def firmware_version() -> str:
    sys.path.insert(0, str(ROOT))
    from host.deploy import firmware_version as fw

    return fw()


def penctl_argv(penctl: str, port: str | None, *args: str) -> list[str]:
    return [*shlex.split(penctl), *(["--port", port] if port else []), *args]


def make_plan(state: str, port: str | None, picotool: str | None, penctl: str) -> Plan:
    """state: "bootsel", "mount:DIR" or "none" (nothing in BOOTSEL mode)."""
    if state == "bootsel":
        if picotool is None:
            raise FlashError("a board in BOOTSEL mode needs picotool: run `make firmware` (it builds one)")
        steps = [Step("load the UF2 into flash and run it", [picotool, "load", "-x", str(UF2)])]
        return Plan("picotool", steps, image_expect())
    if state.startswith("mount:"):
        mount = Path(state.split(":", 1)[1])
        steps = [Step(f"copy the UF2 onto the RPI-RP2 drive at {mount}", copy_to=mount / UF2.name)]
        return Plan("mount", steps, image_expect())
    if not port:
        raise FlashError(
            "no board in BOOTSEL mode (hold BOOTSEL while plugging the Pico in) and no PORT to deploy to; "
            "usage: make flash [PORT=/dev/ttyACM0]"
        )
    steps = [Step("copy the firmware files over mpremote (penctl deploy)", penctl_argv(penctl, port, "deploy"))]
    return Plan("deploy", steps, {"fw": firmware_version(), "code": "files"})


def detect(picotool: str | None) -> str:
    if bootsel_present(picotool):
        return "bootsel"
    mount = find_mount()
    return f"mount:{mount}" if mount is not None else "none"


def execute(plan: Plan) -> None:
    for step in plan.steps:
        print(f"flash: {step.what}: {step.show()}", file=sys.stderr, flush=True)
        if step.copy_to is not None:
            shutil.copyfile(UF2, step.copy_to)
            os.sync()  # the board reboots once the whole UF2 is written
            continue
        r = subprocess.run(step.argv)
        if r.returncode != 0:
            raise FlashError(f"{step.show()} failed (exit {r.returncode})")


def verify(plan: Plan, port: str | None, penctl: str, wait_s: float = VERIFY_WAIT_S) -> str:
    """Ask the pen for `info` until it answers (it reboots after flashing)."""
    argv = penctl_argv(penctl, port, "--json", "info")
    end = time.monotonic() + wait_s
    why = "no answer"
    while True:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode == 0:
            try:
                info = json.loads(r.stdout)
            except ValueError:
                raise FlashError(f"{shlex.join(argv)}: not JSON: {r.stdout.strip()[:120]}") from None
            fields = cast(dict[str, object], info) if isinstance(info, dict) else {}
            got = {k: str(fields.get(k, "(none)")) for k in plan.expect}
            if got != plan.expect:
                shown = " ".join(f"{k}={v}" for k, v in got.items())
                hint = ""
                if got.get("code") == "files" and plan.expect.get("code") == "frozen":
                    hint = (
                        "; files copied by an earlier `penctl deploy` shadow the image's code: remove them "
                        "(docs/hardware.md, 'Going back to the image')"
                    )
                raise FlashError(f"the pen reports {shown}, expected {plan.expected()}{hint}")
            return plan.expected()
        why = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no answer"]
        why = why[0]
        if time.monotonic() >= end:
            raise FlashError(f"the pen did not answer `info` within {wait_s:g} s: {why}")
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", help="serial port of the pen (for deploy, and to verify)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--assume", help="the board's state instead of detecting it: bootsel, none or mount:DIR")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--picotool", help="picotool to use (default: PATH, else the one make firmware built)")
    ap.add_argument(
        "--penctl", default=str(Path(sys.executable).parent / "penctl"), help="penctl command (default: the venv's)"
    )
    ap.add_argument("--verify-wait", type=float, default=VERIFY_WAIT_S, help="seconds to wait for the pen")
    args = ap.parse_args(argv)
    try:
        if not UF2.exists():
            raise FlashError(f"no {UF2}: run `make firmware`")
        picotool = args.picotool or find_picotool()
        state = args.assume or detect(picotool)
        if state not in ("bootsel", "none") and not state.startswith("mount:"):
            raise FlashError(f"--assume {state}: expected bootsel, none or mount:DIR")
        plan = make_plan(state, args.port, picotool, args.penctl)
        verify_argv = penctl_argv(args.penctl, args.port, "--json", "info")
        print(f"flash: board state: {state}; plan: {plan.how}")
        for step in plan.steps:
            print(f"  {step.show()}")
        if not args.no_verify:
            print(f"  {shlex.join(verify_argv)}  # expect {plan.expected()}")
        if args.dry_run:
            return 0
        execute(plan)
        if not args.no_verify:
            got = verify(plan, args.port, args.penctl, args.verify_wait)
            print(f"flash: verified: the pen reports {got}")
        return 0
    except FlashError as e:
        print(f"flash: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
