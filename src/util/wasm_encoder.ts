/**
 * A small WebAssembly encoder: the instructions deltaship's kernels use, as
 * byte arrays to concatenate, and a module of functions over one imported
 * memory (`e.m`). Enough to write a loop over memory in readable source
 * without a toolchain; not a general assembler (no tables, globals or data).
 *
 * Instructions are functions or constants returning `number[]`; a function
 * body is their concatenation ({@link code}). Branch depths are counted by hand,
 * as in the text format: 0 is the innermost enclosing block, loop or if.
 *
 * @module
 */

/** Value types. */
export const I32 = 0x7f;
export const F64 = 0x7c;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** The instructions and values concatenated into one body. */
export function code(...parts: (number | number[])[]): number[] {
  return parts.flat();
}

// Locals and constants.
export const get = (i: number): number[] => [0x20, ...uleb(i)];
export const set = (i: number): number[] => [0x21, ...uleb(i)];
export const tee = (i: number): number[] => [0x22, ...uleb(i)];
export const i32 = (n: number): number[] => [0x41, ...sleb(n)];

// Control. `block`, `loop` and `if` take no values and give none unless a result type is named.
export const block = [0x02, 0x40];
export const loop = [0x03, 0x40];
export const ifThen = (result?: number): number[] => [0x04, result ?? 0x40];
export const orElse = [0x05];
export const end = [0x0b];
export const br = (depth: number): number[] => [0x0c, ...uleb(depth)];
export const brIf = (depth: number): number[] => [0x0d, ...uleb(depth)];
export const ret = [0x0f];
export const call = (fn: number): number[] => [0x10, ...uleb(fn)];

// Memory: `offset` is the instruction's constant offset; alignments are the natural ones.
export const i32Load8U = (offset = 0): number[] => [0x2d, 0, ...uleb(offset)];
export const i32Load = (offset = 0): number[] => [0x28, 2, ...uleb(offset)];
export const i32Store = (offset = 0): number[] => [0x36, 2, ...uleb(offset)];
export const f64Load = (offset = 0): number[] => [0x2b, 3, ...uleb(offset)];
export const f64Store = (offset = 0): number[] => [0x39, 3, ...uleb(offset)];
export const memoryCopy = [0xfc, 0x0a, 0x00, 0x00];

// i32 arithmetic and comparisons.
export const i32Eqz = [0x45];
export const i32Eq = [0x46];
export const i32LtS = [0x48];
export const i32LtU = [0x49];
export const i32GtU = [0x4b];
export const i32GeU = [0x4f];
export const i32Add = [0x6a];
export const i32Sub = [0x6b];
export const i32And = [0x71];
export const i32Or = [0x72];
export const i32Shl = [0x74];
export const i32ShrU = [0x76];

// f64.
export const f64Gt = [0x64];
export const f64Add = [0xa0];
export const f64Sub = [0xa1];
export const f64FromU32 = [0xb8]; // f64.convert_i32_u
export const i32FromF64 = [0xfc, 0x02]; // i32.trunc_sat_f64_s

// SIMD.
export const v128Load = (offset = 0): number[] => [0xfd, 0x00, 0, ...uleb(offset)];
export const v128Store = (offset = 0): number[] => [0xfd, 0x0b, 0, ...uleb(offset)];
export const v128And = [0xfd, 0x4e];
export const i8x16Add = [0xfd, 0x6e];

/** One function of a module. */
export interface WasmFunction {
  /** The name it is exported as. */
  name: string;
  params: number[];
  results: number[];
  /** Locals beyond the parameters, by type. */
  locals: number[];
  /** The instructions (without the final `end`). */
  body: number[];
}

/** `\0asm`, version 1. */
const MAGIC_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const vector = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
const name = (s: string): number[] => [...uleb(s.length), ...new TextEncoder().encode(s)];

/**
 * A module importing its memory as `e.m` (at least `minPages` pages) and
 * exporting `functions`, which may call one another by their index here.
 */
export function wasmModule(functions: WasmFunction[], minPages = 1): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...vector(f.params.map((t) => [t])), ...vector(f.results.map((t) => [t]))]);
  const bodies = functions.map((f) => {
    const locals = vector(f.locals.map((t) => [1, t]));
    const all = [...locals, ...f.body, ...end];
    return [...uleb(all.length), ...all];
  });
  return new Uint8Array([
    ...MAGIC_VERSION,
    ...section(1, vector(types)),
    ...section(2, vector([[...name("e"), ...name("m"), 0x02, 0x00, ...uleb(minPages)]])),
    ...section(3, vector(functions.map((_, i) => uleb(i)))),
    ...section(7, vector(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vector(bodies)),
  ]);
}
