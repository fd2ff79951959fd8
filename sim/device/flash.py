# Simulated flash for the pen's filesystem (docs/persistence.md).
#
# SimFlash is a block device with MicroPython's extended block protocol
# (readblocks/writeblocks with an offset, ioctl 4/5/6) on which vfs.VfsLfs2
# builds the same littlefs the rp2 port uses. It counts every block write
# (program) and erase and can cut the power right after the Nth one: the
# operation completes, then PowerCut is raised and every later access
# raises too, until power_on(). The content survives, as flash does.
#
# Where littlefs is unavailable (CPython), DirFileOps is the stand-in: the
# store's file operations on a host directory, with a cut point after every
# PROG-sized chunk written, every rename and every remove (POSIX write +
# rename semantics; weaker evidence than littlefs, see the doc).
import os

from pen.store import FileOps

try:
    import vfs  # type: ignore[import-not-found]

    HAVE_LFS = hasattr(vfs, "VfsLfs2")
except ImportError:
    vfs = None
    HAVE_LFS = False

ERASED = 0xFF
PROGSIZE = 256  # as the rp2 port mounts its flash (4 KB erase blocks, 256 B pages)
PROG = 64  # program granularity of the DirFileOps model


class PowerCut(BaseException):
    """The supply is gone: nothing after this point runs. A BaseException so
    that no `except Exception` in the firmware can swallow it."""


class SimFlash:
    def __init__(self, block_size=4096, block_count=64, image=None):
        self.block_size = block_size
        self.block_count = block_count
        self.image = image  # optional host file keeping the content across runs
        self.data = bytearray(b"\xff" * (block_size * block_count))
        if image:
            try:
                with open(image, "rb") as f:
                    got = f.read()
                if len(got) == len(self.data):
                    self.data[:] = got
            except OSError:
                pass
        self.ops = 0  # programs + erases since the last reset_count()
        self.programs = 0  # lifetime counters (wear)
        self.erases = 0
        self.cut_at = -1  # cut the power after this many ops (-1 never)
        self.dead = False
        self.tear = False
        self.gen = 0  # mount generation (see _Port)

    # --- fault injection ---
    def arm_cut(self, n, tear=False):
        """Cut the power at the nth program/erase from now: after it has
        completed, or (tear) half-way through it, leaving a half-programmed
        page or a half-erased block as a real brown-out can."""
        self.ops = 0
        self.cut_at = n
        self.tear = tear
        self.dead = False

    def power_on(self):
        self.cut_at = -1
        self.dead = False
        self.gen += 1  # whatever ran before the cut is gone

    def _op(self):
        self.ops += 1
        if self.image:
            self._save()
        if self.ops == self.cut_at:
            self.dead = True
            raise PowerCut()

    def _tearing(self):
        return self.tear and self.ops + 1 == self.cut_at

    def _alive(self):
        if self.dead:
            raise PowerCut()

    def _save(self):
        image = self.image
        if image:  # _op() only saves when there is an image file
            with open(image, "wb") as f:
                f.write(self.data)

    # --- block protocol (extended: byte offset inside the block) ---
    def readblocks(self, block, buf, off=0):
        self._alive()
        a = block * self.block_size + (off or 0)
        n = len(buf)
        buf[:] = self.data[a : a + n]

    def writeblocks(self, block, buf, off=None):
        self._alive()
        a = block * self.block_size + (off or 0)
        n = len(buf)
        # NOR flash programs only 1 -> 0; littlefs erases before programming
        d = self.data
        if self._tearing():
            n //= 2
        for i in range(n):
            d[a + i] &= buf[i]
        self.programs += 1
        self._op()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.block_count
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            self._alive()
            bs = self.block_size
            n = bs // 2 if self._tearing() else bs
            self.data[arg * bs : arg * bs + n] = b"\xff" * n
            self.erases += 1
            self._op()
            return 0
        return 0


class _Port:
    """The chip as one mount sees it. A remount (a reboot) makes every older
    port stale: file objects of a filesystem instance from before the power
    cut, closed later by the garbage collector, must not reach the chip
    (the RAM they lived in is gone on a real pen), so their accesses are
    dropped without allocating (the GC runs them with the heap locked)."""

    def __init__(self, dev):
        dev.gen += 1
        self.dev = dev
        self.gen = dev.gen

    def readblocks(self, block, buf, off=0):
        if self.gen == self.dev.gen:
            self.dev.readblocks(block, buf, off)

    def writeblocks(self, block, buf, off=None):
        if self.gen == self.dev.gen:
            self.dev.writeblocks(block, buf, off)

    def ioctl(self, op, arg):
        if self.gen == self.dev.gen or op == 4 or op == 5:
            return self.dev.ioctl(op, arg)
        return 0


def _vfs():
    """The vfs module: mount() and unmount() are for HAVE_LFS only."""
    if vfs is None:
        raise AttributeError("no vfs module here (CPython): use DirFileOps")
    return vfs


# The vfs stubs type the block device as vfs.AbstractBlockDev, a class that
# exists only in the documentation (MicroPython has no such class to derive
# from): VfsLfs2 takes any object with the block protocol, as _Port is. Hence
# the reportArgumentType ignores below ("stub: no AbstractBlockDev class").


def mount(dev, path="/flash", fresh=False, progsize=PROGSIZE):
    """Mount a SimFlash at path with littlefs v2, formatting it when it is
    blank or unreadable (as the rp2 port does with its internal flash)."""
    v = _vfs()
    try:
        v.umount(path)
    except OSError:
        pass
    if not fresh:
        try:
            v.mount(v.VfsLfs2(_Port(dev), progsize=progsize), path)  # pyright: ignore[reportArgumentType]  # stub: no AbstractBlockDev class
            return path
        except OSError:
            pass
    port = _Port(dev)
    v.VfsLfs2.mkfs(port, progsize=progsize)  # pyright: ignore[reportArgumentType]  # stub: no AbstractBlockDev class
    v.mount(v.VfsLfs2(port, progsize=progsize), path)  # pyright: ignore[reportArgumentType]  # stub: no AbstractBlockDev class
    return path


def unmount(path="/flash"):
    v = _vfs()
    try:
        v.umount(path)
    except OSError:
        pass


class DirFileOps(FileOps):
    """CPython stand-in for littlefs: the firmware's own file operations
    (pen.store.FileOps) on a host directory, with power-cut points: every
    PROG-sized chunk written, the truncation of a rewrite, every rename and
    every remove."""

    def __init__(self, root):
        FileOps.__init__(self, root)
        self.ops = 0
        self.cut_at = -1
        self.dead = False

    def arm_cut(self, n):
        self.ops = 0
        self.cut_at = n
        self.dead = False

    def power_on(self):
        self.cut_at = -1
        self.dead = False

    def _op(self):
        self.ops += 1
        if self.ops == self.cut_at:
            self.dead = True
            raise PowerCut()

    def _alive(self):
        if self.dead:
            raise PowerCut()

    def read(self, name):
        self._alive()
        return FileOps.read(self, name)

    def _put(self, name, data, mode):
        self._alive()
        with open(self._p(name), mode) as f:
            if mode == "wb":
                f.flush()
                self._op()  # the truncation itself is a cut point
            for i in range(0, len(data), PROG):
                f.write(data[i : i + PROG])
                f.flush()
                self._op()

    def rename(self, a, b):
        self._alive()
        FileOps.rename(self, a, b)
        self._op()

    def remove(self, name):
        self._alive()
        if FileOps.size(self, name) < 0:
            return
        FileOps.remove(self, name)
        self._op()

    def size(self, name):
        self._alive()
        return FileOps.size(self, name)


def sim_storage(path=None):
    """The simulated pen's storage root. MicroPython: littlefs on a SimFlash
    mounted at /flash (kept in the image file `path` when given). CPython:
    the directory `path`, or a fresh temporary one removed at exit."""
    if path is None:
        try:
            path = os.getenv("PEN_FLASH")  # type: ignore[attr-defined]
        except AttributeError:
            path = None
    if HAVE_LFS:
        return mount(SimFlash(4096, 32, path), "/flash")  # 128 KB on the sim heap
    if path:
        try:
            os.mkdir(path)
        except OSError:
            pass
        return path
    import atexit  # pyright: ignore[reportMissingImports]  # CPython only (no littlefs there)
    import shutil  # pyright: ignore[reportMissingImports]  # CPython only (no littlefs there)
    import tempfile  # pyright: ignore[reportMissingImports]  # CPython only (no littlefs there)

    d = tempfile.mkdtemp(prefix="penflash-")
    atexit.register(shutil.rmtree, d, True)
    return d


class MemFileOps:
    """The store's file operations on a dict in RAM: for logic tests that do
    not need a filesystem (no cut points)."""

    def __init__(self):
        self.files = {}
        self.writes = 0

    def read(self, name):
        return self.files.get(name)

    def write(self, name, data):
        self.files[name] = bytes(data)
        self.writes += 1

    def append(self, name, data):
        self.files[name] = self.files.get(name, b"") + bytes(data)
        self.writes += 1

    def rename(self, a, b):
        self.files[b] = self.files.pop(a)
        self.writes += 1

    def remove(self, name):
        if name in self.files:
            del self.files[name]
            self.writes += 1

    def size(self, name):
        return len(self.files[name]) if name in self.files else -1
