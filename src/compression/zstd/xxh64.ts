/**
 * Streaming XXH64 (seed 0), the hash a zstd frame's content checksum is taken
 * from. The bulk of the work, four 64-bit multiply-rotate lanes over 32-byte
 * stripes, runs in a WebAssembly function assembled below from its opcodes
 * (JavaScript has no fast 64-bit integers: BigInt allocates, and 32-bit halves
 * run at a quarter of the speed); the short final mixing is done in JavaScript
 * on 32-bit halves. Nothing is loaded from a file, so it works the same inside
 * `deno compile`.
 *
 * @module
 */

// The five XXH64 primes, as high and low 32-bit halves.
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

/** High 32 bits of the 64-bit product of two unsigned 32-bit numbers. */
function mulHigh(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid1 = a1 * b0 + ((a0 * b0) >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16)) >>> 0;
}

/** Reads a little-endian unsigned 32-bit number. */
function u32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

/** LEB128 of an unsigned number (WebAssembly's integer encoding). */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 64-bit integer. */
function sleb64(v: bigint): number[] {
  v = BigInt.asIntN(64, v);
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** Size of the WebAssembly memory, which data is copied into to be hashed. */
const MEMORY = 128 << 10;
const P1 = (BigInt(P1H) << 32n) | BigInt(P1L);
const P2 = (BigInt(P2H) << 32n) | BigInt(P2L);

/**
 * The module: memory "m" (two 64 KiB pages), four mutable i64 globals "a".."d"
 * (the lanes), and "s"(start, end), which runs the lanes over the 32-byte
 * stripes of memory[start, end):
 *
 *     for (p = start; p < end; p += 32)
 *       for k in 0..3: lane[k] = rotl(lane[k] + load64(p + 8k) * P2, 31) * P1
 */
// deno-fmt-ignore
function assemble(): Uint8Array {
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
  const name = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
  const I64 = 0x7e, I64_CONST = 0x42, I64_LOAD = 0x29, I64_MUL = 0x7e, I64_ADD = 0x7c, I64_ROTL = 0x89;
  const I32_CONST = 0x41, I32_ADD = 0x6a, I32_GE_U = 0x4f;
  const LOCAL_GET = 0x20, LOCAL_SET = 0x21, GLOBAL_GET = 0x23, GLOBAL_SET = 0x24;
  const BLOCK = 0x02, LOOP = 0x03, VOID = 0x40, BR = 0x0c, BR_IF = 0x0d, END = 0x0b;
  const lane = (k: number) => [
    LOCAL_GET, 2 + k,                       // lane k (locals 2..5)
    LOCAL_GET, 0, I64_LOAD, 3, 8 * k,       // load64(p + 8k), 8-byte aligned hint
    I64_CONST, ...sleb64(P2), I64_MUL,      // * P2
    I64_ADD,                                // lane + input * P2
    I64_CONST, 31, I64_ROTL,                // rotl 31
    I64_CONST, ...sleb64(P1), I64_MUL,      // * P1
    LOCAL_SET, 2 + k,
  ];
  const code = [
    1, 4, I64,                              // four i64 locals: the lanes
    ...[0, 1, 2, 3].flatMap((k) => [GLOBAL_GET, k, LOCAL_SET, 2 + k]),
    BLOCK, VOID,
    LOOP, VOID,
    LOCAL_GET, 0, LOCAL_GET, 1, I32_GE_U,   // p >= end?
    BR_IF, 1,                               //   then leave the block
    ...lane(0), ...lane(1), ...lane(2), ...lane(3),
    LOCAL_GET, 0, I32_CONST, 32, I32_ADD, LOCAL_SET, 0, // p += 32
    BR, 0,                                  // next stripe
    END,                                    // loop
    END,                                    // block
    ...[0, 1, 2, 3].flatMap((k) => [LOCAL_GET, 2 + k, GLOBAL_SET, k]),
    END,                                    // function
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 0]),     // types: 0 = (i32, i32) -> ()
    ...section(3, [1, 0]),                          // functions: one, of type 0
    ...section(5, [1, 0, MEMORY >> 16]),            // memories: one of MEMORY bytes
    ...section(6, [4, ...[0, 1, 2, 3].flatMap(() => [I64, 1, I64_CONST, 0, END])]), // globals: 4 mutable i64 = 0
    ...section(7, [                                 // exports
      6,
      ...name("m"), 2, 0,                           // memory 0
      ...name("s"), 0, 0,                           // function 0
      ...name("a"), 3, 0, ...name("b"), 3, 1, ...name("c"), 3, 2, ...name("d"), 3, 3, // globals
    ]),
    ...section(10, [1, ...uleb(code.length), ...code]), // code
  ]);
}

/** The compiled module (a few hundred bytes, compiled at load): shared; each hash has its own instance. */
const LANES_MODULE = new WebAssembly.Module(assemble() as Uint8Array<ArrayBuffer>);

interface LaneExports {
  m: WebAssembly.Memory;
  s: (start: number, end: number) => void;
  a: WebAssembly.Global;
  b: WebAssembly.Global;
  c: WebAssembly.Global;
  d: WebAssembly.Global;
}

/**
 * An incremental XXH64 hash with seed 0: `update` with the data in any number of
 * pieces, then `digest` (the full 64 bits as a BigInt) or `low32` (what a zstd
 * frame stores).
 */
export class Xxh64 {
  #wasm: LaneExports;
  #mem: Uint8Array;
  #lanes: WebAssembly.Global[];
  /** Bytes waiting in the WebAssembly memory (fewer than 32 between calls). */
  #bufLen = 0;
  #total = 0;

  constructor() {
    this.#wasm = new WebAssembly.Instance(LANES_MODULE).exports as unknown as LaneExports;
    this.#mem = new Uint8Array(this.#wasm.m.buffer);
    this.#lanes = [this.#wasm.a, this.#wasm.b, this.#wasm.c, this.#wasm.d];
    this.reset();
  }

  /** Starts a new hash. */
  reset(): void {
    const init = [P1 + P2, P2, 0n, -P1];
    this.#lanes.forEach((g, k) => (g.value = BigInt.asIntN(64, init[k])));
    this.#bufLen = 0;
    this.#total = 0;
  }

  /** Adds `data[start, end)` to the hash. */
  update(data: Uint8Array, start = 0, end = data.length): void {
    this.#total += end - start;
    const mem = this.#mem;
    while (start < end) {
      const n = Math.min(end - start, MEMORY - this.#bufLen);
      mem.set(data.subarray(start, start + n), this.#bufLen);
      start += n;
      const filled = this.#bufLen + n;
      const whole = filled & ~31;
      if (whole > 0) this.#wasm.s(0, whole);
      if (whole < filled) mem.copyWithin(0, whole, filled);
      this.#bufLen = filled - whole;
    }
  }

  /** The hash of everything added so far, as a 64-bit unsigned BigInt. */
  digest(): bigint {
    const [h, l] = this.#final();
    return (BigInt(h) << 32n) | BigInt(l);
  }

  /** The low 32 bits of the hash: the value a zstd `Content_Checksum` holds. */
  low32(): number {
    return this.#final()[1];
  }

  #final(): [number, number] {
    const v = new Uint32Array(8);
    this.#lanes.forEach((g, k) => {
      const lane = BigInt.asUintN(64, g.value as bigint);
      v[2 * k] = Number(lane >> 32n);
      v[2 * k + 1] = Number(lane & 0xffffffffn);
    });
    const s = new Scratch();
    if (this.#total >= 32) {
      s.set(v[0], v[1]).rotl(1);
      let hh = s.h, hl = s.l;
      for (const [i, r] of [[2, 7], [4, 12], [6, 18]]) {
        s.set(v[i], v[i + 1]).rotl(r);
        const sl = hl + s.l;
        hh = (hh + s.h + (sl > 0xffffffff ? 1 : 0)) >>> 0;
        hl = sl >>> 0;
      }
      s.set(hh, hl);
      for (let i = 0; i < 8; i += 2) {
        // h = (h ^ round(0, v)) * P1 + P4
        const k = new Scratch().set(v[i], v[i + 1]).mul(P2H, P2L).rotl(31).mul(P1H, P1L);
        s.xor(k.h, k.l).mul(P1H, P1L).add(P4H, P4L);
      }
    } else {
      s.set(P5H, P5L);
    }
    s.add(Math.floor(this.#total / 0x100000000) >>> 0, this.#total >>> 0);
    const b = this.#mem;
    const n = this.#bufLen;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const k = new Scratch().set(u32(b, i + 4), u32(b, i)).mul(P2H, P2L).rotl(31).mul(P1H, P1L);
      s.xor(k.h, k.l).rotl(27).mul(P1H, P1L).add(P4H, P4L);
    }
    if (i + 4 <= n) {
      const k = new Scratch().set(0, u32(b, i)).mul(P1H, P1L);
      s.xor(k.h, k.l).rotl(23).mul(P2H, P2L).add(P3H, P3L);
      i += 4;
    }
    for (; i < n; i++) {
      const k = new Scratch().set(0, b[i]).mul(P5H, P5L);
      s.xor(k.h, k.l).rotl(11).mul(P1H, P1L);
    }
    // Avalanche.
    let t = new Scratch().set(s.h, s.l).shr(33);
    s.xor(t.h, t.l).mul(P2H, P2L);
    t = new Scratch().set(s.h, s.l).shr(29);
    s.xor(t.h, t.l).mul(P3H, P3L);
    s.xor(0, s.h);
    return [s.h, s.l];
  }
}

/** A 64-bit value as two halves, for the few non-hot steps of the hash. */
class Scratch {
  h = 0;
  l = 0;
  set(h: number, l: number): this {
    this.h = h >>> 0;
    this.l = l >>> 0;
    return this;
  }
  add(h: number, l: number): this {
    const sl = this.l + l;
    this.h = (this.h + h + (sl > 0xffffffff ? 1 : 0)) >>> 0;
    this.l = sl >>> 0;
    return this;
  }
  mul(h: number, l: number): this {
    const nl = Math.imul(this.l, l) >>> 0;
    this.h = (mulHigh(this.l, l) + Math.imul(this.h, l) + Math.imul(this.l, h)) >>> 0;
    this.l = nl;
    return this;
  }
  xor(h: number, l: number): this {
    this.h = (this.h ^ h) >>> 0;
    this.l = (this.l ^ l) >>> 0;
    return this;
  }
  rotl(r: number): this {
    const h = this.h, l = this.l;
    if (r >= 32) return this.set(l, h).rotl(r - 32);
    if (r === 0) return this;
    this.h = ((h << r) | (l >>> (32 - r))) >>> 0;
    this.l = ((l << r) | (h >>> (32 - r))) >>> 0;
    return this;
  }
  /** Logical right shift by r (0 < r < 64). */
  shr(r: number): this {
    const h = this.h, l = this.l;
    if (r >= 32) return this.set(0, h >>> (r - 32));
    this.h = h >>> r;
    this.l = ((l >>> r) | (h << (32 - r))) >>> 0;
    return this;
  }
}
