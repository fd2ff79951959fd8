# Firmware integrity (docs/security.md): a manifest lists the SHA-256 of
# every code file (.py, .mpy) of the deployed firmware and ends with an
# HMAC-SHA256 over the list, made with the device key at deploy time
# (tools/manifest.py). At boot the pen recomputes it; any difference puts
# the pen in safe mode (drive disabled), reported by `info` and `status`.
#
#   manifest.txt:   <sha256 hex> <path>\n ... (sorted by path)
#                   hmac <hex>\n              (over every byte above it)
import hashlib
import os

from pen.auth import hexs, unhex
from pen.sha import equal, hmac_sha256

MANIFEST = "manifest.txt"

# results (the first word is what `info` and `status` report)
OK = "ok"
# "unverified": no device key yet, factory state, nothing to check against


def root_dir():
    """The directory the firmware runs from: where pen/ lives. Code frozen
    into the image runs from flash (".frozen"): then the filesystem's root,
    the current directory, is what could shadow it."""
    from pen.version import CODE_SOURCE

    if CODE_SOURCE == "frozen":
        return ""
    import pen

    f = getattr(pen, "__file__", "") or ""
    i = f.rfind("pen/__init__")
    return f[: i - 1] if i > 0 else ""


def _join(root, rel):
    return root + "/" + rel if root else rel


def _is_dir(path):
    try:
        return (os.stat(path)[0] & 0x4000) != 0
    except OSError:
        return False


def code_files(root):
    """Relative paths of every .py/.mpy file under root, sorted."""
    out = []
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in os.listdir(_join(root, rel) if rel else (root or ".")):
            if name == "__pycache__" or name.startswith("."):
                continue
            r = rel + "/" + name if rel else name
            if _is_dir(_join(root, r)):
                stack.append(r)
            elif name.endswith(".py") or name.endswith(".mpy"):
                out.append(r)
    out.sort()
    return out


def file_sha256(path, feed=None):
    h = hashlib.sha256()
    buf = bytearray(512)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
            if feed is not None:
                feed()  # hashing on the RP2040 must not starve the watchdog
    return h.digest()


def manifest_body(root, feed=None):
    lines = []
    for rel in code_files(root):
        lines.append("%s %s\n" % (hexs(file_sha256(_join(root, rel), feed)), rel))
    return "".join(lines).encode()


def build(root, key):
    """The manifest text for the tree at root, signed with key."""
    body = manifest_body(root)
    return body + b"hmac " + hexs(hmac_sha256(key, body)).encode() + b"\n"


def check(root, key, feed=None, frozen=False):
    """'ok', 'unverified' (no key) or the reason the firmware is not the
    signed one: 'no_manifest', 'bad_manifest', 'bad_signature',
    'modified:PATH', 'missing:PATH', 'extra:PATH'. frozen: the firmware is
    the image's own code (in flash, put there by flashing the UF2, which
    needs the pen in hand): with no code file in the filesystem there is
    nothing to sign; any code file there (it would shadow the image) needs
    the signed manifest as on a pen that runs from files."""
    if key is None:
        return "unverified"
    try:
        with open(_join(root, MANIFEST), "rb") as f:
            data = f.read()
    except OSError:
        if frozen and not code_files(root):
            return OK
        return "no_manifest"
    i = data.rfind(b"hmac ")
    if i < 0 or (i > 0 and data[i - 1] != 0x0A):
        return "bad_manifest"
    body = data[:i]
    sig = unhex(data[i + 5 :].strip().decode(), 32)
    if sig is None:
        return "bad_manifest"
    if not equal(sig, hmac_sha256(key, body)):
        return "bad_signature"
    listed = {}
    for line in body.decode().split("\n"):
        if not line:
            continue
        parts = line.split(" ", 1)
        if len(parts) != 2:
            return "bad_manifest"
        listed[parts[1]] = parts[0]
    present = code_files(root)
    for rel in present:
        if rel not in listed:
            return "extra:" + rel
    for rel in sorted(listed):
        try:
            got = hexs(file_sha256(_join(root, rel), feed))
        except OSError:
            return "missing:" + rel
        if got != listed[rel]:
            return "modified:" + rel
    return OK
