"""Pen: the Python API of a pen on a serial port, one method per penctl
subcommand. Opening a Pen identifies it and refuses an incompatible one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType

from host.link import Link, LinkError, PenIncompatible, parse_pairs, resolve_port

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
}
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
    def __init__(self, port: str | None = None, timeout: float = 2.0, identify: bool = True, retries: int = 1) -> None:
        self.link = Link(resolve_port(port), timeout=timeout, retries=retries)
        self.identity: dict[str, object] = {}
        if identify:
            try:
                self.identity = self.info()
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

    def info(self) -> dict[str, object]:
        return self.request("id")

    def status(self) -> dict[str, object]:
        return self.request("status")

    def get(self, key: str | None = None) -> dict[str, object]:
        return self.request("get" if key is None else f"get {key}")

    def set(self, key: str, value: object) -> dict[str, object]:
        return self.request(f"set {key} {value}")

    def limits(self) -> dict[str, object]:
        return self.request("limits")

    def set_limit(self, key: str, value: object) -> dict[str, object]:
        return self.request(f"limits set {key} {value}")

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

    @property
    def events(self) -> deque[str]:
        if not hasattr(self, "_events"):
            self._events: deque[str] = deque(maxlen=1000)
        return self._events


def _num(v: object) -> str:
    if isinstance(v, bool):
        raise LinkError("a configuration value cannot be true/false")
    if isinstance(v, float):
        return format(v, "g") if v == v else "nan"
    return str(v)
