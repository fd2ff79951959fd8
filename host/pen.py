"""Pen: the Python API of a pen on a serial port, one method per penctl
subcommand."""

from __future__ import annotations

from types import TracebackType

from host.link import Link, parse_pairs, resolve_port

# values that are numbers are returned as numbers; units in docs/protocol.md
_INT_KEYS = {"proto", "current", "battery", "run_s", "strokes", "max_session_min", "cfg_writes", "boot"}
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


def _typed(pairs: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs.items():
        if k in _INT_KEYS:
            out[k] = int(v)
        elif k in _FLOAT_KEYS:
            out[k] = float(v)
        else:
            out[k] = v
    return out


class Pen:
    def __init__(self, port: str | None = None, timeout: float = 2.0) -> None:
        self.link = Link(resolve_port(port), timeout=timeout)

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

    def info(self) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request("id")))

    def status(self) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request("status")))

    def get(self, key: str | None = None) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request("get" if key is None else f"get {key}")))

    def set(self, key: str, value: object) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request(f"set {key} {value}")))

    def limits(self) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request("limits")))

    def clear_fault(self) -> None:
        self.link.request("clear-fault")

    # --- stored records (host/records.py, docs/persistence.md) ---
    def log(self, since: int = 0) -> list[dict[str, object]]:
        from host.records import read_log

        return read_log(self.link, since)

    def sessions(self, since: int = 0) -> list[dict[str, object]]:
        from host.records import read_sessions

        return read_sessions(self.link, since)

    def storage(self) -> dict[str, object]:
        return {k: (int(v) if v.isdigit() else v) for k, v in parse_pairs(self.link.request("storage")).items()}

    def session_end(self) -> None:
        """Close the open treatment record now (drive must be off)."""
        self.link.request("session-end")

    def stop(self) -> None:
        """Immediate STOP: the real-time byte, acted on before line parsing."""
        self.link.send_byte(b"!")
