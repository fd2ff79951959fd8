"""Port discovery: VID:PID marks the pens; --port, $PENCTL_PORT, one pen
found, none or several found (clear one-line messages)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from host import cli, discover


def fake_ports(*specs: tuple[str, int | None, int | None, str | None]) -> list[SimpleNamespace]:
    """Pens carry the product string of the pen image (BRIEF: fixed interfaces)."""
    return [
        SimpleNamespace(
            device=d,
            vid=v,
            pid=p,
            serial_number=s,
            description="USB dev",
            product=BARE_PICO_PRODUCT if s and s.startswith("BARE") else PEN_PRODUCT if v == 0x2E8A else None,
            manufacturer=None if s and s.startswith("BARE") else "NeedlePen" if v == 0x2E8A else None,
        )
        for d, v, p, s in specs
    ]


PEN_PRODUCT = "Needle Pen Controller"
BARE_PICO_PRODUCT = "Board in FS mode"
BARE = ("/dev/ttyACM2", 0x2E8A, 0x0005, "BARE0123456789AB")


PEN_A = ("/dev/ttyACM0", 0x2E8A, 0x0005, "E66038B713849D31")
PEN_B = ("/dev/ttyACM1", 0x2E8A, 0x0005, "E66038B713849D32")
OTHER = ("/dev/ttyUSB0", 0x0403, 0x6001, "FT123")
BUILTIN = ("/dev/ttyS0", None, None, None)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("PENCTL_PORT", raising=False)
    return monkeypatch


def test_ports_marks_pens_by_vid_pid(no_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(OTHER, PEN_A, BUILTIN))
    assert cli.main(["--json", "ports"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_port = {r["port"]: r for r in rows}
    assert by_port["/dev/ttyACM0"] == {
        "port": "/dev/ttyACM0",
        "usb_id": "2E8A:0005",
        "serial_number": "E66038B713849D31",
        "description": "USB dev",
        "pen": True,
        "product": PEN_PRODUCT,
        "bare_micropython": False,
    }
    assert by_port["/dev/ttyUSB0"]["pen"] is False and by_port["/dev/ttyS0"]["usb_id"] == "-"
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "2E8A:0005" in out and "yes" in out and "FT123" in out


def test_port_choice_order(no_env: pytest.MonkeyPatch) -> None:
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(OTHER, PEN_A))
    assert discover.resolve_port("socket://localhost:4000") == "socket://localhost:4000"
    assert discover.resolve_port(None) == "/dev/ttyACM0"
    no_env.setenv("PENCTL_PORT", "/dev/ttyACM7")
    assert discover.resolve_port(None) == "/dev/ttyACM7"
    assert discover.port_of_serial("e66038b713849d31") == "/dev/ttyACM0"


def test_none_or_several_pens_are_one_clear_line(
    no_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(OTHER))
    assert cli.main(["status"]) == cli.EXIT_LINK
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no pen found" in err and "2E8A:0005" in err and "--port" in err
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(PEN_A, PEN_B))
    assert cli.main(["status"]) == cli.EXIT_LINK
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 pens found" in err and "/dev/ttyACM1" in err and "--port" in err


def test_a_bare_micropython_pico_is_never_taken_for_a_pen(
    no_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same VID:PID as a pen, product "Board in FS mode": not a pen, and
    discovery says to flash it."""
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(BARE, OTHER))
    assert [p.is_pen for p in discover.ports()] == [False, False]
    assert cli.main(["status"]) == cli.EXIT_LINK
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/dev/ttyACM2" in err and "without the pen firmware: flash it" in err
    assert cli.main(["ports"]) == 0
    assert "bare" in capsys.readouterr().out
    # with a pen beside it, the pen is the one chosen
    no_env.setattr(discover.list_ports, "comports", lambda: fake_ports(BARE, PEN_A))
    assert discover.resolve_port(None) == "/dev/ttyACM0"
