# The boot guard (firmware/bootguard.py, docs/hardware.md "Recovering a
# pen"): deployed files that never reach a verified start are rolled back
# by the pen itself after MAX_TRIES boots; a verified start ends the trial.
# Each boot is main.py's begin(), then (if the firmware starts) confirm().
# Plain asserts; run under CPython and MicroPython.
import os

import bootguard as G

OLD = {"pen/core.mpy": "old core", "pen/gone.mpy": "stale", "cfg.bin": "data"}
NEW = {"pen/core.mpy": "new core", "pen/added.mpy": "added", "manifest.txt": "m"}
AFTER = {"cfg.bin": "data"}  # the tree after the switch: the new files and the data
AFTER.update(NEW)


def _root():
    root = "/tmp/pen-guard-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    for rel, text in OLD.items():
        _write(root, rel, text)
    return root


def _write(root, rel, text):
    G.mkparents(root + "/" + rel)
    with open(root + "/" + rel, "w") as f:
        f.write(text)


def _tree(root, rel=""):
    out = {}
    for n in os.listdir(root + "/" + rel if rel else root):
        if n.startswith("."):
            continue
        r = rel + "/" + n if rel else n
        if G.isdir(root + "/" + r):
            out.update(_tree(root, r))
        else:
            with open(root + "/" + r) as f:
                out[r] = f.read()
    return out


def _switch(root, upto=None):
    """What penctl deploy's switch leaves (host/deploy.py switch_script):
    LIST and TRIAL first, then the moves; `upto` cuts it short."""
    moved = ["pen/core.mpy", "pen/gone.mpy"]
    new = ["pen/added.mpy", "manifest.txt"]
    os.mkdir(root + "/" + G.PREV)
    with open(root + "/" + G.LIST, "w") as f:
        for p in moved:
            f.write("moved " + p + "\n")
        for p in new:
            f.write("new " + p + "\n")
    with open(root + "/" + G.TRIAL, "w") as f:
        f.write("0")
    steps = 0
    for p in moved:
        if upto is not None and steps >= upto:
            return
        G.mkparents(root + "/" + G.PREV + "/" + p)
        os.rename(root + "/" + p, root + "/" + G.PREV + "/" + p)
        steps += 1
    for p, text in NEW.items():
        if upto is not None and steps >= upto:
            return
        _write(root, p, text)
        steps += 1


def test_no_trial_boots_what_is_there():
    root = _root()
    try:
        assert G.begin(root) == 0
        assert G.confirm(root) is False
        assert _tree(root) == OLD
    finally:
        G.rmtree(root)


def test_deployed_files_that_never_start_are_rolled_back_by_the_pen():
    root = _root()
    try:
        _switch(root)
        assert _tree(root) == AFTER
        # each boot counts; none reaches the verified start (a crash, a
        # hang reset by the watchdog, an import error)
        tries = [G.begin(root) for _ in range(G.MAX_TRIES)]
        assert tries == list(range(1, G.MAX_TRIES + 1))
        assert _tree(root) == AFTER
        assert G.begin(root) == -1  # rolled back: the next boot runs the old files
        assert _tree(root) == OLD
        assert not G.exists(root + "/" + G.PREV)
        assert G.begin(root) == 0
    finally:
        G.rmtree(root)


def test_a_verified_start_ends_the_trial_and_keeps_the_roll_back():
    root = _root()
    try:
        _switch(root)
        assert G.begin(root) == 1
        assert G.confirm(root) is True
        # later resets are not failed tries
        for _ in range(G.MAX_TRIES + 1):
            assert G.begin(root) == 0
        assert _tree(root) == AFTER
        # penctl deploy's own check can still put the last good firmware back
        assert G.roll_back(root) == (2, 2)
        assert _tree(root) == OLD
    finally:
        G.rmtree(root)


def test_a_switch_cut_short_is_rolled_back():
    for upto in (0, 1, 3):
        root = _root()
        try:
            _switch(root, upto)
            for _ in range(G.MAX_TRIES):
                G.begin(root)
            assert G.begin(root) == -1
            assert _tree(root) == OLD, upto
        finally:
            G.rmtree(root)


def test_a_garbled_count_fails_safe_to_the_roll_back():
    root = _root()
    try:
        _switch(root)
        with open(root + "/" + G.TRIAL, "w") as f:
            f.write("1\x00")  # a write cut by a power loss
        assert G.begin(root) == -1
        assert _tree(root) == OLD
    finally:
        G.rmtree(root)


def test_the_first_deploy_onto_the_image_rolls_back_to_the_frozen_firmware():
    root = "/tmp/pen-guard-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    try:
        # nothing was there: every file is new, the image's frozen code ran
        os.mkdir(root + "/" + G.PREV)
        with open(root + "/" + G.LIST, "w") as f:
            f.write("new pen/core.mpy\n")
        with open(root + "/" + G.TRIAL, "w") as f:
            f.write(str(G.MAX_TRIES))
        _write(root, "pen/core.mpy", "new core")
        assert G.begin(root) == -1
        assert _tree(root) == {}
        # no folder left either: an empty pen/ would shadow the frozen package
        assert [n for n in os.listdir(root) if not n.startswith(".")] == []
        # a trial with nothing recorded to put back just ends
        os.mkdir(root + "/" + G.PREV)
        with open(root + "/" + G.TRIAL, "w") as f:
            f.write(str(G.MAX_TRIES))
        assert G.begin(root) == -1 and G.begin(root) == 0
    finally:
        G.rmtree(root)
