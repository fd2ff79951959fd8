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

// A bytecode call's frame (its locals, value stack and exception stack) goes
// on the C stack up to this size, and only a larger one on the GC heap
// (py/objfun.c fun_bc_call; MicroPython's 11 words made the running loop
// allocate and free ~35 blocks a pass: DESIGN §6). 32 words (128 B) hold
// every frozen firmware function's frame (the largest: 116 B), so no call of
// the firmware allocates. objfun.c defines it unconditionally; the build
// makes that definition a default (tools/build_image.py,
// Tree.patch_vm_state_on_stack). The C stack is 8 KB; MICROPY_STACK_CHECK
// stays on.
#define VM_MAX_STATE_ON_STACK (sizeof(mp_uint_t) * 32)

// MicroPython's map look-up cache (py/map.c): the last slot of each qstr
// key, one byte per entry, shared by every map. 128 entries by default; the
// loop's hot attribute and global names collide in it, and each miss
// costs a qstr hash and a probe of the hash table with a division per step
// (docs/performance.md, "Where a pass's cycles go").
#define MICROPY_OPT_MAP_LOOKUP_CACHE_SIZE (4096)
