"""Finding the pen: serial ports, USB VID:PID and product string, $PENCTL_PORT.

A pen enumerates as a USB CDC device with the RP2040 MicroPython VID:PID
(2E8A:0005), manufacturer "NeedlePen" and product "Needle Pen Controller";
its USB serial number is the RP2040's unique id, which the pen also reports
as ``serial`` in ``info``. A bare MicroPython Pico has the same VID:PID and
the product "Board in FS mode": it is never taken for a pen, and discovery
says to flash it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from serial.tools import list_ports

# (VID, PID) of pens: Raspberry Pi RP2040 running MicroPython
PEN_USB_IDS = {(0x2E8A, 0x0005)}
PEN_PRODUCT = "Needle Pen Controller"
PEN_MANUFACTURER = "NeedlePen"
BARE_PRODUCT = "Board in FS mode"  # MicroPython's own rp2 image


class DiscoveryError(Exception):
    """No pen, or more than one, and no --port to choose."""


@dataclass
class PortInfo:
    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str
    is_pen: bool
    product: str = ""
    bare_micropython: bool = False  # a Pico running MicroPython without the pen firmware

    @property
    def kind_short(self) -> str:
        return "yes" if self.is_pen else "bare" if self.bare_micropython else "no"

    @property
    def usb_id(self) -> str:
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04X}:{self.pid:04X}"

    def as_dict(self) -> dict[str, object]:
        return {
            "port": self.device,
            "usb_id": self.usb_id,
            "serial_number": self.serial_number or "",
            "description": self.description,
            "pen": self.is_pen,
            "product": self.product,
            "bare_micropython": self.bare_micropython,
        }


def ports() -> list[PortInfo]:
    out: list[PortInfo] = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        usb_match = p.vid is not None and (p.vid, p.pid) in PEN_USB_IDS
        product = str(getattr(p, "product", None) or "")
        maker = str(getattr(p, "manufacturer", None) or "")
        is_pen = usb_match and (product == PEN_PRODUCT or maker == PEN_MANUFACTURER)
        bare = usb_match and not is_pen
        out.append(PortInfo(p.device, p.vid, p.pid, p.serial_number, p.description or "", is_pen, product, bare))
    return out


def pens() -> list[PortInfo]:
    return [p for p in ports() if p.is_pen]


def port_of_serial(serial_number: str) -> str | None:
    """The port of the pen with this USB serial number, if plugged in."""
    for p in pens():
        if p.serial_number and p.serial_number.lower() == serial_number.lower():
            return p.device
    return None


def resolve_port(port: str | None) -> str:
    """--port (a path or a pyserial URL), else $PENCTL_PORT, else the one
    pen found by USB VID:PID."""
    if port:
        return port
    env = os.environ.get("PENCTL_PORT")
    if env:
        return env
    every = ports()
    found = [p for p in every if p.is_pen]
    ids = ", ".join(f"{v:04X}:{p:04X}" for v, p in sorted(PEN_USB_IDS))
    bare = [p for p in every if p.bare_micropython]
    if not found and bare:
        names = ", ".join(f"{p.device} ({p.product or 'no product string'})" for p in bare)
        raise DiscoveryError(
            f"no pen found; {names} runs MicroPython without the pen firmware: flash it "
            f"(penctl --port {bare[0].device} deploy), or give --port PORT or set PENCTL_PORT"
        )
    if not found:
        raise DiscoveryError(
            f"no pen found (no serial port with USB id {ids}); plug the pen in, "
            "or give --port PORT or set PENCTL_PORT ('penctl ports' lists the ports)"
        )
    if len(found) > 1:
        names = ", ".join(f"{p.device} (serial {p.serial_number or '?'})" for p in found)
        raise DiscoveryError(f"{len(found)} pens found: {names}; choose one with --port PORT or PENCTL_PORT")
    return found[0].device
