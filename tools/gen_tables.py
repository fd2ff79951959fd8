"""Writes the host's copies of the pen's tables from the firmware's own
(the firmware is the one place they are said):

  host/errors.json      error codes and names from firmware/pen/errors.py
                        (the host's hint per code is kept from the file)
  host/pen_tables.json  the data dictionary the pen reports with `dict`:
                        states, faults, stop reasons, block reasons,
                        telemetry fields, settings and clinic limits

  python tools/gen_tables.py           rewrite both files
  python tools/gen_tables.py --check   exit 1 if either is out of date
                                       (tests/repo/test_protocol_table.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ERRORS_JSON = ROOT / "host" / "errors.json"
TABLES_JSON = ROOT / "host" / "pen_tables.json"
NO_HINT = "see the error table in docs/protocol.md"


def _firmware() -> tuple[Any, Any]:
    import importlib

    sys.path.insert(0, str(ROOT / "firmware"))
    fw_errors: Any = importlib.import_module("pen.errors")
    fw_protocol: Any = importlib.import_module("pen.protocol")
    return fw_errors, fw_protocol


def _settings(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in text.split(","):
        key, unit, shown, lo, hi, step, cap = item.split(":")
        out.append(
            {
                "key": key,
                "unit": unit,
                "decimals": int(shown),
                "min": lo,
                "max": hi,
                "step": step,
                "clinic_limit": None if cap == "-" else cap,
            }
        )
    return out


def render() -> dict[Path, str]:
    """The text each generated file must hold."""
    fw_errors, fw_protocol = _firmware()
    hints: dict[int, str] = {}
    if ERRORS_JSON.exists():
        for e in json.loads(ERRORS_JSON.read_text())["errors"]:
            hints[int(e["code"])] = str(e.get("hint") or "")  # "" on purpose: the pen's own text says it all
    names: dict[int, str] = fw_errors.NAMES
    errors = {
        "comment": "Error codes of the pen's serial protocol (firmware/pen/errors.py, docs/protocol.md); "
        "written by tools/gen_tables.py, a test keeps the three equal.",
        "errors": [{"code": c, "name": names[c], "hint": hints[c] if c in hints else NO_HINT} for c in sorted(names)],
    }
    tables: dict[str, Any] = {
        "comment": "The pen's data dictionary ('dict' command, docs/protocol.md); written by tools/gen_tables.py "
        "from the firmware's tables. A name's position in a list is its number on the wire.",
    }
    for name, text in fw_protocol.dictionary():
        if name in ("settings", "limits"):
            tables[name] = _settings(text)
        elif name == "errors":
            continue  # host/errors.json
        else:
            tables[name] = text.split(",")
    return {
        ERRORS_JSON: json.dumps(errors, indent=1) + "\n",
        TABLES_JSON: json.dumps(tables, indent=1) + "\n",
    }


def stale() -> list[Path]:
    return [p for p, text in render().items() if not p.exists() or p.read_text() != text]


def main() -> int:
    ap = argparse.ArgumentParser(description="host copies of the pen's tables, from the firmware's")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = ap.parse_args()
    if args.check:
        bad = stale()
        for p in bad:
            print(f"{p.relative_to(ROOT)} is out of date: run python tools/gen_tables.py")
        return 1 if bad else 0
    for p, text in render().items():
        p.write_text(text)
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
