"""Build the pen's firmware image (`make firmware`): MicroPython's rp2 port for
our board definition (image/board/NEEDLE_PEN, based on RPI_PICO) with the
pen's firmware frozen in through image/manifest.py.

  build_image.py                 build/needle-pen.{uf2,elf,json} (cached)
  build_image.py --key           print the cache key of the current inputs
  build_image.py --rebuild-check rebuild the frozen part and the link in the
                                 cached tree, compare the bytes with build/
  build_image.py --fresh-check   a second full build in a new folder (another
                                 absolute path), compare the bytes with build/
  build_image.py --print-clone   how to get the pinned sources without the
                                 vendored archives
  build_image.py --toolchain     check the Debian toolchain; as root install
                                 what is missing with apt-get

Sources: the vendored archives (../shared/vendor/*.tar.xz next to the clone,
or --vendor DIR), or --micropy-src DIR (an already-extracted MicroPython tree
with its submodules; picotool then comes from the vendored archive or
--picotool-src DIR). docs/hardware.md describes the whole build.

Caching (two levels, both outside the clone, under --cache, by default
${XDG_CACHE_HOME:-~/.cache}/needle-pen):
- images/<key>/: the finished image. The key hashes the sources (archive
  checksums, or the MICROPY_SRC commit and its diff), the toolchain versions,
  this script, the manifest and board files and every frozen firmware file.
  A hit copies the image into build/; a key equal to build/.image-key does
  nothing at all.
- tree-<source key>/: the extracted sources, mpy-cross, picotool and the
  port's build folder. A change of firmware files only rebuilds the port
  incrementally there. Our inputs are staged into the tree (stage/), so the
  tree never points back at one clone.

Reproducible: SOURCE_DATE_EPOCH (fixed by the sources), MicroPython's
version string set from the pins (no `git describe` of whatever repository
the tree sits in), -ffile-prefix-map for the source and build folders.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
IMAGE_DIR = ROOT / "image"
BOARD = "NEEDLE_PEN"
OUT_NAME = "needle-pen"
# the frozen firmware: what runs on the pen (not tools/, not sim/)
FROZEN_TOP = ("main.py", "boot.py", "bootguard.py")
FROZEN_PACKAGES = ("pen", "boards")
# the native user C modules built into the image (image/usermod, passed to
# the rp2 port as USER_C_MODULES): their names, checked in the image
USERMOD_DIR = "usermod"
USER_C_MODULES = ("penusb",)
# the frozen module that carries the image's version (not in the source tree:
# written into the staging folder only, so `penctl deploy` never copies it)
STAMP_MODULE = "pen_image.py"
# bump when the layout of a cached tree changes (forces a fresh tree)
TREE_FORMAT = 1
KEEP_IMAGES = 8
KEEP_TREES = 2
KEEP_PORT_BUILDS = 3  # port build folders per tree, one per board configuration
APT_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi cmake build-essential libusb-1.0-0-dev pkg-config"
MP_ARCHIVE = "micropython-rp2-src.tar.xz"
PT_ARCHIVE = "picotool-src.tar.xz"
# the pinned commits (../shared/vendor/PINS.txt), for a clone where no archive exists
PINS = {
    "micropython": ("https://github.com/micropython/micropython", "af47daf3b02b9f391cced3fc2ac6e9bf688b4639"),
    "lib/pico-sdk": ("https://github.com/raspberrypi/pico-sdk", "a1438dff1d38bd9c65dbd693f0e5db4b9ae91779"),
    "lib/tinyusb": ("https://github.com/hathach/tinyusb", "aa0fc2e08f1c2dd6f026a431e8989357fbb4c5bf"),
    "lib/micropython-lib": (
        "https://github.com/micropython/micropython-lib",
        "8380c7bb8f9e5e5260e9539156742925e00366b2",
    ),
    "lib/mbedtls": ("https://github.com/Mbed-TLS/mbedtls", "0bebf8b8c7f07abe3571ded48a11aa907a1ffb20"),
    "picotool": ("https://github.com/raspberrypi/picotool", "a7eb3988f0645239185fadb4e25d8279478c2dbb"),
}
# the USB identity the image must carry (BRIEF: fixed interface)
USB_MANUFACTURER = "NeedlePen"
USB_PRODUCT = "Needle Pen Controller"


class BuildError(Exception):
    """A step of the build failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"firmware: {msg}", file=sys.stderr, flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, quiet: bool = True) -> str:
    """Run a build step; on failure raise with the tail of its output."""
    r = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT, text=True
    )
    if r.returncode != 0:
        tail = "\n".join((r.stdout or "").splitlines()[-40:])
        raise BuildError(f"{' '.join(cmd[:4])} ... failed (exit {r.returncode})\n{tail}")
    return r.stdout or ""


# ---------------------------------------------------------------- inputs


def frozen_files(firmware: Path = FIRMWARE) -> list[Path]:
    """Every file frozen into the image, relative to firmware/."""
    out = [Path(n) for n in FROZEN_TOP]
    for pkg in FROZEN_PACKAGES:
        out += sorted(p.relative_to(firmware) for p in (firmware / pkg).rglob("*.py") if "__pycache__" not in p.parts)
    return out


def image_files() -> list[Path]:
    """The manifest and board definition, relative to image/."""
    return sorted(
        p.relative_to(IMAGE_DIR) for p in IMAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def toolchain_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for tool in ("arm-none-eabi-gcc", "cmake", "cc"):
        exe = shutil.which(tool)
        if exe is None:
            raise BuildError(f"{tool} not found; install the toolchain: apt-get install -y {APT_PACKAGES}")
        out[tool] = run([exe, "--version"]).splitlines()[0].strip()
    return out


def missing_toolchain() -> list[str]:
    """The Debian toolchain pieces this machine lacks."""
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "cmake", "make", "cc", "c++", "pkg-config")]
    missing = [t for t in missing if shutil.which(t) is None]
    if "arm-none-eabi-gcc" not in missing:
        r = subprocess.run(
            ["arm-none-eabi-gcc", "-E", "-x", "c", "-"], input="#include <stdio.h>\n", capture_output=True, text=True
        )
        if r.returncode != 0:
            missing.append("newlib")
    if "pkg-config" not in missing:
        if subprocess.run(["pkg-config", "--exists", "libusb-1.0"]).returncode != 0:
            missing.append("libusb-1.0")
    return missing


def ensure_toolchain() -> int:
    """`make toolchain`: install what is missing with apt-get when running as
    root (CI: a fresh machine), else print the one line to run and fail."""
    missing = missing_toolchain()
    if not missing:
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"toolchain: missing {' '.join(missing)}; installing with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *APT_PACKAGES.split()]):
            if subprocess.run(cmd, env=env).returncode != 0:
                log(f"toolchain: {' '.join(cmd)} failed")
                return 1
        still = missing_toolchain()
        if still:
            log(f"toolchain: still missing after apt-get: {' '.join(still)}")
            return 1
        return 0
    log(f"toolchain: missing {' '.join(missing)}; install it with:\n  sudo apt-get install -y {APT_PACKAGES}")
    return 1


class Sources:
    """Where the MicroPython tree (and picotool) come from, and their key."""

    def __init__(self, vendor: Path | None, micropy_src: Path | None, picotool_src: Path | None) -> None:
        self.vendor = vendor
        self.micropy_src = micropy_src
        self.picotool_src = picotool_src
        self.parts: dict[str, str] = {}
        if micropy_src is not None:
            self.parts["micropython"] = git_state(micropy_src)
        elif vendor is not None:
            self.parts[MP_ARCHIVE] = sha256_file(vendor / MP_ARCHIVE)
        else:
            raise BuildError("no MicroPython sources\n" + clone_instructions())
        if picotool_src is not None:
            self.parts["picotool"] = git_state(picotool_src)
        elif vendor is not None and (vendor / PT_ARCHIVE).exists():
            self.parts[PT_ARCHIVE] = sha256_file(vendor / PT_ARCHIVE)
        else:
            raise BuildError("no picotool sources (give --picotool-src DIR)\n" + clone_instructions())

    def describe(self) -> str:
        if self.micropy_src is not None:
            return f"MICROPY_SRC={self.micropy_src}"
        return f"vendored archives in {self.vendor}"


def git_state(path: Path) -> str:
    """The commit of a source checkout plus a hash of its uncommitted changes
    (and its submodules' commits): the part of the cache key it stands for."""
    if not (path / ".git").exists():
        raise BuildError(f"{path} is not a git checkout: its commit is part of the image's cache key")
    head = run(["git", "-C", str(path), "rev-parse", "HEAD"]).strip()
    subs = run(["git", "-C", str(path), "submodule", "status", "--recursive"])
    diff = run(["git", "-C", str(path), "diff", "HEAD"])
    return f"{head} {sha256_bytes((subs + diff).encode())}"


def digest(items: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in items:
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def source_key(src: Sources, tools: dict[str, str]) -> str:
    items = [(k, v.encode()) for k, v in sorted(src.parts.items())]
    items += [("tool:" + k, v.encode()) for k, v in sorted(tools.items())]
    items.append(("tree-format", str(TREE_FORMAT).encode()))
    return digest(items)


def read_inputs() -> dict[Path, bytes]:
    """Our inputs as staged into the tree, read once: the key and the
    staged files are the same bytes even if a file changes mid-build."""
    files: dict[Path, bytes] = {}
    for rel in image_files():
        files[Path("image") / rel] = (IMAGE_DIR / rel).read_bytes()
    for rel in frozen_files():
        files[Path("firmware") / rel] = (FIRMWARE / rel).read_bytes()
    return files


def port_build_key(inputs: dict[Path, bytes]) -> str:
    """Names the port's build folder in a cached tree: the board definition
    and the user C modules' cmake files are read only when cmake configures
    a folder (USER_C_MODULES, the board's cmake), and a changed board header
    rebuilds every object. Each configuration keeps its own folder, so
    clones with different configurations sharing a tree never reconfigure
    or rebuild each other's; a firmware-only change (or a user module's C
    source) stays an incremental rebuild."""
    cfg = [
        (p.as_posix(), data)
        for p, data in sorted(inputs.items())
        if p.parts[:2] == ("image", "board") or (p.parts[:2] == ("image", USERMOD_DIR) and p.suffix == ".cmake")
    ]
    cfg.append(("user-c-modules", " ".join(USER_C_MODULES).encode()))
    return digest(cfg)[:12]


def image_key(skey: str, inputs: dict[Path, bytes]) -> str:
    items = [("source", skey.encode()), ("build_image.py", Path(__file__).read_bytes())]
    items += [(p.as_posix(), data) for p, data in sorted(inputs.items())]
    return digest(items)


def version_of(inputs: dict[Path, bytes]) -> str:
    m = re.search(rb'FIRMWARE_VERSION\s*=\s*"([^"]+)"', inputs[Path("firmware/pen/version.py")])
    if not m:
        raise BuildError("cannot read FIRMWARE_VERSION from firmware/pen/version.py")
    return m.group(1).decode()


def clone_instructions() -> str:
    mp_url, mp_rev = PINS["micropython"]
    pt_url, pt_rev = PINS["picotool"]
    lines = [
        "Without ../shared/vendor/*.tar.xz, clone the pinned commits (docs/hardware.md) and pass MICROPY_SRC:",
        f"  git clone {mp_url} micropython && git -C micropython checkout {mp_rev}",
    ]
    subs = ("lib/pico-sdk", "lib/tinyusb", "lib/micropython-lib", "lib/mbedtls")
    lines.append(f"  git -C micropython submodule update --init {' '.join(subs)}")
    lines.append("  # each submodule at the pinned commit (tinyusb: upstream's, MicroPython pins a fork)")
    for sub in subs:
        url, rev = PINS[sub]
        lines.append(f"  git -C micropython/{sub} fetch {url} {rev} && git -C micropython/{sub} checkout {rev}")
    lines += [
        f"  git clone {pt_url} picotool && git -C picotool checkout {pt_rev}",
        "  make firmware MICROPY_SRC=$PWD/micropython PICOTOOL_SRC=$PWD/picotool",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- cache


@contextlib.contextmanager
def locked(path: Path) -> Generator[None]:
    """One build at a time in a cached tree (two clones may share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prune(parent: Path, pattern: str, keep: int) -> None:
    """Drop the least recently used cache entries beyond `keep`."""
    entries = sorted((p for p in parent.glob(pattern) if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        with locked(old.with_name(old.name + ".lock")):
            shutil.rmtree(old, ignore_errors=True)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write only a changed file, so make's timestamps see only real changes."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def sync_tree(files: dict[Path, bytes], dest: Path) -> int:
    """Make dest hold exactly these files; returns how many changed."""
    changed = sum(write_if_changed(dest / rel, data) for rel, data in files.items())
    wanted = {dest / rel for rel in files}
    if dest.exists():
        for p in sorted(dest.rglob("*"), reverse=True):
            if p.is_file() and p not in wanted:
                p.unlink()
                changed += 1
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return changed


# ---------------------------------------------------------------- the build


def make_default(path: Path, name: str, value: str) -> None:
    """The build tree's one `#define NAME VALUE` line in path becomes a
    default (`#ifndef NAME`), so that the board's header can set NAME;
    without a board value it means the same. Idempotent; the file keeps
    its time stamp, so folders built before (other configurations sharing
    the tree) see no change."""
    text = path.read_text()
    old = f"#define {name} {value}\n"
    new = f"#ifndef {name}\n{old}#endif\n"
    if new in text:
        return
    if text.count(old) != 1:
        raise BuildError(f"{path}: {name} is not defined where it was; check the board's value")
    st = path.stat()
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class Tree:
    """A cached build tree: sources, mpy-cross, picotool, the port's build."""

    def __init__(self, path: Path, src: Sources) -> None:
        self.path = path
        self.src = src
        self.mp = src.micropy_src if src.micropy_src is not None else path / "src" / "micropython"
        self.picotool_src = src.picotool_src if src.picotool_src is not None else path / "src" / "picotool"
        self.picotool_build = path / "picotool-build"
        self.picotool_install = path / "tools" / "picotool"
        self.stage = path / "stage"
        self.ready = path / ".ready"

    @property
    def mpy_cross(self) -> Path:
        return self.mp / "mpy-cross" / "build" / "mpy-cross"

    def meta(self) -> dict[str, str]:
        return json.loads((self.path / "meta.json").read_text())

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        meta = self.meta()
        env["SOURCE_DATE_EPOCH"] = meta["source_date_epoch"]
        if "git_tag" in meta:
            # the vendored tree has no .git: without this, makeversionhdr.py
            # would `git describe` whatever repository the tree sits in
            env["MICROPY_GIT_TAG"] = meta["git_tag"]
            env["MICROPY_GIT_HASH"] = meta["git_hash"]
        env["MICROPY_MPYCROSS"] = str(self.mpy_cross)
        env["CMAKE_PREFIX_PATH"] = str(self.picotool_install)
        # no absolute path of this machine in the image or its debug info
        prefix = f"-ffile-prefix-map={self.mp}=/micropython -ffile-prefix-map={self.path}=/build"
        for var in ("CFLAGS", "CXXFLAGS", "ASMFLAGS"):
            env[var] = prefix
        env.pop("MAKEFLAGS", None)  # the outer make's jobserver is not ours
        env.pop("MFLAGS", None)
        env["LC_ALL"] = "C"
        return env

    def prepare(self, jobs: int) -> None:
        if self.ready.exists():
            return
        t0 = time.monotonic()
        shutil.rmtree(self.path / "src", ignore_errors=True)
        for d in (self.picotool_build, self.picotool_install, self.stage, *self.path.glob("port-build*")):
            shutil.rmtree(d, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        meta: dict[str, str] = {}
        vendor = self.src.vendor
        if self.src.micropy_src is None:
            assert vendor is not None
            log(f"extracting {MP_ARCHIVE}")
            epoch = extract(vendor / MP_ARCHIVE, self.path / "src")
            meta["source_date_epoch"] = str(epoch)
            meta["git_tag"] = mpconfig_version(self.mp)
            meta["git_hash"] = pinned_commit(vendor, "micropython")[:9]
        else:
            meta["source_date_epoch"] = run(["git", "-C", str(self.mp), "log", "-1", "--format=%ct"]).strip()
        if self.src.picotool_src is None:
            assert vendor is not None
            log(f"extracting {PT_ARCHIVE}")
            extract(vendor / PT_ARCHIVE, self.path / "src")
        (self.path / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        env = self.env()
        log(f"sources ready in {time.monotonic() - t0:.0f} s; building mpy-cross and picotool side by side")
        # mpy-cross (one job) beside picotool: picotool's configure steps are
        # serial, so the second core would idle through them
        mpy = subprocess.Popen(
            ["make", "-C", str(self.mp / "mpy-cross")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        pt_env = dict(env, PICO_SDK_PATH=str(self.mp / "lib" / "pico-sdk"))
        for var in ("CFLAGS", "CXXFLAGS", "ASMFLAGS"):
            pt_env.pop(var, None)
        try:
            run(
                [
                    "cmake",
                    "-S",
                    str(self.picotool_src),
                    "-B",
                    str(self.picotool_build),
                    f"-DCMAKE_INSTALL_PREFIX={self.picotool_install}",
                    "-DPICOTOOL_FLAT_INSTALL=1",
                ],
                env=pt_env,
            )
            run(["make", "-C", str(self.picotool_build), f"-j{jobs}", "install"], env=pt_env)
            log(f"picotool ready at {time.monotonic() - t0:.0f} s")
        finally:
            out, _ = mpy.communicate()
        if mpy.returncode != 0:
            tail = "\n".join(out.decode(errors="replace").splitlines()[-40:])
            raise BuildError(f"mpy-cross failed (exit {mpy.returncode})\n{tail}")
        log(f"mpy-cross ready at {time.monotonic() - t0:.0f} s")
        self.ready.write_text(f"{time.monotonic() - t0:.1f} s\n")
        log(f"tree ready in {time.monotonic() - t0:.0f} s: {self.path}")

    def port_build_for(self, inputs: dict[Path, bytes]) -> Path:
        """The port's build folder for this board configuration (port_build_key)."""
        return self.path / f"port-build-{port_build_key(inputs)}"

    def stage_inputs(self, inputs: dict[Path, bytes], version: str) -> int:
        """Copy our manifest, board and firmware into the tree (changed files only)."""
        files = dict(inputs)
        files[Path("stamp") / STAMP_MODULE] = stamp_source(version)
        return sync_tree(files, self.stage)

    def align_armv6m_native(self) -> None:
        """Frozen @micropython.native code must start on a 4-byte boundary
        on armv6m: the Thumb-1 emitter loads 32-bit constants (integers
        beyond +-32767, far jumps) with `ldr rX, [pc, #0]` placed for a
        word-aligned code start, but mpy-tool.py aligns ARMv6-M code to 2
        bytes only, so about half of the frozen functions read a wrong word
        (seen on the virtual Pico: `run_ms >= max_session_min * 60000` held
        at boot). One word of the tree's tools/mpy-tool.py is changed, before
        every port build (idempotent): ARMV6M joins ARMV6's 4-byte case."""
        tool = self.mp / "tools" / "mpy-tool.py"
        text = tool.read_text()
        old = "            MP_NATIVE_ARCH_ARMV6,\n            MP_NATIVE_ARCH_XTENSA,\n"
        new = "            MP_NATIVE_ARCH_ARMV6,\n            MP_NATIVE_ARCH_ARMV6M,\n            MP_NATIVE_ARCH_XTENSA,\n"
        if new in text:
            return
        if old not in text:
            raise BuildError(f"{tool}: the native code alignment table is not where it was; check armv6m alignment")
        tool.write_text(text.replace(old, new, 1))

    def patch_cdc_timeout(self) -> None:
        """The rp2 port's mphalport.h defines MICROPY_HW_USB_CDC_TX_TIMEOUT
        (500 ms) unconditionally, after the board's header, so a board
        cannot set it (a second definition fails under -Werror). One line of
        the tree's header becomes a default (`#ifndef`), as shared/tinyusb's
        own mp_usbd_cdc.h has it; without a board value it is still 500.
        Idempotent, before every port build; the file keeps its time stamp
        so folders built before the change (other configurations sharing
        the tree) see no change: for them the header means the same."""
        make_default(self.mp / "ports" / "rp2" / "mphalport.h", "MICROPY_HW_USB_CDC_TX_TIMEOUT", "(500)")

    def patch_vm_state_on_stack(self) -> None:
        """py/objfun.c defines VM_MAX_STATE_ON_STACK (11 words, 44 B)
        unconditionally: a bytecode call whose locals and stack are larger
        gets its frame from the GC heap (m_new_obj_var_maybe, freed on
        return), so the running loop allocated ~35 blocks a pass (DESIGN
        §6; heap_lock hides it: the allocation then falls back to alloca).
        One line of the tree's objfun.c becomes a default (`#ifndef`) so
        that the board can raise it; without a board value it is still 11
        words. Idempotent, before every port build; the file keeps its time
        stamp (as in patch_cdc_timeout)."""
        make_default(self.mp / "py" / "objfun.c", "VM_MAX_STATE_ON_STACK", "(sizeof(mp_uint_t) * 11)")

    def build_port(self, jobs: int, inputs: dict[Path, bytes], build_dir: Path | None = None) -> Path:
        """The port's make (cmake configure on the first run); returns the build folder."""
        self.align_armv6m_native()
        self.patch_cdc_timeout()
        self.patch_vm_state_on_stack()
        bdir = build_dir or self.port_build_for(inputs)
        env = self.env()
        board_dir = self.stage / "image" / "board" / BOARD
        manifest = self.stage / "image" / "manifest.py"
        usermods = self.stage / "image" / USERMOD_DIR
        if not (bdir / "Makefile").exists():
            shutil.rmtree(bdir, ignore_errors=True)  # a failed configure leaves a stale folder
        try:
            run(
                [
                    "make",
                    f"-j{jobs}",
                    "-C",
                    str(self.mp / "ports" / "rp2"),
                    f"BOARD_DIR={board_dir}",
                    f"BUILD={bdir}",
                    f"FROZEN_MANIFEST={manifest}",
                    f"USER_C_MODULES={usermods}",
                ],
                env=env,
            )
        except BuildError:
            if not (bdir / "firmware.elf").exists():
                shutil.rmtree(bdir, ignore_errors=True)
            raise
        return bdir


def extract(archive: Path, dest: Path) -> int:
    """Extract a source archive; returns the newest member's mtime (the
    archive's SOURCE_DATE_EPOCH)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tf:
        newest = max((m.mtime for m in tf.getmembers()), default=0)
    run(["tar", "-xJf", str(archive), "-C", str(dest)])
    return int(newest)


def mpconfig_version(mp: Path) -> str:
    text = (mp / "py" / "mpconfig.h").read_text()

    def num(name: str) -> str:
        m = re.search(rf"#define {name} \(?(\d+)\)?", text)
        if not m:
            raise BuildError(f"cannot read {name} from py/mpconfig.h")
        return m.group(1)

    v = f"v{num('MICROPY_VERSION_MAJOR')}.{num('MICROPY_VERSION_MINOR')}.{num('MICROPY_VERSION_MICRO')}"
    pre = re.search(r"#define MICROPY_VERSION_PRERELEASE (\d+)", text)
    return v + ("-preview" if pre and pre.group(1) != "0" else "")


def pinned_commit(vendor: Path, name: str) -> str:
    pins = vendor / "PINS.txt"
    if pins.exists():
        for line in pins.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == name:
                return parts[-1]
    return PINS[name][1]


def image_version(fw_version: str, key: str) -> str:
    return f"{fw_version}+{key[:12]}"


def stamp_source(version: str) -> bytes:
    return (
        "# Generated by tools/build_image.py into the frozen image only.\n"
        f'IMAGE_VERSION = "{version}"\n'
        f'USB_PRODUCT = "{USB_PRODUCT}"\n'
    ).encode()


RAM_START, RAM_END = 0x20000000, 0x20042000  # RP2040 SRAM (264 KB, striped banks + scratch X/Y)


def sections(elf: Path) -> dict[str, tuple[int, int]]:
    """arm-none-eabi-size -A: {section: (size, address)}."""
    out: dict[str, tuple[int, int]] = {}
    for line in run(["arm-none-eabi-size", "-A", str(elf)]).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


def ram_use(elf: Path) -> dict[str, int]:
    """Static RAM: every RAM section below the stack (the vector table copy,
    .data, .bss, the C heap); MicroPython's GC heap gets what is left."""
    secs = sections(elf)
    ram = {n: size for n, (size, addr) in secs.items() if RAM_START <= addr < RAM_END and size}
    stack = ram.pop(".stack_dummy", 0)
    return {
        "data_bytes": secs.get(".data", (0, 0))[0],
        "bss_bytes": secs.get(".bss", (0, 0))[0],
        "c_heap_bytes": secs.get(".heap", (0, 0))[0],
        "stack_bytes": stack,
        "static_ram_bytes": sum(ram.values()),
    }


def usb_strings_present(binary: bytes) -> dict[str, bool]:
    return {s: s.encode() in binary for s in (USB_MANUFACTURER, USB_PRODUCT)}


def user_modules_present(elf: Path) -> dict[str, bool]:
    """Each user C module's registration (`<name>_user_cmodule`) in the ELF."""
    syms = set(run(["arm-none-eabi-nm", str(elf)]).split())
    return {m: f"{m}_user_cmodule" in syms for m in USER_C_MODULES}


def vm_state_on_stack(board_h: str) -> int:
    """The board's VM_MAX_STATE_ON_STACK in bytes (MicroPython's 11 words
    when the board does not set it)."""
    m = re.search(r"^#define VM_MAX_STATE_ON_STACK \(sizeof\(mp_uint_t\) \* (\d+)\)$", board_h, re.M)
    return 4 * int(m.group(1)) if m else 44


def frozen_frames(frozen_c: str, modules: list[Path]) -> dict[str, int]:
    """Each bytecode function of the frozen firmware (`modules`, its paths
    under firmware/) with its frame's size in bytes as fun_bc_call counts it
    (n_state words + n_exc_stack * 8 B), read from the port's
    frozen_content.c (mpy-tool.py names a function's data
    fun_data_<module path>_<qualified name>)."""
    prefixes = tuple("fun_data_" + str(p.with_suffix("")).replace("/", "_") + "_" for p in modules)
    frames: dict[str, int] = {}
    for m in re.finditer(r"\.fun_data = (fun_data_\w+),[^}]*?\.n_state = (\d+),\s*\.n_exc_stack = (\d+),", frozen_c):
        if m.group(1).startswith(prefixes):
            frames[m.group(1)[len("fun_data_") :]] = 4 * int(m.group(2)) + 8 * int(m.group(3))
    return frames


def collect(bdir: Path, out_dir: Path, build: Build) -> dict[str, object]:
    """Copy the port's outputs to out_dir as needle-pen.* and write its JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    uf2 = (bdir / "firmware.uf2").read_bytes()
    binary = (bdir / "firmware.bin").read_bytes()
    (out_dir / f"{OUT_NAME}.uf2").write_bytes(uf2)
    shutil.copyfile(bdir / "firmware.elf", out_dir / f"{OUT_NAME}.elf")
    ram = ram_use(bdir / "firmware.elf")
    meta = build.tree.meta()
    info: dict[str, object] = {
        "version": build.version,
        "firmware_version": build.fw_version,
        "key": build.key,
        "board": BOARD,
        "micropython": f"{meta.get('git_tag', '')} {meta.get('git_hash', '')}".strip() or "MICROPY_SRC",
        "sources": sorted(build.src.parts),
        "uf2": f"{OUT_NAME}.uf2",
        "uf2_bytes": len(uf2),
        "sha256": sha256_bytes(uf2),
        "elf_sha256": sha256_file(out_dir / f"{OUT_NAME}.elf"),
        "flash_bytes": len(binary),
        **ram,
        "usb": {"vid_pid": "2E8A:0005", "manufacturer": USB_MANUFACTURER, "product": USB_PRODUCT},
        "user_c_modules": list(USER_C_MODULES),
        "frozen_files": sum(p.parts[0] == "firmware" for p in build.inputs),
        "source_date_epoch": int(meta["source_date_epoch"]),
    }
    frames = frozen_frames(
        (bdir / "frozen_content.c").read_text(),
        [p.relative_to("firmware") for p in build.inputs if p.parts[0] == "firmware"],
    )
    limit = vm_state_on_stack((IMAGE_DIR / "board" / BOARD / "mpconfigboard.h").read_text())
    info["vm_state_on_stack_bytes"] = limit
    info["largest_frame_bytes"] = max(frames.values(), default=0)
    over = sorted((n for n, size in frames.items() if size > limit), key=lambda n: -frames[n])
    if over:
        raise BuildError(
            f"{len(over)} frozen functions' frames exceed VM_MAX_STATE_ON_STACK ({limit} B, "
            f"image/board/{BOARD}/mpconfigboard.h) and would be allocated on the GC heap at every call "
            f"(DESIGN §6): " + ", ".join(f"{n} {frames[n]} B" for n in over[:5])
        )
    missing = [s for s, ok in usb_strings_present(binary).items() if not ok]
    if missing:
        raise BuildError(f"the image lacks the USB strings {missing} (image/board/{BOARD}/mpconfigboard.h)")
    missing = [m for m, ok in user_modules_present(bdir / "firmware.elf").items() if not ok]
    if missing:
        raise BuildError(f"the image lacks the user C modules {missing} (image/{USERMOD_DIR})")
    (out_dir / f"{OUT_NAME}.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def summary(info: dict[str, object], how: str) -> None:
    print(
        f"firmware: build/{OUT_NAME}.uf2 version {info['version']} ({how})\n"
        f"  uf2 {info['uf2_bytes']} B, image in flash {info['flash_bytes']} B, "
        f"static RAM {info['static_ram_bytes']} B (.data {info['data_bytes']}, .bss {info['bss_bytes']}, "
        f"C heap {info['c_heap_bytes']}; stack {info['stack_bytes']} B)\n"
        f"  sha256 {info['sha256']}"
    )


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "needle-pen"


def default_vendor() -> Path | None:
    # the clone sits next to shared/ (../shared/vendor); a git worktree one
    # level deeper (wt/NAME) finds it at ../../shared/vendor
    for cand in (ROOT.parent / "shared" / "vendor", ROOT.parent.parent / "shared" / "vendor"):
        if (cand / MP_ARCHIVE).exists():
            return cand
    return None


def copy_outputs(src_dir: Path, dst_dir: Path) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("uf2", "elf", "json"):
        tmp = dst_dir / f".{OUT_NAME}.{ext}.tmp"
        shutil.copyfile(src_dir / f"{OUT_NAME}.{ext}", tmp)
        tmp.replace(dst_dir / f"{OUT_NAME}.{ext}")


def complete(d: Path) -> bool:
    return all((d / f"{OUT_NAME}.{ext}").exists() for ext in ("uf2", "elf", "json"))


class Build:
    def __init__(self, args: argparse.Namespace) -> None:
        vendor: Path | None = args.vendor or (None if args.micropy_src else default_vendor())
        self.src = Sources(vendor, args.micropy_src, args.picotool_src or None)
        self.tools = toolchain_versions()
        self.skey = source_key(self.src, self.tools)
        self.inputs = read_inputs()
        self.key = image_key(self.skey, self.inputs)
        self.fw_version = version_of(self.inputs)
        self.version = image_version(self.fw_version, self.key)
        self.cache: Path = args.cache
        self.out: Path = args.out
        self.jobs: int = args.jobs
        self.tree = Tree(self.cache / f"tree-{self.skey[:16]}", self.src)

    def image(self) -> int:
        key_file = self.out / ".image-key"
        if complete(self.out) and key_file.exists() and key_file.read_text().strip() == self.key:
            info = json.loads((self.out / f"{OUT_NAME}.json").read_text())
            if info.get("sha256") == sha256_file(self.out / f"{OUT_NAME}.uf2"):
                log(f"up to date (key {self.key[:12]})")
                summary(info, "up to date")
                return 0
        t0 = time.monotonic()
        cached = self.cache / "images" / self.key
        if complete(cached):
            copy_outputs(cached, self.out)
            os.utime(cached)
            how = f"from the cache {cached}"
        else:
            log(f"building from {self.src.describe()} (key {self.key[:12]})")
            with locked(self.tree.path.with_name(self.tree.path.name + ".lock")):
                self.tree.prepare(self.jobs)
                n = self.tree.stage_inputs(self.inputs, self.version)
                log(f"{n} staged files changed; building the rp2 port")
                bdir = self.tree.build_port(self.jobs, self.inputs)
                os.utime(bdir)
                prune(self.tree.path, "port-build-*", KEEP_PORT_BUILDS)
                with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                    collect(bdir, Path(tmp), self)
                    shutil.rmtree(cached, ignore_errors=True)
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(tmp, cached)
                os.utime(self.tree.path)
            copy_outputs(cached, self.out)
            how = f"built in {time.monotonic() - t0:.0f} s"
            prune(self.cache / "images", "*", KEEP_IMAGES)
            prune(self.cache, "tree-*", KEEP_TREES)
        key_file.write_text(self.key + "\n")
        summary(json.loads((self.out / f"{OUT_NAME}.json").read_text()), how)
        return 0

    def compare(self, bdir: Path, what: str) -> int:
        want = (self.out / f"{OUT_NAME}.uf2").read_bytes()
        got = (bdir / "firmware.uf2").read_bytes()
        if got != want:
            diff = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want))
            )
            print(f"firmware: {what}: NOT reproducible: first difference at byte {diff} ({len(got)} vs {len(want)} B)")
            return 1
        print(f"firmware: {what}: the same {len(got)} bytes (sha256 {sha256_bytes(got)})")
        return 0

    def rebuild_check(self) -> int:
        """Regenerate the frozen modules, the version stamp and the link in the
        cached tree, then compare the UF2 with build/."""
        self.require_built()
        with locked(self.tree.path.with_name(self.tree.path.name + ".lock")):
            self.tree.prepare(self.jobs)
            self.tree.stage_inputs(self.inputs, self.version)
            bdir = self.tree.port_build_for(self.inputs)
            for p in ("frozen_mpy", "frozen_content.c", "firmware.elf", "firmware.bin", "firmware.uf2"):
                target = bdir / p
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            for obj in bdir.rglob("frozen_content.c.obj"):
                obj.unlink()
            self.tree.build_port(self.jobs, self.inputs)
            return self.compare(bdir, "rebuilt frozen modules and link")

    def fresh_check(self) -> int:
        """A second build from scratch in a new folder (so at another absolute
        path), compared byte for byte with build/."""
        self.require_built()
        with tempfile.TemporaryDirectory(prefix="needle-pen-repro-", dir=self.cache) as tmp:
            tree = Tree(Path(tmp) / "tree", self.src)
            tree.prepare(self.jobs)
            tree.stage_inputs(self.inputs, self.version)
            bdir = tree.build_port(self.jobs, self.inputs)
            return self.compare(bdir, "second build from scratch at another path")

    def require_built(self) -> None:
        key_file = self.out / ".image-key"
        if not complete(self.out) or not key_file.exists() or key_file.read_text().strip() != self.key:
            raise BuildError("build/ holds no image of the current inputs: run `make firmware` first")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vendor", type=Path, help="folder of the vendored archives (default ../shared/vendor)")
    ap.add_argument("--micropy-src", type=Path, default=None, help="an extracted MicroPython tree with submodules")
    ap.add_argument("--picotool-src", type=Path, default=None, help="picotool sources (with --micropy-src)")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--out", type=Path, default=ROOT / "build")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--key", action="store_true", help="print the cache key and exit")
    mode.add_argument("--rebuild-check", action="store_true")
    mode.add_argument("--fresh-check", action="store_true")
    mode.add_argument("--print-clone", action="store_true")
    mode.add_argument("--toolchain", action="store_true", help="check (as root: install) the Debian toolchain")
    args = ap.parse_args(argv)
    if args.print_clone:
        print(clone_instructions())
        return 0
    if args.toolchain:
        return ensure_toolchain()
    for opt in ("micropy_src", "picotool_src", "vendor", "cache", "out"):
        val: Path | None = getattr(args, opt)
        if val is not None and str(val):
            setattr(args, opt, val.resolve())
        elif val is not None:
            setattr(args, opt, None)
    try:
        b = Build(args)
        if args.key:
            print(b.key)
            return 0
        if args.rebuild_check:
            return b.rebuild_check()
        if args.fresh_check:
            return b.fresh_check()
        return b.image()
    except BuildError as e:
        print(f"firmware: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
