"""docs/safety.md and docs/hardware.md stay true: every test the hazard table
names exists, every fault code and block bit is documented, and the pin
table matches boards/pico.py PINS (read with ast: pico.py imports machine)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pen import core as C
from pen import faults as FT

ROOT = Path(__file__).resolve().parents[2]
SAFETY = (ROOT / "docs" / "safety.md").read_text()
HARDWARE = (ROOT / "docs" / "hardware.md").read_text()


def _defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id.startswith("test_"):
                        names.add(t.id)
    return names


def test_sr_every_test_named_in_the_hazard_table_exists() -> None:
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", SAFETY))
    assert len(named) >= 25
    missing = named - _defined_tests() - {"test_core_docs"}
    assert not missing, missing


def test_sr_every_requirement_has_a_test() -> None:
    tests = _defined_tests()
    for n in range(1, 10):
        assert any(t.startswith(f"test_sr{n}_") for t in tests), f"SR{n} has no test"
        assert f"SR{n}" in SAFETY


def test_sr4_fault_codes_and_block_bits_are_documented() -> None:
    for code, name in enumerate(FT.FAULT_NAMES):
        if code:
            assert re.search(rf"\| {code} \| `{name}` \|", SAFETY), name
    for bit, name in enumerate(C.BLOCK_NAMES):
        assert re.search(rf"\| {1 << bit} \| `{name}` \|", SAFETY), name


def test_core_hardware_pin_table_matches_pico_pins() -> None:
    tree = ast.parse((ROOT / "firmware" / "boards" / "pico.py").read_text())
    pins = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PINS" for t in node.targets):
            pins = ast.literal_eval(node.value)
    assert pins
    documented = dict(re.findall(r"^\| `([a-z0-9_]+)` \| (\d+) \|", HARDWARE, re.M))
    assert {k: int(v) for k, v in documented.items()} == pins


def test_sr_each_requirement_points_at_a_real_file() -> None:
    # docs/safety.md and docs/architecture.md name one file per SR: each exists
    arch = (ROOT / "docs" / "architecture.md").read_text()
    for doc in (SAFETY, arch):
        files = set(re.findall(r"`((?:firmware|host|sim|bench|tools)/[A-Za-z0-9_/]+\.py)`", doc))
        assert files, doc[:80]
        missing = [f for f in files if not (ROOT / f).exists()]
        assert not missing, missing
    for sr, name in (("SR1", "tilt"), ("SR2", "depth"), ("SR3", "drive"), ("SR4", "faults")):
        assert re.search(rf"\| {sr} [^|]*\| `firmware/pen/{name}\.py` \|", SAFETY), sr
