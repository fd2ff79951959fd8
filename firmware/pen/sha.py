# HMAC-SHA256 (RFC 2104) on MicroPython's hashlib (the board has no hmac
# module) and a constant-time compare: the part of pen.auth the boot-time
# integrity check needs, kept apart so the boot does not load pen.authx.
import hashlib

from pen.compat import const

_BLOCK = const(64)  # SHA-256 block size


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        ipad[i] = k[i] ^ 0x36
        opad[i] = k[i] ^ 0x5C
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    """Compare in time independent of where the first difference is."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
