"""What the host knows about the pen's settings without asking it: units,
hardware ranges and steps for help texts and tables. The pen enforces the
limits itself; a test keeps this table equal to firmware/pen/limits.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingInfo:
    key: str
    unit: str
    lo: str
    hi: str
    step: str
    cap: str | None  # the clinic limit that caps a working setting
    what: str

    def range_text(self) -> str:
        return f"{self.lo}-{self.hi} {self.unit}, step {self.step}"


WORKING = (
    SettingInfo("depth", "mm", "0.00", "2.50", "0.05", "max_depth", "needle depth"),
    SettingInfo("rate", "Hz", "25.0", "150.0", "0.1", "max_rate", "stroke rate"),
)
CLINIC = (
    SettingInfo("max_depth", "mm", "0.00", "2.50", "0.05", None, "clinic limit of depth"),
    SettingInfo("max_rate", "Hz", "25.0", "150.0", "0.1", None, "clinic limit of rate"),
    SettingInfo("max_tilt", "deg", "1.0", "20.0", "0.1", None, "tilt cone half-angle (vertical only)"),
    SettingInfo("max_session_min", "min", "1", "60", "1", None, "session time limit"),
)
BY_KEY = {s.key: s for s in WORKING + CLINIC}

# units of the status and telemetry values, for tables and CSV headers
UNITS = {
    "depth": "mm",
    "depth_target": "mm",
    "rate_set": "Hz",
    "rate": "Hz",
    "tilt": "deg",
    "duty": "%",
    "current": "mA",
    "battery": "mV",
    "run_s": "s",
    **{s.key: s.unit for s in WORKING + CLINIC},
}


def help_table(table: tuple[SettingInfo, ...]) -> str:
    lines: list[str] = []
    for s in table:
        cap = f", at most {s.cap}" if s.cap else ""
        lines.append(f"  {s.key:<16} {s.what} in {s.unit} ({s.range_text()}{cap})")
    return "\n".join(lines)


# decimals the pen shows for each value (tables print them the same way)
DECIMALS = {"depth": 2, "depth_target": 2, "max_depth": 2, "rate": 1, "rate_set": 1, "max_rate": 1}
DECIMALS.update({"tilt": 1, "max_tilt": 1, "duty": 1})
