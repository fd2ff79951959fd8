"""Pen: the Python API of a pen on a serial port, one method per penctl
subcommand. Opening a Pen identifies it and refuses an incompatible one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from host import auth as _auth
from host.link import Link, LinkError, PenIncompatible, PenRefused, parse_pairs, resolve_port

PROTOCOL_VERSION = 1  # the protocol this host speaks
REQUIRED_CAPS = {"crc", "rid", "rt"}

# values that are numbers are returned as numbers; units in docs/protocol.md
_INT_KEYS = {
    "proto",
    "current",
    "battery",
    "run_s",
    "strokes",
    "max_session_min",
    "max_line",
    "hz",
    "period_ms",
    "seq",
    "timeout_ms",
    "applied",
    "fails",
    "locked_s",
    "events",
    "idle_s",
}
AUTH_REQUIRED = 40  # host/errors.json: the pen wants a technician session
_FLOAT_KEYS = {
    "depth",
    "depth_target",
    "rate",
    "rate_set",
    "tilt",
    "duty",
    "max_depth",
    "max_rate",
    "max_tilt",
}
# telemetry frame fields (pen/protocol.py TEL_FIELDS) -> user units
TEL_FIELDS = ("seq", "state", "fault", "rate_set_mhz", "rate_mhz", "depth_um", "tilt_cdeg", "current_ma", "battery_mv")
STATE_NAMES = ("boot", "homing", "idle", "ready", "running", "fault", "safe")
FAULT_NAMES = (
    "none",
    "overcurrent",
    "stall",
    "hall_lost",
    "imu_lost",
    "imu_frozen",
    "depth",
    "rate_runaway",
    "homing",
    "imu_implausible",
)


def _typed(pairs: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs.items():
        try:
            if k in _INT_KEYS:
                out[k] = int(v)
                continue
            if k in _FLOAT_KEYS:
                out[k] = float(v)
                continue
        except ValueError:
            pass
        out[k] = v
    return out


def parse_frame(text: str) -> dict[str, object] | None:
    """'~12 4 0 120000 ...' -> a dict in user units (Hz, mm, deg); None if malformed."""
    parts = text[1:].split()
    if len(parts) != len(TEL_FIELDS) or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    v = dict(zip(TEL_FIELDS, (int(p) for p in parts), strict=True))
    st, fa = v["state"], v["fault"]
    return {
        "seq": v["seq"],
        "state": STATE_NAMES[st] if 0 <= st < len(STATE_NAMES) else str(st),
        "fault": FAULT_NAMES[fa] if 0 <= fa < len(FAULT_NAMES) else str(fa),
        "rate_set": v["rate_set_mhz"] / 1000.0,
        "rate": v["rate_mhz"] / 1000.0,
        "depth": v["depth_um"] / 1000.0,
        "tilt": v["tilt_cdeg"] / 100.0,
        "current": v["current_ma"],
        "battery": v["battery_mv"],
    }


class Pen:
    def __init__(
        self,
        port: str | None = None,
        timeout: float = 2.0,
        identify: bool = True,
        retries: int = 1,
        key_file: str | Path | None = None,
    ) -> None:
        self.link = Link(resolve_port(port), timeout=timeout, retries=retries)
        self.identity: dict[str, object] = {}
        self.key_file = key_file  # the technician's key; None: host.auth.default_key_file()
        self.authenticated = False  # a technician session opened on this connection
        if identify:
            try:
                self.identity = self.identify()
                self.check_compatible(self.identity)
            except BaseException:
                self.link.close()
                raise

    def __enter__(self) -> Pen:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.authenticated:  # sessions are per connection: end ours
            self.authenticated = False
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
        return self.request(f"set {key} {value}")

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
        body = "config import " + " ".join(f"{k}={_num(v)}" for k, v in values.items())
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
                        f = parse_frame(text)
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
        """A request that needs a technician session: sent as is, and when
        the pen answers auth_required (err 40), sent again after
        authenticating with the key file (once per connection). Without a
        key file the refusal stands (PenRefused, naming the missing file);
        a malformed or group/world-readable one raises KeyFileError."""
        try:
            return self.request(body)
        except PenRefused as e:
            if e.code != AUTH_REQUIRED or self.authenticated:
                raise
            refusal = e
        path = _key_path(self.key_file)
        if not path.exists():  # nothing to authenticate with: the pen's refusal stands
            raise PenRefused(
                refusal.code,
                refusal.name,
                f"{refusal.text}; no key file at {path} (give --key-file, or provision with 'penctl auth --provision')",
            ) from None
        self._authenticate(_auth.load_key(path))  # KeyFileError: malformed or readable by others
        return self.request(body)

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
        self.authenticated = False  # no logout: a rebooting pen would not answer
        return r

    def provision(self, create: bool = True) -> None:
        """Factory step: create the key file (0600) if missing and give the
        key to a pen that has none."""
        try:
            key = _auth.load_key(self.key_file)
        except _auth.KeyFileError:
            if not create or _key_path(self.key_file).exists():
                raise
            key = _auth.create_key_file(self.key_file)
        _auth.provision(self.link, key)

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

    def storage(self) -> dict[str, object]:
        return {k: (int(v) if v.isdigit() else v) for k, v in parse_pairs(self.link.request("storage")).items()}

    def session_end(self) -> None:
        """Close the open treatment record now (drive must be off)."""
        self.link.request("session-end")

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
