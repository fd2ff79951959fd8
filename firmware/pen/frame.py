# Line integrity check of the serial protocol (docs/protocol.md): CRC-16/
# CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor), the
# same function as CPython's binascii.crc_hqx(data, 0xFFFF) on the host.
# Table-driven so a 100 Hz telemetry line costs one lookup per byte.
import sys

from pen.compat import const

CRC_INIT = const(0xFFFF)
HEX = b"0123456789ABCDEF"


# The CRC table as little-endian 16-bit words in a bytes literal: frozen
# into flash with the code, nothing is built at import (tools/gen_tables.py
# writes it; tests/firmware/test_protocol_unit.py checks it).
# fmt: off
TABLE = (
    b"\x00\x00\x21\x10\x42\x20\x63\x30\x84\x40\xa5\x50\xc6\x60\xe7\x70\x08\x81\x29\x91\x4a\xa1\x6b\xb1\x8c\xc1\xad\xd1\xce\xe1\xef\xf1"
    b"\x31\x12\x10\x02\x73\x32\x52\x22\xb5\x52\x94\x42\xf7\x72\xd6\x62\x39\x93\x18\x83\x7b\xb3\x5a\xa3\xbd\xd3\x9c\xc3\xff\xf3\xde\xe3"
    b"\x62\x24\x43\x34\x20\x04\x01\x14\xe6\x64\xc7\x74\xa4\x44\x85\x54\x6a\xa5\x4b\xb5\x28\x85\x09\x95\xee\xe5\xcf\xf5\xac\xc5\x8d\xd5"
    b"\x53\x36\x72\x26\x11\x16\x30\x06\xd7\x76\xf6\x66\x95\x56\xb4\x46\x5b\xb7\x7a\xa7\x19\x97\x38\x87\xdf\xf7\xfe\xe7\x9d\xd7\xbc\xc7"
    b"\xc4\x48\xe5\x58\x86\x68\xa7\x78\x40\x08\x61\x18\x02\x28\x23\x38\xcc\xc9\xed\xd9\x8e\xe9\xaf\xf9\x48\x89\x69\x99\x0a\xa9\x2b\xb9"
    b"\xf5\x5a\xd4\x4a\xb7\x7a\x96\x6a\x71\x1a\x50\x0a\x33\x3a\x12\x2a\xfd\xdb\xdc\xcb\xbf\xfb\x9e\xeb\x79\x9b\x58\x8b\x3b\xbb\x1a\xab"
    b"\xa6\x6c\x87\x7c\xe4\x4c\xc5\x5c\x22\x2c\x03\x3c\x60\x0c\x41\x1c\xae\xed\x8f\xfd\xec\xcd\xcd\xdd\x2a\xad\x0b\xbd\x68\x8d\x49\x9d"
    b"\x97\x7e\xb6\x6e\xd5\x5e\xf4\x4e\x13\x3e\x32\x2e\x51\x1e\x70\x0e\x9f\xff\xbe\xef\xdd\xdf\xfc\xcf\x1b\xbf\x3a\xaf\x59\x9f\x78\x8f"
    b"\x88\x91\xa9\x81\xca\xb1\xeb\xa1\x0c\xd1\x2d\xc1\x4e\xf1\x6f\xe1\x80\x10\xa1\x00\xc2\x30\xe3\x20\x04\x50\x25\x40\x46\x70\x67\x60"
    b"\xb9\x83\x98\x93\xfb\xa3\xda\xb3\x3d\xc3\x1c\xd3\x7f\xe3\x5e\xf3\xb1\x02\x90\x12\xf3\x22\xd2\x32\x35\x42\x14\x52\x77\x62\x56\x72"
    b"\xea\xb5\xcb\xa5\xa8\x95\x89\x85\x6e\xf5\x4f\xe5\x2c\xd5\x0d\xc5\xe2\x34\xc3\x24\xa0\x14\x81\x04\x66\x74\x47\x64\x24\x54\x05\x44"
    b"\xdb\xa7\xfa\xb7\x99\x87\xb8\x97\x5f\xe7\x7e\xf7\x1d\xc7\x3c\xd7\xd3\x26\xf2\x36\x91\x06\xb0\x16\x57\x66\x76\x76\x15\x46\x34\x56"
    b"\x4c\xd9\x6d\xc9\x0e\xf9\x2f\xe9\xc8\x99\xe9\x89\x8a\xb9\xab\xa9\x44\x58\x65\x48\x06\x78\x27\x68\xc0\x18\xe1\x08\x82\x38\xa3\x28"
    b"\x7d\xcb\x5c\xdb\x3f\xeb\x1e\xfb\xf9\x8b\xd8\x9b\xbb\xab\x9a\xbb\x75\x4a\x54\x5a\x37\x6a\x16\x7a\xf1\x0a\xd0\x1a\xb3\x2a\x92\x3a"
    b"\x2e\xfd\x0f\xed\x6c\xdd\x4d\xcd\xaa\xbd\x8b\xad\xe8\x9d\xc9\x8d\x26\x7c\x07\x6c\x64\x5c\x45\x4c\xa2\x3c\x83\x2c\xe0\x1c\xc1\x0c"
    b"\x1f\xef\x3e\xff\x5d\xcf\x7c\xdf\x9b\xaf\xba\xbf\xd9\x8f\xf8\x9f\x17\x6e\x36\x7e\x55\x4e\x74\x5e\x93\x2e\xb2\x3e\xd1\x0e\xf0\x1e"
)
# fmt: on


def _crc16_py(data, start, end, crc):
    """The check of data[start:end], carried on from crc."""
    t = TABLE
    for i in range(start, end):
        k = (((crc >> 8) ^ data[i]) & 0xFF) << 1
        crc = ((crc << 8) & 0xFFFF) ^ t[k] ^ (t[k + 1] << 8)
    return crc


_crc16 = _crc16_py
if sys.implementation.name == "micropython":
    # the same loop compiled to machine code by the viper emitter (rp2,
    # unix): a telemetry line's check in microseconds inside the 1 ms loop

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _crc16_viper(data, start: int, end: int, crc: int) -> int:
        t = ptr16(TABLE)  # type: ignore[name-defined]  # noqa: F821
        d = ptr8(data)  # type: ignore[name-defined]  # noqa: F821
        for i in range(start, end):
            crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ d[i]) & 0xFF]
        return crc

    _crc16 = _crc16_viper


# Lines the pen sends on its own (telemetry, events) are built in place in a
# preallocated bytearray, without a str, so a loop pass that sends one
# allocates nothing (DESIGN §6): put_text/put_int write at an index and
# return the index after what they wrote; seal appends '*CRC' and LF. They
# never write past the buffer's end: what does not fit is left out and the
# index returned is the buffer's length (a caller that can reach it checks).


def _put_text_py(buf, i, s):
    d = s.encode() if isinstance(s, str) else s
    n = min(len(d), len(buf) - i)
    buf[i : i + n] = d[:n]
    return i + n


def _put_int_py(buf, i, v):
    if i + 11 > len(buf):
        return len(buf)
    return _put_text_py(buf, i, str(v))


def _put_ints_py(buf, i, vals, n):
    for k in range(n):
        if k:
            i = _put_text_py(buf, i, b" ")
        i = _put_int_py(buf, i, vals[k])
    return i


def put_check(buf, n, crc):
    """'*' + crc in four upper-case hex digits + LF at buf[n:] (seal's
    end, for a check computed in spans); returns the length."""
    buf[n] = 0x2A
    buf[n + 1] = HEX[(crc >> 12) & 15]
    buf[n + 2] = HEX[(crc >> 8) & 15]
    buf[n + 3] = HEX[(crc >> 4) & 15]
    buf[n + 4] = HEX[crc & 15]
    buf[n + 5] = 0x0A
    return n + 6


def _seal_py(buf, n):
    """'*' + the check of buf[:n] in four upper-case hex digits + LF after
    the first n bytes of buf (6 bytes of room needed); returns the length."""
    return put_check(buf, n, _crc16(buf, 0, n, CRC_INIT))


def _put_str_mp(buf, i, s):
    m = memoryview(s)  # type: ignore[arg-type]  # MicroPython: a str is a buffer
    n = len(m)
    if n > len(buf) - i:
        n = len(buf) - i
        m = m[:n]
    buf[i : i + n] = m
    return i + n


put_text = _put_text_py
put_int = _put_int_py
put_ints = _put_ints_py
seal = _seal_py
crc16_span = _crc16  # the check of buf[start:end], carried on from crc (a reply's in steps)
# put_text for a long str (a reply's text): on MicroPython copied in one go
# by the VM through a memoryview of the str (one small object on the heap),
# ~8x faster than viper's byte at a time (~0.8 us a byte on the chip)
put_str = _put_text_py
if sys.implementation.name == "micropython":
    put_str = _put_str_mp
if sys.implementation.name == "micropython":

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _put_text_viper(buf, i: int, s) -> int:
        b = ptr8(buf)  # type: ignore[name-defined]  # noqa: F821
        src = ptr8(s)  # type: ignore[name-defined]  # noqa: F821  # a str is a buffer too
        n = int(len(s))
        room = int(len(buf)) - i
        if n > room:
            n = room
        for k in range(n):
            b[i + k] = src[k]
        return i + n

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _put_int_viper(buf, i: int, v: int) -> int:
        # decimal, as '%d' writes it: count the digits, then write them
        # from the last one back
        b = ptr8(buf)  # type: ignore[name-defined]  # noqa: F821
        if i + 11 > int(len(buf)):
            return int(len(buf))  # room for any 32-bit value, sign included
        if v < 0:
            b[i] = 0x2D
            i += 1
            v = 0 - v
        t = v
        while t >= 10:
            t = t // 10
            i += 1
        end = i + 1
        while i >= 0:
            b[i] = 0x30 + v % 10
            v = v // 10
            if v == 0:
                break
            i -= 1
        return end

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _put_ints_viper(buf, i: int, vals, n: int) -> int:
        # vals[0..n-1] as put_int writes them, one space between: a
        # telemetry frame's fields in one call (nine calls of put_int cost
        # ~250 us on the chip, docs/performance.md)
        b = ptr8(buf)  # type: ignore[name-defined]  # noqa: F821
        size = int(len(buf))
        for k in range(n):
            if k:
                if i >= size:
                    return size
                b[i] = 0x20
                i += 1
            if i + 11 > size:
                return size
            v = int(vals[k])
            if v < 0:
                b[i] = 0x2D
                i += 1
                v = 0 - v
            t = v
            while t >= 10:
                t = t // 10
                i += 1
            end = i + 1
            while True:
                b[i] = 0x30 + v % 10
                v = v // 10
                if v == 0:
                    break
                i -= 1
            i = end
        return i

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _seal_viper(buf, n: int) -> int:
        # seal in one machine-code call: the check and its six bytes
        t = ptr16(TABLE)  # type: ignore[name-defined]  # noqa: F821
        h = ptr8(HEX)  # type: ignore[name-defined]  # noqa: F821
        b = ptr8(buf)  # type: ignore[name-defined]  # noqa: F821
        crc = CRC_INIT
        for i in range(n):
            crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ b[i]) & 0xFF]
        b[n] = 0x2A
        b[n + 1] = h[(crc >> 12) & 15]
        b[n + 2] = h[(crc >> 8) & 15]
        b[n + 3] = h[(crc >> 4) & 15]
        b[n + 4] = h[crc & 15]
        b[n + 5] = 0x0A
        return n + 6

    put_text = _put_text_viper
    put_int = _put_int_viper
    put_ints = _put_ints_viper
    seal = _seal_viper


def crc16(data, n=-1, crc=CRC_INIT):
    """CRC over the first n bytes of data (bytes or bytearray; all of it when n < 0)."""
    if n < 0:
        n = len(data)
    return _crc16(data, 0, n, crc)


def hex4(crc):
    """'1A2B' for a check value, upper case, always four digits."""
    return "%04X" % crc


def parse_hex4(data, start):
    """Four upper- or lower-case hex digits at data[start:start+4] -> int, -1 if not hex."""
    v = 0
    for i in range(start, start + 4):
        b = data[i]
        if 0x30 <= b <= 0x39:
            d = b - 0x30
        elif 0x41 <= b <= 0x46:
            d = b - 0x37
        elif 0x61 <= b <= 0x66:
            d = b - 0x57
        else:
            return -1
        v = (v << 4) | d
    return v
