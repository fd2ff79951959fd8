// The virtual Pico's chip side: rp2040js runs the pen's UF2 and moves pins,
// bus bytes and time between the chip and the world, which lives in Python
// (sim/rp2040/device.py owns sim/device/world.py). No physics here.
//
//   node chip.js UF2 QUANTUM_US [FLASH_ID]
//
// Lock-step protocol on stdin/stdout, one line each way per quantum
// (docs/simulator.md, "The virtual Pico"):
//   node -> python  Q t_us duty16 brake stepen led buzzer steps i2cw usb events duty_t_us
//   python -> node  R until_us trig cart home adc0 adc1 imu stall hang edges regs usb heap usbblock dtr
// Fields that are empty are '-'. Hex strings for bytes. steps: "dir:count,..."
// runs in order; i2cw: "reg=hexbytes,..."; edges: absolute µs of hall edges
// in the coming quantum; regs: the MPU-6050 register file (128 bytes, hex)
// when it changed. heap: 'heap' asks for the free-heap probe; usbblock: 1
// while the host holds the port open and reads nothing (serial_blocked):
// the CDC IN endpoint's transfers are not completed, so TinyUSB's TX FIFO
// fills on the chip as it would with a real host; dtr: 1 while a host
// program holds the pty open (the USB host's CDC SET_CONTROL_LINE_STATE
// follows it).
'use strict';
const fs = require('fs');
const { RP2040, USBCDC } = require('rp2040js');
const path = require('path');
const { SimulationClock } = require(path.join(path.dirname(require.resolve('rp2040js')), 'clock', 'simulation-clock.js'));
const rom = require('./rom.js');

const PIN = {
  motor_pwm: 16, motor_brake: 17, hall: 18, step: 10, dir: 11, en: 12,
  home: 13, trigger: 14, cartridge: 15, sda: 4, scl: 5, buzzer: 22, led: 25,
};
const NS_PER_CYCLE = 8; // 125 MHz
const HALL_PULSE_NS = 100000; // the hall output stays low 100 µs per pass
// I2C at 400 kHz: 9 bit times (8 data + ACK) per byte, 2.5 µs per bit
const I2C_BIT_NS = 2500;
const I2C_BYTE_NS = 9 * I2C_BIT_NS;
const MPU_ADDR = 0x68;

const uf2Path = process.argv[2];
const quantumNs = Number(process.argv[3] || '250') * 1000;
// the flash chip's 64-bit unique id (what the RUID command 0x4B answers;
// machine.unique_id(), the USB serial number and `info`'s serial= come from
// it): one per pen, given by the world (sim/rp2040/device.py)
const flashId = Buffer.from(process.argv[4] || '0000000000000000', 'hex');
const FLASH_RUID_CMD = 0x4b;
const FLASH_RUID_DUMMY = 4;

function loadUF2(flash, data) {
  for (let off = 0; off + 512 <= data.length; off += 512) {
    const v = new DataView(data.buffer, data.byteOffset + off, 512);
    if (v.getUint32(0, true) !== 0x0a324655 || v.getUint32(4, true) !== 0x9e5d5157) continue;
    const addr = v.getUint32(12, true);
    const size = v.getUint32(16, true);
    flash.set(data.subarray(off + 32, off + 32 + size), addr - 0x10000000);
  }
}

const image = fs.readFileSync(uf2Path);

// --- state that survives a chip reset (the world's side of the pins) ---
const inputs = { trig: 1, cart: 0, home: 1 }; // pin levels (pull-ups: pressed/closed = low)
let imuPresent = true;
let busStall = false;
let hang = false;
const regs = new Uint8Array(128);
let regPtr = 0;
let i2cWrite = false;
let i2cFirst = false;
let i2cPendingWrites = []; // [reg, [bytes]] for the world's model
let i2cStalled = null; // the completion held while the bus is stalled
let usbToHost = [];
let hostToUsb = [];
let usbBlocked = false; // serial_blocked: CDC IN transfers held
let hostDtr = 1; // the host's DTR as the world sees the pty (R line)
let stepRuns = []; // [dir, count]
let events = [];
let dutyChangedNs = 0;
let lastDuty = 0;
let hallEdges = []; // absolute ns
let flashImage = null; // the flash array carried across resets
let scratch = null;

let chip = null; // { mcu, clock, cdc, ... } replaced on every reset
let hallIrqArmed = false; // the hall pin's IRQ enabled (report()); false again at every boot

function boot(startNanos) {
  hallIrqArmed = false;
  const clock = new SimulationClock();
  clock.nanosCounter = startNanos; // the world's time goes on through a reset
  const mcu = new RP2040(clock);
  mcu.logger = logger;
  watchIrqStack(mcu.core);
  // the TIMER counts from PENSIM_RP2040_TIMER_START_US at power-on (a test
  // knob) and from 0 after a reset, as on silicon: the watchdog resets all
  // but the oscillators (pico-sdk's watchdog_enable sets PSM WDSEL so) and
  // the SDK's start-up takes the TIMER block through RESETS, which rp2040js
  // only records. Alarms are scheduled as deltas from this count, so they
  // keep working; the harness's own times stay the clock's
  const timerBaseNs = startNanos === 0 ? -TIMER_START_NS : startNanos;
  mcu.peripherals[0x40054].clock = { get nanos() { return clock.nanos - timerBaseNs; } };
  const traps = rom.install(mcu);
  if (flashImage === null) {
    loadUF2(mcu.flash, image);
  } else {
    mcu.flash.set(flashImage);
  }
  flashImage = mcu.flash; // the same array from now on (copied into the next chip)
  const wd = mcu.peripherals[0x40058];
  if (scratch !== null) {
    wd.scratchData.set(scratch);
    wd.reason = 1; // a watchdog (or machine.reset) boot
  }
  i2cStalled = null; // a held completion belonged to the chip before the reset
  const c = { mcu, clock, traps, resetPending: false, stallNs: 0, cdc: null, usbPending: null, connected: false, dtr: 0 };
  flashCommands(mcu);
  traps.stall = (ns) => {
    c.stallNs += ns;
    if (verbose) process.stderr.write(`flash busy ${ns / 1000} us at ${clock.nanos / 1000} us\n`);
    if (probeFd !== null) fs.writeSync(probeFd, `flash ${ns / 1000} ${lastDuty}\n`);
  };
  traps.reset = () => { c.resetPending = true; };
  wd.onWatchdogTrigger = () => {
    // expired or forced (machine.reset): the harness resets the chip; the
    // world carries on. Without this handler rp2040js spins on the alarm.
    c.resetPending = true;
    if (probeFd !== null) fs.writeSync(probeFd, `reset ${clock.nanos / 1000} ${wd.reason} ${wd.scratchData[1]}\n`);
    wd.alarm.enable = false;
    wd.timer.enable = false;
  };
  // --- USB CDC, the OUT endpoint answered only when the host has data ---
  const cdc = new USBCDC(mcu.usbCtrl);
  c.cdc = cdc;
  // enumeration ends with SET_CONTROL_LINE_STATE DTR|RTS (rp2040js's host)
  cdc.onDeviceConnected = () => { c.connected = true; c.dtr = 1; };
  cdc.onSerialData = (buf) => { for (const b of buf) usbToHost.push(b); };
  // serial_blocked: the host reads nothing, so an IN transfer on the CDC
  // data endpoint never completes; they are completed when it reads again
  const ctrl = mcu.usbCtrl;
  const bufferReady = ctrl.indicateBufferReady.bind(ctrl);
  c.heldIn = [];
  ctrl.indicateBufferReady = (endpoint, out) => {
    if (!out && usbBlocked && endpoint === cdc.inEndpoint) {
      c.heldIn.push(endpoint);
      return;
    }
    bufferReady(endpoint, out);
  };
  c.releaseIn = () => {
    const held = c.heldIn;
    c.heldIn = [];
    for (const endpoint of held) bufferReady(endpoint, false);
  };
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return;
    c.usbPending = size;
    feedUsb(c);
  };
  // --- GPIO: inputs from the world, outputs watched ---
  mcu.gpio[PIN.hall].setInputValue(true);
  applyInputs(mcu);
  mcu.gpio[PIN.step].addListener((state, old) => {
    if (state === 1 && old !== 1) {
      if (mcu.gpio[PIN.en].outputValue) return; // driver disabled (active low)
      const dir = mcu.gpio[PIN.dir].outputValue ? 1 : 0;
      const last = stepRuns[stepRuns.length - 1];
      if (last && last[0] === dir) last[1] += 1;
      else stepRuns.push([dir, 1]);
    }
  });
  // --- ADC ---
  mcu.adc.onADCRead = (ch) => {
    mcu.adc.currentChannel = ch;
    mcu.adc.sampleAlarm.schedule(mcu.adc.sampleTime * 1000);
  };
  mcu.adc.channelValues = adcValues;
  // --- I2C0 with the MPU-6050's register file, bus time at 400 kHz ---
  const i2c = mcu.i2c[0];
  // a bus event belongs to the transfer that started it: once the block is
  // reset (below) a completion still on the wire or held by a stalled bus
  // is dropped, as silicon's reset block forgets the transfer
  c.i2cGen = 0;
  const later = (ns, fn) => {
    const gen = c.i2cGen;
    const done = () => { if (c.i2cGen === gen) fn(); };
    if (busStall) { i2cStalled = done; return; }
    clock.createAlarm(done).schedule(ns);
  };
  i2cResets(mcu, c, i2c);
  i2c.onStart = () => later(I2C_BIT_NS, () => i2c.completeStart());
  i2c.onConnect = (addr, mode) => later(I2C_BYTE_NS, () => {
    const ack = addr === MPU_ADDR && imuPresent;
    i2cWrite = mode === 0;
    i2cFirst = true;
    i2c.completeConnect(ack);
  });
  i2c.onWriteByte = (value) => later(I2C_BYTE_NS, () => {
    if (i2cFirst) {
      regPtr = value & 0x7f;
      i2cFirst = false;
    } else {
      regs[regPtr] = value;
      const last = i2cPendingWrites[i2cPendingWrites.length - 1];
      if (last && last[0] + last[1].length === regPtr) last[1].push(value);
      else i2cPendingWrites.push([regPtr, [value]]);
      regPtr = (regPtr + 1) & 0x7f;
    }
    i2c.completeWrite(imuPresent);
  });
  i2c.onReadByte = () => later(I2C_BYTE_NS, () => {
    const v = regs[regPtr];
    regPtr = (regPtr + 1) & 0x7f;
    i2c.completeRead(v);
  });
  i2c.onStop = () => later(I2C_BIT_NS, () => i2c.completeStop());
  // --- start: boot2 at the start of flash, which vectors into the image ---
  mcu.core.PC = 0x10000000;
  mcu.core.registers[14] = 0; // LR 0: boot2 jumps to the vector table
  chip = c;
  lastDuty = 0;
  dutyChangedNs = clock.nanos;
  watchDuty(c);
  heapAtPassEnd(wd);
  if (probeFd !== null) probe(c, wd);
  if (profFile) profileMarks(wd);
}

// The free-heap probe ('heap') is read at the end of the next loop pass
// (the firmware's stage mark 7, pen/runtime.py MARK), so no allocation the
// C runtime holds only inside a call is caught in flight: what it counts
// is the heap between passes, the same point every time.
let heapWanted = false;
function heapAtPassEnd(wd) {
  const write = wd.writeUint32.bind(wd);
  wd.writeUint32 = (offset, value) => {
    write(offset, value);
    if (offset === 0x10 && value === 7 && heapWanted) {
      heapWanted = false;
      events.push('heap:' + heapFree());
    }
  };
}

const adcValues = [0, 0, 0, 0, 0];

// RESETS: rp2040js only stores the reset bits, so a block held in reset
// keeps its state. pico-sdk's i2c_init() (every machine.I2C(...), the
// firmware's bus recovery) resets the I2C block first: on silicon that
// ends the transfer in progress, empties the FIFOs and puts every register
// back to its reset value. Modelled for I2C0: without it a transfer that
// timed out on a held bus stayed "busy" in the emulated block after the
// re-init, and its late completion landed in the new I2C's transfer.
const RESETS_I2C0 = 1 << 3;
function i2cResets(mcu, c, i2c) {
  const resets = mcu.peripherals[0x4000c];
  const write = resets.writeUint32.bind(resets);
  resets.writeUint32 = (offset, value) => {
    const was = resets.reset;
    write(offset, value);
    if (offset === 0 && (resets.reset & RESETS_I2C0) && !(was & RESETS_I2C0)) resetI2C(mcu, c, i2c);
  };
}

function resetI2C(mcu, c, i2c) {
  c.i2cGen += 1;
  i2cStalled = null;
  const fresh = new i2c.constructor(mcu, i2c.name, i2c.irq);
  for (const k of ['state', 'busy', 'stop', 'pendingRestart', 'firstByte', 'enable', 'rxThreshold',
    'txThreshold', 'control', 'ssClockHighPeriod', 'ssClockLowPeriod', 'fsClockHighPeriod',
    'fsClockLowPeriod', 'targetAddress', 'slaveAddress', 'abortSource', 'intRaw', 'intEnable', 'spikelen']) {
    i2c[k] = fresh[k];
  }
  i2c.txFIFO.reset();
  i2c.rxFIFO.reset();
  i2c.checkInterrupts();
  if (verbose) process.stderr.write(`I2C0 reset at ${c.clock.nanos / 1000} us\n`);
}

// stdout carries the lock-step protocol: the emulator's log goes to stderr
// (errors only; PENSIM_RP2040_LOG=1 for all)
const verbose = process.env.PENSIM_RP2040_LOG === '1';
// The microsecond TIMER's count at power-on (default 0, as on silicon).
// MicroPython's ticks_us and ticks_ms wrap at 2**30 of their unit and the
// SDK's 32-bit alarms at 2**32 us; a start of 1000 * 2**30 us - X makes all
// three wrap X us after power-on, so that a short run crosses the points a
// long session (17.9 min, 71.6 min, 12.4 days) would (docs/simulator.md).
const TIMER_START_NS = Number(process.env.PENSIM_RP2040_TIMER_START_US || 0) * 1000;
const say = (level) => (component, message) => {
  if (level === 'error' || (verbose && level === 'warn') || process.env.PENSIM_RP2040_LOG === '2') process.stderr.write(`[${level}] ${component}: ${message}\n`);
};
const logger = { debug: say('debug'), info: say('info'), warn: say('warn'), error: say('error') };

// Loop timing probe for bench/chip.py ($PENSIM_RP2040_PROBE=FILE), read
// from the pins and registers the firmware touches anyway, so the image is
// unchanged: a full loop pass is the time between two watchdog feeds (one
// per pass; `reset T REASON MARK`: a reset, the watchdog's reason (1 timer,
// 2 forced) and the stage mark it cut); the control tick is bounded by the
// battery ADC read (the last input read) and the motor's PWM write (the
// first output) of the same pass.
const probeFd = process.env.PENSIM_RP2040_PROBE ? fs.openSync(process.env.PENSIM_RP2040_PROBE, 'a') : null;
function probe(c, wd) {
  let lastFeed = -1;
  let adcAt = -1;
  const wdWrite = wd.writeUint32.bind(wd);
  wd.writeUint32 = (offset, value) => {
    wdWrite(offset, value);
    if (offset === 0x04) {
      const now = c.clock.nanos;
      if (lastFeed >= 0) fs.writeSync(probeFd, `pass ${(now - lastFeed) / 1000}\n`);
      lastFeed = now;
    } else if (offset === 0x10) {
      // SCRATCH1: the stage marks of a loop pass (firmware/pen/runtime.py MARK)
      fs.writeSync(probeFd, `mark ${value} ${c.clock.nanos / 1000}\n`);
    }
  };
  const adcRead = c.mcu.adc.onADCRead;
  c.mcu.adc.onADCRead = (ch) => {
    if (ch === 1) adcAt = c.clock.nanos;
    adcRead(ch);
  };
  const ch = c.mcu.pwm.channels[0];
  const ccWrite = ch.writeRegister;
  ch.writeRegister = (offset, value) => {
    ccWrite(offset, value);
    if (offset === 0x0c && adcAt >= 0) {
      fs.writeSync(probeFd, `tick ${(c.clock.nanos - adcAt) / 1000}\n`);
      adcAt = -1;
    }
  };
}

// Cycle profile ($PENSIM_RP2040_PROFILE=FILE; `python -m bench.profile`
// runs it and names the functions): the cycles of every instruction
// executed while the last stage mark of the loop (SCRATCH1,
// firmware/pen/runtime.py MARK) is one of $PENSIM_RP2040_PROFILE_MARKS
// (default 1-6: the busy part of a pass), summed per instruction address,
// written to FILE as 'ADDRESS CYCLES' lines (hex, decimal) when the
// emulator exits. Interrupts count where they land, as on silicon.
const profFile = process.env.PENSIM_RP2040_PROFILE || '';
const profMarks = new Set((process.env.PENSIM_RP2040_PROFILE_MARKS || '1,2,3,4,5,6').split(',').map(Number));
let profOn = false;
const profHist = new Map();
function profileMarks(wd) {
  const write = wd.writeUint32.bind(wd);
  wd.writeUint32 = (offset, value) => {
    write(offset, value);
    if (offset === 0x10) profOn = profMarks.has(value);
  };
}
process.on('exit', () => {
  if (!profFile) return;
  const out = [];
  for (const [pc, n] of profHist) out.push(`${pc.toString(16)} ${n}`);
  fs.writeFileSync(profFile, out.join('\n') + '\n');
});

// The host's end of the CDC port: a program opens the pty (DTR and RTS
// set) or hangs up (both cleared), as a USB host's serial driver does on
// open and close. Sent between quanta once the device is configured, one
// control transfer at a time.
function applyDtr(c) {
  if (!c.connected || c.dtr === hostDtr) return;
  c.dtr = hostDtr;
  c.cdc.cdcSetControlLineState(hostDtr ? 3 : 0);
  if (verbose) process.stderr.write(`DTR ${hostDtr} at ${c.clock.nanos / 1000} us\n`);
}

// The flash chip's answers to commands sent through the SSI with chip
// select forced low (pico-sdk's flash_do_cmd: QSPI SS output override in
// IO_QSPI GPIO_QSPI_SS_CTRL, one byte out and one in per DR0 access):
// the RUID command (0x4B, 4 dummy bytes, 8 id bytes) answers flashId.
// rp2040js leaves IO_QSPI unimplemented and its SSI answers zeros.
function flashCommands(mcu) {
  const ioq = mcu.peripherals[0x40018];
  const ssi = mcu.peripherals[0x18000];
  const regs = new Map();
  let csLow = false;
  let tx = [];
  const rx = [];
  ioq.readUint32 = (offset) => regs.get(offset) || 0;
  ioq.writeUint32 = (offset, value) => {
    regs.set(offset, value >>> 0);
    if (offset === 0x0c) { // GPIO_QSPI_SS_CTRL: OUTOVER bits 9:8, 2 = drive low
      const low = ((value >>> 8) & 3) === 2;
      if (low !== csLow) {
        csLow = low;
        tx = [];
        rx.length = 0;
      }
    }
  };
  const ssiWrite = ssi.writeUint32.bind(ssi);
  const ssiRead = ssi.readUint32.bind(ssi);
  ssi.writeUint32 = (offset, value) => {
    if (offset !== 0x60 || !csLow) { ssiWrite(offset, value); return; }
    const i = tx.length;
    tx.push(value & 0xff);
    const k = i - 1 - FLASH_RUID_DUMMY;
    rx.push(tx[0] === FLASH_RUID_CMD && k >= 0 && k < flashId.length ? flashId[k] : 0);
  };
  ssi.readUint32 = (offset) => (offset === 0x60 && csLow && rx.length ? rx.shift() : ssiRead(offset));
}

function applyInputs(mcu) {
  mcu.gpio[PIN.trigger].setInputValue(!!inputs.trig);
  mcu.gpio[PIN.cartridge].setInputValue(!!inputs.cart);
  mcu.gpio[PIN.home].setInputValue(!!inputs.home);
}

function feedUsb(c) {
  if (c.usbPending === null || hostToUsb.length === 0) return;
  const n = Math.min(c.usbPending, hostToUsb.length);
  const buf = new Uint8Array(hostToUsb.splice(0, n));
  c.usbPending = null;
  c.mcu.usbCtrl.endpointReadDone(c.cdc.outEndpoint, buf);
}

function motorDuty(mcu) {
  const ch = mcu.pwm.channels[0];
  const pin = mcu.gpio[PIN.motor_pwm];
  if (pin.functionSelect !== 4) return pin.outputValue ? 65535 : 0; // GPIO, not PWM
  if (!(ch.csr & 1)) return 0;
  const top = ch.top + 1;
  const cc = ch.cc & 0xffff;
  if (cc >= top) return 65535;
  return Math.round((cc * 65535) / top);
}

function scheduleEdges(c) {
  for (const t of hallEdges) {
    const dt = t - c.clock.nanos;
    const pin = () => chip.mcu.gpio[PIN.hall];
    c.clock.createAlarm(() => {
      pin().setInputValue(false);
      chip.clock.createAlarm(() => pin().setInputValue(true)).schedule(HALL_PULSE_NS);
    }).schedule(dt > 0 ? dt : 0);
  }
  hallEdges = [];
}

function doReset() {
  const c = chip;
  const wd = c.mcu.peripherals[0x40058];
  scratch = new Uint32Array(wd.scratchData);
  const keep = new Uint8Array(c.mcu.flash);
  flashImage = keep;
  events.push('reset');
  if (verbose) process.stderr.write(`reset at ${c.clock.nanos / 1000} us\n`);
  boot(c.clock.nanos);
}

// The C stack (core 0's 8 KB in SCRATCH_X/Y, shared by the main code and
// every interrupt; MicroPython's own check raises at 256 B short of it): its
// low-water mark, and the most a GPIO interrupt (the hall sensor's hard IRQ,
// a Python handler) took on top of wherever it landed. A hard IRQ handler
// that hits the check raises, and MicroPython then disables that IRQ for
// good (shared/runtime/mpirq.c): the pen stops counting hall edges. Both
// go to the host as events ('sp:ADDR:PC', 'irqsp:BYTES') when they change.
// PENSIM_RP2040_STACKDUMP=BYTES: each new low past BYTES is written to
// stderr with the return addresses on the stack (for addr2line).
const IRQ_GPIO = 16 + 13; // IO_IRQ_BANK0's exception number
const STACK_TOP = 0x20042000; // __StackTop (the rp2 port's memmap_mp_rp2040.ld)
let spLow = 0xffffffff;
let spPc = 0;
let spReported = 0xffffffff;
let gpioEntrySp = 0;
let gpioStackMax = 0;
let gpioReported = 0;
const spDumpAt = Number(process.env.PENSIM_RP2040_STACKDUMP || 0);
function spSeen(core) {
  spLow = core.registers[13];
  spPc = core.PC;
  if (spDumpAt && STACK_TOP - spLow >= spDumpAt) {
    const ra = [];
    for (let a = spLow; a < STACK_TOP; a += 4) {
      const v = chip.mcu.readUint32(a) >>> 0;
      if (v & 1 && ((v >= 0x10000000 && v < 0x10200000) || (v >= 0x20000000 && v < STACK_TOP))) {
        ra.push(`${STACK_TOP - a}@${(v - 1).toString(16)}`);
      }
    }
    process.stderr.write(`stack ${STACK_TOP - spLow} B at pc ${spPc.toString(16)}, ${chip.clock.nanos / 1000} us: ${ra.join(' ')}\n`);
  }
}
function watchIrqStack(core) {
  const entry = core.exceptionEntry.bind(core);
  core.exceptionEntry = (n) => {
    if (n === IRQ_GPIO) gpioEntrySp = core.registers[13];
    entry(n);
  };
}

function run(untilNs) {
  let c = chip;
  while (c.clock.nanos < untilNs) {
    if (c.resetPending) {
      doReset();
      c = chip;
      continue;
    }
    const clock = c.clock;
    const core = c.mcu.core;
    const traps = c.traps;
    if (c.stallNs > 0 || hang) {
      // flash erase/program (CPU stalled) or a hung core: time and the
      // timers run, no instruction executes
      let dt = untilNs - clock.nanos;
      if (c.stallNs > 0 && c.stallNs < dt) dt = c.stallNs;
      const na = clock.nanosToNextAlarm;
      if (na > 0 && na < dt) dt = na;
      if (dt < 1) dt = 1;
      clock.tick(dt);
      if (c.stallNs > 0) c.stallNs -= dt;
    } else if (core.waiting) {
      let dt = clock.nanosToNextAlarm;
      if (dt <= 0 || dt > untilNs - clock.nanos) dt = untilNs - clock.nanos;
      clock.tick(dt);
      if (core.interruptsUpdated && core.checkForInterrupts()) core.waiting = false;
    } else {
      // the hot loop: leaves on a reset, a stall, WFI or the quantum's end
      while (clock.nanos < untilNs && !core.waiting && c.stallNs === 0 && !c.resetPending) {
        const pc = profOn ? core.PC : 0; // PC is a getter: read only when profiling
        const cycles = core.executeInstruction();
        if (profOn) profHist.set(pc, (profHist.get(pc) || 0) + cycles + traps.cycles);
        clock.tick((cycles + traps.cycles) * NS_PER_CYCLE);
        traps.cycles = 0;
        const sp = core.registers[13];
        if (sp < spLow) spSeen(core);
        if (core.IPSR === IRQ_GPIO && gpioEntrySp - sp > gpioStackMax) gpioStackMax = gpioEntrySp - sp;
      }
    }
  }
}

// the motor's duty, re-read whenever the firmware writes the PWM slice
// (the time of the last change is reported: tilt -> drive off is timed
// from it to the nanosecond of emulated time)
function watchDuty(c) {
  const ch = c.mcu.pwm.channels[0];
  const write = ch.writeRegister.bind(ch);
  ch.writeRegister = (offset, value) => {
    write(offset, value);
    const d = motorDuty(c.mcu);
    if (d !== lastDuty) {
      lastDuty = d;
      dutyChangedNs = c.clock.nanos;
      if (process.env.PENSIM_RP2040_LOG === "2") process.stderr.write(`duty ${d} at ${c.clock.nanos / 1000} us\n`);
    }
  };
  c.mcu.gpio[PIN.motor_pwm].addListener(() => {
    const d = motorDuty(c.mcu);
    if (d !== lastDuty) {
      lastDuty = d;
      dutyChangedNs = c.clock.nanos;
    }
  });
}

// --- the lock-step exchange with the world (Python) ---
const inBuf = Buffer.alloc(1 << 16);
let pending = '';
function readLine() {
  for (;;) {
    const nl = pending.indexOf('\n');
    if (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      return line;
    }
    let n = 0;
    try {
      n = fs.readSync(0, inBuf, 0, inBuf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) return null;
    pending += inBuf.toString('latin1', 0, n);
  }
}

function hex(arr) {
  return arr.length ? Buffer.from(arr).toString('hex') : '-';
}

// the chip's TIMER count, read as the firmware reads it (TIMERAWH, TIMERAWL)
function timerUs(mcu) {
  const t = mcu.peripherals[0x40054];
  return t.readUint32(0x24) * 2 ** 32 + t.readUint32(0x28);
}

function report() {
  const c = chip;
  const mcu = c.mcu;
  if (spLow !== spReported) {
    spReported = spLow;
    events.push(`sp:${spLow}:${(spPc >>> 0).toString(16)}`);
  }
  // the hall pin's interrupt enable (IO_BANK0 PROC0_INTE): armed once at
  // boot and never turned off by the firmware; MicroPython turns it off
  // when the hard handler raises. Reported when it goes off ('hallirqoff').
  const hallMask = mcu.gpio[PIN.hall].irqEnableMask;
  if (hallIrqArmed && hallMask === 0) events.push('hallirqoff');
  hallIrqArmed = hallMask !== 0;
  if (gpioStackMax !== gpioReported) {
    gpioReported = gpioStackMax;
    events.push(`irqsp:${gpioStackMax}`);
  }
  const g = mcu.gpio;
  const steps = stepRuns.length ? stepRuns.map((r) => r[0] + ':' + r[1]).join(',') : '-';
  const i2cw = i2cPendingWrites.length ? i2cPendingWrites.map((w) => w[0] + '=' + hex(w[1])).join(',') : '-';
  const line = ['Q', Math.floor(c.clock.nanos / 1000), lastDuty,
    g[PIN.motor_brake].outputValue ? 1 : 0, g[PIN.en].outputValue ? 1 : 0,
    g[PIN.led].outputValue ? 1 : 0, g[PIN.buzzer].outputValue ? 1 : 0,
    steps, i2cw, hex(usbToHost), events.length ? events.join(',') : '-',
    Math.floor(dutyChangedNs / 1000), timerUs(mcu)].join(' ');
  stepRuns = [];
  i2cPendingWrites = [];
  usbToHost = [];
  events = [];
  fs.writeSync(1, line + '\n');
}

// Free GC heap, read from the chip's RAM without the firmware's help
// ($PENSIM_RP2040_HEAP="CTX,START,END": mp_state_ctx, __GcHeapStart,
// __GcHeapEnd from the ELF): the heap area in mp_state_ctx.mem is found by
// its allocation-table pointer (== START), then the table's 2-bit entries
// that are free (0) are counted over the pool's blocks of 16 bytes.
function heapFree() {
  const [ctx, start, end] = (process.env.PENSIM_RP2040_HEAP || '').split(',').map(Number);
  if (!ctx) return '-1:-1:-1';
  const mcu = chip.mcu;
  for (let a = ctx; a < ctx + 0x2000; a += 4) {
    if (mcu.readUint32(a) !== start) continue;
    const atbLen = mcu.readUint32(a + 4);
    for (let b = a + 8; b < a + 32; b += 4) {
      const poolStart = mcu.readUint32(b);
      const poolEnd = mcu.readUint32(b + 4);
      if (poolStart > start && poolEnd <= end && poolEnd > end - 32 && poolEnd > poolStart) {
        const blocks = Math.min(atbLen * 4, (poolEnd - poolStart) >> 4);
        let free = 0;
        for (let k = 0; k < blocks; k++) {
          if (((mcu.readUint8(start + (k >> 2)) >> ((k & 3) * 2)) & 3) === 0) free++;
        }
        if (verbose) process.stderr.write(`heap area at 0x${a.toString(16)}: atb ${atbLen} B, pool 0x${poolStart.toString(16)}..0x${poolEnd.toString(16)}, ${blocks} blocks, ${free} free\n`);
        // MP_STATE_MEM(gc_alloc_amount) and (gc_alloc_threshold) of the
        // rp2 RPI_PICO build (py/mpstate.h: the area's 7 words, the GC
        // stack overflow flag, 64 uint16 stack entries, the auto-collect
        // flag): blocks allocated since the last collection, every one
        // counted (also those freed again at once), and gc.threshold
        const amount = mcu.readUint32(a + 164) >>> 0;
        const threshold = mcu.readUint32(a + 168) >>> 0;
        return `${free * 16}:${amount}:${threshold}`;
      }
    }
  }
  return '-1:-1:-1';
}

function apply(words) {
  // R until trig cart home adc0 adc1 imu stall hang edges regs usb
  inputs.trig = Number(words[2]);
  inputs.cart = Number(words[3]);
  inputs.home = Number(words[4]);
  adcValues[0] = Number(words[5]);
  adcValues[1] = Number(words[6]);
  imuPresent = words[7] === '1';
  const stall = words[8] === '1';
  hang = words[9] === '1';
  if (words[10] !== '-') {
    for (const t of words[10].split(',')) hallEdges.push(Number(t) * 1000);
  }
  if (words[11] !== '-') regs.set(Buffer.from(words[11], 'hex'));
  if (words[12] !== '-') for (const b of Buffer.from(words[12], 'hex')) hostToUsb.push(b);
  if (busStall && !stall && i2cStalled !== null) {
    const fn = i2cStalled;
    i2cStalled = null;
    busStall = false;
    chip.clock.createAlarm(fn).schedule(I2C_BYTE_NS);
  }
  busStall = stall;
  if (words[13] === 'heap') heapWanted = true; // read at the end of the next pass
  const blocked = words[14] === '1';
  if (usbBlocked && !blocked) {
    usbBlocked = false;
    chip.releaseIn();
  }
  usbBlocked = blocked;
  if (words[15] !== undefined) hostDtr = words[15] === '1' ? 1 : 0;
  return Number(words[1]) * 1000;
}

function main() {
  boot(0);
  report();
  for (;;) {
    const line = readLine();
    if (line === null || line === 'X') return;
    const words = line.split(' ');
    if (words[0] !== 'R') throw new Error('bad line from the world: ' + line);
    const until = apply(words);
    applyInputs(chip.mcu);
    scheduleEdges(chip);
    applyDtr(chip);
    feedUsb(chip);
    run(until);
    report();
  }
}

main();
