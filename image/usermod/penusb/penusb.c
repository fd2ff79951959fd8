// penusb: what MicroPython 1.29 gives Python no way to read, the host's end
// of the USB CDC port (docs/hardware.md, docs/security.md).
//
//   penusb.connected() -> bool
//   penusb.read_into(buf) -> int
//
// True while a host program holds the port open: the device is configured
// and the host's last CDC SET_CONTROL_LINE_STATE set DTR (TinyUSB's
// tud_cdc_connected() on interface 0, the REPL/protocol port). A host that
// closes the port (or is unplugged) clears it. firmware/boards/pico.py uses
// it as the board's host_connected: a technician session ends on DTR drop.
// Allocates nothing (True/False are constant objects), so the loop may call
// it every pass.
//
// read_into(buf) fills buf with the bytes the host has sent so far, never
// waiting, and returns their count (0: none). MicroPython's sys.stdin reads
// block until all the bytes asked for arrive, so Python can only poll and
// read one byte at a time (~100 us per byte on the chip with the poll);
// firmware/boards/stdio_serial.py uses this instead: one call per loop
// pass. It runs the USB stack once (as a poll of stdin does), then takes
// the bytes from the stdin ring buffer the CDC driver fills. Allocates
// nothing.
#include "py/runtime.h"
#include "py/mphal.h"

// the board's "a CDC write never waits" (image/board/NEEDLE_PEN/mpconfigboard.h)
// must be what the port's headers give shared/tinyusb/mp_usbd_cdc.c
#if MICROPY_HW_USB_CDC_TX_TIMEOUT != 0
#error "MICROPY_HW_USB_CDC_TX_TIMEOUT must be 0 in the pen's image"
#endif

#include "py/ringbuf.h"
#include "py/stream.h"

static mp_obj_t penusb_read_into(mp_obj_t buf_in) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(buf_in, &buf, MP_BUFFER_WRITE);
    uint8_t *p = buf.buf;
    size_t n = 0;
    #if MICROPY_HW_USB_CDC
    if (buf.len && mp_hal_stdio_poll(MP_STREAM_POLL_RD)) {
        while (n < buf.len) {
            int c = ringbuf_get(&stdin_ringbuf);
            if (c < 0) {
                break;
            }
            p[n++] = (uint8_t)c;
        }
    }
    #else
    (void)p;
    #endif
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_1(penusb_read_into_obj, penusb_read_into);

#if MICROPY_HW_ENABLE_USBDEV && MICROPY_HW_USB_CDC
#ifndef NO_QSTR
// the qstr scan preprocesses this file without TinyUSB's include path
// (as shared/tinyusb/mp_usbd_runtime.c does)
#include "tusb.h"
#endif

static mp_obj_t penusb_connected(void) {
    return mp_obj_new_bool(tud_cdc_connected());
}
#else
// an image without the USB CDC stdio (never ours): no host can be seen
static mp_obj_t penusb_connected(void) {
    return mp_const_false;
}
#endif
static MP_DEFINE_CONST_FUN_OBJ_0(penusb_connected_obj, penusb_connected);

static const mp_rom_map_elem_t penusb_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_penusb) },
    { MP_ROM_QSTR(MP_QSTR_connected), MP_ROM_PTR(&penusb_connected_obj) },
    { MP_ROM_QSTR(MP_QSTR_read_into), MP_ROM_PTR(&penusb_read_into_obj) },
};
static MP_DEFINE_CONST_DICT(penusb_module_globals, penusb_module_globals_table);

const mp_obj_module_t penusb_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&penusb_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_penusb, penusb_user_cmodule);
