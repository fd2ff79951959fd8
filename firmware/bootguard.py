# The boot guard (docs/hardware.md, "Recovering a pen"): a pen whose
# deployed files do not come up goes back to the last good firmware by
# itself. penctl deploy's switch moves each replaced file to .prev/, writes
# .prev/LIST (a line "moved PATH" per file moved there, "new PATH" per file
# the new firmware added) and .prev/TRIAL, the boots of the new files so far
# ("0"). main.py calls begin() first at every production boot: it counts
# the boot, and once MAX_TRIES boots never reached a verified start it puts
# .prev/ back (roll_back) and boots what was there before (the previous
# files, or the image's frozen firmware). The firmware calls confirm() after
# its first loop pass with the integrity check passed: that ends the trial
# (.prev/ stays for penctl deploy's own check and roll back).
# Only `os` here: this module is frozen into the image and runs before the
# firmware on trial (the deployed pen/) is imported. penctl deploy runs the
# same functions on the board through the raw REPL (host/deploy.py).
import os

PREV = ".prev"
LIST = ".prev/LIST"
TRIAL = ".prev/TRIAL"
MAX_TRIES = 2  # boots of the new files that may fail before the roll back


def _at(root, rel):
    return root + "/" + rel if root else rel


def isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def rmtree(p, tick=None):
    if not exists(p):
        return
    if isdir(p):
        for n in os.listdir(p):
            rmtree(p + "/" + n, tick)
        os.rmdir(p)
    else:
        os.remove(p)
    if tick is not None:
        tick()


def mkparents(p):
    d = ""
    i = 0
    for x in p.split("/")[:-1]:
        d = d + "/" + x if i else x
        i += 1
        if d and not exists(d):
            os.mkdir(d)


def _rm_empty_parents(root, rel):
    parts = rel.split("/")[:-1]
    while parts:
        d = _at(root, "/".join(parts))
        try:
            if os.listdir(d):
                return
            os.rmdir(d)
        except OSError:
            return
        parts.pop()


def roll_back(root="", tick=None):
    """The last good firmware back into place: the files the switch moved
    to .prev/ return, the ones it added go; .prev/ is removed. The switch
    writes LIST before it moves anything, so a switch cut short (power
    lost) is rolled back too. Returns
    (moved, new) counts, or None when there is nothing to roll back."""
    moved = []
    new = []
    try:
        with open(_at(root, LIST)) as f:
            for line in f.read().split("\n"):
                if line.startswith("moved "):
                    moved.append(line[6:])
                elif line.startswith("new "):
                    new.append(line[4:])
    except OSError:
        return None
    for p in new:
        if exists(_at(root, p)):
            os.remove(_at(root, p))
        _rm_empty_parents(root, p)  # an empty pen/ would still shadow the frozen one
    for p in moved:
        if not exists(_at(root, PREV + "/" + p)):
            continue  # a switch cut short had not moved it yet: still in place
        mkparents(_at(root, p))
        if exists(_at(root, p)):
            os.remove(_at(root, p))
        os.rename(_at(root, PREV + "/" + p), _at(root, p))
        if tick is not None:
            tick()
    rmtree(_at(root, PREV), tick)
    return len(moved), len(new)


def begin(root=""):
    """At boot, before the firmware is imported. 0: no trial; n >= 1: the
    n-th boot of newly deployed files; -1: they failed MAX_TRIES boots and
    were rolled back."""
    try:
        with open(_at(root, TRIAL)) as f:
            text = f.read()
    except OSError:
        return 0
    try:
        n = int(text)
    except ValueError:
        n = MAX_TRIES  # a count cut by a power loss: fail safe
    if n >= MAX_TRIES:
        if roll_back(root) is None:
            os.remove(_at(root, TRIAL))  # nothing to put back: end the trial
        return -1
    with open(_at(root, TRIAL), "w") as f:
        f.write(str(n + 1))
    return n + 1


def confirm(root=""):
    """The verified start (the firmware's first loop pass, integrity ok):
    the trial ends. True when one was running."""
    if not exists(_at(root, TRIAL)):
        return False
    os.remove(_at(root, TRIAL))
    return True
