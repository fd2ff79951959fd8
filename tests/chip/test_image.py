"""The image the clinic flashes: build/needle-pen.uf2 from `make firmware`
(tools/build_image.py, docs/hardware.md "Building the image").

What `make test` checks here (the image is a prerequisite of `make test`):
- the UF2 carries the pen's USB identity (device descriptor 2E8A:0005,
  manufacturer "NeedlePen", product "Needle Pen Controller"; not the bare
  MicroPython product string) and the stamped version;
- every firmware file is frozen in, and build/needle-pen.json matches the
  UF2 (sha256, sizes, version = FIRMWARE_VERSION + key);
- no path of this machine and no build-day date is in the image;
- reproducible, part 1: the frozen modules, the version stamp and the link
  are rebuilt in the cached tree and give the same bytes (~15 s);
- the cache key follows every input that goes into the image, and a second
  `make firmware` with nothing changed does nothing.
What `make test-deep` adds (NEEDLE_PEN_DEEP=1): reproducible, part 2: a
second build from scratch at another absolute path gives the same bytes
(~3 min on 2 cores).

Without the image these tests fail under CI=true and skip elsewhere.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sim.rp2040 import elf_symbols

ROOT = Path(__file__).resolve().parents[2]


def _load_tool(name: str) -> ModuleType:
    # by file, not through sys.path: tools/ names must not shadow the
    # simulator's modules (sim/device/flash.py) in other tests
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bi = _load_tool("build_image")

BUILD = ROOT / "build"
UF2 = BUILD / "needle-pen.uf2"
ELF = BUILD / "needle-pen.elf"
JSON = BUILD / "needle-pen.json"
UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
FLASH_BASE = 0x10000000


def require_image() -> None:
    if all(p.exists() for p in (UF2, ELF, JSON)):
        return
    msg = f"no image in {BUILD}: run `make firmware`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def info() -> dict[str, object]:
    require_image()
    return json.loads(JSON.read_text())


@pytest.fixture(scope="module")
def flash() -> bytes:
    """The flash contents the UF2 writes (UF2 blocks decoded, gaps as 0xFF)."""
    require_image()
    return uf2_to_flash(UF2.read_bytes())


def uf2_to_flash(data: bytes) -> bytes:
    assert len(data) % 512 == 0, "a UF2 is made of 512-byte blocks"
    out = bytearray()
    for off in range(0, len(data), 512):
        blk = data[off : off + 512]
        m0, m1, _flags, addr, size, _no, _count, _fam = (
            int.from_bytes(blk[i : i + 4], "little") for i in range(0, 32, 4)
        )
        assert (m0, m1) == UF2_MAGIC[:2] and int.from_bytes(blk[508:512], "little") == UF2_MAGIC[2]
        pos = addr - FLASH_BASE
        if len(out) < pos:
            out += b"\xff" * (pos - len(out))
        out[pos : pos + size] = blk[32 : 32 + size]
    return bytes(out)


def test_image_usb_identity_is_the_pens(flash: bytes) -> None:
    # the device descriptor: bLength 18, type 1, USB 2.00, ..., idVendor
    # 0x2E8A, idProduct 0x0005 (little-endian), as BRIEF.md fixes it
    assert re.search(rb"\x12\x01\x00\x02.{4}\x8a\x2e\x05\x00", flash, re.DOTALL), "no 2E8A:0005 device descriptor"
    assert b"NeedlePen\x00" in flash
    assert b"Needle Pen Controller\x00" in flash
    # a bare MicroPython Pico's strings: discovery tells the two apart by them
    assert b"Board in FS mode" not in flash


def test_image_version_is_stamped_and_reported(info: dict[str, object], flash: bytes) -> None:
    fw = bi.version_of(bi.read_inputs())
    key = str(info["key"])
    assert info["firmware_version"] == fw
    assert info["version"] == f"{fw}+{key[:12]}"
    # the frozen pen_image module holds it; pen.version reads it, `id`/`info` report image=
    assert str(info["version"]).encode() in flash
    assert b"pen_image.py" in flash
    version_py = (ROOT / "firmware" / "pen" / "version.py").read_text()
    assert "import pen_image" in version_py


def test_image_freezes_every_firmware_file(flash: bytes, info: dict[str, object]) -> None:
    files = bi.frozen_files()
    assert {"main.py", "boot.py", "pen/protocol.py", "boards/pico.py"} <= {p.as_posix() for p in files}
    missing = [p.as_posix() for p in files if p.as_posix().encode() + b"\x00" not in flash]
    assert not missing, f"not frozen into the image: {missing}"
    assert info["frozen_files"] == len(files)
    # nothing of the simulator or the tools goes into the image
    assert b"sim/device" not in flash and b"build_image" not in flash


def test_image_json_describes_the_uf2(info: dict[str, object], flash: bytes) -> None:
    uf2 = UF2.read_bytes()
    assert info["sha256"] == bi.sha256_bytes(uf2)
    assert info["uf2_bytes"] == len(uf2)
    assert info["elf_sha256"] == bi.sha256_file(ELF)
    flash_bytes = int(str(info["flash_bytes"]))
    assert len(flash) == flash_bytes or len(flash) == (flash_bytes + 255) // 256 * 256
    assert len(uf2) == (flash_bytes + 255) // 256 * 512
    ram = int(str(info["static_ram_bytes"]))
    assert ram >= int(str(info["data_bytes"])) + int(str(info["bss_bytes"])) + int(str(info["c_heap_bytes"]))
    assert ram < 64 * 1024, "static RAM eats into MicroPython's GC heap (DESIGN §7: >= 150 KB free)"
    # the pinned ceiling of the flash layout: the image must leave the
    # filesystem its 1408 KB (2 MB flash - 640 KB for code)
    assert flash_bytes < 640 * 1024


def test_image_has_no_machine_paths_or_build_day(flash: bytes, info: dict[str, object]) -> None:
    for path in {str(ROOT), str(Path.home()), str(bi.default_cache())}:
        assert path.encode() not in flash, f"{path} is in the image"
    epoch = int(str(info["source_date_epoch"]))
    day = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d")
    assert day.encode() in flash, "MicroPython's build date is SOURCE_DATE_EPOCH's day"
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    if today != day:
        assert today.encode() not in flash


def test_image_has_the_native_penusb_module(info: dict[str, object]) -> None:
    """A session belongs to one connection: the image carries the user C module `penusb` (USB CDC DTR,
    firmware/boards/pico.py host_connected); the build checks its
    registration in the ELF and lists it in the JSON."""
    assert info["user_c_modules"] == ["penusb"]
    syms = {name for _, _, name in elf_symbols(ELF)}
    assert "penusb_user_cmodule" in syms
    assert "penusb_connected_obj" in syms


def test_image_usb_cdc_tx_timeout_is_zero() -> None:
    """SR8 liveness: a CDC write never waits for a host that does not read.
    The board sets MICROPY_HW_USB_CDC_TX_TIMEOUT 0; penusb.c fails the
    build (#error) if the port's headers give shared/tinyusb another
    value, and the build makes the rp2 port's fixed 500 a default."""
    board_h = (ROOT / "image" / "board" / bi.BOARD / "mpconfigboard.h").read_text()
    assert re.search(r"^#define MICROPY_HW_USB_CDC_TX_TIMEOUT \(0\)$", board_h, re.M)
    penusb_c = (ROOT / "image" / "usermod" / "penusb" / "penusb.c").read_text()
    assert "#if MICROPY_HW_USB_CDC_TX_TIMEOUT != 0\n#error" in penusb_c


def test_image_design6_firmware_call_frames_stay_on_the_c_stack(info: dict[str, object]) -> None:
    """DESIGN §6, the loop allocates nothing: a bytecode call's frame over
    VM_MAX_STATE_ON_STACK comes from the GC heap (py/objfun.c; 44 B made the
    running loop allocate ~35 blocks a pass). The board raises it to 32
    words, the build makes objfun.c's definition a default
    (Tree.patch_vm_state_on_stack) and fails if a frozen firmware
    function's frame is larger; the JSON records both figures."""
    board_h = (ROOT / "image" / "board" / bi.BOARD / "mpconfigboard.h").read_text()
    assert bi.vm_state_on_stack(board_h) == 128
    assert bi.vm_state_on_stack("") == 44, "MicroPython's own value when the board sets none"
    assert info["vm_state_on_stack_bytes"] == 128
    largest = info["largest_frame_bytes"]
    assert isinstance(largest, int) and 44 < largest <= 128, largest
    # the check reads mpy-tool.py's names and prelude fields, firmware modules only
    frozen_c = (
        "    .fun_data = fun_data_pen_core_Core_tick,\n    .prelude = {\n        .n_state = 30,\n"
        "        .n_exc_stack = 2,\n    },\n"
        "    .fun_data = fun_data_asyncio_core_run,\n    .prelude = {\n        .n_state = 60,\n"
        "        .n_exc_stack = 0,\n    },\n"
    )
    assert bi.frozen_frames(frozen_c, [Path("pen/core.py")]) == {"pen_core_Core_tick": 136}


def test_image_port_build_folder_follows_the_board_configuration() -> None:
    """Clones with other board configurations share a cached tree without
    reconfiguring each other's build: the folder is keyed by the board
    definition and the user C modules' cmake files, not by firmware files."""
    inputs = bi.read_inputs()
    base = bi.port_build_key(inputs)
    fw = dict(inputs)
    fw[Path("firmware/pen/core.py")] = inputs[Path("firmware/pen/core.py")] + b"\n"
    assert bi.port_build_key(fw) == base
    for rel in (Path("image/board/NEEDLE_PEN/mpconfigboard.h"), Path("image/usermod/penusb/micropython.cmake")):
        changed = dict(inputs)
        changed[rel] = inputs[rel] + b"\n"
        assert bi.port_build_key(changed) != base, rel


def test_image_is_current() -> None:
    """build/ holds the image of the current inputs (`make test` builds it first)."""
    require_image()
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_image.py"), "--key"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert (BUILD / ".image-key").read_text().strip() == r.stdout.strip(), "stale image: run `make firmware`"


def test_image_second_build_does_nothing() -> None:
    require_image()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_image.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stderr, r.stderr


def test_image_key_follows_every_input() -> None:
    inputs = bi.read_inputs()
    skey = "0" * 64
    base = bi.image_key(skey, inputs)
    assert bi.image_key(skey, dict(inputs)) == base
    for rel in (Path("firmware/pen/core.py"), Path("firmware/main.py"), Path("image/manifest.py")):
        changed = dict(inputs)
        changed[rel] = inputs[rel] + b"\n"
        assert bi.image_key(skey, changed) != base, rel
    board_h = Path("image/board/NEEDLE_PEN/mpconfigboard.h")
    assert board_h in inputs
    assert Path("image/usermod/penusb/penusb.c") in inputs
    added = dict(inputs)
    added[Path("firmware/pen/new_module.py")] = b""
    assert bi.image_key(skey, added) != base
    assert bi.image_key("1" * 64, inputs) != base  # other sources or toolchain


def build_gives_the_same_bytes(check: str) -> None:
    """tools/build_image.py's --rebuild-check or --fresh-check: a rebuild
    compared byte for byte with build/."""
    require_image()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_image.py"), check], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the same" in r.stdout


def test_image_reproducible_rebuild_of_frozen_part_and_link() -> None:
    build_gives_the_same_bytes("--rebuild-check")


@pytest.mark.skipif(os.environ.get("NEEDLE_PEN_DEEP") != "1", reason="second full build: make test-deep")
def test_image_reproducible_second_build_at_another_path() -> None:
    build_gives_the_same_bytes("--fresh-check")


def test_image_toolchain_missing_prints_the_apt_line(tmp_path: Path) -> None:
    # no compiler, no apt-get on PATH: the one line to run, and a failure
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_image.py"), "--toolchain"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert r.returncode == 1
    assert "arm-none-eabi-gcc" in r.stderr
    assert f"apt-get install -y {bi.APT_PACKAGES}" in r.stderr


def test_image_docs_give_the_pinned_clone_commands() -> None:
    """docs/hardware.md shows what `build_image.py --print-clone` prints, and the pins match PINS.txt."""
    doc = (ROOT / "docs" / "hardware.md").read_text()
    for line in bi.clone_instructions().splitlines()[1:]:
        assert line.strip() in doc, line
    pins = ROOT.parent / "shared" / "vendor" / "PINS.txt"
    vendor = bi.default_vendor()
    if vendor is not None:
        pins = vendor / "PINS.txt"
    if pins.exists():
        for row in pins.read_text().splitlines():
            parts = row.split()
            if parts:
                assert bi.PINS[parts[0]][1] == parts[-1], row
