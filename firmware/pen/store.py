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
import os
import struct

from pen import limits as L
from pen.compat import const, ticks_diff

MAGIC = b"PCF"
SCHEMA = const(2)
_HEADER = const(10)  # magic 3 + schema 1 + seq 4 + len 2
_MAX_PAYLOAD = const(1024)
MIN_WRITE_INTERVAL_MS = const(5000)  # rate limit of configuration writes

_CFG = const("cfg")
_TMP = const("cfg.tmp")
_BAK = const("cfg.bak")

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
_COUNTERS = const(("boots", "writes"))
_KV_PREFIX = const("kv.")
_KV_MAX = const(16)
_KV_VALUE_MAX = const(80)
Q14 = const(16384)


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


def seal(body):
    """body + its CRC-32 (u32, little end.): every record on flash."""
    return body + struct.pack("<I", crc32(body))


def unseal(data, n):
    """The n-byte body of a sealed record, or None when it is missing, torn
    or corrupt."""
    if data and len(data) == n + 4 and struct.unpack("<I", data[n:])[0] == crc32(data[:n]):
        return data[:n]
    return None


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
    if not _token_ok(name, 24) or not _token_ok(value, _KV_VALUE_MAX):
        raise ValueError("bad kv entry")


class Store:
    """Configuration store. `values` is a dict of FIELDS, the counters (boots, writes) and kv.*.

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

    # --- loading (at boot) and saving (drive off) ---
    def _read(self, name):
        data = self.ops.read(name)
        if data is None:
            return None, "missing"
        rec = unframe(data)
        if rec is None:
            return None, "crc"
        schema, seq, payload = rec
        try:
            values = migrate(schema, decode_payload(payload))
            validate(values)
        except (ValueError, KeyError, UnicodeError) as e:
            return None, "invalid:%s" % (str(e).replace(" ", "_")[:32])
        return (seq, schema, values), "ok"

    def load(self):
        self.problems = []
        best = None
        best_name = None
        seen = False
        for name in (_CFG, _TMP, _BAK):
            rec, why = self._read(name)
            if why != "missing":
                seen = True
            if rec is None:
                # a torn cfg.tmp is the normal trace of a cut save: not an
                # integrity failure; anything else is reported
                if why != "missing" and name != _TMP:
                    self.problems.append("%s:%s" % (name, why))
                continue
            if name == _CFG:
                self.cfg_valid = True
            if best is None or rec[0] > best[0]:
                best = rec
                best_name = name
        if best is None:
            self.values = defaults()
            self.seq = 0
            self.status = "defaults" if seen else "fresh"
            if seen:
                self.problems.append("no_valid_record:defaults_in_use")
            return self.values
        self.seq, schema, self.values = best
        self.status = "ok" if best_name == _CFG else "fallback"
        if schema != SCHEMA:
            self.problems.append("migrated:schema_%d_to_%d" % (schema, SCHEMA))
            self.dirty = True
        if best_name == _TMP:
            # a save was cut after its record was complete: finish it
            self._promote()
        return self.values

    def _promote(self):
        """cfg.tmp becomes cfg; a valid cfg is kept as cfg.bak."""
        if self.cfg_valid:
            self.ops.rename(_CFG, _BAK)
        else:
            self.ops.remove(_CFG)
        self.ops.rename(_TMP, _CFG)
        self.cfg_valid = True

    def save(self, now_ms):
        """Writes the current values as a new record. The caller guarantees
        the drive is off (flash writes stall the CPU)."""
        v = self.values
        validate(v)  # never persist what would not load
        v["writes"] += 1
        seq = self.seq + 1
        self.last_write_ms = now_ms
        self.ops.write(_TMP, frame(SCHEMA, seq, encode_payload(v)))
        self._promote()
        self.seq = seq
        self.dirty = False
        return True

    def set(self, key, value):
        if self.values.get(key) != value:
            self.values[key] = value
            self.dirty = True

    def kv_get(self, name, default=None):
        return self.values.get(_KV_PREFIX + name, default)

    def kv_set(self, name, value):
        """Persisted key/value for other modules (secrets, counters): name
        and value are short tokens of letters, digits and _.-:+/ ."""
        value = str(value)
        _check_kv(name, value)
        key = _KV_PREFIX + name
        if key not in self.values:
            n = 0
            for k in self.values:
                if k.startswith(_KV_PREFIX):
                    n += 1
            if n >= _KV_MAX:
                raise ValueError("kv store full")
        self.set(key, value)

    def due(self, now_ms):
        """A save is wanted and the rate limit allows it now."""
        if not self.dirty or self.status == "error":
            return False
        return self.last_write_ms is None or ticks_diff(now_ms, self.last_write_ms) >= self.min_interval_ms


# --- record framing ---
def frame(schema, seq, payload):
    return seal(MAGIC + struct.pack("<BIH", schema, seq, len(payload)) + payload)


def unframe(data):
    """-> (schema, seq, payload) or None when torn, foreign or corrupt."""
    if data is None or len(data) < _HEADER + 4 or data[:3] != MAGIC:
        return None
    schema, seq, n = struct.unpack("<BIH", data[3:_HEADER])
    if n > _MAX_PAYLOAD or unseal(data, _HEADER + n) is None:
        return None
    return schema, seq, data[_HEADER : _HEADER + n]


def encode_payload(values):
    out = []
    for k in FIELDS + _COUNTERS:
        out.append("%s=%d\n" % (k, values[k]))
    for k in sorted(values):
        if k.startswith(_KV_PREFIX):
            out.append("%s=%s\n" % (k, values[k]))
    return "".join(out).encode()


def decode_payload(payload):
    values = {}
    for line in payload.decode().split("\n"):
        if not line:
            continue
        k, sep, v = line.partition("=")
        if not sep or k in values:
            raise ValueError("bad line")
        if k.startswith(_KV_PREFIX):
            values[k] = v
        else:
            values[k] = int(v)
    return values


# --- schema migrations: each takes the values of schema n, returns n+1 ---
def _migrate_1(v):
    # schema 1 (firmware 0.1) had no tilt reference and kept the session
    # limit in seconds as max_session_s
    s = v.pop("max_session_s")
    if s % 60:
        raise ValueError("max_session_s not whole minutes")
    v["max_session_min"] = s // 60
    v["ref_x"] = 0
    v["ref_y"] = 0
    v["ref_z"] = Q14
    v.setdefault("boots", 0)
    v.setdefault("writes", 0)
    return v


MIGRATIONS = {1: _migrate_1}


def migrate(schema, values):
    while schema < SCHEMA:
        step = MIGRATIONS.get(schema)
        if step is None:
            raise ValueError("no migration from schema %d" % schema)
        values = step(values)
        schema += 1
    if schema != SCHEMA:
        raise ValueError("schema %d is newer than this firmware" % schema)
    return values


def validate(v):
    """A CRC-valid record must also hold values this firmware accepts: the
    hardware limits and the layer order of DESIGN §3. Raises ValueError."""
    for k in FIELDS + _COUNTERS:
        if k not in v:
            raise ValueError("missing %s" % k)
    for s in L.CLINIC + L.WORKING:
        try:
            s.check_hw(v[s.key])
        except Exception:
            raise ValueError("%s out of hardware limits" % s.key) from None
    if v["depth"] > v["max_depth"] or v["rate"] > v["max_rate"]:
        raise ValueError("working setting above clinic limit")
    m = v["ref_x"] * v["ref_x"] + v["ref_y"] * v["ref_y"] + v["ref_z"] * v["ref_z"]
    if not (Q14 * Q14 * 96 // 100 <= m <= Q14 * Q14 * 104 // 100):
        raise ValueError("tilt reference not a unit vector")
    if v["boots"] < 0 or v["writes"] < 0:
        raise ValueError("negative counter")
    n = 0
    for k in v:
        if k.startswith(_KV_PREFIX):
            n += 1
            _check_kv(k[len(_KV_PREFIX) :], v[k])
    if n > _KV_MAX:
        raise ValueError("too many kv entries")
