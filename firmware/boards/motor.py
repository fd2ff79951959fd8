# Needle motor: 20 kHz PWM into a low-side MOSFET, plus a brake output that
# shorts the winding (dynamic braking).
from pen.compat import const

PWM_FREQ = const(20000)


class Motor:
    def __init__(self, pwm, brake_pin):
        self.pwm = pwm
        self.brake = brake_pin
        pwm.freq(PWM_FREQ)
        self.set(0, 1)

    def set(self, duty_bp, brake):
        # never both: the brake shorts the winding the PWM would drive
        if brake or duty_bp <= 0:
            self.pwm.duty_u16(0)
            self.brake.value(1)
        else:
            self.brake.value(0)
            self.pwm.duty_u16(duty_bp * 65535 // 10000)
