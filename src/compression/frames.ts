/**
 * Compressing many independent zstd frames at once: the "frames" task that a
 * zstd:chunked export runs on its workers. A job carries the uncompressed
 * bytes of several frames back to back and gets them back compressed, each
 * frame alone (so any one can be fetched and decoded by itself), with the
 * SHA-256 of the frames asked for. A frame of zeros is written as RLE blocks,
 * without its bytes ever being held.
 *
 * The bytes of a frame depend only on its content and the level (one
 * {@link ZstdEncoder} per level and thread, each frame in one call), never on
 * which thread ran it or what ran before.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { concat } from "../util/streams.ts";
import type { TaskKind } from "../util/worker_pool.ts";
import { ZstdEncoder } from "./zstd/native_encoder.ts";

/** One frame of a {@link FramesJob}. */
export interface FrameSpec {
  /** Uncompressed bytes: taken from the job's data, or zeros. */
  length: number;
  /** A run of zero bytes that has no place in the job's data. */
  zeros?: boolean;
  /** Compute the SHA-256 of the frame's uncompressed bytes. */
  digest?: boolean;
}

/** A batch of frames; plain data so it can cross a Worker boundary. */
export interface FramesJob {
  level: number;
  /** The uncompressed bytes of the frames that are not zeros, back to back (transferred to the worker). */
  data: Uint8Array;
  frames: FrameSpec[];
}

/** The compressed frames of a job. */
export interface FramesResult {
  /** The frames, back to back. */
  data: Uint8Array;
  /** Compressed size of each frame. */
  sizes: number[];
  /** `sha256:<hex>` of each frame whose digest was asked for. */
  digests: (string | undefined)[];
}

/** The "frames" task kind: one job, its buffer transferred to the worker. */
export const framesTaskKind: TaskKind<{ job: FramesJob }, FramesResult> = {
  run: ({ job }) => Promise.resolve(compressFrames(job)),
  transfer: ({ job }) => [job.data.buffer as ArrayBuffer],
};

/** This thread's encoders, by level (a few MiB each, kept for the thread's life). */
const encoders = new Map<number, ZstdEncoder>();

/** Compresses the frames of `job` (synchronously: this is what a worker spends its time on). */
export function compressFrames(job: FramesJob): FramesResult {
  let encoder = encoders.get(job.level);
  if (!encoder) encoders.set(job.level, encoder = new ZstdEncoder(job.level));
  const parts: Uint8Array[] = [];
  const sizes: number[] = [];
  const digests: (string | undefined)[] = [];
  let total = 0;
  let at = 0;
  for (const frame of job.frames) {
    let out: Uint8Array;
    let digest: string | undefined;
    if (frame.zeros) {
      out = zeroFrame(frame.length);
      if (frame.digest) digest = zerosDigest(frame.length);
    } else {
      const data = job.data.subarray(at, at + frame.length);
      at += frame.length;
      out = encoder.frame(data).slice();
      if (frame.digest) digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    }
    parts.push(out);
    sizes.push(out.length);
    digests.push(digest);
    total += out.length;
  }
  return { data: concat(parts, total), sizes, digests };
}

/** Largest block a frame with a 128 KiB window holds. */
const RLE_BLOCK = 128 << 10;

/**
 * A zstd frame of `length` zero bytes: no content size, a 128 KiB window, and
 * RLE blocks of at most 128 KiB (RFC 8878 3.1.1), so a reader needs no more
 * than the window however long the run.
 */
export function zeroFrame(length: number): Uint8Array {
  const blocks = Math.max(1, Math.ceil(length / RLE_BLOCK));
  const out = new Uint8Array(6 + blocks * 4);
  out.set([0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3]); // magic; descriptor: nothing optional; window 2^17
  let left = length;
  for (let b = 0; b < blocks; b++) {
    const size = Math.min(left, RLE_BLOCK);
    left -= size;
    const header = (size << 3) | (1 << 1) | (b === blocks - 1 ? 1 : 0); // Block_Size, RLE, Last_Block
    const at = 6 + b * 4;
    out[at] = header & 0xff;
    out[at + 1] = (header >>> 8) & 0xff;
    out[at + 2] = (header >>> 16) & 0xff;
    out[at + 3] = 0; // the repeated byte
  }
  return out;
}

const ZERO_PIECE = new Uint8Array(1 << 20);

/** `sha256:<hex>` of `length` zero bytes. */
function zerosDigest(length: number): string {
  const hash = createHash("sha256");
  for (let left = length; left > 0; left -= ZERO_PIECE.length) {
    hash.update(ZERO_PIECE.subarray(0, Math.min(left, ZERO_PIECE.length)));
  }
  return `sha256:${hash.digest("hex")}`;
}
