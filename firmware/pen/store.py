# Persistent configuration (docs/persistence.md): one versioned record with a
# CRC, written atomically, the previous one kept as a fallback.
#
#   record = b"PCF" schema:u8 seq:u32 len:u16 payload crc32:u32 (little end.)
#   payload = "key=value\n" lines; values are ints, or short tokens for kv.*
#
# Save: write cfg.tmp (seq+1) -> rename cfg to cfg.bak (or remove cfg when it
# is not valid) -> rename cfg.tmp to cfg. Every rename and every file close
# is atomic on littlefs (and rename on POSIX), so after a power cut at any
# point the newest valid record of {cfg, cfg.tmp, cfg.bak} is exactly the old
# or exactly the new configuration. Load takes that record; with none valid
# the pen runs on safe defaults and says so.
#
# The same code runs on the rp2 board's built-in littlefs (root "/"), on a
# simulated littlefs block device (sim/device/flash.py) and on a host
# directory under CPython: it only uses open() and os.rename/remove/stat.
#
# What the pen needs between saves stays on the heap; framing, migrations,
# validation, load and save are in pen.storex, imported per call (DESIGN §7
# heap budget) and still reachable here (module __getattr__ below).
import os

from pen import limits as L
from pen.compat import const, lazy, ticks_diff

MAGIC = b"PCF"
SCHEMA = const(2)
HEADER = const(10)  # magic 3 + schema 1 + seq 4 + len 2
MAX_PAYLOAD = const(1024)
MIN_WRITE_INTERVAL_MS = const(5000)  # rate limit of configuration writes

CFG = "cfg"
TMP = "cfg.tmp"
BAK = "cfg.bak"

# integer fields of schema 2, in record order
FIELDS = (
    "max_depth",
    "max_rate",
    "max_tilt",
    "max_session_min",
    "depth",
    "rate",
    "ref_x",
    "ref_y",
    "ref_z",
)
COUNTERS = ("boots", "writes")
KV_PREFIX = "kv."
KV_MAX = const(16)
KV_VALUE_MAX = const(80)
Q14 = const(16384)


def __getattr__(name):
    # frame, unframe, encode_payload, decode_payload, migrate, validate ...
    if name[:2] == "__":
        raise AttributeError(name)
    import sys

    __import__("pen.storex")
    return getattr(sys.modules["pen.storex"], name)


# --- CRC-32 (IEEE 802.3, as zlib/binascii), nibble table: no big tables ---
_CRC_T = (
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
)  # fmt: skip


def crc32(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        crc ^= b
        crc = (crc >> 4) ^ t[crc & 15]
        crc = (crc >> 4) ^ t[crc & 15]
    return crc ^ 0xFFFFFFFF


_fsync = getattr(os, "fsync", None)  # CPython only; MicroPython's os has none


# --- file operations on the board's filesystem ---
class FileOps:
    """The store's only access to storage: whole-file write, append, read,
    rename, remove, size, under a root directory given by the board."""

    def __init__(self, root):
        self.root = root.rstrip("/")

    def _p(self, name):
        return self.root + "/" + name

    def read(self, name):
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def _put(self, name, data, mode):
        with open(self._p(name), mode) as f:
            f.write(data)
            f.flush()
            # littlefs commits the file on close; a host OS (CPython
            # simulator) is asked to put it on its disk first
            if _fsync is not None:
                _fsync(f.fileno())

    def write(self, name, data):
        self._put(name, data, "wb")

    def append(self, name, data):
        self._put(name, data, "ab")

    def rename(self, a, b):
        os.rename(self._p(a), self._p(b))

    def remove(self, name):
        try:
            os.remove(self._p(name))
        except OSError:
            pass

    def size(self, name):
        try:
            return os.stat(self._p(name))[6]
        except OSError:
            return -1


def defaults():
    v = {
        "max_depth": L.DEFAULT_MAX_DEPTH_UM,
        "max_rate": L.DEFAULT_MAX_RATE_MHZ,
        "max_tilt": L.DEFAULT_MAX_TILT_CDEG,
        "max_session_min": L.DEFAULT_MAX_SESSION_MIN,
        "depth": L.DEFAULT_DEPTH_UM,
        "rate": L.DEFAULT_RATE_MHZ,
        "ref_x": 0,
        "ref_y": 0,
        "ref_z": Q14,
        "boots": 0,
        "writes": 0,
    }
    return v


def _token_ok(s, maxlen):
    if not s or len(s) > maxlen:
        return False
    for c in s:
        if not (c.isalpha() or c.isdigit() or c in "_.-:+/"):
            return False
    return True


def _check_kv(name, value):
    if not _token_ok(name, 24) or not _token_ok(value, KV_VALUE_MAX):
        raise ValueError("bad kv entry")


class Store:
    """Configuration store. `values` is a dict of FIELDS + COUNTERS + kv.*.

    status is what load() found at boot and stays for the whole boot: "ok"
    (cfg valid), "fallback" (a previous or pending record was used), "fresh"
    (nothing stored yet: first boot), "defaults" (records present, none
    valid: safe defaults in use), "error" (storage unusable: defaults,
    nothing will be written)."""

    def __init__(self, ops, min_interval_ms=MIN_WRITE_INTERVAL_MS):
        self.ops = ops
        self.min_interval_ms = min_interval_ms
        self.values = defaults()
        self.seq = 0  # seq of the record in use
        self.cfg_valid = False  # the file "cfg" holds a valid record
        self.status = "fresh"
        self.problems = []  # integrity findings of the last load, for the log
        self.last_write_ms = None
        self.dirty = False
        self.failures = 0

    # --- loading and saving: the code is in pen.storex, loaded per call ---
    def load(self):
        return lazy("storex", "load", self)

    def save(self, now_ms):
        """Writes the current values as a new record. The caller guarantees
        the drive is off (flash writes stall the CPU)."""
        return lazy("storex", "save", self, now_ms)

    def set(self, key, value):
        if self.values.get(key) != value:
            self.values[key] = value
            self.dirty = True

    def kv_get(self, name, default=None):
        return self.values.get(KV_PREFIX + name, default)

    def kv_set(self, name, value):
        """Persisted key/value for other modules (secrets, counters): name
        and value are short tokens of letters, digits and _.-:+/ ."""
        value = str(value)
        _check_kv(name, value)
        key = KV_PREFIX + name
        if key not in self.values:
            n = 0
            for k in self.values:
                if k.startswith(KV_PREFIX):
                    n += 1
            if n >= KV_MAX:
                raise ValueError("kv store full")
        self.set(key, value)

    def due(self, now_ms):
        """A save is wanted and the rate limit allows it now."""
        if not self.dirty or self.status == "error":
            return False
        return self.last_write_ms is None or ticks_diff(now_ms, self.last_write_ms) >= self.min_interval_ms
