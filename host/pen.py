"""Pen: the Python API of a pen on a serial port, one method per penctl
subcommand."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from host import auth as _auth
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
    def __init__(self, port: str | None = None, timeout: float = 2.0, key_file: str | None = None) -> None:
        self.link = Link(resolve_port(port), timeout=timeout)
        self.key_file = key_file  # None: host.auth.default_key_file()
        self.authenticated = False

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
        if self.authenticated:
            try:
                self.link.request("logout")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
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

    # --- technician (docs/security.md): authenticated automatically, once
    # per connection, when a technician command needs it ---
    def auth(self) -> dict[str, object]:
        if not self.authenticated:
            _auth.authenticate(self.link, _auth.load_key(self.key_file))
            self.authenticated = True
        return self.security()

    def security(self) -> dict[str, object]:
        return _typed(parse_pairs(self.link.request("security")))

    def limits_set(self, key: str, value: object) -> dict[str, object]:
        self.auth()
        return _typed(parse_pairs(self.link.request(f"limits set {key} {value}")))

    def tilt_ref(self, action: str = "capture") -> dict[str, object]:
        self.auth()
        return parse_pairs(self.link.request(f"tilt-ref {action}"))

    def maintenance(self) -> dict[str, object]:
        """Drive locked off; on the board the pen reboots into the REPL for
        mpremote (penctl deploy)."""
        self.auth()
        return parse_pairs(self.link.request("maintenance"))

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

    def rotate(self, new_key_file: str) -> None:
        """Replace the pen's key by the one in new_key_file (created 0600 if
        missing); needs the current key."""
        old = _auth.load_key(self.key_file)
        if _key_path(new_key_file).exists():
            new = _auth.load_key(new_key_file)
        else:
            new = _auth.create_key_file(new_key_file)
        _auth.rotate(self.link, old, new)
        self.authenticated = False  # the pen ends the session on rotation


def _key_path(key_file: str | None) -> Path:
    return Path(key_file) if key_file else _auth.default_key_file()
