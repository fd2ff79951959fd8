# Entry point on the pen. Ctrl-C must never stop the firmware: the REPL
# bypasses every limit. kbd_intr must be called from running code because
# the REPL resets it (and MicroPython re-enables Ctrl-C at the start of every
# script), so it is the very first thing done; a Ctrl-C that lands before it
# takes effect is caught and the call repeated. Ctrl-A/B/D/E are only
# commands to the REPL, which never runs in production: the firmware reads
# them as data and ignores them. Any unexpected exception, and the loop ever
# returning, resets the MCU, which boots with the drive off (SR8); nothing
# falls through to the REPL except maintenance (docs/security.md).
while True:
    try:
        import micropython

        micropython.kbd_intr(-1)
        break
    except BaseException:  # noqa: BLE001, S110 - a Ctrl-C before kbd_intr(-1): try again
        pass

try:
    import machine

    # RP2040 WATCHDOG SCRATCH0: survives machine.reset(), cleared at power-on.
    # Only the authenticated `maintenance` command writes the marker.
    SCRATCH0 = 0x4005800C
    MAINT_MAGIC = 0x4D4E5443
    GESTURE_MS = 5000
    TRIAL_WDT_MS = 8000  # the RP2040's longest watchdog timeout is 8388 ms

    def maintenance(via):
        # drive off and braked, no watchdog started, Ctrl-C back: the REPL
        # is open for mpremote; the next reset boots to production
        from boards.pico import PINS
        from machine import Pin

        Pin(PINS["motor_pwm"], Pin.OUT, value=0)
        Pin(PINS["motor_brake"], Pin.OUT, value=1)
        micropython.kbd_intr(3)
        print("maintenance (%s): drive locked off, REPL open; reset to leave" % via)

    def gesture_held():
        # trigger held for 5 s at power-up (the physical gesture)
        import time

        from boards.pico import PINS
        from machine import Pin

        trig = Pin(PINS["trigger"], Pin.IN, Pin.PULL_UP)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < GESTURE_MS:
            if trig.value():  # released (pressed = low)
                return False
            time.sleep_ms(10)
        return True

    def gesture_allowed():
        # only on a pen without a key: on a provisioned pen the REPL would
        # hand the key to whoever holds the pen. Needs the persistent store:
        # without it the gesture is refused (fails closed).
        try:
            from pen import auth, store

            # pen.store has no open_store() yet: this raises and the gesture
            # fails closed (known gap, docs/security.md)
            st = store.open_store()  # pyright: ignore[reportAttributeAccessIssue]
        except Exception:  # noqa: BLE001
            return False
        a = auth.Auth(st, lambda event, **f: None, "", lambda: 0)
        return auth.gesture_allowed(a)

    def guard():
        # the image's own boot guard (frozen), never a file in the
        # filesystem: those are what it guards against (docs/hardware.md);
        # the deployed copy only on a MicroPython without the image
        import sys

        path = sys.path[:]
        sys.path[:] = [".frozen"]
        try:
            import bootguard
        except ImportError:
            sys.path[:] = path
            import bootguard
        finally:
            sys.path[:] = path
        return bootguard

    def started(integrity):
        # the firmware's first loop pass (pen/runtime.py): the deployed
        # files on trial are verified when their integrity check passed;
        # otherwise the last good firmware comes back now
        if integrity == "ok" or integrity == "unverified":
            guard().confirm()
        else:
            machine.WDT(timeout=TRIAL_WDT_MS)  # the moves may take seconds of flash
            guard().roll_back()
            machine.reset()

    # first, before anything imports the firmware (the gesture and the
    # maintenance pins come from boards.pico): newly deployed files are on
    # trial; the guard counts this boot, or puts the last good firmware back
    # after MAX_TRIES boots that never reached a verified start
    # (firmware/bootguard.py)
    try:
        trial = guard().begin()
    except Exception:  # noqa: BLE001 - no guard (an older image): boot as before
        trial = 0
    if machine.mem32[SCRATCH0] == MAINT_MAGIC:
        machine.mem32[SCRATCH0] = 0
        maintenance("command")
    else:
        if trial > 0:
            # files on trial get TRIAL_WDT_MS to reach the verified start:
            # a hang resets too (the firmware's own watchdog replaces it)
            machine.WDT(timeout=TRIAL_WDT_MS)
        if trial <= 0 and gesture_held() and gesture_allowed():
            maintenance("gesture")
        else:
            from boards.pico import PicoBoard
            from pen.runtime import Firmware

            # Firmware(...).run, not pen.runtime.run: a Python frame less
            # under every flash write (the 8 KB C stack, docs/performance.md)
            if Firmware(PicoBoard()).run(True, started if trial > 0 else None) == "maintenance":
                machine.mem32[SCRATCH0] = MAINT_MAGIC
            machine.reset()
except BaseException:  # noqa: BLE001 - nothing may fall through to the REPL
    import machine

    machine.reset()
