"""The firmware's names, in one place on the host: states, faults, stop
reasons and telemetry fields (the pen publishes them, Klipper
style, so the host never types a name twice).

A pen whose `id` lists the capability ``dict`` answers the resident
command ``dict`` with

    > dict states
    ok states=boot,homing,...

one table per request (states, faults, stops, tel; comma-separated, in
index order: telemetry sends STATE and FAULT as indexes into these lists).
Pen.__init__ reads them once after the handshake (`Names.from_reply`).
Firmware without ``dict`` gets BUILTIN below: the tables of the firmware
this host was built with, host/pen_tables.json (written from the firmware's
own tables by tools/gen_tables.py, never typed by hand), and says so
(`source`).

Telemetry fields carry their unit in the name's suffix (``_mhz``, ``_um``,
``_cdeg``, ``_ma``, ``_mv``); the host converts by the suffix, so a field
the pen adds shows up without a host change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

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


# the tables of the firmware shipped with this host (tools/gen_tables.py)
_TABLES = json.loads(resources.files("host").joinpath("pen_tables.json").read_text())
BUILTIN = Names(
    states=tuple(_TABLES["states"]),
    faults=tuple(_TABLES["faults"]),
    stops=tuple(_TABLES["stops"]),
    tel=tuple(_TABLES["tel"]),
    source="built-in tables (firmware without the data dictionary)",
)
NAME_TABLES = ("states", "faults", "stops", "tel")
