# Line integrity check of the serial protocol (docs/protocol.md): CRC-16/
# CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor), the
# same function as CPython's binascii.crc_hqx(data, 0xFFFF) on the host.
# Table-driven so a 100 Hz telemetry line costs one lookup per byte.
import sys
from array import array

from pen.compat import const

CRC_INIT = const(0xFFFF)
HEX = b"0123456789ABCDEF"


def _make_table():
    t = array("H", [0] * 256)
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t[i] = c & 0xFFFF
    return t


TABLE = _make_table()


def _crc16_py(data, n, crc):
    t = TABLE
    for i in range(n):
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ data[i]) & 0xFF]
    return crc


_crc16 = _crc16_py
if sys.implementation.name == "micropython":
    # the same loop compiled to machine code by the viper emitter (rp2,
    # unix): a telemetry line's check in microseconds inside the 1 ms loop

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _crc16_viper(data, n: int, crc: int) -> int:
        t = ptr16(TABLE)  # type: ignore[name-defined]  # noqa: F821
        d = ptr8(data)  # type: ignore[name-defined]  # noqa: F821
        for i in range(n):
            crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ d[i]) & 0xFF]
        return crc

    _crc16 = _crc16_viper


def crc16(data, n=-1, crc=CRC_INIT):
    """CRC over the first n bytes of data (bytes or bytearray; all of it when n < 0)."""
    if n < 0:
        n = len(data)
    return _crc16(data, n, crc)


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
