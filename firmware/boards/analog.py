# ADC channels scaled to physical units in integers. Scale factors keep the
# products under 2**30 (65535 * 3300 * 4 < 2**30).
from pen.compat import micropython


class Analog:
    def __init__(self, adc, vref_mv, mul, div):
        self.adc = adc
        self.k = vref_mv * mul
        self.div = div * 65535

    @micropython.native
    def read(self):
        return self.adc.read_u16() * self.k // self.div
