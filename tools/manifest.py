"""Build (or check) the signed firmware manifest of a firmware tree.

  manifest.py [--key-file FILE] DIR          write DIR/manifest.txt
  manifest.py [--key-file FILE] --check DIR  verify DIR as the pen does at boot

DIR is the tree that goes onto the pen (firmware/ or the .mpy output of
compile_firmware.py --out). The manifest lists the SHA-256 of every .py/.mpy
file and ends with an HMAC-SHA256 over that list made with the device key
(the technician's key file, default ~/.config/penctl/key). The same code as
the pen's boot check computes it: firmware/pen/integrity.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT))

# firmware code (MicroPython, untyped): used through Any on purpose
integrity: Any = importlib.import_module("pen.integrity")

from host.auth import KeyFileError, load_key  # noqa: E402


def write_manifest(tree: Path, key: bytes) -> Path:
    out = tree / integrity.MANIFEST
    out.write_bytes(integrity.build(str(tree), key))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", type=Path)
    ap.add_argument("--key-file", help="device key (default: ~/.config/penctl/key)")
    ap.add_argument("--check", action="store_true", help="verify instead of writing")
    args = ap.parse_args(argv)
    try:
        key = load_key(args.key_file)
    except KeyFileError as e:
        print(f"manifest: {e}", file=sys.stderr)
        return 2
    if args.check:
        state = integrity.check(str(args.tree), key)
        print(f"manifest: {args.tree}: {state}")
        return 0 if state == integrity.OK else 1
    out = write_manifest(args.tree, key)
    n = len(integrity.code_files(str(args.tree)))
    print(f"manifest: {out}: {n} files signed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
