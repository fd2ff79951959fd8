"""The firmware's names, in one place on the host: states, faults, stop
reasons and telemetry fields (issue 12: the pen publishes them, Klipper
style, so the host never types a name twice).

A pen whose `id` lists the capability ``dict`` answers the resident
command ``dict`` with

    ok states=boot,homing,... faults=none,overcurrent,... stops=none,trigger,... tel=seq,state,fault,...

(comma-separated, in index order: telemetry sends STATE and FAULT as
indexes into these lists). Pen.__init__ reads it once after the handshake
(`Names.from_reply`). Firmware older than that has no ``dict``: the host
then falls back to BUILTIN below, a copy of the tables of firmware 0.x
(pen/core.py, pen/protocol.py TEL_FIELDS), and says so (`source`).

Telemetry fields carry their unit in the name's suffix (``_mhz``, ``_um``,
``_cdeg``, ``_ma``, ``_mv``); the host converts by the suffix, so a field
the pen adds shows up without a host change.
"""

from __future__ import annotations

from dataclasses import dataclass

# suffix -> (user-facing unit, divisor)
SUFFIXES = {
    "_mhz": ("Hz", 1000.0),
    "_um": ("mm", 1000.0),
    "_cdeg": ("deg", 100.0),
    "_ma": ("mA", 1),
    "_mv": ("mV", 1),
}
INDEXED = {"state": "states", "fault": "faults"}  # telemetry fields sent as indexes


@dataclass(frozen=True)
class Names:
    states: tuple[str, ...]
    faults: tuple[str, ...]
    stops: tuple[str, ...]
    tel: tuple[str, ...]  # telemetry fields as the pen names them, in frame order
    source: str  # "pen" or why the built-in copy is used

    @classmethod
    def from_reply(cls, pairs: dict[str, str]) -> Names:
        def split(key: str) -> tuple[str, ...]:
            return tuple(w for w in pairs.get(key, "").split(",") if w)

        names = cls(split("states"), split("faults"), split("stops"), split("tel"), "pen")
        if not names.states or not names.faults or not names.tel:
            return BUILTIN.fallback("the pen's data dictionary is incomplete")
        return names

    def fallback(self, why: str) -> Names:
        return Names(self.states, self.faults, self.stops, self.tel, f"built-in tables ({why})")

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """(user name, unit) of each telemetry field, in frame order."""
        return tuple(user_field(f) for f in self.tel)

    def name_of(self, field: str, index: int) -> str:
        table: tuple[str, ...] = getattr(self, INDEXED[field])
        return table[index] if 0 <= index < len(table) else str(index)

    def parse_frame(self, text: str) -> dict[str, object] | None:
        """'~12 4 0 120000 ...' -> a dict in user units (Hz, mm, deg); None if malformed."""
        parts = text[1:].split()
        if len(parts) != len(self.tel) or not all(p.lstrip("-").isdigit() for p in parts):
            return None
        out: dict[str, object] = {}
        for field, raw in zip(self.tel, parts, strict=True):
            v = int(raw)
            user, _unit = user_field(field)
            if field in INDEXED:
                out[user] = self.name_of(field, v)
                continue
            div = next((d for s, (_u, d) in SUFFIXES.items() if field.endswith(s)), 1)
            out[user] = v / div if isinstance(div, float) else v
        return out


def user_field(field: str) -> tuple[str, str]:
    """'rate_set_mhz' -> ('rate_set', 'Hz'); 'seq' -> ('seq', '')."""
    for suffix, (unit, _div) in SUFFIXES.items():
        if field.endswith(suffix):
            return field[: -len(suffix)], unit
    return field, ""


# firmware 0.x, which does not publish its names (pen/core.py STATE_NAMES,
# FAULT_NAMES, STOP reasons; pen/protocol.py TEL_FIELDS)
BUILTIN = Names(
    states=("boot", "homing", "idle", "ready", "running", "fault", "safe"),
    faults=("none", "overcurrent", "stall", "hall_lost", "imu_lost", "imu_frozen", "depth", "rate_runaway", "homing"),
    stops=(
        "none",
        "trigger_released",
        "tilt",
        "cartridge",
        "battery",
        "fault",
        "session_time",
        "host_stop",
        "boot",
    ),
    tel=("seq", "state", "fault", "rate_set_mhz", "rate_mhz", "depth_um", "tilt_cdeg", "current_ma", "battery_mv"),
    source="built-in tables (firmware without the data dictionary)",
)
