"""The technician's key on the host, and the challenge-response with the pen.

The key is 32 random bytes stored as 64 hex digits in a file only its owner
may read (mode 0600, refused otherwise, like ssh does). Default path:
``$XDG_CONFIG_HOME/penctl/key`` (``~/.config/penctl/key``); ``--key-file``
chooses another. The key never crosses the wire after provisioning: the pen
sends a fresh nonce, the host answers HMAC-SHA256(key, "pen-auth-v1|SERIAL|NONCE").
docs/security.md has the protocol, provisioning and rotation steps.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from host.link import Link, parse_pairs

KEY_LEN = 32


class KeyFileError(Exception):
    """The key file is missing, malformed or readable by others."""


def default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "penctl" / "key"


def load_key(path: Path | str | None = None) -> bytes:
    p = Path(path) if path else default_key_file()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(
            f"no key file at {p} (give --key-file, or provision with 'penctl auth --provision')"
        ) from None
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"key file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {p}"
        )
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_LEN:
        raise KeyFileError(f"key file {p} must hold {2 * KEY_LEN} hex digits")
    return key


def create_key_file(path: Path | str | None = None) -> bytes:
    """A new random key in a new file created with mode 0600 (never
    overwrites an existing file)."""
    p = Path(path) if path else default_key_file()
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_LEN)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{p} exists already; not overwriting a key") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def _mac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def response(key: bytes, serial: str, nonce: bytes) -> bytes:
    return _mac(key, b"pen-auth-v1|" + serial.encode() + b"|" + nonce)


def authenticate(link: Link, key: bytes) -> bytes:
    """Opens a technician session on this connection; returns the nonce
    (rotation binds to it). Raises PenRefused on a wrong key or lock-out."""
    pairs = parse_pairs(link.request("auth"))
    nonce = bytes.fromhex(pairs["nonce"])
    # never resent: a second answer to one nonce counts as a failed attempt
    link.request("auth " + response(key, pairs.get("serial", ""), nonce).hex(), idempotent=False)
    return nonce


def provision(link: Link, key: bytes) -> None:
    """Factory step: a pen without a key accepts one, once."""
    link.request("key provision " + key.hex(), idempotent=False)


def rotate(link: Link, old: bytes, new: bytes) -> None:
    """Replace the pen's key: needs the old one. The new key travels XORed
    with a pad only the holders of the old key can compute."""
    nonce = authenticate(link, old)
    pad = _mac(old, b"pen-rotate-v1|" + nonce)
    wrapped = bytes(a ^ b for a, b in zip(new, pad, strict=True))
    check = _mac(new, b"pen-rotate-check-v1|" + nonce)[:8]
    link.request(f"key rotate {wrapped.hex()} {check.hex()}", idempotent=False)
