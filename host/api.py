"""Pen: the Python API of a pen on a serial port, one method per penctl
subcommand. Opening a Pen identifies it and refuses an incompatible one."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from host import auth as _auth
from host.link import RETRIES, Link, LinkError, PenIncompatible, PenRefused, parse_pairs, resolve_port
from host.names import BUILTIN, NAME_TABLES, Names

PROTOCOL_VERSION = 1  # the protocol this host speaks
REQUIRED_CAPS = {"crc", "rid", "rt"}

AUTH_REQUIRED = 40  # host/errors.json: the pen wants a technician session
AUTH_LOCKED = 42
# values that stay text even when they look like numbers (hex ids, hashes,
# versions, names); every other value that is a number is returned as one
_TEXT_KEYS = {"fw", "board", "serial", "caps", "cfg", "hash", "nonce", "key", "mode", "integrity", "session"}
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")


def _typed(pairs: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs.items():
        if k in _TEXT_KEYS:
            out[k] = v
        elif _INT.fullmatch(v):
            out[k] = int(v)
        elif _FLOAT.fullmatch(v):
            out[k] = float(v)
        else:
            out[k] = v
    return out


def parse_frame(text: str, names: Names = BUILTIN) -> dict[str, object] | None:
    """'~12 4 0 120000 ...' -> a dict in user units (Hz, mm, deg); None if malformed."""
    return names.parse_frame(text)


class NoKeyFile(PenRefused, _auth.KeyFileError):
    """The pen wants a technician and there is no key file: a refusal of
    the pen (code 40) and a key-file problem (penctl: exit 2, as everywhere
    a key file is missing)."""


class Pen:
    def __init__(
        self,
        port: str | None = None,
        timeout: float = 2.0,
        identify: bool = True,
        retries: int = RETRIES,
        key_file: str | Path | None = None,
    ) -> None:
        self.link = Link(resolve_port(port), timeout=timeout, retries=retries)
        self.identity: dict[str, object] = {}
        self.key_file = key_file  # the technician's key; None: host.auth.default_key_file()
        self.authenticated = False  # a technician session opened on this connection
        self.rebooting = False  # maintenance was granted: the pen reboots into the REPL
        self._names: Names | None = None  # read from the pen on first use (host/names.py)
        if identify:
            try:
                self.identity = self.identify()
                self.check_compatible(self.identity)
            except BaseException:
                self.link.close()
                raise

    def __enter__(self) -> Pen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.authenticated:  # sessions are per connection: end ours
            self.authenticated = False
            if self.rebooting:
                self.link.retries = 0
                self.link.timeout = min(self.link.timeout, 0.5)
            try:
                self.link.request("logout")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self.link.close()

    def check_compatible(self, ident: dict[str, object]) -> None:
        proto = ident.get("proto")
        if proto != PROTOCOL_VERSION:
            raise PenIncompatible(
                f"the pen on {self.link.port} (firmware {ident.get('fw', '?')}) speaks protocol {proto}, "
                f"this penctl speaks {PROTOCOL_VERSION}; update penctl or deploy matching firmware"
            )
        caps = set(str(ident.get("caps", "")).split(","))
        missing = REQUIRED_CAPS - caps
        if missing:
            raise PenIncompatible(
                f"the pen on {self.link.port} lacks {', '.join(sorted(missing))}; deploy current firmware"
            )

    @property
    def names(self) -> Names:
        """The pen's name tables, asked once, when first needed (telemetry,
        monitor): a plain `set` or `status` costs no extra round trips."""
        if self._names is None:
            self._names = self.read_names() if self.identity else BUILTIN
        return self._names

    def read_names(self) -> Names:
        """The firmware's state, fault, stop and telemetry names, from the
        pen ('dict', capability 'dict'); the built-in copy for older firmware."""
        caps = set(str(self.identity.get("caps", "")).split(","))
        if "dict" not in caps:
            return BUILTIN
        pairs: dict[str, str] = {}
        for table in NAME_TABLES:  # one line per table: `dict TABLE` -> `ok TABLE=a,b,...`
            pairs.update(parse_pairs(self.link.request("dict " + table)))
        return Names.from_reply(pairs)

    def request(self, body: str, idempotent: bool = True) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request(body, idempotent)))

    def identify(self) -> dict[str, object]:
        """The handshake: versions, capabilities, serial number, config hash."""
        return self.request("id")

    def info(self) -> dict[str, object]:
        """identify() plus the declared label parameters (SR10)."""
        return self.request("info")

    def status(self) -> dict[str, object]:
        return self.request("status")

    def get(self, key: str | None = None) -> dict[str, object]:
        return self.request("get" if key is None else f"get {key}")

    def set(self, key: str, value: object) -> dict[str, object]:
        """Change a working setting. An `ok` is durable: a pen that answers
        `stored=0` (the value is applied but its flash record still waits,
        to coalesce a flood of writes) is asked to `sync` before this
        returns, so what penctl reports as done survives a reset."""
        r = self.request(f"set {key} {value}")
        if r.get("stored") == 0:
            r.update(self.request("sync"))
        return r

    def limits(self) -> dict[str, object]:
        return self.request("limits")

    def set_limit(self, key: str, value: object) -> dict[str, object]:
        """Change a clinic limit (technician): authenticates with the key
        file when the pen asks for it."""
        return self.technician_request(f"limits set {key} {value}")

    limits_set = set_limit

    def config(self) -> dict[str, object]:
        return self.request("config")

    def import_config(self, values: dict[str, object]) -> dict[str, object]:
        """All or nothing; clinic limits in the file need the technician,
        who authenticates as for `limits set`."""
        from host.settings import CLINIC

        body = "config import " + " ".join(f"{k}={_num(v)}" for k, v in values.items())
        if any(s.key in values for s in CLINIC):
            return self.technician_request(body)
        return self.request(body)

    def clear_fault(self) -> None:
        self.link.request("clear-fault")

    def ping(self) -> None:
        self.link.request("ping")

    def stop(self) -> None:
        """Immediate STOP: the real-time byte, acted on before line parsing,
        then a checked 'stop' request that confirms it."""
        self.link.send_byte(b"!")
        self.link.request("stop")

    def heartbeat(self, timeout_ms: int | None = None) -> dict[str, object]:
        return self.request("hb" if timeout_ms is None else f"hb {int(timeout_ms)}")

    def telemetry(self, hz: int) -> dict[str, object]:
        return self.request(f"tel {int(hz)}")

    def frames(self, seconds: float | None = None, events: bool = False) -> Iterator[dict[str, object]]:
        """Telemetry frames as they arrive (after telemetry(hz)). Events are
        kept in self.events and, with events=True, yielded as {"event": text}.
        Requests may be sent between frames."""
        queue: deque[str] = deque()
        self.link.on_unprompted = queue.append
        end = None if seconds is None else time.monotonic() + seconds
        try:
            while end is None or time.monotonic() < end:
                if not queue:
                    self.link.poll(0.05)
                while queue:
                    text = queue.popleft()
                    if text.startswith("~"):
                        f = self.names.parse_frame(text)
                        if f is not None:
                            yield f
                    else:
                        self.events.append(text)
                        if events:
                            yield {"event": text[2:]}
        finally:
            self.link.on_unprompted = None

    # --- technician (docs/security.md) ---
    def technician_request(self, body: str) -> dict[str, object]:
        """A request that needs a technician session. Unless this connection
        has one, penctl asks `security` first (which writes nothing to the
        audit log) and authenticates with the key file when no session is
        open, so the pen never logs a `denied` entry for a routine command.
        A pen without a key, or one that cannot answer `security` now
        (needles running), gets the request as is and its answer stands.
        A missing, malformed or group/world-readable key file raises
        KeyFileError before anything is sent."""
        if not self.authenticated and self._needs_session():
            self._authenticate(_auth.load_key(_key_path(self.key_file)))
        try:
            return self.request(body)
        except PenRefused as e:
            if e.code != AUTH_REQUIRED or self.authenticated:
                raise
            path = _key_path(self.key_file)
            if not path.exists():
                raise NoKeyFile(
                    e.code,
                    e.name,
                    f"{e.text}; no key file at {path} (give --key-file, or provision with 'penctl auth --provision')",
                ) from None
            self._authenticate(_auth.load_key(path))
            return self.request(body)

    def _needs_session(self) -> bool:
        try:
            sec = self.security()
        except PenRefused:
            return False  # e.g. err 30 while running: the pen's answer to the request decides
        return sec.get("key") == "set" and sec.get("session") != "technician"

    def _authenticate(self, key: bytes) -> bytes:
        nonce = _auth.authenticate(self.link, key)
        self.authenticated = True
        return nonce

    def auth(self) -> dict[str, object]:
        """Open a technician session with the key file (if not open yet);
        returns the pen's security state."""
        if not self.authenticated:
            self._authenticate(_auth.load_key(self.key_file))
        return self.security()

    def logout(self) -> None:
        self.authenticated = False
        self.link.request("logout")

    def security(self) -> dict[str, object]:
        return self.request("security")

    def tilt_ref(self, action: str = "capture") -> dict[str, object]:
        return self.technician_request(f"tilt-ref {action}")

    def remote_start(self, hb_ms: int = 500) -> dict[str, object]:
        """Service mode (technician, docs/security.md): the pen starts the
        drive without a hand on the trigger and stops it unless heartbeat()
        comes at least every hb_ms (100-5000). Every other safety condition
        still applies; the pen must be ready."""
        return self.technician_request(f"remote start {int(hb_ms)}")

    def remote_stop(self) -> None:
        """Ends a remote run (anyone may; also served while the needles run)."""
        self.link.request("remote stop")

    def remote_run(self, seconds: float, hb_ms: int = 500, poll_s: float = 0.1) -> Iterator[dict[str, object]]:
        """remote_start(hb_ms), then heartbeats for `seconds`, yielding the
        pen's status after each one; ends early when the pen stops the drive
        by itself (tilt, cartridge, fault, ...). Always ends with
        remote_stop(), also on an error or Ctrl-C; if this host dies, the pen
        stops within hb_ms by itself."""
        self.remote_start(hb_ms)
        poll_s = min(poll_s, hb_ms / 3000.0)
        end = time.monotonic() + seconds
        seen_running = False
        try:
            while True:
                self.heartbeat()
                st = self.status()
                yield st
                state = st.get("state")
                seen_running = seen_running or state == "running"
                if time.monotonic() >= end or (state != "running" and (seen_running or state != "ready")):
                    return
                time.sleep(poll_s)
        finally:
            try:
                self.remote_stop()
            except LinkError:
                pass  # no heartbeat any more: the pen stops by itself

    def maintenance(self) -> dict[str, object]:
        """Drive locked off; on the board the pen reboots into the REPL for
        mpremote (penctl deploy). The session ends with the reboot."""
        r = self.technician_request("maintenance")
        # the session stays ours until the pen reboots: close() still logs
        # out (one short try, a rebooting pen does not answer), so a pen
        # that did not reboot is never left with an open session
        self.rebooting = True
        return r

    def provision(self, create: bool = True) -> str:
        """Factory step: create the key file (0600) if missing and give the
        key to a pen that has none. A pen that has this key already is left
        as it is (returns a note); one with another key is refused with the
        rotate command to use."""
        try:
            key = _auth.load_key(self.key_file)
        except _auth.KeyFileError:
            if not create or _key_path(self.key_file).exists():
                raise
            key = _auth.create_key_file(self.key_file)
        if self.security().get("key") == "set":
            try:
                self._authenticate(key)
            except PenRefused as e:
                if e.code == AUTH_LOCKED:  # locked out: the pen says so
                    raise
                raise PenRefused(
                    e.code,
                    e.name,
                    "the pen has a key already and it is not the one in "
                    f"{_key_path(self.key_file)}; to replace it: "
                    "penctl --key-file CURRENT_KEY auth --rotate NEW_KEY_FILE",
                ) from None
            return "the pen has this key already: nothing to provision"
        _auth.provision(self.link, key)
        return ""

    def rotate(self, new_key_file: str | Path) -> None:
        """Replace the pen's key by the one in new_key_file (created 0600 if
        missing); needs the current key. The pen ends the session."""
        old = _auth.load_key(self.key_file)
        if _key_path(new_key_file).exists():
            new = _auth.load_key(new_key_file)
        else:
            new = _auth.create_key_file(new_key_file)
        self.authenticated = True  # a session may open on the way: close() ends it
        _auth.rotate(self.link, old, new)
        self.authenticated = False  # the pen ended it with the rotation

    # --- stored records (host/records.py, docs/persistence.md) ---
    def log(self, since: int = 0) -> list[dict[str, Any]]:
        from host.records import read_log

        return read_log(self.link, since)

    def sessions(self, since: int = 0) -> list[dict[str, Any]]:
        from host.records import read_sessions

        return read_sessions(self.link, since)

    def loop(self, reset: bool = False) -> dict[str, object]:
        """The loop's own stopwatch (pen/looptime.py): period_us, passes,
        busy_mean_us / busy_max_us (a pass's work, from the end of its wait),
        tick_mean_us / tick_max_us (the control tick) and overruns (passes
        busier than the period), since boot or the last reset, on the
        pen's own microsecond clock. reset=True starts the figures again."""
        return self.request("loop reset" if reset else "loop")

    def storage(self) -> dict[str, object]:
        return {k: (int(v) if v.isdigit() else v) for k, v in parse_pairs(self.link.request("storage")).items()}

    def session_end(self) -> None:
        """End the session now (technician; drive must be off): closes the
        open treatment record, or, once the record closed at the session
        time or after the idle period, starts the next session (SR7)."""
        self.technician_request("session-end")

    @property
    def events(self) -> deque[str]:
        if not hasattr(self, "_events"):
            self._events: deque[str] = deque(maxlen=1000)
        return self._events


def _key_path(key_file: str | Path | None) -> Path:
    return Path(key_file) if key_file else _auth.default_key_file()


def _num(v: object) -> str:
    if isinstance(v, bool):
        raise LinkError("a configuration value cannot be true/false")
    if isinstance(v, float):
        return format(v, "g") if v == v else "nan"
    return str(v)
