"""penctl's exit codes and the one line every failure becomes.

Exit codes (docs/protocol.md):
  0    success
  1    the pen refused the request (nothing changed); the line names the limit
  2    usage error: bad command line, key file missing/malformed/readable by
       others, or an optional part of needle-pen that is not installed
  3    link: the pen could not be found, opened or did not answer, or the
       line is too noisy to get a request through
  4    the device answers but is not a pen this penctl can use (old pen
       firmware, a bare MicroPython board, an echoing port)
  5    a file could not be read or written (including stdout: /dev/full, a
       closed pipe), or its content is invalid
  6    deploy failed
  70   internal error (a bug: please report it)
  128+N  stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); the
       technician session is logged out first
"""

from __future__ import annotations

import errno
import signal

from host.auth import KeyFileError
from host.config_file import ConfigFileError
from host.discover import DiscoveryError
from host.link import LinkError, PenIncompatible, PenRefused, PortUsageError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_LINK = 3
EXIT_INCOMPATIBLE = 4
EXIT_FILE = 5
EXIT_DEPLOY = 6
EXIT_INTERNAL = 70
EXIT_SIGNAL_BASE = 128

EPILOG = (
    "exit codes:\n  0 ok\n  1 refused by the pen (nothing changed)\n"
    "  2 usage error (also: key file, missing optional part)\n"
    "  3 pen not found, not reachable, not answering or line too noisy\n  4 incompatible pen or not a pen\n"
    "  5 file error (also stdout: full disk, closed pipe)\n  6 deploy failed\n"
    "  130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the technician session is logged out first)"
)


class CliError(Exception):
    """A one-line failure with its exit code."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


class Interrupted(BaseException):
    """A signal (SIGINT, SIGTERM, SIGHUP) stops penctl. A BaseException so
    that it unwinds every ``with Pen(...)`` (which logs out) like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def missing_extra(what: str, module: str, extra: str) -> CliError:
    """The one line for an optional dependency that is not installed."""
    return CliError(
        f"{what} needs {module}: install needle-pen[{extra}] (pip install 'needle-pen[{extra}]')", EXIT_USAGE
    )


def file_error(e: OSError, doing: str = "write") -> CliError:
    name = e.filename if e.filename is not None else "the output"
    return CliError(f"cannot {doing} {name}: {e.strerror or e}", EXIT_FILE)


def classify(e: BaseException) -> tuple[int, str]:
    """(exit code, one line without the 'penctl: ' prefix) for any failure."""
    if isinstance(e, Interrupted):
        return EXIT_SIGNAL_BASE + e.signum, f"stopped by {e}"
    if isinstance(e, KeyboardInterrupt):
        return EXIT_SIGNAL_BASE + signal.SIGINT, "interrupted"
    if isinstance(e, CliError):
        return e.code, str(e)
    if isinstance(e, KeyFileError):  # missing, malformed or readable by others: the same everywhere
        return EXIT_USAGE, str(e)
    if isinstance(e, PenRefused):
        return EXIT_REFUSED, str(e)
    if isinstance(e, PortUsageError):
        return EXIT_USAGE, str(e)
    if isinstance(e, PenIncompatible):
        return EXIT_INCOMPATIBLE, str(e)
    if isinstance(e, LinkError | DiscoveryError):
        return EXIT_LINK, str(e)
    if isinstance(e, ConfigFileError):
        return EXIT_FILE, str(e)
    if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ENOSPC)):
        if e.filename is None:
            return EXIT_FILE, f"cannot write the output: {e.strerror or e}"
    if isinstance(e, OSError) and e.filename is not None:
        return EXIT_FILE, f"cannot use {e.filename}: {e.strerror or e}"
    return EXIT_INTERNAL, f"internal error: {type(e).__name__}: {e}; please report it"
