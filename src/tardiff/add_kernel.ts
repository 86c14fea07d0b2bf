/**
 * AddData's bytewise sum in WebAssembly SIMD, over an arena of WebAssembly
 * memory that holds the interpreter's output batch and the buffers it adds
 * from.
 *
 * A tar-diff of a binary between distant releases adds a million short runs
 * (9 to 70 bytes) of source bytes onto delta bytes: the far corpus's biome
 * layer is 100 MB of them. In JavaScript the sum goes four bytes at a time (a
 * carry-free SWAR add over unaligned DataView words), which made it the
 * largest single cost of that pull; `i8x16.add` takes sixteen, and a run's
 * last partial vector is added under a mask (lanes past the run add zero, so
 * the bytes there are stored back unchanged), so a run costs one call and
 * ceil(n / 16) vector adds. The module is 161 bytes, assembled below (no
 * toolchain, nothing fetched); where WebAssembly SIMD is missing, the callers
 * keep their JavaScript sum.
 *
 * An arena is a fixed WebAssembly.Memory (it never grows, so views of it stay
 * valid): the first 256 bytes are the tail masks, then whatever regions the
 * caller lays out, each followed by at least {@link PAD} bytes, since a masked
 * tail reads and writes a whole vector. Pages are touched only as the regions
 * are used. Memory cannot be freed on demand, so a thread keeps one spare arena
 * for its next interpreter instead of leaving each to a collection.
 *
 * @module
 */

/** Bytes that must follow each region: the width of a vector. */
export const PAD = 16;
/** Where the first region may start (after the masks). */
export const ARENA_START = 256;

const PAGE = 1 << 16;

/** The arena, its add and its copy. */
export interface ByteArena {
  /** The whole memory (valid while the arena is held). */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Adds `bytes[src .. src + n)` onto `bytes[dst .. dst + n)`, each byte modulo 256. */
  add(dst: number, src: number, n: number): void;
  /**
   * Copies `bytes[src .. src + n)` to `dst` (`memory.copy`): one call, where a
   * copy between views in JavaScript makes a subarray object for each run.
   */
  copy(dst: number, src: number, n: number): void;
}

// The module: one imported memory, two functions add(dst, src, n) and copy(dst, src, n).
// deno-fmt-ignore
const BODY = [
  0x00, // no locals besides the parameters (0: dst, 1: src, 2: n)
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x02, 0x41, 0x10, 0x49, 0x0d, 0x01, // n < 16: leave the loop
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, // dst, v128 at dst, v128 at src
  0xfd, 0x6e, 0xfd, 0x0b, 0x00, 0x00, // i8x16.add, v128.store at dst
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // dst += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // src += 16
  0x20, 0x02, 0x41, 0x10, 0x6b, 0x21, 0x02, // n -= 16
  0x0c, 0x00, 0x0b, 0x0b, // br loop, end loop, end block
  0x20, 0x02, 0x45, 0x04, 0x40, 0x0f, 0x0b, // n == 0: return
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, // dst, v128 at dst, v128 at src
  0x20, 0x02, 0x41, 0x04, 0x74, 0xfd, 0x00, 0x00, 0x00, // the mask of n lanes, at n * 16
  0xfd, 0x4e, 0xfd, 0x6e, 0xfd, 0x0b, 0x00, 0x00, // v128.and, i8x16.add, v128.store at dst
  0x0b, // end
];
// deno-fmt-ignore
const COPY = [0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfc, 0x0a, 0x00, 0x00, 0x0b]; // memory.copy(dst, src, n)

// deno-fmt-ignore
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // types: (i32, i32, i32) -> ()
  0x02, 0x08, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x01, // imports: memory "e" "m", at least one page
  0x03, 0x03, 0x02, 0x00, 0x00, // functions: two, of type 0
  0x07, 0x0e, 0x02, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x04, 0x63, 0x6f, 0x70, 0x79, 0x00, 0x01, // "add", "copy"
  0x0a, BODY.length + COPY.length + 3, 0x02, BODY.length, ...BODY, COPY.length, ...COPY, // code
]);

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where WebAssembly SIMD is not available (or fails its check). */
function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  try {
    if (typeof WebAssembly === "object" && WebAssembly.validate(MODULE)) {
      const m = new WebAssembly.Module(MODULE);
      if (selfCheck(m)) compiled = m;
    }
  } catch {
    compiled = null;
  }
  return compiled;
}

/** Every run length from 0 to 40 against the plain sum and copy: the module is used only when it agrees. */
function selfCheck(m: WebAssembly.Module): boolean {
  const arena = instantiate(m, 1);
  const b = arena.bytes;
  const dst = ARENA_START;
  const src = ARENA_START + 128;
  for (let n = 0; n <= 40; n++) {
    for (let i = 0; i < 64; i++) {
      b[dst + i] = (i * 37 + n) & 0xff;
      b[src + i] = (i * 91 + 200) & 0xff;
    }
    arena.add(dst, src, n);
    for (let i = 0; i < 64; i++) {
      const want = i < n ? ((i * 37 + n) + (i * 91 + 200)) & 0xff : (i * 37 + n) & 0xff;
      if (b[dst + i] !== want) return false;
    }
    arena.copy(dst, src, n);
    for (let i = 0; i < n; i++) if (b[dst + i] !== b[src + i]) return false;
  }
  return true;
}

function instantiate(m: WebAssembly.Module, pages: number): ByteArena {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(m, { e: { m: memory } });
  const bytes = new Uint8Array(memory.buffer as ArrayBuffer);
  for (let n = 0; n < 16; n++) bytes.fill(0xff, n * 16, n * 16 + n);
  type Run = (dst: number, src: number, n: number) => void;
  return { bytes, add: instance.exports.add as Run, copy: instance.exports.copy as Run };
}

let disabled = false;

/** True when {@link takeArena} gives arenas (WebAssembly SIMD works here, and arenas are not turned off). */
export function arenasAvailable(): boolean {
  return !disabled && module() !== null;
}

/** Turns arenas off (or back on) on this thread: tests run the JavaScript paths with it. */
export function disableArenas(off: boolean): void {
  disabled = off;
  spare = undefined;
}

let spare: ByteArena | undefined;

/**
 * An arena of at least `size` bytes (the masks included: lay regions out from
 * {@link ARENA_START}), the thread's spare when it is large enough; undefined
 * where WebAssembly SIMD is not available. Give it back with {@link returnArena}.
 */
export function takeArena(size: number): ByteArena | undefined {
  const m = module();
  if (m === null || disabled) return undefined;
  if (spare && spare.bytes.length >= size) {
    const a = spare;
    spare = undefined;
    return a;
  }
  return instantiate(m, Math.ceil(size / PAGE));
}

/** Keeps `arena` as the thread's spare (the larger of it and the one kept, if any). */
export function returnArena(arena: ByteArena): void {
  if (!spare || spare.bytes.length < arena.bytes.length) spare = arena;
}
