# Needle motor: 20 kHz PWM into a low-side MOSFET, plus a brake output that
# shorts the winding (dynamic braking).
#
# Drive and brake never overlap. The RP2040's PWM compare register is double
# buffered: a duty written now takes effect at the counter's next wrap, up
# to one period (50 us at 20 kHz) later, while the brake pin acts at once.
# So a stop writes duty 0 and leaves the brake off for that call; the brake
# comes on at the next call (the loop's next tick, 1 ms later, or the
# dead-man's next check), when the PWM pin has been low for a whole period.
# A start releases the brake first: it acts at once, the duty a wrap later.
from pen.compat import const

PWM_FREQ = const(20000)


class Motor:
    def __init__(self, pwm, brake_pin):
        self.pwm = pwm
        self.brake = brake_pin
        self.driving = 0  # a nonzero duty was written since the last brake
        pwm.freq(PWM_FREQ)
        pwm.duty_u16(0)
        brake_pin.value(1)

    def set(self, duty_bp, brake):
        if brake or duty_bp <= 0:
            if self.driving:
                # the duty register takes this at the next wrap (<= 50 us):
                # brake only from the next call on, never both at once
                self.pwm.duty_u16(0)
                self.driving = 0
                return
            self.brake.value(1)
        else:
            self.brake.value(0)
            self.pwm.duty_u16(duty_bp * 65535 // 10000)
            self.driving = 1
