/**
 * The tar-diff interpreter: a tar-diff blob streams in (magic, then zstd), its
 * operations run against a source filesystem, and the rebuilt tar streams out in
 * chunks of one reusable buffer. Memory is bounded by the buffer sizes, never by
 * the size of the delta, of an operation or of the layer.
 *
 * Version 2's ZstdDict op needs the whole current source file in memory, as the
 * dictionary of its zstd frame: the source gives it ({@link SourceFile.whole}),
 * from a budget it may have to wait for; the frame's output streams like any
 * other op's.
 *
 * The hot paths are the byte plumbing (each output byte is written into the
 * output buffer: large source reads straight into it, small ones gathered per
 * output batch and served in runs by {@link ReadBatch}, data bytes by one copy
 * from the decoder's buffer) and AddData's sum. Where WebAssembly SIMD is
 * available they run in an arena (add_kernel.ts): the common ops of each decoded
 * piece in scan_kernel.ts's loop, the rest in the loop below, which also runs
 * everything where the arena is missing (sums four bytes at a time with a
 * carry-free SWAR add). The output buffer is the batch: it starts at
 * `outputSize` and grows (within `memory`) while its gathered reads take many
 * read calls, or copy many times its size from the source.
 *
 * @module
 */
import { DeltashipError, TarDiffError, withContext } from "../errors.ts";
import { decodeName } from "../tar/header.ts";
import { cleanRootedPath } from "../tar/path.ts";
import { Yielder } from "../util/yielder.ts";
import { MAX_DICTIONARY_SIZE, ZstdDictDecoder } from "../compression/zstd/dict.ts";
import { MAX_OPEN_NAME, Op } from "./format.ts";
import { OpInput } from "./op_input.ts";
import { ReadBatch, RECORDS_SIZE, RUN_BUFFER, SMALL_READ } from "./read_batch.ts";
import { addBytes, copyInto, viewOf } from "./byte_runs.ts";
import { ARENA_START, PAD, returnArena, takeArena } from "./add_kernel.ts";
import { STATE_AT, STATE_POSITION, Stop } from "./scan_kernel.ts";
import { lookupMessage, type SourceFile, type TarDiffSource, wholeFile } from "./source.ts";

export type { SourceFile, TarDiffSource } from "./source.ts";

/** Tuning of {@link applyTarDiff}. */
export interface ApplyOptions {
  /** Size of the output buffer, i.e. of the chunks yielded (default 1 MiB, a multiple of 4). */
  outputSize?: number;
  /** Size of the zstd decoder's output buffer (default 512 KiB). */
  decodeSize?: number;
  /**
   * Largest AddData accepted (default 64 GiB, the default layer size limit):
   * AddData streams in bounded chunks, so this guards only against nonsense.
   */
  maxAddData?: number;
  /**
   * Largest output batch (default 16 MiB): the output buffer grows from
   * `outputSize` when a batch gathers many small source reads ({@link ReadBatch}),
   * so that each sweep of a source file serves more of them.
   */
  maxBatchSize?: number;
  /** Where the growth beyond `outputSize` is taken from (default: no bound but `maxBatchSize`). */
  memory?: BatchMemory;
  /**
   * The delta stream's chunks are the interpreter's alone (no other reader
   * keeps them): each is freed as soon as it is decoded (see OpInput).
   */
  freeInput?: boolean;
}

/** A budget the output batch grows from (a MemoryBudget). */
export interface BatchMemory {
  /** Takes `bytes`; false (taking nothing) when there is not that much left. */
  reserve(bytes: number): boolean;
  /** Gives back what {@link reserve} took. */
  release(bytes: number): void;
}

/**
 * A batch whose gathered reads took more read calls than this per MiB of output
 * grows, when memory allows (issue 21's target: fewer than 20 per MB rebuilt).
 */
const GROW_CALLS_PER_MIB = 16;
/**
 * A batch whose gathered reads took more than this many times its size from the
 * source (sweeps of files whose reads are scattered across them) grows, when
 * memory allows: each batch of the far corpus's biome layer copies ~63 MB of its
 * 84 MB binary from the page cache, whether it is 8 or 16 MiB.
 */
const GROW_SWEEP_RATIO = 4;

const OP_NAMES = ["Data", "Open", "Copy", "AddData", "Seek", "ZstdDict"];
const DEFAULT_MAX_ADD_DATA = 64 * 2 ** 30;

/**
 * Applies the tar-diff streamed in `delta` (the blob, magic included) against
 * `source`, yielding the rebuilt tar. Each chunk is a view of one reusable buffer,
 * valid until the generator is resumed: consume (hash, write, copy) it before
 * asking for the next. Every malformed input ends in a {@link TarDiffError} (or,
 * from the stream itself, the error it failed with).
 */
export async function* applyTarDiff(
  delta: ReadableStream<Uint8Array>,
  source: TarDiffSource,
  options: ApplyOptions = {},
): AsyncGenerator<Uint8Array> {
  let outSize = options.outputSize ?? 1 << 20;
  if (outSize % 4 !== 0 || outSize < 4) throw new RangeError("outputSize must be a positive multiple of 4");
  const maxBatch = Math.max(outSize, options.maxBatchSize ?? 16 << 20);
  const decodeSize = options.decodeSize ?? 1 << 19;
  // The output batch, the gathered reads' run buffer, the decompressed op stream and the gathered reads' records, in
  // one arena where WebAssembly SIMD is available (add_kernel.ts), so that the common ops run in scan_kernel.ts's
  // loop and adds and copies between them are single calls: its pages are touched only as far as they are used.
  // Without it, the ops run below and adds and copies are byte_runs.ts's.
  const outAt = ARENA_START;
  const bufAt = outAt + maxBatch + PAD;
  const decodeAt = bufAt + RUN_BUFFER + PAD;
  const recordsAt = Math.ceil((decodeAt + decodeSize + PAD) / 8) * 8;
  const arena = takeArena(recordsAt + RECORDS_SIZE);
  let out = arena ? arena.bytes.subarray(outAt, outAt + outSize) : new Uint8Array(outSize);
  const name = new Uint8Array(MAX_OPEN_NAME);
  const maxAddData = options.maxAddData ?? DEFAULT_MAX_ADD_DATA;
  let outLen = 0;
  const batch = new ReadBatch(arena ? { arena, bufAt, recordsAt } : undefined);
  let grown = 0; // bytes of the output buffer taken from options.memory
  /** The output so far, its gathered reads done: the chunk to yield. */
  const full = (): Uint8Array => {
    const before = batch.reads;
    const bytesBefore = batch.bytesRead;
    batch.flush(out);
    // A dense batch takes about one call per MiB of the files it touches whatever its size, so its calls per MiB of
    // output fall as it grows: aim at GROW_CALLS_PER_MIB. So do its bytes swept per byte of output (a sweep covers
    // about the touched extent of the files): aim at GROW_SWEEP_RATIO.
    const calls = batch.reads - before;
    if (outSize < maxBatch && outLen === outSize) {
      growTo = outSize;
      while (growTo < maxBatch && calls * (1 << 20) > GROW_CALLS_PER_MIB * growTo) growTo *= 2;
      while (growTo < maxBatch && batch.bytesRead - bytesBefore > GROW_SWEEP_RATIO * growTo) growTo *= 2;
    }
    return outLen === outSize ? out : out.subarray(0, outLen);
  };
  let growTo = 0;
  /**
   * After a yield: a larger buffer when the last batch took many read calls, as
   * large as they ask for or, failing that, the largest that memory allows.
   */
  const regrow = (): void => {
    if (growTo <= outSize) return;
    let size = Math.min(growTo, maxBatch);
    growTo = 0;
    while (size > outSize && options.memory && !options.memory.reserve(size - outSize)) size = size >>> 1;
    if (size <= outSize) return;
    grown += size - outSize;
    if (arena) {
      out = arena.bytes.subarray(outAt, outAt + size);
    } else {
      out.buffer.transfer(0); // the old buffer (its chunk consumed) is freed now, not at some later collection
      out = new Uint8Array(size);
    }
    outSize = size;
  };

  const input = new OpInput(
    delta,
    arena ? arena.bytes.subarray(decodeAt, decodeAt + decodeSize) : decodeSize,
    options.freeInput ?? false,
  );
  /**
   * Records a small read of `n` bytes of `f` at `position` into the output at
   * `outLen` (added onto what is there when `add`), the batch's reads so far
   * served first when it has no room left.
   */
  const gather = (f: SourceFile, n: number, add: boolean): void => {
    if (batch.room === 0) batch.flush(out);
    batch.record(f, position, outLen, n, add);
  };
  /** Copies `n` bytes of the op stream (from `input.pos`) to the output (at `outLen`). */
  const copyInput = (n: number): void => {
    if (arena !== undefined && n >= 16) arena.copy(outAt + outLen, input.buf.byteOffset + input.pos, n);
    else copyInto(out, outLen, input.buf, input.pos, n);
  };
  let file: SourceFile | undefined;
  let path = "";
  let position = 0;
  let opAt = 0;
  let op = 0;
  // AddData is gathered below SMALL_READ bytes, and never over maxAddData (larger ones fail below).
  const addLimit = Math.min(SMALL_READ, maxAddData + 1);
  /**
   * Runs the ops of the current piece that scan_kernel.ts's `scan` takes, from
   * `input.pos`; returns why it stopped (Stop.Op also when the piece is not in
   * the arena, as a decoder may give pieces of its own).
   */
  const scan = (): number => {
    const buf = input.buf;
    if (arena === undefined || buf.buffer !== arena.bytes.buffer) return Stop.Op;
    const f = file;
    const before = batch.size;
    const at = batch.recordsAt;
    const stop = arena.scan(
      buf.byteOffset + input.pos,
      buf.byteOffset + buf.length,
      outAt,
      outLen,
      outSize,
      before,
      before + batch.room, // finite: the records are the arena's
      addLimit,
      SMALL_READ,
      position,
      f !== undefined && f.bytes === undefined ? f.size : -1,
      at.pos,
      at.out,
      at.len,
    );
    const words = arena.i32;
    input.pos = words[STATE_AT] - buf.byteOffset;
    outLen = words[STATE_AT + 1];
    position = arena.f64[STATE_POSITION];
    const count = words[STATE_AT + 2];
    if (count > before) batch.adopt(f!, count);
    return stop;
  };

  const fail = (detail: string): never => {
    const what = OP_NAMES[op] ?? `op ${op}`;
    const src = file && op !== Op.Open ? ` (source ${JSON.stringify(path)})` : "";
    const named = file || op === Op.Open ? path : undefined;
    throw new TarDiffError(`tar-diff: ${what} at byte ${opAt}${src}: ${detail}`, opAt, named);
  };
  const truncated = (left: number): never => fail(`the op stream ends ${left} bytes early (truncated tar-diff)`);
  const openFile = (): SourceFile => file ?? fail("no source file is open");
  /** The open source file, when `size` bytes from the current position lie within it. */
  const sourceRange = (size: number): SourceFile => {
    const f = openFile();
    if (position + size > f.size) {
      fail(`${size} bytes from position ${position} run past the end of the file (${f.size} bytes)`);
    }
    return f;
  };

  // Ops that produce no output (Open, Seek) can run by the million without any I/O.
  const yielder = new Yielder({ every: 256 });
  try {
    for (;;) {
      const pause = yielder.yieldIfDue();
      if (pause) await pause;
      if (input.pos >= input.buf.length && !(await input.more())) break;
      if (arena !== undefined) {
        const stop = scan();
        if (stop === Stop.Full) {
          yield full();
          outLen = 0;
          regrow();
          continue;
        }
        if (stop === Stop.Records) {
          batch.flush(out);
          continue;
        }
        if (input.pos >= input.buf.length) continue;
      }
      opAt = input.offset;
      if (!input.header()) await input.headerSlow();
      op = input.op;
      const size = input.size;
      switch (op) {
        case Op.Data: {
          let left = size;
          while (left > 0) {
            if (input.pos >= input.buf.length && !(await input.more())) truncated(left);
            const n = Math.min(left, input.buf.length - input.pos, outSize - outLen);
            copyInput(n);
            input.pos += n;
            outLen += n;
            left -= n;
            if (outLen === outSize) {
              yield full();
              outLen = 0;
              regrow();
            }
          }
          break;
        }
        case Op.Copy: {
          const f = sourceRange(size);
          let left = size;
          while (left > 0) {
            const n = Math.min(left, outSize - outLen);
            const mem = f.bytes;
            if (mem !== undefined) copyInto(out, outLen, mem, position, n);
            else if (n < SMALL_READ) gather(f, n, false);
            else f.read(position, out, outLen, n);
            position += n;
            outLen += n;
            left -= n;
            if (outLen === outSize) {
              yield full();
              outLen = 0;
              regrow();
            }
          }
          break;
        }
        case Op.AddData: {
          if (size > maxAddData) fail(`${size} bytes is over the limit of ${maxAddData}`);
          const f = sourceRange(size);
          let left = size;
          while (left > 0) {
            if (input.pos >= input.buf.length && !(await input.more())) truncated(left);
            const n = Math.min(left, input.buf.length - input.pos, outSize - outLen);
            const mem = f.bytes;
            if (mem !== undefined && n < 48) {
              const data = input.buf;
              const d = input.pos;
              for (let i = 0; i < n; i++) out[outLen + i] = mem[position + i] + data[d + i];
            } else if (mem === undefined && n < SMALL_READ) {
              // The delta's bytes now, the source's added when the batch is served.
              copyInput(n);
              gather(f, n, true);
            } else {
              f.read(position, out, outLen, n);
              if (arena) {
                arena.add(outAt + outLen, input.buf.byteOffset + input.pos, n);
              } else {
                addBytes(out, viewOf(out), outLen, input.buf, viewOf(input.buf), input.pos, n);
              }
            }
            input.pos += n;
            position += n;
            outLen += n;
            left -= n;
            if (outLen === outSize) {
              yield full();
              outLen = 0;
              regrow();
            }
          }
          break;
        }
        case Op.Open: {
          if (size > MAX_OPEN_NAME) fail(`path of ${size} bytes is over the limit of ${MAX_OPEN_NAME}`);
          let got = 0;
          while (got < size) {
            if (input.pos >= input.buf.length && !(await input.more())) truncated(size - got);
            const n = Math.min(size - got, input.buf.length - input.pos);
            name.set(input.buf.subarray(input.pos, input.pos + n), got);
            input.pos += n;
            got += n;
          }
          if (file) batch.retire(file);
          file = undefined;
          const raw = decodeName(name.subarray(0, size));
          path = cleanRootedPath(raw);
          const shown = JSON.stringify(raw) + (path !== raw ? ` (resolved to ${JSON.stringify(path)})` : "");
          if (path === "") fail(`path ${shown} is empty`);
          const opened = source.open(path);
          if (typeof opened === "string") fail(lookupMessage(opened, shown));
          file = opened as SourceFile;
          position = 0;
          break;
        }
        case Op.Seek: {
          const f = openFile();
          if (size > f.size) fail(`position ${size} is past the end of the file (${f.size} bytes)`);
          position = size;
          break;
        }
        case Op.ZstdDict: {
          if (input.version !== 2) fail("ZstdDict (op 5) in a version 1 tar-diff (tardf1); only tardf2 may use it");
          const f = openFile();
          if (f.size > MAX_DICTIONARY_SIZE) {
            fail(`the source file (${f.size} bytes) is over the ${MAX_DICTIONARY_SIZE}-byte limit for a dictionary`);
          }
          // The gathered reads first: a source may hold one dictionary at a time, in a buffer that files which
          // were read whole before share (ObjectSource's WholeFile), so their reads must be done before it changes.
          batch.flush(out);
          const dictionary = await wholeFile(f).catch((e) => {
            throw withContext(e, `tar-diff: ZstdDict at byte ${opAt} (source ${JSON.stringify(path)})`);
          });
          const decoder = new ZstdDictDecoder(dictionary, { allowTrailing: true, outSize: outSize >>> 1 });
          const frame = (step: () => Uint8Array | null): Uint8Array | null => {
            try {
              return step();
            } catch (e) {
              return fail(`zstd frame: ${(e as Error).message ?? String(e)}`);
            }
          };
          try {
            let left = size;
            while (left > 0) {
              if (input.pos >= input.buf.length && !(await input.more())) truncated(left);
              const n = Math.min(left, input.buf.length - input.pos);
              const part = input.buf.subarray(input.pos, input.pos + n);
              input.pos += n;
              left -= n;
              if (decoder.done) continue; // bytes after the frame, inside the op: skipped
              decoder.push(part);
              for (let piece = frame(() => decoder.pull()); piece !== null; piece = frame(() => decoder.pull())) {
                let at = 0;
                while (at < piece.length) {
                  const k = Math.min(piece.length - at, outSize - outLen);
                  copyInto(out, outLen, piece, at, k);
                  at += k;
                  outLen += k;
                  if (outLen === outSize) {
                    yield full();
                    outLen = 0;
                    regrow();
                  }
                }
              }
            }
            frame(() => (decoder.finish(), null));
          } finally {
            decoder.close();
          }
          position = f.size;
          break;
        }
        default:
          fail(`unknown op ${op} (not a tar-diff op, or corrupt)`);
      }
    }
    if (outLen > 0) yield full();
  } catch (e) {
    if (e instanceof DeltashipError) throw e;
    throw new TarDiffError(`tar-diff: ${(e as Error).message ?? String(e)}`);
  } finally {
    batch.close();
    file?.close();
    // The last chunk has been consumed (the caller resumed or returned): free the buffers now, as the budget is
    // given back, rather than at a collection that a thread going on to its next layer may not make for a while.
    if (!arena) {
      out.buffer.transfer(0);
    }
    if (grown > 0) options.memory?.release(grown);
    try {
      await input.close();
    } finally {
      if (arena) returnArena(arena); // once the decoder, which writes into it, is closed
    }
  }
}
