/**
 * The tar-diff interpreter's inner loops in WebAssembly, over the arena of
 * add_kernel.ts: `scan` runs the common ops of a decoded piece of the op
 * stream, `serve` performs a read batch's gathered reads from a run of a
 * source file.
 *
 * A tar-diff of a binary between distant releases is millions of ops (the far
 * corpus's biome layer: 2.6 million, mostly a Seek and an AddData of 9 to 70
 * bytes). In the JavaScript loop each cost a header parse, a call per copy and
 * per record, and the bookkeeping of a general loop: about 0.4 s of that pull.
 * `scan` takes, while they lie whole in the piece and fit the output batch,
 * Data, Seek, and the AddData and Copy ops small enough to be gathered: it
 * copies their bytes into the batch and writes their read records (the
 * layout of read_batch.ts) itself. It stops at anything else (Open, ZstdDict,
 * a large or overlong op, one that crosses the piece or the batch, one past the
 * end of the file, a piece's last few bytes), leaving that op's header unread,
 * so the JavaScript loop runs it with every check and error message it has;
 * an op the kernel takes can fail no check there.
 *
 * @module
 */
import {
  block,
  br,
  brIf,
  call,
  code,
  end,
  F64,
  f64Add,
  f64FromU32,
  f64Gt,
  f64Load,
  f64Store,
  f64Sub,
  get,
  I32,
  i32,
  i32Add,
  i32And,
  i32Eq,
  i32Eqz,
  i32FromF64,
  i32GeU,
  i32GtU,
  i32Load,
  i32Load8U,
  i32LtS,
  i32Or,
  i32Shl,
  i32ShrU,
  i32Store,
  i32Sub,
  ifThen,
  loop,
  memoryCopy,
  orElse,
  set,
  tee,
  type WasmFunction,
} from "../util/wasm_encoder.ts";

/** Where `scan` leaves its state in the arena (bytes, after the add masks): see {@link STATE_POSITION}. */
export const SCAN_STATE = 256;
/** Bytes of the state. */
export const SCAN_STATE_SIZE = 24;

/** Why `scan` stopped: at an op it does not take (or the piece's end), the output batch full, the records full. */
export const Stop = { Op: 0, Full: 1, Records: 2 } as const;

/**
 * The state `scan` leaves at {@link SCAN_STATE}: the file position (f64 at +0),
 * the op stream's position (i32 at +8), the batch's length (+12), the records'
 * count (+16).
 */
export const STATE_POSITION = SCAN_STATE >> 3;
/** Index of the op stream's position among the arena's i32 words; the batch's length and the count follow. */
export const STATE_AT = (SCAN_STATE >> 2) + 2;

/** The address of element `index` of the array at `base` whose elements are 2^`log2` bytes. */
const element = (base: number, index: number, log2: number) => code(get(base), get(index), i32(log2), i32Shl, i32Add);

/**
 * serve(from, to, first, outAt, bufAt, orderAt, posAt, offAt, lenAt): for each
 * record `order[from .. to)`, copies or adds (`len` holds length * 2 + add) its
 * bytes from the run buffer at `bufAt`, which holds the file from `first`, to
 * the output at `outAt`. Calls the module's add, function `addIndex`.
 */
export function serveFunction(addIndex: number): WasmFunction {
  // deno-fmt-ignore
  const [from, to, first, outAt, bufAt, orderAt, posAt, offAt, lenAt, i, l, d, s] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const run = code(get(d), get(s), get(l), i32(1), i32ShrU); // destination, source, length
  // deno-fmt-ignore
  return {
    name: "serve",
    params: [I32, I32, F64, I32, I32, I32, I32, I32, I32],
    results: [],
    locals: [I32, I32, I32, I32],
    body: code(
      block, loop,
      get(from), get(to), i32GeU, brIf(1),                          // from >= to: done
      element(orderAt, from, 2), i32Load(), set(i),                 // i = order[from]
      element(lenAt, i, 2), i32Load(), set(l),                      // l = len[i]
      element(offAt, i, 2), i32Load(), get(outAt), i32Add, set(d),  // d = outAt + off[i]
      element(posAt, i, 3), f64Load(), get(first), f64Sub, i32FromF64, get(bufAt), i32Add, set(s), // s = bufAt + pos[i] - first
      get(l), i32(1), i32And,
      ifThen(), run, call(addIndex),
      orElse, run, memoryCopy,
      end,
      get(from), i32(1), i32Add, set(from),
      br(0),
      end, end,
    ),
  };
}

/**
 * scan(at, end, outAt, outLen, outSize, count, cap, addLimit, copyLimit,
 * position, fileSize, posAt, offAt, lenAt) -> Stop: runs ops from `at` in the
 * piece ending at `end`; see the module doc. `fileSize` is -1 when no file may
 * be read (none open, or one held in memory): Seek, Copy and AddData then stop
 * it. AddData and Copy are taken below `addLimit` and `copyLimit` bytes.
 * Leaves its state at {@link SCAN_STATE}.
 */
export function scanFunction(): WasmFunction {
  // deno-fmt-ignore
  const [at, stop, outAt, outLen, outSize, count, cap, addLimit, copyLimit, position, fileSize, posAt, offAt, lenAt] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const [op, size, q, b, isAdd, reason] = [14, 15, 16, 17, 18, 19];
  /** The varint byte just read (in `b`) is followed by another. */
  const continues = code(get(b), i32(0x80), i32And);
  /** One more byte of the size's varint, at `at + k`, shifted left by `shift`; then q = at + k + 1. */
  // deno-fmt-ignore
  const varintByte = (k: number, shift: number) =>
    code(get(at), i32Load8U(k), tee(b), i32(0x7f), i32And, i32(shift), i32Shl, get(size), i32Or, set(size),
      get(at), i32(k + 1), i32Add, set(q));
  const sizeF64 = code(get(size), f64FromU32);
  /** Leaves the loop's block (`depth` from here) unless the op's `size` bytes after its header lie in the piece. */
  const inPiece = (depth: number) => code(get(size), get(stop), get(q), i32Sub, i32GtU, brIf(depth));
  /** Leaves the loop's block (`depth` from here) unless `size` more bytes fit the output batch. */
  const fitsBatch = (depth: number) => code(get(size), get(outSize), get(outLen), i32Sub, i32GtU, brIf(depth));
  /** Copies the op's `size` bytes (at `q`) to the end of the output batch. */
  const copyToBatch = code(get(outAt), get(outLen), i32Add, get(q), get(size), memoryCopy);
  /** local += size. */
  const advance = (local: number) => code(get(local), get(size), i32Add, set(local));
  /** outLen == outSize: stop as Full, from `depth` levels inside the loop's block. */
  const stopWhenFull = (depth: number) =>
    code(get(outLen), get(outSize), i32Eq, ifThen(), i32(Stop.Full), set(reason), br(depth + 2), end);
  // deno-fmt-ignore
  return {
    name: "scan",
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, F64, F64, I32, I32, I32],
    results: [I32],
    locals: [I32, I32, I32, I32, I32, I32],
    body: code(
      block, loop,
      // A header is at most 5 bytes here (sizes below 2^28); fewer left: the JavaScript loop reads it.
      get(stop), get(at), i32Sub, i32(6), i32LtS, brIf(1),
      get(at), i32Load8U(0), set(op),
      get(at), i32Load8U(1), tee(b), i32(0x7f), i32And, set(size),
      get(at), i32(2), i32Add, set(q),
      continues, ifThen(),
      varintByte(2, 7),
      continues, ifThen(),
      varintByte(3, 14),
      continues, ifThen(),
      varintByte(4, 21),
      continues, brIf(4), // a sixth byte: left to JavaScript
      end, end, end,
      // Seek (4): within the file.
      get(op), i32(4), i32Eq,
      ifThen(),
      sizeF64, get(fileSize), f64Gt, brIf(2),
      sizeF64, set(position),
      get(q), set(at),
      br(1),
      end,
      // Data (0): whole in the piece, within the batch.
      get(op), i32Eqz,
      ifThen(),
      inPiece(2), fitsBatch(2),
      copyToBatch,
      get(q), get(size), i32Add, set(at),
      advance(outLen),
      stopWhenFull(1),
      br(1),
      end,
      // AddData (3) and Copy (2): small, within the batch and the file; AddData's bytes whole in the piece.
      get(op), i32(3), i32Eq, tee(isAdd), get(op), i32(2), i32Eq, i32Or, i32Eqz, brIf(1),
      get(size), get(isAdd), ifThen(I32), get(addLimit), orElse, get(copyLimit), end, i32GeU, brIf(1),
      fitsBatch(1),
      get(position), sizeF64, f64Add, get(fileSize), f64Gt, brIf(1),
      get(isAdd), ifThen(), inPiece(2), end,
      get(count), get(cap), i32GeU, ifThen(), i32(Stop.Records), set(reason), br(2), end,
      // The record: position, output offset, length * 2 + add.
      element(posAt, count, 3), get(position), f64Store(),
      element(offAt, count, 2), get(outLen), i32Store(),
      element(lenAt, count, 2), get(size), i32(1), i32Shl, get(isAdd), i32Or, i32Store(),
      get(count), i32(1), i32Add, set(count),
      get(isAdd), ifThen(), copyToBatch, advance(q), end,
      get(q), set(at),
      get(position), sizeF64, f64Add, set(position),
      advance(outLen),
      stopWhenFull(0),
      br(0),
      end, end,
      // The state, for the caller.
      i32(SCAN_STATE), get(position), f64Store(),
      i32(SCAN_STATE), get(at), i32Store(8),
      i32(SCAN_STATE), get(outLen), i32Store(12),
      i32(SCAN_STATE), get(count), i32Store(16),
      get(reason),
    ),
  };
}
