"""USB on the virtual Pico (SEC: a technician session
belongs to one connection; SR10: the serial number): the host's end of the CDC
port and the pen's serial number, on one booted pen (conftest `chip`).

- A technician session belongs to one connection: the chip's USB host
  (sim/rp2040/chip.js) sends CDC SET_CONTROL_LINE_STATE with DTR set when a
  program opens the pty and cleared when it hangs up; the image's native
  `penusb.connected()` (image/usermod/penusb) lets the firmware see it and
  end the session (docs/security.md SEC1).
- The emulated flash answers the RUID command (0x4B) with a per-pen unique
  id, so machine.unique_id() and `info`'s serial are the pen's, not zeros.
"""

from __future__ import annotations

import pytest

from host import Pen
from host.link import PenRefused
from tests.chip.conftest import REQUEST_TIMEOUT_S, Chip

AUTH_REQUIRED = 40


def test_chip_sec1_dtr_drop_ends_the_technician_session(chip: Chip) -> None:
    pen = chip.pen
    tech = chip.technician(fresh=False)
    limit = tech.limits()["max_depth"]
    # the session is open on this connection: a technician command is taken
    tech.link.request(f"limits set max_depth {limit}")
    assert pen.truth()["host_connected"] is True
    # the program dies without a logout: the port closes, nothing is sent
    tech.link.close()
    tech.authenticated = False
    pen.advance(100)  # the hang-up is seen within 16 ms; DTR drop; a loop pass
    assert pen.truth()["host_connected"] is False
    # the next program on the port sends no handshake (`id` would end any
    # session by itself): only the DTR drop can have ended it
    chip.host = Pen(pen.port, timeout=REQUEST_TIMEOUT_S, identify=False, key_file=chip.key_file)
    pen.advance(50)
    assert pen.truth()["host_connected"] is True
    with pytest.raises(PenRefused) as refused:
        chip.host.link.request(f"limits set max_depth {limit}")
    assert refused.value.code == AUTH_REQUIRED, refused.value
    ends = [e for e in chip.host.log() if "session_end" in str(e.values())]
    assert ends and "disconnect" in str(ends[-1]), ends[-3:]
    # a new authentication opens a session again
    chip.host.auth()
    chip.host.link.request(f"limits set max_depth {limit}")
    chip.host.logout()


def test_chip_flash_unique_id_is_the_pens_serial(chip: Chip) -> None:
    flash_id = str(chip.truth()["flash_id"])
    assert len(flash_id) == 16 and flash_id != "0" * 16
    info = chip.host.info()
    assert str(info["serial"]) == flash_id, (info["serial"], flash_id)
