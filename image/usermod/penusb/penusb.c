// penusb: what MicroPython 1.29 gives Python no way to read, the host's end
// of the USB CDC port (docs/hardware.md, docs/security.md).
//
//   penusb.connected() -> bool
//
// True while a host program holds the port open: the device is configured
// and the host's last CDC SET_CONTROL_LINE_STATE set DTR (TinyUSB's
// tud_cdc_connected() on interface 0, the REPL/protocol port). A host that
// closes the port (or is unplugged) clears it. firmware/boards/pico.py uses
// it as the board's host_connected: a technician session ends on DTR drop.
// Allocates nothing (True/False are constant objects), so the loop may call
// it every pass.
#include "py/runtime.h"
#include "py/mphal.h"

// the board's "a CDC write never waits" (image/board/NEEDLE_PEN/mpconfigboard.h)
// must be what the port's headers give shared/tinyusb/mp_usbd_cdc.c
#if MICROPY_HW_USB_CDC_TX_TIMEOUT != 0
#error "MICROPY_HW_USB_CDC_TX_TIMEOUT must be 0 in the pen's image"
#endif

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
};
static MP_DEFINE_CONST_DICT(penusb_module_globals, penusb_module_globals_table);

const mp_obj_module_t penusb_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&penusb_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_penusb, penusb_user_cmodule);
