# ruff: noqa: UP031 - MicroPython code: %-formatting
# Cost of one simulated millisecond, split into firmware and world, in
# this interpreter (run by `python -m bench.simspeed` under both runtimes):
#
#   micropython tickbench.py [TICKS]
#
# The pen homes, then runs at 100 Hz on the skin; prints one line
# "tickbench total_us=.. firmware_us=.. world_us=.. speed=..x".
import sys

sys.argv[0] = sys.argv[0] if "/" in sys.argv[0] else "./tickbench.py"
_here = sys.argv[0].rsplit("/", 1)[0]
sys.path.insert(0, _here + "/../sim/device")
sys.path.insert(0, _here + "/../firmware")

import gc  # noqa: E402

from pen.runtime import Firmware  # noqa: E402
from runner import Sim  # noqa: E402
from simboard import SimBoard  # noqa: E402
from wallclock import wall_diff as _diff  # noqa: E402
from wallclock import wall_us as _us  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    if hasattr(gc, "threshold"):
        gc.threshold(65536)  # as runner.main does
    sim = Sim(None, 0, 1)
    fw = Firmware(SimBoard(sim))
    sim.fw = fw
    for _ in range(1500):
        fw.step()
    sim.world.contact = True
    sim.world.trigger = True
    for _ in range(1000):
        fw.step()
    b = fw.board
    core = fw.core
    best_total = best_world = 1e9
    for _ in range(3):
        gc.collect()
        t0 = _us()
        for _ in range(n):
            fw.step()
        best_total = min(best_total, _diff(_us(), t0) / n)
        gc.collect()
        t0 = _us()
        for _ in range(n):
            sim._advance(b)
            sim.last_feed_ms = sim.clock.ms
        best_world = min(best_world, _diff(_us(), t0) / n)
    ok = core.running
    print(
        "tickbench total_us=%.1f firmware_us=%.1f world_us=%.1f speed=%.1fx running=%d"
        % (best_total, best_total - best_world, best_world, 1000.0 / best_total, ok)
    )


main()
