# Board layer: the only place that names pins or touches peripherals.
# pico.py is the RP2040 reference board; the simulator's board (sim/device)
# hands the same drivers simulated peripherals with the same methods.
