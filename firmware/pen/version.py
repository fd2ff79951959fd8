FIRMWARE_VERSION = "0.1.0"
PROTOCOL_VERSION = 1


def _image_version():
    # The flashed image's version: `make firmware` freezes a module pen_image
    # into the UF2 (tools/build_image.py) holding FIRMWARE_VERSION + "+" +
    # the first 12 hex digits of the build's input key. It is not in the
    # source tree, so code running from files (the simulator, `penctl deploy`
    # onto a bare MicroPython) reports "none". `id`/`info` report image=.
    try:
        import pen_image  # pyright: ignore[reportMissingImports]

        return str(pen_image.IMAGE_VERSION)
    except ImportError:
        return "none"


def _code_source():
    # Where this package was imported from: "frozen" (the image's own code)
    # or "files" (the filesystem, which comes first on sys.path: files that
    # `penctl deploy` copied shadow the frozen pen package). `id`/`info`
    # report it as code=; docs/hardware.md explains the difference.
    import pen

    path = getattr(pen, "__path__", "")
    return "frozen" if isinstance(path, str) and path.startswith(".frozen") else "files"


IMAGE_VERSION = _image_version()
CODE_SOURCE = _code_source()
