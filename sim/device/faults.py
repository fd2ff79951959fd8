# The simulator's fault catalogue: the one table of injectable faults. The
# world (world.py, under MicroPython or CPython), the runner, SimulatedPen
# (sim/simulated_pen.py), the console (sim/console.py) and docs/simulator.md (checked
# by tests/sim/test_sim_faults.py) all read it from here.
# MicroPython-compatible: plain tuples of strings.
#
# Each row: (name, what the world does, what the firmware is expected to do).
CATALOGUE = (
    (
        "stall",
        "rotor blocked: speed 0, no hall edges, blocked-rotor current d·V/(R+d²R_int)",
        "latch a fault (stall; with the rate loop winding up the duty, the current passes 2.5 A first and the firmware latches `overcurrent`)",
    ),
    (
        "overcurrent",
        "a short across the motor (R_short = 1 Ω): extra d·V/R_short through the shunt, no torque",
        "latch `overcurrent`",
    ),
    (
        "hall_lost",
        "the motor turns, no hall edges",
        "latch `hall_lost`",
    ),
    (
        "imu_lost",
        "MPU-6050 NACKs: every I2C transfer raises OSError(19)",
        "latch `imu_lost`, tilt unknown = outside the cone",
    ),
    (
        "imu_frozen",
        "MPU-6050 answers, sample registers stop changing",
        "latch `imu_frozen`",
    ),
    (
        "battery_sag",
        "open-circuit voltage 6.1 V (under the 6.4 V cutoff)",
        "stop, block `battery`",
    ),
    (
        "cartridge_pulled",
        "cartridge switch reads absent",
        "stop, block `cartridge`",
    ),
    (
        "serial_noise",
        "5 % of the firmware's serial reads return a random byte",
        "no crash; corrupted lines refused (`bad_bytes`)",
    ),
    (
        "loop_hang",
        "the control loop stops, outputs frozen, until the watchdog resets the MCU; the world keeps its state",
        "boot with the drive off; run again only after a fresh trigger press (SR8)",
    ),
    (
        "step_loss",
        "30 % of the depth stepper's pulses are lost",
        "(detects it at the home switch / re-home)",
    ),
    (
        "imu_stuck_axis",
        "the accelerometer's Z axis sticks at full scale (+32767 counts); X and Y stay live",
        "a saturated or stuck axis is implausible: treat as outside the cone, latch a sensor fault (SR1, SR4)",
    ),
    (
        "imu_bus_stall",
        "a device holds the I2C bus: every transfer raises OSError(110, ETIMEDOUT) after the bus timeout the board passed to I2C(timeout=µs), and the simulated clock advances by that blocked time (the world moves on, the watchdog counts)",
        "drive off within a few ms, latch `imu_lost`; short I2C timeout, bus recovery, back-off on re-init (SR4)",
    ),
    (
        "hall_missed_edges",
        "every second hall pulse is lost (the motor turns at twice the rate the hall signal shows)",
        "a second opinion on the rate (duty against feed-forward, current) catches the runaway (SR3)",
    ),
    (
        "adc_noise",
        "battery and current ADC with ripple (±150 mV, ±40 mA, seeded) and one high outlier every 20 ms (battery +2.2 V, current +400 mA)",
        "filter the readings: one outlier does not reset the under-voltage count (SR5)",
    ),
    (
        "serial_blocked",
        "the host holds the port open and reads nothing: the USB CDC TX buffer (256 bytes) fills; a write then blocks like MicroPython's rp2 CDC write (up to 500 ms, the simulated clock advances) and returns the bytes it took; `board.serial_room()` says how many bytes a write takes without blocking",
        "non-blocking writes with a drop counter; the loop never stalls (SR8, SR9)",
    ),
)

FAULT_NAMES = tuple(row[0] for row in CATALOGUE)
