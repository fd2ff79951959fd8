# The needle pen's board: a Raspberry Pi Pico (RP2040) with the pen's own USB
# identity (mpconfigboard.h). Everything else is MicroPython's RPI_PICO board,
# read from the MicroPython tree the image is built from (never copied here).
include(${MICROPY_PORT_DIR}/boards/RPI_PICO/mpconfigboard.cmake)
set(MICROPY_BOARD_PINS "${MICROPY_PORT_DIR}/boards/RPI_PICO/pins.csv")
