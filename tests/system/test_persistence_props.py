"""Property tests of the stored formats (docs/persistence.md): CRC against zlib, and no
damage to the stored files can make the pen load a configuration that was
never saved or one outside the limits."""

from __future__ import annotations

import zlib

from flash import MemFileOps as Mem
from hypothesis import given
from hypothesis import strategies as st
from pen import store as ST
from pen.core import Config, Core
from pen.persist import Persistence


@given(st.binary(max_size=300))
def test_sr_persist_crc32_matches_zlib(data: bytes) -> None:
    assert ST.crc32(data) == zlib.crc32(data)


def _two_saves() -> tuple[Mem, list[dict[str, object]]]:
    m = Mem()
    p = Persistence(Core(Config()), m)
    p.boot("t")
    first = dict(p.store.values)
    p.core.configure({"depth": 1000, "max_tilt": 1200})
    p.store.last_write_ms = None
    p.service(0)
    p.service(60)
    return m, [first, dict(p.store.values)]


@given(
    st.sampled_from(["cfg", "cfg.bak"]),
    st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), min_size=1, max_size=4),
    st.integers(0, 400),
)
def test_sr_persist_damaged_files_never_load_unsaved_values(name: str, flips: list[tuple[int, int]], cut: int) -> None:
    m, saved = _two_saves()
    data = bytearray(m.files[name])
    for pos, mask in flips:
        if pos < len(data):
            data[pos] ^= mask
    m.files[name] = bytes(data[: max(cut, 1)] if cut < len(data) else data)
    s = ST.Store(m)
    v = s.load()
    if s.status in ("ok", "fallback"):
        assert v in saved
    else:
        assert s.status == "defaults" and v == ST.defaults()
    ST.validate(v)  # whatever is loaded is inside every limit


@given(
    st.fixed_dictionaries(
        {
            "max_depth": st.integers(0, 50).map(lambda k: k * 50),
            "max_rate": st.integers(250, 1500).map(lambda k: k * 100),
            "max_tilt": st.integers(10, 200).map(lambda k: k * 10),
            "max_session_min": st.integers(1, 60),
        }
    ),
    st.text(alphabet="abcdef0123456789", min_size=1, max_size=64),
)
def test_sr_persist_record_roundtrip(limits: dict[str, int], secret: str) -> None:
    v = ST.defaults()
    v.update(limits)
    v["depth"] = min(v["depth"], v["max_depth"])
    v["rate"] = min(v["rate"], v["max_rate"])
    v["kv.secret"] = secret
    ST.validate(v)
    rec = ST.unframe(ST.frame(ST.SCHEMA, 7, ST.encode_payload(v)))
    assert rec is not None
    assert ST.decode_payload(rec[2]) == v
