// The needle pen's board: MicroPython's RPI_PICO plus the pen's USB identity
// (docs/hardware.md). VID:PID stay MicroPython's 2E8A:0005; the serial
// number stays MicroPython's default, the RP2040 flash unique id in hex
// (what `info` reports as serial). A bare MicroPython Pico says
// "MicroPython" / "Board in FS mode": discovery tells the two apart by the
// product string.
#include "boards/RPI_PICO/mpconfigboard.h"

#define MICROPY_HW_USB_MANUFACTURER_STRING "NeedlePen"
#define MICROPY_HW_USB_PRODUCT_FS_STRING "Needle Pen Controller"
