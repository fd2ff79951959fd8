"""The published tables stay equal: firmware error codes = host/errors.json
= docs/protocol.md; host setting metadata = firmware limits; host CRC =
firmware CRC."""

from __future__ import annotations

import binascii
import json
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from pen import errors as E
from pen import limits as L
from pen.frame import crc16

from host import settings as S

ROOT = Path(__file__).resolve().parents[2]


def test_error_codes_equal_in_firmware_host_and_docs() -> None:
    fw = dict(E.NAMES)
    host = {e["code"]: e["name"] for e in json.loads((ROOT / "host" / "errors.json").read_text())["errors"]}
    docs = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\| (\d+) \| `([a-z_]+)` \|", (ROOT / "docs" / "protocol.md").read_text(), re.M)
    }
    assert fw == host == docs
    # every code has a hint, except limit_order: the pen's own text gives its advice
    # ("...; lower depth first"), and a second one would say it twice
    for e in json.loads((ROOT / "host" / "errors.json").read_text())["errors"]:
        assert bool(e.get("hint")) == (e["name"] != "limit_order"), e


def test_host_setting_ranges_match_firmware_limits() -> None:
    for table, host_table in ((L.WORKING, S.WORKING), (L.CLINIC, S.CLINIC)):
        assert [s.key for s in table] == [h.key for h in host_table]
        for s, h in zip(table, host_table, strict=True):
            assert h.unit == s.unit
            assert h.lo == s.show(s.hw_min) and h.hi == s.show(s.hw_max) and h.step == s.show(s.step)
            assert h.cap == s.clinic_key


@given(st.binary(max_size=300))
def test_host_and_firmware_crc_agree(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


def test_host_fallback_names_match_firmware() -> None:
    """The host's built-in names are only for firmware without the data
    dictionary; while the firmware has none, they must equal its tables."""
    from pen import core as C
    from pen import faults as FT
    from pen import protocol as P

    from host.names import BUILTIN

    assert BUILTIN.states == tuple(C.STATE_NAMES)
    assert BUILTIN.faults == tuple(FT.FAULT_NAMES)
    assert BUILTIN.stops == tuple(C.STOP_NAMES)
    assert ",".join(BUILTIN.tel) == P.TEL_FIELDS


def test_generated_host_tables_are_up_to_date() -> None:
    # host/errors.json and host/pen_tables.json come from the firmware's own
    # tables (tools/gen_tables.py); the pen reports the same with `dict`
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_tables.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    tables = json.loads((ROOT / "host" / "pen_tables.json").read_text())
    from pen import core as C
    from pen import faults as FT
    from pen import protocol as P

    assert tables["states"] == list(C.STATE_NAMES)
    assert tables["faults"] == list(FT.FAULT_NAMES)
    assert tables["stops"] == list(C.STOP_NAMES)
    assert ",".join(tables["tel"]) == P.TEL_FIELDS
