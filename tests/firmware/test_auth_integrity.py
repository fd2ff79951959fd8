# Unit tests of pen.integrity (docs/security.md SEC5): the signed manifest
# and the boot check. Plain asserts; run under CPython and MicroPython.
import os

from pen import auth as A
from pen import integrity as I

KEY = bytes(range(32))


def _tree():
    root = "/tmp/pen-integrity-" + A.hexs(os.urandom(6))
    os.mkdir(root)
    os.mkdir(root + "/pen")
    os.mkdir(root + "/pen/__pycache__")
    for rel, text in (
        ("main.py", "print(1)\n"),
        ("pen/__init__.py", ""),
        ("pen/core.mpy", "\x4d\x06binary"),
        ("pen/notes.txt", "not code"),
        ("pen/__pycache__/core.cpython-311.pyc", "cache"),
    ):
        with open(root + "/" + rel, "w") as f:
            f.write(text)
    with open(root + "/" + I.MANIFEST, "wb") as f:
        f.write(I.build(root, KEY))
    return root


def _rm(path):
    try:
        names = os.listdir(path)
    except OSError:
        os.remove(path)
        return
    if I._is_dir(path):
        for n in names:
            _rm(path + "/" + n)
        os.rmdir(path)
    else:
        os.remove(path)


def _write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def test_sec5_signed_tree_checks_ok_and_lists_only_code():
    root = _tree()
    try:
        assert I.check(root, KEY) == "ok"
        assert I.code_files(root) == ["main.py", "pen/__init__.py", "pen/core.mpy"]
        assert I.check(root, None) == "unverified"  # no device key yet
    finally:
        _rm(root)


def test_sec5_any_change_is_detected():
    root = _tree()
    try:
        _write(root + "/pen/core.mpy", "x", "a")
        assert I.check(root, KEY) == "modified:pen/core.mpy"
    finally:
        _rm(root)
    root = _tree()
    try:
        _write(root + "/pen/evil.py", "import os\n")
        assert I.check(root, KEY) == "extra:pen/evil.py"
    finally:
        _rm(root)
    root = _tree()
    try:
        os.remove(root + "/main.py")
        assert I.check(root, KEY) == "missing:main.py"
    finally:
        _rm(root)


def test_sec5_manifest_forgery_is_detected():
    root = _tree()
    try:
        # a rebuilt manifest signed with another key, a wrong key at the pen
        assert I.check(root, bytes(32)) == "bad_signature"
        _write(root + "/pen/core.mpy", "x", "a")
        _write(root + "/" + I.MANIFEST, I.build(root, bytes(32)), "wb")
        assert I.check(root, KEY) == "bad_signature"
        # an edited hash line with the old signature kept
        with open(root + "/" + I.MANIFEST, "rb") as f:
            data = f.read()
        _write(root + "/" + I.MANIFEST, b"00" + data[2:], "wb")
        assert I.check(root, bytes(32)) == "bad_signature"
        _write(root + "/" + I.MANIFEST, b"garbage\n", "wb")
        assert I.check(root, KEY) == "bad_manifest"
        os.remove(root + "/" + I.MANIFEST)
        assert I.check(root, KEY) == "no_manifest"
    finally:
        _rm(root)


def test_sec5_hashing_feeds_the_watchdog():
    root = _tree()
    fed = [0]

    def feed():
        fed[0] += 1

    try:
        assert I.check(root, KEY, feed) == "ok"
        assert fed[0] >= 2
    finally:
        _rm(root)


def test_sec5_frozen_image_with_an_empty_filesystem_is_ok_and_shadowing_code_is_not():
    # the image's own code runs from flash: nothing in the filesystem to sign;
    # a code file there would shadow it, so it needs the signed manifest
    key = b"k" * 32
    root = "/tmp/pen-integrity-frozen-" + A.hexs(os.urandom(6))
    os.mkdir(root)
    assert I.check(root, key, frozen=True) == I.OK
    assert I.check(root, key, frozen=False) == "no_manifest"
    with open(root + "/evil.py", "w") as f:
        f.write("x = 1\n")
    assert I.check(root, key, frozen=True) == "no_manifest"
    os.remove(root + "/evil.py")
    os.rmdir(root)
