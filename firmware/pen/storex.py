# The seldom used half of pen.store: record framing, payload coding, schema
# migrations, validation, and Store.load (at boot) / Store.save (drive off,
# a flash write anyway). Imported for one call and dropped after
# (pen.compat.lazy); pen.store re-exports every name here.
import struct

from pen import limits as L
from pen.store import (
    BAK,
    CFG,
    COUNTERS,
    FIELDS,
    HEADER,
    KV_MAX,
    KV_PREFIX,
    MAGIC,
    MAX_PAYLOAD,
    Q14,
    SCHEMA,
    TMP,
    _check_kv,
    crc32,
    defaults,
)


# --- record framing ---
def frame(schema, seq, payload):
    head = MAGIC + struct.pack("<BIH", schema, seq, len(payload))
    body = head + payload
    return body + struct.pack("<I", crc32(body))


def unframe(data):
    """-> (schema, seq, payload) or None when torn, foreign or corrupt."""
    if data is None or len(data) < HEADER + 4 or data[:3] != MAGIC:
        return None
    schema, seq, n = struct.unpack("<BIH", data[3:HEADER])
    if n > MAX_PAYLOAD or len(data) != HEADER + n + 4:
        return None
    if struct.unpack("<I", data[HEADER + n :])[0] != crc32(data[: HEADER + n]):
        return None
    return schema, seq, data[HEADER : HEADER + n]


def encode_payload(values):
    out = []
    for k in FIELDS + COUNTERS:
        out.append("%s=%d\n" % (k, values[k]))
    for k in sorted(values):
        if k.startswith(KV_PREFIX):
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
        if k.startswith(KV_PREFIX):
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
    for k in FIELDS + COUNTERS:
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
        if k.startswith(KV_PREFIX):
            n += 1
            _check_kv(k[len(KV_PREFIX) :], v[k])
    if n > KV_MAX:
        raise ValueError("too many kv entries")


# --- Store: loading (at boot) and saving (drive off) ---
def _read(st, name):
    data = st.ops.read(name)
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


def load(st):
    st.problems = []
    best = None
    best_name = None
    seen = False
    for name in (CFG, TMP, BAK):
        rec, why = _read(st, name)
        if why != "missing":
            seen = True
        if rec is None:
            # a torn cfg.tmp is the normal trace of a cut save: not an
            # integrity failure; anything else is reported
            if why != "missing" and name != TMP:
                st.problems.append("%s:%s" % (name, why))
            continue
        if name == CFG:
            st.cfg_valid = True
        if best is None or rec[0] > best[0]:
            best = rec
            best_name = name
    if best is None:
        st.values = defaults()
        st.seq = 0
        st.status = "defaults" if seen else "fresh"
        if seen:
            st.problems.append("no_valid_record:defaults_in_use")
        return st.values
    st.seq, schema, st.values = best
    st.status = "ok" if best_name == CFG else "fallback"
    if schema != SCHEMA:
        st.problems.append("migrated:schema_%d_to_%d" % (schema, SCHEMA))
        st.dirty = True
    if best_name == TMP:
        # a save was cut after its record was complete: finish it
        _promote(st)
    return st.values


def _promote(st):
    if st.cfg_valid:
        st.ops.rename(CFG, BAK)
    else:
        st.ops.remove(CFG)
    st.ops.rename(TMP, CFG)
    st.cfg_valid = True


def save(st, now_ms):
    """Writes the current values as a new record. The caller guarantees
    the drive is off (flash writes stall the CPU)."""
    v = st.values
    validate(v)  # never persist what would not load
    v["writes"] += 1
    seq = st.seq + 1
    data = frame(SCHEMA, seq, encode_payload(v))
    ops = st.ops
    st.last_write_ms = now_ms
    ops.write(TMP, data)
    if st.cfg_valid:
        ops.rename(CFG, BAK)
    else:
        ops.remove(CFG)
    ops.rename(TMP, CFG)
    st.cfg_valid = True
    st.seq = seq
    st.dirty = False
    return True
