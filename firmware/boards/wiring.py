# Wiring constants of the reference pen, shared by the RP2040 board
# (boards/pico.py, beside its pin table) and the simulator's board
# (sim/device/simboard.py): one place for the analog scaling, the bus and
# the watchdog, so the simulated ADCs and the real ones cannot disagree.
from pen.compat import const

TICK_US = const(1000)  # control loop period, 1 kHz
WDT_TIMEOUT_MS = const(100)  # hardware watchdog (SR8); the RP2040 allows <= 8388
# ... while a flash write runs (pen.persist, drive off only): one littlefs
# write can erase two 4 KB sectors with the CPU stalled (45 ms each on the
# virtual Pico, up to 400 ms each on a W25Q16 at worst), past the 100 ms
WDT_FLASH_TIMEOUT_MS = const(2000)
VREF_MV = const(3300)  # ADC reference: 16-bit counts span 0..VREF_MV
# motor current: shunt 0.05 ohm x amplifier gain 20 = 1 mV per mA at the ADC
CURRENT_MUL = const(1)  # mA = mV_adc * CURRENT_MUL // CURRENT_DIV
CURRENT_DIV = const(1)
# battery: 1:3 divider (200k over 100k) into the ADC
BATTERY_MUL = const(3)  # mV_battery = mV_adc * BATTERY_MUL // BATTERY_DIV
BATTERY_DIV = const(1)
# MPU-6050 on I2C0: bus clock and the per-transfer timeout handed to
# machine.I2C. The rp2 port's default is 50 ms per transfer (two per read):
# a held bus would stall the 1 kHz loop with the motor on. A 6-byte read
# takes about 0.25 ms at 400 kHz, so 1 ms is four times that: a held bus
# costs at most 2 ms of one tick, then the driver backs off (mpu6050.py)
I2C_FREQ = const(400000)
I2C_TIMEOUT_US = const(1000)
