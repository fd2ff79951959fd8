"""The JSON file of `penctl config export/import`. The host checks the
file's shape; the pen validates every value and applies all or nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import cast

from host.settings import CLINIC, WORKING

FORMAT = "needle-pen-config"
VERSION = 1
KEYS = [s.key for s in CLINIC + WORKING]


class ConfigFileError(Exception):
    """The file cannot be read or written, or is not a pen configuration."""


def write_config(path: str, values: dict[str, object], ident: dict[str, object]) -> None:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "pen": {"serial": ident.get("serial"), "fw": ident.get("fw"), "board": ident.get("board")},
        "hash": values.get("hash"),
        "clinic": {s.key: values[s.key] for s in CLINIC if s.key in values},
        "working": {s.key: values[s.key] for s in WORKING if s.key in values},
    }
    text = json.dumps(doc, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise ConfigFileError(f"cannot write {path}: {e.strerror or e}") from None


def read_config(path: str) -> dict[str, object]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigFileError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigFileError(f"{path} is not JSON: {e}") from None
    # a JSON object has string keys and JSON values
    doc = cast("dict[str, object]", doc) if isinstance(doc, dict) else None
    if doc is None or doc.get("format") != FORMAT:
        raise ConfigFileError(f'{path} is not a pen configuration (no "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise ConfigFileError(f"{path} has configuration version {doc.get('version')}, this penctl reads {VERSION}")
    values: dict[str, object] = {}
    for section in ("clinic", "working"):
        part = doc.get(section, {})
        if not isinstance(part, dict):
            raise ConfigFileError(f'{path}: "{section}" must be an object')
        for k, v in cast("dict[str, object]", part).items():
            if k not in KEYS:
                raise ConfigFileError(f"{path}: unknown key '{k}' (known: {', '.join(KEYS)})")
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise ConfigFileError(f"{path}: {k} must be a number")
            values[k] = v
    if not values:
        raise ConfigFileError(f"{path}: no values to import")
    return values
