// The needle pen's board: MicroPython's RPI_PICO plus the pen's USB identity
// (docs/hardware.md). VID:PID stay MicroPython's 2E8A:0005; the serial
// number stays MicroPython's default, the RP2040 flash unique id in hex
// (what `info` reports as serial). A bare MicroPython Pico says
// "MicroPython" / "Board in FS mode": discovery tells the two apart by the
// product string.
#include "boards/RPI_PICO/mpconfigboard.h"

#define MICROPY_HW_USB_MANUFACTURER_STRING "NeedlePen"
#define MICROPY_HW_USB_PRODUCT_FS_STRING "Needle Pen Controller"

// A CDC write never waits for the host (shared/tinyusb/mp_usbd_cdc.c,
// mp_usbd_cdc_tx_strn): with the TX FIFO full it gives up at once instead of
// after 500 ms, so a host that holds the port open but never reads cannot
// stall the loop (the firmware counts the dropped bytes, tx_dropped). The
// rp2 port's mphalport.h defines it unconditionally; the build makes that
// definition a default (tools/build_image.py, Tree.patch_cdc_timeout).
#define MICROPY_HW_USB_CDC_TX_TIMEOUT (0)
