"""The virtual pen: the real firmware on a simulated board, in MicroPython
(default) or CPython. ``from sim import SimulatedPen``."""

from sim.simulated_pen import FAULTS, SimError, SimulatedPen

__all__ = ["SimulatedPen", "SimError", "FAULTS"]
