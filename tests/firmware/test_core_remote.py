# Service-mode remote start on pen.core.Core (docs/safety.md, hazard "drive
# started remotely without a hand on the pen"), with the plant and the
# per-tick reference model of test_core_replay. Plain asserts: runs under
# pytest and MicroPython (tests/firmware/mprun.py).
from pen import core as C
from pen.errors import NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, PenError
from test_core_replay import Harness


def ready(stage=100):
    h = Harness(stage_steps=stage)
    h.advance(800)
    assert h.core.state == C.ST_READY, C.STATE_NAMES[h.core.state]
    return h


def refused(h, code):
    block = h.core.block
    try:
        h.core.remote_start()  # directly: the harness's action swallows a refusal
    except PenError as e:
        assert e.code == code, e.code
        assert not h.core.remote and h.core.block == block
        return
    raise AssertionError("remote start accepted")


def remote_running(h):
    h.do("remote_start")
    assert h.core.remote
    h.advance(1)
    assert h.core.running and h.core.state == C.ST_RUNNING
    h.advance(300)
    assert h.core.running and h.core.remote


def test_sr6_core_remote_start_runs_without_the_trigger_until_stopped():
    h = ready()
    remote_running(h)
    h.do("remote_stop")
    h.advance(1)
    assert not h.core.running and not h.core.remote
    assert C.STOP_NAMES[h.core.stop_reason] == "host_stop"
    h.advance(500)
    assert not h.core.running  # never restarts by itself
    # a host STOP (the heartbeat loss path) ends it the same way
    remote_running(h)
    h.do("stop")
    h.advance(1)
    assert not h.core.running and not h.core.remote
    h.advance(500)
    assert not h.core.running and h.core.state == C.ST_READY


def test_sr1_core_remote_start_still_stops_on_tilt_and_does_not_restart():
    h = ready()
    remote_running(h)
    h.do("tilt", (16.0, 0.0))  # limit 15 deg
    h.advance(1)
    assert not h.core.running and not h.core.remote
    assert C.STOP_NAMES[h.core.stop_reason] == "tilt"
    h.do("tilt", (0.0, 0.0))
    h.advance(800)
    assert h.core.state == C.ST_READY and not h.core.running


def test_sr6_core_remote_start_stops_on_cartridge_battery_and_fault():
    for upset, value, reason in (
        ("cartridge", 0, "cartridge"),
        ("battery", 6000, "battery"),
        ("current", 5000, "fault"),
    ):
        h = ready()
        remote_running(h)
        h.do(upset, value)
        h.advance(C.BATT_DEBOUNCE_MS + C.BATT_FILTER_MS)
        assert not h.core.running and not h.core.remote, upset
        assert C.STOP_NAMES[h.core.stop_reason] == reason, C.STOP_NAMES[h.core.stop_reason]


def test_sr6_core_remote_start_refused_unless_ready():
    h = Harness(stage_steps=100)
    h.advance(5)
    refused(h, NOT_ALLOWED_IN_STATE)  # homing
    h.advance(800)
    h.do("tilt", (30.0, 0.0))
    h.advance(5)
    refused(h, NOT_ALLOWED_IN_STATE)  # out of the cone
    h.do("tilt", (0.0, 0.0))
    h.advance(800)
    h.do("trigger", 1)
    h.advance(50)
    assert h.core.running
    refused(h, NOT_WHILE_RUNNING)
    h.do("stop")  # trigger still held: the STOP stays latched
    h.advance(5)
    refused(h, NOT_ALLOWED_IN_STATE)
    h.do("trigger", 0)
    h.advance(50)
    h.core.safe_mode = 1
    h.advance(5)
    refused(h, NOT_ALLOWED_IN_STATE)


def test_sr6_core_remote_start_that_cannot_start_is_dropped():
    h = ready()
    h.do("remote_start")
    h.do("cartridge", 0)
    h.advance(20)
    assert not h.core.running and not h.core.remote
    h.do("cartridge", 1)
    h.advance(50)
    assert not h.core.running  # the cartridge back in does not start it


def test_sr7_core_remote_start_respects_the_session_time():
    h = ready()
    h.do("poke", ("max_session_min", 1))
    remote_running(h)
    h.advance(60000)
    assert not h.core.running and not h.core.remote
    assert C.STOP_NAMES[h.core.stop_reason] == "session_time"
