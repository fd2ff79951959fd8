# MPU-6050 accelerometer/gyro over I2C, register protocol per the
# InvenSense register map (RM-MPU-6000A-00 rev 4.2).
from pen.compat import const, micropython

ADDR = const(0x68)
REG_SMPLRT_DIV = const(0x19)
REG_CONFIG = const(0x1A)
REG_GYRO_CONFIG = const(0x1B)
REG_ACCEL_CONFIG = const(0x1C)
REG_ACCEL_XOUT_H = const(0x3B)
REG_PWR_MGMT_1 = const(0x6B)
REG_WHO_AM_I = const(0x75)
WHO_AM_I_VALUE = const(0x68)


@micropython.native
def _s16(hi, lo):
    v = (hi << 8) | lo
    return v - 65536 if v & 0x8000 else v


# after a failed transfer the chip is re-initialised only after a back-off
# of reads (one per 1 ms tick) that doubles with each failed attempt, so a
# held or dead bus costs one timed-out transfer per back-off, not six per
# tick; meanwhile read_into reports imu_ok 0 at once (no bus access)
BACKOFF_MIN = const(2)
BACKOFF_MAX = const(32)


class MPU6050:
    def __init__(self, i2c, addr=ADDR, recover=None):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(6)
        self.one = bytearray(1)
        self.ok = 0
        # board hook: free a held bus (clock SCL out, re-create the I2C
        # object); returns the I2C to use. None: no recovery on this board
        self.recover = recover
        self.wait = 0  # reads left before the next re-init attempt
        self.backoff = BACKOFF_MIN
        self.failures = 0  # transfers that failed (reported by status)
        self.recoveries = 0

    def failed(self):
        """A transfer failed: reads report imu_ok 0, re-init after the
        back-off (also called by a board that reads the chip itself)."""
        self.ok = 0
        self.failures += 1
        self.wait = self.backoff
        if self.backoff < BACKOFF_MAX:
            self.backoff <<= 1

    def init(self):
        """Wake the chip and configure +-2 g, +-250 dps, DLPF 0 (260 Hz, no
        added delay, so a tilt shows in the next 1 ms sample). Returns True
        when the chip answered as an MPU-6050."""
        if self.failures and self.recover is not None:
            # a transfer failed before: free the bus first
            self.recoveries += 1
            try:
                self.i2c = self.recover()
            except OSError:
                self.failed()
                return False
        try:
            self.i2c.readfrom_mem_into(self.addr, REG_WHO_AM_I, self.one)
            if self.one[0] != WHO_AM_I_VALUE:
                self.failed()
                return False
            self._write(REG_PWR_MGMT_1, 0x01)  # awake, PLL on gyro X
            self._write(REG_SMPLRT_DIV, 0x07)  # 8 kHz / 8 = 1 kHz
            self._write(REG_CONFIG, 0x00)
            self._write(REG_GYRO_CONFIG, 0x00)
            self._write(REG_ACCEL_CONFIG, 0x00)
            self.ok = 1
            self.backoff = BACKOFF_MIN
        except OSError:
            self.failed()
        return bool(self.ok)

    def _write(self, reg, value):
        self.one[0] = value
        self.i2c.writeto_mem(self.addr, reg, self.one)

    @micropython.native
    def read_into(self, inp):
        """Accelerometer into inp.ax/ay/az; inp.imu_ok says if it answered.
        A chip that was lost is re-initialised after the back-off."""
        if not self.ok:
            if self.wait > 0:
                self.wait -= 1  # backing off: no bus access this tick
                inp.imu_ok = 0
                return
            if not self.init():
                inp.imu_ok = 0
                return
        b = self.buf
        try:
            self.i2c.readfrom_mem_into(self.addr, REG_ACCEL_XOUT_H, b)
        except OSError:
            self.failed()
            inp.imu_ok = 0
            return
        inp.ax = _s16(b[0], b[1])
        inp.ay = _s16(b[2], b[3])
        inp.az = _s16(b[4], b[5])
        inp.imu_ok = 1
