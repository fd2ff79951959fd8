# Entry point on the pen. Ctrl-C must never stop the firmware: the REPL
# bypasses every limit. kbd_intr must be called from running code because
# the REPL resets it. Any unexpected exception resets the MCU, which boots
# with the drive off (SR8).
import machine
import micropython

micropython.kbd_intr(-1)

try:
    from boards.pico import PicoBoard
    from pen.runtime import run

    run(PicoBoard())
except BaseException:  # noqa: BLE001 - nothing may fall through to the REPL
    machine.reset()
