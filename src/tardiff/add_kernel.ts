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
 * ceil(n / 16) vector adds. The module (with scan_kernel.ts's loops) is
 * assembled below by util/wasm_encoder.ts (no toolchain, nothing fetched);
 * where WebAssembly SIMD is missing, the callers keep their JavaScript paths.
 *
 * An arena is a fixed WebAssembly.Memory (it never grows, so views of it stay
 * valid): the first 256 bytes are the tail masks, then scan_kernel.ts's state,
 * then from {@link ARENA_START} whatever regions the
 * caller lays out, each followed by at least {@link PAD} bytes, since a masked
 * tail reads and writes a whole vector. Pages are touched only as the regions
 * are used. Memory cannot be freed on demand, so a thread keeps one spare arena
 * for its next interpreter instead of leaving each to a collection.
 *
 * @module
 */
import {
  block,
  br,
  brIf,
  code,
  end,
  get,
  I32,
  i32,
  i32Add,
  i32Eqz,
  i32LtU,
  i32Shl,
  i32Sub,
  i8x16Add,
  ifThen,
  loop,
  memoryCopy,
  ret,
  set,
  v128And,
  v128Load,
  v128Store,
  type WasmFunction,
  wasmModule,
} from "../util/wasm_encoder.ts";
import { SCAN_STATE, SCAN_STATE_SIZE, scanFunction, serveFunction } from "./scan_kernel.ts";

/** Bytes that must follow each region: the width of a vector. */
export const PAD = 16;
/** Where the first region may start: after the masks and scan_kernel.ts's state, on a 64-byte line. */
export const ARENA_START = Math.ceil((SCAN_STATE + SCAN_STATE_SIZE) / 64) * 64;

const PAGE = 1 << 16;

type Run = (dst: number, src: number, n: number) => void;

/** The arena and its kernels. */
export interface ByteArena {
  /** The whole memory (valid while the arena is held). */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** The same memory as f64 and i32 words (scan_kernel.ts's state, read batch records). */
  readonly f64: Float64Array<ArrayBuffer>;
  readonly i32: Int32Array<ArrayBuffer>;
  /** Adds `bytes[src .. src + n)` onto `bytes[dst .. dst + n)`, each byte modulo 256. */
  add: Run;
  /**
   * Copies `bytes[src .. src + n)` to `dst` (`memory.copy`): one call, where a
   * copy between views in JavaScript makes a subarray object for each run.
   */
  copy: Run;
  /** scan_kernel.ts's serve. */
  serve(
    from: number,
    to: number,
    first: number,
    outAt: number,
    bufAt: number,
    orderAt: number,
    posAt: number,
    offAt: number,
    lenAt: number,
  ): void;
  /** scan_kernel.ts's scan. */
  scan(
    at: number,
    end: number,
    outAt: number,
    outLen: number,
    outSize: number,
    count: number,
    cap: number,
    addLimit: number,
    copyLimit: number,
    position: number,
    fileSize: number,
    posAt: number,
    offAt: number,
    lenAt: number,
  ): number;
}

// add(dst, src, n): 16 lanes at a time, then the last partial vector under the mask of n lanes (at n * 16).
// deno-fmt-ignore
const ADD: WasmFunction = {
  name: "add",
  params: [I32, I32, I32],
  results: [],
  locals: [],
  body: code(
    block, loop,
    get(2), i32(16), i32LtU, brIf(1),                                        // n < 16: leave the loop
    get(0), get(0), v128Load(), get(1), v128Load(), i8x16Add, v128Store(),   // dst, v128 at dst + v128 at src
    get(0), i32(16), i32Add, set(0),
    get(1), i32(16), i32Add, set(1),
    get(2), i32(16), i32Sub, set(2),
    br(0),
    end, end,
    get(2), i32Eqz, ifThen(), ret, end,                                      // n == 0: done
    get(0), get(0), v128Load(), get(1), v128Load(),
    get(2), i32(4), i32Shl, v128Load(), v128And,                             // src's lanes under the mask of n lanes
    i8x16Add, v128Store(),
  ),
};
const COPY: WasmFunction = {
  name: "copy",
  params: [I32, I32, I32],
  results: [],
  locals: [],
  body: code(get(0), get(1), get(2), memoryCopy),
};

/** The module: add (function 0), copy, serve and scan over one imported memory. */
const MODULE = wasmModule([ADD, COPY, serveFunction(0), scanFunction()]);

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
  const e = instance.exports as unknown as Omit<ByteArena, "bytes" | "f64" | "i32">;
  return {
    bytes,
    f64: new Float64Array(memory.buffer as ArrayBuffer),
    i32: new Int32Array(memory.buffer as ArrayBuffer),
    add: e.add,
    copy: e.copy,
    serve: e.serve,
    scan: e.scan,
  };
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
