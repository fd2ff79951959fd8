"""penctl subcommands of the security module (docs/security.md): ``auth``
(with ``--provision`` and ``--rotate NEW_KEY_FILE``), ``security``,
``tilt-ref`` and ``remote`` (service-mode remote start). Registered on host.cli's table when host.cli imports this
module (host.cli.EXTENSIONS).

The key file is the global ``--key-file`` (default: host.auth.default_key_file(),
``$XDG_CONFIG_HOME/penctl/key``). ``penctl limits set`` (host/cli.py) and
the commands here authenticate with it by themselves when the pen asks;
a missing, malformed or group/world-readable key file is one line and
exit code 2 (host.cli.main catches host.auth.KeyFileError).
"""

from __future__ import annotations

import argparse
import json

from host.cli import EXIT_OK, EXIT_REFUSED, emit, open_pen, subcommand


def _setup_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provision",
        action="store_true",
        help="factory step: create the key file (0600) if missing and give the key to a pen that has none",
    )
    p.add_argument(
        "--rotate",
        metavar="NEW_KEY_FILE",
        help="replace the pen's key by the one in NEW_KEY_FILE (created 0600 if missing); needs the current key",
    )


@subcommand(
    "auth",
    "authenticate as technician with the key file; --provision (factory) / --rotate NEW_KEY_FILE",
    read=True,
    setup=_setup_auth,
)
def cmd_auth(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        if args.provision:
            pen.provision()
        if args.rotate:
            pen.rotate(args.rotate)
            pen.key_file = args.rotate  # the old key stopped working: show the new one works
        emit(pen.auth(), args.json, units=False)
    return EXIT_OK


@subcommand("security", "key provisioned?, technician session, failed attempts, lock-out, integrity, mode", read=True)
def cmd_security(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.security(), args.json, units=False)
    return EXIT_OK


def _setup_tilt_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["capture", "reset"], help="capture: the pen's current pose is upright")


@subcommand(
    "tilt-ref",
    "capture the tilt reference (pen held still, upright) or reset it (technician)",
    setup=_setup_tilt_ref,
)
def cmd_tilt_ref(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.tilt_ref(args.action), args.json, units=False)
    return EXIT_OK


def _setup_remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, required=True, help="how long to run the drive (s)")
    p.add_argument(
        "--hb-ms",
        type=int,
        default=500,
        help="heartbeat timeout (100-5000 ms): the pen stops when penctl stops sending (default 500)",
    )


@subcommand(
    "remote",
    "service mode (technician): run the drive N seconds without the trigger, under a heartbeat",
    read=True,
    setup=_setup_remote,
    description=(
        "Bench test: the pen starts the drive without a hand on the trigger and keeps it on only "
        "while penctl sends a heartbeat; every other safety condition (tilt, cartridge, battery, "
        "faults, session time) still stops it. Prints the status while it runs, then stops the drive. "
        "Exit 1 when the pen stopped the drive before the time was up."
    ),
)
def cmd_remote(args: argparse.Namespace) -> int:
    last: dict[str, object] = {}
    with open_pen(args) as pen:
        for st in pen.remote_run(args.seconds, args.hb_ms):
            last = st
            if args.json:
                print(json.dumps(st, sort_keys=True), flush=True)
            else:
                print(
                    f"state={st.get('state')} rate={st.get('rate')} Hz depth={st.get('depth')} mm "
                    f"tilt={st.get('tilt')} deg run_s={st.get('run_s')}",
                    flush=True,
                )
        final = pen.status()
    if last.get("state") != "running":
        stop = final.get("stop")
        print(f"the pen stopped the drive: stop={stop} block={final.get('block')}")
        return EXIT_REFUSED
    if not args.json:
        emit({"state": final.get("state"), "stop": final.get("stop")}, False, units=False)
    return EXIT_OK
