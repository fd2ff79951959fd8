// A boot ROM for the virtual Pico, written here (the RP2040's own boot ROM is
// not shipped with rp2040js). It has what a pico-sdk image looks up in the
// ROM: the magic and version at 0x10, the function and data tables at
// 0x14/0x16, the table lookup at 0x18, and each function as a trap
// (BKPT; BX LR) done in JavaScript on the emulator's memory and registers:
// memory and bit helpers, the soft-float (SF) and soft-double (SD) tables,
// and the flash functions. Flash erase/program act on the emulator's flash
// array (rp2040js's SSI ignores those commands), with the CPU stalled for
// typical times, so littlefs works. Each trap charges a cycle count close to
// the real ROM routine's (RP2040 datasheet 2.8.3), so emulated time stays
// honest. docs/simulator.md lists the limits.
'use strict';

const ROM_VERSION = 3; // B2
const STUBS = 0x200;
const FUNC_TABLE = 0x1000;
const DATA_TABLE = 0x1100;
const SF_TABLE = 0x1200;
const SD_TABLE = 0x1300;
const LOOKUP = 0x100;

const FLASH_ERASE_NS_PER_4K = 45e6; // sector erase, typical
const FLASH_PROGRAM_NS_PER_PAGE = 0.7e6; // 256 B page program, typical

function code(a, b) {
  return a.charCodeAt(0) | (b.charCodeAt(0) << 8);
}

const scratch = new DataView(new ArrayBuffer(8));
function f32(bits) {
  scratch.setUint32(0, bits >>> 0, true);
  return scratch.getFloat32(0, true);
}
function bitsF32(v) {
  scratch.setFloat32(0, v, true);
  return scratch.getUint32(0, true);
}
function f64(lo, hi) {
  scratch.setUint32(0, lo >>> 0, true);
  scratch.setUint32(4, hi >>> 0, true);
  return scratch.getFloat64(0, true);
}
function bitsF64(v) {
  scratch.setFloat64(0, v, true);
  return [scratch.getUint32(0, true), scratch.getUint32(4, true)];
}
function i64(lo, hi) {
  return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
}
function u64(lo, hi) {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
function split64(b) {
  const u = BigInt.asUintN(64, b);
  return [Number(u & 0xffffffffn), Number(u >> 32n)];
}
function clampInt(v, lo, hi) {
  if (Number.isNaN(v)) return 0;
  return v < lo ? lo : v > hi ? hi : v;
}
// float -> integer conversions round towards -infinity and saturate (ROM)
function toInt(v, n) {
  return clampInt(Math.floor(v * 2 ** n), -0x80000000, 0x7fffffff) | 0;
}
function toUint(v, n) {
  return clampInt(Math.floor(v * 2 ** n), 0, 0xffffffff) >>> 0;
}
function toInt64(v, n) {
  const x = Math.floor(v * 2 ** n);
  if (Number.isNaN(x)) return 0n;
  if (x >= 2 ** 63) return (1n << 63n) - 1n;
  if (x < -(2 ** 63)) return -(1n << 63n);
  return BigInt(x);
}
function toUint64(v, n) {
  const x = Math.floor(v * 2 ** n);
  if (Number.isNaN(x) || x <= 0) return 0n;
  if (x >= 2 ** 64) return (1n << 64n) - 1n;
  return BigInt(x);
}

function install(mcu) {
  const bytes = new Uint8Array(mcu.bootrom.length * 4);
  const view = new DataView(bytes.buffer);
  const traps = { cycles: 0, stall: () => {}, reset: () => {} };
  const handlers = new Map();
  const r = mcu.core.registers;
  let next = STUBS;
  function stub(fn, cycles) {
    const at = next;
    next += 4;
    view.setUint16(at, 0xbe00, true); // BKPT #0
    view.setUint16(at + 2, 0x4770, true); // BX LR
    handlers.set(at, () => {
      traps.cycles += cycles;
      fn();
    });
    return at | 1;
  }
  const ret = (v) => {
    r[0] = v >>> 0;
  };
  const ret64 = (pair) => {
    r[0] = pair[0];
    r[1] = pair[1];
  };
  const mem = {
    sramIndex(addr, n) {
      const o = (addr >>> 0) - 0x20000000;
      return o >= 0 && o + n <= mcu.sram.length ? o : -1;
    },
    set(addr, c, n) {
      const o = mem.sramIndex(addr, n);
      if (o >= 0) mcu.sram.fill(c & 0xff, o, o + n);
      else for (let k = 0; k < n; k++) mcu.writeUint8(addr + k, c);
    },
    copy(dst, src, n) {
      const d = mem.sramIndex(dst, n);
      const s = mem.sramIndex(src, n);
      if (d >= 0 && s >= 0) mcu.sram.copyWithin(d, s, s + n);
      else {
        const tmp = new Uint8Array(n);
        for (let k = 0; k < n; k++) tmp[k] = mcu.readUint8(src + k);
        for (let k = 0; k < n; k++) mcu.writeUint8(dst + k, tmp[k]);
      }
    },
  };
  // --- function table ---
  const funcs = [
    ['P3', stub(() => ret(popcount(r[0])), 20)],
    ['R3', stub(() => ret(reverse(r[0])), 20)],
    ['L3', stub(() => ret(Math.clz32(r[0])), 12)],
    ['T3', stub(() => ret(r[0] === 0 ? 32 : 31 - Math.clz32(r[0] & -r[0])), 12)],
    ['MS', stub(() => { mem.set(r[0], r[1], r[2]); }, 0)],
    ['S4', stub(() => { mem.set(r[0], r[1], r[2]); }, 0)],
    ['MC', stub(() => { mem.copy(r[0], r[1], r[2]); }, 0)],
    ['C4', stub(() => { mem.copy(r[0], r[1], r[2]); }, 0)],
    ['IF', stub(() => {}, 200)],
    ['EX', stub(() => {}, 200)],
    ['FC', stub(() => {}, 100)],
    ['CX', stub(() => {}, 200)],
    ['RE', stub(() => flashErase(r[0], r[1]), 0)],
    ['RP', stub(() => flashProgram(r[0], r[1], r[2]), 0)],
    ['UB', stub(() => traps.reset(), 0)],
  ];
  // memset/memcpy: word moves, about a cycle per 4 bytes plus the call
  for (const name of ['MS', 'S4', 'MC', 'C4']) {
    const at = (funcs.find((f) => f[0] === name)[1] & ~1) >>> 0;
    const h = handlers.get(at);
    handlers.set(at, () => {
      traps.cycles += 20 + ((r[2] >>> 0) >> 2);
      h();
    });
  }
  function flashErase(addr, count) {
    const o = addr >>> 0;
    const n = count >>> 0;
    mcu.flash.fill(0xff, o, o + n);
    traps.stall((n / 4096) * FLASH_ERASE_NS_PER_4K);
  }
  function flashProgram(addr, data, count) {
    const o = addr >>> 0;
    const n = count >>> 0;
    for (let k = 0; k < n; k++) mcu.flash[o + k] &= mcu.readUint8(data + k); // NOR: bits only clear
    traps.stall(Math.ceil(n / 256) * FLASH_PROGRAM_NS_PER_PAGE);
  }
  // --- soft float (single), arguments and results as IEEE bits ---
  const F = (fn, cycles) => stub(fn, cycles);
  const fa = () => f32(r[0]);
  const fb = () => f32(r[1]);
  const rf = (v) => ret(bitsF32(Math.fround(v)));
  const sf = new Array(32).fill(0);
  sf[0x00 / 4] = F(() => rf(fa() + fb()), 50);
  sf[0x04 / 4] = F(() => rf(fa() - fb()), 50);
  sf[0x08 / 4] = F(() => rf(fa() * fb()), 45);
  sf[0x0c / 4] = F(() => rf(fa() / fb()), 70);
  sf[0x10 / 4] = F(() => ret(cmp(fa(), fb())), 20);
  sf[0x14 / 4] = F(() => flags(fa(), fb()), 20);
  sf[0x18 / 4] = F(() => rf(Math.sqrt(fa())), 80);
  sf[0x1c / 4] = F(() => ret(toInt(fa(), 0)), 25);
  sf[0x20 / 4] = F(() => ret(toInt(fa(), r[1] | 0)), 25);
  sf[0x24 / 4] = F(() => ret(toUint(fa(), 0)), 25);
  sf[0x28 / 4] = F(() => ret(toUint(fa(), r[1] | 0)), 25);
  sf[0x2c / 4] = F(() => rf(r[0] | 0), 30);
  sf[0x30 / 4] = F(() => rf((r[0] | 0) / 2 ** (r[1] | 0)), 30);
  sf[0x34 / 4] = F(() => rf(r[0] >>> 0), 30);
  sf[0x38 / 4] = F(() => rf((r[0] >>> 0) / 2 ** (r[1] | 0)), 30);
  sf[0x3c / 4] = F(() => rf(Math.cos(fa())), 360);
  sf[0x40 / 4] = F(() => rf(Math.sin(fa())), 360);
  sf[0x44 / 4] = F(() => rf(Math.tan(fa())), 420);
  sf[0x48 / 4] = F(() => {
    const a = fa();
    r[1] = bitsF32(Math.fround(Math.cos(a)));
    rf(Math.sin(a));
  }, 450);
  sf[0x4c / 4] = F(() => rf(Math.exp(fa())), 300);
  sf[0x50 / 4] = F(() => rf(Math.log(fa())), 400);
  sf[0x54 / 4] = F(() => ret(cmp(fa(), fb())), 20);
  sf[0x58 / 4] = F(() => rf(Math.atan2(fa(), fb())), 450);
  sf[0x5c / 4] = F(() => rf(Number(i64(r[0], r[1]))), 60);
  sf[0x60 / 4] = F(() => rf(Number(i64(r[0], r[1])) / 2 ** (r[2] | 0)), 60);
  sf[0x64 / 4] = F(() => rf(Number(u64(r[0], r[1]))), 60);
  sf[0x68 / 4] = F(() => rf(Number(u64(r[0], r[1])) / 2 ** (r[2] | 0)), 60);
  sf[0x6c / 4] = F(() => ret64(split64(toInt64(fa(), 0))), 60);
  sf[0x70 / 4] = F(() => ret64(split64(toInt64(fa(), r[1] | 0))), 60);
  sf[0x74 / 4] = F(() => ret64(split64(toUint64(fa(), 0))), 60);
  sf[0x78 / 4] = F(() => ret64(split64(toUint64(fa(), r[1] | 0))), 60);
  sf[0x7c / 4] = F(() => ret64(bitsF64(fa())), 20);
  // --- soft double: the same slots, doubles in r0:r1 and r2:r3 ---
  const da = () => f64(r[0], r[1]);
  const db = () => f64(r[2], r[3]);
  const rd = (v) => ret64(bitsF64(v));
  const sd = new Array(32).fill(0);
  sd[0x00 / 4] = F(() => rd(da() + db()), 80);
  sd[0x04 / 4] = F(() => rd(da() - db()), 80);
  sd[0x08 / 4] = F(() => rd(da() * db()), 110);
  sd[0x0c / 4] = F(() => rd(da() / db()), 200);
  sd[0x10 / 4] = F(() => ret(cmp(da(), db())), 30);
  sd[0x14 / 4] = F(() => flags(da(), db()), 30);
  sd[0x18 / 4] = F(() => rd(Math.sqrt(da())), 200);
  sd[0x1c / 4] = F(() => ret(toInt(da(), 0)), 30);
  sd[0x20 / 4] = F(() => ret(toInt(da(), r[2] | 0)), 30);
  sd[0x24 / 4] = F(() => ret(toUint(da(), 0)), 30);
  sd[0x28 / 4] = F(() => ret(toUint(da(), r[2] | 0)), 30);
  sd[0x2c / 4] = F(() => rd(r[0] | 0), 30);
  sd[0x30 / 4] = F(() => rd((r[0] | 0) / 2 ** (r[1] | 0)), 30);
  sd[0x34 / 4] = F(() => rd(r[0] >>> 0), 30);
  sd[0x38 / 4] = F(() => rd((r[0] >>> 0) / 2 ** (r[1] | 0)), 30);
  sd[0x3c / 4] = F(() => rd(Math.cos(da())), 1000);
  sd[0x40 / 4] = F(() => rd(Math.sin(da())), 1000);
  sd[0x44 / 4] = F(() => rd(Math.tan(da())), 1200);
  sd[0x48 / 4] = F(() => {
    const a = da();
    const c = bitsF64(Math.cos(a));
    rd(Math.sin(a));
    r[2] = c[0];
    r[3] = c[1];
  }, 1300);
  sd[0x4c / 4] = F(() => rd(Math.exp(da())), 800);
  sd[0x50 / 4] = F(() => rd(Math.log(da())), 1000);
  sd[0x54 / 4] = F(() => ret(cmp(da(), db())), 30);
  sd[0x58 / 4] = F(() => rd(Math.atan2(da(), db())), 1200);
  sd[0x5c / 4] = F(() => rd(Number(i64(r[0], r[1]))), 60);
  sd[0x60 / 4] = F(() => rd(Number(i64(r[0], r[1])) / 2 ** (r[2] | 0)), 60);
  sd[0x64 / 4] = F(() => rd(Number(u64(r[0], r[1]))), 60);
  sd[0x68 / 4] = F(() => rd(Number(u64(r[0], r[1])) / 2 ** (r[2] | 0)), 60);
  sd[0x6c / 4] = F(() => ret64(split64(toInt64(da(), 0))), 60);
  sd[0x70 / 4] = F(() => ret64(split64(toInt64(da(), r[2] | 0))), 60);
  sd[0x74 / 4] = F(() => ret64(split64(toUint64(da(), 0))), 60);
  sd[0x78 / 4] = F(() => ret64(split64(toUint64(da(), r[2] | 0))), 60);
  sd[0x7c / 4] = F(() => rf(da()), 30); // double2float
  function cmp(a, b) {
    if (Number.isNaN(a) || Number.isNaN(b)) return 0;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function flags(a, b) {
    // as CMP a, b would set N Z C V
    const core = mcu.core;
    const un = Number.isNaN(a) || Number.isNaN(b);
    core.N = !un && a < b;
    core.Z = !un && a === b;
    core.C = un || a >= b;
    core.V = un;
  }
  // --- layout ---
  view.setUint32(0, 0x20042000, true);
  const idle = stub(() => traps.reset(), 0);
  view.setUint32(4, idle, true);
  bytes[0x10] = 0x4d; // 'M'
  bytes[0x11] = 0x75; // 'u'
  bytes[0x12] = 0x01;
  bytes[0x13] = ROM_VERSION;
  view.setUint16(0x14, FUNC_TABLE, true);
  view.setUint16(0x16, DATA_TABLE, true);
  view.setUint16(0x18, LOOKUP | 1, true);
  // rom_table_lookup(table, code): walks (code, value) half-word pairs
  view.setUint16(LOOKUP, 0xbe00, true);
  view.setUint16(LOOKUP + 2, 0x4770, true);
  handlers.set(LOOKUP, () => {
    traps.cycles += 30;
    let p = r[0] >>> 0;
    const want = r[1] & 0xffff;
    for (;;) {
      const c = view.getUint16(p, true);
      if (c === 0) return ret(0);
      if (c === want) return ret(view.getUint16(p + 2, true));
      p += 4;
    }
  });
  let p = FUNC_TABLE;
  for (const [name, at] of funcs) {
    view.setUint16(p, code(name[0], name[1]), true);
    view.setUint16(p + 2, at, true);
    p += 4;
  }
  p = DATA_TABLE;
  for (const [name, at] of [['SF', SF_TABLE], ['SD', SD_TABLE]]) {
    view.setUint16(p, code(name[0], name[1]), true);
    view.setUint16(p + 2, at, true);
    p += 4;
  }
  for (const [base, table] of [[SF_TABLE, sf], [SD_TABLE, sd]]) {
    bytes[base - 2] = table.length; // table size in words, checked by the SDK
    table.forEach((at, k) => view.setUint32(base + 4 * k, at, true));
  }
  if (next > FUNC_TABLE) throw new Error('ROM stubs overflow');
  mcu.loadBootrom(new Uint32Array(bytes.buffer));
  mcu.onBreak = () => {
    const at = (mcu.core.PC - 2) >>> 0;
    const h = handlers.get(at);
    if (h === undefined) {
      throw new Error('BKPT outside the ROM traps at 0x' + at.toString(16));
    }
    h();
  };
  return traps;
}

function popcount(v) {
  v = v >>> 0;
  let n = 0;
  while (v) {
    v &= v - 1;
    n++;
  }
  return n;
}

function reverse(v) {
  let out = 0;
  for (let k = 0; k < 32; k++) {
    out = (out << 1) | ((v >>> k) & 1);
  }
  return out >>> 0;
}

module.exports = { install };
